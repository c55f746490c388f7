package testbed

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"testing"
)

// Standalone is a testing.TB for programs that are not tests (the demo, the
// load tool), so they start servers through the same code as the tests:
// Cleanup functions run in Close, last registered first; TempDir makes
// directories that Close removes; Log goes to stderr; Fatal and Skip log,
// run Close and exit the program with status 1 (a missing server is fatal
// outside a test).
//
// Call Close before the program exits, also on signals. Fatal may be
// called from any goroutine.
type Standalone struct {
	// testing.TB is nil: it only supplies the interface's unexported
	// method. Every exported method is implemented below.
	testing.TB

	name   string
	logger *log.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	closed   bool
}

// NewStandalone returns a Standalone whose log lines start with name.
func NewStandalone(name string) *Standalone {
	ctx, cancel := context.WithCancel(context.Background())
	return &Standalone{
		name:   name,
		logger: log.New(os.Stderr, name+": ", log.LstdFlags),
		ctx:    ctx,
		cancel: cancel,
	}
}

// Close cancels Context and runs the cleanup functions, last registered
// first. Later calls do nothing.
func (s *Standalone) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	for {
		s.mu.Lock()
		n := len(s.cleanups)
		if n == 0 {
			s.mu.Unlock()
			return
		}
		f := s.cleanups[n-1]
		s.cleanups = s.cleanups[:n-1]
		s.mu.Unlock()
		f()
	}
}

// Cleanup registers f to run in Close.
func (s *Standalone) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// Helper does nothing.
func (s *Standalone) Helper() {}

// Name returns the name given to NewStandalone.
func (s *Standalone) Name() string { return s.name }

// Log logs to stderr.
func (s *Standalone) Log(args ...any) { s.logger.Output(2, fmt.Sprintln(args...)) }

// Logf logs to stderr.
func (s *Standalone) Logf(format string, args ...any) {
	s.logger.Output(2, fmt.Sprintf(format, args...))
}

// Error logs and marks the program failed.
func (s *Standalone) Error(args ...any) {
	s.logger.Output(2, fmt.Sprintln(args...))
	s.Fail()
}

// Errorf logs and marks the program failed.
func (s *Standalone) Errorf(format string, args ...any) {
	s.logger.Output(2, fmt.Sprintf(format, args...))
	s.Fail()
}

// Fail marks the program failed (Failed reports it; cleanups that dump
// server logs on failure then do so).
func (s *Standalone) Fail() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed = true
}

// Failed reports whether Fail was called.
func (s *Standalone) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// FailNow marks the program failed, runs Close and exits with status 1.
func (s *Standalone) FailNow() {
	s.Fail()
	s.Close()
	os.Exit(1)
}

// Fatal logs, then FailNow.
func (s *Standalone) Fatal(args ...any) {
	s.logger.Output(2, fmt.Sprintln(args...))
	s.FailNow()
}

// Fatalf logs, then FailNow.
func (s *Standalone) Fatalf(format string, args ...any) {
	s.logger.Output(2, fmt.Sprintf(format, args...))
	s.FailNow()
}

// Skip is Fatal: outside a test there is nothing to skip to.
func (s *Standalone) Skip(args ...any) { s.Fatal(args...) }

// Skipf is Fatalf.
func (s *Standalone) Skipf(format string, args ...any) { s.Fatalf(format, args...) }

// SkipNow is FailNow.
func (s *Standalone) SkipNow() { s.FailNow() }

// Skipped reports false.
func (s *Standalone) Skipped() bool { return false }

// TempDir makes a new directory that Close removes.
func (s *Standalone) TempDir() string {
	dir, err := os.MkdirTemp("", "switchboard-"+s.name+"-")
	if err != nil {
		s.Fatalf("making a temp dir: %v", err)
	}
	s.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			s.Logf("removing %s: %v", dir, err)
		}
	})
	return dir
}

// ArtifactDir is TempDir.
func (s *Standalone) ArtifactDir() string { return s.TempDir() }

// Setenv sets an environment variable until Close.
func (s *Standalone) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	if err := os.Setenv(key, value); err != nil {
		s.Fatalf("setenv %s: %v", key, err)
	}
	s.Cleanup(func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}

// Chdir changes the working directory until Close.
func (s *Standalone) Chdir(dir string) {
	old, err := os.Getwd()
	if err != nil {
		s.Fatalf("chdir: %v", err)
	}
	if err := os.Chdir(dir); err != nil {
		s.Fatalf("chdir: %v", err)
	}
	s.Cleanup(func() { os.Chdir(old) })
}

// Context is canceled when Close starts.
func (s *Standalone) Context() context.Context { return s.ctx }

// Attr logs the attribute.
func (s *Standalone) Attr(key, value string) { s.Logf("attr %s=%s", key, value) }

// Output returns stderr.
func (s *Standalone) Output() io.Writer { return os.Stderr }
