package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// AppendArchive writes all entries in one transaction, one archive_chunks
// row per archive (user, transport, peer) and batch, more when a chunk
// would pass maxChunkEntries entries, maxChunkBytes bytes or its seq or
// time span (see chunk.go); within an archive the entries keep slice
// order.
//
// An entry's ID is NewArchiveID() when empty; otherwise it must be an
// archive id, optionally followed by "~" and a suffix of valid UTF-8
// without NUL (ArchiveSeq), or the whole batch fails. IDs must be unique
// within the archive of a user and transport: NewArchiveID never repeats
// one, and the store does not look for duplicates (it has no index of
// ids: that is what chunks save). On success every entry has its ID, its
// Seq (parsed from the ID) and its Time (now when zero, else UTC
// truncated to microseconds); on error nothing was written and the
// entries are unchanged. Body, Nick, RemoteID and OriginID are stored as
// valid UTF-8 without NUL, which XML cannot carry: invalid bytes become
// U+FFFD and NULs are dropped; the entries keep what the caller gave.
func (s *sqlStore) AppendArchive(ctx context.Context, entries []ArchiveEntry) error {
	if len(entries) == 0 {
		return nil
	}
	errf := func(err error) error {
		return fmt.Errorf("store: append archive (%d entries, first %s/%s %s): %w",
			len(entries), entries[0].User, entries[0].Transport, entries[0].Peer, err)
	}
	now := dbTime(s.now()).UnixMicro()
	type archive struct{ user, transport, peer string }
	chunkers := map[archive]*chunker{}
	var order []*chunker
	var last *chunker
	ids := make([]string, len(entries))
	keys := make([]archiveKey, len(entries))
	ats := make([]int64, len(entries))
	for i := range entries {
		e := &entries[i]
		if e.User == "" || e.Transport == "" || e.Peer == "" {
			return errf(fmt.Errorf("entry %d: user, transport and peer must not be empty", i))
		}
		ids[i] = e.ID
		if ids[i] == "" {
			ids[i] = NewArchiveID()
		}
		k, ok := parseArchiveID(ids[i])
		if !ok {
			return errf(fmt.Errorf("entry %d: id %q is not an archive id (store.NewArchiveID(), optionally followed by \"~\" and a suffix)", i, ids[i]))
		}
		if k.hasSuffix && (!utf8.ValidString(k.suffix) || strings.IndexByte(k.suffix, 0) >= 0) {
			return errf(fmt.Errorf("entry %d: id %q holds invalid UTF-8 or NUL", i, ids[i]))
		}
		keys[i] = k
		ats[i] = now
		if !e.Time.IsZero() {
			ats[i] = dbTime(e.Time).UnixMicro()
		}
		r := rec{seq: k.seq, at: ats[i], suffix: k.suffix, nick: cleanText(e.Nick), body: cleanText(e.Body),
			remoteID: cleanText(e.RemoteID), originID: cleanText(e.OriginID)}
		if e.Outgoing {
			r.flags |= chunkOutgoing
		}
		if e.Action {
			r.flags |= chunkAction
		}
		if k.hasSuffix {
			r.flags |= chunkSuffix
		}
		c := last
		if c == nil || c.user != e.User || c.transport != e.Transport || c.peer != e.Peer {
			a := archive{e.User, e.Transport, e.Peer}
			if c = chunkers[a]; c == nil {
				c = newChunker(e.User, e.Transport, e.Peer)
				chunkers[a] = c
				order = append(order, c)
			}
			last = c
		}
		c.add(&r)
	}
	var args [][]any
	for _, c := range order {
		for _, row := range c.done() {
			args = append(args, row.args())
		}
	}
	err := runTx(ctx, s.b, func(tx txn) error {
		return tx.execBatch(ctx, insertChunk, args)
	})
	if err != nil {
		return errf(err)
	}
	for i := range entries {
		entries[i].ID = ids[i]
		entries[i].Seq = keys[i].seq
		entries[i].Time = time.UnixMicro(ats[i]).UTC()
	}
	return nil
}

// QueryArchive pages through one archive (XEP-0313 with XEP-0059 RSM).
//
// User and Transport are required; Peer selects one room or contact ("" is
// every peer of the user); With keeps one nick; Start and End bound Time,
// both inclusive. Paging: AfterID returns the entries after that one,
// oldest first; BeforeID the last Limit entries before that one; Before
// with an empty BeforeID the last page; neither, the first page. The page
// is always in chronological (id) order. Complete says that no entry lies
// beyond the page in the paging direction; Count is the number of entries
// matching the filters, ignoring paging. An AfterID or BeforeID that is
// not in this archive is an error wrapping ErrNotFound (XEP-0313
// item-not-found).
//
// Chunks may overlap in seq (an entry can be archived after younger
// ones), so the page is merged by id from the chunks in first_seq order,
// reading until no further chunk can hold an entry of the page.
func (s *sqlStore) QueryArchive(ctx context.Context, q ArchiveQuery) (*ArchivePage, error) {
	errf := func(err error) error {
		return fmt.Errorf("store: query archive %s/%s %s: %w", q.User, q.Transport, q.Peer, err)
	}
	if q.User == "" || q.Transport == "" {
		return nil, errf(errors.New("user and transport must not be empty"))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultArchiveLimit
	}
	limit = min(limit, MaxArchiveLimit)
	a := &archiveReader{q: q}
	if !q.Start.IsZero() {
		a.start, a.hasStart = dbTime(q.Start).UnixMicro(), true
	}
	if !q.End.IsZero() {
		a.end, a.hasEnd = dbTime(q.End).UnixMicro(), true
	}
	backward := q.Before || q.BeforeID != ""

	page := &ArchivePage{}
	err := runReadTx(ctx, s.b, func(tx txn) error {
		a.tx = tx
		var err error
		if page.Count, err = a.count(ctx); err != nil {
			return err
		}
		var after, before *archiveKey
		if q.AfterID != "" {
			if after, err = a.cursor(ctx, q.AfterID); err != nil {
				return err
			}
		}
		if q.BeforeID != "" {
			if before, err = a.cursor(ctx, q.BeforeID); err != nil {
				return err
			}
		}
		page.Entries, page.Complete, err = a.page(ctx, after, before, backward, limit)
		return err
	})
	if err != nil {
		return nil, errf(err)
	}
	return page, nil
}

// archiveReader runs the statements of one QueryArchive.
type archiveReader struct {
	tx               txn
	q                ArchiveQuery
	start, end       int64 // Unix µs
	hasStart, hasEnd bool
	views            []recView // decoding scratch
	decoded          int       // chunks decoded (tests)
}

// where is a conjunction of conditions with their arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w where) String() string { return strings.Join(w.conds, " AND ") }

func (w where) clone() where {
	return where{conds: slices.Clone(w.conds), args: slices.Clone(w.args)}
}

// archive is the condition selecting the queried archive's chunks.
func (a *archiveReader) archive() where {
	var w where
	w.add("user_jid = ?", a.q.User)
	w.add("transport = ?", a.q.Transport)
	if a.q.Peer != "" {
		w.add("peer = ?", a.q.Peer)
	}
	return w
}

// overlapping adds the conditions of chunks that may hold an entry
// between Start and End.
func (a *archiveReader) overlapping(w *where) {
	if a.hasStart {
		w.add("last_at >= ?", time.UnixMicro(a.start).UTC())
	}
	if a.hasEnd {
		w.add("first_at <= ?", time.UnixMicro(a.end).UTC())
	}
}

// inside returns the condition of chunks whose entries all lie between
// Start and End ("" without bounds).
func (a *archiveReader) inside() where {
	var w where
	if a.hasStart {
		w.add("first_at >= ?", time.UnixMicro(a.start).UTC())
	}
	if a.hasEnd {
		w.add("last_at <= ?", time.UnixMicro(a.end).UTC())
	}
	return w
}

// matches applies the With, Start and End filters to an entry.
func (a *archiveReader) matches(data []byte, v *recView) bool {
	return (a.q.With == "" || string(v.field(data, viewNick)) == a.q.With) &&
		(!a.hasStart || v.at >= a.start) && (!a.hasEnd || v.at <= a.end)
}

// chunk is a row of archive_chunks read for decoding.
type chunk struct {
	id                int64
	peer              string
	firstSeq, lastSeq int64
	entries           int64
	data              []byte
}

const chunkCols = "id, peer, first_seq, last_seq, entries, data"

// chunks reads the chunks selected by the statement.
func (a *archiveReader) chunks(ctx context.Context, q string, args ...any) ([]chunk, error) {
	rs, err := a.tx.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []chunk
	for rs.Next() {
		var c chunk
		if err := rs.Scan(&c.id, &c.peer, &c.firstSeq, &c.lastSeq, &c.entries, &c.data); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rs.Err()
}

// decode decodes a chunk into a.views (valid until the next decode) and
// checks it against its row.
func (a *archiveReader) decode(c *chunk) ([]recView, error) {
	a.decoded++
	var err error
	a.views, err = decodeViews(c.id, c.data, a.views)
	if err != nil {
		return nil, err
	}
	return a.views, checkChunk(c, a.views)
}

// checkChunk checks decoded entries against their row.
func checkChunk(c *chunk, vs []recView) error {
	if int64(len(vs)) != c.entries {
		return fmt.Errorf("archive chunk %d is corrupt: %d entries, its row says %d", c.id, len(vs), c.entries)
	}
	for i := range vs {
		if vs[i].seq < c.firstSeq || vs[i].seq > c.lastSeq {
			return fmt.Errorf("archive chunk %d is corrupt: entry %d has seq %d outside [%d, %d]", c.id, i, vs[i].seq, c.firstSeq, c.lastSeq)
		}
	}
	return nil
}

// decodeChunkRow decodes a chunk into recs and checks it against its row.
func decodeChunkRow(c *chunk) ([]rec, error) {
	vs, err := decodeViews(c.id, c.data, nil)
	if err != nil {
		return nil, err
	}
	if err := checkChunk(c, vs); err != nil {
		return nil, err
	}
	s := string(c.data)
	recs := make([]rec, len(vs))
	for i := range vs {
		recs[i] = vs[i].rec(s)
	}
	return recs, nil
}

// count counts the entries matching the filters: the sum of the chunks'
// entries when there are none, or for chunks lying wholly between Start
// and End; decoding the others.
func (a *archiveReader) count(ctx context.Context) (int, error) {
	w := a.archive()
	var n int64
	if a.q.With == "" {
		whole := w.clone()
		in := a.inside()
		whole.conds = append(whole.conds, in.conds...)
		whole.args = append(whole.args, in.args...)
		if err := a.tx.queryRow(ctx, "SELECT COALESCE(SUM(entries), 0) FROM archive_chunks WHERE "+whole.String(), whole.args...).Scan(&n); err != nil {
			return 0, err
		}
		if len(in.conds) == 0 {
			return int(n), nil
		}
		w.add("NOT ("+in.String()+")", in.args...)
	}
	a.overlapping(&w)
	cs, err := a.chunks(ctx, "SELECT "+chunkCols+" FROM archive_chunks WHERE "+w.String(), w.args...)
	if err != nil {
		return 0, err
	}
	for i := range cs {
		vs, err := a.decode(&cs[i])
		if err != nil {
			return 0, err
		}
		for j := range vs {
			if a.matches(cs[i].data, &vs[j]) {
				n++
			}
		}
	}
	return int(n), nil
}

// cursor finds an RSM id in the queried archive (whatever the filters).
func (a *archiveReader) cursor(ctx context.Context, id string) (*archiveKey, error) {
	k, ok := parseArchiveID(id)
	if ok {
		w := a.archive()
		w.add("first_seq <= ?", k.seq)
		w.add("first_seq >= ?", k.seq-maxChunkSeqSpan)
		w.add("last_seq >= ?", k.seq)
		cs, err := a.chunks(ctx, "SELECT "+chunkCols+" FROM archive_chunks WHERE "+w.String(), w.args...)
		if err != nil {
			return nil, err
		}
		for i := range cs {
			vs, err := a.decode(&cs[i])
			if err != nil {
				return nil, err
			}
			for j := range vs {
				if vs[j].cmpKey(cs[i].data, &k) == 0 {
					return &k, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("archive id %q: %w", id, ErrNotFound)
}

// candidate is an entry that may be on the page.
type candidate struct {
	v recView
	c *chunk
}

// The rows of chunks (without their data) are read in rounds of
// firstChunkRound, doubling up to maxChunkRound: a page usually needs one
// or two chunks, and PostgreSQL sends every row a statement selects.
const (
	firstChunkRound = 4
	maxChunkRound   = 256
)

// page reads the entries strictly between after and before (nil: no
// bound) that match the filters: the first limit of them, or the last
// limit when backward, in id order. complete says no other entry lies
// beyond them in the paging direction.
func (a *archiveReader) page(ctx context.Context, after, before *archiveKey, backward bool, limit int) ([]ArchiveEntry, bool, error) {
	w := a.archive()
	a.overlapping(&w)
	if after != nil {
		w.add("last_seq >= ?", after.seq)
		w.add("first_seq >= ?", after.seq-maxChunkSeqSpan)
	}
	if before != nil {
		w.add("first_seq <= ?", before.seq)
	}
	// The order of the index (id is SQLite's rowid, its last column).
	order, cont := " ORDER BY first_seq, last_seq, id LIMIT ?", "(first_seq, last_seq, id) > (?, ?, ?)"
	if backward {
		order, cont = " ORDER BY first_seq DESC, last_seq DESC, id DESC LIMIT ?", "(first_seq, last_seq, id) < (?, ?, ?)"
	}
	p := &pager{a: a, after: after, before: before, backward: backward, keep: limit + 1}
	var last *chunk
	for round := firstChunkRound; ; round = min(2*round, maxChunkRound) {
		ww := w
		if last != nil {
			ww = w.clone()
			ww.add(cont, last.firstSeq, last.lastSeq, last.id)
			if p.full {
				// Only chunks that may hold a better entry (see pager).
				kth := p.cands[p.keep-1].v.seq
				if backward {
					ww.add("last_seq >= ?", kth)
					ww.add("first_seq >= ?", kth-maxChunkSeqSpan)
				} else {
					ww.add("first_seq <= ?", kth)
				}
			}
		}
		// The rows without their data first: the pager skips many
		// chunks, or stops before them.
		rs, err := a.tx.query(ctx, "SELECT id, peer, first_seq, last_seq, entries FROM archive_chunks WHERE "+ww.String()+order, append(ww.args, round)...)
		if err != nil {
			return nil, false, err
		}
		var cs []chunk
		for rs.Next() {
			var c chunk
			if err := rs.Scan(&c.id, &c.peer, &c.firstSeq, &c.lastSeq, &c.entries); err != nil {
				rs.Close()
				return nil, false, err
			}
			cs = append(cs, c)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return nil, false, err
		}
		for i := range cs {
			c := &cs[i]
			last = c
			switch p.need(c) {
			case chunkStop:
				return p.result()
			case chunkSkip:
				continue
			}
			if c.data == nil {
				// Until the page is full, the next chunks will be read
				// too: fetch as many as should fill it.
				j, want := i+1, int64(p.keep-len(p.cands))-c.entries
				for ; !p.full && j < len(cs) && want > 0; j++ {
					want -= cs[j].entries
				}
				if err := a.chunkData(ctx, cs[i:j]); err != nil {
					return nil, false, err
				}
			}
			if err := p.add(c); err != nil {
				return nil, false, err
			}
		}
		if len(cs) < round {
			return p.result()
		}
	}
}

// chunkData reads the data of chunks.
func (a *archiveReader) chunkData(ctx context.Context, cs []chunk) error {
	byID := make(map[int64]*chunk, len(cs))
	args := make([]any, len(cs))
	for i := range cs {
		byID[cs[i].id] = &cs[i]
		args[i] = cs[i].id
	}
	rs, err := a.tx.query(ctx, "SELECT id, data FROM archive_chunks WHERE id IN (?"+strings.Repeat(", ?", len(cs)-1)+")", args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var id int64
		var data []byte
		if err := rs.Scan(&id, &data); err != nil {
			return err
		}
		if c := byID[id]; c != nil {
			c.data = data
		}
	}
	if err := rs.Err(); err != nil {
		return err
	}
	for i := range cs {
		if cs[i].data == nil {
			return fmt.Errorf("archive chunk %d has no data", cs[i].id)
		}
	}
	return nil
}

// pager keeps the best entries of a page while page reads chunks.
//
// Chunks come in first_seq order (descending when backward) and may
// overlap in seq: the pager keeps the best keep entries seen, and stops at
// the first chunk that cannot hold a better one. Forward, that is a chunk
// whose first_seq is past the last entry kept; backward, one whose
// first_seq is more than maxChunkSeqSpan before it (a chunk spans at most
// that, and the chunks after it start no later).
type pager struct {
	a             *archiveReader
	after, before *archiveKey
	backward      bool
	keep          int // limit+1: one more tells whether the page is complete
	cands         []candidate
	full          bool // cands[:keep] is full and sorted (what follows is not)
}

// better < 0 when x goes on the page before y does.
func (p *pager) better(x, y *candidate) int {
	if p.backward {
		x, y = y, x
	}
	return x.v.cmp(x.c.data, &y.v, y.c.data)
}

func (p *pager) sort() {
	slices.SortFunc(p.cands, func(x, y candidate) int { return p.better(&x, &y) })
}

// What the pager needs of a chunk.
const (
	chunkRead = iota // its entries
	chunkSkip        // nothing: all its entries are worse than the page's
	chunkStop        // nothing more: neither it nor any later chunk can hold an entry of the page
)

// need says whether the pager needs the entries of c, the next chunk.
func (p *pager) need(c *chunk) int {
	if !p.full {
		return chunkRead
	}
	kth := p.cands[p.keep-1].v.seq
	switch {
	case !p.backward && c.firstSeq > kth, p.backward && c.firstSeq < kth-maxChunkSeqSpan:
		return chunkStop
	case p.backward && c.lastSeq < kth:
		return chunkSkip
	}
	return chunkRead
}

// add takes the entries of a chunk.
func (p *pager) add(c *chunk) error {
	vs, err := p.a.decode(c)
	if err != nil {
		return err
	}
	// Entries are mostly in seq order within a chunk: visit them best
	// first, so that few go into cands once it is full.
	for j := range vs {
		if p.backward {
			j = len(vs) - 1 - j
		}
		x := candidate{v: vs[j], c: c}
		if p.after != nil && x.v.cmpKey(c.data, p.after) <= 0 || p.before != nil && x.v.cmpKey(c.data, p.before) >= 0 ||
			!p.a.matches(c.data, &x.v) || p.full && p.better(&x, &p.cands[p.keep-1]) >= 0 {
			continue
		}
		p.cands = append(p.cands, x)
		if !p.full && len(p.cands) == p.keep {
			p.sort()
			p.full = true
		}
	}
	if len(p.cands) > p.keep {
		p.sort()
		clear(p.cands[p.keep:])
		p.cands = p.cands[:p.keep]
	}
	return nil
}

// result is the page in chronological order, and whether it is complete.
func (p *pager) result() ([]ArchiveEntry, bool, error) {
	if !p.full {
		p.sort()
	}
	cands := p.cands
	complete := len(cands) < p.keep
	if !complete {
		cands = cands[:p.keep-1]
	}
	if p.backward {
		slices.Reverse(cands)
	}
	out := make([]ArchiveEntry, len(cands))
	for i := range cands {
		x := &cands[i]
		e, err := x.v.entry(x.c.data, p.a.q.User, p.a.q.Transport, x.c.peer)
		if err != nil {
			return nil, false, fmt.Errorf("archive chunk %d is corrupt: %w", x.c.id, err)
		}
		out[i] = e
	}
	return out, complete, nil
}

// cleanText makes s valid UTF-8 without NUL.
func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// PruneArchive deletes the archive entries of transport whose Time is
// before before, and the message-id pairs of transport created before it
// (replies and corrections to messages that old no longer route). It
// returns how many archive entries went. Chunks wholly older go; the few
// that straddle before (their time span is bounded, see chunk.go) are
// written again without their old entries.
func (s *sqlStore) PruneArchive(ctx context.Context, transport string, before time.Time) (int64, error) {
	cut := dbTime(before)
	var n int64
	err := runTx(ctx, s.b, func(tx txn) error {
		if err := tx.queryRow(ctx, "SELECT COALESCE(SUM(entries), 0) FROM archive_chunks WHERE transport = ? AND last_at < ?",
			transport, cut).Scan(&n); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, "DELETE FROM archive_chunks WHERE transport = ? AND last_at < ?", transport, cut); err != nil {
			return err
		}
		// Straddling chunks: first_at < cut ≤ last_at, and last_at −
		// first_at ≤ maxChunkTimeSpan.
		rs, err := tx.query(ctx, "SELECT id, user_jid, peer, first_seq, last_seq, entries, data FROM archive_chunks"+
			" WHERE transport = ? AND last_at >= ? AND last_at < ? AND first_at < ?",
			transport, cut, cut.Add(time.Duration(maxChunkTimeSpan)*time.Microsecond), cut)
		if err != nil {
			return err
		}
		type straddler struct {
			c    chunk
			user string
		}
		var ss []straddler
		for rs.Next() {
			var x straddler
			if err := rs.Scan(&x.c.id, &x.user, &x.c.peer, &x.c.firstSeq, &x.c.lastSeq, &x.c.entries, &x.c.data); err != nil {
				rs.Close()
				return err
			}
			ss = append(ss, x)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}
		var del []int64
		var ins [][]any
		for _, x := range ss {
			recs, err := decodeChunkRow(&x.c)
			if err != nil {
				return err
			}
			ck := newChunker(x.user, transport, x.c.peer)
			for i := range recs {
				if recs[i].at < cut.UnixMicro() {
					n++
				} else {
					ck.add(&recs[i])
				}
			}
			del = append(del, x.c.id)
			for _, row := range ck.done() {
				ins = append(ins, row.args())
			}
		}
		for _, id := range del {
			if _, err := tx.exec(ctx, "DELETE FROM archive_chunks WHERE id = ?", id); err != nil {
				return err
			}
		}
		if err := tx.execBatch(ctx, insertChunk, ins); err != nil {
			return err
		}
		_, err = tx.exec(ctx, "DELETE FROM message_ids WHERE transport = ? AND created < ?", transport, cut)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune archive %s before %s: %w", transport, before.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}
