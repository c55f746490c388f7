package bridge

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"switchboard/mapping"
	"switchboard/store"
)

// fakeStore keeps message ids in memory; every other method fails.
type fakeStore struct {
	mu      sync.Mutex
	rows    []store.MessageID
	failPut error
}

func (f *fakeStore) PutMessageID(_ context.Context, m store.MessageID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failPut != nil {
		return f.failPut
	}
	f.rows = append(f.rows, m)
	return nil
}

func (f *fakeStore) find(match func(store.MessageID) bool) (*store.MessageID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.rows) - 1; i >= 0; i-- {
		if match(f.rows[i]) {
			m := f.rows[i]
			return &m, nil
		}
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) FindByStanzaID(_ context.Context, user, transport, peer, stanzaID string) (*store.MessageID, error) {
	return f.find(func(m store.MessageID) bool {
		return m.User == user && m.Transport == transport && m.Peer == peer && m.StanzaID == stanzaID
	})
}

func (f *fakeStore) FindByRemoteID(_ context.Context, user, transport, peer, remoteID string) (*store.MessageID, error) {
	return f.find(func(m store.MessageID) bool {
		return m.User == user && m.Transport == transport && m.Peer == peer && m.RemoteID == remoteID
	})
}

func TestIDMap(t *testing.T) {
	ctx := context.Background()
	st := &fakeStore{}
	m := NewIDMap(st)
	fixed := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	m.now = func() time.Time { return fixed }

	room := mapping.Address{Kind: mapping.KindRoom, Domain: "irc.example.org", Network: "libera", Name: "#chan"}
	occ := room.Occupant("Nick")
	if err := m.Remember(ctx, "alice@example.org", "irc", occ, "stanza-1", "msgid-1"); err != nil {
		t.Fatal(err)
	}
	if len(st.rows) != 1 || st.rows[0].Peer != "#chan%libera" || !st.rows[0].CreatedAt.Equal(fixed) {
		t.Fatalf("stored rows %+v", st.rows)
	}
	// An occupant and its room share the key.
	if got, err := m.RemoteID(ctx, "alice@example.org", "irc", room, "stanza-1"); err != nil || got != "msgid-1" {
		t.Errorf("RemoteID = %q, %v", got, err)
	}
	if got, err := m.StanzaID(ctx, "alice@example.org", "irc", occ, "msgid-1"); err != nil || got != "stanza-1" {
		t.Errorf("StanzaID = %q, %v", got, err)
	}
	// Unknown ids, other users and other peers are not found.
	for _, look := range []func() (string, error){
		func() (string, error) { return m.RemoteID(ctx, "alice@example.org", "irc", room, "nope") },
		func() (string, error) { return m.StanzaID(ctx, "alice@example.org", "irc", room, "nope") },
		func() (string, error) { return m.RemoteID(ctx, "bob@example.org", "irc", room, "stanza-1") },
		func() (string, error) {
			return m.RemoteID(ctx, "alice@example.org", "irc", mapping.Address{Kind: mapping.KindRoom, Network: "libera", Name: "#other"}, "stanza-1")
		},
	} {
		if got, err := look(); !errors.Is(err, store.ErrNotFound) || got != "" {
			t.Errorf("lookup = %q, %v; want store.ErrNotFound", got, err)
		}
	}

	// Email and SMS peers.
	mb := mapping.Address{Kind: mapping.KindContact, Domain: "mail.example.org", Name: "alice@example.com"}
	if err := m.Remember(ctx, "bob@example.org", "email", mb, "s2", "<m2@example.com>"); err != nil {
		t.Fatal(err)
	}
	if got, err := m.StanzaID(ctx, "bob@example.org", "email", mb, "<m2@example.com>"); err != nil || got != "s2" {
		t.Errorf("email StanzaID = %q, %v", got, err)
	}

	// Empty arguments are refused with a sentence.
	for name, err := range map[string]error{
		"user":      m.Remember(ctx, "", "irc", room, "a", "b"),
		"transport": m.Remember(ctx, "u", "", room, "a", "b"),
		"stanza":    m.Remember(ctx, "u", "irc", room, "", "b"),
		"remote":    m.Remember(ctx, "u", "irc", room, "a", ""),
	} {
		if err == nil || err.Error() == "" {
			t.Errorf("Remember without %s: %v", name, err)
		}
	}
	if _, err := m.RemoteID(ctx, "u", "irc", room, ""); err == nil {
		t.Error("RemoteID with an empty stanza id succeeded")
	}
	if _, err := m.StanzaID(ctx, "u", "irc", room, ""); err == nil {
		t.Error("StanzaID with an empty remote id succeeded")
	}

	// Store failures are passed on, wrapped.
	boom := errors.New("disk full")
	st.failPut = boom
	if err := m.Remember(ctx, "u", "irc", room, "a", "b"); !errors.Is(err, boom) {
		t.Errorf("Remember with a failing store: %v", err)
	}
}

func TestIDMapCasemapping(t *testing.T) {
	ctx := context.Background()
	st := &fakeStore{}
	plain := NewIDMap(st)
	folded := plain.WithCasemapping(func(network string) (mapping.Casemapping, bool) {
		return mapping.RFC1459, network == "libera"
	})
	a := mapping.Address{Kind: mapping.KindRoom, Network: "libera", Name: "#a[b]"}
	b := mapping.Address{Kind: mapping.KindRoom, Network: "libera", Name: "#a{b}"}
	if err := folded.Remember(ctx, "u", "irc", a, "s", "r"); err != nil {
		t.Fatal(err)
	}
	if got, err := folded.RemoteID(ctx, "u", "irc", b, "s"); err != nil || got != "r" {
		t.Errorf("folded lookup = %q, %v", got, err)
	}
	if _, err := plain.RemoteID(ctx, "u", "irc", a, "s"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the plain map found a folded key: %v", err)
	}
	if folded.Key(mapping.Address{Kind: mapping.KindRoom, Network: "oftc", Name: "#A[b]"}) != "#a[b]%oftc" {
		t.Error("a network without a casemapping is not lowercased plainly")
	}
}
