package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

var postgresDialect = &dialect{
	name:               "postgres",
	schemaVersionTable: "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY, applied TIMESTAMPTZ NOT NULL)",
	lockMigrations:     "LOCK TABLE schema_version IN EXCLUSIVE MODE",
	skipLocked:         " FOR UPDATE SKIP LOCKED",
	migrations:         loadMigrations("postgres"),
}

// postgresBackend is a pgx pool.
type postgresBackend struct {
	pool *pgxpool.Pool
}

func openPostgres(ctx context.Context, dsn string) (*postgresBackend, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors may quote the DSN, password included.
		return nil, errors.New("store: postgres: the DSN does not parse (not shown: it may hold a password); " +
			"use postgres://user@host:port/dbname?sslmode=… or key=value pairs")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	return &postgresBackend{pool: pool}, nil
}

func (b *postgresBackend) reader() querier   { return pgQ{b.pool} }
func (b *postgresBackend) writer() querier   { return pgQ{b.pool} }
func (b *postgresBackend) dialect() *dialect { return postgresDialect }

func (b *postgresBackend) beginRead(ctx context.Context) (txn, error) {
	tx, err := b.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	return pgTx{pgQ{tx}, tx}, nil
}

func (b *postgresBackend) beginWrite(ctx context.Context) (txn, error) {
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return pgTx{pgQ{tx}, tx}, nil
}

func (b *postgresBackend) close() error {
	b.pool.Close()
	return nil
}

// pgConn is what *pgxpool.Pool and pgx.Tx have in common.
type pgConn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type pgQ struct{ c pgConn }

func (q pgQ) exec(ctx context.Context, s string, args ...any) (int64, error) {
	tag, err := q.c.Exec(ctx, pgPlaceholders(s), args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (q pgQ) query(ctx context.Context, s string, args ...any) (rows, error) {
	return q.c.Query(ctx, pgPlaceholders(s), args...)
}

func (q pgQ) queryRow(ctx context.Context, s string, args ...any) row {
	return q.c.QueryRow(ctx, pgPlaceholders(s), args...)
}

type pgTx struct {
	pgQ
	tx pgx.Tx
}

// execBatch sends all statements in one pipelined batch: one round trip.
func (t pgTx) execBatch(ctx context.Context, s string, args [][]any) error {
	if len(args) == 0 {
		return nil
	}
	s = pgPlaceholders(s)
	batch := &pgx.Batch{}
	for _, a := range args {
		batch.Queue(s, a...)
	}
	br := t.tx.SendBatch(ctx, batch)
	for range args {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	return br.Close()
}

func (t pgTx) commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t pgTx) rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }

// pgPlaceholders turns each "?" into $1, $2… (the store's SQL has no "?"
// inside literals).
func pgPlaceholders(s string) string {
	if !strings.Contains(s, "?") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
