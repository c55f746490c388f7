package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// testBackend is one database the conformance suite runs against.
type testBackend struct {
	driver string
	// newDSN returns the DSN of a new, empty database.
	newDSN func(t testing.TB) string
}

func testKey(b byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

// openAt opens the store at dsn and closes it at the end of the test.
func (b testBackend) openAt(t testing.TB, dsn string, key []byte) *sqlStore {
	t.Helper()
	s, err := Open(context.Background(), b.driver, dsn, key)
	if err != nil {
		t.Fatalf("Open(%s): %v", b.driver, err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*sqlStore)
}

// open opens a store on a new database.
func (b testBackend) open(t testing.TB) *sqlStore {
	t.Helper()
	return b.openAt(t, b.newDSN(t), testKey(1))
}

// testStore is the conformance suite every Store implementation passes.
func testStore(t *testing.T, b testBackend) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, b testBackend)
	}{
		{"Accounts", testAccounts},
		{"SecretsEncryptedAtRest", testSecretsAtRest},
		{"WrongKey", testWrongKey},
		{"SecretsBoundToRow", testSecretsBoundToRow},
		{"DeleteAccountCascades", testDeleteAccount},
		{"MessageIDs", testMessageIDs},
		{"ArchiveAppend", testArchiveAppend},
		{"ArchivePaging", testArchivePaging},
		{"ArchiveFilters", testArchiveFilters},
		{"ArchiveLimits", testArchiveLimits},
		{"ArchiveOutOfOrder", testArchiveOutOfOrder},
		{"ArchiveModel", testArchiveModel},
		{"ArchiveCorrupt", testArchiveCorrupt},
		{"ArchivePruneChunks", testArchivePruneChunks},
		{"MigrateArchive", testMigrateArchive},
		{"Prune", testPrune},
		{"Queue", testQueue},
		{"QueueConcurrentClaims", testQueueConcurrentClaims},
		{"State", testState},
		{"ConcurrentWriters", testConcurrentWriters},
		{"Migrations", testMigrations},
		{"OpenContextOnlyForOpening", testOpenContext},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

var ctx = context.Background()

func testAccounts(t *testing.T, b testBackend) {
	s := b.open(t)
	if _, err := s.GetAccount(ctx, "alice@example.org", "irc"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetAccount of nothing: %v, want ErrNotFound", err)
	}
	a := &Account{
		User: "alice@example.org", Transport: "irc",
		Fields:  map[string]string{"nick": "alice", "net.libera.nick": "al"},
		Secrets: map[string]string{"password": "hunter2", "sasl_password": "s3cret"},
	}
	if err := s.PutAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if a.CreatedAt.IsZero() || !a.UpdatedAt.Equal(a.CreatedAt) {
		t.Fatalf("times not set: %v %v", a.CreatedAt, a.UpdatedAt)
	}
	got, err := s.GetAccount(ctx, "alice@example.org", "irc")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Fields) != fmt.Sprint(a.Fields) || fmt.Sprint(got.Secrets) != fmt.Sprint(a.Secrets) {
		t.Fatalf("got %v %v, want %v %v", got.Fields, got.Secrets, a.Fields, a.Secrets)
	}
	if !got.CreatedAt.Equal(a.CreatedAt) || !got.UpdatedAt.Equal(a.UpdatedAt) {
		t.Fatalf("times: got %v %v, want %v %v", got.CreatedAt, got.UpdatedAt, a.CreatedAt, a.UpdatedAt)
	}

	// Update: CreatedAt stays, UpdatedAt moves, maps are replaced.
	created := a.CreatedAt
	time.Sleep(2 * time.Millisecond)
	a2 := &Account{User: a.User, Transport: "irc", Fields: map[string]string{"nick": "alice2"}}
	if err := s.PutAccount(ctx, a2); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetAccount(ctx, a.User, "irc")
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(created) || !a2.CreatedAt.Equal(created) || !got.UpdatedAt.After(created) {
		t.Fatalf("after update: created %v (was %v), updated %v", got.CreatedAt, created, got.UpdatedAt)
	}
	if len(got.Fields) != 1 || got.Fields["nick"] != "alice2" || got.Secrets == nil || len(got.Secrets) != 0 {
		t.Fatalf("after update: %v %v", got.Fields, got.Secrets)
	}

	for _, acc := range []*Account{
		{User: "bob@example.org", Transport: "irc"},
		{User: "bob@example.org", Transport: "sms", Secrets: map[string]string{"token": "t"}},
		{User: "carol@example.org", Transport: "email"},
	} {
		if err := s.PutAccount(ctx, acc); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListAccounts(ctx, "irc")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].User != "alice@example.org" || list[1].User != "bob@example.org" {
		t.Fatalf("ListAccounts(irc) = %+v", list)
	}
	all, err := s.ListAccounts(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("ListAccounts(\"\") has %d accounts, want 4", len(all))
	}
	if all[2].Transport != "sms" || all[2].Secrets["token"] != "t" {
		t.Fatalf("ListAccounts secrets: %+v", all[2])
	}
	if err := s.PutAccount(ctx, &Account{Transport: "irc"}); err == nil {
		t.Fatal("PutAccount without user succeeded")
	}
}

func testSecretsAtRest(t *testing.T, b testBackend) {
	s := b.open(t)
	a := &Account{User: "alice@example.org", Transport: "irc",
		Fields:  map[string]string{"nick": "alice"},
		Secrets: map[string]string{"password": "correct-horse-battery-staple"}}
	if err := s.PutAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	var fields string
	if err := s.b.reader().queryRow(ctx, "SELECT secrets, fields FROM accounts WHERE user_jid = ?", a.User).Scan(&raw, &fields); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("correct-horse")) || bytes.Contains(raw, []byte("password")) {
		t.Fatalf("secrets stored in clear: %q", raw)
	}
	if len(raw) < 1+12+16 || raw[0] != secretsVersion {
		t.Fatalf("secrets column is not version+nonce+ciphertext: %x", raw)
	}
	if strings.Contains(fields, "correct-horse") || !strings.Contains(fields, "alice") {
		t.Fatalf("fields column %q", fields)
	}
	// Same secrets, new nonce: the ciphertext changes every time.
	if err := s.PutAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	var raw2 []byte
	if err := s.b.reader().queryRow(ctx, "SELECT secrets FROM accounts WHERE user_jid = ?", a.User).Scan(&raw2); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(raw, raw2) {
		t.Fatal("re-encrypting gave the same ciphertext: nonce reused")
	}
}

func testWrongKey(t *testing.T, b testBackend) {
	dsn := b.newDSN(t)
	s, err := Open(ctx, b.driver, dsn, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutAccount(ctx, &Account{User: "a@x", Transport: "irc", Secrets: map[string]string{"password": "pw"}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, b.driver, dsn, testKey(2))
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with another key: %v, want ErrWrongKey", err)
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "key file does not match") {
		t.Fatalf("unclear error: %v", err)
	}
	for _, k := range [][]byte{testKey(1), testKey(2)} {
		if strings.Contains(err.Error(), hex.EncodeToString(k)) {
			t.Fatalf("error leaks a key: %v", err)
		}
	}
	// The right key still works.
	s = b.openAt(t, dsn, testKey(1))
	got, err := s.GetAccount(ctx, "a@x", "irc")
	if err != nil || got.Secrets["password"] != "pw" {
		t.Fatalf("GetAccount with the right key: %v %v", got, err)
	}
	// A key of the wrong size is refused before anything is opened.
	if _, err := Open(ctx, b.driver, dsn, []byte("short")); err == nil {
		t.Fatal("Open with a 5-byte key succeeded")
	}
}

func testSecretsBoundToRow(t *testing.T, b testBackend) {
	s := b.open(t)
	for _, u := range []string{"alice@x", "mallory@x"} {
		if err := s.PutAccount(ctx, &Account{User: u, Transport: "irc", Secrets: map[string]string{"password": "pw-" + u}}); err != nil {
			t.Fatal(err)
		}
	}
	// Copy alice's ciphertext into mallory's row.
	var raw []byte
	if err := s.b.reader().queryRow(ctx, "SELECT secrets FROM accounts WHERE user_jid = 'alice@x'").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if _, err := s.b.writer().exec(ctx, "UPDATE accounts SET secrets = ? WHERE user_jid = 'mallory@x'", raw); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetAccount(ctx, "mallory@x", "irc")
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("moved ciphertext decrypted: %v", err)
	}
	t.Log(err)
	if strings.Contains(err.Error(), "pw-alice") {
		t.Fatalf("error leaks the secret: %v", err)
	}
	if _, err := s.ListAccounts(ctx, "irc"); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("ListAccounts with a moved ciphertext: %v", err)
	}
}

// fillUser writes a row in every table for user/transport.
func fillUser(t *testing.T, s Store, user, transport string) {
	t.Helper()
	if err := s.PutAccount(ctx, &Account{User: user, Transport: transport}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMessageID(ctx, MessageID{User: user, Transport: transport, Peer: "p", StanzaID: "s", RemoteID: "r"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendArchive(ctx, []ArchiveEntry{{User: user, Transport: transport, Peer: "p", Body: "hi"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, &QueueItem{User: user, Transport: transport, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutState(ctx, user, transport, "uid", []byte("1")); err != nil {
		t.Fatal(err)
	}
}

func countRows(t *testing.T, s *sqlStore, user, transport string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range []string{"accounts", "message_ids", "archive_chunks", "queue", "state"} {
		count := "COUNT(*)"
		if table == "archive_chunks" {
			count = "COALESCE(SUM(entries), 0)" // archive entries
		}
		var n int64
		if err := s.b.reader().queryRow(ctx, "SELECT "+count+" FROM "+table+" WHERE user_jid = ? AND transport = ?", user, transport).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

func testDeleteAccount(t *testing.T, b testBackend) {
	s := b.open(t)
	fillUser(t, s, "alice@x", "irc")
	fillUser(t, s, "alice@x", "email")
	fillUser(t, s, "bob@x", "irc")
	if err := s.DeleteAccount(ctx, "alice@x", "irc"); err != nil {
		t.Fatal(err)
	}
	for table, n := range countRows(t, s, "alice@x", "irc") {
		if n != 0 {
			t.Errorf("%s still has %d rows of alice@x/irc", table, n)
		}
	}
	for _, k := range [][2]string{{"alice@x", "email"}, {"bob@x", "irc"}} {
		for table, n := range countRows(t, s, k[0], k[1]) {
			if n != 1 {
				t.Errorf("%s has %d rows of %s/%s, want 1", table, n, k[0], k[1])
			}
		}
	}
	if err := s.DeleteAccount(ctx, "alice@x", "irc"); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	if err := s.DeleteAccount(ctx, "nobody@x", "irc"); err != nil {
		t.Fatalf("deleting nothing: %v", err)
	}
}

func testMessageIDs(t *testing.T, b testBackend) {
	s := b.open(t)
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	put := func(peer, sid, rid string, at time.Time) {
		t.Helper()
		if err := s.PutMessageID(ctx, MessageID{User: "u@x", Transport: "irc", Peer: peer, StanzaID: sid, RemoteID: rid, CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	put("#a%net", "s1", "r1", base)
	put("#a%net", "s2", "r2a", base.Add(time.Second))
	put("#a%net", "s2", "r2b", base.Add(2*time.Second)) // split message: two remote ids
	put("#b%net", "s1", "rb", base)                     // same stanza id, other peer

	m, err := s.FindByStanzaID(ctx, "u@x", "irc", "#a%net", "s1")
	if err != nil || m.RemoteID != "r1" || !m.CreatedAt.Equal(base) || m.Peer != "#a%net" {
		t.Fatalf("FindByStanzaID s1 = %+v, %v", m, err)
	}
	m, err = s.FindByStanzaID(ctx, "u@x", "irc", "#a%net", "s2")
	if err != nil || m.RemoteID != "r2b" {
		t.Fatalf("FindByStanzaID s2 = %+v, %v; want the newest, r2b", m, err)
	}
	for _, rid := range []string{"r2a", "r2b"} {
		m, err = s.FindByRemoteID(ctx, "u@x", "irc", "#a%net", rid)
		if err != nil || m.StanzaID != "s2" {
			t.Fatalf("FindByRemoteID %s = %+v, %v", rid, m, err)
		}
	}
	m, err = s.FindByStanzaID(ctx, "u@x", "irc", "#b%net", "s1")
	if err != nil || m.RemoteID != "rb" {
		t.Fatalf("FindByStanzaID other peer = %+v, %v", m, err)
	}
	// The same pair again becomes the newest.
	put("#a%net", "s2", "r2a", base.Add(3*time.Second))
	m, err = s.FindByStanzaID(ctx, "u@x", "irc", "#a%net", "s2")
	if err != nil || m.RemoteID != "r2a" {
		t.Fatalf("after re-put: %+v, %v; want r2a", m, err)
	}
	// A duplicate remote id (network reused it): the newest stanza wins.
	put("#a%net", "s3", "r1", base.Add(4*time.Second))
	m, err = s.FindByRemoteID(ctx, "u@x", "irc", "#a%net", "r1")
	if err != nil || m.StanzaID != "s3" {
		t.Fatalf("duplicate remote id: %+v, %v; want s3", m, err)
	}
	for _, f := range []func() (*MessageID, error){
		func() (*MessageID, error) { return s.FindByStanzaID(ctx, "u@x", "irc", "#a%net", "nope") },
		func() (*MessageID, error) { return s.FindByRemoteID(ctx, "u@x", "irc", "#a%net", "nope") },
		func() (*MessageID, error) { return s.FindByStanzaID(ctx, "other@x", "irc", "#a%net", "s1") },
		func() (*MessageID, error) { return s.FindByStanzaID(ctx, "u@x", "sms", "#a%net", "s1") },
	} {
		if _, err := f(); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup of nothing: %v, want ErrNotFound", err)
		}
	}
	if err := s.PutMessageID(ctx, MessageID{User: "u@x", Transport: "irc", Peer: "p", StanzaID: "s"}); err == nil {
		t.Fatal("PutMessageID without remote id succeeded")
	}
	// CreatedAt defaults to now.
	if err := s.PutMessageID(ctx, MessageID{User: "u@x", Transport: "irc", Peer: "p", StanzaID: "s9", RemoteID: "r9"}); err != nil {
		t.Fatal(err)
	}
	m, err = s.FindByRemoteID(ctx, "u@x", "irc", "p", "r9")
	if err != nil || time.Since(m.CreatedAt) > time.Minute {
		t.Fatalf("default CreatedAt: %+v, %v", m, err)
	}
}

var archiveBase = time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)

// appendN appends n entries to user/peer, at archiveBase + i minutes.
func appendN(t *testing.T, s Store, user, peer string, n int) []ArchiveEntry {
	t.Helper()
	es := make([]ArchiveEntry, n)
	for i := range es {
		nick := "bob"
		if i%3 == 0 {
			nick = "carol"
		}
		es[i] = ArchiveEntry{User: user, Transport: "irc", Peer: peer, Nick: nick,
			Body: fmt.Sprintf("message %d", i), Time: archiveBase.Add(time.Duration(i) * time.Minute)}
	}
	if err := s.AppendArchive(ctx, es); err != nil {
		t.Fatal(err)
	}
	return es
}

func testArchiveAppend(t *testing.T, b testBackend) {
	s := b.open(t)
	if err := s.AppendArchive(ctx, nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	at := time.Date(2025, 1, 1, 0, 0, 0, 987654321, time.FixedZone("X", 3600))
	ownID := NewArchiveID() + "~my-own-id" // made before the others: it sorts first
	es := []ArchiveEntry{
		{User: "u@x", Transport: "irc", Peer: "#a%net", Nick: "bob", Body: "hello", Time: at, RemoteID: "msgid1", OriginID: "o1"},
		{User: "u@x", Transport: "irc", Peer: "#a%net", Outgoing: true, Action: true, Body: "waves", ID: ownID},
		{User: "u@x", Transport: "irc", Peer: "#a%net", Nick: "bob", Body: "émoji 🎉\x00nul\xff"},
	}
	if err := s.AppendArchive(ctx, es); err != nil {
		t.Fatal(err)
	}
	if len(es[0].ID) != ArchiveIDLen || es[1].ID != ownID || es[0].ID == es[2].ID {
		t.Fatalf("ids: %q %q %q", es[0].ID, es[1].ID, es[2].ID)
	}
	for i, e := range es {
		if seq, ok := ArchiveSeq(e.ID); !ok || seq != e.Seq {
			t.Fatalf("entry %d: Seq %d, ArchiveSeq(%q) = %d, %v", i, e.Seq, e.ID, seq, ok)
		}
	}
	if !(es[1].Seq < es[0].Seq && es[0].Seq < es[2].Seq) {
		t.Fatalf("seqs: given id %d, assigned in slice order %d %d", es[1].Seq, es[0].Seq, es[2].Seq)
	}
	es[0], es[1] = es[1], es[0] // id order
	if !es[1].Time.Equal(at.Truncate(time.Microsecond)) || es[1].Time.Location() != time.UTC {
		t.Fatalf("time normalised to %v", es[1].Time)
	}
	if es[0].Time.IsZero() || time.Since(es[0].Time) > time.Minute {
		t.Fatalf("zero time not set to now: %v", es[0].Time)
	}
	page, err := s.QueryArchive(ctx, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 3 || !page.Complete || page.Count != 3 {
		t.Fatalf("page: %d entries, complete %v, count %d", len(page.Entries), page.Complete, page.Count)
	}
	for i, got := range page.Entries {
		want := es[i]
		if i == 2 {
			want.Body = "émoji 🎉nul\uFFFD" // NUL dropped, invalid UTF-8 replaced
		}
		if got != want {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, got, want)
		}
	}

	// An id that is not an archive id fails the whole batch and leaves
	// the entries alone.
	for _, id := range []string{"my-own-id", strings.ToUpper(NewArchiveID()), NewArchiveID() + "x", NewArchiveID()[1:],
		"8" + NewArchiveID()[1:], NewArchiveID() + "~bad\xff", NewArchiveID() + "~nul\x00"} {
		bad := []ArchiveEntry{
			{User: "u@x", Transport: "irc", Peer: "#a%net", Body: "new"},
			{User: "u@x", Transport: "irc", Peer: "#b%net", Body: "bad id", ID: id},
		}
		if err := s.AppendArchive(ctx, bad); err == nil {
			t.Fatalf("id %q accepted", id)
		}
		if bad[0].ID != "" || bad[0].Seq != 0 || !bad[0].Time.IsZero() || bad[1].ID != id {
			t.Fatalf("failed batch changed the entries: %+v", bad)
		}
	}
	page, err = s.QueryArchive(ctx, ArchiveQuery{User: "u@x", Transport: "irc"})
	if err != nil || page.Count != 3 {
		t.Fatalf("after failed batches: count %d, %v", page.Count, err)
	}
	if err := s.AppendArchive(ctx, []ArchiveEntry{{User: "u@x", Transport: "irc"}}); err == nil {
		t.Fatal("entry without peer accepted")
	}
}

func bodies(p *ArchivePage) []string {
	var out []string
	for _, e := range p.Entries {
		out = append(out, strings.TrimPrefix(e.Body, "message "))
	}
	return out
}

func expectPage(t *testing.T, s Store, q ArchiveQuery, want string, complete bool, count int) *ArchivePage {
	t.Helper()
	p, err := s.QueryArchive(ctx, q)
	if err != nil {
		t.Fatalf("%+v: %v", q, err)
	}
	if got := strings.Join(bodies(p), " "); got != want || p.Complete != complete || p.Count != count {
		t.Fatalf("%+v:\n got [%s] complete=%v count=%d\nwant [%s] complete=%v count=%d", q, got, p.Complete, p.Count, want, complete, count)
	}
	for i := 1; i < len(p.Entries); i++ {
		if p.Entries[i].Seq <= p.Entries[i-1].Seq {
			t.Fatalf("page not in chronological order")
		}
	}
	return p
}

func seqs(from, to int) string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, fmt.Sprint(i))
	}
	return strings.Join(s, " ")
}

func testArchivePaging(t *testing.T, b testBackend) {
	s := b.open(t)
	es := appendN(t, s, "u@x", "#a%net", 25)
	appendN(t, s, "u@x", "#b%net", 5)     // another room
	appendN(t, s, "other@x", "#a%net", 5) // another user, same room
	q := ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net", Limit: 10}

	// Forward.
	p := expectPage(t, s, q, seqs(0, 9), false, 25)
	q.AfterID = p.Entries[9].ID
	p = expectPage(t, s, q, seqs(10, 19), false, 25)
	q.AfterID = p.Entries[9].ID
	p = expectPage(t, s, q, seqs(20, 24), true, 25)
	q.AfterID = p.Entries[4].ID
	expectPage(t, s, q, "", true, 25)

	// Exactly a page left is complete.
	q.AfterID = es[14].ID
	expectPage(t, s, q, seqs(15, 24), true, 25)

	// Backward: the last page, then before its first.
	q = ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net", Limit: 10, Before: true}
	p = expectPage(t, s, q, seqs(15, 24), false, 25)
	q.BeforeID = p.Entries[0].ID
	p = expectPage(t, s, q, seqs(5, 14), false, 25)
	q.BeforeID = p.Entries[0].ID
	p = expectPage(t, s, q, seqs(0, 4), true, 25)
	q.BeforeID = p.Entries[0].ID
	expectPage(t, s, q, "", true, 25)
	// BeforeID alone (Before not set) also pages backwards.
	expectPage(t, s, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net", Limit: 3, BeforeID: es[10].ID}, "7 8 9", false, 25)
	// After and before together: the entries in between.
	expectPage(t, s, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net", AfterID: es[3].ID, BeforeID: es[8].ID}, "4 5 6 7", true, 25)
	// The whole archive in one backward page.
	expectPage(t, s, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net", Before: true}, seqs(0, 24), true, 25)

	// Unknown ids, and ids of another archive, are item-not-found.
	other, err := s.QueryArchive(ctx, ArchiveQuery{User: "other@x", Transport: "irc", Peer: "#a%net"})
	if err != nil {
		t.Fatal(err)
	}
	otherRoom, err := s.QueryArchive(ctx, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#b%net"})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []ArchiveQuery{
		{User: "u@x", Transport: "irc", Peer: "#a%net", AfterID: "nope"},
		{User: "u@x", Transport: "irc", Peer: "#a%net", BeforeID: "nope"},
		{User: "u@x", Transport: "irc", Peer: "#a%net", Before: true, BeforeID: "nope"},
		{User: "u@x", Transport: "irc", Peer: "#a%net", AfterID: other.Entries[0].ID},
		{User: "u@x", Transport: "irc", Peer: "#a%net", AfterID: otherRoom.Entries[0].ID},
		{User: "u@x", Transport: "sms", Peer: "#a%net", AfterID: es[0].ID},
	} {
		if _, err := s.QueryArchive(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("%+v: %v, want ErrNotFound", bad, err)
		}
	}
	// Peer "" is every peer of the user.
	expectPage(t, s, ArchiveQuery{User: "u@x", Transport: "irc", Limit: 100}, seqs(0, 24)+" "+seqs(0, 4), true, 30)
	// An empty archive.
	expectPage(t, s, ArchiveQuery{User: "nobody@x", Transport: "irc", Peer: "#a%net"}, "", true, 0)
	expectPage(t, s, ArchiveQuery{User: "nobody@x", Transport: "irc", Peer: "#a%net", Before: true}, "", true, 0)
	if _, err := s.QueryArchive(ctx, ArchiveQuery{Transport: "irc"}); err == nil {
		t.Fatal("query without user succeeded")
	}
}

func testArchiveFilters(t *testing.T, b testBackend) {
	s := b.open(t)
	es := appendN(t, s, "u@x", "#a%net", 20) // carol: 0 3 6 9 12 15 18
	base := ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net"}

	q := base
	q.With = "carol"
	expectPage(t, s, q, "0 3 6 9 12 15 18", true, 7)
	q.Limit = 3
	p := expectPage(t, s, q, "0 3 6", false, 7)
	q.AfterID = p.Entries[2].ID
	expectPage(t, s, q, "9 12 15", false, 7)
	q.AfterID = ""
	q.Before = true
	p = expectPage(t, s, q, "12 15 18", false, 7)
	q.BeforeID = p.Entries[0].ID
	expectPage(t, s, q, "3 6 9", false, 7)
	// A cursor that does not match the filter still positions the page.
	q = base
	q.With, q.Limit, q.AfterID = "carol", 2, es[4].ID
	expectPage(t, s, q, "6 9", false, 7)

	// Start and End are inclusive, to the microsecond.
	q = base
	q.Start, q.End = es[5].Time, es[9].Time
	expectPage(t, s, q, "5 6 7 8 9", true, 5)
	q.Start, q.End = es[5].Time.Add(time.Microsecond), es[9].Time.Add(-time.Microsecond)
	expectPage(t, s, q, "6 7 8", true, 3)
	q = base
	q.Start = es[17].Time
	expectPage(t, s, q, "17 18 19", true, 3)
	q = base
	q.End = es[2].Time
	expectPage(t, s, q, "0 1 2", true, 3)
	q.Before = true
	q.Limit = 2
	expectPage(t, s, q, "1 2", false, 3)
	// Filters combine.
	q = base
	q.With, q.Start, q.End, q.Limit = "carol", es[4].Time, es[16].Time, 2
	p = expectPage(t, s, q, "6 9", false, 4)
	q.AfterID = p.Entries[1].ID
	expectPage(t, s, q, "12 15", true, 4)
	// Non-UTC bounds mean the same instant.
	q = base
	q.Start = es[18].Time.In(time.FixedZone("Y", -5*3600))
	expectPage(t, s, q, "18 19", true, 2)
	// Nothing in range.
	q = base
	q.Start = es[19].Time.Add(time.Hour)
	expectPage(t, s, q, "", true, 0)
}

func testArchiveLimits(t *testing.T, b testBackend) {
	s := b.open(t)
	appendN(t, s, "u@x", "#a%net", 1100)
	q := ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net"}
	p, err := s.QueryArchive(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != DefaultArchiveLimit || p.Complete || p.Count != 1100 {
		t.Fatalf("default limit: %d entries, complete %v, count %d", len(p.Entries), p.Complete, p.Count)
	}
	q.Limit = 5000
	p, err = s.QueryArchive(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != MaxArchiveLimit || p.Complete {
		t.Fatalf("capped limit: %d entries, complete %v", len(p.Entries), p.Complete)
	}
	q.Limit, q.Before = -1, true
	p, err = s.QueryArchive(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != DefaultArchiveLimit || p.Entries[49].Body != "message 1099" {
		t.Fatalf("last page: %d entries, last %q", len(p.Entries), p.Entries[len(p.Entries)-1].Body)
	}
}

func testPrune(t *testing.T, b testBackend) {
	s := b.open(t)
	es := appendN(t, s, "u@x", "#a%net", 10)
	if err := s.AppendArchive(ctx, []ArchiveEntry{{User: "u@x", Transport: "sms", Peer: "+1555", Body: "old", Time: archiveBase}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMessageID(ctx, MessageID{User: "u@x", Transport: "irc", Peer: "p", StanzaID: "old", RemoteID: "r-old", CreatedAt: archiveBase}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMessageID(ctx, MessageID{User: "u@x", Transport: "irc", Peer: "p", StanzaID: "new", RemoteID: "r-new"}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneArchive(ctx, "irc", es[4].Time)
	if err != nil || n != 4 {
		t.Fatalf("PruneArchive = %d, %v; want 4", n, err)
	}
	expectPage(t, s, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "#a%net"}, seqs(4, 9), true, 6)
	expectPage(t, s, ArchiveQuery{User: "u@x", Transport: "sms", Peer: "+1555"}, "old", true, 1)
	if _, err := s.FindByStanzaID(ctx, "u@x", "irc", "p", "old"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old message id survived prune: %v", err)
	}
	if _, err := s.FindByStanzaID(ctx, "u@x", "irc", "p", "new"); err != nil {
		t.Fatalf("new message id pruned: %v", err)
	}
	n, err = s.PruneArchive(ctx, "irc", es[4].Time)
	if err != nil || n != 0 {
		t.Fatalf("second prune = %d, %v", n, err)
	}
}

// claimIDs claims, failing the test on error, and returns the items and
// their ids joined by spaces.
func claimIDs(t *testing.T, s Store, transport string, now time.Time, lease time.Duration, limit int) ([]QueueItem, string) {
	t.Helper()
	its, err := s.Claim(ctx, transport, now, lease, limit)
	if err != nil {
		t.Fatalf("Claim(%s, %v, %v, %d): %v", transport, now, lease, limit, err)
	}
	out := make([]string, len(its))
	for i, it := range its {
		out[i] = fmt.Sprint(it.ID)
	}
	return its, strings.Join(out, " ")
}

// idList joins the ids of its by spaces, as claimIDs does.
func idList(its ...*QueueItem) string {
	out := make([]string, len(its))
	for i, it := range its {
		out[i] = fmt.Sprint(it.ID)
	}
	return strings.Join(out, " ")
}

// queueRow is what the database holds of a queue item, as a string to
// compare ("gone" when there is no such row).
func queueRow(t *testing.T, s *sqlStore, id int64) string {
	t.Helper()
	var attempts int
	var next time.Time
	var lastErr string
	err := s.b.writer().queryRow(ctx, "SELECT attempts, next_try, last_error FROM queue WHERE id = ?", id).Scan(&attempts, &next, &lastErr)
	if errors.Is(err, sql.ErrNoRows) {
		return "gone"
	}
	if err != nil {
		t.Fatalf("queue item %d: %v", id, err)
	}
	return fmt.Sprintf("attempts=%d next_try=%s last_error=%q", attempts, next.UTC().Format(time.RFC3339Nano), lastErr)
}

// wantRow is the queueRow of an item that is there.
func wantRow(attempts int, next time.Time, lastErr string) string {
	return fmt.Sprintf("attempts=%d next_try=%s last_error=%q", attempts, next.UTC().Format(time.RFC3339Nano), lastErr)
}

func testQueue(t *testing.T, b testBackend) {
	s := b.open(t)
	base := dbTime(time.Now())
	a := &QueueItem{Transport: "email", User: "u@x", Peer: "bob@example.com", StanzaID: "m1", Payload: []byte("mail 1"), NextTry: base.Add(-time.Minute)}
	later := &QueueItem{Transport: "email", User: "u@x", Peer: "bob@example.com", StanzaID: "m2", Payload: []byte("mail 2"), NextTry: base.Add(time.Hour)}
	immediate := &QueueItem{Transport: "email", User: "v@x", StanzaID: "m3"} // zero NextTry, nil payload
	sms := &QueueItem{Transport: "sms", User: "u@x", Peer: "+15551234567", StanzaID: "s1", Payload: []byte("sms")}
	early := &QueueItem{Transport: "email", User: "w@x", StanzaID: "m4", NextTry: base.Add(-2 * time.Minute)} // due first, enqueued last
	for _, it := range []*QueueItem{a, later, immediate, sms, early} {
		if err := s.Enqueue(ctx, it); err != nil {
			t.Fatal(err)
		}
		if it.ID == 0 || it.CreatedAt.IsZero() || it.NextTry.IsZero() {
			t.Fatalf("Enqueue did not set ID/CreatedAt/NextTry: %+v", it)
		}
		if !it.Lease.IsZero() {
			t.Fatalf("Enqueue set a lease: %+v", it)
		}
	}
	if a.ID == later.ID {
		t.Fatal("same id twice")
	}
	now := dbTime(time.Now()) // not before immediate.NextTry
	const lease = 10 * time.Minute

	// A lease must be given (at least the store's precision); a refused
	// claim leases nothing.
	for _, bad := range []time.Duration{0, -time.Second, time.Microsecond - 1} {
		if its, err := s.Claim(ctx, "email", now, bad, 10); err == nil {
			t.Fatalf("Claim with lease %v = %+v, want an error", bad, its)
		}
	}

	// Due items come earliest NextTry first, as they were, up to limit.
	due, got := claimIDs(t, s, "email", now, lease, 2)
	if want := idList(early, a); got != want {
		t.Fatalf("Claim limit 2 = %s, want %s (early, a)", got, want)
	}
	d := due[1]
	if string(d.Payload) != "mail 1" || d.StanzaID != "m1" || d.Peer != "bob@example.com" ||
		d.User != "u@x" || d.Transport != "email" || !d.NextTry.Equal(a.NextTry) ||
		!d.CreatedAt.Equal(a.CreatedAt) || d.Attempts != 0 || d.LastError != "" {
		t.Fatalf("claimed item %+v, want %+v (NextTry as before the claim)", d, a)
	}
	if !due[0].NextTry.Equal(early.NextTry) || len(due[0].Payload) != 0 {
		t.Fatalf("claimed item %+v, want %+v", due[0], early)
	}
	// Each item carries the lease end the store wrote, as the store
	// keeps it.
	for _, it := range due {
		if !it.Lease.Equal(now.Add(lease)) || it.Lease.Location() != time.UTC {
			t.Fatalf("claimed item %d: Lease %v, want %v in UTC", it.ID, it.Lease, now.Add(lease))
		}
		if got, want := queueRow(t, s, it.ID), wantRow(0, it.Lease, ""); got != want {
			t.Fatalf("claimed item %d in the database: %s, want %s", it.ID, got, want)
		}
	}
	earlyLease, aLease := due[0].Lease, due[1].Lease
	// The claimed items are leased; the due item past the limit is not,
	// nor is the item not yet due.
	due, got = claimIDs(t, s, "email", now, lease, 0)
	if want := idList(immediate); got != want {
		t.Fatalf("second Claim = %s, want %s (immediate only)", got, want)
	}
	if !due[0].NextTry.Equal(immediate.NextTry) {
		t.Fatalf("claimed item NextTry %v, want %v", due[0].NextTry, immediate.NextTry)
	}
	immediateLease := due[0].Lease
	if _, got := claimIDs(t, s, "email", now, lease, 0); got != "" {
		t.Fatalf("Claim of leased items = %s, want none", got)
	}
	if _, got := claimIDs(t, s, "email", now.Add(lease-time.Microsecond), lease, 0); got != "" {
		t.Fatalf("Claim a microsecond before the lease ends = %s, want none", got)
	}

	// Finishing takes the lease Claim gave, to the microsecond.
	if err := s.Dequeue(ctx, early.ID, earlyLease.Add(time.Microsecond)); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Dequeue with another lease: %v, want ErrLeaseLost", err)
	}
	if err := s.Reschedule(ctx, a.ID, aLease.Add(-time.Microsecond), now, "x"); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Reschedule with another lease: %v, want ErrLeaseLost", err)
	}
	if got, want := queueRow(t, s, a.ID), wantRow(0, aLease, ""); got != want {
		t.Fatalf("after a Reschedule with another lease: %s, want %s (unchanged)", got, want)
	}

	// Reschedule with the lease ends it and counts an attempt; Dequeue
	// with the lease removes.
	next := now.Add(30 * time.Minute)
	if err := s.Reschedule(ctx, a.ID, aLease, next, "451 try later"); err != nil {
		t.Fatal(err)
	}
	if got, want := queueRow(t, s, a.ID), wantRow(1, next, "451 try later"); got != want {
		t.Fatalf("rescheduled: %s, want %s", got, want)
	}
	if err := s.Dequeue(ctx, early.ID, earlyLease); err != nil {
		t.Fatal(err)
	}
	if got := queueRow(t, s, early.ID); got != "gone" {
		t.Fatalf("dequeued item: %s, want gone", got)
	}
	// The lease of a rescheduled item is over: finishing it again with
	// that lease changes nothing.
	if err := s.Reschedule(ctx, a.ID, aLease, now.Add(time.Hour), "again"); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("second Reschedule with the same lease: %v, want ErrLeaseLost", err)
	}
	if err := s.Dequeue(ctx, a.ID, aLease); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Dequeue of a rescheduled item with its old lease: %v, want ErrLeaseLost", err)
	}
	if got, want := queueRow(t, s, a.ID), wantRow(1, next, "451 try later"); got != want {
		t.Fatalf("rescheduled item after finishing it with its old lease: %s, want %s (unchanged)", got, want)
	}

	// When the lease ends, the item that was neither rescheduled nor
	// dequeued (its sender died, or is slow) comes back, due since the
	// lease end, under a new lease.
	due, got = claimIDs(t, s, "email", now.Add(lease), lease, 0)
	if want := idList(immediate); got != want {
		t.Fatalf("Claim when the lease ends = %s, want %s (immediate)", got, want)
	}
	if !due[0].NextTry.Equal(now.Add(lease)) || due[0].Attempts != 0 || !due[0].Lease.Equal(now.Add(2*lease)) {
		t.Fatalf("reclaimed item %+v, want NextTry %v (its lease end), no attempt, Lease %v", due[0], now.Add(lease), now.Add(2*lease))
	}
	// The first holder, late, can neither dequeue nor reschedule it: the
	// new holder has it, unchanged.
	if err := s.Dequeue(ctx, immediate.ID, immediateLease); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Dequeue with a lease that ran out: %v, want ErrLeaseLost", err)
	}
	if err := s.Reschedule(ctx, immediate.ID, immediateLease, now.Add(time.Minute), "late"); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Reschedule with a lease that ran out: %v, want ErrLeaseLost", err)
	}
	if got, want := queueRow(t, s, immediate.ID), wantRow(0, due[0].Lease, ""); got != want {
		t.Fatalf("item after its late holder tried: %s, want %s (unchanged)", got, want)
	}
	if err := s.Dequeue(ctx, immediate.ID, due[0].Lease); err != nil {
		t.Fatalf("Dequeue by the new holder: %v", err)
	}
	if got := queueRow(t, s, immediate.ID); got != "gone" {
		t.Fatalf("item dequeued by its new holder: %s, want gone", got)
	}
	// Gone: Dequeue is not an error, with any lease; Reschedule is
	// ErrNotFound, not ErrLeaseLost.
	for _, l := range []time.Time{immediateLease, due[0].Lease, {}} {
		if err := s.Dequeue(ctx, immediate.ID, l); err != nil {
			t.Fatalf("Dequeue of a gone item (lease %v): %v", l, err)
		}
		if err := s.Reschedule(ctx, immediate.ID, l, now, "x"); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Reschedule of a gone item (lease %v): %v, want ErrNotFound", l, err)
		}
	}
	// The rescheduled item is due at its next try, with its attempt.
	if _, got := claimIDs(t, s, "email", next.Add(-time.Microsecond), lease, 0); got != "" {
		t.Fatalf("Claim before the rescheduled try = %s, want none", got)
	}
	due, got = claimIDs(t, s, "email", next, lease, 0)
	if want := idList(a); got != want {
		t.Fatalf("Claim at the rescheduled try = %s, want %s (a)", got, want)
	}
	if due[0].Attempts != 1 || due[0].LastError != "451 try later" || !due[0].NextTry.Equal(next) || string(due[0].Payload) != "mail 1" {
		t.Fatalf("rescheduled item = %+v", due[0])
	}
	if err := s.Reschedule(ctx, a.ID, due[0].Lease, now.Add(3*time.Hour), "451 again"); err != nil {
		t.Fatal(err)
	}
	// The item that was not due earlier was not leased: it is due at its
	// own NextTry.
	due, got = claimIDs(t, s, "email", later.NextTry, lease, 0)
	if want := idList(later); got != want || !due[0].NextTry.Equal(later.NextTry) {
		t.Fatalf("Claim at later's NextTry = %s %+v, want %s", got, due, want)
	}
	// By then later's lease has run out too: it comes first.
	due, got = claimIDs(t, s, "email", now.Add(3*time.Hour), lease, 0)
	if want := idList(later, a); got != want || due[1].Attempts != 2 || due[1].LastError != "451 again" ||
		!due[0].NextTry.Equal(later.NextTry.Add(lease)) {
		t.Fatalf("Claim after the second reschedule = %s %+v, want %s (a with 2 attempts)", got, due, want)
	}

	aLease = due[1].Lease
	if err := s.Dequeue(ctx, a.ID, aLease); err != nil {
		t.Fatal(err)
	}
	if err := s.Dequeue(ctx, a.ID, aLease); err != nil {
		t.Fatalf("second Dequeue: %v", err)
	}
	if err := s.Reschedule(ctx, a.ID, aLease, next, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Reschedule of a dequeued item: %v, want ErrNotFound", err)
	}
	if _, got := claimIDs(t, s, "email", now.Add(24*time.Hour), lease, 0); got != idList(later) {
		t.Fatalf("Claim at the end = %s, want %s (later, its lease over)", got, idList(later))
	}
	// Claims of email neither returned nor leased the sms item.
	// A claim at a time finer than the store's keeps the lease as the
	// store does (microseconds), and that lease finishes the item.
	fine := now.Add(999 * time.Nanosecond)
	due, got = claimIDs(t, s, "sms", fine, lease, 0)
	if want := idList(sms); got != want || !due[0].NextTry.Equal(sms.NextTry) || string(due[0].Payload) != "sms" {
		t.Fatalf("Claim sms = %s %+v, want %s", got, due, want)
	}
	if !due[0].Lease.Equal(now.Add(lease)) {
		t.Fatalf("Claim at %v: Lease %v, want %v (truncated to microseconds)", fine, due[0].Lease, now.Add(lease))
	}
	if err := s.Reschedule(ctx, sms.ID, due[0].Lease, now, "503"); err != nil {
		t.Fatalf("Reschedule with the lease of a claim at a fine time: %v", err)
	}
	// A zero lease finishes the item whoever holds it (admin tools).
	due, _ = claimIDs(t, s, "sms", now, lease, 0)
	if len(due) != 1 || due[0].Attempts != 1 {
		t.Fatalf("Claim sms again = %+v, want it with one attempt", due)
	}
	if err := s.Reschedule(ctx, sms.ID, time.Time{}, now, "admin"); err != nil {
		t.Fatalf("Reschedule with no lease of a leased item: %v", err)
	}
	if got, want := queueRow(t, s, sms.ID), wantRow(2, now, "admin"); got != want {
		t.Fatalf("after Reschedule with no lease: %s, want %s", got, want)
	}
	if _, got := claimIDs(t, s, "sms", now, lease, 0); got != idList(sms) {
		t.Fatalf("Claim sms a third time = %s, want %s", got, idList(sms))
	}
	if err := s.Dequeue(ctx, sms.ID, time.Time{}); err != nil {
		t.Fatalf("Dequeue with no lease of a leased item: %v", err)
	}
	if got := queueRow(t, s, sms.ID); got != "gone" {
		t.Fatalf("after Dequeue with no lease: %s, want gone", got)
	}
	if err := s.Enqueue(ctx, &QueueItem{Transport: "sms"}); err == nil {
		t.Fatal("Enqueue without user succeeded")
	}
}

// testQueueConcurrentClaims: claimers on two stores of one database (two
// gateway instances), several goroutines each, together get every due
// item exactly once, each leased; then each claimer dequeues its items
// with their leases, all at once, and every item is gone.
func testQueueConcurrentClaims(t *testing.T, b testBackend) {
	dsn := b.newDSN(t)
	s0 := b.openAt(t, dsn, testKey(1))
	stores := []Store{s0, b.openAt(t, dsn, testKey(1))}
	const items, claimers, batch = 200, 8, 7
	base := dbTime(time.Now())
	for i := range items {
		it := &QueueItem{Transport: "sms", User: fmt.Sprintf("u%d@x", i%5), Payload: []byte(fmt.Sprint(i)),
			NextTry: base.Add(-time.Duration(i%13) * time.Second)}
		if err := stores[i%2].Enqueue(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	if err := stores[0].Enqueue(ctx, &QueueItem{Transport: "email", User: "u@x"}); err != nil {
		t.Fatal(err)
	}
	now := dbTime(time.Now())
	const lease = time.Hour
	var (
		mu     sync.Mutex
		got    = map[int64]int{}
		mine   = make([][]QueueItem, claimers) // each claimer's items
		claims int
		total  int
		wg     sync.WaitGroup
	)
	errs := make(chan error, claimers)
	for c := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				its, err := stores[c%2].Claim(ctx, "sms", now, lease, batch)
				if err != nil {
					errs <- err
					return
				}
				if len(its) == 0 {
					return
				}
				if len(its) > batch {
					errs <- fmt.Errorf("claim returned %d items, limit %d", len(its), batch)
					return
				}
				for i := 1; i < len(its); i++ {
					p, q := its[i-1], its[i]
					if q.NextTry.Before(p.NextTry) || q.NextTry.Equal(p.NextTry) && q.ID < p.ID {
						errs <- fmt.Errorf("claim out of order: %d (%v) before %d (%v)", p.ID, p.NextTry, q.ID, q.NextTry)
						return
					}
				}
				mine[c] = append(mine[c], its...)
				mu.Lock()
				claims++
				for _, it := range its {
					got[it.ID]++
					total++
				}
				over := total > items
				mu.Unlock()
				if over { // a store that does not lease would loop forever
					errs <- fmt.Errorf("more than %d items claimed in all: some went twice", items)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	twice := 0
	for _, n := range got {
		if n != 1 {
			twice++
		}
	}
	if twice > 0 {
		t.Fatalf("%d of %d items claimed more than once", twice, len(got))
	}
	if t.Failed() {
		return
	}
	if len(got) != items {
		t.Errorf("%d distinct items claimed, want %d", len(got), items)
	}
	t.Logf("%d items in %d claims by %d goroutines on 2 stores", len(got), claims, claimers)
	// Every item is leased: nothing is left before the lease ends, and all
	// of them come back when it does.
	if _, got := claimIDs(t, stores[0], "sms", now.Add(lease-time.Microsecond), lease, 1000); got != "" {
		t.Fatalf("Claim before the lease ends = %s, want none", got)
	}

	// Each claimer dequeues its items with their leases, all claimers at
	// once: every Dequeue holds its lease, and every item goes.
	errs = make(chan error, 2*items) // two at most per item: no send blocks
	for c := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, it := range mine[c] {
				if !it.Lease.Equal(now.Add(lease)) {
					errs <- fmt.Errorf("claimer %d: item %d has Lease %v, want %v", c, it.ID, it.Lease, now.Add(lease))
				}
				if err := stores[c%2].Dequeue(ctx, it.ID, it.Lease); err != nil {
					errs <- fmt.Errorf("claimer %d: Dequeue(%d, its lease): %v", c, it.ID, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var left int
	if err := s0.b.writer().queryRow(ctx, "SELECT COUNT(*) FROM queue WHERE transport = 'sms'").Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d sms items left after every claimer dequeued its items, want 0", left)
	}
	if its, got := claimIDs(t, stores[1], "sms", now.Add(lease), lease, 1000); len(its) != 0 {
		t.Fatalf("Claim when the lease ends = %s, want none (all dequeued)", got)
	}
	if its, _ := claimIDs(t, stores[1], "email", now, lease, 0); len(its) != 1 {
		t.Fatalf("Claim email: %d items, want 1", len(its))
	}
}

func testState(t *testing.T, b testBackend) {
	s := b.open(t)
	if _, err := s.GetState(ctx, "u@x", "email", "uidvalidity"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetState of nothing: %v", err)
	}
	if err := s.PutState(ctx, "u@x", "email", "uidvalidity", []byte("12345")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutState(ctx, "u@x", "email", "uid", []byte{0, 1, 2, 0xff}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutState(ctx, "u@x", "email", "uidvalidity", []byte("67890")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetState(ctx, "u@x", "email", "uidvalidity"); err != nil || string(v) != "67890" {
		t.Fatalf("GetState = %q, %v", v, err)
	}
	if v, err := s.GetState(ctx, "u@x", "email", "uid"); err != nil || !bytes.Equal(v, []byte{0, 1, 2, 0xff}) {
		t.Fatalf("GetState binary = %x, %v", v, err)
	}
	if _, err := s.GetState(ctx, "u@x", "sms", "uid"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetState of another transport: %v", err)
	}
	if err := s.PutState(ctx, "u@x", "email", "empty", nil); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetState(ctx, "u@x", "email", "empty"); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("GetState of empty = %#v, %v", v, err)
	}
	// DeleteState removes one value, twice is harmless.
	for i := 0; i < 2; i++ {
		if err := s.DeleteState(ctx, "u@x", "email", "uid"); err != nil {
			t.Fatalf("DeleteState #%d: %v", i+1, err)
		}
	}
	if _, err := s.GetState(ctx, "u@x", "email", "uid"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetState after DeleteState: %v", err)
	}
	if v, err := s.GetState(ctx, "u@x", "email", "uidvalidity"); err != nil || len(v) == 0 {
		t.Fatalf("DeleteState took another value: %q, %v", v, err)
	}
}

func testConcurrentWriters(t *testing.T, b testBackend) {
	dsn := b.newDSN(t)
	stores := []Store{b.openAt(t, dsn, testKey(1)), b.openAt(t, dsn, testKey(1))} // two "processes"
	const writers, rounds = 20, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[w%2]
			user := fmt.Sprintf("user%d@x", w)
			for i := range rounds {
				if err := s.PutAccount(ctx, &Account{User: user, Transport: "irc", Secrets: map[string]string{"password": "p"}}); err != nil {
					errs <- err
					return
				}
				batch := make([]ArchiveEntry, 5)
				for j := range batch {
					batch[j] = ArchiveEntry{User: user, Transport: "irc", Peer: "#room", Body: fmt.Sprint(i, j)}
				}
				if err := s.AppendArchive(ctx, batch); err != nil {
					errs <- err
					return
				}
				if err := s.Enqueue(ctx, &QueueItem{Transport: "irc", User: user, Payload: []byte("x")}); err != nil {
					errs <- err
					return
				}
				if err := s.PutState(ctx, user, "irc", "n", []byte(fmt.Sprint(i))); err != nil {
					errs <- err
					return
				}
				if err := s.PutMessageID(ctx, MessageID{User: user, Transport: "irc", Peer: "#room", StanzaID: fmt.Sprint(i), RemoteID: fmt.Sprint(i)}); err != nil {
					errs <- err
					return
				}
				if _, err := s.QueryArchive(ctx, ArchiveQuery{User: user, Transport: "irc", Peer: "#room", Before: true, Limit: 10}); err != nil {
					errs <- err
					return
				}
				if _, err := s.GetAccount(ctx, user, "irc"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	s := stores[0].(*sqlStore)
	var n int64
	if err := s.b.reader().queryRow(ctx, "SELECT SUM(entries) FROM archive_chunks").Scan(&n); err != nil || n != writers*rounds*5 {
		t.Fatalf("archive has %d entries, want %d (%v)", n, writers*rounds*5, err)
	}
	// Every user's archive is in append order with unique seqs.
	for w := range writers {
		p, err := s.QueryArchive(ctx, ArchiveQuery{User: fmt.Sprintf("user%d@x", w), Transport: "irc", Peer: "#room", Limit: 1000})
		if err != nil || p.Count != rounds*5 || len(p.Entries) != rounds*5 {
			t.Fatalf("user%d: %v", w, err)
		}
		for i, e := range p.Entries {
			if want := fmt.Sprint(i/5, i%5); e.Body != want {
				t.Fatalf("user%d entry %d = %q, want %q", w, i, e.Body, want)
			}
		}
	}
}

func testMigrations(t *testing.T, b testBackend) {
	dsn := b.newDSN(t)
	versions := func(s *sqlStore) []int {
		rs, err := s.b.reader().query(ctx, "SELECT version FROM schema_version ORDER BY version")
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var vs []int
		for rs.Next() {
			var v int
			if err := rs.Scan(&v); err != nil {
				t.Fatal(err)
			}
			vs = append(vs, v)
		}
		return vs
	}
	s := b.openAt(t, dsn, testKey(1)) // upgrade from an empty database
	want := fmt.Sprint(seqInts(SchemaVersion()))
	if got := fmt.Sprint(versions(s)); got != want {
		t.Fatalf("schema versions %s, want %s", got, want)
	}
	fillUser(t, s, "u@x", "irc")
	s.Close()
	for range 2 { // opening again changes nothing and keeps the data
		s = b.openAt(t, dsn, testKey(1))
		if got := fmt.Sprint(versions(s)); got != want {
			t.Fatalf("after reopen: schema versions %s, want %s", got, want)
		}
		if _, err := s.GetAccount(ctx, "u@x", "irc"); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	// Concurrent opens of a fresh database all succeed.
	dsn2 := b.newDSN(t)
	var wg sync.WaitGroup
	openErrs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, b.driver, dsn2, testKey(1))
			if err == nil {
				s.Close()
			}
			openErrs <- err
		}()
	}
	wg.Wait()
	close(openErrs)
	for err := range openErrs {
		if err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
	// A database from the future is refused.
	s = b.openAt(t, dsn, testKey(1))
	if _, err := s.b.writer().exec(ctx, "INSERT INTO schema_version (version, applied) VALUES (?, ?)", SchemaVersion()+1, time.Now()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(ctx, b.driver, dsn, testKey(1))
	if err == nil || !strings.Contains(err.Error(), "newer switchboard") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func seqInts(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func TestOpenUnknownDriver(t *testing.T) {
	_, err := Open(ctx, "mysql", "x", testKey(1))
	if err == nil || !strings.Contains(err.Error(), `"sqlite"`) || !strings.Contains(err.Error(), `"postgres"`) {
		t.Fatalf("Open(mysql) = %v", err)
	}
}

// testOpenContext: the context given to Open bounds the opening only, not
// the life of the store.
func testOpenContext(t *testing.T, b testBackend) {
	octx, cancel := context.WithCancel(ctx)
	s, err := Open(octx, b.driver, b.newDSN(t), testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cancel()
	for i := range 3 { // more than once, so that pools open new connections
		if err := s.PutState(ctx, "u@x", "irc", "k", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.QueryArchive(ctx, ArchiveQuery{User: "u@x", Transport: "irc"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigrationFiles: both databases have the same migrations, so that
// SchemaVersion means the same for both.
func TestMigrationFiles(t *testing.T) {
	sq, pg := sqliteDialect.migrations, postgresDialect.migrations
	if len(sq) == 0 || len(sq) != len(pg) || SchemaVersion() != len(sq) {
		t.Fatalf("sqlite has %d migrations, postgres %d", len(sq), len(pg))
	}
	for i := range sq {
		if sq[i].name != pg[i].name {
			t.Errorf("migration %d: sqlite %s, postgres %s", i+1, sq[i].name, pg[i].name)
		}
	}
}
