package testbed

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// NgircdOptions configures StartNgircd. The zero value gives a server named
// irc.test on a free port with ngircd's default flood protection.
type NgircdOptions struct {
	// Port on 127.0.0.1; 0 picks a free one.
	Port int
	// ServerName defaults to "irc.test".
	ServerName string
	// NoFloodLimit sets MaxPenaltyTime = 0, turning off ngircd's per-client
	// throttle (about 3 lines per second otherwise). For load tests.
	NoFloodLimit bool
	// Password is the server password clients must send with PASS.
	Password string
	// Opers maps IRC operator names to passwords (OPER name password, from
	// any host).
	Opers map[string]string
	// MaxNickLength defaults to 30 (ngircd's own default is 9).
	MaxNickLength int
	// ExtraConfig is appended to the config file (start it with a section).
	ExtraConfig string
}

// Ngircd is a running ngircd, started by StartNgircd. Its methods use the
// testing.TB given to StartNgircd.
type Ngircd struct {
	// ServerName is the IRC server name (the prefix of its numerics).
	ServerName string
	// Dir holds the config, MOTD, pid file and output.
	Dir string
	// ConfigPath is the config file.
	ConfigPath string

	tb   testing.TB
	port int
	proc *process
}

// StartNgircd writes a config into a new directory and runs `ngircd -n -f
// FILE` in the foreground on 127.0.0.1, with DNS, Ident and PAM lookups off
// and connection/join limits lifted, and waits until it listens. It is
// stopped in tb.Cleanup.
//
// Started as root, ngircd always switches to user nobody; the directory and
// files are world-readable and the pid file lives in a subdirectory owned by
// nobody.
func StartNgircd(tb testing.TB, opts NgircdOptions) *Ngircd {
	tb.Helper()
	bin := RequireBinary(tb, "ngircd", "/usr/sbin/ngircd")
	if opts.ServerName == "" {
		opts.ServerName = "irc.test"
	}
	if opts.MaxNickLength == 0 {
		opts.MaxNickLength = 30
	}
	dir := serverDir(tb, "ngircd")
	runDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runDir, 0o755); err != nil {
		tb.Fatalf("ngircd: %v", err)
	}
	if os.Geteuid() == 0 {
		uid, gid, err := nobodyIDs()
		if err != nil {
			tb.Fatalf("ngircd: %v", err)
		}
		if err := os.Chown(runDir, uid, gid); err != nil {
			tb.Fatalf("ngircd: giving %s to nobody: %v", runDir, err)
		}
	}
	n := &Ngircd{
		ServerName: opts.ServerName,
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "ngircd.conf"),
		tb:         tb,
	}
	writeFile(tb, filepath.Join(dir, "motd"), "Switchboard test server\n")
	n.proc = &process{
		name:    "ngircd",
		path:    bin,
		args:    []string{"-n", "-f", n.ConfigPath},
		dir:     dir,
		logPath: filepath.Join(dir, "ngircd.out"),
	}
	registerStop(tb, n.proc, n.LogTail)
	auto := opts.Port == 0
	startRetrying(tb, "ngircd", n.LogTail, func() error {
		if auto {
			opts.Port = FreePort(tb)
		}
		n.port = opts.Port
		writeFile(tb, n.ConfigPath, ngircdConfig(dir, opts))
		return n.start()
	}, func(*portTakenError) bool { return auto })
	return n
}

// nobodyIDs returns the uid and gid of user nobody.
func nobodyIDs() (int, int, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return 0, 0, fmt.Errorf("looking up user nobody: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("uid of nobody %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, fmt.Errorf("gid of nobody %q: %w", u.Gid, err)
	}
	return uid, gid, nil
}

func ngircdConfig(dir string, opts NgircdOptions) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# written by switchboard/tests/testbed")
	w("[Global]")
	w("\tName = %s", opts.ServerName)
	w("\tInfo = Switchboard test server")
	w("\tAdminInfo1 = Switchboard tests")
	w("\tAdminInfo2 = loopback only")
	w("\tAdminEMail = nobody@localhost")
	w("\tListen = 127.0.0.1")
	w("\tPorts = %d", opts.Port)
	w("\tMotdFile = %s", filepath.Join(dir, "motd"))
	w("\tPidFile = %s", filepath.Join(dir, "run", "ngircd.pid"))
	if opts.Password != "" {
		w("\tPassword = %s", opts.Password)
	}
	w("[Limits]")
	w("\tMaxConnections = 0")
	w("\tMaxConnectionsIP = 0")
	w("\tMaxJoins = 0")
	w("\tMaxNickLength = %d", opts.MaxNickLength)
	w("\tMaxListSize = 1000")
	w("\tPingTimeout = 120")
	w("\tPongTimeout = 20")
	if opts.NoFloodLimit {
		w("\tMaxPenaltyTime = 0")
	}
	w("[Options]")
	w("\tDNS = no")
	w("\tIdent = no")
	w("\tPAM = no")
	w("\tOperCanUseMode = yes")
	names := make([]string, 0, len(opts.Opers))
	for name := range opts.Opers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		w("[Operator]")
		w("\tName = %s", name)
		w("\tPassword = %s", opts.Opers[name])
	}
	if opts.ExtraConfig != "" {
		w("%s", opts.ExtraConfig)
	}
	return b.String()
}

// Addr is the server's address, 127.0.0.1:port.
func (n *Ngircd) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// Port is the server's TCP port.
func (n *Ngircd) Port() int { return n.port }

// Start starts ngircd again (after Stop or Kill) on the same port and waits
// until it listens.
func (n *Ngircd) Start() {
	n.tb.Helper()
	if err := n.start(); err != nil {
		n.tb.Fatalf("ngircd: %v\n%s", err, n.LogTail())
	}
}

func (n *Ngircd) start() error {
	if err := n.proc.start(); err != nil {
		return err
	}
	if err := n.proc.waitListening(startTimeout, n.Addr()); err != nil {
		n.proc.kill()
		return err
	}
	return nil
}

// Stop shuts ngircd down with SIGTERM (SIGKILL after 10 s) and waits.
func (n *Ngircd) Stop() {
	n.tb.Helper()
	if err := n.proc.stop(stopGrace); err != nil {
		n.tb.Errorf("ngircd: %v", err)
	}
}

// Kill ends ngircd with SIGKILL and waits.
func (n *Ngircd) Kill() { n.proc.kill() }

// Running reports whether the ngircd process is alive.
func (n *Ngircd) Running() bool { return n.proc.running() }

// LogTail returns the last lines of ngircd's output, for failure messages.
func (n *Ngircd) LogTail() string { return tailLines(logTailLines, n.proc.logPath) }
