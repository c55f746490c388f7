package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/mapping"
)

// XEP-0356 (privileged entity): the XMPP server tells a component which
// permissions it has on the server's users. The component records them
// here; a transport asks before it emits what needs one.

// SetPrivilege records the permissions the server (a domain) granted the
// transport's component: perms maps an access ("message", "roster",
// "presence") to its type ("outgoing", "both", …), and PrivilegeIQ(ns)
// to the IQ permission type of a namespace ("get", "set", "both").
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

// NSBlocking is the XEP-0191 namespace: the one a component needs IQ
// permission ("get") on to read a user's block list.
const NSBlocking = "urn:xmpp:blocking"

// PrivilegeIQ is the key of Privilege under which the component records
// an IQ permission for one namespace (XEP-0356 v0.4 <perm access='iq'>
// with <namespace ns=… type=…/> children): Privilege(transport, server,
// PrivilegeIQ(ns)) is "get", "set", "both" or "".
func PrivilegeIQ(ns string) string { return "iq:" + ns }

// ErrNoBlockListPermission is returned by Gateway.BlockList when the
// user's XMPP server did not grant the transport's component IQ "get"
// permission on urn:xmpp:blocking (XEP-0356), or refused the request as
// forbidden. No IQ is sent in the first case.
var ErrNoBlockListPermission = errors.New("the XMPP server has not granted this gateway the permission to read block lists (XEP-0356 iq permission \"get\" on urn:xmpp:blocking)")

// ErrLinkDown is the cause of a failed request to the XMPP server (a
// block list read) made while the component link was down or that the
// connection's end left unanswered.
var ErrLinkDown = errors.New("the component link to the XMPP server is down")

// errNoBlockLister is returned when the transport's sink cannot ask.
var errNoBlockLister = errors.New("bridge: the sink cannot fetch block lists")

// BlockLister is a Sink that can fetch a user's XEP-0191 block list from
// the user's server through a XEP-0356 privileged IQ. BlockList returns
// the blocked JIDs as the server lists them (any JID: the caller keeps
// those it understands); it fails when ctx is done, when the connection
// ends before the answer, and with an error wrapping
// ErrNoBlockListPermission when the server answers forbidden.
type BlockLister interface {
	BlockList(ctx context.Context, user jid.JID) ([]jid.JID, error)
}

// CanReadBlockList reports whether the server of user granted the
// transport's component permission to read block lists.
func (g *Gateway) CanReadBlockList(transport string, user jid.JID) bool {
	switch g.Privilege(transport, user.Domainpart(), PrivilegeIQ(NSBlocking)) {
	case "get", "both":
		return true
	}
	return false
}

// BlockList fetches the XEP-0191 block list of user (its bare JID) from
// the user's server, through the transport's component link. Without the
// permission it returns ErrNoBlockListPermission at once, without asking.
// It blocks for a round trip to the XMPP server: bound it with ctx.
func (g *Gateway) BlockList(ctx context.Context, transport string, user jid.JID) ([]jid.JID, error) {
	te := g.transports[transport]
	if te == nil {
		return nil, fmt.Errorf("bridge: no transport %q", transport)
	}
	if !g.CanReadBlockList(transport, user) {
		return nil, ErrNoBlockListPermission
	}
	bl, ok := te.sink.(BlockLister)
	if !ok {
		return nil, errNoBlockLister
	}
	return bl.BlockList(ctx, user.Bare())
}
