package testbed

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// AthemeOptions configures StartAtheme. The zero value is enough.
type AthemeOptions struct {
	// ExtraConfig is appended to atheme.conf.
	ExtraConfig string
}

// Atheme is a running Atheme (IRC services: NickServ, SaslServ) linked to
// an InspIRCd, started by StartAtheme. Its methods use the testing.TB
// given to StartAtheme and share one IRC client: call them from one
// goroutine at a time.
type Atheme struct {
	// ServerName is the services server's name (InspOptions.Services).
	ServerName string
	// Dir holds the config, the database (services.db), the log and the
	// pid file.
	Dir string
	// ConfigPath is the config file.
	ConfigPath string

	tb   testing.TB
	insp *InspIRCd
	proc *process
	ctl  *IRCClient // talks to NickServ for the helpers, made on first use
}

// athemeLinked bounds how long StartAtheme waits for the services to link.
const athemeLinked = 20 * time.Second

// StartAtheme writes a config into a new directory and runs
// `atheme-services -n -c FILE -D DIR -l LOG -p PIDFILE` in the foreground,
// linked to insp (which must have been started with InspOptions.Services
// set), with NickServ (REGISTER without email verification, CERT for
// CertFP) and SaslServ (PLAIN, EXTERNAL). It returns once the link is up
// and NickServ answers, as seen from a client of insp. It is stopped in
// tb.Cleanup.
func StartAtheme(tb testing.TB, insp *InspIRCd, opts AthemeOptions) *Atheme {
	tb.Helper()
	bin := RequireBinary(tb, "atheme-services", "/usr/bin/atheme-services")
	if insp.services == "" || insp.linkPort == 0 {
		tb.Fatal("atheme: the InspIRCd was started without InspOptions.Services")
	}
	dir := serverDir(tb, "atheme")
	a := &Atheme{
		ServerName: insp.services,
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "atheme.conf"),
		tb:         tb,
		insp:       insp,
	}
	writeFile(tb, a.ConfigPath, athemeConfig(a, opts))
	a.proc = &process{
		name: "atheme",
		path: bin,
		args: []string{"-n", "-c", a.ConfigPath, "-D", dir,
			"-l", filepath.Join(dir, "atheme.log"), "-p", filepath.Join(dir, "atheme.pid")},
		dir:     dir,
		logPath: filepath.Join(dir, "atheme.out"),
	}
	registerStop(tb, a.proc, a.LogTail)
	if err := a.proc.start(); err != nil {
		tb.Fatalf("atheme: %v", err)
	}
	if err := a.waitLinked(athemeLinked); err != nil {
		tb.Fatalf("atheme: %v\n%s\n%s", err, a.LogTail(), insp.LogTail())
	}
	return a
}

func athemeConfig(a *Atheme, opts AthemeOptions) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("/* written by switchboard/tests/testbed */")
	for _, m := range []string{
		"protocol/inspircd", "backend/opensex", "crypto/pbkdf2v2",
		"nickserv/main", "nickserv/register", "nickserv/identify", "nickserv/logout",
		"nickserv/info", "nickserv/cert", "nickserv/status", "nickserv/help",
		"saslserv/main", "saslserv/plain", "saslserv/external",
	} {
		w(`loadmodule "modules/%s";`, m)
	}
	// A SID is a digit and two digits or letters; hidehostsuffix and
	// auth = none: no host cloaking on login, no email verification.
	// maxusers: every test account may share one email address.
	w(`serverinfo {
	name = %q;
	desc = "Switchboard test services";
	numeric = "42S";
	recontime = 2;
	netname = "SwitchboardTest";
	hidehostsuffix = "users.services.test";
	adminname = "Switchboard tests";
	adminemail = "nobody@localhost";
	registeremail = "nobody@localhost";
	loglevel = { all; };
	maxlogins = 100;
	maxusers = 10000;
	mdlimit = 30;
	emaillimit = 10;
	emailtime = 300;
	auth = none;
	casemapping = rfc1459;
};`, a.ServerName)
	w(`uplink %q {
	host = "127.0.0.1";
	port = %d;
	send_password = %q;
	receive_password = %q;
};`, a.insp.ServerName, a.insp.linkPort, a.insp.linkPass, a.insp.linkPass)
	w(`nickserv {
	nick = "NickServ";
	user = "NickServ";
	host = %q;
	real = "Nickname Services";
	maxnicks = 5;
	expire = 0;
};`, a.ServerName)
	w(`saslserv {
	nick = "SaslServ";
	user = "SaslServ";
	host = %q;
	real = "SASL Authentication Agent";
};`, a.ServerName)
	// Services flood protection and the network-wide registration rate
	// limit would throttle tests that register several accounts at once.
	w(`general {
	flood_msgs = 1000;
	flood_time = 1;
	ratelimit_uses = 10000;
	ratelimit_period = 1;
	kline_time = 7;
	commit_interval = 5;
	default_clone_allowed = 1000;
	default_clone_warn = 1000;
	uplink_sendq_limit = 1048576;
	language = "en";
	immune_level = immune;
};`)
	if opts.ExtraConfig != "" {
		w("%s", opts.ExtraConfig)
	}
	return b.String()
}

// waitLinked waits until NickServ is a user on the InspIRCd (the services
// linked and sent their burst), asking with WHOIS from the control client.
func (a *Atheme) waitLinked(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := a.client()
	for {
		select {
		case <-a.proc.exited():
			return fmt.Errorf("atheme exited (%v) before it linked to %s", exitText(a.proc.exitErr()), a.insp.ServerName)
		default:
		}
		if err := c.write("WHOIS NickServ"); err != nil {
			return err
		}
		e, err := c.take(func(e ircEntry) bool {
			return e.msg != nil && (e.msg.Command == "311" || e.msg.Command == "401") && strings.EqualFold(paramAt(e.msg.Params, 1), "NickServ")
		}, 5*time.Second)
		if err != nil {
			return fmt.Errorf("waiting for an answer to WHOIS NickServ: %w", err)
		}
		// Drop the rest of the WHOIS reply.
		_, _ = c.take(func(e ircEntry) bool {
			return e.msg != nil && e.msg.Command == "318"
		}, 5*time.Second)
		if e.msg.Command == "311" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("NickServ is not on %s after %s", a.insp.ServerName, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func paramAt(p []string, i int) string {
	if i < len(p) {
		return p[i]
	}
	return ""
}

// client returns the control client, connecting it first (about 1 s on
// InspIRCd).
func (a *Atheme) client() *IRCClient {
	a.tb.Helper()
	if a.ctl == nil {
		a.ctl = DialIRC(a.tb, a.insp.Addr(), "athctl")
	}
	return a.ctl
}

// nickServ sends a command to NickServ from the control client and waits
// for a NickServ notice matching ok (returned) or bad (an error). Other
// NickServ notices are skipped.
func (a *Atheme) nickServ(command string, ok, bad *regexp.Regexp) (string, error) {
	c := a.client()
	if err := c.write("PRIVMSG NickServ :" + command); err != nil {
		return "", err
	}
	deadline := time.Now().Add(10 * time.Second)
	var seen []string
	for {
		e, err := c.take(func(e ircEntry) bool {
			return e.msg != nil && e.msg.Command == "NOTICE" && strings.EqualFold(e.msg.Nick(), "NickServ")
		}, time.Until(deadline))
		if err != nil {
			return "", fmt.Errorf("NickServ did not answer %q as expected: %w; it said %q", redact(command), err, seen)
		}
		text := stripFormatting(paramAt(e.msg.Params, 1))
		seen = append(seen, text)
		if ok.MatchString(text) {
			return text, nil
		}
		if bad != nil && bad.MatchString(text) {
			return "", fmt.Errorf("NickServ refused %q: %s", redact(command), text)
		}
	}
}

// redact hides the password of a NickServ command in error messages.
func redact(command string) string {
	f := strings.Fields(command)
	if len(f) > 1 {
		switch strings.ToUpper(f[0]) {
		case "REGISTER":
			f[1] = "***"
		case "IDENTIFY":
			f[len(f)-1] = "***"
		}
	}
	return strings.Join(f, " ")
}

// stripFormatting removes mIRC bold, underline, italics and reset codes
// (Atheme puts account names in bold).
func stripFormatting(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\x02', '\x1d', '\x1f', '\x0f', '\x16':
			return -1
		}
		return r
	}, s)
}

var (
	nsRegistered = regexp.MustCompile(`(?i)is now registered to`)
	nsLoggedIn   = regexp.MustCompile(`(?i)you are now (logged in as|identified for)`)
	nsLoggedOut  = regexp.MustCompile(`(?i)you have been logged out|you are not logged in`)
	nsCertAdded  = regexp.MustCompile(`(?i)added fingerprint`)
	nsError      = regexp.MustCompile(`(?i)invalid|already|not registered|cannot|incorrect|insufficient|too many|denied|must|unknown|not a`)
)

// RegisterAccount registers a NickServ account with a password (as
// `/msg NickServ REGISTER`, from the control client renamed to account;
// no email verification), leaving nobody logged in to it.
func (a *Atheme) RegisterAccount(account, password string) {
	a.tb.Helper()
	if err := a.registerAccount(account, password); err != nil {
		a.tb.Fatalf("atheme: registering %s: %v", account, err)
	}
}

func (a *Atheme) registerAccount(account, password string) error {
	if err := a.rename(account); err != nil {
		return err
	}
	defer func() { _ = a.rename("athctl") }()
	if _, err := a.nickServ("REGISTER "+password+" "+account+"@example.test", nsRegistered, nsError); err != nil {
		return err
	}
	_, err := a.nickServ("LOGOUT", nsLoggedOut, nil)
	return err
}

// AddCertFP adds a CertFP fingerprint to an account (IDENTIFY, then
// `/msg NickServ CERT ADD fingerprint`, then LOGOUT), so that a client
// presenting that certificate may log in with SASL EXTERNAL.
func (a *Atheme) AddCertFP(account, password, fingerprint string) {
	a.tb.Helper()
	if err := a.addCertFP(account, password, fingerprint); err != nil {
		a.tb.Fatalf("atheme: adding a fingerprint to %s: %v", account, err)
	}
}

func (a *Atheme) addCertFP(account, password, fingerprint string) error {
	if _, err := a.nickServ("IDENTIFY "+account+" "+password, nsLoggedIn, nsError); err != nil {
		return err
	}
	_, err := a.nickServ("CERT ADD "+fingerprint, nsCertAdded, nsError)
	if _, lerr := a.nickServ("LOGOUT", nsLoggedOut, nil); err == nil {
		err = lerr
	}
	return err
}

// rename changes the control client's nick and waits for the change.
func (a *Atheme) rename(nick string) error {
	c := a.client()
	if strings.EqualFold(c.Nick, nick) {
		return nil
	}
	if err := c.write("NICK " + nick); err != nil {
		return err
	}
	e, err := c.take(func(e ircEntry) bool {
		if e.msg == nil {
			return false
		}
		switch e.msg.Command {
		case "NICK":
			return strings.EqualFold(e.msg.Nick(), c.Nick)
		case "432", "433", "436", "437", "438":
			return true
		}
		return false
	}, 10*time.Second)
	if err != nil {
		return fmt.Errorf("changing the nick to %s: %w", nick, err)
	}
	if e.msg.Command != "NICK" {
		return errors.New("changing the nick to " + nick + ": " + e.line)
	}
	c.Nick = nick
	return nil
}

// Running reports whether the Atheme process is alive.
func (a *Atheme) Running() bool { return a.proc.running() }

// LogTail returns the last lines of Atheme's output, for failure messages
// (with -n it holds everything atheme.log does, protocol lines included).
func (a *Atheme) LogTail() string { return tailLines(logTailLines, a.proc.logPath) }
