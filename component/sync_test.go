package component

import (
	"context"
	"testing"
	"time"

	"switchboard/bridge"
)

// TestLinkSync: Sync returns only once the server answered the ping
// queued behind what was sent before it, and fails when the connection
// ends first.
func TestLinkSync(t *testing.T) {
	srv := newFakeServer(t, "s")
	h := newHarness(t, LinkConfig{Server: srv.addr(), Secret: "s"})
	runLink(t, h.l)
	c1 := srv.accept()
	waitFor(t, "link up", h.l.Up)

	if err := h.l.Send(bridge.Message{To: alice, From: contact("bob"), ID: "m1", Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.l.Sync(context.Background()) }()
	if p := c1.readNonPing(t); p.attr("id") != "m1" {
		t.Fatalf("first stanza %s, want the message", p.attr("id"))
	}
	p, err := c1.read(t) // not readNonPing: it would answer the sync ping itself
	if err != nil {
		t.Fatal(err)
	}
	if p.find("ping") == nil || p.attr("type") != "get" {
		t.Fatalf("after the message: %s, want the sync ping", p.name())
	}
	select {
	case err := <-done:
		t.Fatalf("Sync returned %v before the server answered", err)
	case <-time.After(100 * time.Millisecond):
	}
	c1.send(`<iq type='result' id='` + p.attr("id") + `' from='localhost' to='irc.localhost'/>`)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Sync: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Sync did not return after the answer")
	}

	// The connection ends before the answer: an error, so the caller
	// keeps its copy and tries again.
	go func() { done <- h.l.Sync(context.Background()) }()
	if p, err = c1.read(t); err != nil || p.find("ping") == nil {
		t.Fatalf("got %s, want the sync ping", p.name())
	}
	_ = c1.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Sync succeeded although the connection ended unanswered")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Sync did not return when the connection ended")
	}
	srv.accept()

	// A cancelled context ends the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.l.Sync(ctx); err == nil {
		t.Fatal("Sync without an answer returned nil")
	}
}
