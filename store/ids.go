package store

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// crockford is Crockford's base32 alphabet, in ASCII order so that the
// text sorts like the bytes.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewArchiveID returns a new archive id: 26 characters of Crockford base32
// holding a 48-bit millisecond timestamp and 80 random bits (a ULID), so
// ids sort roughly by time. AppendArchive calls it for entries without an
// ID; order within the archive is Seq, not the id.
func NewArchiveID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	if _, err := rand.Read(b[6:]); err != nil {
		panic("store: crypto/rand: " + err.Error()) // cannot fail on Linux ≥ 3.17
	}
	return encodeULID(b)
}

// encodeULID writes 128 bits as 26 base32 digits (the first digit holds 3
// bits).
func encodeULID(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
