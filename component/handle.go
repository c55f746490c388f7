package component

import (
	"runtime/debug"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
)

// stanza is one incoming stanza with its addresses parsed once.
type stanza struct {
	t              *tree
	n              *node
	kind           int
	name           string // "message", "presence", "iq"
	typ, id        string
	fromRaw, toRaw string
	from, to       jid.JID
	toOK           bool
	addr           mapping.Address
}

// replyFrom is the from of an answer: the address the stanza went to when
// it is a valid JID of this domain, the domain otherwise (the server closes
// the stream of a component that sends from another domain).
func (s *stanza) replyFrom(l *Link) string {
	if s.toOK && s.toRaw != "" && s.to.Domainpart() == l.domainStr {
		return s.toRaw
	}
	return l.domainStr
}

// handle handles one stanza from the server. It never blocks and never
// ends the stream; a panic in a handler is logged and answered with
// internal-server-error.
func (l *Link) handle(t *tree) {
	var s stanza
	defer func() {
		if r := recover(); r != nil {
			if l.repanic {
				panic(r)
			}
			l.log.Error("BUG: handling a stanza panicked", "panic", r, "stanza", s.name, "from", s.fromRaw, "stack", string(debug.Stack()))
			if s.name != "" {
				l.replyErr(&s, bridge.Errorf(bridge.InternalServerError, "The gateway failed to handle this stanza."), "")
			}
		}
	}()
	if l.privilegeAdvert(t) || l.matchPrivIQ(t) {
		return
	}
	if !l.prepare(t, &s) {
		return
	}
	switch s.kind {
	case kMessage:
		l.handleMessage(&s)
	case kPresence:
		l.handlePresence(&s)
	case kIQ:
		l.handleIQ(&s)
	}
}

// prepare reads a stanza's kind, type, id and addresses (each JID parsed
// once), checks them and the access policy, and maps the recipient. It
// reports false when the stanza was answered or ignored.
func (l *Link) prepare(t *tree, s *stanza) bool {
	root := t.root()
	switch root.local {
	case "message":
		s.kind = kMessage
	case "presence":
		s.kind = kPresence
	case "iq":
		s.kind = kIQ
	default:
		l.log.Debug("ignoring an element that is not a stanza", "element", root.local)
		return false
	}
	if root.space != nsAccept && root.space != nsClient && root.space != "jabber:server" {
		l.log.Debug("ignoring an element in an unknown namespace", "element", root.local, "ns", root.space)
		return false
	}
	s.t, s.n, s.name = t, root, root.local
	l.mIn[s.kind].Inc()
	s.typ = root.attrValue("type")
	s.id = root.attrValue("id")
	s.fromRaw = root.attrValue("from")
	s.toRaw = root.attrValue("to")
	if s.typ == "error" {
		l.handleErrorStanza(s)
		return false
	}
	if s.fromRaw == "" {
		l.log.Warn("dropped a stanza without a from address", "stanza", s.name, "id", s.id)
		return false
	}
	var err, toErr error
	if s.toRaw == "" {
		s.to, s.toOK = l.domain, true
	} else if s.to, toErr = jid.Parse(s.toRaw); toErr == nil {
		s.toOK = true
	}
	if s.from, err = jid.Parse(s.fromRaw); err != nil {
		l.replyErr(s, bridge.Errorf(bridge.JIDMalformed, "The sender address %q is not a valid JID.", s.fromRaw), "")
		return false
	}
	if toErr != nil {
		l.replyErr(s, bridge.Errorf(bridge.JIDMalformed, "The address %q is not a valid JID.", s.toRaw), "")
		return false
	}
	if s.kind == kIQ && s.typ == "result" {
		if !l.matchPing(s.id) && !l.matchSync(s.id) {
			l.replyToTransport(s, "") // the answer to a bridge.Ping
		}
		return false
	}
	if t.tooBig {
		l.replyErr(s, bridge.Errorf(bridge.PolicyViolation, "This stanza is nested too deeply or has too many elements."), "")
		return false
	}
	if !validType(s.kind, s.typ) {
		l.replyErr(s, bridge.Errorf(bridge.BadRequest, "%q is not a valid %s type.", s.typ, s.name), "")
		return false
	}
	if s.to.Domainpart() != l.domainStr {
		l.replyErr(s, bridge.Errorf(bridge.ServiceUnavailable, "This gateway serves %s only.", l.domainStr), "")
		return false
	}
	if !l.gw.Allowed(s.from) && !s.isDomainDiscoInfo() {
		if s.kind == kPresence && s.typ == "unavailable" {
			return false // nothing to refuse
		}
		l.replyErr(s, bridge.Errorf(bridge.Forbidden, "The administrator of this gateway has not allowed %s to use it.", s.from.Bare()), "")
		return false
	}
	if s.addr, err = l.codec.Parse(s.to); err != nil {
		l.refuse(s, err)
		return false
	}
	return true
}

// isDomainDiscoInfo reports whether s is a disco#info get on the bare
// domain without node: the one request users who may not use the gateway
// still get an answer to.
func (s *stanza) isDomainDiscoInfo() bool {
	if s.kind != kIQ || s.typ != "get" || s.to.Localpart() != "" || s.to.Resourcepart() != "" {
		return false
	}
	p := s.t.firstElem(s.n)
	return p != nil && p.space == nsDiscoInfo && p.local == "query" && p.attrValue("node") == "" && s.t.childCount(s.n) == 1
}

func validType(kind int, typ string) bool {
	switch kind {
	case kMessage:
		return true // RFC 6121 §5.2.2: unknown types are treated as normal
	case kPresence:
		switch typ {
		case "", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe":
			return true
		}
	case kIQ:
		return typ == "get" || typ == "set"
	}
	return false
}

// handleErrorStanza logs an error stanza: errors are never answered. An
// IQ error may answer the keepalive ping.
func (l *Link) handleErrorStanza(s *stanza) {
	cond := ""
	if e := s.t.child(s.n, "", "error"); e != nil {
		if c := s.t.firstElem(e); c != nil {
			cond = c.local
		}
	}
	if s.kind == kIQ && (l.matchPing(s.id) || l.matchSync(s.id)) {
		return
	}
	if l.replyToTransport(s, cond) {
		return
	}
	l.log.Debug("received an error stanza", "stanza", s.name, "from", s.fromRaw, "to", s.toRaw, "id", s.id, "condition", cond)
}

// matchPing clears the outstanding keepalive ping if id is its id.
func (l *Link) matchPing(id string) bool {
	p := l.pingID.Load()
	if p == nil || *p != id {
		return false
	}
	l.pingID.CompareAndSwap(p, nil)
	return true
}

// replyErr answers s with an error stanza of the same kind, with the
// original id, from and to swapped. Error stanzas and IQ results are never
// answered.
func (l *Link) replyErr(s *stanza, se *bridge.StanzaError, app string) {
	if s.typ == "error" || s.fromRaw == "" || (s.kind == kIQ && s.typ == "result") {
		return
	}
	l.detach(s).error(l, se, app)
}

// refuse answers s with the stanza error err stands for.
func (l *Link) refuse(s *stanza, err error) {
	l.detach(s).refuse(l, err)
}

// result answers an IQ get/set with a result.
func (l *Link) result(s *stanza, payload func(b []byte) []byte) {
	l.detach(s).result(l, payload)
}

// dispatch hands an inbound event to the gateway; a refusal is answered
// with an error stanza of the same kind (not for unavailable presence).
func (l *Link) dispatch(s *stanza, ev bridge.Inbound) {
	if err := l.gw.Dispatch(l.cfg.Transport, s.from, ev); err != nil {
		if s.kind == kPresence && s.typ == "unavailable" {
			l.log.Debug("unavailable presence refused", "from", s.fromRaw, "err", err)
			return
		}
		l.refuse(s, err)
	}
}
