package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"switchboard/tests/testbed"
)

func TestBatch(t *testing.T) {
	testBatch(t, "sqlite", filepath.Join(t.TempDir(), "b.db"))
}

func TestBatchPostgres(t *testing.T) {
	server := testbed.StartPostgres(t)
	testBatch(t, "postgres", testbed.NewPostgresDatabase(t, server))
}

func testBatch(t *testing.T, driver, dsn string) {
	ctx := context.Background()
	s, err := Open(ctx, driver, dsn, make([]byte, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.(Batcher)
	items := []*QueueItem{{Transport: "t", User: "u", StanzaID: "a", Payload: []byte("1")}, {Transport: "t", User: "u", StanzaID: "b"}}
	pairs := []MessageID{{User: "x", Transport: "t", Peer: "in", StanzaID: "a", RemoteID: "a"}}
	if err := b.EnqueueBatch(ctx, items, pairs); err != nil {
		t.Fatal(err)
	}
	if items[0].ID == 0 || items[1].ID <= items[0].ID || items[0].NextTry.IsZero() {
		t.Fatalf("ids not set: %+v", items)
	}
	if _, err := s.FindByRemoteID(ctx, "x", "t", "in", "a"); err != nil {
		t.Fatal(err)
	}
	// All or nothing: a bad pair writes no item.
	if err := b.EnqueueBatch(ctx, []*QueueItem{{Transport: "t", User: "u"}}, []MessageID{{User: "x"}}); err == nil {
		t.Fatal("a bad pair was accepted")
	}
	claimed, err := s.Claim(ctx, "t", time.Now(), time.Minute, 10)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claimed %d, %v", len(claimed), err)
	}
	stale := claimed[1]
	stale.Lease = stale.Lease.Add(-time.Second)
	left, err := b.DequeueBatch(ctx, []QueueItem{claimed[0], stale}, []MessageID{{User: "x", Transport: "t", Peer: "done", StanzaID: "a", RemoteID: "a"}})
	if err != nil || len(left) != 1 || left[0] != stale.ID {
		t.Fatalf("left %v, %v", left, err)
	}
	if _, err := s.FindByRemoteID(ctx, "x", "t", "done", "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Dequeue(ctx, claimed[1].ID, claimed[1].Lease); err != nil {
		t.Fatalf("the item with a lost... lease check: %v", err)
	}
	if _, err := s.FindByRemoteID(ctx, "x", "t", "done", "zzz"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if ok, err := b.HasStanzaID(ctx, "x", "t", "done", "a"); !ok || err != nil {
		t.Fatalf("HasStanzaID of a pair: %v %v", ok, err)
	}
	if ok, err := b.HasStanzaID(ctx, "x", "t", "done", "b"); ok || err != nil {
		t.Fatalf("HasStanzaID of no pair: %v %v", ok, err)
	}

	// WriteBatch: pairs and state values in one transaction; a value
	// written twice keeps the last; a bad entry writes nothing.
	if err := s.PutState(ctx, "x", "t", "k1", []byte("old")); err != nil {
		t.Fatal(err)
	}
	err = b.WriteBatch(ctx, []MessageID{{User: "x", Transport: "t", Peer: "w", StanzaID: "s1", RemoteID: "r1"}},
		[]StateValue{{User: "x", Transport: "t", Key: "k1", Value: []byte("new")}, {User: "x", Transport: "t", Key: "k2"}})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.FindByRemoteID(ctx, "x", "t", "w", "r1"); err != nil || m.StanzaID != "s1" {
		t.Fatalf("pair after WriteBatch: %+v %v", m, err)
	}
	if v, err := s.GetState(ctx, "x", "t", "k1"); err != nil || string(v) != "new" {
		t.Fatalf("k1 = %q, %v", v, err)
	}
	if v, err := s.GetState(ctx, "x", "t", "k2"); err != nil || len(v) != 0 {
		t.Fatalf("k2 = %q, %v", v, err)
	}
	err = b.WriteBatch(ctx, []MessageID{{User: "x", Transport: "t", Peer: "w", StanzaID: "s2", RemoteID: "r2"}},
		[]StateValue{{User: "x", Transport: "t"}})
	if err == nil {
		t.Fatal("a state value without a key was accepted")
	}
	if _, err := s.FindByRemoteID(ctx, "x", "t", "w", "r2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused batch wrote its pair: %v", err)
	}
}
