package memstore

import (
	"context"
	"errors"
	"strings"
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
