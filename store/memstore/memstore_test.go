package memstore

import (
	"context"
	"errors"
	"fmt"
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

// TestQueueClaim: the fake leases like the real stores, finishes an item
// only with its lease, and concurrent claims never return one item twice.
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
		if !it.Lease.IsZero() {
			t.Fatalf("Enqueue set a lease: %+v", it)
		}
	}
	if due.NextTry.IsZero() {
		t.Fatal("Enqueue did not set NextTry")
	}
	// A microsecond boundary not before due's NextTry (as in the real
	// stores' tests), so that the lease ends at now+lease exactly.
	now = time.Now().Add(time.Microsecond).UTC().Truncate(time.Microsecond)
	const lease = 10 * time.Minute
	claim := func(at time.Time, limit int) []store.QueueItem {
		t.Helper()
		its, err := s.Claim(ctx, "sms", at, lease, limit)
		if err != nil {
			t.Fatal(err)
		}
		return its
	}
	// row is the stored item, or "gone".
	row := func(id int64) string {
		t.Helper()
		s.mu.Lock()
		defer s.mu.Unlock()
		it, ok := s.queue[id]
		if !ok {
			return "gone"
		}
		return fmt.Sprintf("attempts=%d next_try=%s last_error=%q", it.Attempts, it.NextTry.UTC().Format(time.RFC3339Nano), it.LastError)
	}
	want := func(attempts int, next time.Time, lastErr string) string {
		return fmt.Sprintf("attempts=%d next_try=%s last_error=%q", attempts, next.UTC().Format(time.RFC3339Nano), lastErr)
	}
	for _, bad := range []time.Duration{0, time.Microsecond - 1} {
		if its, err := s.Claim(ctx, "sms", now, bad, 1); err == nil {
			t.Fatalf("Claim with lease %v = %+v, want an error", bad, its)
		}
	}
	first := claim(now, 1)
	if len(first) != 1 || first[0].ID != early.ID || !first[0].NextTry.Equal(early.NextTry) || string(first[0].Payload) != "early" {
		t.Fatalf("first claim = %+v, want early as it was", first)
	}
	earlyLease := first[0].Lease
	if !earlyLease.Equal(now.Add(lease)) || earlyLease.Location() != time.UTC {
		t.Fatalf("Lease %v, want %v in UTC", earlyLease, now.Add(lease))
	}
	second := claim(now, 0)
	if len(second) != 1 || second[0].ID != due.ID {
		t.Fatalf("second claim = %+v, want due", second)
	}
	dueLease := second[0].Lease
	if its := claim(now.Add(lease-time.Nanosecond), 0); len(its) != 0 {
		t.Fatalf("claim during the lease = %+v", its)
	}
	if err := s.Reschedule(ctx, early.ID, earlyLease.Add(time.Microsecond), now, "x"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Reschedule with another lease: %v, want ErrLeaseLost", err)
	}
	if err := s.Reschedule(ctx, early.ID, earlyLease, now.Add(time.Minute), "busy"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reschedule(ctx, early.ID, earlyLease, now.Add(time.Hour), "again"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("second Reschedule with the same lease: %v, want ErrLeaseLost", err)
	}
	if err := s.Dequeue(ctx, early.ID, earlyLease); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Dequeue of a rescheduled item with its old lease: %v, want ErrLeaseLost", err)
	}
	if got, w := row(early.ID), want(1, now.Add(time.Minute), "busy"); got != w {
		t.Fatalf("rescheduled item: %s, want %s", got, w)
	}

	// due's lease runs out: another claimer takes it; its first holder
	// can neither dequeue nor reschedule it, and the new holder can.
	third := claim(now.Add(lease), 0)
	if len(third) != 2 || third[0].ID != early.ID || third[1].ID != due.ID || third[0].Attempts != 1 || third[0].LastError != "busy" {
		t.Fatalf("claim after the lease = %+v, want early rescheduled, due", third)
	}
	newLease := third[1].Lease
	if err := s.Dequeue(ctx, due.ID, dueLease); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Dequeue with a lease that ran out: %v, want ErrLeaseLost", err)
	}
	if err := s.Reschedule(ctx, due.ID, dueLease, now, "late"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Reschedule with a lease that ran out: %v, want ErrLeaseLost", err)
	}
	if got, w := row(due.ID), want(0, newLease, ""); got != w {
		t.Fatalf("item after its late holder tried: %s, want %s (unchanged)", got, w)
	}
	if err := s.Dequeue(ctx, due.ID, newLease); err != nil {
		t.Fatalf("Dequeue by the new holder: %v", err)
	}
	if got := row(due.ID); got != "gone" {
		t.Fatalf("dequeued item: %s", got)
	}
	for _, l := range []time.Time{dueLease, newLease, {}} {
		if err := s.Dequeue(ctx, due.ID, l); err != nil {
			t.Fatalf("Dequeue of a gone item: %v", err)
		}
		if err := s.Reschedule(ctx, due.ID, l, now, "x"); !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("Reschedule of a gone item: %v, want ErrNotFound", err)
		}
	}
	// A zero lease finishes a leased item (admin tools).
	if err := s.Reschedule(ctx, early.ID, time.Time{}, now, "admin"); err != nil {
		t.Fatal(err)
	}
	if got, w := row(early.ID), want(2, now, "admin"); got != w {
		t.Fatalf("after Reschedule with no lease: %s, want %s", got, w)
	}
	if err := s.Dequeue(ctx, early.ID, time.Time{}); err != nil || row(early.ID) != "gone" {
		t.Fatalf("Dequeue with no lease: %v, %s", err, row(early.ID))
	}

	// Concurrent claims: 8 goroutines over 200 items get each once, then
	// dequeue their items with their leases, and all are gone.
	s = New()
	for range 200 {
		if err := s.Enqueue(ctx, &store.QueueItem{Transport: "sms", User: "u@x"}); err != nil {
			t.Fatal(err)
		}
	}
	// A claim at a time finer than the real stores keep leases as they
	// do: UTC, microseconds.
	now = time.Now().Truncate(time.Microsecond).Add(999 * time.Nanosecond)
	wantLease := now.Add(time.Hour).UTC().Truncate(time.Microsecond)
	var mu sync.Mutex
	var wg sync.WaitGroup
	seen := map[int64]int{}
	total := 0
	mine := make([][]store.QueueItem, 8)
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				its, err := s.Claim(ctx, "sms", now, time.Hour, 3)
				if err != nil || len(its) == 0 {
					return
				}
				mine[c] = append(mine[c], its...)
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
	errs := make(chan error, 2*200) // two at most per item: no send blocks
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, it := range mine[c] {
				if !it.Lease.Equal(wantLease) {
					errs <- fmt.Errorf("item %d: Lease %v, want %v", it.ID, it.Lease, wantLease)
				}
				if err := s.Dequeue(ctx, it.ID, it.Lease); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(s.queue); n != 0 {
		t.Fatalf("%d items left after every claimer dequeued its items", n)
	}
}
