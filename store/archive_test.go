package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// The archive tests below run in the conformance suite (testStore).

// testArchiveOutOfOrder: entries archived after younger ones (chunks that
// overlap in seq) still page in id order, and equal seqs order by suffix.
func testArchiveOutOfOrder(t *testing.T, b testBackend) {
	s := b.open(t)
	base := time.Now().Add(-time.Hour).UnixMicro()
	id := func(i int) string { return formatArchiveSeq(base + int64(i)*1000) }
	entry := func(i int) ArchiveEntry {
		return ArchiveEntry{ID: id(i), User: "u@x", Transport: "irc", Peer: "#a%net", Nick: "bob", Body: fmt.Sprint(i),
			Time: archiveBase.Add(time.Duration(i) * time.Second)}
	}
	// Three batches whose seq ranges interleave.
	for _, batch := range [][]int{{0, 3, 6, 9, 12, 15, 18}, {1, 4, 7, 10, 13, 16, 19}, {2, 5, 8, 11, 14, 17}} {
		var es []ArchiveEntry
		for _, i := range slices.Backward(batch) { // slice order is not seq order either
			es = append(es, entry(i))
		}
		if err := s.AppendArchive(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	q := ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net", Limit: 4}
	var got []string
	for {
		p, err := s.QueryArchive(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			got = append(got, e.Body)
		}
		if p.Complete {
			break
		}
		q.AfterID = p.Entries[len(p.Entries)-1].ID
	}
	if want := seqs(0, 19); strings.Join(got, " ") != want {
		t.Fatalf("forward: %v, want %s", got, want)
	}
	expectPage(t, s, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net", Limit: 4, Before: true}, "16 17 18 19", false, 20)
	expectPage(t, s, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net", Limit: 4, BeforeID: id(10)}, "6 7 8 9", false, 20)
	expectPage(t, s, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net", AfterID: id(4), BeforeID: id(9)}, "5 6 7 8", true, 20)
	// A straggler much older than the rest (another chunk far back).
	old := entry(0)
	old.ID, old.Body = formatArchiveSeq(base-int64(time.Hour/time.Microsecond)), "old"
	if err := s.AppendArchive(ctx, []ArchiveEntry{old}); err != nil {
		t.Fatal(err)
	}
	expectPage(t, s, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net", Limit: 3}, "old 0 1", false, 21)

	// Same seq, with and without suffixes: the id as text decides.
	same := formatArchiveSeq(base + 500)
	var es []ArchiveEntry
	for _, sfx := range []string{"~b", "", "~a", "~"} {
		es = append(es, ArchiveEntry{ID: same + sfx, User: "u@x", Transport: "irc", Peer: "#b%net", Body: "s" + sfx})
	}
	if err := s.AppendArchive(ctx, es); err != nil {
		t.Fatal(err)
	}
	p, err := s.QueryArchive(ctx, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#b%net"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(bodies(p), " "); got != "s s~ s~a s~b" {
		t.Fatalf("same seq: %s", got)
	}
	q = ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#b%net", AfterID: same + "~"}
	expectPageAnySeq(t, s, q, "s~a s~b")
	q = ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#b%net", BeforeID: same + "~a"}
	expectPageAnySeq(t, s, q, "s s~")
	// Every peer: #a%net's entries around #b%net's.
	p, err = s.QueryArchive(ctx, ArchiveQuery{User: "u@x", Transport: "irc", AfterID: id(0), BeforeID: id(2)})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(bodies(p), " "); got != "s s~ s~a s~b 1" || p.Count != 25 {
		t.Fatalf("every peer: %s (count %d)", got, p.Count)
	}
}

func expectPageAnySeq(t *testing.T, s Store, q ArchiveQuery, want string) {
	t.Helper()
	p, err := s.QueryArchive(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(bodies(p), " "); got != want {
		t.Fatalf("%+v: got %s, want %s", q, got, want)
	}
}

// testArchiveModel appends random batches (random ids, seqs spread over
// minutes so that chunks split and overlap, random times) and compares
// random queries and prunes with a plain model of the documented rules.
func testArchiveModel(t *testing.T, b testBackend) {
	s := b.open(t)
	rng := rand.New(rand.NewPCG(1, 2))
	users, peers, nicks := []string{"u@x", "v@x"}, []string{"#a%net", "#b%net", "bob%net"}, []string{"bob", "carol", ""}
	base := time.Now().Add(-24 * time.Hour).UnixMicro()
	tbase := archiveBase
	var model []ArchiveEntry
	used := map[string]bool{}
	for range 40 {
		n := 1 + rng.IntN(120)
		batch := make([]ArchiveEntry, 0, n)
		for range n {
			e := ArchiveEntry{User: users[rng.IntN(2)], Transport: "irc", Peer: peers[rng.IntN(3)], Nick: nicks[rng.IntN(3)],
				Outgoing: rng.IntN(4) == 0, Action: rng.IntN(5) == 0, Body: fmt.Sprint("m", rng.IntN(1e6)),
				Time: tbase.Add(time.Duration(rng.IntN(3*3600)) * time.Second)}
			if rng.IntN(10) > 0 {
				id := formatArchiveSeq(base + rng.Int64N(5*int64(time.Minute/time.Microsecond)))
				if rng.IntN(3) == 0 {
					id += "~" + fmt.Sprint(rng.IntN(3))
				}
				if used[e.User+" "+id] {
					continue
				}
				used[e.User+" "+id] = true
				e.ID = id
			}
			batch = append(batch, e)
		}
		if err := s.AppendArchive(ctx, batch); err != nil {
			t.Fatal(err)
		}
		model = append(model, batch...)
	}
	slices.SortFunc(model, func(a, b ArchiveEntry) int { return strings.Compare(a.ID, b.ID) })

	check := func(q ArchiveQuery) {
		t.Helper()
		var match []ArchiveEntry
		for _, e := range model {
			if e.User != q.User || e.Transport != q.Transport || q.Peer != "" && e.Peer != q.Peer {
				continue
			}
			if q.With != "" && e.Nick != q.With || !q.Start.IsZero() && e.Time.Before(q.Start) || !q.End.IsZero() && e.Time.After(q.End) {
				continue
			}
			match = append(match, e)
		}
		limit := q.Limit
		if limit <= 0 {
			limit = DefaultArchiveLimit
		}
		var want []ArchiveEntry
		for _, e := range match {
			if (q.AfterID == "" || e.ID > q.AfterID) && (q.BeforeID == "" || e.ID < q.BeforeID) {
				want = append(want, e)
			}
		}
		complete := len(want) <= limit
		if q.Before || q.BeforeID != "" {
			want = want[max(0, len(want)-limit):]
		} else {
			want = want[:min(len(want), limit)]
		}
		p, err := s.QueryArchive(ctx, q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		if p.Count != len(match) || p.Complete != complete || len(p.Entries) != len(want) {
			t.Fatalf("%+v: count %d complete %v entries %d, want %d %v %d", q, p.Count, p.Complete, len(p.Entries), len(match), complete, len(want))
		}
		for i := range want {
			if p.Entries[i] != want[i] {
				t.Fatalf("%+v: entry %d\n got %+v\nwant %+v", q, i, p.Entries[i], want[i])
			}
		}
	}
	pick := func(u string) string {
		var ids []string
		for _, e := range model {
			if e.User == u {
				ids = append(ids, e.ID)
			}
		}
		return ids[rng.IntN(len(ids))]
	}
	queries := func(rounds int) {
		for range rounds {
			q := ArchiveQuery{User: users[rng.IntN(2)], Transport: "irc", Limit: rng.IntN(60)}
			if rng.IntN(4) > 0 {
				q.Peer = peers[rng.IntN(3)]
			}
			if rng.IntN(4) == 0 {
				q.With = nicks[rng.IntN(2)]
			}
			if rng.IntN(4) == 0 {
				q.Start = tbase.Add(time.Duration(rng.IntN(3*3600)) * time.Second)
			}
			if rng.IntN(4) == 0 {
				q.End = tbase.Add(time.Duration(rng.IntN(3*3600)) * time.Second)
			}
			switch rng.IntN(5) {
			case 0:
				q.Before = true
			case 1:
				q.AfterID = pick(q.User)
			case 2:
				q.BeforeID = pick(q.User)
			case 3:
				q.AfterID, q.BeforeID = pick(q.User), pick(q.User)
			}
			// A cursor in another peer of the user is not in this archive.
			if q.Peer != "" && (q.AfterID != "" || q.BeforeID != "") {
				in := func(id string) bool {
					return slices.ContainsFunc(model, func(e ArchiveEntry) bool { return e.User == q.User && e.Peer == q.Peer && e.ID == id })
				}
				if q.AfterID != "" && !in(q.AfterID) || q.BeforeID != "" && !in(q.BeforeID) {
					if _, err := s.QueryArchive(ctx, q); !errors.Is(err, ErrNotFound) {
						t.Fatalf("%+v: %v, want ErrNotFound", q, err)
					}
					continue
				}
			}
			check(q)
		}
	}
	queries(300)

	// Prune in the middle of the times: exact per entry.
	cut := tbase.Add(90 * time.Minute)
	n, err := s.PruneArchive(ctx, "irc", cut)
	if err != nil {
		t.Fatal(err)
	}
	kept := model[:0]
	for _, e := range model {
		if !e.Time.Before(cut) {
			kept = append(kept, e)
		}
	}
	if int(n) != len(model)-len(kept) {
		t.Fatalf("pruned %d, want %d", n, len(model)-len(kept))
	}
	model = kept
	queries(100)
}

// testArchiveCorrupt: a chunk that does not decode is an error naming it,
// not a panic nor a wrong page.
func testArchiveCorrupt(t *testing.T, b testBackend) {
	s := b.open(t)
	appendN(t, s, "u@x", "#a%net", 10)
	var id int64
	if err := s.b.reader().queryRow(ctx, "SELECT id FROM archive_chunks").Scan(&id); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		set  string
		args []any
	}{
		{"data = ?", []any{[]byte{chunkVersion, 1, 2}}},
		{"data = ?", []any{[]byte{9}}},
		{"entries = 3", nil},
		{"first_seq = first_seq + 1", nil},
		{"data = ?", []any{encodeRecs([]rec{{seq: 1, body: "\xff"}})}},
	} {
		if _, err := s.b.writer().exec(ctx, "UPDATE archive_chunks SET "+tc.set+" WHERE id = ?", append(tc.args, id)...); err != nil {
			t.Fatal(err)
		}
		for _, q := range []ArchiveQuery{
			{User: "u@x", Transport: "irc", Peer: "#a%net"},
			{User: "u@x", Transport: "irc", Peer: "#a%net", With: "bob"},
		} {
			_, err := s.QueryArchive(ctx, q)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("archive chunk %d", id)) {
				t.Errorf("%s: %v", tc.set, err)
			}
		}
		if _, err := s.b.writer().exec(ctx, "DELETE FROM archive_chunks WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
		appendN(t, s, "u@x", "#a%net", 10)
		if err := s.b.reader().queryRow(ctx, "SELECT id FROM archive_chunks").Scan(&id); err != nil {
			t.Fatal(err)
		}
	}
}

// testArchivePruneChunks: prune across several chunks, some wholly older,
// some straddling, and chunks split by time span.
func testArchivePruneChunks(t *testing.T, b testBackend) {
	s := b.open(t)
	// 3 hours of entries, one a minute, in batches of 25: chunks of at
	// most an hour's span.
	var all []ArchiveEntry
	for k := 0; k < 180; k += 25 {
		var es []ArchiveEntry
		for i := k; i < min(k+25, 180); i++ {
			es = append(es, ArchiveEntry{User: "u@x", Transport: "irc", Peer: "#a%net", Body: fmt.Sprint(i), Time: archiveBase.Add(time.Duration(i) * time.Minute)})
		}
		if err := s.AppendArchive(ctx, es); err != nil {
			t.Fatal(err)
		}
		all = append(all, es...)
	}
	// One batch whose times span three hours: split by time (61 minutes apart).
	var wide []ArchiveEntry
	for i := range 4 {
		wide = append(wide, ArchiveEntry{User: "u@x", Transport: "irc", Peer: "#b%net", Body: fmt.Sprint(i), Time: archiveBase.Add(time.Duration(i) * 61 * time.Minute)})
	}
	if err := s.AppendArchive(ctx, wide); err != nil {
		t.Fatal(err)
	}
	var chunks int
	if err := s.b.reader().queryRow(ctx, "SELECT COUNT(*) FROM archive_chunks WHERE peer = '#b%net'").Scan(&chunks); err != nil || chunks != 4 {
		t.Fatalf("#b%%net in %d chunks (%v), want 4", chunks, err)
	}
	n, err := s.PruneArchive(ctx, "irc", archiveBase.Add(62*time.Minute+time.Second))
	if err != nil || n != 63+2 {
		t.Fatalf("PruneArchive = %d, %v; want 65", n, err)
	}
	expectPage(t, s, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net", Limit: 3}, "63 64 65", false, 117)
	expectPage(t, s, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#b%net"}, "2 3", true, 2)
	// The rewritten chunk keeps the ids.
	p, err := s.QueryArchive(ctx, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net", AfterID: all[70].ID, Limit: 1})
	if err != nil || len(p.Entries) != 1 || p.Entries[0].ID != all[71].ID || p.Entries[0].Time != all[71].Time {
		t.Fatalf("after prune: %+v, %v", p, err)
	}
	if _, err := s.QueryArchive(ctx, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net", AfterID: all[10].ID}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pruned id: %v", err)
	}
}

// testMigrateArchive: a version-1 database with rows in archive opens
// with them in archive_chunks, in the same order, with their times,
// nicks, bodies and flags, and ids made from their old seqs.
func testMigrateArchive(t *testing.T, b testBackend) {
	dsn := b.newDSN(t)
	var be backend
	var err error
	if b.driver == "sqlite" {
		be, err = openSQLite(ctx, dsn)
	} else {
		be, err = openPostgres(ctx, dsn)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(ctx, be, 1); err != nil {
		t.Fatal(err)
	}
	// Two users, two peers, interleaved; times not in seq order; more rows
	// than a chunk and than a page of the migration.
	const perArchive = 1300
	type old struct {
		user, peer string
		e          ArchiveEntry
	}
	var olds []old
	var args [][]any
	for i := range perArchive {
		for _, up := range [][2]string{{"u@x", "#a%net"}, {"u@x", "bob%net"}, {"v@x", "#a%net"}, {"v@x", "#b%net"}} {
			e := ArchiveEntry{User: up[0], Transport: "irc", Peer: up[1], Nick: []string{"bob", "carol", ""}[i%3],
				Outgoing: i%4 == 1, Action: i%5 == 2, Body: fmt.Sprintf("old %d émoji", i), RemoteID: fmt.Sprint("r", i), OriginID: fmt.Sprint("o", i%7),
				Time: archiveBase.Add(time.Duration(i%50)*time.Minute - time.Duration(i)*time.Second)}
			olds = append(olds, old{up[0], up[1], e})
			args = append(args, []any{fmt.Sprintf("%s-%s-%d~tag", up[0], up[1], i), e.User, e.Transport, e.Peer, e.Nick, e.Outgoing, e.Body, e.Action, e.RemoteID, e.OriginID, e.Time})
		}
	}
	tx, err := be.beginWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.execBatch(ctx, `INSERT INTO archive (id, user_jid, transport, peer, nick, outgoing, body, action, remote_id, origin_id, sent_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args); err != nil {
		t.Fatal(err)
	}
	if err := tx.commit(ctx); err != nil {
		t.Fatal(err)
	}
	rs, err := be.reader().query(ctx, "SELECT seq FROM archive ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; rs.Next(); i++ {
		if err := rs.Scan(&olds[i].e.Seq); err != nil {
			t.Fatal(err)
		}
		olds[i].e.ID = formatArchiveSeq(olds[i].e.Seq)
	}
	rs.Close()
	be.close()

	s := b.openAt(t, dsn, testKey(1))
	var v int
	if err := s.b.reader().queryRow(ctx, "SELECT MAX(version) FROM schema_version").Scan(&v); err != nil || v != SchemaVersion() {
		t.Fatalf("schema version %d, %v", v, err)
	}
	if _, err := s.b.reader().exec(ctx, "SELECT 1 FROM archive"); err == nil {
		t.Fatal("the old archive table is still there")
	}
	// A new entry sorts after the old ones.
	if err := s.AppendArchive(ctx, []ArchiveEntry{{User: "u@x", Transport: "irc", Peer: "#a%net", Body: "new", Time: archiveBase.Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	for _, up := range [][2]string{{"u@x", "#a%net"}, {"u@x", "bob%net"}, {"v@x", "#a%net"}, {"v@x", "#b%net"}} {
		var want []ArchiveEntry
		for _, o := range olds {
			if o.user == up[0] && o.peer == up[1] {
				want = append(want, o.e)
			}
		}
		var got []ArchiveEntry
		q := ArchiveQuery{User: up[0], Transport: "irc", Peer: up[1], Limit: 500}
		for {
			p, err := s.QueryArchive(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p.Entries...)
			if p.Complete {
				break
			}
			q.AfterID = p.Entries[len(p.Entries)-1].ID
		}
		if up == [2]string{"u@x", "#a%net"} {
			if len(got) != len(want)+1 || got[len(got)-1].Body != "new" {
				t.Fatalf("%v: the new entry is not last", up)
			}
			got = got[:len(got)-1]
		}
		if len(got) != len(want) {
			t.Fatalf("%v: %d entries, want %d", up, len(got), len(want))
		}
		for i := range want {
			w := want[i]
			w.Time = dbTime(w.Time)
			if got[i] != w {
				t.Fatalf("%v entry %d:\n got %+v\nwant %+v", up, i, got[i], w)
			}
		}
		// Counting and filters work on migrated chunks.
		expect := 0
		for _, e := range want {
			if e.Nick == "carol" {
				expect++
			}
		}
		p, err := s.QueryArchive(ctx, ArchiveQuery{User: up[0], Transport: "irc", Peer: up[1], With: "carol", Before: true, Limit: 1})
		if err != nil || p.Count != expect {
			t.Fatalf("%v: count with carol %v, %v; want %d", up, p, err, expect)
		}
	}
}
