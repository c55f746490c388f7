package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// GatewayConfig is the content of a switchboard.toml for tests and the demo.
// WriteGatewayConfig fills in the defaults noted on each field.
type GatewayConfig struct {
	// LogLevel is [log] level; default "debug".
	LogLevel string
	// XMPPServer is [xmpp] server: the component address,
	// Prosody.ComponentAddr().
	XMPPServer string
	// StoreDriver is [store] driver; default "sqlite".
	StoreDriver string
	// StoreDSN is [store] dsn; default <dir>/switchboard.db.
	StoreDSN string
	// KeyFile is [store] key_file; default <dir>/switchboard.key.
	KeyFile string
	// HTTPListen is [http] listen; default 127.0.0.1 on a free port.
	HTTPListen string
	// Allow is [access] allow; default ["localhost"].
	Allow []string
	// Admins is [access] admins.
	Admins []string
	// IRC is the [irc] section, left out when nil.
	IRC *GatewayIRC
	// Extra is merged over everything above (tables merged key by key):
	// any transport section, or settings this struct does not model, e.g.
	// {"irc": {"max_users": 5}}, {"sms": {...}}, {"attachments": {...}}.
	// With IRC nil and Extra holding only {"email": …}, the gateway runs
	// the email transport alone.
	Extra map[string]any
}

// GatewayIRC is the [irc] section.
type GatewayIRC struct {
	// Domain is the component domain, e.g. "irc.localhost".
	Domain string
	// Secret is the component secret Prosody was given for Domain.
	Secret string
	// Open lets users connect to networks that are not configured.
	Open bool
	// Networks are the [[irc.network]] entries.
	Networks []GatewayIRCNetwork
}

// GatewayIRCNetwork is one [[irc.network]] entry.
type GatewayIRCNetwork struct {
	// Name is the network alias used in JIDs (#chan%name@domain).
	Name string
	// Address is host:port.
	Address string
	// TLS connects with TLS.
	TLS bool
	// Fingerprint pins the server certificate's SHA-256 (with TLS), e.g.
	// InspIRCd.CertFingerprint of a self-signed test certificate.
	Fingerprint string
}

// WriteGatewayConfig writes c as TOML to dir/switchboard.toml and returns
// the path. Paths in the config are absolute, so the gateway may run from
// anywhere. It panics if the file cannot be written or a free port for
// [http] cannot be found (both mean the machine is broken).
func WriteGatewayConfig(dir string, c GatewayConfig) (path string) {
	doc := gatewayDoc(dir, c)
	var buf bytes.Buffer
	buf.WriteString("# written by switchboard/tests/testbed\n")
	if err := toml.NewEncoder(&buf).Encode(doc); err != nil {
		panic(fmt.Errorf("encoding the gateway config: %w", err))
	}
	path = filepath.Join(dir, "switchboard.toml")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		panic(fmt.Errorf("writing the gateway config: %w", err))
	}
	return path
}

func gatewayDoc(dir string, c GatewayConfig) map[string]any {
	if c.LogLevel == "" {
		c.LogLevel = "debug"
	}
	if c.StoreDriver == "" {
		c.StoreDriver = "sqlite"
	}
	if c.StoreDSN == "" && c.StoreDriver == "sqlite" {
		c.StoreDSN = filepath.Join(dir, "switchboard.db")
	}
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(dir, "switchboard.key")
	}
	if c.HTTPListen == "" {
		c.HTTPListen = freeAddr()
	}
	if c.Allow == nil {
		c.Allow = []string{"localhost"}
	}
	if c.Admins == nil {
		c.Admins = []string{}
	}
	doc := map[string]any{
		"log":    map[string]any{"level": c.LogLevel},
		"xmpp":   map[string]any{"server": c.XMPPServer},
		"store":  map[string]any{"driver": c.StoreDriver, "dsn": c.StoreDSN, "key_file": c.KeyFile},
		"http":   map[string]any{"listen": c.HTTPListen},
		"access": map[string]any{"allow": c.Allow, "admins": c.Admins},
	}
	if c.IRC != nil {
		networks := make([]map[string]any, 0, len(c.IRC.Networks))
		for _, n := range c.IRC.Networks {
			nt := map[string]any{"name": n.Name, "address": n.Address, "tls": n.TLS}
			if n.Fingerprint != "" {
				nt["fingerprint"] = n.Fingerprint
			}
			networks = append(networks, nt)
		}
		irc := map[string]any{"domain": c.IRC.Domain, "secret": c.IRC.Secret, "open": c.IRC.Open}
		if len(networks) > 0 {
			irc["network"] = networks
		}
		doc["irc"] = irc
	}
	mergeTables(doc, c.Extra)
	return doc
}

// mergeTables copies src into dst, merging nested tables key by key.
func mergeTables(dst, src map[string]any) {
	for k, v := range src {
		sv, sok := v.(map[string]any)
		dv, dok := dst[k].(map[string]any)
		if sok && dok {
			merged := maps.Clone(dv)
			mergeTables(merged, sv)
			dst[k] = merged
			continue
		}
		dst[k] = v
	}
}

// freeAddr returns 127.0.0.1:port for a port that was free a moment ago.
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Errorf("finding a free port: %w", err))
	}
	defer l.Close()
	return l.Addr().String()
}

// Gateway is a running switchboard binary, started by StartGateway. Its
// methods use the testing.TB given to StartGateway.
type Gateway struct {
	// ConfigPath is the config file it runs with.
	ConfigPath string
	// LogPath is the file its stdout and stderr are appended to.
	LogPath string

	tb       testing.TB
	httpAddr string
	proc     *process
}

// healthzTimeout is how long StartGateway waits for /healthz.
const healthzTimeout = 20 * time.Second

// StartGateway runs binPath -config configPath as a subprocess (in the
// config's directory, output appended to switchboard.log there), waits up
// to 20 s for GET /healthz on the config's [http] listen address to answer
// 200, and stops it in tb.Cleanup (SIGTERM, SIGKILL after 10 s). When the
// test failed, cleanup logs the tail of the gateway's output; a data race
// report or a panic in the output fails the test.
func StartGateway(tb testing.TB, binPath, configPath string) *Gateway {
	tb.Helper()
	return StartGatewayOutput(tb, binPath, configPath, nil)
}

// StartGatewayOutput is StartGateway that also copies the gateway's output
// to out (when not nil), as the demo does with its terminal.
func StartGatewayOutput(tb testing.TB, binPath, configPath string, out io.Writer) *Gateway {
	tb.Helper()
	var cfg struct {
		HTTP struct {
			Listen string `toml:"listen"`
		} `toml:"http"`
	}
	if _, err := toml.DecodeFile(configPath, &cfg); err != nil {
		tb.Fatalf("gateway: reading %s: %v", configPath, err)
	}
	if cfg.HTTP.Listen == "" {
		tb.Fatalf("gateway: %s has no [http] listen, so /healthz cannot be checked", configPath)
	}
	abs, err := filepath.Abs(configPath)
	if err != nil {
		tb.Fatalf("gateway: %v", err)
	}
	dir := filepath.Dir(abs)
	g := &Gateway{
		ConfigPath: abs,
		LogPath:    filepath.Join(dir, "switchboard.log"),
		tb:         tb,
		httpAddr:   cfg.HTTP.Listen,
	}
	g.proc = &process{
		name:    "switchboard",
		path:    binPath,
		args:    []string{"-config", abs},
		dir:     dir,
		logPath: g.LogPath,
		tee:     out,
	}
	tb.Cleanup(func() {
		if err := g.proc.stop(stopGrace); err != nil {
			tb.Errorf("gateway: %v", err)
		}
		g.checkOutput(tb)
		if tb.Failed() {
			tb.Logf("gateway output:\n%s", g.LogTail())
		}
	})
	g.Start()
	return g
}

// checkOutput fails the test when the gateway's output shows a data race
// (it is built with -race when the tests are) or a panic.
func (g *Gateway) checkOutput(tb testing.TB) {
	out := g.Output()
	for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "fatal error: "} {
		if i := strings.Index(out, bad); i >= 0 {
			end := min(len(out), i+4000)
			tb.Errorf("gateway output has %q:\n%s", bad, out[i:end])
		}
	}
}

// Start starts the gateway (again, after Stop or Kill) and waits for
// /healthz to answer 200.
func (g *Gateway) Start() {
	g.tb.Helper()
	if err := g.proc.start(); err != nil {
		g.tb.Fatalf("gateway: %v", err)
	}
	if err := g.waitHealthy(healthzTimeout); err != nil {
		g.proc.kill()
		g.tb.Fatalf("gateway: %v\n%s", err, g.LogTail())
	}
}

func (g *Gateway) waitHealthy(timeout time.Duration) error {
	url := g.URL("/healthz")
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	exited := g.proc.exited()
	last := "no answer"
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			cancel()
			return fmt.Errorf("GET %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				cancel()
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		cancel()
		select {
		case <-exited:
			return fmt.Errorf("the gateway exited (%v) before %s answered 200", exitText(g.proc.exitErr()), url)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s did not answer 200 within %s (last: %s)", url, timeout, last)
		}
	}
}

// HTTPAddr is the gateway's [http] listen address.
func (g *Gateway) HTTPAddr() string { return g.httpAddr }

// URL returns http://<listen address><path>.
func (g *Gateway) URL(path string) string { return "http://" + g.httpAddr + path }

// Stop sends SIGTERM, waits (SIGKILL after 10 s; that fails the test: the
// gateway must shut down promptly).
func (g *Gateway) Stop() {
	g.tb.Helper()
	if err := g.proc.stop(stopGrace); err != nil {
		g.tb.Errorf("gateway: %v", err)
	}
}

// Kill ends the gateway with SIGKILL and waits: a crash.
func (g *Gateway) Kill() { g.proc.kill() }

// Running reports whether the gateway process is alive.
func (g *Gateway) Running() bool { return g.proc.running() }

// Done returns a channel closed when the current run of the gateway exits.
func (g *Gateway) Done() <-chan struct{} { return g.proc.exited() }

// ExitErr is the result of the last run (nil for exit status 0 or while
// it runs).
func (g *Gateway) ExitErr() error { return g.proc.exitErr() }

// Output returns everything the gateway wrote to stdout and stderr so far,
// across restarts.
func (g *Gateway) Output() string {
	data, err := os.ReadFile(g.LogPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", g.LogPath, err)
	}
	return string(data)
}

// LogTail returns the last lines of the gateway's output.
func (g *Gateway) LogTail() string { return tailLines(logTailLines*2, g.LogPath) }

var (
	buildMu    sync.Mutex
	buildCache = map[string]*buildResult{}
)

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// BuildGateway builds the switchboard binary (the module's root package)
// once per test binary and returns its path. When the tests run with
// -race, so is the binary built, and StartGateway fails a test whose
// gateway reported a race.
func BuildGateway(tb testing.TB) string {
	tb.Helper()
	return BuildPackage(tb, "switchboard")
}

// BuildPackage builds the main package importPath of this module once per
// test binary (with -race when the tests run with it) and returns the
// binary's path. Binaries go to a fixed directory under os.TempDir, named
// after the package, and are replaced atomically, so concurrent test
// binaries do not collide and nothing piles up.
func BuildPackage(tb testing.TB, importPath string) string {
	tb.Helper()
	buildMu.Lock()
	r, ok := buildCache[importPath]
	if !ok {
		r = &buildResult{}
		buildCache[importPath] = r
	}
	buildMu.Unlock()
	r.once.Do(func() { r.path, r.err = buildBinary(importPath) })
	if r.err != nil {
		tb.Fatalf("building %s: %v", importPath, r.err)
	}
	return r.path
}

// ModuleRoot returns the directory of this module's go.mod.
func ModuleRoot() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is not on PATH: %w", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the switchboard module (go env GOMOD is %q)", gomod)
	}
	return filepath.Dir(gomod), nil
}

func buildBinary(importPath string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	binDir := filepath.Join(os.TempDir(), fmt.Sprintf("switchboard-testbin-%d", os.Getuid()))
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("making %s: %w", binDir, err)
	}
	name := strings.ReplaceAll(importPath, "/", "_")
	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
		name += "-race"
	}
	final := filepath.Join(binDir, name)
	tmp, err := os.CreateTemp(binDir, name+".tmp-")
	if err != nil {
		return "", fmt.Errorf("making a temp file in %s: %w", binDir, err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	args = append(args, "-o", tmp.Name(), importPath)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", fmt.Errorf("installing %s: %w", final, err)
	}
	return final, nil
}
