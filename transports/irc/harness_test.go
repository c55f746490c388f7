package irc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
	"switchboard/store/memstore"
	"switchboard/tests/testbed"
)

// TestMain fails the run if a test leaves goroutines of this module behind.
func TestMain(m *testing.M) { testbed.Main(m) }

// allowAll is an Authorizer that lets everyone in.
type allowAll struct{}

func (allowAll) Allowed(jid.JID) bool { return true }
func (allowAll) IsAdmin(jid.JID) bool { return false }

// recSink records what the gateway sends to XMPP.
type recSink struct{ ch chan bridge.Outbound }

func (s *recSink) Send(ev bridge.Outbound) error {
	if os.Getenv("IRC_TEST_EVENTS") != "" {
		fmt.Fprintf(os.Stderr, "EVENT %T %+v\n", ev, ev)
	}
	select {
	case s.ch <- ev:
		return nil
	default:
		return bridge.ErrQueueFull
	}
}

// harness is a real bridge.Gateway with the IRC transport and a recording
// sink in place of the component.
type harness struct {
	t       testing.TB
	tr      *Transport
	gw      *bridge.Gateway
	st      store.Store
	sink    *recSink
	mu      sync.Mutex
	pending []bridge.Outbound
}

// testLog is a logger that writes to stderr when IRC_TEST_LOG is set.
func testLog() *slog.Logger {
	var w io.Writer = io.Discard
	if os.Getenv("IRC_TEST_LOG") != "" {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testConfig is a valid config with one network "local" at addr.
func testConfig(addr string) Config {
	return Config{
		ComponentConfig: bridge.ComponentConfig{Domain: "irc.localhost", Secret: "secret"},
		Rate:            ptr(0.0),
		Networks:        []NetworkConfig{{Name: "local", Address: addr}},
	}
}

func newHarness(tb testing.TB, cfg Config) *harness {
	tb.Helper()
	return newHarnessStore(tb, cfg, memstore.New())
}

// newHarnessStore is newHarness on a given store.
func newHarnessStore(tb testing.TB, cfg Config, st store.Store) *harness {
	tb.Helper()
	log := testLog()
	tr, err := New(cfg, st, nil, log)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	h := &harness{t: tb, tr: tr, st: st, sink: &recSink{ch: make(chan bridge.Outbound, 100000)}}
	h.gw = bridge.New(st, allowAll{}, log, nil)
	h.gw.AddTransport(tr, h.sink)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.gw.Run(ctx)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	return h
}

// addr parses a JID of the gateway into an Address, as the component does.
func (h *harness) addr(s string) mapping.Address {
	h.t.Helper()
	a, err := h.tr.codec.Parse(jid.MustParse(s))
	if err != nil {
		h.t.Fatalf("parsing %s: %v", s, err)
	}
	return a
}

// dispatch hands an event to the gateway.
func (h *harness) dispatch(from jid.JID, ev bridge.Inbound) {
	h.t.Helper()
	if err := h.gw.Dispatch("irc", from, ev); err != nil {
		h.t.Fatalf("Dispatch: %v", err)
	}
}

// join joins a room as from and waits for RoomJoined.
func (h *harness) join(from jid.JID, occupant string) bridge.RoomJoined {
	h.t.Helper()
	a := h.addr(occupant)
	h.dispatch(from, bridge.JoinRoom{From: from, Room: a, MUC: true})
	return expectEv(h, func(ev bridge.RoomJoined) bool { return ev.To.Equal(from) && ev.Room == a.Room() }, 20*time.Second)
}

// next takes the oldest recorded event matching pred, waiting up to
// timeout.
func (h *harness) next(pred func(bridge.Outbound) bool, timeout time.Duration) (bridge.Outbound, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		for i, ev := range h.pending {
			if pred(ev) {
				h.pending = append(h.pending[:i], h.pending[i+1:]...)
				h.mu.Unlock()
				return ev, true
			}
		}
		h.mu.Unlock()
		select {
		case ev := <-h.sink.ch:
			h.mu.Lock()
			h.pending = append(h.pending, ev)
			h.mu.Unlock()
		case <-deadline.C:
			return nil, false
		}
	}
}

// expectEv waits for an event of type T matching pred.
func expectEv[T bridge.Outbound](h *harness, pred func(T) bool, timeout time.Duration) T {
	h.t.Helper()
	ev, ok := h.next(func(ev bridge.Outbound) bool {
		v, ok := ev.(T)
		return ok && (pred == nil || pred(v))
	}, timeout)
	if !ok {
		var zero T
		h.t.Fatalf("no %T arrived in %s; pending events:\n%s", zero, timeout, h.dump())
	}
	return ev.(T)
}

// expectNoEv fails if an event of type T matching pred arrives within d.
func expectNoEv[T bridge.Outbound](h *harness, pred func(T) bool, d time.Duration) {
	h.t.Helper()
	ev, ok := h.next(func(ev bridge.Outbound) bool {
		v, ok := ev.(T)
		return ok && (pred == nil || pred(v))
	}, d)
	if ok {
		h.t.Fatalf("unexpected event: %#v", ev)
	}
}

func (h *harness) dump() string {
	// Drain what arrived.
	for {
		select {
		case ev := <-h.sink.ch:
			h.pending = append(h.pending, ev)
			continue
		default:
		}
		break
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for i, ev := range h.pending {
		if i > 40 {
			fmt.Fprintf(&b, "  … %d more\n", len(h.pending)-i)
			break
		}
		fmt.Fprintf(&b, "  %T %+v\n", ev, ev)
	}
	return b.String()
}

const wait = 10 * time.Second

func isPrivmsg(from, target, text string) func(*ircmsg.Message) bool {
	return func(m *ircmsg.Message) bool {
		return m.Command == "PRIVMSG" && m.Nick() == from && len(m.Params) == 2 &&
			strings.EqualFold(m.Params[0], target) && (text == "" || m.Params[1] == text)
	}
}

// waitGone waits until nick is no longer on the server (ISON).
func waitGone(t *testing.T, c *testbed.IRCClient, nick string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		c.Send("ISON " + nick)
		m := c.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "303" }, wait)
		if strings.TrimSpace(m.Params[len(m.Params)-1]) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still on the server", nick)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
