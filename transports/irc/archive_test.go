package irc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"switchboard/store"
	"switchboard/store/memstore"
)

// TestStanzaIDs: archive ids carry the msgid after "~", are shared by the
// users of the transport, and map back to the msgid.
func TestStanzaIDs(t *testing.T) {
	s, _, _ := newTestNetwork(t, nil)
	sid := s.stanzaID("abc~1", true)
	if seq, ok := store.ArchiveSeq(sid); !ok || seq <= 0 || sid[store.ArchiveIDLen:] != "~abc~1" {
		t.Fatalf("stanzaID = %q", sid)
	}
	if again := s.stanzaID("abc~1", true); again != sid {
		t.Fatalf("the same msgid got %q, then %q", sid, again)
	}
	other := &session{t: s.t, tag: "othertag"} // another user of the transport
	if got := other.stanzaID("abc~1", true); got != sid {
		t.Fatalf("another user got %q for the same msgid, want %q", got, sid)
	}
	if got := s.stanzaID("abd", true); got == sid || got[store.ArchiveIDLen:] != "~abd" {
		t.Fatalf("another msgid got %q", got)
	}
	if got := s.stanzaID("abc", false); got != "abc" {
		t.Fatalf("without the archive: %q", got)
	}
	if got := s.stanzaID("", true); len(got) != store.ArchiveIDLen {
		t.Fatalf("no msgid: %q", got)
	}
	if got := s.stanzaID("", false); got != "" {
		t.Fatalf("no msgid, no archive: %q", got)
	}
	for id, want := range map[string]string{
		sid:                     "abc~1",
		"xyz~" + s.tag:          "xyz", // handed out before
		"a~b~" + s.tag:          "a~b",
		"plainmsgid":            "plainmsgid",
		store.NewArchiveID():    "", // replaced below
		"0000000000001~":        "0000000000001~",
		"000000000000X~m":       "000000000000X~m",
		"0000000000001~m~other": "m~other",
	} {
		if want == "" {
			want = id
		}
		if got := s.msgidOf(id); got != want {
			t.Errorf("msgidOf(%q) = %q, want %q", id, got, want)
		}
	}
}

// TestMsgidIDsBounded: msgidIDs keeps the recent msgids only.
func TestMsgidIDsBounded(t *testing.T) {
	var m msgidIDs
	first := m.id("m0")
	for i := 1; i < recentMsgids; i++ {
		m.id(fmt.Sprint("m", i))
	}
	// m0 moves to the previous generation and is still known.
	if got := m.id(fmt.Sprint("m", recentMsgids)); got == first {
		t.Fatal("two msgids share an id")
	}
	if got := m.id("m0"); got != first {
		t.Fatalf("m0 forgotten after one generation: %q, want %q", got, first)
	}
	for i := range 2 * recentMsgids {
		m.id(fmt.Sprint("n", i))
	}
	if got := m.id("m0"); got == first {
		t.Fatal("m0 still known after two generations")
	}
	if len(m.cur)+len(m.prev) > 2*recentMsgids {
		t.Fatalf("%d ids kept", len(m.cur)+len(m.prev))
	}
}

// TestArchiveAddWithoutWriter: with the queue full and no writer (never
// started, or stopped at shutdown), add returns at once and counts the
// entry as dropped instead of holding the user's goroutine archiveWait.
func TestArchiveAddWithoutWriter(t *testing.T) {
	a := newArchiver(memstore.New(), testLog())
	e := store.ArchiveEntry{User: "alice@localhost", Transport: "irc", Peer: "#chan%local", Body: "x"}
	for range archiveQueue {
		a.add(e)
	}
	start := time.Now()
	a.add(e)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("add to a full queue without a writer took %s", took)
	}
	if got := a.dropped.Load(); got != 1 {
		t.Fatalf("dropped = %d, want 1", got)
	}

	// A writer that ran and stopped: the same.
	b := newArchiver(memstore.New(), testLog())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b.run(ctx)
	for range archiveQueue {
		b.add(e)
	}
	start = time.Now()
	b.add(e)
	if took := time.Since(start); took > time.Second || b.dropped.Load() != 1 {
		t.Fatalf("after the writer stopped: add took %s, dropped %d", took, b.dropped.Load())
	}
}
