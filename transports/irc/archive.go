package irc

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/store"
)

// Archive batching: entries wait in a channel; one goroutine of the
// transport takes them flushEvery after the first one arrived (sooner when
// flushSize are waiting) and writes them with one AppendArchive (one
// transaction) per flushSize. Large batches matter twice: the cost of a
// transaction is paid once per batch, and the store writes one chunk row
// per user and room in a batch, so the longer entries wait, the more of
// one room's messages share a row (a message to a room of N users is N
// entries in N archives). Reads never miss what waits: history and MAM
// queries call sync first. What a crash can lose is the last flushEvery of
// archive (the messages themselves were delivered). The writer is not
// woken per entry and sleeps while nothing is archived.
const (
	flushEvery   = time.Second
	flushSize    = 1000
	archiveQueue = 8192 // entries waiting; beyond that add waits
	// archiveWait bounds how long add waits for room before it drops an
	// entry (and counts it): only a store that stopped answering gets there.
	archiveWait = 10 * time.Second
)

// archiver is the transport's archive writer.
type archiver struct {
	st      store.Archive
	log     *slog.Logger
	in      chan store.ArchiveEntry
	dropped atomic.Int64
	// idle says the writer waits for wake; the add that finds it idle
	// wakes it. full is poked when flushSize entries wait.
	idle atomic.Bool
	wake chan struct{}
	full chan struct{}
	// syncs asks the writer to write what waits now and close the channel.
	syncs chan chan struct{}
	// running says run has started; stopped is closed when it returned.
	running atomic.Bool
	stopped chan struct{}
	ids     msgidIDs
	// flushed, when set (tests), is signalled after every write.
	flushed chan struct{}
}

func newArchiver(st store.Archive, log *slog.Logger) *archiver {
	return &archiver{st: st, log: log, in: make(chan store.ArchiveEntry, archiveQueue),
		wake: make(chan struct{}, 1), full: make(chan struct{}, 1), syncs: make(chan chan struct{}), stopped: make(chan struct{})}
}

// add queues an entry. When the queue is full it waits for the writer (up
// to archiveWait): the user's goroutine stops reading IRC meanwhile, which
// pushes back on the server instead of losing history. Only a store that
// stopped answering makes it drop (and count) entries, or a full queue
// with no writer to wait for (never started, as in unit tests, or stopped
// at shutdown): waiting would only hold the user's goroutine for nothing.
func (a *archiver) add(e store.ArchiveEntry) {
	select {
	case a.in <- e:
		a.queued()
		return
	default:
	}
	if !a.writing() {
		a.drop("the IRC archive is not running; messages are not archived")
		return
	}
	poke(a.full)
	t := time.NewTimer(archiveWait)
	defer t.Stop()
	select {
	case a.in <- e:
		a.queued()
	case <-t.C:
		a.drop("the IRC archive cannot keep up; messages are not archived")
	case <-a.stopped:
		a.drop("the IRC archive is not running; messages are not archived")
	}
}

// writing reports whether the writer runs (started and not returned).
func (a *archiver) writing() bool {
	if !a.running.Load() {
		return false
	}
	select {
	case <-a.stopped:
		return false
	default:
		return true
	}
}

// drop counts an entry that is not archived, logging every 1,000th.
func (a *archiver) drop(why string) {
	if a.dropped.Add(1)%1000 == 1 {
		a.log.Warn(why, "dropped", a.dropped.Load())
	}
}

// sync returns once every entry added before the call is written (or ctx
// ends, or the writer stopped): queries call it so that they see what
// waits in the batch.
func (a *archiver) sync(ctx context.Context) {
	if !a.running.Load() {
		return // no writer (a transport that was never run): nothing to wait for
	}
	done := make(chan struct{})
	select {
	case a.syncs <- done:
	case <-ctx.Done():
		return
	case <-a.stopped:
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// queued wakes the writer for an entry just queued if it sleeps, and
// hurries it when a batch is full.
func (a *archiver) queued() {
	if a.idle.Load() && a.idle.CompareAndSwap(true, false) {
		poke(a.wake)
	}
	if len(a.in) >= flushSize {
		poke(a.full)
	}
}

// poke signals a channel of capacity 1 without blocking.
func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run writes batches until ctx is done, then writes what is left.
func (a *archiver) run(ctx context.Context) {
	a.running.Store(true)
	defer close(a.stopped)
	batch := make([]store.ArchiveEntry, 0, flushSize)
	timer := time.NewTimer(flushEvery)
	timer.Stop()
	defer timer.Stop()
	// drain writes what waits now, in batches of flushSize.
	drain := func() {
		for n := len(a.in); n > 0; {
			k := min(n, flushSize)
			for range k {
				batch = append(batch, <-a.in)
			}
			n -= k
			a.write(batch)
			clear(batch)
			batch = batch[:0]
		}
		if a.flushed != nil {
			poke(a.flushed)
		}
	}
	for {
		// Sleep until an entry comes (or one is already there).
		a.idle.Store(true)
		if len(a.in) > 0 {
			a.idle.Store(false)
		} else {
			select {
			case <-a.wake:
			case <-a.full:
				a.idle.Store(false)
			case done := <-a.syncs:
				a.idle.Store(false)
				drain()
				close(done)
				continue
			case <-ctx.Done():
				drain()
				return
			}
		}
		// Let more come for flushEvery, unless a batch is full already.
		if len(a.in) < flushSize {
			timer.Reset(flushEvery)
			select {
			case <-timer.C:
			case <-a.full:
				timer.Stop()
			case done := <-a.syncs:
				timer.Stop()
				drain()
				close(done)
				continue
			case <-ctx.Done():
				drain()
				return
			}
		}
		drain()
	}
}

// write stores a batch; when the batch fails as a whole (one bad entry
// fails the transaction) the entries are retried one by one so that one
// does not cost the others.
func (a *archiver) write(batch []store.ArchiveEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := a.st.AppendArchive(ctx, batch)
	if err == nil {
		return
	}
	a.log.Warn("writing a batch of the IRC archive failed; retrying entry by entry", "entries", len(batch), "err", err)
	for i := range batch {
		if err := a.st.AppendArchive(ctx, batch[i:i+1]); err != nil {
			a.log.Warn("an IRC archive entry could not be written", "user", batch[i].User, "peer", batch[i].Peer, "err", err)
		}
	}
}

// msgidIDs gives an IRC msgid one archive id (store.NewArchiveID()+"~"+
// msgid) for every user of the transport: an archive id need only be
// unique within one user's archive, where a msgid appears once. A message
// that reaches N users of the gateway costs one id, and a later reference
// to its msgid (+draft/reply) maps back to the stanza-id the message had,
// as long as it is among the last recentMsgids to recentMsgids*2 msgids
// (older references get a new id, which matches nothing).
type msgidIDs struct {
	mu        sync.Mutex
	cur, prev map[string]string
}

const recentMsgids = 1 << 15

// id returns the archive id of msgid, making one if it is not recent.
func (m *msgidIDs) id(msgid string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id, ok := m.cur[msgid]; ok {
		return id
	}
	id, ok := m.prev[msgid]
	if !ok {
		id = store.NewArchiveID() + "~" + msgid
	}
	if m.cur == nil || len(m.cur) >= recentMsgids {
		m.prev, m.cur = m.cur, make(map[string]string)
	}
	m.cur[msgid] = id
	return id
}
