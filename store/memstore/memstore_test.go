package memstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/store"
)

// TestArchiveIDs: the fake follows the real stores' id rules.
func TestArchiveIDs(t *testing.T) {
	ctx := context.Background()
	s := New()
	early := store.NewArchiveID() + "~m1"
	es := []store.ArchiveEntry{
		{User: "u@x", Transport: "irc", Peer: "#a", Nick: "bob", Body: "second"},
		{User: "u@x", Transport: "irc", Peer: "#b", Nick: "carol", Body: "first", ID: early},
		{User: "u@x", Transport: "irc", Peer: "#a", Nick: "bob", Body: "third"},
	}
	if err := s.AppendArchive(ctx, es); err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if seq, ok := store.ArchiveSeq(e.ID); !ok || seq != e.Seq || e.Time.IsZero() {
			t.Fatalf("entry %+v", e)
		}
	}
	if es[1].ID != early {
		t.Fatalf("given id changed to %q", es[1].ID)
	}
	for _, id := range []string{"mem-1", store.NewArchiveID() + "x"} {
		bad := []store.ArchiveEntry{{User: "u@x", Transport: "irc", Peer: "#a", Body: "x"}, {User: "u@x", Transport: "irc", Peer: "#a", ID: id}}
		if err := s.AppendArchive(ctx, bad); err == nil || bad[0].ID != "" {
			t.Fatalf("id %q: %v, %+v", id, err, bad[0])
		}
	}
	body := func(q store.ArchiveQuery) string {
		t.Helper()
		p, err := s.QueryArchive(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var b []string
		for _, e := range p.Entries {
			b = append(b, e.Body)
		}
		return strings.Join(b, " ")
	}
	if got := body(store.ArchiveQuery{User: "u@x", Transport: "irc"}); got != "first second third" {
		t.Fatalf("every peer: %s", got)
	}
	// A cursor that does not match the filter still positions the page.
	if got := body(store.ArchiveQuery{User: "u@x", Transport: "irc", With: "bob", AfterID: early}); got != "second third" {
		t.Fatalf("after: %s", got)
	}
	if _, err := s.QueryArchive(ctx, store.ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a", AfterID: early}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cursor of another peer: %v", err)
	}
	if n, err := s.PruneArchive(ctx, "irc", time.Now().Add(time.Minute)); err != nil || n != 3 {
		t.Fatalf("prune: %d, %v", n, err)
	}
}

// TestQueueClaim: the fake leases like the real stores, and concurrent
// claims never return one item twice.
func TestQueueClaim(t *testing.T) {
	ctx := context.Background()
	s := New()
	now := time.Now()
	early := &store.QueueItem{Transport: "sms", User: "u@x", Payload: []byte("early"), NextTry: now.Add(-time.Minute)}
	due := &store.QueueItem{Transport: "sms", User: "u@x"} // zero NextTry: due at once
	later := &store.QueueItem{Transport: "sms", User: "u@x", NextTry: now.Add(time.Hour)}
	other := &store.QueueItem{Transport: "email", User: "u@x"}
	for _, it := range []*store.QueueItem{due, later, other, early} {
		if err := s.Enqueue(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	if due.NextTry.IsZero() {
		t.Fatal("Enqueue did not set NextTry")
	}
	now = time.Now()
	claim := func(at time.Time, limit int) []store.QueueItem {
		t.Helper()
		its, err := s.Claim(ctx, "sms", at, 10*time.Minute, limit)
		if err != nil {
			t.Fatal(err)
		}
		return its
	}
	if its, err := s.Claim(ctx, "sms", now, 0, 1); err == nil {
		t.Fatalf("Claim with no lease = %+v, want an error", its)
	}
	if its := claim(now, 1); len(its) != 1 || its[0].ID != early.ID || !its[0].NextTry.Equal(early.NextTry) || string(its[0].Payload) != "early" {
		t.Fatalf("first claim = %+v, want early as it was", its)
	}
	if its := claim(now, 0); len(its) != 1 || its[0].ID != due.ID {
		t.Fatalf("second claim = %+v, want due", its)
	}
	if its := claim(now.Add(10*time.Minute-time.Nanosecond), 0); len(its) != 0 {
		t.Fatalf("claim during the lease = %+v", its)
	}
	if err := s.Reschedule(ctx, early.ID, now.Add(time.Minute), "busy"); err != nil {
		t.Fatal(err)
	}
	if err := s.Dequeue(ctx, due.ID); err != nil {
		t.Fatal(err)
	}
	if its := claim(now.Add(10*time.Minute), 0); len(its) != 1 || its[0].ID != early.ID || its[0].Attempts != 1 || its[0].LastError != "busy" {
		t.Fatalf("claim after the lease = %+v, want early rescheduled", its)
	}

	// Concurrent claims: 8 goroutines over 200 items get each once.
	s = New()
	for range 200 {
		if err := s.Enqueue(ctx, &store.QueueItem{Transport: "sms", User: "u@x"}); err != nil {
			t.Fatal(err)
		}
	}
	now = time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	seen := map[int64]int{}
	total := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				its, err := s.Claim(ctx, "sms", now, time.Hour, 3)
				if err != nil || len(its) == 0 {
					return
				}
				mu.Lock()
				for _, it := range its {
					seen[it.ID]++
					total++
				}
				over := total > 200
				mu.Unlock()
				if over { // a store that does not lease would loop forever
					return
				}
			}
		}()
	}
	wg.Wait()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("item %d claimed %d times", id, n)
		}
	}
	if len(seen) != 200 {
		t.Fatalf("%d items claimed, want 200", len(seen))
	}
}
