package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"switchboard/mapping"
	"switchboard/store"
)

// IDMap remembers which XMPP stanza id goes with which remote message id
// (IRC msgid, SMTP Message-ID, Twilio SID), per user, transport and peer, so
// that receipts, corrections, replies and errors route back. It is a thin
// layer over the store's message-id table whose only job is to key rows
// the same way everywhere (see PeerKey). It is safe for concurrent use.
type IDMap struct {
	st  store.MessageIDs
	cm  func(network string) (mapping.Casemapping, bool)
	now func() time.Time
}

// NewIDMap returns an IDMap over st.
func NewIDMap(st store.MessageIDs) *IDMap {
	return &IDMap{st: st, now: time.Now}
}

// WithCasemapping returns a copy of m that keys IRC peers with the
// casemapping f reports for a network (see PeerKeyFolded); where f reports
// none (ok false), PeerKey's plain lowercasing is used. f is called on every
// lookup and must be safe for concurrent use.
//
// A key must not change while rows keyed by it matter: a name with [ ] \ ~
// gets one key before the server's casemapping is known and another after.
// Either give f a fixed answer per network (RFC1459 until the first
// connection, then the value saved with the account), or do without it.
func (m *IDMap) WithCasemapping(f func(network string) (mapping.Casemapping, bool)) *IDMap {
	c := *m
	c.cm = f
	return &c
}

// Key returns the peer key m stores for peer.
func (m *IDMap) Key(peer mapping.Address) string {
	if m.cm != nil && peer.Network != "" {
		if cm, ok := m.cm(peer.Network); ok {
			return mapping.PeerKeyFolded(peer, cm)
		}
	}
	return mapping.PeerKey(peer)
}

// errNoID is the error for a missing id argument.
func errNoID(what string) error {
	return fmt.Errorf("bridge: a message id pair needs a %s, and it is empty", what)
}

// Remember records that the stanza stanzaID and the remote message remoteID
// are the same message between user and peer on transport.
func (m *IDMap) Remember(ctx context.Context, user, transport string, peer mapping.Address, stanzaID, remoteID string) error {
	switch {
	case user == "":
		return errNoID("user")
	case transport == "":
		return errNoID("transport")
	case stanzaID == "":
		return errNoID("stanza id")
	case remoteID == "":
		return errNoID("remote id")
	}
	err := m.st.PutMessageID(ctx, store.MessageID{
		User:      user,
		Transport: transport,
		Peer:      m.Key(peer),
		StanzaID:  stanzaID,
		RemoteID:  remoteID,
		CreatedAt: m.now(),
	})
	if err != nil {
		return fmt.Errorf("bridge: could not remember message id %q for %s: %w", stanzaID, user, err)
	}
	return nil
}

// RemoteID returns the remote message id remembered for stanzaID. When none
// is, the error wraps store.ErrNotFound (test with errors.Is).
func (m *IDMap) RemoteID(ctx context.Context, user, transport string, peer mapping.Address, stanzaID string) (string, error) {
	if stanzaID == "" {
		return "", errNoID("stanza id")
	}
	row, err := m.st.FindByStanzaID(ctx, user, transport, m.Key(peer), stanzaID)
	if err != nil {
		return "", lookupError("stanza id", stanzaID, err)
	}
	return row.RemoteID, nil
}

// StanzaID returns the stanza id remembered for remoteID. When none is, the
// error wraps store.ErrNotFound (test with errors.Is).
func (m *IDMap) StanzaID(ctx context.Context, user, transport string, peer mapping.Address, remoteID string) (string, error) {
	if remoteID == "" {
		return "", errNoID("remote id")
	}
	row, err := m.st.FindByRemoteID(ctx, user, transport, m.Key(peer), remoteID)
	if err != nil {
		return "", lookupError("remote id", remoteID, err)
	}
	return row.StanzaID, nil
}

// lookupError words a failed lookup, keeping store.ErrNotFound visible.
func lookupError(what, id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("bridge: no message is known by the %s %q: %w", what, id, err)
	}
	return fmt.Errorf("bridge: could not look up the %s %q: %w", what, id, err)
}
