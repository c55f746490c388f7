package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Batcher is implemented by stores that write many queue items and
// message-id pairs in one transaction (group commit): a webhook receiver
// that must store each request durably before answering it amortises one
// commit over every request waiting meanwhile. Both SQL stores implement
// it; callers fall back to Enqueue/Dequeue/PutMessageID without it.
type Batcher interface {
	// EnqueueBatch stores the items (setting ID, CreatedAt and NextTry as
	// Enqueue does) and the pairs (as PutMessageID does) in one
	// transaction: all of them, or none and an error.
	EnqueueBatch(ctx context.Context, items []*QueueItem, pairs []MessageID) error
	// DequeueBatch writes the pairs and removes the items (each only
	// while its Lease is still the item's, as Dequeue) in one
	// transaction. It returns the ids of the items it did not remove
	// because their lease was lost or they were gone.
	DequeueBatch(ctx context.Context, items []QueueItem, pairs []MessageID) (notRemoved []int64, err error)
	// HasStanzaID reports whether a pair with that stanza id exists: an
	// exact lookup on the unique index, for deduplication on a hot path
	// (FindByStanzaID's "newest first" order can make SQLite walk the
	// index on created instead).
	HasStanzaID(ctx context.Context, user, transport, peer, stanzaID string) (bool, error)
	// WriteBatch writes the pairs (as PutMessageID does) and the state
	// values (as PutState does) in one transaction: a delivery worker
	// that records many messages at once pays for one commit.
	WriteBatch(ctx context.Context, pairs []MessageID, states []StateValue) error
}

// StateValue is one per-user state value, for Batcher.WriteBatch.
type StateValue struct {
	User, Transport, Key string
	Value                []byte
}

// WriteBatch implements Batcher.
func (s *sqlStore) WriteBatch(ctx context.Context, pairs []MessageID, states []StateValue) error {
	if err := checkPairs(pairs); err != nil {
		return fmt.Errorf("store: write batch: %w", err)
	}
	args := make([][]any, len(states))
	now := dbTime(s.now())
	for i, v := range states {
		if v.User == "" || v.Transport == "" || v.Key == "" {
			return errors.New("store: write batch: a state value needs user, transport and key")
		}
		val := v.Value
		if val == nil {
			val = []byte{}
		}
		args[i] = []any{v.User, v.Transport, v.Key, val, now}
	}
	if len(pairs) == 0 && len(states) == 0 {
		return nil
	}
	err := runTx(ctx, s.b, func(tx txn) error {
		if err := putPairs(ctx, tx, pairs, now); err != nil {
			return err
		}
		if len(args) == 0 {
			return nil
		}
		return tx.execBatch(ctx, sqlPutState, args)
	})
	if err != nil {
		return fmt.Errorf("store: write batch of %d ids and %d values: %w", len(pairs), len(states), err)
	}
	return nil
}

// HasStanzaID implements Batcher.
func (s *sqlStore) HasStanzaID(ctx context.Context, user, transport, peer, stanzaID string) (bool, error) {
	var one int
	err := s.b.reader().queryRow(ctx, `SELECT 1 FROM message_ids WHERE user_jid = ? AND transport = ? AND peer = ? AND stanza_id = ? LIMIT 1`,
		user, transport, peer, stanzaID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: has message id %s/%s %s: %w", user, transport, peer, err)
	}
	return true, nil
}

var _ Batcher = (*sqlStore)(nil)

// EnqueueBatch implements Batcher.
func (s *sqlStore) EnqueueBatch(ctx context.Context, items []*QueueItem, pairs []MessageID) error {
	now := dbTime(s.now())
	for _, it := range items {
		if it == nil || it.Transport == "" || it.User == "" {
			return errors.New("store: enqueue batch: transport and user must not be empty")
		}
	}
	if err := checkPairs(pairs); err != nil {
		return fmt.Errorf("store: enqueue batch: %w", err)
	}
	ids := make([]int64, len(items))
	err := runTx(ctx, s.b, func(tx txn) error {
		for i, it := range items {
			next := now
			if !it.NextTry.IsZero() {
				next = dbTime(it.NextTry)
			}
			payload := it.Payload
			if payload == nil {
				payload = []byte{}
			}
			if err := tx.queryRow(ctx, `INSERT INTO queue (transport, user_jid, peer, stanza_id, payload, attempts, next_try, last_error, created)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
				it.Transport, it.User, it.Peer, it.StanzaID, payload, it.Attempts, next, it.LastError, now).Scan(&ids[i]); err != nil {
				return err
			}
		}
		return putPairs(ctx, tx, pairs, now)
	})
	if err != nil {
		return fmt.Errorf("store: enqueue batch of %d: %w", len(items), err)
	}
	for i, it := range items {
		it.ID, it.CreatedAt = ids[i], now
		if it.NextTry.IsZero() {
			it.NextTry = now
		} else {
			it.NextTry = dbTime(it.NextTry)
		}
	}
	return nil
}

// checkPairs refuses a message id pair without user, transport, stanza
// id or remote id (what PutMessageID refuses).
func checkPairs(pairs []MessageID) error {
	for _, m := range pairs {
		if m.User == "" || m.Transport == "" || m.StanzaID == "" || m.RemoteID == "" {
			return errors.New("a message id pair needs user, transport, stanza id and remote id")
		}
	}
	return nil
}

func putPairs(ctx context.Context, tx txn, pairs []MessageID, now time.Time) error {
	if len(pairs) == 0 {
		return nil
	}
	args := make([][]any, len(pairs))
	for i, m := range pairs {
		created := now
		if !m.CreatedAt.IsZero() {
			created = dbTime(m.CreatedAt)
		}
		args[i] = []any{m.User, m.Transport, m.Peer, m.StanzaID, m.RemoteID, created}
	}
	return tx.execBatch(ctx, `INSERT INTO message_ids (user_jid, transport, peer, stanza_id, remote_id, created)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_jid, transport, peer, stanza_id, remote_id) DO UPDATE SET created = excluded.created`, args)
}

// DequeueBatch implements Batcher.
func (s *sqlStore) DequeueBatch(ctx context.Context, items []QueueItem, pairs []MessageID) ([]int64, error) {
	now := dbTime(s.now())
	var left []int64
	err := runTx(ctx, s.b, func(tx txn) error {
		left = left[:0]
		if err := putPairs(ctx, tx, pairs, now); err != nil {
			return err
		}
		for _, it := range items {
			n, err := tx.exec(ctx, "DELETE FROM queue WHERE id = ? AND next_try = ?", it.ID, dbTime(it.Lease))
			if err != nil {
				return err
			}
			if n == 0 {
				left = append(left, it.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: dequeue batch of %d: %w", len(items), err)
	}
	return left, nil
}
