package component

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"switchboard/bridge"
	"switchboard/store"
)

// runLink runs the link until the test ends; it returns a stop function
// that cancels Run and waits for it.
func runLink(t *testing.T, l *Link) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metric returns the value of a gauge or counter with the given labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestLinkHandshakeTrafficAndShutdown(t *testing.T) {
	srv := newFakeServer(t, "s3cret")
	h := newHarness(t, LinkConfig{Server: srv.addr(), Secret: "s3cret"})
	ctx := context.Background()
	for _, u := range []string{"alice@example.org", "bob@example.org", "eve@evil.example"} {
		_ = h.st.PutAccount(ctx, &store.Account{User: u, Transport: "irc"})
	}
	stop := runLink(t, h.l)
	c := srv.accept()
	waitFor(t, "link up", h.l.Up)
	reg := h.gw.Metrics().Registry
	if v := metric(t, reg, "switchboard_component_link_up", map[string]string{"domain": testDomain}); v != 1 {
		t.Errorf("link_up = %v", v)
	}

	// XEP-0100: available presence to every registered user allowed.
	for _, want := range []string{"alice@example.org", "bob@example.org"} {
		p := c.readNonPing(t)
		if p.name() != "presence" || p.attr("to") != want || p.attr("from") != testDomain || p.attr("type") != "" {
			t.Errorf("link-up presence: %s to=%s", p.name(), p.attr("to"))
		}
	}

	// A request from the server is answered.
	c.send(`<iq type='get' id='v1' from='` + user + `' to='irc.localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if p := c.readNonPing(t); p.attr("id") != "v1" || p.attr("type") != "result" {
		t.Errorf("ping answer: %s %s", p.attr("id"), p.attr("type"))
	}
	// An event from a transport goes out.
	if err := h.l.Send(bridge.Message{To: alice, From: contact("bob"), Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	if p := c.readNonPing(t); p.name() != "message" || p.text("body") != "hi" {
		t.Errorf("message: %s %q", p.name(), p.text("body"))
	}
	if v := metric(t, reg, "switchboard_stanzas_total", map[string]string{"direction": "out", "kind": "message"}); v != 1 {
		t.Errorf("stanzas out = %v", v)
	}
	if v := metric(t, reg, "switchboard_stanzas_total", map[string]string{"direction": "in", "kind": "iq"}); v != 1 {
		t.Errorf("stanzas in = %v", v)
	}

	// Shutdown: unavailable presence to the users presence went to, then
	// the end of the stream.
	go func() { _ = stop() }()
	got := map[string]bool{}
	for range 2 {
		p := c.readNonPing(t)
		if p.name() != "presence" || p.attr("type") != "unavailable" {
			t.Fatalf("at shutdown: %s type=%s", p.name(), p.attr("type"))
		}
		got[p.attr("to")] = true
	}
	if !got["alice@example.org"] || !got["bob@example.org"] {
		t.Errorf("unavailable presence went to %v", got)
	}
	if _, err := c.read(t); !errors.Is(err, io.EOF) {
		t.Errorf("after the presences: %v, want the end of the stream", err)
	}
	c.send("</stream:stream>")
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if h.l.Up() {
		t.Error("still up after Run returned")
	}
	if v := metric(t, reg, "switchboard_component_link_up", map[string]string{"domain": testDomain}); v != 0 {
		t.Errorf("link_up = %v after shutdown", v)
	}
}

func TestLinkWrongSecret(t *testing.T) {
	srv := newFakeServer(t, "right")
	h := newHarness(t, LinkConfig{Server: srv.addr(), Secret: "wrong"})
	_, err := h.l.runOnce(context.Background())
	if err == nil || !strings.Contains(err.Error(), "component secret does not match") {
		t.Fatalf("runOnce: %v", err)
	}
}

func TestLinkReconnectKeepsQueue(t *testing.T) {
	srv := newFakeServer(t, "s")
	h := newHarness(t, LinkConfig{Server: srv.addr(), Secret: "s"})
	h.l.minBackoff, h.l.maxBackoff = 300*time.Millisecond, time.Second
	runLink(t, h.l)
	c1 := srv.accept()
	waitFor(t, "link up", h.l.Up)

	// The server drops the connection; the link notices.
	_ = c1.Close()
	waitFor(t, "link down", func() bool { return !h.l.Up() })

	// Sent while down: it waits in the queue.
	for i := range 3 {
		if err := h.l.Send(bridge.Message{To: alice, From: contact("bob"), ID: fmt.Sprint("m", i), Body: "while down"}); err != nil {
			t.Fatal(err)
		}
	}
	if h.l.Up() {
		t.Fatal("reconnected before the messages were queued; the test proves nothing")
	}
	if v := metric(t, h.gw.Metrics().Registry, "switchboard_send_queue_depth", nil); v != 3 {
		t.Errorf("queue depth = %v", v)
	}

	c2 := srv.accept()
	for i := range 3 {
		p := c2.readNonPing(t)
		if p.attr("id") != fmt.Sprint("m", i) || p.text("body") != "while down" {
			t.Errorf("after reconnect: %s id=%s", p.name(), p.attr("id"))
		}
	}
	waitFor(t, "queue drained", func() bool {
		return metric(t, h.gw.Metrics().Registry, "switchboard_send_queue_depth", nil) == 0
	})
}

// runFastPingLink runs a link to a fake server with a 50 ms ping interval,
// a 100 ms ping timeout and fast reconnects.
func runFastPingLink(t *testing.T) (*fakeServer, *harness) {
	t.Helper()
	srv := newFakeServer(t, "s")
	h := newHarness(t, LinkConfig{Server: srv.addr(), Secret: "s", PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
	h.l.minBackoff, h.l.maxBackoff = 10*time.Millisecond, 50*time.Millisecond
	runLink(t, h.l)
	return srv, h
}

func TestLinkDeadLinkDetection(t *testing.T) {
	srv, _ := runFastPingLink(t)

	// A server that answers pings keeps the link.
	c1 := srv.accept()
	start := time.Now()
	pings := 0
	for time.Since(start) < 500*time.Millisecond {
		p, err := c1.read(t)
		if err != nil {
			t.Fatalf("the link dropped a live connection: %v", err)
		}
		if p.find("ping") != nil {
			pings++
			if p.attr("to") != "localhost" || p.attr("from") != testDomain {
				t.Errorf("ping from=%s to=%s, want from irc.localhost to localhost", p.attr("from"), p.attr("to"))
			}
			if pings%2 == 0 { // any answer proves the link, an error too
				c1.send(`<iq type='result' id='` + p.attr("id") + `' from='localhost' to='irc.localhost'/>`)
			} else {
				c1.send(`<iq type='error' id='` + p.attr("id") + `' from='localhost' to='irc.localhost'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
			}
		}
	}
	if pings < 3 {
		t.Errorf("only %d pings in 500ms with a 50ms interval", pings)
	}

	// One that stops answering is dropped, and the link comes back.
	start = time.Now()
	for {
		if _, err := c1.read(t); err != nil {
			break // the link closed the connection
		}
		if time.Since(start) > 3*time.Second {
			t.Fatal("the link kept a dead connection")
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("dead link detected after %s", d)
	}
	c2 := srv.accept()
	c2.send(`<iq type='get' id='alive' from='` + user + `' to='irc.localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if p := c2.readNonPing(t); p.attr("id") != "alive" {
		t.Errorf("after reconnect: %s", p.attr("id"))
	}
}

func TestLinkQueueFull(t *testing.T) {
	h := newHarness(t, LinkConfig{QueueSize: 2})
	m := bridge.Message{To: alice, From: contact("bob"), Body: "x"}
	for range 2 {
		if err := h.l.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.l.Send(m); !errors.Is(err, bridge.ErrQueueFull) {
		t.Fatalf("third Send: %v, want ErrQueueFull", err)
	}
	if v := metric(t, h.gw.Metrics().Registry, "switchboard_send_queue_depth", nil); v != 2 {
		t.Errorf("queue depth = %v", v)
	}
}

// TestLinkSendWait: with a full queue SendWait waits for room instead of
// failing, and fails only after maxWait or when stopped.
func TestLinkSendWait(t *testing.T) {
	h := newHarness(t, LinkConfig{QueueSize: 1})
	m := bridge.Message{To: alice, From: contact("bob"), Body: "x"}
	if err := h.l.Send(m); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := h.l.SendWait(m, 50*time.Millisecond, nil); !errors.Is(err, bridge.ErrQueueFull) {
		t.Fatalf("SendWait on a full queue that never drains: %v", err)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatal("SendWait gave up before maxWait")
	}
	stop := make(chan struct{})
	close(stop)
	if err := h.l.SendWait(m, time.Minute, stop); !errors.Is(err, bridge.ErrQueueFull) {
		t.Fatalf("SendWait after stop: %v", err)
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		<-h.l.queue // the writer drains one
	}()
	if err := h.l.SendWait(m, 5*time.Second, nil); err != nil {
		t.Fatalf("SendWait while the queue drains: %v", err)
	}
	if len(h.l.queue) != 1 {
		t.Fatalf("queue holds %d, want the waiting stanza", len(h.l.queue))
	}
}

func TestLinkRunWithoutServer(t *testing.T) {
	h := newHarness(t, LinkConfig{Server: "127.0.0.1:1", Secret: "s"})
	h.l.minBackoff = 10 * time.Millisecond
	stop := runLink(t, h.l)
	time.Sleep(100 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestLinkBadConfig(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	l := NewLink(LinkConfig{Domain: "user@irc.localhost", Transport: "irc"}, h.gw, h.tr.codec, nil)
	if err := l.Run(context.Background()); err == nil {
		t.Error("Run accepted a domain with a localpart")
	}
	l2 := NewLink(LinkConfig{Domain: "sms.localhost", Transport: "sms"}, bridge.New(h.st, h.auth, discardLog(), nil), h.tr.codec, nil)
	if err := l2.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Errorf("Run without a transport: %v", err)
	}
	if l3 := NewLink(LinkConfig{Domain: "irc.example.org", Transport: "irc", PingTo: "xmpp.example.org"}, h.gw, h.tr.codec, nil); l3.pingTo != "xmpp.example.org" {
		t.Errorf("PingTo override: %s", l3.pingTo)
	}
}

func TestWriterRetriesFailedBatch(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	for i := range 3 {
		if err := h.l.Send(bridge.Message{To: alice, From: contact("bob"), ID: fmt.Sprint("r", i), Body: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	// A connection that fails every write: the batch is kept.
	dead, peer := net.Pipe()
	_ = peer.Close()
	abort, shutdown := make(chan struct{}), make(chan struct{})
	if err := h.l.writeLoop(dead, outItem{}, abort, shutdown); err == nil {
		t.Fatal("writeLoop on a dead connection returned nil")
	}
	// The writer may have taken the items before or after its first
	// flush; either way none is lost.
	kept := len(h.l.retry) + len(h.l.queue)
	if kept != 3 {
		t.Fatalf("%d items kept for the next connection, want 3", kept)
	}

	// The next connection writes them first, in order.
	conn, peer := net.Pipe()
	defer conn.Close()
	done := make(chan error, 1)
	go func() { done <- h.l.writeLoop(conn, outItem{}, abort, shutdown) }()
	d := xml.NewDecoder(peer)
	for i := range 3 {
		var m struct {
			ID string `xml:"id,attr"`
		}
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if m.ID != fmt.Sprint("r", i) {
			t.Errorf("item %d: id %s", i, m.ID)
		}
	}
	close(abort)
	_ = peer.Close()
	<-done
}

// TestLinkReplyWaitsWhileUp: an answer the link produces (here the error
// refusing a message) is not dropped when the queue is full while the link
// is up: reply waits for the writer, and gives up only when the
// connection ends.
func TestLinkReplyWaitsWhileUp(t *testing.T) {
	h := newHarness(t, LinkConfig{QueueSize: 1})
	m := bridge.Message{To: alice, From: contact("bob"), Body: "x"}
	if err := h.l.Send(m); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	h.l.connDone.Store(&done)
	h.l.up.Store(true)
	answer := func() *out {
		o := &out{}
		o.b = append(o.b, "<iq type='result' id='a1'/>"...)
		return o
	}
	replied := make(chan struct{})
	go func() {
		h.l.reply(answer())
		close(replied)
	}()
	select {
	case <-replied:
		t.Fatal("reply returned at once with a full queue while the link is up")
	case <-time.After(50 * time.Millisecond):
	}
	<-h.l.queue // the writer takes the first item
	select {
	case <-replied:
	case <-time.After(2 * time.Second):
		t.Fatal("reply still waiting after the queue drained")
	}
	if it := <-h.l.queue; string(it.b) != "<iq type='result' id='a1'/>" {
		t.Fatalf("queued %q, want the answer", it.b)
	}
	if v := metric(t, h.gw.Metrics().Registry, "switchboard_events_dropped_total", nil); v != 0 {
		t.Errorf("dropped = %v, want 0", v)
	}

	// The connection ends while reply waits: it gives up (and counts it).
	if err := h.l.Send(m); err != nil {
		t.Fatal(err)
	}
	replied = make(chan struct{})
	go func() {
		h.l.reply(answer())
		close(replied)
	}()
	time.Sleep(20 * time.Millisecond)
	close(done)
	select {
	case <-replied:
	case <-time.After(2 * time.Second):
		t.Fatal("reply still waiting after the connection ended")
	}
	if v := metric(t, h.gw.Metrics().Registry, "switchboard_events_dropped_total", nil); v != 1 {
		t.Errorf("dropped = %v, want 1 (the answer given up)", v)
	}
}

// TestLinkAliveWhileStanzasFlow: a server that keeps sending stanzas is
// alive even when the ping's answer is slow to come (it waits behind them,
// or the read loop holds its reading back): the link keeps it; once the
// server goes silent as well, the link drops it.
func TestLinkAliveWhileStanzasFlow(t *testing.T) {
	srv, h := runFastPingLink(t)
	c := srv.accept()

	// Stanzas every 30 ms, no ping answered, for 6 ping timeouts.
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		tick := time.NewTicker(30 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				c.send(fmt.Sprintf(`<iq type='result' id='unrelated%d' from='localhost' to='irc.localhost'/>`, i))
			}
		}
	}()
	time.Sleep(600 * time.Millisecond)
	close(stop)
	<-sent
	if !h.l.Up() || len(srv.conns) != 0 {
		t.Fatal("the link dropped a server that kept sending stanzas (and connected again)")
	}
	p, err := c.read(t) // the one ping, still unanswered, on the same connection
	if err != nil || p.find("ping") == nil {
		t.Fatalf("want the unanswered ping on the first connection, got %v %v", p, err)
	}

	// Silent now: dropped within a ping timeout or two (the read fails
	// with the connection closed, not with the 5 s test deadline).
	start := time.Now()
	for {
		_, err := c.read(t)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the link kept a silent connection that answers no ping (%s)", time.Since(start).Round(time.Millisecond))
		}
		break
	}
}
