package testbed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// KeepEnv names the environment variable that, when set, keeps the
// directories of the servers of a failed test (configs, data, logs) instead
// of removing them; their paths are logged.
const KeepEnv = "TESTBED_KEEP"

// stopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
const stopGrace = 10 * time.Second

// startTimeout bounds how long a server may take to listen on its ports.
const startTimeout = 20 * time.Second

// process is one server binary that can be started, stopped and started
// again with the same arguments. Its stdout and stderr are appended to
// logPath (and copied to tee when set).
type process struct {
	name    string
	path    string
	args    []string
	dir     string
	logPath string
	tee     io.Writer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// start runs the binary. It fails if the previous run has not exited.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running (pid %d)", p.name, p.cmd.Process.Pid)
		}
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the output file of %s: %w", p.name, err)
	}
	fmt.Fprintf(f, "=== testbed: starting %s %s at %s\n", p.path, strings.Join(p.args, " "), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.path, p.args...)
	cmd.Dir = p.dir
	var out io.Writer = f
	if p.tee != nil {
		out = io.MultiWriter(f, p.tee)
	}
	cmd.Stdout = out
	cmd.Stderr = out
	// Own process group: a terminal's Ctrl-C reaches only the parent, which
	// stops its servers itself; the whole group is signalled on stop.
	// Pdeathsig: a test binary killed by its -timeout takes its servers along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s (%s): %w", p.name, p.path, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "=== testbed: %s exited: %v\n", p.name, exitText(err))
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// running reports whether the current run has not exited.
func (p *process) running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// exited returns a channel closed when the current run exits (nil if it was
// never started).
func (p *process) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// exitErr is the result of the last run's Wait.
func (p *process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// signal sends sig to the process group of the current run.
func (p *process) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	// The negative pid addresses the process group (Setpgid above).
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = cmd.Process.Signal(sig)
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILL. It returns an error
// if the process needed SIGKILL.
func (p *process) stop(grace time.Duration) error {
	done := p.exited()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	p.signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	p.kill()
	return fmt.Errorf("%s did not exit within %s of SIGTERM and was killed", p.name, grace)
}

// kill sends SIGKILL and waits for the exit.
func (p *process) kill() {
	done := p.exited()
	if done == nil {
		return
	}
	p.signal(syscall.SIGKILL)
	<-done
}

// portTakenError reports that another process listens on a server's port
// (FreePort only promises the port was free a moment ago), so the starter
// may try again with other ports.
type portTakenError struct {
	name, addr string
}

func (e *portTakenError) Error() string {
	return fmt.Sprintf("%s could not listen on %s: another process listens there", e.name, e.addr)
}

// startRetrying calls start, which picks ports (when the caller left
// them to it), writes the config and starts the server, up to three times
// while it fails because a port it picked was taken meanwhile and retry
// says another try can help; any other failure is fatal, with the
// server's log.
func startRetrying(tb testing.TB, name string, logTail func() string, start func() error, retry func(taken *portTakenError) bool) {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		err := start()
		if err == nil {
			return
		}
		if taken := (*portTakenError)(nil); errors.As(err, &taken) && attempt < 3 && retry(taken) {
			tb.Logf("%s: %v; trying other ports", name, err)
			continue
		}
		tb.Fatalf("%s: %v\n%s", name, err, logTail())
	}
}

// foreignGrace is how long a port may accept connections for another
// process before waitListening concludes the server will never get it.
const foreignGrace = 3 * time.Second

// waitListening waits until the process listens on every addr, failing
// early when the process exits, and with a *portTakenError when another
// process holds one of the ports.
func (p *process) waitListening(timeout time.Duration, addrs ...string) error {
	deadline := time.Now().Add(timeout)
	done := p.exited()
	for _, addr := range addrs {
		var foreignSince time.Time
		for {
			accepting := WaitPort(addr, 100*time.Millisecond) == nil
			if accepting {
				owned, known := p.ownsListener(addr)
				if owned || !known {
					break
				}
				if foreignSince.IsZero() {
					foreignSince = time.Now()
				} else if time.Since(foreignSince) > foreignGrace {
					return &portTakenError{name: p.name, addr: addr}
				}
				time.Sleep(50 * time.Millisecond)
			}
			select {
			case <-done:
				if accepting {
					return &portTakenError{name: p.name, addr: addr}
				}
				return fmt.Errorf("%s exited (%v) before it listened on %s", p.name, exitText(p.exitErr()), addr)
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s does not listen on %s after %s", p.name, addr, timeout)
			}
		}
	}
	return nil
}

// ownsListener reports whether a process of p's process group holds the
// socket listening on addr's port. known is false where /proc cannot tell
// (not Linux).
func (p *process) ownsListener(addr string) (owned, known bool) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil || cmd == nil || cmd.Process == nil {
		return false, false
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return false, false
	}
	inodes, err := listeningInodes(port)
	if err != nil {
		return false, false
	}
	if len(inodes) == 0 {
		return false, true
	}
	for _, pid := range groupPids(cmd.Process.Pid) {
		fds, err := os.ReadDir("/proc/" + pid + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink("/proc/" + pid + "/fd/" + fd.Name())
			if err != nil {
				continue
			}
			if inode, ok := strings.CutPrefix(link, "socket:["); ok && inodes[strings.TrimSuffix(inode, "]")] {
				return true, true
			}
		}
	}
	return false, true
}

// listeningInodes returns the socket inodes listening on a TCP port, from
// /proc/net/tcp and /proc/net/tcp6.
func listeningInodes(port int) (map[string]bool, error) {
	inodes := map[string]bool{}
	want := fmt.Sprintf(":%04X", port)
	read := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		read++
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			// sl local_address rem_address st ... uid timeout inode
			if len(f) < 10 || f[3] != "0A" || !strings.HasSuffix(f[1], want) {
				continue
			}
			inodes[f[9]] = true
		}
	}
	if read == 0 {
		return nil, errors.New("no /proc/net/tcp")
	}
	return inodes, nil
}

// groupPids returns pid and the other members of its process group.
func groupPids(pid int) []string {
	pids := []string{strconv.Itoa(pid)}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return pids
	}
	for _, e := range entries {
		name := e.Name()
		if name == pids[0] || name[0] < '0' || name[0] > '9' {
			continue
		}
		stat, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may contain spaces.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 2 && f[2] == pids[0] {
			pids = append(pids, name)
		}
	}
	return pids
}

// serverDir makes a directory for one server's config, data and logs.
// It lives under os.TempDir (not tb.TempDir) because some daemons drop
// privileges and need to traverse it; it is mode 0755 and removed in
// cleanup unless the test failed and KeepEnv is set.
func serverDir(tb testing.TB, name string) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "switchboard-"+name+"-")
	if err != nil {
		tb.Fatalf("making a directory for %s: %v", name, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatalf("making %s traversable: %v", dir, err)
	}
	tb.Cleanup(func() {
		if tb.Failed() && os.Getenv(KeepEnv) != "" {
			tb.Logf("%s: kept %s (%s is set)", name, dir, KeepEnv)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			tb.Logf("removing %s: %v", dir, err)
		}
	})
	return dir
}

// writeFile writes a file readable by everyone (daemons that drop to
// nobody read their config after the switch).
func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatalf("writing %s: %v", path, err)
	}
}

// tailLines returns the last n lines of the named files, each headed by its
// name; missing files are noted, not fatal.
func tailLines(n int, paths ...string) string {
	var b strings.Builder
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(&b, "--- %s: %v\n", path, err)
			continue
		}
		data = bytes.TrimRight(data, "\n")
		lines := strings.Split(string(data), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines)\n", filepath.Base(path), len(lines))
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// logTailLines is how many lines of each log a failed test shows.
const logTailLines = 60

// registerStop arranges for p to be killed in cleanup (its directory is
// about to be removed: a graceful stop would only cost time, a second for
// Prosody) and, when the test failed, for the tail of its logs to be shown.
func registerStop(tb testing.TB, p *process, logs func() string) {
	tb.Cleanup(func() {
		p.kill()
		if tb.Failed() {
			tb.Logf("%s logs:\n%s", p.name, logs())
		}
	})
}
