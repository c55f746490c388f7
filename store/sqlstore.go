package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Archive page sizes.
const (
	// DefaultArchiveLimit is the page size when ArchiveQuery.Limit ≤ 0.
	DefaultArchiveLimit = 50
	// MaxArchiveLimit caps ArchiveQuery.Limit.
	MaxArchiveLimit = 1000
	// DefaultDueLimit is the number of items Claim returns at most when
	// its limit is ≤ 0.
	DefaultDueLimit = 100
)

// sqlStore implements Store on a backend.
type sqlStore struct {
	b   backend
	sec *sealer
	now func() time.Time
}

func newSQLStore(ctx context.Context, b backend, key []byte) (*sqlStore, error) {
	sec, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	s := &sqlStore{b: b, sec: sec, now: time.Now}
	if err := migrate(ctx, b); err != nil {
		return nil, err
	}
	if err := s.checkKey(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// checkKey verifies the key against the key check stored in meta, storing
// one on first use.
func (s *sqlStore) checkKey(ctx context.Context) error {
	name := s.b.dialect().name
	for range 2 {
		var ct []byte
		err := s.b.reader().queryRow(ctx, "SELECT value FROM meta WHERE name = 'key_check'").Scan(&ct)
		if err == nil {
			if _, err := s.sec.open(ct, keyCheckAD); err != nil {
				if errors.Is(err, ErrWrongKey) {
					return fmt.Errorf("store: opening the %s database: %w "+
						"(restore the original key file or SWITCHBOARD_STORE_KEY; a new key cannot read the stored passwords)", name, ErrWrongKey)
				}
				return fmt.Errorf("store: opening the %s database: key check: %w", name, err)
			}
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: reading the key check of the %s database: %w", name, err)
		}
		ct, err = s.sec.seal(keyCheckPlaintext, keyCheckAD)
		if err != nil {
			return fmt.Errorf("store: key check: %w", err)
		}
		// Another process may write its own at the same time: keep the
		// first and compare against it on the next turn.
		if _, err := s.b.writer().exec(ctx, "INSERT INTO meta (name, value) VALUES ('key_check', ?) ON CONFLICT (name) DO NOTHING", ct); err != nil {
			return fmt.Errorf("store: writing the key check of the %s database: %w", name, err)
		}
	}
	return nil
}

func (s *sqlStore) Close() error {
	return s.b.close()
}

// ---- accounts ----

func (s *sqlStore) GetAccount(ctx context.Context, user, transport string) (*Account, error) {
	r := s.b.reader().queryRow(ctx,
		"SELECT fields, secrets, created, updated FROM accounts WHERE user_jid = ? AND transport = ?",
		user, transport)
	a := &Account{User: user, Transport: transport}
	var fields string
	var secrets []byte
	if err := r.Scan(&fields, &secrets, &a.CreatedAt, &a.UpdatedAt); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("store: get account %s/%s: %w", user, transport, ErrNotFound)
		}
		return nil, fmt.Errorf("store: get account %s/%s: %w", user, transport, err)
	}
	if err := s.decodeAccount(a, fields, secrets); err != nil {
		return nil, fmt.Errorf("store: get account %s/%s: %w", user, transport, err)
	}
	return a, nil
}

func (s *sqlStore) decodeAccount(a *Account, fields string, secrets []byte) error {
	a.CreatedAt = a.CreatedAt.UTC()
	a.UpdatedAt = a.UpdatedAt.UTC()
	a.Fields = map[string]string{}
	if err := json.Unmarshal([]byte(fields), &a.Fields); err != nil {
		return fmt.Errorf("fields: %w", err)
	}
	pt, err := s.sec.open(secrets, accountAD(a.User, a.Transport))
	if err != nil {
		if errors.Is(err, ErrWrongKey) {
			return fmt.Errorf("secrets do not decrypt (key changed, or the row was altered or copied from another account): %w", err)
		}
		return fmt.Errorf("secrets: %w", err)
	}
	a.Secrets = map[string]string{}
	if err := json.Unmarshal(pt, &a.Secrets); err != nil {
		// The plaintext is secret: do not let the JSON error quote it.
		return errors.New("secrets: decrypted value is not a JSON object of strings")
	}
	return nil
}

// PutAccount creates or replaces the account (Fields and Secrets as a
// whole). It sets a.CreatedAt (kept from the first Put) and a.UpdatedAt.
func (s *sqlStore) PutAccount(ctx context.Context, a *Account) error {
	if a == nil || a.User == "" || a.Transport == "" {
		return errors.New("store: put account: user and transport must not be empty")
	}
	fields := a.Fields
	if fields == nil {
		fields = map[string]string{}
	}
	fj, err := json.Marshal(fields)
	if err != nil {
		return fmt.Errorf("store: put account %s/%s: fields: %w", a.User, a.Transport, err)
	}
	secrets := a.Secrets
	if secrets == nil {
		secrets = map[string]string{}
	}
	sj, err := json.Marshal(secrets)
	if err != nil {
		return fmt.Errorf("store: put account %s/%s: secrets do not encode", a.User, a.Transport)
	}
	ct, err := s.sec.seal(sj, accountAD(a.User, a.Transport))
	if err != nil {
		return fmt.Errorf("store: put account %s/%s: encrypting secrets: %w", a.User, a.Transport, err)
	}
	now := dbTime(s.now())
	created := now
	if !a.CreatedAt.IsZero() {
		created = dbTime(a.CreatedAt)
	}
	var got time.Time
	err = s.b.writer().queryRow(ctx, `INSERT INTO accounts (user_jid, transport, fields, secrets, created, updated)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_jid, transport) DO UPDATE
		SET fields = excluded.fields, secrets = excluded.secrets, updated = excluded.updated
		RETURNING created`,
		a.User, a.Transport, string(fj), ct, created, now).Scan(&got)
	if err != nil {
		return fmt.Errorf("store: put account %s/%s: %w", a.User, a.Transport, err)
	}
	a.CreatedAt = got.UTC()
	a.UpdatedAt = now
	return nil
}

// DeleteAccount removes the account row and every message id, archive
// entry, queue item and state value of that user for that transport, in
// one transaction. Deleting what does not exist is not an error.
func (s *sqlStore) DeleteAccount(ctx context.Context, user, transport string) error {
	err := runTx(ctx, s.b, func(tx txn) error {
		for _, table := range []string{"message_ids", "archive_chunks", "queue", "state", "accounts"} {
			if _, err := tx.exec(ctx, "DELETE FROM "+table+" WHERE user_jid = ? AND transport = ?", user, transport); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: delete account %s/%s: %w", user, transport, err)
	}
	return nil
}

// ListAccounts returns every account of transport ("" for all
// transports), ordered by user then transport.
func (s *sqlStore) ListAccounts(ctx context.Context, transport string) ([]Account, error) {
	q := "SELECT user_jid, transport, fields, secrets, created, updated FROM accounts"
	var args []any
	if transport != "" {
		q += " WHERE transport = ?"
		args = append(args, transport)
	}
	q += " ORDER BY user_jid, transport"
	rs, err := s.b.reader().query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list accounts %q: %w", transport, err)
	}
	defer rs.Close()
	var out []Account
	for rs.Next() {
		var a Account
		var fields string
		var secrets []byte
		if err := rs.Scan(&a.User, &a.Transport, &fields, &secrets, &a.CreatedAt, &a.UpdatedAt); err != nil {
			return nil, fmt.Errorf("store: list accounts %q: %w", transport, err)
		}
		if err := s.decodeAccount(&a, fields, secrets); err != nil {
			return nil, fmt.Errorf("store: list accounts %q: account %s/%s: %w", transport, a.User, a.Transport, err)
		}
		out = append(out, a)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("store: list accounts %q: %w", transport, err)
	}
	return out, nil
}

// ---- message ids ----

// PutMessageID records a stanza-id ↔ remote-id pair. The same pair put
// again only moves its CreatedAt; a stanza id may map to several remote ids
// (a message split in several lines) and the other way round: lookups
// return the newest pair.
func (s *sqlStore) PutMessageID(ctx context.Context, m MessageID) error {
	if m.User == "" || m.Transport == "" || m.StanzaID == "" || m.RemoteID == "" {
		return fmt.Errorf("store: put message id %s/%s: user, transport, stanza id and remote id must not be empty", m.User, m.Transport)
	}
	created := m.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	_, err := s.b.writer().exec(ctx, `INSERT INTO message_ids (user_jid, transport, peer, stanza_id, remote_id, created)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_jid, transport, peer, stanza_id, remote_id) DO UPDATE SET created = excluded.created`,
		m.User, m.Transport, m.Peer, m.StanzaID, m.RemoteID, dbTime(created))
	if err != nil {
		return fmt.Errorf("store: put message id %s/%s %s: %w", m.User, m.Transport, m.Peer, err)
	}
	return nil
}

func (s *sqlStore) findMessageID(ctx context.Context, col, user, transport, peer, id string) (*MessageID, error) {
	m := &MessageID{User: user, Transport: transport, Peer: peer}
	err := s.b.reader().queryRow(ctx, `SELECT stanza_id, remote_id, created FROM message_ids
		WHERE user_jid = ? AND transport = ? AND peer = ? AND `+col+` = ?
		ORDER BY created DESC, n DESC LIMIT 1`,
		user, transport, peer, id).Scan(&m.StanzaID, &m.RemoteID, &m.CreatedAt)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			err = ErrNotFound
		}
		return nil, fmt.Errorf("store: find message by %s %s/%s %s: %w", col, user, transport, peer, err)
	}
	m.CreatedAt = m.CreatedAt.UTC()
	return m, nil
}

func (s *sqlStore) FindByStanzaID(ctx context.Context, user, transport, peer, stanzaID string) (*MessageID, error) {
	return s.findMessageID(ctx, "stanza_id", user, transport, peer, stanzaID)
}

func (s *sqlStore) FindByRemoteID(ctx context.Context, user, transport, peer, remoteID string) (*MessageID, error) {
	return s.findMessageID(ctx, "remote_id", user, transport, peer, remoteID)
}

// ---- queue ----

// Enqueue stores it and sets it.ID and it.CreatedAt; a zero NextTry means
// due now.
func (s *sqlStore) Enqueue(ctx context.Context, it *QueueItem) error {
	if it == nil || it.Transport == "" || it.User == "" {
		return errors.New("store: enqueue: transport and user must not be empty")
	}
	now := dbTime(s.now())
	next := now
	if !it.NextTry.IsZero() {
		next = dbTime(it.NextTry)
	}
	payload := it.Payload
	if payload == nil {
		payload = []byte{}
	}
	var id int64
	err := s.b.writer().queryRow(ctx, `INSERT INTO queue (transport, user_jid, peer, stanza_id, payload, attempts, next_try, last_error, created)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		it.Transport, it.User, it.Peer, it.StanzaID, payload, it.Attempts, next, it.LastError, now).Scan(&id)
	if err != nil {
		return fmt.Errorf("store: enqueue %s for %s: %w", it.Transport, it.User, err)
	}
	it.ID = id
	it.CreatedAt = now
	it.NextTry = next
	return nil
}

// Claim returns up to limit (DefaultDueLimit when ≤ 0) items of transport
// whose NextTry is not after now, earliest first, and leases them: in one
// write transaction it selects them and moves their next_try to
// now+lease (dbTime, so that Lease is exactly the value stored and the
// equality checks of Dequeue and Reschedule match on both databases). The
// items carry the NextTry they had before (when they fell due) and the
// lease end in Lease. See Store.Claim.
//
// On PostgreSQL the select locks the rows it picks and skips the rows
// another claim holds (FOR UPDATE SKIP LOCKED), so that concurrent claims
// neither wait for each other nor pick one row twice; a row that another
// claim leased and committed after this one's snapshot is re-checked
// against next_try <= now (READ COMMITTED), fails it, and is left out. On
// SQLite the write transaction (BEGIN IMMEDIATE on the single writer
// connection) excludes every other writer, other processes included.
// Both databases thus give each due item to one claim only.
func (s *sqlStore) Claim(ctx context.Context, transport string, now time.Time, lease time.Duration, limit int) ([]QueueItem, error) {
	if lease < time.Microsecond {
		return nil, fmt.Errorf("store: claim %s: the lease must be at least 1µs, got %v", transport, lease)
	}
	if limit <= 0 {
		limit = DefaultDueLimit
	}
	until := dbTime(now.Add(lease))
	var out []QueueItem
	err := runTx(ctx, s.b, func(tx txn) error {
		rs, err := tx.query(ctx, `SELECT id, transport, user_jid, peer, stanza_id, payload, attempts, next_try, last_error, created
			FROM queue WHERE transport = ? AND next_try <= ? ORDER BY next_try, id LIMIT ?`+s.b.dialect().skipLocked,
			transport, dbTime(now), limit)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var it QueueItem
			if err := rs.Scan(&it.ID, &it.Transport, &it.User, &it.Peer, &it.StanzaID, &it.Payload,
				&it.Attempts, &it.NextTry, &it.LastError, &it.CreatedAt); err != nil {
				return err
			}
			it.NextTry = it.NextTry.UTC()
			it.CreatedAt = it.CreatedAt.UTC()
			it.Lease = until
			out = append(out, it)
		}
		if err := rs.Err(); err != nil {
			return err
		}
		// The connection is the transaction's: close the result set
		// before the updates.
		rs.Close()
		args := make([][]any, len(out))
		for i, it := range out {
			args[i] = []any{until, it.ID}
		}
		return tx.execBatch(ctx, "UPDATE queue SET next_try = ? WHERE id = ?", args)
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim %s: %w", transport, err)
	}
	// PostgreSQL sorts before it locks and re-checks, so a row changed
	// meanwhile may come out of order: sort here, as promised.
	SortQueueItems(out)
	return out, nil
}

// SortQueueItems puts items in the order Claim returns them: earliest
// NextTry first, then by ID.
func SortQueueItems(items []QueueItem) {
	slices.SortFunc(items, func(a, b QueueItem) int {
		if c := a.NextTry.Compare(b.NextTry); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// Reschedule adds one to the item's Attempts and sets its NextTry (which
// ends a Claim's lease) and LastError, if its next_try is still lease (any
// next_try when lease is zero). An item under another lease is an error
// wrapping ErrLeaseLost, a missing id one wrapping ErrNotFound. See
// Store.Reschedule.
func (s *sqlStore) Reschedule(ctx context.Context, id int64, lease time.Time, next time.Time, lastErr string) error {
	q, args := "UPDATE queue SET attempts = attempts + 1, next_try = ?, last_error = ? WHERE id = ?", []any{dbTime(next), lastErr, id}
	if !lease.IsZero() {
		q, args = q+" AND next_try = ?", append(args, dbTime(lease))
	}
	n, err := s.b.writer().exec(ctx, q, args...)
	if err == nil && n == 0 {
		err = s.leaseLost(ctx, id, lease)
	}
	if err != nil {
		return fmt.Errorf("store: reschedule queue item %d: %w", id, err)
	}
	return nil
}

// Dequeue removes the item if its next_try is still lease (whatever it is
// when lease is zero). An item that is already gone (dequeued, or its
// account deleted) is not an error; one under another lease is an error
// wrapping ErrLeaseLost. See Store.Dequeue.
func (s *sqlStore) Dequeue(ctx context.Context, id int64, lease time.Time) error {
	if lease.IsZero() {
		if _, err := s.b.writer().exec(ctx, "DELETE FROM queue WHERE id = ?", id); err != nil {
			return fmt.Errorf("store: dequeue item %d: %w", id, err)
		}
		return nil
	}
	n, err := s.b.writer().exec(ctx, "DELETE FROM queue WHERE id = ? AND next_try = ?", id, dbTime(lease))
	if err == nil && n == 0 {
		err = s.leaseLost(ctx, id, lease)
		if errors.Is(err, ErrNotFound) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("store: dequeue item %d: %w", id, err)
	}
	return nil
}

// leaseLost tells why a conditional update or delete of queue item id
// touched no row: an error wrapping ErrLeaseLost if the item is there
// (under another lease, or rescheduled), ErrNotFound if it is gone.
//
// This is a second statement, not the same transaction: an item that its
// new holder dequeues in between reads as gone. That is no worse than the
// new holder dequeuing it just before the first statement, which callers
// cannot tell from gone either; ids are never reused (AUTOINCREMENT,
// identity), so a gone item never reads as present.
func (s *sqlStore) leaseLost(ctx context.Context, id int64, lease time.Time) error {
	var cur time.Time
	err := s.b.writer().queryRow(ctx, "SELECT next_try FROM queue WHERE id = ?", id).Scan(&cur)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return err
	}
	return fmt.Errorf("lease until %s is over, next try now %s: %w",
		dbTime(lease).Format(time.RFC3339Nano), cur.UTC().Format(time.RFC3339Nano), ErrLeaseLost)
}

// ---- state ----

// GetState returns the value, or an error wrapping ErrNotFound.
func (s *sqlStore) GetState(ctx context.Context, user, transport, key string) ([]byte, error) {
	var v []byte
	err := s.b.reader().queryRow(ctx, "SELECT value FROM state WHERE user_jid = ? AND transport = ? AND state_key = ?",
		user, transport, key).Scan(&v)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			err = ErrNotFound
		}
		return nil, fmt.Errorf("store: get state %s/%s %q: %w", user, transport, key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// DeleteState removes the value (none there is not an error).
func (s *sqlStore) DeleteState(ctx context.Context, user, transport, key string) error {
	if _, err := s.b.writer().exec(ctx, "DELETE FROM state WHERE user_jid = ? AND transport = ? AND state_key = ?", user, transport, key); err != nil {
		return fmt.Errorf("store: delete state %s/%s %q: %w", user, transport, key, err)
	}
	return nil
}

// sqlPutState sets one state value (PutState, WriteBatch).
const sqlPutState = `INSERT INTO state (user_jid, transport, state_key, value, updated) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (user_jid, transport, state_key) DO UPDATE SET value = excluded.value, updated = excluded.updated`

// PutState sets the value (nil is stored as empty).
func (s *sqlStore) PutState(ctx context.Context, user, transport, key string, value []byte) error {
	if user == "" || transport == "" || key == "" {
		return fmt.Errorf("store: put state %s/%s %q: user, transport and key must not be empty", user, transport, key)
	}
	if value == nil {
		value = []byte{}
	}
	_, err := s.b.writer().exec(ctx, sqlPutState, user, transport, key, value, dbTime(s.now()))
	if err != nil {
		return fmt.Errorf("store: put state %s/%s %q: %w", user, transport, key, err)
	}
	return nil
}
