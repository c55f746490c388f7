package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The archive is stored in chunks: one row of archive_chunks holds up to
// maxChunkEntries entries of one archive (user, transport, peer) in a
// blob, so that an entry costs a few dozen bytes of encoding instead of a
// row and the updates of several indexes.
//
// A chunk's blob is:
//
//	byte     version (chunkVersion)
//	uvarint  number of entries
//	entries, each:
//	  varint   seq − the previous entry's seq (the first: − 0)
//	  varint   time in Unix µs − the previous entry's (the first: − 0)
//	  byte     flags: chunkOutgoing | chunkAction | chunkSuffix
//	  string   the id's suffix after "~" (only with chunkSuffix)
//	  string   nick, body, remote id, origin id
//
// where a string is a uvarint length and that many bytes. Entries keep the
// order they were appended in, which need not be seq order.
//
// Chunks also bound their spans: last_seq − first_seq ≤ maxChunkSeqSpan
// and last_at − first_at ≤ maxChunkTimeSpan, so that a query looking for
// the entries around a seq, or PruneArchive looking for the chunks that
// straddle a time, reads an index range instead of every chunk.
const (
	chunkVersion     = 1
	maxChunkEntries  = 1000
	maxChunkBytes    = 256 << 10
	maxChunkSeqSpan  = int64(10 * time.Second / time.Microsecond)
	maxChunkTimeSpan = int64(time.Hour / time.Microsecond)

	chunkOutgoing = 1 << 0
	chunkAction   = 1 << 1
	chunkSuffix   = 1 << 2
	chunkFlags    = chunkOutgoing | chunkAction | chunkSuffix

	// minChunkEntry is the smallest encoded entry: two one-byte varints,
	// the flags and four empty strings.
	minChunkEntry = 7
)

// rec is one archive entry as a chunk holds it; user, transport and peer
// are the chunk's.
type rec struct {
	seq   int64
	at    int64 // Unix µs
	flags byte
	// suffix is the id's suffix (with chunkSuffix).
	suffix, nick, body, remoteID, originID string
}

func (r *rec) key() archiveKey {
	return archiveKey{seq: r.seq, hasSuffix: r.flags&chunkSuffix != 0, suffix: r.suffix}
}

// entry builds the ArchiveEntry; it checks that the strings are valid
// UTF-8 without NUL (what AppendArchive stores), so that a corrupt chunk
// never reaches XML.
func (r *rec) entry(user, transport, peer string) (ArchiveEntry, error) {
	for _, s := range [...]string{r.suffix, r.nick, r.body, r.remoteID, r.originID} {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return ArchiveEntry{}, errors.New("an entry holds invalid UTF-8 or NUL")
		}
	}
	return ArchiveEntry{
		ID:        r.key().id(),
		User:      user,
		Transport: transport,
		Peer:      peer,
		Nick:      r.nick,
		Outgoing:  r.flags&chunkOutgoing != 0,
		Body:      r.body,
		Action:    r.flags&chunkAction != 0,
		RemoteID:  r.remoteID,
		OriginID:  r.originID,
		Time:      time.UnixMicro(r.at).UTC(),
		Seq:       r.seq,
	}, nil
}

// appendRec encodes r after an entry with prevSeq and prevAt.
func appendRec(b []byte, prevSeq, prevAt int64, r *rec) []byte {
	b = binary.AppendVarint(b, r.seq-prevSeq)
	b = binary.AppendVarint(b, r.at-prevAt)
	b = append(b, r.flags)
	if r.flags&chunkSuffix != 0 {
		b = appendString(b, r.suffix)
	}
	b = appendString(b, r.nick)
	b = appendString(b, r.body)
	b = appendString(b, r.remoteID)
	return appendString(b, r.originID)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// chunkRow is one row of archive_chunks to insert.
type chunkRow struct {
	user, transport, peer string
	firstSeq, lastSeq     int64
	firstAt, lastAt       int64 // Unix µs
	entries               int
	data                  []byte
}

// args are the values of insertChunk's placeholders.
func (c *chunkRow) args() []any {
	return []any{c.user, c.transport, c.peer, c.firstSeq, c.lastSeq,
		time.UnixMicro(c.firstAt).UTC(), time.UnixMicro(c.lastAt).UTC(), c.entries, c.data}
}

const insertChunk = `INSERT INTO archive_chunks (user_jid, transport, peer, first_seq, last_seq, first_at, last_at, entries, data)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

// chunker cuts the entries of one archive, in the order added, into
// chunks that respect the limits.
type chunker struct {
	user, transport, peer string
	rows                  []chunkRow

	cur             chunkRow
	body            []byte // encoded entries of cur
	prevSeq, prevAt int64
}

func newChunker(user, transport, peer string) *chunker {
	return &chunker{user: user, transport: transport, peer: peer}
}

// add appends r, starting a new chunk when r would take the current one
// past a limit.
func (c *chunker) add(r *rec) {
	if c.cur.entries > 0 {
		start := len(c.body)
		c.body = appendRec(c.body, c.prevSeq, c.prevAt, r)
		if c.cur.entries < maxChunkEntries && len(c.body) <= maxChunkBytes &&
			spanOK(min(c.cur.firstSeq, r.seq), max(c.cur.lastSeq, r.seq), maxChunkSeqSpan) &&
			spanOK(min(c.cur.firstAt, r.at), max(c.cur.lastAt, r.at), maxChunkTimeSpan) {
			c.cur.entries++
			c.cur.firstSeq, c.cur.lastSeq = min(c.cur.firstSeq, r.seq), max(c.cur.lastSeq, r.seq)
			c.cur.firstAt, c.cur.lastAt = min(c.cur.firstAt, r.at), max(c.cur.lastAt, r.at)
			c.prevSeq, c.prevAt = r.seq, r.at
			return
		}
		c.body = c.body[:start]
		c.flush()
	}
	c.cur = chunkRow{user: c.user, transport: c.transport, peer: c.peer,
		firstSeq: r.seq, lastSeq: r.seq, firstAt: r.at, lastAt: r.at, entries: 1}
	c.body = appendRec(c.body[:0], 0, 0, r)
	c.prevSeq, c.prevAt = r.seq, r.at
}

// spanOK says whether hi − lo ≤ limit, without overflowing.
func spanOK(lo, hi, limit int64) bool {
	return hi-lo >= 0 && hi-lo <= limit
}

// flush closes the current chunk.
func (c *chunker) flush() {
	if c.cur.entries == 0 {
		return
	}
	data := make([]byte, 0, 1+binary.MaxVarintLen64+len(c.body))
	data = append(data, chunkVersion)
	data = binary.AppendUvarint(data, uint64(c.cur.entries))
	c.cur.data = append(data, c.body...)
	c.rows = append(c.rows, c.cur)
	c.cur = chunkRow{}
	c.body = c.body[:0]
}

// done flushes and returns the chunks.
func (c *chunker) done() []chunkRow {
	c.flush()
	return c.rows
}

// chunkError is a chunk that does not decode.
type chunkError struct {
	id  int64
	off int
	msg string
}

func (e *chunkError) Error() string {
	return fmt.Sprintf("archive chunk %d is corrupt at byte %d: %s", e.id, e.off, e.msg)
}

// recView is a decoded entry that points into its chunk's blob: the
// fields are byte ranges [start, end) of data.
type recView struct {
	seq, at int64
	flags   byte
	f       [5][2]uint32 // viewSuffix…viewOrigin
}

// The byte ranges of a recView.
const (
	viewSuffix = iota
	viewNick
	viewBody
	viewRemote
	viewOrigin
)

func (v *recView) field(data []byte, i int) []byte { return data[v.f[i][0]:v.f[i][1]] }

// cmp orders two entries like their ids (see archiveKey.cmp).
func (v *recView) cmp(data []byte, o *recView, odata []byte) int {
	switch {
	case v.seq < o.seq:
		return -1
	case v.seq > o.seq:
		return 1
	}
	vs, os := v.flags&chunkSuffix != 0, o.flags&chunkSuffix != 0
	switch {
	case vs != os:
		if !vs {
			return -1
		}
		return 1
	case !vs:
		return 0
	}
	return bytes.Compare(v.field(data, viewSuffix), o.field(odata, viewSuffix))
}

// cmpKey compares v with an id's key.
func (v *recView) cmpKey(data []byte, k *archiveKey) int {
	switch {
	case v.seq < k.seq:
		return -1
	case v.seq > k.seq:
		return 1
	}
	vs := v.flags&chunkSuffix != 0
	switch {
	case vs != k.hasSuffix:
		if !vs {
			return -1
		}
		return 1
	case !vs:
		return 0
	}
	switch sfx := v.field(data, viewSuffix); {
	case string(sfx) < k.suffix:
		return -1
	case string(sfx) > k.suffix:
		return 1
	}
	return 0
}

// entry builds the ArchiveEntry (see rec.entry).
func (v *recView) entry(data []byte, user, transport, peer string) (ArchiveEntry, error) {
	f := func(i int) string { return string(v.field(data, i)) }
	r := rec{seq: v.seq, at: v.at, flags: v.flags, suffix: f(viewSuffix), nick: f(viewNick), body: f(viewBody),
		remoteID: f(viewRemote), originID: f(viewOrigin)}
	return r.entry(user, transport, peer)
}

// rec makes the rec of a view, its strings substrings of s (a copy of
// data).
func (v *recView) rec(s string) rec {
	f := func(i int) string { return s[v.f[i][0]:v.f[i][1]] }
	return rec{seq: v.seq, at: v.at, flags: v.flags, suffix: f(viewSuffix), nick: f(viewNick), body: f(viewBody),
		remoteID: f(viewRemote), originID: f(viewOrigin)}
}

// decodeChunk decodes the blob of chunk id. The strings of the recs are
// substrings of one copy of data. It never panics: whatever data holds,
// it returns the recs or an error naming the chunk.
func decodeChunk(id int64, data []byte) ([]rec, error) {
	views, err := decodeViews(id, data, nil)
	if err != nil {
		return nil, err
	}
	s := string(data)
	out := make([]rec, len(views))
	for i := range views {
		out[i] = views[i].rec(s)
	}
	return out, nil
}

// decodeViews decodes the blob of chunk id into views, appended to
// out[:0]. It never panics: whatever data holds, it returns the views or
// an error naming the chunk.
func decodeViews(id int64, data []byte, out []recView) ([]recView, error) {
	d := chunkDecoder{id: id, s: data}
	if len(data) == 0 {
		return nil, d.fail("empty")
	}
	if data[0] != chunkVersion {
		return nil, d.fail(fmt.Sprintf("unknown version %d", data[0]))
	}
	if uint64(len(data)) > math.MaxUint32 {
		return nil, d.fail("longer than 4 GiB")
	}
	d.off = 1
	n, ok := d.uvarint()
	if !ok {
		return nil, d.fail("bad entry count")
	}
	if n == 0 || n > uint64((len(data)-d.off)/minChunkEntry) {
		return nil, d.fail(fmt.Sprintf("entry count %d does not fit in %d bytes", n, len(data)-d.off))
	}
	out = slices.Grow(out[:0], int(n))[:n]
	var prevSeq, prevAt int64
	for i := range out {
		v := &out[i]
		var ok1, ok2 bool
		v.seq, ok1 = d.delta(prevSeq)
		v.at, ok2 = d.delta(prevAt)
		if !ok1 || !ok2 || v.seq < 0 {
			return nil, d.fail(fmt.Sprintf("entry %d: bad seq or time", i))
		}
		if d.off >= len(data) {
			return nil, d.fail(fmt.Sprintf("entry %d: truncated", i))
		}
		v.flags = data[d.off]
		d.off++
		if v.flags&^chunkFlags != 0 {
			return nil, d.fail(fmt.Sprintf("entry %d: unknown flags %#x", i, v.flags))
		}
		v.f[viewSuffix] = [2]uint32{uint32(d.off), uint32(d.off)}
		if v.flags&chunkSuffix != 0 {
			if v.f[viewSuffix], ok = d.str(); !ok {
				return nil, d.fail(fmt.Sprintf("entry %d: bad id suffix", i))
			}
		}
		for j := viewNick; j <= viewOrigin; j++ {
			if v.f[j], ok = d.str(); !ok {
				return nil, d.fail(fmt.Sprintf("entry %d: bad string", i))
			}
		}
		prevSeq, prevAt = v.seq, v.at
	}
	if d.off != len(data) {
		return nil, d.fail(fmt.Sprintf("%d bytes after the last entry", len(data)-d.off))
	}
	return out, nil
}

type chunkDecoder struct {
	id  int64
	s   []byte
	off int
}

func (d *chunkDecoder) fail(msg string) error {
	return &chunkError{id: d.id, off: d.off, msg: msg}
}

func (d *chunkDecoder) uvarint() (uint64, bool) {
	var v uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if d.off >= len(d.s) {
			return 0, false
		}
		b := d.s[d.off]
		d.off++
		if i == binary.MaxVarintLen64-1 && b > 1 {
			return 0, false // overflows 64 bits
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return v, true
		}
	}
	return 0, false
}

// delta reads a varint and adds it to prev. Both wrap around like the
// subtraction in appendRec, so that every int64 comes back.
func (d *chunkDecoder) delta(prev int64) (int64, bool) {
	u, ok := d.uvarint()
	if !ok {
		return 0, false
	}
	x := int64(u >> 1) // zig-zag, as binary.AppendVarint writes
	if u&1 != 0 {
		x = ^x
	}
	return prev + x, true
}

// str reads a string and returns its byte range.
func (d *chunkDecoder) str() ([2]uint32, bool) {
	n, ok := d.uvarint()
	if !ok || n > uint64(len(d.s)-d.off) {
		return [2]uint32{}, false
	}
	start := d.off
	d.off += int(n)
	return [2]uint32{uint32(start), uint32(d.off)}, true
}
