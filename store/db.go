package store

import (
	"context"
	"time"
)

// The SQL store is written once, against the small interfaces below; the
// SQLite (database/sql + modernc) and PostgreSQL (pgxpool) adapters
// implement them. Queries use "?" placeholders; the PostgreSQL adapter
// rewrites them to $n. Arguments and scan targets of type time.Time are
// converted by the adapter (SQLite stores Unix microseconds in INTEGER
// columns, PostgreSQL uses TIMESTAMPTZ).

// rows is an open result set.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// row is a single-row result; Scan returns an error wrapping
// sql.ErrNoRows when there is none.
type row interface {
	Scan(dest ...any) error
}

// querier runs statements on a pool or inside a transaction.
type querier interface {
	exec(ctx context.Context, q string, args ...any) (int64, error)
	query(ctx context.Context, q string, args ...any) (rows, error)
	queryRow(ctx context.Context, q string, args ...any) row
}

// txn is a transaction.
type txn interface {
	querier
	// execBatch runs the statement q once per element of args, in order
	// (a prepared statement on SQLite, one pipelined batch on PostgreSQL).
	execBatch(ctx context.Context, q string, args [][]any) error
	commit(ctx context.Context) error
	rollback(ctx context.Context) error
}

// backend is one database.
type backend interface {
	// reader runs single statements that only read.
	reader() querier
	// writer runs single statements that write (autocommit).
	writer() querier
	// beginRead starts a read-only transaction that sees one snapshot.
	beginRead(ctx context.Context) (txn, error)
	// beginWrite starts a transaction that will write; on SQLite it holds
	// the write lock from the start (BEGIN IMMEDIATE).
	beginWrite(ctx context.Context) (txn, error)
	dialect() *dialect
	close() error
}

// dialect holds the few statements that differ between the databases.
type dialect struct {
	name string
	// schemaVersionTable creates the migrations table if missing.
	schemaVersionTable string
	// lockMigrations, run first in each migration transaction, stops a
	// second process from migrating at the same time ("" when the
	// transaction itself is enough).
	lockMigrations string
	// skipLocked, appended to a SELECT in a write transaction, locks the
	// rows it returns and passes over rows another transaction has
	// locked, so that concurrent claimers of the queue neither wait for
	// each other nor pick the same row ("" when the write transaction
	// itself already excludes every other writer).
	skipLocked string
	// migrations are this database's embedded migrations.
	migrations []migration
}

// dbTime normalises a time to what the database keeps: UTC, microseconds.
func dbTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// runTx runs fn in a write transaction and commits it.
func runTx(ctx context.Context, b backend, fn func(tx txn) error) error {
	tx, err := b.beginWrite(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.rollback(ctx)
		return err
	}
	return tx.commit(ctx)
}

// runReadTx runs fn in a read transaction.
func runReadTx(ctx context.Context, b backend, fn func(tx txn) error) error {
	tx, err := b.beginRead(ctx)
	if err != nil {
		return err
	}
	defer tx.rollback(ctx)
	return fn(tx)
}
