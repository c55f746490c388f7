package bridge_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
	"switchboard/store/memstore"
)

// fakeCodec maps "name@test.example" to a contact.
type fakeCodec struct{}

func (fakeCodec) Domain() string { return "test.example" }
func (fakeCodec) Parse(j jid.JID) (mapping.Address, error) {
	if j.Localpart() == "" {
		return mapping.Address{Kind: mapping.KindGateway, Domain: "test.example"}, nil
	}
	return mapping.Address{Kind: mapping.KindContact, Domain: "test.example", Name: j.Localpart()}, nil
}
func (fakeCodec) JID(a mapping.Address) (jid.JID, error) { return jid.New(a.Name, a.Domain, "") }
func (fakeCodec) Translate(s string) (mapping.Address, error) {
	return mapping.Address{Kind: mapping.KindContact, Domain: "test.example", Name: s}, nil
}
func (fakeCodec) Prompt() (string, string) { return "name", "a name" }

// fakeTransport records what its sessions see. A session stays busy
// (not idle) while it has "open" conversations: a message whose body is
// "open" opens one, "close" closes one.
type fakeTransport struct {
	regRequired bool
	mu          sync.Mutex
	sessions    int
	closed      []string
	handled     atomic.Int64
	block       chan struct{} // when set, HandleInbound waits on it
	delay       time.Duration // when set, HandleInbound takes this long
}

func (t *fakeTransport) Name() string                       { return "fake" }
func (t *fakeTransport) Codec() mapping.Codec               { return fakeCodec{} }
func (t *fakeTransport) Identity() (string, string, string) { return "gateway", "fake", "Fake" }
func (t *fakeTransport) RegistrationRequired() bool         { return t.regRequired }
func (t *fakeTransport) Run(ctx context.Context) error      { <-ctx.Done(); return nil }
func (t *fakeTransport) Commands() []bridge.Command         { return nil }
func (t *fakeTransport) RegistrationForm(*store.Account) *bridge.Form {
	return &bridge.Form{Type: "form", Fields: []bridge.FormField{{Var: "nick", Type: bridge.FieldTextSingle}}}
}
func (t *fakeTransport) ApplyRegistration(a *store.Account, v bridge.FormValues) error {
	if v.Get("nick") == "" {
		return bridge.Errorf(bridge.NotAcceptable, "A nick is required.")
	}
	a.Fields["nick"] = v.Get("nick")
	a.Secrets["password"] = v.Get("password")
	return nil
}
func (t *fakeTransport) NewSession(u *bridge.User) bridge.Session {
	t.mu.Lock()
	t.sessions++
	t.mu.Unlock()
	return &fakeSession{t: t, u: u}
}

type fakeSession struct {
	t    *fakeTransport
	u    *bridge.User
	open int
}

func (s *fakeSession) HandleInbound(ev bridge.Inbound) {
	if s.t.block != nil {
		<-s.t.block
	}
	if s.t.delay > 0 {
		time.Sleep(s.t.delay)
	}
	s.t.handled.Add(1)
	m, ok := ev.(bridge.SendMessage)
	if !ok {
		return
	}
	switch m.Body {
	case "open":
		s.open++
	case "close":
		s.open--
	}
	_ = s.u.Emit(bridge.Receipt{To: m.From, From: m.To, ID: m.ID})
}
func (s *fakeSession) HandleQuery(q bridge.Query) {
	_ = s.u.Emit(bridge.IQResult{To: q.From, From: q.To, ID: q.ID})
}
func (s *fakeSession) HandleNetwork(any) {}
func (s *fakeSession) Status() []string  { return []string{"fake status line"} }
func (s *fakeSession) Idle() bool        { return s.open == 0 }
func (s *fakeSession) Close(reason string) {
	s.t.mu.Lock()
	s.t.closed = append(s.t.closed, reason)
	s.t.mu.Unlock()
}

type chanSink struct{ ch chan bridge.Outbound }

func (s chanSink) Send(ev bridge.Outbound) error {
	select {
	case s.ch <- ev:
		return nil
	default:
		return bridge.ErrQueueFull
	}
}

type allowList struct{}

func (allowList) Allowed(u jid.JID) bool { return u.Domainpart() == "example.org" }
func (allowList) IsAdmin(u jid.JID) bool { return u.Localpart() == "admin" }

func newGateway(t *testing.T, tr *fakeTransport) (*bridge.Gateway, chan bridge.Outbound, *memstore.Store) {
	t.Helper()
	sink := chanSink{ch: make(chan bridge.Outbound, 10000)}
	gw, st := newGatewaySink(t, tr, sink)
	return gw, sink.ch, st
}

// newGatewaySink runs a gateway whose transport tr delivers to sink.
func newGatewaySink(t *testing.T, tr *fakeTransport, sink bridge.Sink) (*bridge.Gateway, *memstore.Store) {
	t.Helper()
	st := memstore.New()
	gw := bridge.New(st, allowList{}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	gw.AddTransport(tr, sink)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = gw.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return gw, st
}

// gatedSink is an XMPP link whose queue stays full until open is closed:
// SendWait waits for it.
type gatedSink struct{ open chan struct{} }

func (s gatedSink) Send(bridge.Outbound) error {
	select {
	case <-s.open:
		return nil
	default:
		return bridge.ErrQueueFull
	}
}

func (s gatedSink) SendWait(_ bridge.Outbound, _ time.Duration, stop <-chan struct{}) error {
	select {
	case <-s.open:
		return nil
	case <-stop:
		return bridge.ErrQueueFull
	}
}

func msg(from, body, id string) bridge.SendMessage {
	return bridge.SendMessage{
		From: jid.MustParse(from),
		To:   mapping.Address{Kind: mapping.KindContact, Domain: "test.example", Name: "bob"},
		Type: bridge.Chat, ID: id, Body: body,
	}
}

func expect(t *testing.T, ch chan bridge.Outbound) bridge.Outbound {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no outbound event within 5s")
	}
	return nil
}

func condition(err error) string {
	var se *bridge.StanzaError
	if errors.As(err, &se) {
		return se.Condition
	}
	return ""
}

func TestDispatchReachesSessionAndBack(t *testing.T) {
	tr := &fakeTransport{}
	gw, out, _ := newGateway(t, tr)
	if err := gw.Dispatch("fake", jid.MustParse("alice@example.org/phone"), msg("alice@example.org/phone", "hi", "m1")); err != nil {
		t.Fatal(err)
	}
	r, ok := expect(t, out).(bridge.Receipt)
	if !ok || r.ID != "m1" || r.To.String() != "alice@example.org/phone" {
		t.Fatalf("got %#v, want a receipt for m1 to alice's phone", r)
	}
}

func TestAccessAndUnknownTransport(t *testing.T) {
	gw, _, _ := newGateway(t, &fakeTransport{})
	err := gw.Dispatch("fake", jid.MustParse("eve@evil.example/x"), msg("eve@evil.example/x", "hi", "m"))
	if condition(err) != bridge.Forbidden {
		t.Fatalf("outsider: got %v, want forbidden", err)
	}
	err = gw.Dispatch("nope", jid.MustParse("alice@example.org/x"), msg("alice@example.org/x", "hi", "m"))
	if condition(err) != bridge.ServiceUnavailable {
		t.Fatalf("unknown transport: got %v, want service-unavailable", err)
	}
}

func TestRegistrationRequiredThenRegisterAndUnregister(t *testing.T) {
	tr := &fakeTransport{regRequired: true}
	gw, out, st := newGateway(t, tr)
	alice := jid.MustParse("alice@example.org/pc")
	if err := gw.Dispatch("fake", alice, msg(alice.String(), "hi", "1")); condition(err) != bridge.RegistrationRequired {
		t.Fatalf("got %v, want registration-required", err)
	}
	ctx := context.Background()
	if err := gw.Register(ctx, "fake", alice, bridge.FormValues{}); condition(err) != bridge.NotAcceptable {
		t.Fatalf("empty form: got %v, want not-acceptable", err)
	}
	if _, err := st.GetAccount(ctx, "alice@example.org", "fake"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused registration saved an account: %v", err)
	}
	if err := gw.Register(ctx, "fake", alice, bridge.FormValues{"nick": {"al"}, "password": {"pw"}}); err != nil {
		t.Fatal(err)
	}
	form, registered, err := gw.RegistrationForm(ctx, "fake", alice)
	if err != nil || !registered || form == nil {
		t.Fatalf("RegistrationForm after register: %v %v %v", form, registered, err)
	}
	if err := gw.Dispatch("fake", alice, msg(alice.String(), "open", "2")); err != nil {
		t.Fatal(err)
	}
	expect(t, out)
	if err := gw.Unregister(ctx, "fake", alice); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetAccount(ctx, "alice@example.org", "fake"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("account survived unregister: %v", err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.closed) != 1 || tr.closed[0] != "You unregistered from the gateway." {
		t.Fatalf("session close reasons %q", tr.closed)
	}
}

// TestFullInboxAnswersResourceConstraint: a user whose goroutine is stuck
// costs the dispatcher one wait of inboxWait, then its senders are refused
// at once (the read loop is not stalled per message); once the goroutine
// moves again and the inbox drains, events are accepted again.
func TestFullInboxAnswersResourceConstraint(t *testing.T) {
	tr := &fakeTransport{block: make(chan struct{})}
	gw, _, _ := newGateway(t, tr)
	alice := jid.MustParse("alice@example.org/pc")
	var refused, accepted int
	var firstRefusal time.Duration
	start := time.Now()
	for range 1000 {
		if err := gw.Dispatch("fake", alice, msg(alice.String(), "x", "")); err != nil {
			if condition(err) != bridge.ResourceConstraint {
				t.Fatalf("got %v, want resource-constraint", err)
			}
			if refused == 0 {
				firstRefusal = time.Since(start)
			}
			refused++
			continue
		}
		accepted++
	}
	total := time.Since(start)
	if refused == 0 {
		t.Fatal("a blocked user accepted 1000 events: the inbox is not bounded")
	}
	if firstRefusal < 400*time.Millisecond {
		t.Errorf("the first refusal came after %s: Dispatch did not wait for room", firstRefusal)
	}
	if total > firstRefusal+time.Second {
		t.Errorf("1000 dispatches took %s: every refusal waited, not only the first", total)
	}
	close(tr.block)
	deadline := time.Now().Add(5 * time.Second)
	for tr.handled.Load() != int64(accepted) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := tr.handled.Load(); got != int64(accepted) {
		t.Fatalf("handled %d of %d accepted events", got, accepted)
	}
	if err := gw.Dispatch("fake", alice, msg(alice.String(), "x", "")); err != nil {
		t.Fatalf("after the inbox drained: %v", err)
	}
}

// TestBurstWaitsForRoom: a burst far larger than the inbox, sent to a user
// whose goroutine is slower than the sender but moving, is accepted whole
// and handled whole.
func TestBurstWaitsForRoom(t *testing.T) {
	tr := &fakeTransport{delay: 20 * time.Microsecond}
	gw, _, _ := newGateway(t, tr)
	dispatchAll(t, gw, tr, 3000)
}

// dispatchAll sends n events from one user, fails on any refusal, and
// waits until all n are handled. It returns how long the dispatching took.
func dispatchAll(t *testing.T, gw *bridge.Gateway, tr *fakeTransport, n int64) time.Duration {
	t.Helper()
	alice := jid.MustParse("alice@example.org/pc")
	start := time.Now()
	for i := range n {
		if err := gw.Dispatch("fake", alice, msg(alice.String(), "x", "")); err != nil {
			t.Fatalf("event %d refused after %s: %v", i, time.Since(start).Round(time.Millisecond), err)
		}
	}
	took := time.Since(start)
	deadline := time.Now().Add(10 * time.Second)
	for tr.handled.Load() != n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := tr.handled.Load(); got != n {
		t.Fatalf("handled %d of %d", got, n)
	}
	return took
}

// TestInboxWaitsWhileTheLinkIsBusy: while the user's goroutine waits for
// the XMPP server to take its stanzas (a full link queue), a full inbox
// holds the sender back for longer than inboxWait instead of refusing: the
// XMPP server is the bottleneck, and 1.5 s of it loses nothing.
func TestInboxWaitsWhileTheLinkIsBusy(t *testing.T) {
	tr := &fakeTransport{}
	sink := gatedSink{open: make(chan struct{})}
	gw, _ := newGatewaySink(t, tr, sink)
	opened := time.AfterFunc(1500*time.Millisecond, func() { close(sink.open) })
	defer opened.Stop()
	if took := dispatchAll(t, gw, tr, 600); took < time.Second {
		t.Errorf("600 events passed in %s while the link was full: Dispatch did not wait", took)
	}
}

// TestNoEventLostWhileSessionsRetire sends many events from many goroutines
// while sessions go idle after each one: every accepted event must be
// handled exactly once.
func TestNoEventLostWhileSessionsRetire(t *testing.T) {
	tr := &fakeTransport{}
	gw, _, _ := newGateway(t, tr)
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			alice := jid.MustParse("alice@example.org/pc")
			for i := 0; i < 500; i++ {
				if gw.Dispatch("fake", alice, msg(alice.String(), "x", "")) == nil {
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for tr.handled.Load() != accepted.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if tr.handled.Load() != accepted.Load() {
		t.Fatalf("accepted %d events, handled %d", accepted.Load(), tr.handled.Load())
	}
	if accepted.Load() == 0 {
		t.Fatal("no event accepted")
	}
}

func TestCommands(t *testing.T) {
	tr := &fakeTransport{}
	gw, out, _ := newGateway(t, tr)
	alice := jid.MustParse("alice@example.org/pc")
	admin := jid.MustParse("admin@example.org/pc")
	gwAddr := mapping.Address{Kind: mapping.KindGateway, Domain: "test.example"}

	nodes := func(j jid.JID) map[string]bool {
		m := map[string]bool{}
		for _, c := range gw.Commands("fake", j, gwAddr) {
			m[c.Node] = true
		}
		return m
	}
	if n := nodes(alice); !n["status"] || !n["unregister"] || n["users"] || n["stats"] || n["disconnect-user"] {
		t.Fatalf("user sees %v", n)
	}
	if n := nodes(admin); !n["users"] || !n["stats"] || !n["disconnect-user"] {
		t.Fatalf("admin sees %v", n)
	}
	if _, err := gw.LookupCommand("fake", alice, gwAddr, "users"); condition(err) != bridge.Forbidden {
		t.Fatalf("non-admin users: %v, want forbidden", err)
	}
	if _, err := gw.LookupCommand("fake", alice, gwAddr, "nope"); condition(err) != bridge.ItemNotFound {
		t.Fatalf("unknown node: %v, want item-not-found", err)
	}

	run := func(from jid.JID, node string, req *bridge.CommandRequest) *bridge.CommandResponse {
		t.Helper()
		cmd, err := gw.LookupCommand("fake", from, gwAddr, node)
		if err != nil {
			t.Fatal(err)
		}
		req.From, req.To = from, gwAddr
		got := make(chan *bridge.CommandResponse, 1)
		gw.ExecuteCommand(context.Background(), "fake", cmd, req, func(r *bridge.CommandResponse, err error) {
			if err != nil {
				t.Error(err)
			}
			got <- r
		})
		select {
		case r := <-got:
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("command did not answer")
		}
		return nil
	}

	// Keep alice's session busy so that it is listed.
	if err := gw.Dispatch("fake", alice, msg(alice.String(), "open", "1")); err != nil {
		t.Fatal(err)
	}
	expect(t, out)
	st := run(alice, "status", &bridge.CommandRequest{})
	if len(st.Notes) != 1 || !contains(st.Notes[0].Text, "fake status line") {
		t.Fatalf("status notes %#v", st.Notes)
	}
	users := run(admin, "users", &bridge.CommandRequest{})
	if users.Result == nil || len(users.Result.Items) != 1 || users.Result.Items[0][0].Values[0] != "alice@example.org" {
		t.Fatalf("users result %#v", users.Result)
	}
	step := run(admin, "disconnect-user", &bridge.CommandRequest{})
	if step.Form == nil {
		t.Fatal("disconnect-user did not ask for a JID")
	}
	done := run(admin, "disconnect-user", &bridge.CommandRequest{Step: 1, Values: bridge.FormValues{"jid": {"alice@example.org"}, "reason": {"bye"}}})
	if len(done.Notes) != 1 || done.Notes[0].Type != "info" {
		t.Fatalf("disconnect notes %#v", done.Notes)
	}
	if len(gw.Users("fake")) != 0 {
		t.Fatal("alice still listed after disconnect-user")
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.closed) == 0 || tr.closed[len(tr.closed)-1] != "bye" {
		t.Fatalf("close reasons %q", tr.closed)
	}
}

func TestShutdownClosesSessionsWithReason(t *testing.T) {
	tr := &fakeTransport{}
	st := memstore.New()
	gw := bridge.New(st, allowList{}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	gw.AddTransport(tr, chanSink{ch: make(chan bridge.Outbound, 10)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- gw.Run(ctx) }()
	alice := jid.MustParse("alice@example.org/pc")
	if err := gw.Dispatch("fake", alice, msg(alice.String(), "open", "1")); err != nil {
		t.Fatal(err)
	}
	for tr.handled.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.closed) != 1 || tr.closed[0] != "The gateway is shutting down." {
		t.Fatalf("close reasons %q", tr.closed)
	}
	if err := gw.Dispatch("fake", alice, msg(alice.String(), "x", "2")); condition(err) != bridge.ServiceUnavailable {
		t.Fatalf("dispatch after shutdown: %v", err)
	}
}

func contains(s, sub string) bool {
	return strings.Contains(s, sub)
}
