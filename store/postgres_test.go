package store

import (
	"strings"
	"testing"

	"switchboard/tests/testbed"
)

func postgresTestBackend(t testing.TB) testBackend {
	server := testbed.StartPostgres(t)
	return testBackend{
		driver: "postgres",
		newDSN: func(t testing.TB) string { return testbed.NewPostgresDatabase(t, server) },
	}
}

func TestPostgres(t *testing.T) {
	testStore(t, postgresTestBackend(t))
}

func TestPostgresBadDSN(t *testing.T) {
	const secret = "s3cr3t-passw0rd"
	for _, dsn := range []string{
		"postgres://user:" + secret + "@[::1:5432/db", // does not parse
		"host=127.0.0.1 port=notaport password=" + secret,
		"postgres://user:" + secret + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", // nothing listens
	} {
		_, err := Open(ctx, "postgres", dsn, testKey(1))
		if err == nil {
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error leaks the password: %v", err)
		}
		t.Log(err)
	}
}
