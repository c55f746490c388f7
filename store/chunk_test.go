package store

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestArchiveIDs(t *testing.T) {
	prev := ""
	for range 1000 {
		id := NewArchiveID()
		if len(id) != ArchiveIDLen || strings.Trim(id, archiveIDDigits) != "" || id <= prev {
			t.Fatalf("bad id %q after %q", id, prev)
		}
		seq, ok := ArchiveSeq(id)
		if !ok || formatArchiveSeq(seq) != id {
			t.Fatalf("ArchiveSeq(%q) = %d, %v", id, seq, ok)
		}
		if d := time.Since(time.UnixMicro(seq)); d.Abs() > time.Minute { // ahead when more than one a µs
			t.Fatalf("seq %d is not about now", seq)
		}
		prev = id
	}
	// Unique and increasing across goroutines.
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []string
			for range 2000 {
				mine = append(mine, NewArchiveID())
			}
			if !slices.IsSorted(mine) {
				t.Error("ids of one goroutine not increasing")
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range mine {
				if seen[id] {
					t.Errorf("id %q twice", id)
				}
				seen[id] = true
			}
		}()
	}
	wg.Wait()

	for seq, want := range map[int64]string{0: "0000000000000", 1: "0000000000001", 31: "000000000000v", 32: "0000000000010",
		math.MaxInt64: "7vvvvvvvvvvvv", 1_700_000_000_000_000: "001ga4gc1sg00"} {
		if got := formatArchiveSeq(seq); got != want {
			t.Errorf("formatArchiveSeq(%d) = %s, want %s", seq, got, want)
		}
		if got, ok := ArchiveSeq(want + "~suffix"); !ok || got != seq {
			t.Errorf("ArchiveSeq(%s~suffix) = %d, %v", want, got, ok)
		}
	}
	for _, bad := range []string{"", "000000000000", "8000000000000", "vvvvvvvvvvvvv", "000000000000w", "000000000000V", "00000000000-1", "01BX5ZZKBKACTAV9WEVGEMMVRZ"} {
		if seq, ok := ArchiveSeq(bad); ok {
			t.Errorf("ArchiveSeq(%q) = %d, ok", bad, seq)
		}
	}
	// ArchiveSeq reads the prefix only; a stored id is the prefix alone
	// or followed by "~".
	if _, ok := ArchiveSeq("0000000000001xyz"); !ok {
		t.Error("ArchiveSeq does not read the prefix only")
	}
	for id, ok := range map[string]bool{"0000000000001": true, "0000000000001~": true, "0000000000001~a~b": true, "0000000000001x": false, "0000000000001 ~a": false} {
		if _, got := parseArchiveID(id); got != ok {
			t.Errorf("parseArchiveID(%q) ok = %v", id, got)
		}
	}
}

// TestArchiveKeyOrder: keys order like ids as text.
func TestArchiveKeyOrder(t *testing.T) {
	ids := []string{"0000000000001", "0000000000001~", "0000000000001~a", "0000000000001~b", "0000000000001~ba", "0000000000002",
		"000000000000v~z", "0000000000010", "7vvvvvvvvvvvv"}
	for i, a := range ids {
		ka, ok := parseArchiveID(a)
		if !ok || ka.id() != a {
			t.Fatalf("%q: parse %v, id() %q", a, ok, ka.id())
		}
		for j, b := range ids {
			kb, _ := parseArchiveID(b)
			want := strings.Compare(a, b)
			if got := ka.cmp(kb); got != want || (i < j) != (want < 0) && i != j {
				t.Errorf("cmp(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

// encodeRecs is the chunk of recs, without limits.
func encodeRecs(recs []rec) []byte {
	var body []byte
	var ps, pa int64
	for i := range recs {
		body = appendRec(body, ps, pa, &recs[i])
		ps, pa = recs[i].seq, recs[i].at
	}
	c := chunker{cur: chunkRow{entries: len(recs)}, body: body}
	c.flush()
	return c.rows[0].data
}

func TestChunkRoundTrip(t *testing.T) {
	recs := []rec{
		{seq: 1_700_000_000_000_000, at: 1_700_000_000_000_000, nick: "bob", body: "hello"},
		{seq: 1_699_999_999_999_000, at: -5, flags: chunkOutgoing | chunkAction | chunkSuffix, suffix: "msgid~1", body: "émoji 🎉", remoteID: "r", originID: "o"},
		{seq: 0, at: math.MaxInt64, flags: chunkSuffix},
		{seq: math.MaxInt64, at: math.MinInt64, body: strings.Repeat("x", 300)},
	}
	data := encodeRecs(recs)
	got, err := decodeChunk(7, data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatalf("got %+v\nwant %+v", got, recs)
	}
	// Every truncation and every flipped byte is an error naming the
	// chunk (or, for some flips, another valid chunk), never a panic.
	for i := range data {
		if _, err := decodeChunk(7, data[:i]); err == nil || !strings.Contains(err.Error(), "archive chunk 7") {
			t.Fatalf("truncated at %d: %v", i, err)
		}
		for _, x := range []byte{0x01, 0x80, 0xff} {
			b := slices.Clone(data)
			b[i] ^= x
			if _, err := decodeChunk(7, b); err != nil && !strings.Contains(err.Error(), "archive chunk 7") {
				t.Fatalf("flip at %d: %v", i, err)
			}
		}
	}
	if _, err := decodeChunk(7, append(slices.Clone(data), 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func TestChunkerLimits(t *testing.T) {
	const base = 1_700_000_000_000_000
	split := func(recs []rec) []int {
		c := newChunker("u", "irc", "p")
		for i := range recs {
			c.add(&recs[i])
		}
		var sizes []int
		var all []rec
		for _, row := range c.done() {
			got, err := decodeChunk(0, row.data)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != row.entries || len(row.data) > maxChunkBytes && row.entries > 1 ||
				row.lastSeq-row.firstSeq > maxChunkSeqSpan || row.lastAt-row.firstAt > maxChunkTimeSpan {
				t.Fatalf("chunk %+v breaks a limit", row)
			}
			for _, r := range got {
				if r.seq < row.firstSeq || r.seq > row.lastSeq || r.at < row.firstAt || r.at > row.lastAt {
					t.Fatalf("rec %+v outside its chunk's ranges", r)
				}
			}
			all = append(all, got...)
			sizes = append(sizes, row.entries)
		}
		if !reflect.DeepEqual(all, recs) {
			t.Fatal("chunks do not hold the recs in order")
		}
		return sizes
	}
	var recs []rec
	for i := range 2500 {
		recs = append(recs, rec{seq: base + int64(i), at: base, body: "x"})
	}
	if got := split(recs); !reflect.DeepEqual(got, []int{1000, 1000, 500}) {
		t.Errorf("2500 entries: chunks of %v", got)
	}
	big := strings.Repeat("b", 100<<10)
	recs = []rec{{seq: base, at: base, body: big}, {seq: base + 1, at: base, body: big}, {seq: base + 2, at: base, body: big}, {seq: base + 3, at: base, body: strings.Repeat("b", 300<<10)}}
	if got := split(recs); !reflect.DeepEqual(got, []int{2, 1, 1}) {
		t.Errorf("large bodies: chunks of %v", got)
	}
	span, hour := maxChunkSeqSpan, maxChunkTimeSpan
	recs = []rec{{seq: base, at: base}, {seq: base + span, at: base}, {seq: base - 1, at: base}, {seq: base + 5, at: base + hour},
		{seq: base + 6, at: base - 1}, {seq: base + 7, at: base + hour}}
	// [base, base+span] | [base-1, base+5] over an hour | base+6 an hour before base+7
	if got := split(recs); !reflect.DeepEqual(got, []int{2, 2, 1, 1}) {
		t.Errorf("spans: chunks of %v", got)
	}
}

// FuzzDecodeChunk: decoding never panics; what decodes encodes back to a
// chunk that decodes the same. The seed corpus is in testdata/fuzz.
func FuzzDecodeChunk(f *testing.F) {
	f.Add(encodeRecs([]rec{{seq: 1, at: 2, nick: "n", body: "b"}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := decodeChunk(1, data)
		if err != nil {
			if !strings.Contains(err.Error(), "archive chunk 1") {
				t.Fatalf("error does not name the chunk: %v", err)
			}
			return
		}
		again, err := decodeChunk(1, encodeRecs(recs))
		if err != nil || !reflect.DeepEqual(again, recs) {
			t.Fatalf("re-encoded: %+v, %v; want %+v", again, err, recs)
		}
		for i := range recs {
			recs[i].entry("u", "t", "p") // must not panic
		}
	})
}

// FuzzChunkRoundTrip: entries go through the chunker and come back equal.
func FuzzChunkRoundTrip(f *testing.F) {
	f.Add(int64(1_700_000_000_000_000), int64(1_700_000_000_000_000), int64(3), int64(-2), byte(chunkSuffix), "msgid", "bob", "hello", "r", "o")
	f.Add(int64(0), int64(math.MinInt64), int64(math.MaxInt64), int64(math.MaxInt64), byte(0xff), "", "", "", "", "")
	f.Fuzz(func(t *testing.T, seq, at, dseq, dat int64, flags byte, suffix, nick, body, remote, origin string) {
		if seq < 0 {
			seq = -(seq + 1)
		}
		flags &= chunkFlags
		if flags&chunkSuffix == 0 {
			suffix = ""
		}
		recs := []rec{{seq: seq, at: at, flags: flags, suffix: suffix, nick: nick, body: body, remoteID: remote, originID: origin}}
		if s2 := seq + dseq; s2 >= 0 && (dseq < 0) == (s2 < seq) {
			recs = append(recs, rec{seq: s2, at: at + dat, flags: flags ^ chunkAction, nick: body, body: nick})
		}
		c := newChunker("u", "t", "p")
		for i := range recs {
			c.add(&recs[i])
		}
		var got []rec
		for _, row := range c.done() {
			rs, err := decodeChunkRow(&chunk{id: 1, firstSeq: row.firstSeq, lastSeq: row.lastSeq, entries: int64(row.entries), data: row.data})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rs...)
		}
		if !reflect.DeepEqual(got, recs) {
			t.Fatalf("got %+v\nwant %+v", got, recs)
		}
	})
}
