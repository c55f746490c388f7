package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// sqlitePragmas are applied to every writer connection, and
// sqliteReaderPragmas to every reader connection.
const (
	sqlitePragmas       = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	sqliteReaderPragmas = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=query_only(1)"
)

var sqliteDialect = &dialect{
	name:               "sqlite",
	schemaVersionTable: "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY, applied INTEGER NOT NULL)",
	// BEGIN IMMEDIATE (the writer pool's _txlock) already excludes other
	// writers, other processes included; and it has a single connection.
	// So neither migrations nor queue claims need a lock of their own.
	migrations: loadMigrations("sqlite"),
}

// sqliteBackend keeps two pools on one file: a single writer connection,
// so that writers queue in Go instead of failing with SQLITE_BUSY, and a
// few read-only connections that WAL lets read while the writer writes.
// An in-memory database has only the writer connection.
type sqliteBackend struct {
	w, r *sql.DB
}

func openSQLite(ctx context.Context, dsn string) (*sqliteBackend, error) {
	if dsn == "" {
		return nil, fmt.Errorf("store: sqlite: the DSN (a file path) is empty")
	}
	mem := dsn == ":memory:" || strings.HasPrefix(dsn, "file::memory:") || strings.Contains(dsn, "mode=memory")
	if !mem && !strings.HasPrefix(dsn, "file:") {
		// SQLite's own message for this is "unable to open database file".
		dir := filepath.Dir(dsn)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("store: sqlite %s: directory %s does not exist (create it, writable by switchboard)", dsn, dir)
		}
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	w, err := sql.Open("sqlite", dsn+sep+sqlitePragmas+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: sqlite %s: %w", dsn, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	b := &sqliteBackend{w: w, r: w}
	// Switching a new file to WAL needs an exclusive lock, and SQLite
	// answers SQLITE_BUSY at once (no busy wait) when two processes
	// race for it: try again for a while.
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		err = w.PingContext(ctx)
		if err == nil {
			break
		}
		if !isSQLiteBusy(err) || wait > 2*time.Second {
			w.Close()
			return nil, fmt.Errorf("store: sqlite %s: %w", dsn, err)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			w.Close()
			return nil, fmt.Errorf("store: sqlite %s: %w", dsn, err)
		}
	}
	if !mem {
		// journal_mode is persistent: the writer has set it.
		r, err := sql.Open("sqlite", dsn+sep+sqliteReaderPragmas)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("store: sqlite %s: %w", dsn, err)
		}
		n := max(4, runtime.GOMAXPROCS(0))
		r.SetMaxOpenConns(n)
		r.SetMaxIdleConns(n)
		r.SetConnMaxIdleTime(5 * time.Minute)
		b.r = r
	}
	return b, nil
}

func (b *sqliteBackend) reader() querier { return sqliteQ{b.r} }
func (b *sqliteBackend) writer() querier { return sqliteQ{b.w} }
func (b *sqliteBackend) dialect() *dialect {
	return sqliteDialect
}

func (b *sqliteBackend) beginRead(ctx context.Context) (txn, error) {
	tx, err := b.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqliteTx{sqliteQ{tx}, tx}, nil
}

func (b *sqliteBackend) beginWrite(ctx context.Context) (txn, error) {
	tx, err := b.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqliteTx{sqliteQ{tx}, tx}, nil
}

func (b *sqliteBackend) close() error {
	// Keep the query planner's statistics fresh, as SQLite recommends
	// before closing (bounded work; failure is harmless).
	b.w.Exec("PRAGMA analysis_limit=400; PRAGMA optimize")
	err := b.w.Close()
	if b.r != b.w {
		if rerr := b.r.Close(); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("store: closing sqlite: %w", err)
	}
	return nil
}

// sqlConn is what *sql.DB and *sql.Tx have in common.
type sqlConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

type sqliteQ struct{ c sqlConn }

func (q sqliteQ) exec(ctx context.Context, s string, args ...any) (int64, error) {
	res, err := q.c.ExecContext(ctx, s, sqliteArgs(args)...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqliteQ) query(ctx context.Context, s string, args ...any) (rows, error) {
	rs, err := q.c.QueryContext(ctx, s, sqliteArgs(args)...)
	if err != nil {
		return nil, err
	}
	return sqliteRows{rs}, nil
}

func (q sqliteQ) queryRow(ctx context.Context, s string, args ...any) row {
	return sqliteRow{q.c.QueryRowContext(ctx, s, sqliteArgs(args)...)}
}

type sqliteTx struct {
	sqliteQ
	tx *sql.Tx
}

// execBatch reuses one prepared statement.
func (t sqliteTx) execBatch(ctx context.Context, s string, args [][]any) error {
	if len(args) == 0 {
		return nil
	}
	st, err := t.tx.PrepareContext(ctx, s)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, a := range args {
		if _, err := st.ExecContext(ctx, sqliteArgs(a)...); err != nil {
			return err
		}
	}
	return nil
}

func (t sqliteTx) commit(context.Context) error   { return t.tx.Commit() }
func (t sqliteTx) rollback(context.Context) error { return t.tx.Rollback() }

type sqliteRows struct{ *sql.Rows }

func (r sqliteRows) Scan(dest ...any) error { return r.Rows.Scan(sqliteDest(dest)...) }
func (r sqliteRows) Close()                 { r.Rows.Close() }

type sqliteRow struct{ *sql.Row }

func (r sqliteRow) Scan(dest ...any) error { return r.Row.Scan(sqliteDest(dest)...) }

// sqliteArgs stores times as Unix microseconds. It copies args (which may
// be the caller's slice) before changing it.
func sqliteArgs(args []any) []any {
	copied := false
	for i, a := range args {
		if t, ok := a.(time.Time); ok {
			if !copied {
				args = append([]any(nil), args...)
				copied = true
			}
			args[i] = t.UnixMicro()
		}
	}
	return args
}

// sqliteDest reads Unix microseconds into *time.Time targets.
func sqliteDest(dest []any) []any {
	copied := false
	for i, d := range dest {
		if t, ok := d.(*time.Time); ok {
			if !copied {
				dest = append([]any(nil), dest...)
				copied = true
			}
			dest[i] = (*microTime)(t)
		}
	}
	return dest
}

// isSQLiteBusy reports whether err is SQLITE_BUSY (or an extended form).
func isSQLiteBusy(err error) bool {
	var e interface{ Code() int }
	return errors.As(err, &e) && e.Code()&0xff == 5
}

// microTime scans an INTEGER of Unix microseconds.
type microTime time.Time

func (m *microTime) Scan(v any) error {
	switch x := v.(type) {
	case int64:
		*m = microTime(time.UnixMicro(x).UTC())
		return nil
	case nil:
		*m = microTime(time.Time{})
		return nil
	}
	return fmt.Errorf("store: sqlite: time column holds %T, want INTEGER", v)
}
