package bridge

import (
	"context"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/mapping"
	"switchboard/store"
)

// Transport is one kind of remote network (IRC, email, SMS). It is created
// by main from its config section and registered with the Gateway.
type Transport interface {
	// Name is the transport's name and config section: "irc", "email", "sms".
	Name() string
	// Codec maps the transport's component domain.
	Codec() mapping.Codec
	// Identity is the XEP-0030 identity of the component domain, e.g.
	// ("gateway", "irc", "IRC gateway").
	Identity() (category, typ, name string)

	// RegistrationRequired reports whether users must register (XEP-0077)
	// before they may use the transport.
	RegistrationRequired() bool
	// RegistrationForm is the XEP-0077 form; acct is nil for a user not yet
	// registered, otherwise the current values are filled in (secrets never).
	RegistrationForm(acct *store.Account) *Form
	// ApplyRegistration validates a submitted form and writes it into acct
	// (Fields, Secrets). A *StanzaError says what is wrong (not-acceptable,
	// bad-request) and nothing is saved.
	ApplyRegistration(acct *store.Account, values FormValues) error

	// Commands are the transport's XEP-0050 ad-hoc commands.
	Commands() []Command

	// NewSession starts the transport's per-user state. It is called on the
	// user's goroutine; everything the Session does runs there too.
	NewSession(u *User) Session

	// Run does transport-wide background work (listeners, queues, archive
	// pruning) until ctx is done. It returns nil on ctx cancellation.
	Run(ctx context.Context) error
}

// Session is one user's state in one transport. Every method is called on
// the user's goroutine, never concurrently: no locks are needed around the
// state it owns. Its methods must not block for long (network writes go
// through per-connection writers).
type Session interface {
	// HandleInbound handles an event from the user's XMPP client.
	HandleInbound(ev Inbound)
	// HandleQuery answers a user IQ to a remote address; the answer is
	// emitted later as an IQResult (possibly right away).
	HandleQuery(q Query)
	// HandleNetwork handles a value the session itself posted with
	// User.Post from one of its own goroutines (an IRC line, a connection
	// state change, a timer).
	HandleNetwork(ev any)
	// Status is what the gateway knows about the user here, one line each,
	// for the "status" ad-hoc command.
	Status() []string
	// Idle reports whether the session holds nothing worth keeping (no
	// connection, no room): the user's goroutine then stops.
	Idle() bool
	// Close shuts every connection down with reason and stops every
	// goroutine the session started. Called once, last.
	Close(reason string)
}

// Query is a user IQ addressed to a remote thing that the transport
// answers: disco on a room or contact, a room list, an archive query.
type Query struct {
	From    jid.JID
	To      mapping.Address
	ID      string
	Request any // *DiscoInfoQuery, *DiscoItemsQuery, *ArchiveQuery, …
}

// PingQuery is a XEP-0199 ping to a room, an occupant or a contact. For
// an occupant JID that is the user's own, it is XEP-0410 MUC self-ping:
// answer with a nil Payload while the user is joined under that nick, and
// with not-acceptable once they are not (the client then rejoins). For
// other addresses a nil Payload means "reachable".
type PingQuery struct{}

// DiscoInfoQuery asks for XEP-0030 info; answered with *DiscoInfo.
type DiscoInfoQuery struct{ Node string }

// DiscoInfo answers a DiscoInfoQuery.
type DiscoInfo struct {
	Identities []Identity
	Features   []string
	Form       *Form // XEP-0128 extended info (muc#roominfo), optional
}

// Identity is a XEP-0030 identity.
type Identity struct{ Category, Type, Name string }

// DiscoItemsQuery asks for XEP-0030 items with optional XEP-0059 paging;
// answered with *DiscoItems.
type DiscoItemsQuery struct {
	Node string
	Page *PageRequest
}

// DiscoItems answers a DiscoItemsQuery.
type DiscoItems struct {
	Items []DiscoItem
	Page  *PageResult
}

// DiscoItem is one XEP-0030 item.
type DiscoItem struct {
	JID  jid.JID
	Node string
	Name string
}

// PageRequest is a XEP-0059 request (nil fields absent).
type PageRequest struct {
	Max    *int
	After  *string
	Before *string // "" with Before set means "the last page"
	Index  *int
}

// PageResult is a XEP-0059 result set.
type PageResult struct {
	First, Last string
	FirstIndex  int
	Count       int // -1 when unknown
}

// ArchiveQuery is a XEP-0313 (MAM v2) query; answered with *ArchiveResult.
type ArchiveQuery struct {
	QueryID string
	With    string
	Start   string // RFC 3339, empty when absent
	End     string
	Page    *PageRequest
}

// ArchiveResult answers an ArchiveQuery: the component sends each message
// wrapped in <result queryid=…><forwarded>… then the IQ result with <fin>.
type ArchiveResult struct {
	QueryID  string
	Messages []Message // StanzaID is the archive id; Time is set
	Complete bool
	Page     *PageResult
}

// Command is a XEP-0050 ad-hoc command.
type Command struct {
	Node  string
	Name  string
	Admin bool // listed for and runnable by admins only
	// On lists the address kinds the command appears on; empty means the
	// gateway domain only.
	On []mapping.Kind
	// User is true when the command needs the user's session: it then runs
	// on the user's goroutine with CommandRequest.User and .Session set.
	User bool
	Run  func(ctx context.Context, req *CommandRequest) (*CommandResponse, error)
}

// CommandRequest is one step of an ad-hoc command session.
type CommandRequest struct {
	From   jid.JID
	To     mapping.Address
	Action string     // "execute", "next", "prev", "complete"
	Values FormValues // nil on the first step
	Step   int        // 0 on the first step
	// State survives between the steps of one command session.
	State   map[string]string
	Admin   bool
	Gateway *Gateway
	User    *User   // set for Command.User commands
	Session Session // set for Command.User commands (nil when the user has none)
}

// CommandResponse is the answer to one step. With Form set the session
// goes on (status executing); without, it is completed.
type CommandResponse struct {
	Form   *Form
	Notes  []Note
	Result *Form // a form of type "result" shown on completion
}

// Note is a XEP-0050 note.
type Note struct {
	Type string // "info", "warn", "error"
	Text string
}

// Sink delivers outbound events to XMPP. component/ implements it, one per
// component link. Send never blocks: when the link's bounded queue is full
// it returns ErrQueueFull and the caller tells its sender.
type Sink interface {
	Send(ev Outbound) error
}

// WaitingSink is a Sink that can also wait for room in its queue. When the
// sink of a transport implements it, User.Emit waits (while the link is
// up, and up to emitWait without it) instead of losing the event: backpressure on the remote connection
// rather than a dropped message.
type WaitingSink interface {
	SendWait(ev Outbound, maxWait time.Duration, stop <-chan struct{}) error
}

// Authorizer is the access policy the admin configured.
type Authorizer interface {
	Allowed(user jid.JID) bool
	IsAdmin(user jid.JID) bool
}
