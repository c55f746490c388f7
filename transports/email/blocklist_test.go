package email

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
)

// blockSink is the component link as the block list code sees it: it
// counts the requests and answers with list or err after delay.
type blockSink struct {
	mu    sync.Mutex
	list  []jid.JID
	err   error
	delay time.Duration
	calls atomic.Int32
}

func (s *blockSink) Send(bridge.Outbound) error { return nil }

func (s *blockSink) BlockList(ctx context.Context, user jid.JID) ([]jid.JID, error) {
	s.calls.Add(1)
	s.mu.Lock()
	list, err, delay := s.list, s.err, s.delay
	s.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return list, err
}

func (s *blockSink) set(err error, items ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err, s.list = err, nil
	for _, i := range items {
		s.list = append(s.list, jid.MustParse(i))
	}
}

type allowAll struct{}

func (allowAll) Allowed(jid.JID) bool { return true }
func (allowAll) IsAdmin(jid.JID) bool { return false }

// warnCounter counts Warn records.
type warnCounter struct {
	slog.Handler
	n *atomic.Int32
}

func (w warnCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		w.n.Add(1)
	}
	return nil
}
func (w warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w warnCounter) Enabled(context.Context, slog.Level) bool {
	return true
}

type blockHarness struct {
	t     *Transport
	gw    *bridge.Gateway
	sink  *blockSink
	now   time.Time
	warns *atomic.Int32
}

func newBlockHarness(t testing.TB) *blockHarness {
	h := &blockHarness{sink: &blockSink{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), warns: new(atomic.Int32)}
	log := slog.New(warnCounter{Handler: slog.DiscardHandler, n: h.warns})
	cfg := Config{ComponentConfig: bridge.ComponentConfig{Domain: "mail.localhost"}}
	tr, err := New(cfg, nil, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	tr.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return h.now }
	h.gw = bridge.New(nil, allowAll{}, log, nil)
	h.gw.AddTransport(tr, h.sink)
	tr.gw = h.gw
	h.t = tr
	return h
}

func (h *blockHarness) grant(typ string) {
	h.gw.SetPrivilege("email", "localhost", map[string]string{"message": "outgoing", bridge.PrivilegeIQ(bridge.NSBlocking): typ})
}

const alice = "alice@localhost"

// TestXMPPBlockListRules: the items that block mail (the contact's bare
// JID, matched case-insensitively through the codec; the gateway's bare
// domain for all mail), those that do not (other domains, full JIDs), and
// no request at all without the permission.
func TestXMPPBlockListRules(t *testing.T) {
	h := newBlockHarness(t)
	ctx := context.Background()
	field := func(a string) bool { return a == "fieldblocked@example.com" }

	// No permission: no request, only the field.
	h.sink.set(nil, `bob\40example.com@mail.localhost`)
	if l := h.t.xmppBlockList(ctx, alice, false); l != nil {
		t.Fatalf("a list without the permission: %+v", l)
	}
	if _, rule := h.t.refusedBy(ctx, alice, field, "bob@example.com"); rule != "" {
		t.Fatalf("bob refused without the permission (%s)", rule)
	}
	if _, rule := h.t.refusedBy(ctx, alice, field, "fieldblocked@example.com"); rule != "the blocked field" {
		t.Fatalf("the field: rule %q", rule)
	}
	h.grant("set")
	h.t.xmppBlockList(ctx, alice, false)
	if n := h.sink.calls.Load(); n != 0 {
		t.Fatalf("%d block list requests without get permission, want none", n)
	}

	h.grant("get")
	h.sink.set(nil, `bob\40example.com@mail.localhost`, `carol\40example.com@mail.localhost/phone`,
		`dave\40example.com@other.gateway`, `eve@example.com`, `list\40lists.example.org@mail.localhost`,
		`frank%example.org@mail.localhost`)
	for _, c := range []struct {
		addrs []string
		want  bool
	}{
		{[]string{"bob@example.com"}, true},
		{[]string{"Bob@EXAMPLE.com"}, true},
		{[]string{"carol@example.com"}, false}, // a full JID blocks that resource only
		{[]string{"dave@example.com"}, false},  // another gateway's JID
		{[]string{"eve@example.com"}, false},   // a plain JID is not a mail address
		{[]string{"author@example.net", "list@lists.example.org"}, true},
		{[]string{"frank@example.org"}, true}, // the % form of the JID is the same mailbox
		{[]string{"", "nobody@example.com"}, false},
		{[]string{"not an address"}, false},
	} {
		a, rule := h.t.refusedBy(ctx, alice, field, c.addrs...)
		if (rule != "") != c.want {
			t.Errorf("refusedBy(%q) = %q, %q; want blocked=%v", c.addrs, a, rule, c.want)
		}
	}
	if n := h.sink.calls.Load(); n != 1 {
		t.Errorf("%d requests for one list within the cache time, want 1", n)
	}

	// The bare gateway domain blocks all mail, bounces included.
	h.now = h.now.Add(DefaultBlockListCache)
	h.sink.set(nil, "mail.localhost")
	if _, rule := h.t.refusedBy(ctx, alice, field, ""); !strings.Contains(rule, "whole gateway") {
		t.Fatalf("a bounce with the domain blocked: rule %q", rule)
	}
	if _, rule := h.t.refusedBy(ctx, "bob@localhost", field, "x@example.com"); !strings.Contains(rule, "whole gateway") {
		t.Fatalf("another user of the same server: rule %q", rule)
	}
	// A domain item with a resource is a full JID: no mail from it.
	h.now = h.now.Add(DefaultBlockListCache)
	h.sink.set(nil, "mail.localhost/x")
	if _, rule := h.t.refusedBy(ctx, alice, field, "x@example.com"); rule != "" {
		t.Fatalf("mail.localhost/x blocks mail (%s)", rule)
	}
}

// TestXMPPBlockListCache: a list is read once per block_list_cache,
// concurrent readers share one request, the status command reads a fresh
// one, and a failure lets mail through, warned about once per condition.
func TestXMPPBlockListCache(t *testing.T) {
	h := newBlockHarness(t)
	ctx := context.Background()
	h.grant("get")
	h.sink.set(nil, `bob\40example.com@mail.localhost`)
	h.sink.delay = 100 * time.Millisecond
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l := h.t.xmppBlockList(ctx, alice, false); !l.blocks("bob@example.com") {
				t.Error("a concurrent reader did not get the list")
			}
		}()
	}
	wg.Wait()
	if n := h.sink.calls.Load(); n != 1 {
		t.Fatalf("%d requests for 10 concurrent readers, want 1", n)
	}
	h.sink.delay = 0

	// Unblocked on the server: still blocked until the cache time ends.
	h.sink.set(nil)
	h.now = h.now.Add(DefaultBlockListCache - time.Millisecond)
	if !h.t.xmppBlockList(ctx, alice, false).blocks("bob@example.com") {
		t.Fatal("the cached list was read again before block_list_cache")
	}
	h.now = h.now.Add(time.Millisecond)
	if h.t.xmppBlockList(ctx, alice, false).blocks("bob@example.com") {
		t.Fatal("the list was not read again after block_list_cache")
	}
	if n := h.sink.calls.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	// The status command reads a fresh list, and shows it.
	h.sink.set(nil, `zed\40example.com@mail.localhost`, `bob\40example.com@mail.localhost`)
	st := strings.Join(h.t.blockStatus(ctx, alice, []string{"spam@example.com"}), "\n")
	for _, want := range []string{"spam@example.com", "bob@example.com, zed@example.com", "10s"} {
		if !strings.Contains(st, want) {
			t.Errorf("status %q lacks %q", st, want)
		}
	}
	if !h.t.xmppBlockList(ctx, alice, false).blocks("zed@example.com") {
		t.Error("the list the status command read was not cached")
	}

	// Failures: nothing blocked by the list, one warning per condition.
	h.sink.set(fmt.Errorf("component mail.localhost: %w", bridge.ErrLinkDown))
	field := func(string) bool { return false }
	for i := range 3 {
		h.now = h.now.Add(DefaultBlockListCache)
		if _, rule := h.t.refusedBy(ctx, alice, field, "bob@example.com"); rule != "" {
			t.Fatalf("mail refused while the list cannot be read (%s)", rule)
		}
		if l := h.t.xmppBlockList(ctx, alice, false); l.err == nil {
			t.Fatalf("round %d: no error kept", i)
		}
	}
	if n := h.warns.Load(); n != 1 {
		t.Fatalf("%d warnings for one condition, want 1", n)
	}
	st = strings.Join(h.t.blockStatus(ctx, alice, nil), "\n")
	if !strings.Contains(st, "could not be read") {
		t.Errorf("status with the link down: %q", st)
	}
	// The server says forbidden: another condition, warned once.
	h.sink.set(fmt.Errorf("x: %w: forbidden", bridge.ErrNoBlockListPermission))
	h.now = h.now.Add(DefaultBlockListCache)
	h.t.xmppBlockList(ctx, alice, false)
	h.now = h.now.Add(DefaultBlockListCache)
	h.t.xmppBlockList(ctx, alice, false)
	if n := h.warns.Load(); n != 2 {
		t.Fatalf("%d warnings after a second condition, want 2", n)
	}
	// Back to working: warned again at the next failure.
	h.sink.set(nil)
	h.now = h.now.Add(DefaultBlockListCache)
	if l := h.t.xmppBlockList(ctx, alice, false); l.err != nil {
		t.Fatal(l.err)
	}
	h.sink.set(fmt.Errorf("component: %w", bridge.ErrLinkDown))
	h.now = h.now.Add(DefaultBlockListCache)
	h.t.xmppBlockList(ctx, alice, false)
	if n := h.warns.Load(); n != 3 {
		t.Fatalf("%d warnings, want a new one after a recovery", n)
	}
}

// TestBlockStatusNoPermission: the status says what to grant.
func TestBlockStatusNoPermission(t *testing.T) {
	h := newBlockHarness(t)
	st := strings.Join(h.t.blockStatus(context.Background(), alice, nil), "\n")
	for _, want := range []string{"has not granted", "privileged_entities", `["mail.localhost"]`, `["urn:xmpp:blocking"] = "get"`} {
		if !strings.Contains(st, want) {
			t.Errorf("status %q lacks %q", st, want)
		}
	}
	if h.sink.calls.Load() != 0 {
		t.Error("the status command asked without the permission")
	}
}

// TestSenderAddrs: the From address, and the list's posting address only
// for list mail.
func TestSenderAddrs(t *testing.T) {
	for _, c := range []struct{ raw, from, list string }{
		{"From: Bob <Bob@Example.com>\r\nSubject: x\r\n\r\nhi\r\n", "bob@example.com", ""},
		{"From: a@example.net\r\nList-Id: Talk <talk.lists.example.org>\r\nList-Post: <mailto:talk@lists.example.org>\r\n\r\nx", "a@example.net", "talk@lists.example.org"},
		{"From: a@example.net\r\nList-Post: <mailto:talk@lists.example.org>\r\n\r\nx", "a@example.net", ""},
		{"From: a@example.net\r\nList-Id: <x>\r\nList-Post: NO\r\n\r\nx", "a@example.net", ""},
		{"From:\r\n garbage <<\r\n\r\n", "", ""},
		{"no header at all", "", ""},
	} {
		from, list := senderAddrs([]byte(c.raw))
		if from != c.from || list != c.list {
			t.Errorf("senderAddrs(%q) = %q, %q; want %q, %q", c.raw, from, list, c.from, c.list)
		}
	}
}

// BenchmarkRefusedByNoPermission is the cost the XEP-0191 check adds to
// every RCPT and DATA when the server grants no permission (the common
// case): no IQ, no allocation.
func BenchmarkRefusedByNoPermission(b *testing.B) {
	h := newBlockHarness(b)
	ctx := context.Background()
	field := func(string) bool { return false }
	b.ReportAllocs()
	for b.Loop() {
		if _, rule := h.t.refusedBy(ctx, alice, field, "bob@example.com"); rule != "" {
			b.Fatal(rule)
		}
	}
	if h.sink.calls.Load() != 0 {
		b.Fatal("asked without the permission")
	}
}
