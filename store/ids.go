package store

import (
	"sync/atomic"
	"time"
)

// Archive ids.
//
// An archive id starts with 13 characters of base32hex, lowercase
// ("0"–"9", "a"–"v"), that encode a 64-bit order key, the entry's Seq, most
// significant digit first: ids sort like their seqs, as text and as bytes.
// The prefix may be followed by "~" and a suffix of the caller's (the IRC
// transport keeps the IRC msgid there). Within one archive, entries are
// ordered by their id: by Seq, then (for equal seqs) without suffix first,
// then by suffix.
const (
	// ArchiveIDLen is the length of the order-key prefix of an archive id.
	ArchiveIDLen = 13
	// archiveIDDigits is base32hex in lowercase, in ASCII order.
	archiveIDDigits = "0123456789abcdefghijklmnopqrstuv"
)

// lastArchiveSeq is the last seq NewArchiveID handed out.
var lastArchiveSeq atomic.Int64

// NewArchiveID returns a new archive id of ArchiveIDLen characters whose
// seq is max(now in Unix microseconds, the previous seq + 1): ids of one
// process never repeat and increase in the order they were made, and they
// follow the clock across restarts (as long as the clock does not go back
// further than the process's downtime). AppendArchive calls it for entries
// without an ID.
func NewArchiveID() string {
	now := time.Now().UnixMicro()
	for {
		last := lastArchiveSeq.Load()
		seq := max(now, last+1)
		if lastArchiveSeq.CompareAndSwap(last, seq) {
			return formatArchiveSeq(seq)
		}
	}
}

// ArchiveSeq parses the first ArchiveIDLen characters of an archive id into
// its seq; ok is false when id is shorter or they are not lowercase
// base32hex of a value in [0, 2^63).
func ArchiveSeq(id string) (seq int64, ok bool) {
	if len(id) < ArchiveIDLen {
		return 0, false
	}
	var v uint64
	for i := range ArchiveIDLen {
		c := id[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'v':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		if i == 0 && d > 7 { // 65 bits of digits: the top two must be 0
			return 0, false
		}
		v = v<<5 | uint64(d)
	}
	return int64(v), true
}

// formatArchiveSeq writes seq (≥ 0) as ArchiveIDLen base32hex digits.
func formatArchiveSeq(seq int64) string {
	var b [ArchiveIDLen]byte
	appendArchiveSeq(b[:0], seq)
	return string(b[:])
}

func appendArchiveSeq(dst []byte, seq int64) []byte {
	v := uint64(seq)
	var b [ArchiveIDLen]byte
	for i := ArchiveIDLen - 1; i >= 0; i-- {
		b[i] = archiveIDDigits[v&31]
		v >>= 5
	}
	return append(dst, b[:]...)
}

// archiveKey is the order of entries within an archive: the id's seq,
// then its suffix ("" without one sorts first). It orders like the id
// as text.
type archiveKey struct {
	seq       int64
	hasSuffix bool
	suffix    string // after the "~"
}

// parseArchiveID splits a well-formed archive id: the seq prefix alone, or
// followed by "~" and a suffix.
func parseArchiveID(id string) (archiveKey, bool) {
	seq, ok := ArchiveSeq(id)
	if !ok {
		return archiveKey{}, false
	}
	if len(id) == ArchiveIDLen {
		return archiveKey{seq: seq}, true
	}
	if id[ArchiveIDLen] != '~' {
		return archiveKey{}, false
	}
	return archiveKey{seq: seq, hasSuffix: true, suffix: id[ArchiveIDLen+1:]}, true
}

// id formats the key back into the archive id.
func (k archiveKey) id() string {
	if !k.hasSuffix {
		return formatArchiveSeq(k.seq)
	}
	b := make([]byte, 0, ArchiveIDLen+1+len(k.suffix))
	b = appendArchiveSeq(b, k.seq)
	b = append(b, '~')
	return string(append(b, k.suffix...))
}

// cmp compares two keys like their ids compare as text.
func (k archiveKey) cmp(o archiveKey) int {
	switch {
	case k.seq < o.seq:
		return -1
	case k.seq > o.seq:
		return 1
	case k.hasSuffix != o.hasSuffix:
		if !k.hasSuffix {
			return -1
		}
		return 1
	case k.suffix < o.suffix:
		return -1
	case k.suffix > o.suffix:
		return 1
	}
	return 0
}
