package mapping

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"switchboard/store"
)

// IDMap remembers which XMPP stanza id goes with which remote message id
// (IRC msgid, SMTP Message-ID, Twilio SID), per user, transport and peer, so
// that receipts, corrections, replies and errors route back. It is a thin
// layer over store.Store's message-id table whose only job is to key rows
// the same way everywhere (see PeerKey). It is safe for concurrent use.
type IDMap struct {
	st  store.Store
	cm  func(network string) (Casemapping, bool)
	now func() time.Time
}

// NewIDMap returns an IDMap over st.
func NewIDMap(st store.Store) *IDMap {
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
func (m *IDMap) WithCasemapping(f func(network string) (Casemapping, bool)) *IDMap {
	c := *m
	c.cm = f
	return &c
}

// Key returns the peer key m stores for peer.
func (m *IDMap) Key(peer Address) string {
	if m.cm != nil && peer.Network != "" {
		if cm, ok := m.cm(peer.Network); ok {
			return PeerKeyFolded(peer, cm)
		}
	}
	return PeerKey(peer)
}

// PeerKey returns the key of a peer for store rows (message ids, archive,
// queue): the bare form of the room or contact, lowercased:
//
//	IRC room or occupant   "#chan%libera"      (an occupant keys as its room)
//	IRC contact            "nick%libera"
//	IRC server             "libera"
//	email                  "alice@example.com"
//	SMS                    "+12025550123"
//	gateway                ""
//
// Addresses built by a Codec have the network in its canonical spelling,
// so the key is stable. IRC names are lowercased with Unicode rules, not
// folded with the network's casemapping; PeerKeyFolded does that.
func PeerKey(a Address) string {
	a = a.Bare()
	switch a.Kind {
	case KindGateway:
		return ""
	case KindServer:
		return strings.ToLower(a.Network)
	}
	if a.Network == "" {
		return strings.ToLower(a.Name)
	}
	return strings.ToLower(a.Name) + "%" + strings.ToLower(a.Network)
}

// PeerKeyFolded is PeerKey with IRC names folded by cm (so "#a[b" and
// "#A{B" share a key under RFC1459). For email and SMS addresses it is
// PeerKey.
func PeerKeyFolded(a Address, cm Casemapping) string {
	if a.Network == "" {
		return PeerKey(a)
	}
	return ircKey(a.Bare(), a.Network, cm)
}

// errNoID is the error for a missing id argument.
func errNoID(what string) error {
	return fmt.Errorf("mapping: a message id pair needs a %s, and it is empty", what)
}

// Remember records that the stanza stanzaID and the remote message remoteID
// are the same message between user and peer on transport.
func (m *IDMap) Remember(ctx context.Context, user, transport string, peer Address, stanzaID, remoteID string) error {
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
		return fmt.Errorf("mapping: could not remember message id %q for %s: %w", stanzaID, user, err)
	}
	return nil
}

// RemoteID returns the remote message id remembered for stanzaID. When none
// is, the error wraps store.ErrNotFound (test with errors.Is).
func (m *IDMap) RemoteID(ctx context.Context, user, transport string, peer Address, stanzaID string) (string, error) {
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
func (m *IDMap) StanzaID(ctx context.Context, user, transport string, peer Address, remoteID string) (string, error) {
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
		return fmt.Errorf("mapping: no message is known by the %s %q: %w", what, id, err)
	}
	return fmt.Errorf("mapping: could not look up the %s %q: %w", what, id, err)
}
