// Package memstore is an in-memory store.Store for the unit tests of other
// packages. It keeps everything in maps behind one mutex, encrypts nothing
// and persists nothing: never use it outside tests. The real stores are in
// package store.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"switchboard/store"
)

// Store is an in-memory store.Store.
type Store struct {
	mu       sync.Mutex
	accounts map[[2]string]store.Account
	ids      []store.MessageID
	archive  []store.ArchiveEntry
	queue    map[int64]store.QueueItem
	state    map[[3]string][]byte
	qseq     int64
}

var _ store.Store = (*Store)(nil)

// New returns an empty in-memory store.
func New() *Store {
	return &Store{
		accounts: map[[2]string]store.Account{},
		queue:    map[int64]store.QueueItem{},
		state:    map[[3]string][]byte{},
	}
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// GetAccount implements store.Store.
func (s *Store) GetAccount(_ context.Context, user, transport string) (*store.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[[2]string{user, transport}]
	if !ok {
		return nil, store.ErrNotFound
	}
	a.Fields, a.Secrets = copyMap(a.Fields), copyMap(a.Secrets)
	return &a, nil
}

// PutAccount implements store.Store.
func (s *Store) PutAccount(_ context.Context, a *store.Account) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *a
	c.Fields, c.Secrets = copyMap(a.Fields), copyMap(a.Secrets)
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	c.UpdatedAt = time.Now()
	s.accounts[[2]string{a.User, a.Transport}] = c
	return nil
}

// DeleteAccount implements store.Store.
func (s *Store) DeleteAccount(_ context.Context, user, transport string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.accounts, [2]string{user, transport})
	ids := s.ids[:0]
	for _, m := range s.ids {
		if m.User != user || m.Transport != transport {
			ids = append(ids, m)
		}
	}
	s.ids = ids
	arch := s.archive[:0]
	for _, e := range s.archive {
		if e.User != user || e.Transport != transport {
			arch = append(arch, e)
		}
	}
	s.archive = arch
	for id, it := range s.queue {
		if it.User == user && it.Transport == transport {
			delete(s.queue, id)
		}
	}
	for k := range s.state {
		if k[0] == user && k[1] == transport {
			delete(s.state, k)
		}
	}
	return nil
}

// ListAccounts implements store.Store.
func (s *Store) ListAccounts(_ context.Context, transport string) ([]store.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Account
	for k, a := range s.accounts {
		if k[1] == transport {
			a.Fields, a.Secrets = copyMap(a.Fields), copyMap(a.Secrets)
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, nil
}

// PutMessageID implements store.Store.
func (s *Store) PutMessageID(_ context.Context, m store.MessageID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	s.ids = append(s.ids, m)
	return nil
}

func (s *Store) findID(match func(store.MessageID) bool) (*store.MessageID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.ids) - 1; i >= 0; i-- { // newest first
		if match(s.ids[i]) {
			m := s.ids[i]
			return &m, nil
		}
	}
	return nil, store.ErrNotFound
}

// FindByStanzaID implements store.Store.
func (s *Store) FindByStanzaID(_ context.Context, user, transport, peer, stanzaID string) (*store.MessageID, error) {
	return s.findID(func(m store.MessageID) bool {
		return m.User == user && m.Transport == transport && m.Peer == peer && m.StanzaID == stanzaID
	})
}

// FindByRemoteID implements store.Store.
func (s *Store) FindByRemoteID(_ context.Context, user, transport, peer, remoteID string) (*store.MessageID, error) {
	return s.findID(func(m store.MessageID) bool {
		return m.User == user && m.Transport == transport && m.Peer == peer && m.RemoteID == remoteID
	})
}

// AppendArchive implements store.Store with the id rules of the real
// stores: an empty ID becomes store.NewArchiveID(), any other must be an
// archive id (optionally followed by "~" and a suffix) or the whole batch
// fails unchanged; Seq is the ID's seq and a zero Time becomes now.
func (s *Store) AppendArchive(_ context.Context, entries []store.ArchiveEntry) error {
	ids := make([]string, len(entries))
	seqs := make([]int64, len(entries))
	for i, e := range entries {
		if e.User == "" || e.Transport == "" || e.Peer == "" {
			return fmt.Errorf("memstore: append archive: entry %d: user, transport and peer must not be empty", i)
		}
		ids[i] = e.ID
		if ids[i] == "" {
			ids[i] = store.NewArchiveID()
		}
		seq, ok := store.ArchiveSeq(ids[i])
		if !ok || len(ids[i]) > store.ArchiveIDLen && ids[i][store.ArchiveIDLen] != '~' {
			return fmt.Errorf("memstore: append archive: entry %d: id %q is not an archive id", i, ids[i])
		}
		seqs[i] = seq
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range entries {
		e := &entries[i]
		e.ID, e.Seq = ids[i], seqs[i]
		if e.Time.IsZero() {
			e.Time = now
		} else {
			e.Time = e.Time.UTC().Truncate(time.Microsecond)
		}
		s.archive = append(s.archive, *e)
	}
	return nil
}

// QueryArchive implements store.Store with the same paging rules as the
// real stores (pages in id order; Before pages backwards; Peer "" is every
// peer; a cursor not in the archive is ErrNotFound).
func (s *Store) QueryArchive(_ context.Context, q store.ArchiveQuery) (*store.ArchivePage, error) {
	if q.User == "" || q.Transport == "" {
		return nil, fmt.Errorf("memstore: query archive: user and transport must not be empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultArchiveLimit
	}
	limit = min(limit, store.MaxArchiveLimit)
	var archive, match []store.ArchiveEntry
	for _, e := range s.archive {
		if e.User != q.User || e.Transport != q.Transport || q.Peer != "" && e.Peer != q.Peer {
			continue
		}
		archive = append(archive, e)
		if q.With != "" && e.Nick != q.With {
			continue
		}
		if !q.Start.IsZero() && e.Time.Before(q.Start) || !q.End.IsZero() && e.Time.After(q.End) {
			continue
		}
		match = append(match, e)
	}
	sort.SliceStable(match, func(i, j int) bool { return match[i].ID < match[j].ID })
	for _, id := range []string{q.AfterID, q.BeforeID} {
		if id != "" && !slices.ContainsFunc(archive, func(e store.ArchiveEntry) bool { return e.ID == id }) {
			return nil, fmt.Errorf("archive id %q: %w", id, store.ErrNotFound)
		}
	}
	var in []store.ArchiveEntry
	for _, e := range match {
		if (q.AfterID == "" || e.ID > q.AfterID) && (q.BeforeID == "" || e.ID < q.BeforeID) {
			in = append(in, e)
		}
	}
	page := &store.ArchivePage{Count: len(match), Complete: len(in) <= limit}
	if q.Before || q.BeforeID != "" {
		page.Entries = append(page.Entries, in[max(0, len(in)-limit):]...)
	} else {
		page.Entries = append(page.Entries, in[:min(len(in), limit)]...)
	}
	return page, nil
}

// PruneArchive implements store.Store.
func (s *Store) PruneArchive(_ context.Context, transport string, before time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	keep := s.archive[:0]
	for _, e := range s.archive {
		if e.Transport == transport && e.Time.Before(before) {
			n++
			continue
		}
		keep = append(keep, e)
	}
	s.archive = keep
	return n, nil
}

// Enqueue implements store.Store; a zero NextTry becomes now (due now).
func (s *Store) Enqueue(_ context.Context, it *store.QueueItem) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.qseq++
	it.ID = s.qseq
	if it.CreatedAt.IsZero() {
		it.CreatedAt = time.Now()
	}
	if it.NextTry.IsZero() {
		it.NextTry = it.CreatedAt
	}
	s.queue[it.ID] = *it
	return nil
}

// Claim implements store.Store. It picks and leases the items under the
// store's mutex, so that concurrent claims never return one item twice;
// like the real stores it returns them with the NextTry they had before
// (when they fell due), earliest first, then by ID, and with Lease set to
// now+lease in UTC truncated to microseconds.
func (s *Store) Claim(_ context.Context, transport string, now time.Time, lease time.Duration, limit int) ([]store.QueueItem, error) {
	if lease < time.Microsecond {
		return nil, fmt.Errorf("memstore: claim %s: the lease must be at least 1µs, got %v", transport, lease)
	}
	if limit <= 0 {
		limit = store.DefaultDueLimit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.QueueItem
	for _, it := range s.queue {
		if it.Transport == transport && !it.NextTry.After(now) {
			out = append(out, it)
		}
	}
	store.SortQueueItems(out)
	out = out[:min(len(out), limit)]
	until := storeTime(now.Add(lease))
	for i, it := range out {
		leased := it
		leased.NextTry = until
		s.queue[it.ID] = leased
		out[i].Payload = slices.Clone(it.Payload) // the caller's own copy
		out[i].Lease = until
	}
	return out, nil
}

// storeTime is a time as the real stores keep it: UTC, microseconds.
func storeTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// held returns item id if the caller's lease is still its lease (a
// zero lease holds any item), as the real stores check it: store.ErrNotFound
// when it is gone, an error wrapping store.ErrLeaseLost when it is under
// another lease or was rescheduled.
func (s *Store) held(id int64, lease time.Time) (store.QueueItem, error) {
	it, ok := s.queue[id]
	if !ok {
		return it, store.ErrNotFound
	}
	if !lease.IsZero() && !it.NextTry.Equal(storeTime(lease)) {
		return it, fmt.Errorf("memstore: queue item %d: lease until %v is over, next try now %v: %w",
			id, storeTime(lease), it.NextTry, store.ErrLeaseLost)
	}
	return it, nil
}

// Reschedule implements store.Store: only while lease is the item's (any
// item when lease is zero).
func (s *Store) Reschedule(_ context.Context, id int64, lease time.Time, next time.Time, lastErr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.held(id, lease)
	if err != nil {
		return err
	}
	it.Attempts++
	it.NextTry = next
	it.LastError = lastErr
	s.queue[id] = it
	return nil
}

// Dequeue implements store.Store: only while lease is the item's (any
// item when lease is zero); an item already gone is not an error.
func (s *Store) Dequeue(_ context.Context, id int64, lease time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.held(id, lease); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	delete(s.queue, id)
	return nil
}

// GetState implements store.Store.
func (s *Store) GetState(_ context.Context, user, transport, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.state[[3]string{user, transport, key}]
	if !ok {
		return nil, store.ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

// PutState implements store.Store.
func (s *Store) PutState(_ context.Context, user, transport, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state[[3]string{user, transport, key}] = append([]byte(nil), value...)
	return nil
}

// DeleteState implements store.Store.
func (s *Store) DeleteState(_ context.Context, user, transport, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.state, [3]string{user, transport, key})
	return nil
}

// Close implements store.Store.
func (s *Store) Close() error { return nil }
