// Package testbed starts real servers (Prosody, ngircd, InspIRCd,
// PostgreSQL, …) on free loopback ports with configs written into a test's
// temp dir, for the end-to-end tests and the load tool. Nothing here is a
// mock: every helper runs the Debian package's binary.
package testbed

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI (CI is set): a missing server is
// then a failure, never a skip.
func InCI() bool { return os.Getenv("CI") != "" }

// RequireBinary returns the path of a server binary. When it is missing the
// test is skipped on a developer machine and fails in CI.
func RequireBinary(tb testing.TB, name string, candidates ...string) string {
	tb.Helper()
	for _, c := range append([]string{name}, candidates...) {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	msg := fmt.Sprintf("%s is not installed (run `make deps`, which installs the Debian package)", name)
	if InCI() {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitPort waits until something accepts TCP connections on addr.
func WaitPort(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
