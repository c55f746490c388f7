package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// PostfixOptions configures StartPostfix. Postfix is both the MTA in front
// of the gateway's listener (Transport sends a domain to it) and the
// gateway's smarthost (it relays to the domains in Transport).
type PostfixOptions struct {
	// Port on 127.0.0.1 for smtpd; 0 picks a free one.
	Port int
	// Transport maps a mail domain to a next hop, e.g.
	// "mail.localhost": "smtp:[127.0.0.1]:12526" or
	// "example.test": "lmtp:[127.0.0.1]:24". Every domain listed is a
	// relay domain.
	Transport map[string]string
	// Access maps recipient addresses to an action of check_recipient_access
	// ("450 4.2.0 try later", "550 5.1.1 no such user").
	Access map[string]string
	// QueueLifetime is maximal_queue_lifetime; default "1m".
	QueueLifetime string
	// ExtraMain is appended to main.cf.
	ExtraMain string
}

// Postfix is a running Postfix (`postfix -c DIR start-fg`), started by
// StartPostfix.
type Postfix struct {
	Dir     string
	ConfDir string
	tb      testing.TB
	port    int
	opts    PostfixOptions
	proc    *process
	bin     string
}

// StartPostfix writes main.cf, master.cf, a transport map and an access
// map into a new directory and runs Postfix in the foreground with its own
// queue, listening on 127.0.0.1 only, without DNS, with retries every
// second. It is stopped in tb.Cleanup.
func StartPostfix(tb testing.TB, opts PostfixOptions) *Postfix {
	tb.Helper()
	bin := RequireBinary(tb, "postfix", "/usr/sbin/postfix")
	if opts.QueueLifetime == "" {
		opts.QueueLifetime = "1m"
	}
	dir := serverDir(tb, "postfix")
	p := &Postfix{Dir: dir, ConfDir: filepath.Join(dir, "conf"), tb: tb, opts: opts, bin: bin}
	for _, sub := range []string{"conf", "queue", "data"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			tb.Fatalf("postfix: %v", err)
		}
	}
	if os.Geteuid() == 0 {
		if err := chownUser(filepath.Join(dir, "data"), "postfix"); err != nil {
			tb.Fatalf("postfix: %v", err)
		}
	}
	// The master daemon runs in the foreground with -d, which also keeps
	// it in our process group (`postfix start-fg` lets it call setsid, so
	// killing the group would leave it running).
	p.proc = &process{
		name:    "postfix",
		path:    "/usr/lib/postfix/sbin/master",
		args:    []string{"-c", p.ConfDir, "-d"},
		dir:     dir,
		logPath: filepath.Join(dir, "postfix.out"),
	}
	registerStop(tb, p.proc, p.LogTail)
	auto := opts.Port == 0
	startRetrying(tb, "postfix", p.LogTail, func() error {
		if auto {
			opts.Port = FreePort(tb)
		}
		p.port = opts.Port
		p.opts = opts
		p.writeConfig()
		// `postfix check` creates the queue directories master expects.
		if out, err := exec.Command(bin, "-c", p.ConfDir, "check").CombinedOutput(); err != nil {
			return fmt.Errorf("postfix check: %w\n%s", err, out)
		}
		return p.start()
	}, func(*portTakenError) bool { return auto })
	return p
}

func (p *Postfix) writeConfig() {
	d := p.Dir
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# written by switchboard/tests/testbed")
	w("compatibility_level = 3.6")
	w("queue_directory = %s", filepath.Join(d, "queue"))
	w("data_directory = %s", filepath.Join(d, "data"))
	w("mail_owner = postfix")
	w("setgid_group = postdrop")
	w("myhostname = mx.localhost")
	w("mydomain = localhost")
	w("myorigin = localhost")
	w("mydestination =")
	w("inet_interfaces = 127.0.0.1")
	w("inet_protocols = ipv4")
	w("mynetworks = 127.0.0.0/8")
	var domains []string
	for dom := range p.opts.Transport {
		domains = append(domains, dom)
	}
	sort.Strings(domains)
	w("relay_domains = %s", strings.Join(domains, " "))
	w("transport_maps = texthash:%s", filepath.Join(p.ConfDir, "transport"))
	w("smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination")
	w("smtpd_recipient_restrictions = check_recipient_access texthash:%s", filepath.Join(p.ConfDir, "access"))
	w("disable_dns_lookups = yes")
	w("smtp_dns_support_level = disabled")
	w("lmtp_dns_support_level = disabled")
	w("maillog_file = %s", filepath.Join(d, "postfix.log"))
	w("maillog_file_prefixes = %s", d)
	w("alias_maps =")
	w("alias_database =")
	w("local_recipient_maps =")
	w("biff = no")
	w("maximal_queue_lifetime = %s", p.opts.QueueLifetime)
	w("bounce_queue_lifetime = %s", p.opts.QueueLifetime)
	w("queue_run_delay = 1s")
	w("minimal_backoff_time = 1s")
	w("maximal_backoff_time = 2s")
	w("smtpd_banner = $myhostname ESMTP")
	w("message_size_limit = 104857600")
	w("smtp_tls_security_level = none")
	w("smtpd_tls_security_level = none")
	w("in_flow_delay = 0")
	w("smtpd_client_connection_count_limit = 0")
	w("smtpd_client_connection_rate_limit = 0")
	w("default_process_limit = 100")
	if p.opts.ExtraMain != "" {
		w("%s", p.opts.ExtraMain)
	}
	writeFile(p.tb, filepath.Join(p.ConfDir, "main.cf"), b.String())

	master := fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd\n", p.port) + `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`
	writeFile(p.tb, filepath.Join(p.ConfDir, "master.cf"), master)
	p.writeMaps()
}

func (p *Postfix) writeMaps() {
	var t, a strings.Builder
	for dom, hop := range p.opts.Transport {
		fmt.Fprintf(&t, "%s %s\n", dom, hop)
	}
	for addr, action := range p.opts.Access {
		fmt.Fprintf(&a, "%s %s\n", addr, action)
	}
	writeFile(p.tb, filepath.Join(p.ConfDir, "transport"), t.String())
	writeFile(p.tb, filepath.Join(p.ConfDir, "access"), a.String())
}

// SetAccess replaces the recipient access map and reloads Postfix.
func (p *Postfix) SetAccess(access map[string]string) {
	p.tb.Helper()
	p.opts.Access = access
	p.writeMaps()
	p.Reload()
}

// SetTransport replaces the transport map and reloads Postfix.
func (p *Postfix) SetTransport(transport map[string]string) {
	p.tb.Helper()
	p.opts.Transport = transport
	p.writeMaps()
	p.Reload()
}

// Reload runs `postfix reload` (maps are read again by new processes).
func (p *Postfix) Reload() {
	p.tb.Helper()
	out, err := exec.Command(p.bin, "-c", p.ConfDir, "reload").CombinedOutput()
	if err != nil {
		p.tb.Fatalf("postfix reload: %v\n%s", err, out)
	}
}

// Flush runs `postfix flush`: deferred mail is tried again now.
func (p *Postfix) Flush() {
	p.tb.Helper()
	out, err := exec.Command(p.bin, "-c", p.ConfDir, "flush").CombinedOutput()
	if err != nil {
		p.tb.Fatalf("postfix flush: %v\n%s", err, out)
	}
}

func (p *Postfix) start() error {
	_ = os.Remove(filepath.Join(p.Dir, "data", "master.lock"))
	if err := p.proc.start(); err != nil {
		return err
	}
	if err := p.proc.waitListening(startTimeout, p.Addr()); err != nil {
		p.proc.kill()
		return err
	}
	return nil
}

// Addr is host:port of smtpd.
func (p *Postfix) Addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

// Port is smtpd's port.
func (p *Postfix) Port() int { return p.port }

// Start starts Postfix again after Stop or Kill.
func (p *Postfix) Start() {
	p.tb.Helper()
	if err := p.start(); err != nil {
		p.tb.Fatalf("postfix: %v\n%s", err, p.LogTail())
	}
}

// Stop stops Postfix (SIGTERM to the whole group) and waits.
func (p *Postfix) Stop() {
	p.tb.Helper()
	if err := p.proc.stop(stopGrace); err != nil {
		p.tb.Errorf("postfix: %v", err)
	}
}

// Kill ends Postfix with SIGKILL.
func (p *Postfix) Kill() { p.proc.kill() }

// QueueCount returns how many messages are in Postfix's queue (all of
// incoming, active, deferred, hold, maildrop).
func (p *Postfix) QueueCount() int {
	n := 0
	for _, q := range []string{"incoming", "active", "deferred", "hold", "maildrop"} {
		_ = filepath.WalkDir(filepath.Join(p.Dir, "queue", q), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
	}
	return n
}

// LogTail returns the last lines of Postfix's mail log and output.
func (p *Postfix) LogTail() string {
	return tailLines(logTailLines, filepath.Join(p.Dir, "postfix.log"), p.proc.logPath)
}

// Log returns Postfix's whole mail log.
func (p *Postfix) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.Dir, "postfix.log"))
	return string(b)
}

// chownUser gives path to the named system user.
func chownUser(path, name string) error {
	uid, gid, err := userIDs(name)
	if err != nil {
		return err
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("giving %s to %s: %w", path, name, err)
	}
	return nil
}

// userIDs returns the uid and gid of a system user.
func userIDs(name string) (int, int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("looking up user %s: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("uid of %s %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, fmt.Errorf("gid of %s %q: %w", name, u.Gid, err)
	}
	return uid, gid, nil
}
