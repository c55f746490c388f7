package component

import (
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
)

// This file connects the link to transports that watch it (see
// bridge/linkstate.go): a link-up notification, pings to users'
// resources and the answers to them.

// notifyLinkUp tells the transport, if it wants to know, that the link
// is up.
func (l *Link) notifyLinkUp() {
	if o, ok := l.gw.Transport(l.cfg.Transport).(bridge.LinkObserver); ok {
		o.LinkUp()
	}
}

// renderPing renders a bridge.Ping.
func (l *Link) renderPing(o *out, e *bridge.Ping) error {
	from, _, err := l.jidString(e.From)
	if err != nil {
		return err
	}
	b := o.b
	b = append(b, "<iq type='get'"...)
	b = attr(b, "id", e.ID)
	b = attr(b, "from", from)
	b = attr(b, "to", e.To.String())
	b = append(b, "><ping xmlns='urn:xmpp:ping'/></iq>"...)
	o.b = b
	o.count(kIQ)
	return nil
}

// replyToTransport hands an IQ result or an error stanza from a user's
// full JID to a room or occupant address to the transport (the answer to
// a Ping, or a delivery error). It reports whether it did.
func (l *Link) replyToTransport(s *stanza, cond string) bool {
	if s.fromRaw == "" || s.toRaw == "" {
		return false
	}
	from, err := jid.Parse(s.fromRaw)
	if err != nil || from.Resourcepart() == "" || from.Domainpart() == l.domainStr {
		return false
	}
	to, err := jid.Parse(s.toRaw)
	if err != nil || to.Domainpart() != l.domainStr {
		return false
	}
	addr, err := l.codec.Parse(to)
	if err != nil || addr.Kind != mapping.KindOccupant && addr.Kind != mapping.KindRoom {
		return false
	}
	ev := bridge.StanzaReply{From: from, To: addr, Kind: s.name, Type: s.typ, ID: s.id, Condition: cond}
	if err := l.gw.DispatchReply(l.cfg.Transport, ev); err != nil {
		l.log.Debug("a reply from a user could not be passed on", "from", s.fromRaw, "err", err)
	}
	return true
}
