package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// DovecotOptions configures StartDovecot.
type DovecotOptions struct {
	// Users maps full addresses (bob@example.test) to plain passwords: the
	// passwd-file user database. Users can be added later with AddUser.
	Users map[string]string
	// RelayAddr is host:port of the SMTP server the submission service
	// relays to (Postfix); empty leaves submission without a relay (it
	// then answers 4xx to every message).
	RelayAddr string
	// Ports on 127.0.0.1; 0 picks free ones.
	IMAPPort, LMTPPort, SubmissionPort int
}

// Dovecot is a running Dovecot (IMAP, LMTP, submission with AUTH), started
// by StartDovecot. Mailboxes are Maildirs under Dir/mail/<user>, each with
// a Sent folder marked \Sent (SPECIAL-USE).
type Dovecot struct {
	Dir        string
	ConfigPath string
	tb         testing.TB
	opts       DovecotOptions
	proc       *process
	mu         sync.Mutex
}

// StartDovecot writes dovecot.conf and a user database into a new
// directory and runs `dovecot -F -c FILE` on 127.0.0.1 without TLS
// (plaintext AUTH allowed on loopback). Mail is stored as user nobody. It
// is stopped in tb.Cleanup.
func StartDovecot(tb testing.TB, opts DovecotOptions) *Dovecot {
	tb.Helper()
	bin := RequireBinary(tb, "dovecot", "/usr/sbin/dovecot")
	dir := serverDir(tb, "dovecot")
	d := &Dovecot{Dir: dir, ConfigPath: filepath.Join(dir, "dovecot.conf"), tb: tb}
	if opts.Users == nil {
		opts.Users = map[string]string{}
	}
	mail := filepath.Join(dir, "mail")
	if err := os.Mkdir(mail, 0o755); err != nil {
		tb.Fatalf("dovecot: %v", err)
	}
	if os.Geteuid() == 0 {
		if err := chownUser(mail, "nobody"); err != nil {
			tb.Fatalf("dovecot: %v", err)
		}
	}
	d.proc = &process{
		name:    "dovecot",
		path:    bin,
		args:    []string{"-F", "-c", d.ConfigPath},
		dir:     dir,
		logPath: filepath.Join(dir, "dovecot.out"),
	}
	registerStop(tb, d.proc, d.LogTail)
	auto := opts.IMAPPort == 0
	startRetrying(tb, "dovecot", d.LogTail, func() error {
		if auto {
			opts.IMAPPort, opts.LMTPPort, opts.SubmissionPort = FreePort(tb), FreePort(tb), FreePort(tb)
		}
		d.opts = opts
		d.writeUsers()
		writeFile(tb, d.ConfigPath, d.config())
		return d.start()
	}, func(*portTakenError) bool { return auto })
	return d
}

func (d *Dovecot) config() string {
	dir := d.Dir
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# written by switchboard/tests/testbed")
	w("base_dir = %s", filepath.Join(dir, "run"))
	w("state_dir = %s", filepath.Join(dir, "state"))
	w("instance_name = %s", filepath.Base(dir))
	w("log_path = %s", filepath.Join(dir, "dovecot.log"))
	w("protocols = imap lmtp submission")
	w("listen = 127.0.0.1")
	w("ssl = no")
	w("disable_plaintext_auth = no")
	w("auth_mechanisms = plain login")
	w("mail_location = maildir:%s/mail/%%u", dir)
	w("hostname = dovecot.localhost")
	w("postmaster_address = postmaster@dovecot.localhost")
	w("recipient_delimiter = +")
	w("lmtp_save_to_detail_mailbox = no")
	w("passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%%u %s\n}", filepath.Join(dir, "users"))
	w("userdb {\n  driver = static\n  args = uid=65534 gid=65534 home=%s/mail/%%u\n}", dir)
	w(`namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
  mailbox Drafts {
    special_use = \Drafts
    auto = subscribe
  }
  mailbox Trash {
    special_use = \Trash
    auto = subscribe
  }
}`)
	w("service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n    port = %d\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}", d.opts.IMAPPort)
	w("service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = %d\n  }\n}", d.opts.LMTPPort)
	w("service submission-login {\n  inet_listener submission {\n    address = 127.0.0.1\n    port = %d\n  }\n}", d.opts.SubmissionPort)
	if d.opts.RelayAddr != "" {
		host, port, _ := strings.Cut(d.opts.RelayAddr, ":")
		w("submission_relay_host = %s", host)
		w("submission_relay_port = %s", port)
		w("submission_relay_trusted = yes")
	}
	return b.String()
}

func (d *Dovecot) writeUsers() {
	var names []string
	for u := range d.opts.Users {
		names = append(names, u)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, u := range names {
		fmt.Fprintf(&b, "%s:{PLAIN}%s\n", u, d.opts.Users[u])
	}
	writeFile(d.tb, filepath.Join(d.Dir, "users"), b.String())
}

// AddUser adds a user to the passwd-file (read at every login).
func (d *Dovecot) AddUser(addr, password string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.opts.Users[addr] = password
	d.writeUsers()
}

func (d *Dovecot) start() error {
	_ = os.Remove(filepath.Join(d.Dir, "run", "master.pid"))
	if err := d.proc.start(); err != nil {
		return err
	}
	if err := d.proc.waitListening(startTimeout, d.IMAPAddr(), d.LMTPAddr(), d.SubmissionAddr()); err != nil {
		d.proc.kill()
		return err
	}
	return nil
}

// IMAPAddr, LMTPAddr and SubmissionAddr are the listeners' host:port.
func (d *Dovecot) IMAPAddr() string { return fmt.Sprintf("127.0.0.1:%d", d.opts.IMAPPort) }

// LMTPAddr is the LMTP listener.
func (d *Dovecot) LMTPAddr() string { return fmt.Sprintf("127.0.0.1:%d", d.opts.LMTPPort) }

// SubmissionAddr is the submission listener (AUTH PLAIN/LOGIN, no TLS).
func (d *Dovecot) SubmissionAddr() string {
	return fmt.Sprintf("127.0.0.1:%d", d.opts.SubmissionPort)
}

// Start starts Dovecot again after Stop or Kill, on the same ports.
func (d *Dovecot) Start() {
	d.tb.Helper()
	if err := d.start(); err != nil {
		d.tb.Fatalf("dovecot: %v\n%s", err, d.LogTail())
	}
}

// Stop stops Dovecot and waits.
func (d *Dovecot) Stop() {
	d.tb.Helper()
	if err := d.proc.stop(stopGrace); err != nil {
		d.tb.Errorf("dovecot: %v", err)
	}
}

// Kill ends Dovecot with SIGKILL.
func (d *Dovecot) Kill() { d.proc.kill() }

// Maildir returns the Maildir of a user's folder ("" for INBOX, "Sent").
func (d *Dovecot) Maildir(user, folder string) string {
	p := filepath.Join(d.Dir, "mail", user)
	if folder != "" {
		p = filepath.Join(p, "."+folder)
	}
	return p
}

// Messages returns the raw messages in a user's folder (new and cur).
func (d *Dovecot) Messages(user, folder string) []string {
	var out []string
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(d.Maildir(user, folder), sub)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
				out = append(out, string(b))
			}
		}
	}
	return out
}

// LogTail returns the last lines of Dovecot's log and output.
func (d *Dovecot) LogTail() string {
	return tailLines(logTailLines, filepath.Join(d.Dir, "dovecot.log"), d.proc.logPath)
}
