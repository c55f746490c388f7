package testbed

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// ProsodyOptions configures StartProsody. The zero value gives a server for
// "localhost" on free ports with no components.
type ProsodyOptions struct {
	// Domain is the VirtualHost users live on; default "localhost".
	Domain string
	// Components maps each XEP-0114 component domain to its secret.
	Components map[string]string
	// C2SPort is the client port on 127.0.0.1; 0 picks a free one.
	C2SPort int
	// ComponentPort is the XEP-0114 port on 127.0.0.1; 0 picks a free one.
	ComponentPort int
	// LogLevel is Prosody's minimum log level (debug, info, warn, error);
	// default "debug". Load tests should use "warn".
	LogLevel string
	// ExtraModules are added to modules_enabled.
	ExtraModules []string
	// ExtraGlobal is Lua inserted in the global section, before the hosts.
	ExtraGlobal string
	// ExtraConfig is Lua appended after the VirtualHost and Component
	// sections (start it with a VirtualHost or Component line).
	ExtraConfig string
}

// Prosody is a running Prosody, started by StartProsody, with a config in its
// own directory. Its methods use the testing.TB given to StartProsody.
type Prosody struct {
	// Domain is the VirtualHost users are registered on.
	Domain string
	// Dir holds the config, the data, the pid file and the logs.
	Dir string
	// ConfigPath is the config file (pass it to prosodyctl --config).
	ConfigPath string

	tb            testing.TB
	c2sPort       int
	componentPort int
	ctl           string
	hasComponents bool
	proc          *process
}

// prosodyModules is the module set of the test server: no TLS, no s2s, no
// HTTP, no mod_limits (which throttles c2s to 10 kB/s), no PEP.
var prosodyModules = []string{"roster", "saslauth", "disco", "ping", "presence", "carbons", "time", "version"}

// StartProsody writes a config into a new directory and starts Prosody in
// the foreground, without TLS (PLAIN over plain TCP is allowed on
// loopback), and waits until its c2s and component ports accept
// connections. It is stopped in tb.Cleanup.
func StartProsody(tb testing.TB, opts ProsodyOptions) *Prosody {
	tb.Helper()
	bin := RequireBinary(tb, "prosody")
	ctl := RequireBinary(tb, "prosodyctl")
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "debug"
	}
	for domain := range opts.Components {
		if domain == opts.Domain {
			tb.Fatalf("prosody: component domain %q is also the VirtualHost", domain)
		}
	}

	dir := serverDir(tb, "prosody")
	for _, sub := range []string{"data", "certs"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			tb.Fatalf("prosody: %v", err)
		}
	}
	p := &Prosody{
		Domain:        opts.Domain,
		Dir:           dir,
		ConfigPath:    filepath.Join(dir, "prosody.cfg.lua"),
		tb:            tb,
		ctl:           ctl,
		hasComponents: len(opts.Components) > 0,
	}
	p.proc = &process{
		name: "prosody",
		path: bin,
		// -F: foreground (daemonize = false says the same in the config).
		args:    []string{"--config", p.ConfigPath, "-F"},
		dir:     dir,
		logPath: filepath.Join(dir, "prosody.out"),
	}
	registerStop(tb, p.proc, p.LogTail)
	autoC2S, autoComp := opts.C2SPort == 0, opts.ComponentPort == 0
	startRetrying(tb, "prosody", p.LogTail, func() error {
		if autoC2S {
			opts.C2SPort = FreePort(tb)
		}
		for autoComp && (opts.ComponentPort == 0 || opts.ComponentPort == opts.C2SPort) {
			opts.ComponentPort = FreePort(tb)
		}
		p.c2sPort, p.componentPort = opts.C2SPort, opts.ComponentPort
		writeFile(tb, p.ConfigPath, prosodyConfig(dir, opts))
		return p.start()
	}, func(taken *portTakenError) bool {
		if autoComp {
			opts.ComponentPort = 0
		}
		return (autoC2S && taken.addr == p.C2SAddr()) || (autoComp && taken.addr == p.ComponentAddr())
	})
	return p
}

// luaString quotes s as a Lua string literal.
func luaString(s string) string { return strconv.Quote(s) }

func prosodyConfig(dir string, opts ProsodyOptions) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	modules := append(append([]string{}, prosodyModules...), opts.ExtraModules...)
	quoted := make([]string, len(modules))
	for i, m := range modules {
		quoted[i] = luaString(m)
	}
	w("-- written by switchboard/tests/testbed")
	w("run_as_root = true")
	w("daemonize = false")
	w("pidfile = %s", luaString(filepath.Join(dir, "prosody.pid")))
	w("data_path = %s", luaString(filepath.Join(dir, "data")))
	w("certificates = %s", luaString(filepath.Join(dir, "certs")))
	w("plugin_paths = {}")
	w("log = { { levels = { min = %s }, to = \"file\", filename = %s } }",
		luaString(opts.LogLevel), luaString(filepath.Join(dir, "prosody.log")))
	w("interfaces = { \"127.0.0.1\" }")
	w("local_interfaces = { \"127.0.0.1\" }")
	w("c2s_interfaces = { \"127.0.0.1\" }")
	w("c2s_ports = { %d }", opts.C2SPort)
	w("c2s_direct_tls_ports = {}")
	w("legacy_ssl_ports = {}")
	w("component_interfaces = { \"127.0.0.1\" }")
	w("component_ports = { %d }", opts.ComponentPort)
	w("s2s_ports = {}")
	w("s2s_direct_tls_ports = {}")
	w("http_ports = {}")
	w("https_ports = {}")
	w("c2s_require_encryption = false")
	w("s2s_require_encryption = false")
	w("allow_unencrypted_plain_auth = true")
	w("authentication = \"internal_hashed\"")
	w("storage = \"internal\"")
	w("modules_enabled = { %s }", strings.Join(quoted, ", "))
	w("modules_disabled = { \"s2s\", \"tls\", \"limits\", \"http\" }")
	if opts.ExtraGlobal != "" {
		w("%s", opts.ExtraGlobal)
	}
	w("")
	w("VirtualHost %s", luaString(opts.Domain))
	domains := make([]string, 0, len(opts.Components))
	for d := range opts.Components {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	for _, d := range domains {
		w("")
		w("Component %s", luaString(d))
		w("\tcomponent_secret = %s", luaString(opts.Components[d]))
	}
	if opts.ExtraConfig != "" {
		w("")
		w("%s", opts.ExtraConfig)
	}
	return b.String()
}

// C2SAddr is the client-to-server address, 127.0.0.1:port.
func (p *Prosody) C2SAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.c2sPort))
}

// ComponentAddr is the XEP-0114 component address, 127.0.0.1:port. Prosody
// listens there only when ProsodyOptions.Components is not empty.
func (p *Prosody) ComponentAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.componentPort))
}

// Register creates the account user@Domain (prosodyctl register). It works
// whether or not Prosody is running.
func (p *Prosody) Register(user, password string) {
	p.tb.Helper()
	cmd := exec.Command(p.ctl, "--config", p.ConfigPath, "register", user, p.Domain, password)
	cmd.Dir = p.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.tb.Fatalf("prosodyctl register %s@%s: %v\n%s", user, p.Domain, err, out)
	}
}

// Start starts Prosody again (after Stop or Kill) with the same config,
// ports and data, and waits until it listens.
func (p *Prosody) Start() {
	p.tb.Helper()
	if err := p.start(); err != nil {
		p.tb.Fatalf("prosody: %v\n%s", err, p.LogTail())
	}
}

func (p *Prosody) start() error {
	if err := p.proc.start(); err != nil {
		return err
	}
	addrs := []string{p.C2SAddr()}
	if p.hasComponents {
		// Prosody opens the component port only when a component exists.
		addrs = append(addrs, p.ComponentAddr())
	}
	if err := p.proc.waitListening(startTimeout, addrs...); err != nil {
		p.proc.kill()
		return err
	}
	return nil
}

// Stop shuts Prosody down with SIGTERM (SIGKILL after 10 s) and waits.
func (p *Prosody) Stop() {
	p.tb.Helper()
	if err := p.proc.stop(stopGrace); err != nil {
		p.tb.Errorf("prosody: %v", err)
	}
}

// Kill ends Prosody with SIGKILL and waits: a crash, as the gateway sees it.
func (p *Prosody) Kill() { p.proc.kill() }

// Running reports whether the Prosody process is alive.
func (p *Prosody) Running() bool { return p.proc.running() }

// LogTail returns the last lines of Prosody's log and console output, for
// failure messages.
func (p *Prosody) LogTail() string {
	return tailLines(logTailLines, filepath.Join(p.Dir, "prosody.log"), p.proc.logPath)
}
