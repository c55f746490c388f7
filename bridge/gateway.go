// Package bridge is the core of the gateway: the Transport interface, the
// neutral event types, and the Gateway, which routes events between the
// component links and the per-user goroutines that own each user's
// transport state.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/store"
)

type userKey struct {
	bare      string
	transport string
}

type transportEntry struct {
	t    Transport
	sink Sink
}

// Gateway routes events between XMPP and the transports. It owns the user
// goroutines: it starts one when a user first needs it and stops it when
// its session goes idle or the gateway shuts down.
type Gateway struct {
	store   store.Accounts
	auth    Authorizer
	log     *slog.Logger
	metrics *Metrics
	started time.Time

	transports map[string]*transportEntry
	order      []string

	mu       sync.Mutex
	users    map[userKey]*User
	closing  bool
	userWG   sync.WaitGroup
	rootCtx  context.Context
	stopRoot context.CancelFunc

	// privileges granted by XMPP servers (XEP-0356), see privilege.go.
	privMu sync.Mutex
	privs  map[[2]string]map[string]string
}

// New returns a Gateway. metrics may be nil (a private registry is used).
func New(st store.Accounts, auth Authorizer, log *slog.Logger, metrics *Metrics) *Gateway {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Gateway{
		store:      st,
		auth:       auth,
		log:        log,
		metrics:    metrics,
		started:    time.Now(),
		transports: make(map[string]*transportEntry),
		users:      make(map[userKey]*User),
		rootCtx:    ctx,
		stopRoot:   cancel,
	}
}

// AddTransport registers a transport and the sink that delivers its
// outbound events (the component link of its domain). Call before Run.
func (g *Gateway) AddTransport(t Transport, sink Sink) {
	g.transports[t.Name()] = &transportEntry{t: t, sink: sink}
	g.order = append(g.order, t.Name())
}

// Transport returns a registered transport, or nil.
func (g *Gateway) Transport(name string) Transport {
	if e := g.transports[name]; e != nil {
		return e.t
	}
	return nil
}

// Transports lists the registered transports in registration order.
func (g *Gateway) Transports() []Transport {
	out := make([]Transport, 0, len(g.order))
	for _, n := range g.order {
		out = append(out, g.transports[n].t)
	}
	return out
}

// Metrics are the gateway's Prometheus collectors.
func (g *Gateway) Metrics() *Metrics { return g.metrics }

// Log is the gateway's logger.
func (g *Gateway) Log() *slog.Logger { return g.log }

// Allowed reports whether the access policy lets user use the gateway.
func (g *Gateway) Allowed(user jid.JID) bool { return g.auth.Allowed(user) }

// IsAdmin reports whether user is a gateway admin.
func (g *Gateway) IsAdmin(user jid.JID) bool { return g.auth.IsAdmin(user) }

// Run runs every transport's background work until ctx is done, then stops
// every user (their sessions close their connections) and returns.
func (g *Gateway) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(g.order))
	for _, name := range g.order {
		t := g.transports[name].t
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("transport %s: %w", t.Name(), err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	g.Shutdown()
	wg.Wait()
	return err
}

// Shutdown stops every user goroutine; each session closes its
// connections with a reason. It waits until they are gone.
func (g *Gateway) Shutdown() {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
	g.stopRoot()
	g.userWG.Wait()
}

// checkAccess refuses users outside the allow list.
func (g *Gateway) checkAccess(from jid.JID) error {
	if !g.auth.Allowed(from) {
		return Errorf(Forbidden, "The administrator of this gateway has not allowed %s to use it.", from.Bare())
	}
	return nil
}

// user returns the running user for (from, transport), starting one when
// create is true. A transport that requires registration refuses a user
// without an account with registration-required.
func (g *Gateway) user(transport string, from jid.JID, create bool) (*User, error) {
	te := g.transports[transport]
	if te == nil {
		return nil, Errorf(ServiceUnavailable, "The %s transport is not enabled on this gateway.", transport)
	}
	if err := g.checkAccess(from); err != nil {
		return nil, err
	}
	bare := from.Bare()
	key := userKey{bare: bare.String(), transport: transport}
	g.mu.Lock()
	u, closing := g.users[key], g.closing
	g.mu.Unlock()
	if u != nil || !create {
		return u, nil
	}
	if closing {
		return nil, Errorf(ServiceUnavailable, "The gateway is shutting down.")
	}

	acct, err := g.store.GetAccount(g.rootCtx, key.bare, transport)
	switch {
	case errors.Is(err, store.ErrNotFound):
		acct = nil
		if te.t.RegistrationRequired() {
			return nil, Errorf(RegistrationRequired, "Register with %s first (XEP-0077 in-band registration in your client's service discovery).", te.t.Codec().Domain())
		}
	case err != nil:
		g.log.Error("loading a user's account failed", "user", key.bare, "transport", transport, "err", err)
		return nil, Errorf(InternalServerError, "The gateway could not read your account; the administrator can find the reason in its log.")
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return nil, Errorf(ServiceUnavailable, "The gateway is shutting down.")
	}
	if u := g.users[key]; u != nil { // another caller started it meanwhile
		return u, nil
	}
	ctx, cancel := context.WithCancel(g.rootCtx)
	u = &User{
		bare:      bare,
		transport: te.t,
		gw:        g,
		sink:      te.sink,
		log:       g.log.With("user", key.bare, "transport", transport),
		ctx:       ctx,
		cancel:    cancel,
		inbox:     make(chan Inbound, inboxSize),
		room:      make(chan struct{}, 1),
		network:   make(chan any, networkInboxSize),
		done:      make(chan struct{}),
		stop:      make(chan string),
		account:   acct,
		resources: make(map[string]jid.JID),
		started:   time.Now(),
	}
	g.users[key] = u
	g.metrics.users(transport, 1)
	g.userWG.Add(1)
	go u.run(&g.userWG)
	return u, nil
}

// retire removes u from the user table if nothing waits in its inbox; it
// is called by u's own goroutine when its session went idle. It returns
// false when u must keep running.
func (g *Gateway) retire(u *User) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(u.inbox) > 0 || len(u.network) > 0 {
		return false
	}
	g.forgetLocked(u)
	return true
}

// forget removes u from the user table when its goroutine ends.
func (g *Gateway) forget(u *User) {
	g.mu.Lock()
	g.forgetLocked(u)
	g.mu.Unlock()
}

func (g *Gateway) forgetLocked(u *User) {
	key := userKey{bare: u.bare.String(), transport: u.transport.Name()}
	if g.users[key] == u {
		delete(g.users, key)
		g.metrics.users(u.transport.Name(), -1)
	}
}

// Dispatch hands an event from an XMPP user to the user's goroutine,
// starting it when needed. A full inbox makes it wait for room, at most
// inboxWait (linkBusyWait while the user waits for the XMPP server) once
// per congestion episode (see inboxSize); a refusal
// (access, registration, a congested user) comes back as a *StanzaError
// for the component to answer.
func (g *Gateway) Dispatch(transport string, from jid.JID, ev Inbound) error {
	if p, ok := ev.(UserPresence); ok && p.Type == Unavailable {
		// Going offline needs no session: only tell one that runs.
		u, err := g.user(transport, from, false)
		if u == nil || err != nil {
			return err
		}
	}
	return g.deliver(transport, from, ev)
}

// Query hands a user IQ for a remote address to the user's goroutine; the
// session answers with an IQResult event.
func (g *Gateway) Query(transport string, q Query) error {
	return g.deliver(transport, q.From, queryEvent{&q})
}

// errSendingTooFast answers a sender whose user goroutine is congested.
var errSendingTooFast = Errorf(ResourceConstraint, "You are sending faster than the gateway can pass on; wait a moment and try again.")

// offer puts ev in the inbox of the user's goroutine (starting it when
// needed) if there is room, and reports whether it did; with a full inbox
// it returns the user to wait on. The enqueue happens under g.mu, as does
// retire's check of the inbox, so an event can never land in the inbox of
// a user goroutine that already decided to stop.
func (g *Gateway) offer(transport string, from jid.JID, ev Inbound) (u *User, queued bool, err error) {
	for range 3 {
		u, err := g.user(transport, from, true)
		if err != nil {
			return nil, false, err
		}
		g.mu.Lock()
		if g.closing {
			g.mu.Unlock()
			return nil, false, Errorf(ServiceUnavailable, "The gateway is shutting down.")
		}
		if g.users[userKey{bare: u.bare.String(), transport: transport}] != u {
			g.mu.Unlock()
			continue // retired meanwhile: start a fresh one
		}
		select {
		case u.inbox <- ev:
			g.mu.Unlock()
			return u, true, nil
		default:
		}
		g.mu.Unlock()
		return u, false, nil
	}
	return nil, false, errCouldNotStart
}

// errCouldNotStart answers when a user's goroutine kept stopping.
var errCouldNotStart = Errorf(ServiceUnavailable, "The gateway could not start your session; try again.")

// deliver enqueues ev for the user. Waiting for room happens outside the
// lock (the goroutine may need it to go on).
func (g *Gateway) deliver(transport string, from jid.JID, ev Inbound) error {
	var deadline *time.Timer
	var waited time.Duration
	for restarts := 0; restarts < 3; {
		u, queued, err := g.offer(transport, from, ev)
		if err != nil || queued {
			return err
		}
		if u.congested.Load() {
			return errSendingTooFast
		}
		if deadline == nil {
			deadline = time.NewTimer(inboxWait)
			defer deadline.Stop()
		}
		select {
		case <-u.room: // a slot freed: try again
		case <-u.done:
			restarts++
		case <-deadline.C:
			if waited += inboxWait; waited < linkBusyWait && u.emitting.Load() {
				deadline.Reset(inboxWait) // the XMPP server is the bottleneck: hold back
				continue
			}
			u.congested.Store(true)
			u.log.Warn("the user's work is not moving on; refusing their messages until it does", "waited", waited)
			return errSendingTooFast
		}
	}
	return errCouldNotStart
}

// ---------------------------------------------------------------- registration

// RegistrationForm returns the XEP-0077 form for a user and whether they
// are registered.
func (g *Gateway) RegistrationForm(ctx context.Context, transport string, from jid.JID) (*Form, bool, error) {
	te := g.transports[transport]
	if te == nil {
		return nil, false, Errorf(ServiceUnavailable, "The %s transport is not enabled on this gateway.", transport)
	}
	if err := g.checkAccess(from); err != nil {
		return nil, false, err
	}
	acct, err := g.store.GetAccount(ctx, from.Bare().String(), transport)
	if errors.Is(err, store.ErrNotFound) {
		return te.t.RegistrationForm(nil), false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading the account of %s: %w", from.Bare(), err)
	}
	return te.t.RegistrationForm(acct), true, nil
}

// Register applies a submitted registration form and stores the account.
// A running user session sees the new account at once.
func (g *Gateway) Register(ctx context.Context, transport string, from jid.JID, values FormValues) error {
	te := g.transports[transport]
	if te == nil {
		return Errorf(ServiceUnavailable, "The %s transport is not enabled on this gateway.", transport)
	}
	if err := g.checkAccess(from); err != nil {
		return err
	}
	bare := from.Bare().String()
	acct, err := g.store.GetAccount(ctx, bare, transport)
	if errors.Is(err, store.ErrNotFound) {
		acct = &store.Account{User: bare, Transport: transport, CreatedAt: time.Now()}
	} else if err != nil {
		return fmt.Errorf("reading the account of %s: %w", bare, err)
	}
	if acct.Fields == nil {
		acct.Fields = map[string]string{}
	}
	if acct.Secrets == nil {
		acct.Secrets = map[string]string{}
	}
	if err := te.t.ApplyRegistration(acct, values); err != nil {
		return err
	}
	acct.UpdatedAt = time.Now()
	if err := g.store.PutAccount(ctx, acct); err != nil {
		return fmt.Errorf("saving the account of %s: %w", bare, err)
	}
	g.log.Info("user registered", "user", bare, "transport", transport)
	if u, _ := g.user(transport, from, false); u != nil {
		saved := *acct
		u.Do(func(u *User, _ Session) { u.account = &saved })
	}
	return nil
}

// Unregister stops the user's session and deletes every row the gateway
// keeps for them in that transport, secrets included.
func (g *Gateway) Unregister(ctx context.Context, transport string, from jid.JID) error {
	if g.transports[transport] == nil {
		return Errorf(ServiceUnavailable, "The %s transport is not enabled on this gateway.", transport)
	}
	bare := from.Bare().String()
	g.DisconnectUser(transport, bare, "You unregistered from the gateway.")
	if err := g.store.DeleteAccount(ctx, bare, transport); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("deleting the account of %s: %w", bare, err)
	}
	if u, ok := g.transports[transport].t.(Unregisterer); ok {
		u.Unregistered(bare)
	}
	g.log.Info("user unregistered", "user", bare, "transport", transport)
	return nil
}

// ---------------------------------------------------------------- admin

// UserInfo describes one active user for the admin "users" command.
type UserInfo struct {
	JID       string
	Transport string
	Since     time.Time
}

// Users lists the active users of a transport ("" for all), sorted.
func (g *Gateway) Users(transport string) []UserInfo {
	g.mu.Lock()
	out := make([]UserInfo, 0, len(g.users))
	for k, u := range g.users {
		if transport == "" || k.transport == transport {
			out = append(out, UserInfo{JID: k.bare, Transport: k.transport, Since: u.started})
		}
	}
	g.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].JID != out[j].JID {
			return out[i].JID < out[j].JID
		}
		return out[i].Transport < out[j].Transport
	})
	return out
}

// DisconnectUser stops a user's goroutine in a transport (its session
// closes its connections with reason) and waits for it. It reports whether
// the user was active.
func (g *Gateway) DisconnectUser(transport, bare, reason string) bool {
	key := userKey{bare: bare, transport: transport}
	g.mu.Lock()
	u := g.users[key]
	if u != nil {
		g.forgetLocked(u)
	}
	g.mu.Unlock()
	if u == nil {
		return false
	}
	select {
	case u.stop <- reason:
	case <-u.done:
	}
	<-u.done
	return true
}

// Stats are counters for the admin "stats" command.
type Stats struct {
	Uptime      time.Duration
	ActiveUsers map[string]int // by transport
}

// Stats returns the gateway's current counters.
func (g *Gateway) Stats() Stats {
	s := Stats{Uptime: time.Since(g.started), ActiveUsers: map[string]int{}}
	g.mu.Lock()
	for k := range g.users {
		s.ActiveUsers[k.transport]++
	}
	g.mu.Unlock()
	return s
}

// RegisteredUsers lists the bare JIDs registered with a transport (for the
// XEP-0100 presence the component sends when its link comes up).
func (g *Gateway) RegisteredUsers(ctx context.Context, transport string) ([]string, error) {
	accts, err := g.store.ListAccounts(ctx, transport)
	if err != nil {
		return nil, fmt.Errorf("listing the accounts of %s: %w", transport, err)
	}
	out := make([]string, len(accts))
	for i, a := range accts {
		out[i] = a.User
	}
	return out, nil
}
