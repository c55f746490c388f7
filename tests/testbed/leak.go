package testbed

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// leakMarkers select the goroutines Main reports: those running code of
// this module or of the XMPP/IRC libraries. Runtime, testing and net/http
// keep-alive goroutines are not reported.
var leakMarkers = []string{"switchboard/", "mellium.im/", "github.com/ergochat/"}

// Main runs the tests of a package and then fails the run if goroutines of
// this module or of the XMPP/IRC libraries are still running 5 s after the
// last test (a client or server that cleanup did not stop). Use it as
//
//	func TestMain(m *testing.M) { testbed.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := LeakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "FAIL: goroutines leaked by the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// LeakedGoroutines waits up to timeout for the goroutines of this module
// and of the XMPP/IRC libraries (other than the caller) to end, and returns
// the stacks of those still running ("" if none).
func LeakedGoroutines(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		leaked := leakedNow()
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func leakedNow() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var leaked []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 {
			continue // the calling goroutine comes first
		}
		for _, m := range leakMarkers {
			if strings.Contains(g, m) {
				leaked = append(leaked, g)
				break
			}
		}
	}
	return leaked
}
