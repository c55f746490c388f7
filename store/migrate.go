package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migration is one embedded SQL file, migrations/<db>/NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// migrationSteps are Go code that runs after the SQL of a version, in the
// same transaction, for both databases: for what SQL alone cannot convert.
var migrationSteps = map[int]func(ctx context.Context, tx txn) error{
	2: chunkArchive, // migrate_archive.go
}

// loadMigrations reads migrations/<dir>. The versions must run 1, 2, 3…
// without gaps; anything else is a bug in the build, so it panics.
func loadMigrations(dir string) []migration {
	entries, err := fs.ReadDir(migrationFiles, path.Join("migrations", dir))
	if err != nil {
		panic(fmt.Sprintf("store: embedded migrations %s: %v", dir, err))
	}
	var ms []migration
	for _, e := range entries { // ReadDir sorts by name
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			panic(fmt.Sprintf("store: embedded migration %s/%s: name is not NNNN_name.sql", dir, name))
		}
		if v != len(ms)+1 {
			panic(fmt.Sprintf("store: embedded migration %s/%s: expected version %d", dir, name, len(ms)+1))
		}
		b, err := fs.ReadFile(migrationFiles, path.Join("migrations", dir, name))
		if err != nil {
			panic(fmt.Sprintf("store: embedded migration %s/%s: %v", dir, name, err))
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	return ms
}

// SchemaVersion is the schema version this build of the store migrates
// databases to.
func SchemaVersion() int {
	return len(sqliteDialect.migrations)
}

// migrate brings the schema up to date: each pending migration (its SQL,
// then its Go step if it has one) runs in its own transaction and is
// recorded in schema_version. A database newer than this code is an error.
func migrate(ctx context.Context, b backend) error {
	return migrateTo(ctx, b, len(b.dialect().migrations))
}

// migrateTo migrates up to version target (tests build old databases with
// it).
func migrateTo(ctx context.Context, b backend, target int) error {
	d := b.dialect()
	// Two processes creating it at once can collide (PostgreSQL's IF NOT
	// EXISTS is not atomic): the second try then finds it.
	if _, err := b.writer().exec(ctx, d.schemaVersionTable); err != nil {
		_, err = b.writer().exec(ctx, d.schemaVersionTable)
		if err != nil {
			return fmt.Errorf("store: creating schema_version in the %s database: %w", d.name, err)
		}
	}
	known := int64(len(d.migrations))
	tooNew := func(cur int64) error {
		return fmt.Errorf("the database has schema version %d but this switchboard knows only up to %d: "+
			"a newer switchboard used it; upgrade this one (or restore a backup)", cur, known)
	}
	// The common case, nothing to do, takes no write lock.
	var cur int64
	if err := b.reader().queryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_version").Scan(&cur); err != nil {
		return fmt.Errorf("store: reading the schema version of the %s database: %w", d.name, err)
	}
	if cur > known {
		return fmt.Errorf("store: %s database: %w", d.name, tooNew(cur))
	}
	if cur >= int64(target) {
		return nil
	}
	for _, m := range d.migrations[cur:target] {
		err := runTx(ctx, b, func(tx txn) error {
			if d.lockMigrations != "" {
				if _, err := tx.exec(ctx, d.lockMigrations); err != nil {
					return err
				}
			}
			// Another process may have migrated since we looked.
			var cur int64
			if err := tx.queryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_version").Scan(&cur); err != nil {
				return err
			}
			switch {
			case cur > known:
				return tooNew(cur)
			case cur >= int64(m.version):
				return nil
			case cur != int64(m.version-1):
				return fmt.Errorf("the database has schema version %d, cannot apply %s", cur, m.name)
			}
			if _, err := tx.exec(ctx, m.sql); err != nil {
				return fmt.Errorf("applying %s: %w", m.name, err)
			}
			if step := migrationSteps[m.version]; step != nil {
				if err := step(ctx, tx); err != nil {
					return fmt.Errorf("applying %s (its Go step): %w", m.name, err)
				}
			}
			if _, err := tx.exec(ctx, "INSERT INTO schema_version (version, applied) VALUES (?, ?)", m.version, dbTime(time.Now())); err != nil {
				return fmt.Errorf("recording %s: %w", m.name, err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: migrating the %s database: %w", d.name, err)
		}
	}
	return nil
}
