// Package store persists what the gateway must not forget: users' transport
// accounts (with their secrets encrypted at rest), the stanza-id ↔ remote-id
// pairs that route receipts and corrections, room archives for XEP-0313,
// durable outbound queues and small per-user cursors (IMAP UIDs).
//
// Store is one interface with two implementations, both returned by Open:
// SQLite through modernc.org/sqlite (the default, no cgo) and PostgreSQL
// through pgx. Open migrates the schema (embedded, versioned SQL files,
// each optionally followed by a Go step in the same transaction) and
// checks the key (LoadOrCreateKey, ParseKey) that encrypts
// Account.Secrets with AES-256-GCM. Times come back in UTC, truncated to
// microseconds.
//
// The archive is kept in chunks: a row of archive_chunks holds many
// entries of one archive (user, transport, peer) in a compact binary blob,
// with the range of their seqs (first_seq, last_seq) and times (first_at,
// last_at) as columns, so that an entry costs a few dozen bytes of
// encoding rather than a row and its index entries. AppendArchive writes
// one chunk per archive and batch; QueryArchive finds chunks by seq range
// and merges their entries; PruneArchive drops old chunks and rewrites the
// few that straddle the cut. Archive ids encode the order key (Seq) in
// their first 13 characters (NewArchiveID, ArchiveSeq).
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrLeaseLost is returned (wrapped) by Dequeue and Reschedule when the
// queue item still exists but the caller's lease on it is over: the lease
// ran out and another Claim took the item, or the item was already
// rescheduled. The item is left unchanged. The caller must not report
// delivery or failure for it (no receipt, no error to the user, no retry
// of its own): the current holder will.
var ErrLeaseLost = errors.New("store: queue item lease lost")

// Account is one user's registration with one transport.
type Account struct {
	User      string // bare JID, e.g. "alice@example.org"
	Transport string // "irc", "email", "sms"
	// Fields are plain settings: for IRC "nick", "username", "realname",
	// and per network "net.<name>.nick" and the like (the transport names
	// its keys).
	Fields map[string]string
	// Secrets are encrypted at rest with the key file (AEAD) and never
	// logged: "password", "sasl_password", API tokens.
	Secrets   map[string]string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// MessageID ties an XMPP stanza id to a remote message id, per user and
// transport, so that receipts, corrections, replies and errors route back.
type MessageID struct {
	User      string
	Transport string
	Peer      string // remote address key, e.g. "#chan%net" or "nick%net"
	StanzaID  string // id the XMPP side knows (origin-id, id or stanza-id)
	RemoteID  string // id the network knows (IRC msgid, SMTP Message-ID, Twilio SID)
	CreatedAt time.Time
}

// ArchiveEntry is one archived message of a room or conversation.
type ArchiveEntry struct {
	// ID is the archive id (it becomes the XEP-0359 stanza-id):
	// NewArchiveID(), alone or followed by "~" and a suffix of the
	// caller's. It is unique within the archive of a user and transport.
	ID        string
	User      string // bare JID the archive belongs to
	Transport string
	Peer      string // room or contact key, e.g. "#chan%net"
	Nick      string // author nick (rooms) or "" for the peer itself
	Outgoing  bool   // sent by the user
	Body      string
	Action    bool
	RemoteID  string // network message id if any
	OriginID  string
	Time      time.Time
	// Seq is the order key parsed from the ID (ArchiveSeq); the store
	// sets it. Entries are ordered by ID: Seq, then the suffix.
	Seq int64
}

// ArchiveQuery selects archive entries (XEP-0313 with RSM). User and
// Transport are required. Without AfterID, BeforeID or Before the first
// page (oldest entries) is returned.
type ArchiveQuery struct {
	User      string
	Transport string
	Peer      string    // room or contact key; "" is every peer of the user
	With      string    // nick filter, optional
	Start     time.Time // inclusive; zero is no bound
	End       time.Time // inclusive; zero is no bound
	AfterID   string    // RSM after: entries strictly after this id
	BeforeID  string    // RSM before: entries strictly before this id
	// Before is true when paging backwards ("before" present, even if
	// empty: the last page).
	Before bool
	// Limit is the page size: ≤ 0 means DefaultArchiveLimit (50); it is
	// capped at MaxArchiveLimit (1000).
	Limit int
}

// ArchivePage is a page of entries in chronological order.
type ArchivePage struct {
	Entries  []ArchiveEntry
	Complete bool // no more entries in the paging direction
	Count    int  // total entries matching (for RSM count)
}

// QueueItem is one durable outbound message (SMTP, Twilio) waiting to be
// sent or retried.
type QueueItem struct {
	ID        int64 // set by the store
	Transport string
	User      string
	Peer      string
	StanzaID  string // to answer with an error or receipt
	Payload   []byte // transport-specific, opaque to the store
	Attempts  int
	NextTry   time.Time
	LastError string
	CreatedAt time.Time
	// Lease is the end of the lease Claim took on the item (now+lease, in
	// UTC and truncated to microseconds as the store keeps it): pass it
	// back to Dequeue and Reschedule, which act only while it is still
	// the item's. It is zero on items that were not claimed (Enqueue).
	Lease time.Time
}

// Store is everything the gateway persists: the union of the role
// interfaces below, which is what Open returns. Code takes the smallest
// role it needs (the bridge takes Accounts, the IRC archive writer
// Archive, an id map MessageIDs), so that a test double implements only
// that. Implementations are safe for concurrent use.
type Store interface {
	Accounts
	MessageIDs
	Archive
	Queue
	State
	// Close closes the database.
	Close() error
}

// Accounts are the users' registrations, their secrets sealed at rest.
type Accounts interface {
	// GetAccount returns the account with its secrets decrypted, or an
	// error wrapping ErrNotFound.
	GetAccount(ctx context.Context, user, transport string) (*Account, error)
	// PutAccount creates or replaces the account (Fields and Secrets as a
	// whole) and sets a.CreatedAt (kept from the first put) and a.UpdatedAt.
	PutAccount(ctx context.Context, a *Account) error
	// DeleteAccount removes the account and every row of that user for that
	// transport (message ids, archive, queue, state) in one transaction.
	// Deleting an account that does not exist is not an error.
	DeleteAccount(ctx context.Context, user, transport string) error
	// ListAccounts returns the accounts of transport ("" for every
	// transport) ordered by user.
	ListAccounts(ctx context.Context, transport string) ([]Account, error)
}

// MessageIDs pair XMPP stanza ids with remote message ids.
type MessageIDs interface {
	// PutMessageID records a stanza-id ↔ remote-id pair (CreatedAt now
	// when zero). One id may pair with several (a message split in
	// several IRC lines); putting the same pair again refreshes it.
	PutMessageID(ctx context.Context, m MessageID) error
	// FindByStanzaID returns the newest pair with that stanza id, or an
	// error wrapping ErrNotFound.
	FindByStanzaID(ctx context.Context, user, transport, peer, stanzaID string) (*MessageID, error)
	// FindByRemoteID returns the newest pair with that remote id, or an
	// error wrapping ErrNotFound.
	FindByRemoteID(ctx context.Context, user, transport, peer, remoteID string) (*MessageID, error)
}

// Archive is the message archive of rooms and conversations (XEP-0313).
type Archive interface {
	// AppendArchive writes many entries in one transaction (group
	// commit); it sets ID when empty (NewArchiveID), Seq (from the ID),
	// and Time when zero (now). An ID that is not an archive id fails the
	// batch. On error nothing was written and the entries are unchanged.
	AppendArchive(ctx context.Context, entries []ArchiveEntry) error
	// QueryArchive returns one page (see ArchiveQuery). An AfterID or
	// BeforeID not in that archive is an error wrapping ErrNotFound.
	QueryArchive(ctx context.Context, q ArchiveQuery) (*ArchivePage, error)
	// PruneArchive deletes entries older than before for transport, and
	// the message-id pairs of transport created before it; it returns how
	// many archive entries went.
	PruneArchive(ctx context.Context, transport string, before time.Time) (int64, error)
}

// Queue is the durable queue of outbound (and accepted inbound) items.
type Queue interface {
	// Enqueue stores a durable outbound item and sets it.ID,
	// it.CreatedAt, and it.NextTry when zero (due now).
	Enqueue(ctx context.Context, it *QueueItem) error
	// Claim returns up to limit items (DefaultDueLimit when ≤ 0) of
	// transport whose NextTry is not after now, earliest NextTry first,
	// and leases them: in the same transaction their NextTry becomes
	// now+lease, so no other Claim (another goroutine or another gateway
	// instance on the same database) returns them until the lease runs
	// out. The caller then Dequeues (delivered or finally failed) or
	// Reschedules (retry later) each one, passing its ID and Lease; an
	// item whose sender died comes back when its lease ends. lease must be
	// longer than one delivery attempt takes; it must be at least a
	// microsecond (the store's precision, so that each claim of an item
	// ends its lease strictly later than the claim before).
	//
	// The items carry the NextTry they had before the claim (when they
	// fell due, which is lost in the store once leased), their Attempts
	// unchanged (a claim is not an attempt), and in Lease the lease end
	// the store wrote (now+lease, truncated to microseconds).
	Claim(ctx context.Context, transport string, now time.Time, lease time.Duration, limit int) ([]QueueItem, error)
	// Reschedule records a failed attempt (Attempts+1), lastErr and the
	// next try, which ends the lease; lease is the QueueItem.Lease that
	// Claim returned. It acts only while the item's NextTry still equals
	// lease: when the item exists but is no longer the caller's (its
	// lease ran out and another Claim took it, or it was already
	// rescheduled) it changes nothing and returns an error wrapping
	// ErrLeaseLost; when the item is gone (dequeued, or its account
	// deleted) an error wrapping ErrNotFound. Either way the caller must
	// not report the failure. A zero lease skips the check (admin tools
	// and tests only: a sender always passes its lease).
	Reschedule(ctx context.Context, id int64, lease time.Time, next time.Time, lastErr string) error
	// Dequeue removes an item that was delivered or finally failed; lease
	// is the QueueItem.Lease that Claim returned, and as with Reschedule
	// the item is removed only while its NextTry still equals lease: an
	// item that exists under another lease is left alone with an error
	// wrapping ErrLeaseLost, and the caller must not report delivery or
	// failure for it. An item already gone is not an error; that nil does
	// not tell whether the account was deleted or a later holder already
	// finished the item after the caller's lease ran out (a lease-lost
	// item that its new holder removes while Dequeue looks is reported
	// the same way). A zero lease removes the item whoever holds it
	// (admin tools and tests only).
	Dequeue(ctx context.Context, id int64, lease time.Time) error
}

// State is small per-user state (IMAP UIDs, webhook ids seen, bouncer
// rooms).
type State interface {
	// GetState returns small per-user state (IMAP UIDVALIDITY/UID,
	// webhook SIDs seen...), or an error wrapping ErrNotFound.
	GetState(ctx context.Context, user, transport, key string) ([]byte, error)
	// PutState sets a state value (nil stores an empty value).
	PutState(ctx context.Context, user, transport, key string, value []byte) error
	// DeleteState removes a state value; removing one that is not there
	// is not an error.
	DeleteState(ctx context.Context, user, transport, key string) error
}

// Open opens (creating and migrating as needed) the store. driver is
// "sqlite" (dsn: a file path, or a "file:" URI; ":memory:" for a private
// in-memory database) or "postgres" (dsn: a libpq URL or key=value
// string; errors never repeat it, as it may hold a password). key is the
// 32-byte key from LoadOrCreateKey or ParseKey that encrypts
// Account.Secrets; a database whose secrets were encrypted with another key
// fails to open with an error wrapping ErrWrongKey. A database migrated by
// a newer switchboard than this one is an error too.
func Open(ctx context.Context, driver, dsn string, key []byte) (Store, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("store: the key must be %d bytes, got %d", KeySize, len(key))
	}
	var b backend
	switch driver {
	case "sqlite":
		sb, err := openSQLite(ctx, dsn)
		if err != nil {
			return nil, err
		}
		b = sb
	case "postgres":
		pb, err := openPostgres(ctx, dsn)
		if err != nil {
			return nil, err
		}
		b = pb
	default:
		return nil, fmt.Errorf("store: unknown driver %q: use \"sqlite\" or \"postgres\"", driver)
	}
	s, err := newSQLStore(ctx, b, key)
	if err != nil {
		b.close()
		return nil, err
	}
	return s, nil
}
