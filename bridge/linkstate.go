package bridge

import (
	"mellium.im/xmpp/jid"

	"switchboard/mapping"
)

// LinkObserver is implemented by a transport that wants to know when its
// component link to the XMPP server comes up: the first time and after
// every reconnect. An XMPP server that restarted has lost every user
// session, so a transport that keeps occupants (IRC) checks which of
// them are still there. LinkUp is called on the link's goroutine and must
// not block.
type LinkObserver interface {
	LinkUp()
}

// Ping asks a user's resource whether it is still online (XEP-0199),
// from a transport address (an occupant JID). The answer (an IQ result,
// or an error from the resource or its server) comes back to the session
// as a StanzaReply with the same ID.
type Ping struct {
	To   jid.JID
	From mapping.Address
	ID   string
}

// StanzaReply is an IQ result, or an error stanza (message, presence or
// IQ), that a user's resource (or its server on its behalf) sent to a
// transport address: the answer to a Ping, or a delivery error, which
// XEP-0045 services take as the occupant having left.
type StanzaReply struct {
	From      jid.JID
	To        mapping.Address
	Kind      string // "message", "presence" or "iq"
	Type      string // "result" or "error"
	ID        string
	Condition string // the error's defined condition ("" for a result)
}

func (Ping) outbound()       {}
func (StanzaReply) inbound() {}

// DispatchReply hands a StanzaReply to the user's session when one runs;
// a reply never starts a session (there is nothing to answer).
func (g *Gateway) DispatchReply(transport string, ev StanzaReply) error {
	u, err := g.user(transport, ev.From, false)
	if u == nil || err != nil {
		return err
	}
	return g.deliver(transport, ev.From, ev)
}
