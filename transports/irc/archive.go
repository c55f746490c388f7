package irc

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/store"
)

// Archive batching: entries are collected by one goroutine of the transport
// and written with one AppendArchive (one transaction) every flushEvery or
// every flushSize entries, whichever comes first. Large batches matter: a
// message to a room of N users is N entries, and the cost of a transaction
// is paid once per batch.
const (
	flushEvery   = 50 * time.Millisecond
	flushSize    = 1000
	archiveQueue = 8192 // entries waiting; beyond that add waits
	// archiveWait bounds how long add waits for room before it drops an
	// entry (and counts it): only a store that stopped answering gets there.
	archiveWait = 10 * time.Second
)

// archiver is the transport's archive writer.
type archiver struct {
	st      store.Store
	log     *slog.Logger
	in      chan store.ArchiveEntry
	dropped atomic.Int64
	ids     msgidIDs
	// flushed, when set (tests), is signalled after every write.
	flushed chan struct{}
}

func newArchiver(st store.Store, log *slog.Logger) *archiver {
	return &archiver{st: st, log: log, in: make(chan store.ArchiveEntry, archiveQueue)}
}

// add queues an entry. When the queue is full it waits for the writer (up
// to archiveWait): the user's goroutine stops reading IRC meanwhile, which
// pushes back on the server instead of losing history. Only a store that
// stopped answering makes it drop (and count) entries.
func (a *archiver) add(e store.ArchiveEntry) {
	select {
	case a.in <- e:
		return
	default:
	}
	t := time.NewTimer(archiveWait)
	defer t.Stop()
	select {
	case a.in <- e:
	case <-t.C:
		if a.dropped.Add(1)%1000 == 1 {
			a.log.Warn("the IRC archive cannot keep up; messages are not archived", "dropped", a.dropped.Load())
		}
	}
}

// run writes batches until ctx is done, then writes what is left.
func (a *archiver) run(ctx context.Context) {
	batch := make([]store.ArchiveEntry, 0, flushSize)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		a.write(batch)
		clear(batch)
		batch = batch[:0]
		if a.flushed != nil {
			select {
			case a.flushed <- struct{}{}:
			default:
			}
		}
	}
	for {
		select {
		case e := <-a.in:
			batch = append(batch, e)
			if len(batch) >= flushSize {
				flush()
			}
		case <-tick.C:
			flush()
		case <-ctx.Done():
			for {
				select {
				case e := <-a.in:
					batch = append(batch, e)
					if len(batch) >= flushSize {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
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
