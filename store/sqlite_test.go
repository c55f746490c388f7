package store

import (
	"path/filepath"
	"strings"
	"testing"
)

var sqliteTestBackend = testBackend{
	driver: "sqlite",
	newDSN: func(t testing.TB) string { return filepath.Join(t.TempDir(), "switchboard.db") },
}

func TestSQLite(t *testing.T) {
	testStore(t, sqliteTestBackend)
}

// TestSQLiteMemory checks that ":memory:" works (a single connection, so
// that every statement sees the same database).
func TestSQLiteMemory(t *testing.T) {
	s := sqliteTestBackend.openAt(t, ":memory:", testKey(1))
	fillUser(t, s, "u@x", "irc")
	for table, n := range countRows(t, s, "u@x", "irc") {
		if n != 1 {
			t.Errorf("%s has %d rows, want 1", table, n)
		}
	}
	expectPage(t, s, ArchiveQuery{User: "u@x", Transport: "irc", Peer: "p"}, "hi", true, 1)
}

// TestSQLiteFile checks the pragmas reached the connections.
func TestSQLiteFile(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "x.db")
	s := sqliteTestBackend.openAt(t, dsn, testKey(1))
	var mode string
	if err := s.b.reader().queryRow(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
	var fk, busy int
	if err := s.b.writer().queryRow(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v", fk, err)
	}
	if err := s.b.writer().queryRow(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil || busy != 5000 {
		t.Fatalf("busy_timeout = %d, %v", busy, err)
	}
	// The read pool cannot write.
	if _, err := s.b.reader().exec(ctx, "DELETE FROM accounts"); err == nil {
		t.Fatal("the read pool wrote")
	}
	// A "file:" URI with its own parameters works too.
	sqliteTestBackend.openAt(t, "file:"+filepath.Join(t.TempDir(), "y.db")+"?cache=private", testKey(1))
}

func TestSQLiteMissingDir(t *testing.T) {
	_, err := Open(ctx, "sqlite", filepath.Join(t.TempDir(), "nope", "x.db"), testKey(1))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Open in a missing directory: %v", err)
	}
	if _, err := Open(ctx, "sqlite", "", testKey(1)); err == nil {
		t.Fatal("Open with an empty DSN succeeded")
	}
}
