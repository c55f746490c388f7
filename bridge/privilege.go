package bridge

import (
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/mapping"
)

// XEP-0356 (privileged entity): the XMPP server tells a component which
// permissions it has on the server's users. The component records them
// here; a transport asks before it emits what needs one.

// SetPrivilege records the permissions the server (a domain) granted the
// transport's component: perms maps an access ("message", "roster",
// "presence") to its type ("outgoing", "both", …).
func (g *Gateway) SetPrivilege(transport, server string, perms map[string]string) {
	g.privMu.Lock()
	defer g.privMu.Unlock()
	if g.privs == nil {
		g.privs = map[[2]string]map[string]string{}
	}
	g.privs[[2]string{transport, server}] = perms
}

// Privilege returns the type of access the server granted the transport
// ("" when none).
func (g *Gateway) Privilege(transport, server, access string) string {
	g.privMu.Lock()
	defer g.privMu.Unlock()
	return g.privs[[2]string{transport, server}][access]
}

// OwnMessage is a message the user sent from elsewhere (another mail
// client) shown as their own outgoing message: the component asks the
// user's server to send it from the user (XEP-0356 message permission,
// outgoing), so the user's clients get it as a sent carbon and it is
// archived. Emit it only when Privilege(…, "message") is "outgoing".
type OwnMessage struct {
	User    jid.JID         // the user's bare JID
	To      mapping.Address // the contact it went to
	ID      string
	Body    string
	Subject string
	Thread  string
	Time    time.Time
}

func (OwnMessage) outbound() {}
