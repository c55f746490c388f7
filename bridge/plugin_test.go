package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/store/memstore"
)

// TestDoRunsOnTheUsersGoroutine: Do starts the user's goroutine, runs the
// work there in order with the user's other events, and refuses users
// the policy or registration keeps out.
func TestDoRunsOnTheUsersGoroutine(t *testing.T) {
	tr := &fakeTransport{}
	gw, _, _ := newGateway(t, tr)
	ctx := context.Background()
	alice := jid.MustParse("alice@example.org/phone")

	var mu sync.Mutex
	var order []int
	var sessions []bridge.Session
	done := make(chan struct{})
	for i := range 100 {
		err := gw.Do(ctx, "fake", alice, func(u *bridge.User, s bridge.Session) {
			mu.Lock()
			order = append(order, i)
			sessions = append(sessions, s)
			mu.Unlock()
			if u.JID().String() != "alice@example.org" {
				t.Errorf("ran for %s", u.JID())
			}
			if i == 99 {
				close(done)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the work did not run")
	}
	mu.Lock()
	for i, v := range order {
		if v != i || sessions[i] == nil {
			t.Fatalf("work %d ran as %d (or without a session)", i, v)
		}
	}
	mu.Unlock()

	// Outside the allow list: forbidden, nothing runs.
	err := gw.Do(ctx, "fake", jid.MustParse("eve@evil.example"), func(*bridge.User, bridge.Session) { t.Error("ran for eve") })
	if se := bridge.AsStanzaError(err); se == nil || se.Condition != bridge.Forbidden {
		t.Fatalf("eve: %v", err)
	}
	// Registration required and missing.
	tr2 := &fakeTransport{regRequired: true}
	gw2, _, _ := newGateway(t, tr2)
	err = gw2.Do(ctx, "fake", alice, func(*bridge.User, bridge.Session) { t.Error("ran unregistered") })
	if se := bridge.AsStanzaError(err); se == nil || se.Condition != bridge.RegistrationRequired {
		t.Fatalf("unregistered: %v", err)
	}
}

// TestDoWaitsForRoom: with the user's inbox full, Do waits (it does not
// refuse like a sender who is too fast), until ctx is done.
func TestDoWaitsForRoom(t *testing.T) {
	tr := &fakeTransport{block: make(chan struct{})}
	gw, _, _ := newGateway(t, tr)
	alice := jid.MustParse("alice@example.org/phone")
	// Fill the inbox: the first message blocks the goroutine.
	for i := range 300 {
		if err := gw.Dispatch("fake", alice, bridge.SendMessage{From: alice, ID: fmt.Sprint(i)}); err != nil {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := gw.Do(ctx, "fake", alice, func(*bridge.User, bridge.Session) {})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do on a full inbox: %v, want it to wait until the deadline", err)
	}
	ran := make(chan struct{})
	go func() {
		time.Sleep(100 * time.Millisecond)
		close(tr.block)
	}()
	if err := gw.Do(context.Background(), "fake", alice, func(*bridge.User, bridge.Session) { close(ran) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the work did not run after the inbox drained")
	}
}

// TestSyncWithoutSyncer: a sink that cannot confirm says so.
func TestSyncWithoutSyncer(t *testing.T) {
	gw, _, _ := newGateway(t, &fakeTransport{})
	if err := gw.Sync(context.Background(), "fake"); !errors.Is(err, bridge.ErrNoSync) {
		t.Fatalf("got %v", err)
	}
	if err := gw.Emit(context.Background(), "fake", bridge.Message{Body: "x"}); err != nil {
		t.Fatalf("Emit: %v", err)
	}
}

// unregTransport records Unregistered calls.
type unregTransport struct {
	fakeTransport
	gone []string
}

func (t *unregTransport) Unregistered(bare string) { t.gone = append(t.gone, bare) }

// TestUnregisteredIsCalled: a transport that keeps something of a user
// outside the store hears of the user's unregistration.
func TestUnregisteredIsCalled(t *testing.T) {
	tr := &unregTransport{}
	gw := bridge.New(memstore.New(), allowList{}, slog.New(slog.DiscardHandler), nil)
	gw.AddTransport(tr, chanSink{ch: make(chan bridge.Outbound, 10)})
	alice := jid.MustParse("alice@example.org/phone")
	if err := gw.Register(context.Background(), "fake", alice, bridge.FormValues{"nick": {"alice"}}); err != nil {
		t.Fatal(err)
	}
	if err := gw.Unregister(context.Background(), "fake", alice); err != nil {
		t.Fatal(err)
	}
	if len(tr.gone) != 1 || tr.gone[0] != "alice@example.org" {
		t.Fatalf("Unregistered calls: %v", tr.gone)
	}
}
