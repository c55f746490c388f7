package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// StartPostgres runs a throw-away PostgreSQL server from the Debian package
// (/usr/lib/postgresql/<version>/bin, newest version first) on a free
// 127.0.0.1 port, with its data directory and unix socket in a fresh temp
// dir, and stops it (and removes the dir) in tb.Cleanup. It returns the
// DSN of the "postgres" database for the superuser "postgres" (trust
// authentication, no TLS). Durability is off (fsync=off): test data only.
//
// PostgreSQL refuses to run as root: as root, initdb and postgres run as
// the "postgres" system user the package creates. When the binaries are
// missing the test is skipped, or fails in CI (see RequireBinary).
func StartPostgres(tb testing.TB) string {
	tb.Helper()
	bin := RequireBinary(tb, "postgres", postgresCandidates()...)
	initdb := filepath.Join(filepath.Dir(bin), "initdb")
	if _, err := os.Stat(initdb); err != nil {
		tb.Fatalf("postgres is at %s but initdb is not next to it: %v", bin, err)
	}

	cred, uid, gid := postgresCredential(tb)
	dir := postgresTempDir(tb, uid, gid)
	data := filepath.Join(dir, "data")
	logPath := filepath.Join(dir, "postgres.log")

	var out bytes.Buffer
	cmd := exec.Command(initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
	cmd.Dir = dir
	cmd.Env = postgresEnv()
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := cmd.Run(); err != nil {
		tb.Fatalf("initdb failed: %v\n%s", err, out.String())
	}

	var lastErr error
	for range 3 { // the free port may be taken before postgres binds it
		port := FreePort(tb)
		dsn, stop, err := runPostgres(bin, dir, data, logPath, port, cred)
		if err == nil {
			tb.Cleanup(func() {
				if err := stop(); err != nil {
					tb.Logf("stopping postgres: %v", err)
				}
			})
			return dsn
		}
		lastErr = err
	}
	tb.Fatalf("postgres did not start: %v\n%s", lastErr, tailFile(logPath, 4096))
	return ""
}

// NewPostgresDatabase creates an empty database on the server StartPostgres
// returned serverDSN for, drops it in tb.Cleanup, and returns its DSN.
func NewPostgresDatabase(tb testing.TB, serverDSN string) string {
	tb.Helper()
	u, err := url.Parse(serverDSN)
	if err != nil {
		tb.Fatalf("postgres DSN: %v", err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	name := "test_" + hex.EncodeToString(rnd[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverDSN)
	if err != nil {
		tb.Fatalf("connecting to postgres: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("creating database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, serverDSN)
		if err != nil {
			return // the server is gone already
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u.Path = "/" + name
	return u.String()
}

// postgresCandidates lists /usr/lib/postgresql/*/bin/postgres, newest
// major version first.
func postgresCandidates() []string {
	paths, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	version := func(p string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return v
	}
	sort.Slice(paths, func(i, j int) bool { return version(paths[i]) > version(paths[j]) })
	return paths
}

// postgresCredential returns who runs the server: nil (ourselves) unless
// we are root, then the postgres system user.
func postgresCredential(tb testing.TB) (*syscall.Credential, int, int) {
	tb.Helper()
	if os.Geteuid() != 0 {
		return nil, os.Geteuid(), os.Getegid()
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		tb.Fatalf("running as root, PostgreSQL must run as the postgres user, which does not exist (%v): install the postgresql package or run the tests as another user", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid
}

// postgresTempDir makes a dir owned by uid:gid in a place that user can
// reach (tb.TempDir()'s parents are 0700 and root's).
func postgresTempDir(tb testing.TB, uid, gid int) string {
	tb.Helper()
	base := os.TempDir()
	if !traversable(base) {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "switchboard-pg-")
	if err != nil {
		tb.Fatalf("temp dir for postgres: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		tb.Fatalf("chown %s to the postgres user: %v", dir, err)
	}
	if !traversable(filepath.Dir(dir)) {
		tb.Fatalf("postgres cannot reach %s: a parent directory is not world-traversable (set TMPDIR)", dir)
	}
	return dir
}

// traversable reports whether everyone may search dir and its parents.
func traversable(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

func postgresEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC"}
}

// runPostgres starts the server and waits until it accepts queries.
func runPostgres(bin, dir, data, logPath string, port int, cred *syscall.Credential) (dsn string, stop func() error, err error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return "", nil, err
	}
	defer logf.Close() // the child keeps its own copy
	cmd := exec.Command(bin, "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Dir = dir
	cmd.Env = postgresEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Setpgid keeps a terminal ^C for us; Pdeathsig stops the server if
	// the test binary dies without its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() error {
		cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
			return nil
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
			return errors.New("postgres did not stop within 20s after SIGINT; killed")
		}
	}

	dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			return "", nil, fmt.Errorf("postgres exited: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, cerr := pgx.Connect(ctx, dsn)
		if cerr == nil {
			_, cerr = conn.Exec(ctx, "SELECT 1")
			conn.Close(ctx)
		}
		cancel()
		if cerr == nil {
			return dsn, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("postgres on port %d not ready after 60s: %v", port, cerr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tailFile returns the last n bytes of a file, for error messages.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
