package testbed

import (
	"fmt"
	"html"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// InspOptions configures StartInspIRCd. The zero value gives a server named
// irc.test on a free port with the IRCv3 modules loaded.
type InspOptions struct {
	// Port on 127.0.0.1; 0 picks a free one.
	Port int
	// ServerName defaults to "irc.test".
	ServerName string
	// Password is the server password clients must send with PASS.
	Password string
	// Opers maps IRC operator names to passwords (OPER name password, from
	// any host, all privileges).
	Opers map[string]string
	// ExtraModules are loaded after the default set (names without m_ and
	// .so, as in <module name="…">).
	ExtraModules []string
	// ExtraConfig is appended to the config file.
	ExtraConfig string
	// TLS adds a second client port with TLS (ssl_gnutls, a self-signed
	// certificate written into the server's directory, SHA-256 client
	// certificate fingerprints) and loads sslinfo. See TLSAddr.
	TLS bool
	// Services names an IRC services server (e.g. "services.test") that
	// may link to this one: InspIRCd then listens for servers on another
	// port, loads spanningtree, services_account and sasl, u-lines the
	// services server and sends SASL to it. StartAtheme links Atheme there.
	Services string
}

// InspModules are the modules StartInspIRCd loads: CAP and the IRCv3
// capabilities Debian's InspIRCd 3 has, multi-prefix (namesx),
// userhost-in-names (uhnames) and customprefix for the ~q &a %h prefixes.
var InspModules = []string{
	"cap",
	"ircv3",
	"ircv3_accounttag",
	"ircv3_batch",
	"ircv3_capnotify",
	"ircv3_chghost",
	"ircv3_ctctags",
	"ircv3_echomessage",
	"ircv3_invitenotify",
	"ircv3_labeledresponse",
	"ircv3_msgid",
	"ircv3_servertime",
	"namesx",
	"uhnames",
	"customprefix",
}

// InspIRCd is a running InspIRCd, started by StartInspIRCd. Its methods use
// the testing.TB given to StartInspIRCd.
type InspIRCd struct {
	// ServerName is the IRC server name.
	ServerName string
	// Dir holds the config, MOTD, pid file and logs.
	Dir string
	// ConfigPath is the config file.
	ConfigPath string

	// CertFingerprint is the SHA-256 fingerprint (lowercase hex) of the
	// TLS listener's certificate, when InspOptions.TLS is set.
	CertFingerprint string

	tb       testing.TB
	port     int
	tlsPort  int    // 0 without InspOptions.TLS
	linkPort int    // 0 without InspOptions.Services
	services string // InspOptions.Services
	linkPass string // the services link's password (both ways)
	proc     *process
}

// StartInspIRCd writes a config into a new directory and runs `inspircd
// --config FILE --nofork` (plus --runasroot when run as root, which it
// otherwise refuses with exit status 8), and waits until it listens. The
// connect class has flood protection relaxed (no fakelag, very high
// threshold and command rate, no per-IP connection limit). It is stopped in
// tb.Cleanup.
func StartInspIRCd(tb testing.TB, opts InspOptions) *InspIRCd {
	tb.Helper()
	bin := RequireBinary(tb, "inspircd", "/usr/sbin/inspircd")
	if opts.ServerName == "" {
		opts.ServerName = "irc.test"
	}
	dir := serverDir(tb, "inspircd")
	s := &InspIRCd{
		ServerName: opts.ServerName,
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "inspircd.conf"),
		tb:         tb,
		services:   opts.Services,
	}
	writeFile(tb, filepath.Join(dir, "motd.txt"), "Switchboard test server\n")
	if opts.TLS {
		s.CertFingerprint = writeSelfSigned(tb, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), opts.ServerName)
	}
	if opts.Services != "" {
		s.linkPass = randomHex(tb, 12)
	}
	args := []string{"--config", s.ConfigPath, "--nofork"}
	if os.Geteuid() == 0 {
		args = append(args, "--runasroot")
	}
	s.proc = &process{
		name:    "inspircd",
		path:    bin,
		args:    args,
		dir:     dir,
		logPath: filepath.Join(dir, "inspircd.out"),
	}
	registerStop(tb, s.proc, s.LogTail)
	auto := opts.Port == 0
	startRetrying(tb, "inspircd", s.LogTail, func() error {
		if auto {
			opts.Port = FreePort(tb)
		}
		s.port = opts.Port
		// The extra ports are always picked here, so a taken one is worth
		// another try even when Port was given.
		if opts.TLS {
			s.tlsPort = FreePort(tb)
		}
		if opts.Services != "" {
			s.linkPort = FreePort(tb)
		}
		writeFile(tb, s.ConfigPath, inspConfig(dir, opts, s))
		return s.start()
	}, func(taken *portTakenError) bool { return auto || taken.addr != s.Addr() })
	return s
}

// xmlAttr escapes s for a double-quoted config attribute.
func xmlAttr(s string) string { return html.EscapeString(s) }

func inspConfig(dir string, opts InspOptions, s *InspIRCd) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# written by switchboard/tests/testbed")
	w(`<config format="xml">`)
	w(`<server name="%s" description="Switchboard test server" network="SwitchboardTest">`, xmlAttr(opts.ServerName))
	w(`<admin name="Switchboard tests" nick="admin" email="nobody@localhost">`)
	w(`<bind address="127.0.0.1" port="%d" type="clients">`, opts.Port)
	if opts.TLS {
		// requestclientcert: a client certificate is the user's CertFP
		// (sslinfo), which SASL EXTERNAL hands to the services.
		w(`<module name="ssl_gnutls">`)
		w(`<module name="sslinfo">`)
		w(`<sslprofile name="tls" provider="gnutls" certfile="%s" keyfile="%s" hash="sha256" requestclientcert="yes">`,
			xmlAttr(filepath.Join(dir, "cert.pem")), xmlAttr(filepath.Join(dir, "key.pem")))
		w(`<bind address="127.0.0.1" port="%d" type="clients" sslprofile="tls">`, s.tlsPort)
	}
	if opts.Services != "" {
		w(`<module name="spanningtree">`)
		w(`<module name="services_account">`)
		w(`<module name="sasl">`)
		w(`<bind address="127.0.0.1" port="%d" type="servers">`, s.linkPort)
		w(`<link name="%s" ipaddr="127.0.0.1" allowmask="127.0.0.1" port="%d" sendpass="%s" recvpass="%s" timeout="20">`,
			xmlAttr(opts.Services), s.linkPort, s.linkPass, s.linkPass)
		w(`<uline server="%s" silent="yes">`, xmlAttr(opts.Services))
		w(`<sasl target="%s" requiressl="no">`, xmlAttr(opts.Services))
	}
	pass := ""
	if opts.Password != "" {
		pass = fmt.Sprintf(` password="%s"`, xmlAttr(opts.Password))
	}
	w(`<connect name="main" allow="*"%s maxchans="1000" timeout="60" pingfreq="120" hardsendq="16M" softsendq="1M" recvq="1M" threshold="1000000" commandrate="1000000" fakelag="no" localmax="100000" globalmax="100000" resolvehostnames="no" useident="no" limit="100000" maxconnwarn="no">`, pass)
	w(`<files motd="%s">`, xmlAttr(filepath.Join(dir, "motd.txt")))
	w(`<dns server="127.0.0.1" timeout="1">`)
	w(`<pid file="%s">`, xmlAttr(filepath.Join(dir, "inspircd.pid")))
	w(`<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="%s">`, xmlAttr(filepath.Join(dir, "ircd.log")))
	w(`<options prefixquit="Quit: " syntaxhints="no" announcets="yes" hostintopic="yes" pingwarning="15" splitwhois="no" exemptchanops="">`)
	w(`<security hideserver="" userstats="Pu" customversion="" flatlinks="no" hidesplits="no" hideulines="no" hidebans="no" maxtargets="20">`)
	w(`<performance quietbursts="yes" softlimit="100000" somaxconn="1024" netbuffersize="10240">`)
	w(`<channels users="1000" opers="1000">`)
	w(`<limits maxnick="30" maxchan="64" maxmodes="20" maxident="10" maxhost="64" maxquit="255" maxtopic="307" maxkick="255" maxreal="128" maxaway="200">`)
	w(`<whowas groupsize="10" maxgroups="1000" maxkeep="1h">`)
	for _, m := range append(append([]string{}, InspModules...), opts.ExtraModules...) {
		w(`<module name="%s">`, xmlAttr(m))
	}
	w(`<customprefix name="founder" letter="q" prefix="~" rank="50000" ranktoset="50000">`)
	w(`<customprefix name="admin" letter="a" prefix="&amp;" rank="40000" ranktoset="50000">`)
	w(`<customprefix name="halfop" letter="h" prefix="%%" rank="20000" ranktoset="30000">`)
	if len(opts.Opers) > 0 {
		w(`<class name="All" commands="*" privs="*" usermodes="*" chanmodes="*" snomasks="*">`)
		w(`<type name="NetAdmin" classes="All">`)
		names := make([]string, 0, len(opts.Opers))
		for name := range opts.Opers {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			w(`<oper name="%s" password="%s" host="*@*" type="NetAdmin">`, xmlAttr(name), xmlAttr(opts.Opers[name]))
		}
	}
	if opts.ExtraConfig != "" {
		w("%s", opts.ExtraConfig)
	}
	return b.String()
}

// Addr is the server's address, 127.0.0.1:port.
func (s *InspIRCd) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port.
func (s *InspIRCd) Port() int { return s.port }

// TLSAddr is the address of the TLS client port, 127.0.0.1:port ("" without
// InspOptions.TLS).
func (s *InspIRCd) TLSAddr() string {
	if s.tlsPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsPort))
}

// TLSPort is the TLS client port (0 without InspOptions.TLS).
func (s *InspIRCd) TLSPort() int { return s.tlsPort }

// addrs are every address the server listens on.
func (s *InspIRCd) addrs() []string {
	addrs := []string{s.Addr()}
	if s.tlsPort != 0 {
		addrs = append(addrs, s.TLSAddr())
	}
	if s.linkPort != 0 {
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(s.linkPort)))
	}
	return addrs
}

// Start starts InspIRCd again (after Stop or Kill) on the same port and
// waits until it listens.
func (s *InspIRCd) Start() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		s.tb.Fatalf("inspircd: %v\n%s", err, s.LogTail())
	}
}

func (s *InspIRCd) start() error {
	if err := s.proc.start(); err != nil {
		return err
	}
	if err := s.proc.waitListening(startTimeout, s.addrs()...); err != nil {
		s.proc.kill()
		return err
	}
	return nil
}

// Stop shuts InspIRCd down with SIGTERM (SIGKILL after 10 s) and waits.
func (s *InspIRCd) Stop() {
	s.tb.Helper()
	if err := s.proc.stop(stopGrace); err != nil {
		s.tb.Errorf("inspircd: %v", err)
	}
}

// Kill ends InspIRCd with SIGKILL and waits.
func (s *InspIRCd) Kill() { s.proc.kill() }

// Running reports whether the InspIRCd process is alive.
func (s *InspIRCd) Running() bool { return s.proc.running() }

// LogTail returns the last lines of InspIRCd's log and output, for failure
// messages.
func (s *InspIRCd) LogTail() string {
	return tailLines(logTailLines, filepath.Join(s.Dir, "ircd.log"), s.proc.logPath)
}
