package bridge

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/store"
)

// inboxSize bounds what one user may have waiting from XMPP. When it is
// full, Dispatch waits up to inboxWait for the user's goroutine to take
// one (a burst from a fast client is passed on whole, at the pace the
// goroutine works, as TCP pushes back on the XMPP server meanwhile), or up
// to linkBusyWait while the goroutine itself waits for the XMPP server; a
// user whose goroutine takes none in that time is congested, and the
// sender gets resource-constraint at once until the inbox is half empty
// again, so that one stuck user stalls the component's read loop at most
// once per episode, never per message.
const inboxSize = 256

// inboxWait bounds how long Dispatch waits for room in a full inbox, and
// linkBusyWait how long it goes on waiting while the user's goroutine is
// itself waiting for the XMPP server to take its stanzas (Emit on a full
// link queue): then the XMPP server is the bottleneck, and holding back
// what it sends is the backpressure it needs. linkBusyWait stays well
// under the link's keepalive timeout, which counts on the read loop.
const (
	inboxWait    = 500 * time.Millisecond
	linkBusyWait = 5 * time.Second
)

// networkInboxSize bounds what a session's own goroutines may have waiting;
// Post blocks when it is full, which pushes back on the network connection.
const networkInboxSize = 64

// The inbox carries Inbound values: the events themselves, and two
// wrappers for the other kinds of work. One interface value (16 bytes) per
// slot keeps the inbox small (every user has 256 slots), and the hot path
// (one message) needs no allocation.
type (
	// queryEvent is a query for the session.
	queryEvent struct{ q *Query }
	// fnEvent is work run on the user's goroutine (User.Do).
	fnEvent func(*User, Session)
)

func (queryEvent) inbound() {}
func (fnEvent) inbound()    {}

// User is one XMPP user's presence in one transport. Its goroutine owns the
// transport Session: every Session method runs there, so the session's state
// needs no locks (soju's per-user dispatcher).
type User struct {
	bare      jid.JID
	transport Transport
	gw        *Gateway
	sink      Sink
	log       *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	inbox   chan Inbound
	network chan any
	// room is signalled (without blocking) when the goroutine takes an
	// event from an inbox that was full, for a Dispatch waiting on it;
	// congested is set when such a wait ran out (see inboxSize).
	room      chan struct{}
	congested atomic.Bool
	emitting  atomic.Bool // the goroutine is in Emit
	done      chan struct{}
	stop      chan string // DisconnectUser: close the session with this reason

	// The fields below are owned by the user's goroutine.
	account   *store.Account
	session   Session
	resources map[string]jid.JID // available resources, by resource string
	started   time.Time
}

// JID is the user's bare JID.
func (u *User) JID() jid.JID { return u.bare }

// Transport is the transport this user state belongs to.
func (u *User) Transport() Transport { return u.transport }

// Context is cancelled when the user's goroutine stops.
func (u *User) Context() context.Context { return u.ctx }

// Log is the user's logger (carries user and transport attributes).
func (u *User) Log() *slog.Logger { return u.log }

// Gateway is the gateway the user belongs to.
func (u *User) Gateway() *Gateway { return u.gw }

// Account is the user's registration, or nil when the user never
// registered (allowed for transports that do not require it). Only the
// user's goroutine may use it.
func (u *User) Account() *store.Account { return u.account }

// SaveAccount writes the account back (after a settings change); it creates
// one when the user had none.
func (u *User) SaveAccount(a *store.Account) error {
	a.User = u.bare.String()
	a.Transport = u.transport.Name()
	if err := u.gw.store.PutAccount(u.ctx, a); err != nil {
		return err
	}
	u.account = a
	return nil
}

// emitWait bounds how long Emit waits for room in a full XMPP queue while
// the link is down; while it is up, Emit waits for the XMPP server.
const emitWait = 30 * time.Second

// Emit sends an event to the user's XMPP client. When the component's queue
// is full it waits for room (as long as the link is up; up to emitWait
// without it; until the user stops): the user's goroutine stops reading its
// network meanwhile, which pushes back on the remote server instead of
// losing the event. Only then does it return ErrQueueFull and count the loss.
func (u *User) Emit(ev Outbound) error {
	var err error
	if w, ok := u.sink.(WaitingSink); ok {
		u.emitting.Store(true)
		err = w.SendWait(ev, emitWait, u.ctx.Done())
		u.emitting.Store(false)
	} else {
		err = u.sink.Send(ev)
	}
	if err != nil {
		u.gw.metrics.dropped(u.transport.Name())
		u.log.Warn("an event for the user could not be queued for XMPP", "event", eventName(ev), "err", err)
	}
	return err
}

// Post hands a value to the user's goroutine, which passes it to the
// session's HandleNetwork. It may be called from any goroutine; it blocks
// while the network inbox is full and returns false once the user stopped.
func (u *User) Post(ev any) bool {
	select {
	case u.network <- ev:
		return true
	case <-u.ctx.Done():
		return false
	}
}

// PostOr is Post for a reader that must stay alive while it waits: when
// the user's goroutine has no room for ev (it is itself waiting, e.g. for
// room in a full XMPP queue), waiting is called every interval until
// there is. An IRC connection's reader uses it to keep the server from
// timing the connection out while it cannot read the server's PING.
func (u *User) PostOr(ev any, interval time.Duration, waiting func()) bool {
	select {
	case u.network <- ev:
		return true
	case <-u.ctx.Done():
		return false
	default:
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case u.network <- ev:
			return true
		case <-u.ctx.Done():
			return false
		case <-t.C:
			waiting()
		}
	}
}

// Do runs fn on the user's goroutine with the session. It returns false
// when the user stopped. Used by ad-hoc commands and by the gateway.
func (u *User) Do(fn func(*User, Session)) bool {
	select {
	case u.inbox <- fnEvent(fn):
		return true
	case <-u.ctx.Done():
		return false
	}
}

// Resources are the user's resources known to be available (from presence
// sent to the gateway). Only the user's goroutine may call it.
func (u *User) Resources() []jid.JID {
	out := make([]jid.JID, 0, len(u.resources))
	for _, r := range u.resources {
		out = append(out, r)
	}
	return out
}

// Online reports whether any resource of the user is available. Only the
// user's goroutine may call it.
func (u *User) Online() bool { return len(u.resources) > 0 }

// run is the user's goroutine.
func (u *User) run(wg *sync.WaitGroup) {
	defer wg.Done()
	defer close(u.done)
	defer u.cancel()
	defer u.gw.forget(u)
	u.session = u.transport.NewSession(u)
	for {
		select {
		case ev := <-u.inbox:
			if n := len(u.inbox); n >= inboxSize-1 {
				select {
				case u.room <- struct{}{}:
				default:
				}
			} else if n < inboxSize/2 && u.congested.Load() {
				u.congested.Store(false)
			}
			u.handle(ev)
		case ev := <-u.network:
			u.session.HandleNetwork(ev)
		case reason := <-u.stop:
			u.session.Close(reason)
			return
		case <-u.ctx.Done():
			u.session.Close("The gateway is shutting down.")
			return
		}
		if u.session.Idle() && u.gw.retire(u) {
			u.session.Close("")
			return
		}
	}
}

func (u *User) handle(ev Inbound) {
	switch ev := ev.(type) {
	case fnEvent:
		ev(u, u.session)
	case queryEvent:
		u.session.HandleQuery(*ev.q)
	case UserPresence:
		u.trackPresence(ev)
		u.session.HandleInbound(ev)
	default:
		u.session.HandleInbound(ev)
	}
}

// trackPresence keeps the set of available resources from presence the
// user sends to the gateway or its contacts.
func (u *User) trackPresence(p UserPresence) {
	switch p.Type {
	case Available:
		u.resources[p.From.Resourcepart()] = p.From
	case Unavailable:
		delete(u.resources, p.From.Resourcepart())
	}
}

func eventName(ev Outbound) string {
	switch ev.(type) {
	case Message:
		return "message"
	case RoomJoined:
		return "room-joined"
	case OccupantChanged:
		return "occupant"
	case RoomSubject:
		return "subject"
	case ContactPresence:
		return "presence"
	case Receipt:
		return "receipt"
	case DeliveryError:
		return "error"
	case IQResult:
		return "iq-result"
	}
	return "event"
}
