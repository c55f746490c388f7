package store

import (
	"context"
	"fmt"
	"time"
)

// migrationPage is how many rows of the old archive chunkArchive reads at
// a time.
const migrationPage = 5000

// chunkArchive is the Go step of schema version 2: it moves every row of
// the version-1 archive table into archive_chunks and drops the table.
//
// An old row's seq (1, 2, 3… in the order rows were written) becomes its
// entry's seq, so old entries keep their order and sort before every
// entry archived since (NewArchiveID's seqs are Unix microseconds). Their
// ids become formatArchiveSeq(seq): the ids of entries archived before the
// upgrade change, and a client holding an old id (a MAM cursor, a reply's
// reference) gets item-not-found for it. Texts are cleaned as
// AppendArchive cleans them.
func chunkArchive(ctx context.Context, tx txn) error {
	const cols = "SELECT user_jid, transport, peer, seq, nick, outgoing, body, action, remote_id, origin_id, sent_at FROM archive"
	const order = " ORDER BY user_jid, transport, peer, seq LIMIT ?"
	var c *chunker
	var done []chunkRow // chunks to write
	var moved, chunks int64
	var lastUser, lastTransport, lastPeer string
	var lastSeq int64
	for first := true; ; first = false {
		// Keyset paging: PostgreSQL runs no statement while a result is open.
		q, args := cols+order, []any{migrationPage}
		if !first {
			q = cols + " WHERE (user_jid, transport, peer, seq) > (?, ?, ?, ?)" + order
			args = []any{lastUser, lastTransport, lastPeer, lastSeq, migrationPage}
		}
		rs, err := tx.query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("reading the old archive: %w", err)
		}
		n := 0
		for rs.Next() {
			var user, transport, peer string
			var r rec
			var outgoing, action bool
			var at time.Time
			if err := rs.Scan(&user, &transport, &peer, &r.seq, &r.nick, &outgoing, &r.body, &action, &r.remoteID, &r.originID, &at); err != nil {
				rs.Close()
				return fmt.Errorf("reading the old archive: %w", err)
			}
			n++
			if c == nil || c.user != user || c.transport != transport || c.peer != peer {
				if c != nil {
					done = append(done, c.done()...)
				}
				c = newChunker(user, transport, peer)
			}
			r.at = at.UnixMicro()
			r.nick, r.body = cleanText(r.nick), cleanText(r.body)
			r.remoteID, r.originID = cleanText(r.remoteID), cleanText(r.originID)
			if outgoing {
				r.flags |= chunkOutgoing
			}
			if action {
				r.flags |= chunkAction
			}
			c.add(&r)
			lastUser, lastTransport, lastPeer, lastSeq = user, transport, peer, r.seq
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return fmt.Errorf("reading the old archive: %w", err)
		}
		if c != nil {
			if n < migrationPage {
				c.flush()
			}
			// The current archive's finished chunks go now, the one
			// being filled with the next page.
			done = append(done, c.rows...)
			c.rows = c.rows[:0]
		}
		ins := make([][]any, len(done))
		for i := range done {
			ins[i] = done[i].args()
			moved += int64(done[i].entries)
		}
		if err := tx.execBatch(ctx, insertChunk, ins); err != nil {
			return fmt.Errorf("writing archive chunks: %w", err)
		}
		chunks += int64(len(done))
		clear(done)
		done = done[:0]
		if n < migrationPage {
			break
		}
	}
	var left int64
	if err := tx.queryRow(ctx, "SELECT COUNT(*) FROM archive").Scan(&left); err != nil {
		return err
	}
	if left != moved {
		return fmt.Errorf("the old archive has %d rows but %d were moved into %d chunks", left, moved, chunks)
	}
	if _, err := tx.exec(ctx, "DROP TABLE archive"); err != nil {
		return fmt.Errorf("dropping the old archive: %w", err)
	}
	return nil
}
