package irc

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/text/encoding"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

// dialConcurrency is how many connections to one server address may be
// between dialing and registration at once. ngircd's listen backlog is
// small (10): a burst of connects loses SYNs, so mass connects are paced.
const dialConcurrency = 8

// Transport is the IRC transport. It implements bridge.Transport.
type Transport struct {
	cfg     Config
	gw      *bridge.Gateway // set by Plugin: Run restores bouncers through it
	codec   *mapping.IRCCodec
	st      store.Store
	metrics *bridge.Metrics
	log     *slog.Logger

	networks map[string]*netInfo // configured networks, by lowercased name

	conns atomic.Int64 // open IRC connections over all users

	slotsMu sync.Mutex
	slots   map[string]chan struct{} // pacing per server address

	archive *archiver

	// reclaimEvery is how often a user on another nick than the wanted
	// one asks for it again (DefaultReclaimInterval; tests shorten it).
	reclaimEvery time.Duration

	// idents are the connections the identd answers for, identKey the
	// key of the per-user hash (both nil when identd_listen is not set).
	// identdReady is closed once the identd listens, at identdAddr.
	idents      *identTable
	identKey    []byte
	identdReady chan struct{}
	identdAddr  net.Addr

	msgsIn, msgsOut prometheus.Counter
	connGauge       prometheus.Gauge

	// linkUp is signalled when the component link (re)connects: the
	// occupants' resources are checked (see occupants.go).
	linkUp chan struct{}
	// occMu orders the updates of the list of users with recorded
	// occupants; stale are the previous run's (occstate.go).
	occMu    sync.Mutex
	stale    *staleOccupants
	occUsers map[string]bool // the index, once read (t.occMu held)
}

// netInfo is what the transport knows about reaching one network before a
// user's own settings apply.
type netInfo struct {
	name        string // canonical spelling (Address.Network)
	cfg         *NetworkConfig
	host        string
	port        int
	tls         bool
	verify      bool
	fingerprint []byte
	charset     encoding.Encoding
	limits      limits
	bind        string
	open        bool // a server of an open gateway, not configured
}

var _ bridge.Transport = (*Transport)(nil)

// Plugin is the IRC transport's entry in main's list of transports.
var Plugin = bridge.Plugin{
	Name:      "irc",
	NewConfig: func() bridge.TransportConfig { return new(Config) },
	New: func(c bridge.TransportConfig, env bridge.Env) (bridge.Transport, error) {
		t, err := New(*c.(*Config), env.Store, env.Metrics, env.Log)
		if err != nil {
			return nil, err
		}
		t.gw = env.Gateway
		return t, nil
	},
}

// New builds the IRC transport from its configuration section (defaults
// are filled in and the configuration validated here too). metrics may be
// nil.
func New(cfg Config, st store.Store, metrics *bridge.Metrics, log *slog.Logger) (*Transport, error) {
	if cfg.Secret != "" && cfg.SecretFile != "" {
		// main reads secret_file into Secret (after checking that the file
		// alone was given) and passes both on: the file has been read.
		cfg.SecretFile = ""
	}
	cfg.SetDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("the [irc] configuration is invalid: irc.%w", errs[0])
	}
	codec, err := mapping.NewIRCCodec(cfg.Domain, cfg.codecNetworks(), cfg.Open)
	if err != nil {
		return nil, fmt.Errorf("the [irc] configuration is invalid: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	if metrics == nil {
		metrics = bridge.NewMetrics(nil)
	}
	t := &Transport{
		cfg:          cfg,
		codec:        codec,
		st:           st,
		metrics:      metrics,
		log:          log.With("transport", "irc"),
		networks:     make(map[string]*netInfo),
		slots:        make(map[string]chan struct{}),
		reclaimEvery: DefaultReclaimInterval,
		identdReady:  make(chan struct{}),
		linkUp:       make(chan struct{}, 1),
		msgsIn:       metrics.Messages.WithLabelValues("irc", "to-xmpp"),
		msgsOut:      metrics.Messages.WithLabelValues("irc", "to-remote"),
		connGauge:    metrics.Connections.WithLabelValues("irc"),
	}
	// Read before any link is up, so that nothing this run records is
	// mistaken for what the previous run left.
	lctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	stale, err := t.loadStaleOccupants(lctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("reading the occupants the previous run left: %w", err)
	}
	t.stale = stale
	t.archive = newArchiver(st, t.log)
	if cfg.IdentdListen != "" {
		key, err := identKey(&cfg)
		if err != nil {
			return nil, fmt.Errorf("the [irc] configuration is invalid: %w", err)
		}
		t.identKey, t.idents = key, newIdentTable()
	}
	for i := range t.cfg.Networks {
		nc := &t.cfg.Networks[i]
		host, portStr, _ := net.SplitHostPort(nc.Address)
		port, _ := strconv.Atoi(portStr)
		cs, _ := lookupCharset(nc.Charset)
		fp, _ := parseFingerprint(nc.Fingerprint)
		if nc.Fingerprint == "" {
			fp = nil
		}
		bind := nc.BindAddress
		if bind == "" {
			bind = cfg.BindAddress
		}
		t.networks[strings.ToLower(nc.Name)] = &netInfo{
			name: nc.Name, cfg: nc, host: host, port: port, tls: nc.TLS, verify: *nc.TLSVerify,
			fingerprint: fp, charset: cs, limits: cfg.netLimits(nc), bind: bind,
		}
	}
	return t, nil
}

// shutdownGrace is how long lines still queued get to leave at Close.
func (t *Transport) shutdownGrace() time.Duration {
	if t.cfg.ShutdownGrace == nil {
		return DefaultShutdownGrace * time.Second
	}
	return time.Duration(*t.cfg.ShutdownGrace) * time.Second
}

// Name returns "irc".
func (t *Transport) Name() string { return "irc" }

// Codec returns the IRC codec of the component domain.
func (t *Transport) Codec() mapping.Codec { return t.codec }

// Identity is the XEP-0030 identity of the gateway domain.
func (t *Transport) Identity() (category, typ, name string) {
	return "gateway", "irc", "IRC gateway"
}

// RegistrationRequired is false: users may join with defaults (the nick
// they ask for, the JID's local part as username).
func (t *Transport) RegistrationRequired() bool { return false }

// Config returns the effective configuration (defaults filled in).
func (t *Transport) Config() Config { return t.cfg }

// NewSession starts a user's IRC state; called on the user's goroutine.
func (t *Transport) NewSession(u *bridge.User) bridge.Session {
	return newSession(t, u)
}

// Run writes the room archive in batches and prunes it daily, and serves
// the identd when identd_listen is set, until ctx is done. It fails at
// once when the identd cannot listen.
func (t *Transport) Run(ctx context.Context) error {
	var ln net.Listener
	if t.idents != nil {
		var lc net.ListenConfig
		var err error
		ln, err = lc.Listen(ctx, "tcp", t.cfg.IdentdListen)
		if err != nil {
			return fmt.Errorf("irc.identd_listen: the identd cannot listen on %s: %w", t.cfg.IdentdListen, err)
		}
		t.identdAddr = ln.Addr()
		close(t.identdReady)
		t.log.Info("identd listening", "addr", ln.Addr().String())
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.archive.run(ctx)
	}()
	if t.gw != nil {
		// Bouncer users' connections come back without waiting for them.
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.RestoreBouncers(ctx, t.gw); err != nil && ctx.Err() == nil {
				t.log.Error("restoring bouncer connections failed", "err", err)
			}
		}()
	}
	if ln != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.runIdentd(ctx, ln)
		}()
	}
	if t.gw != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.checkOccupantsLoop(ctx)
		}()
	}
	t.pruneLoop(ctx)
	wg.Wait()
	return nil
}

// pruneLoop deletes archive entries older than the longest history_days,
// once at start and then daily. Networks with a shorter retention are
// pruned on query (entries older than their retention are not served).
func (t *Transport) pruneLoop(ctx context.Context) {
	days := *t.cfg.HistoryDays
	for _, n := range t.networks {
		days = max(days, n.limits.historyDays)
	}
	if days == 0 {
		days = 1 // nothing should be kept: prune what an earlier config left
	}
	tick := time.NewTicker(24 * time.Hour)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		n, err := t.st.PruneArchive(pctx, "irc", time.Now().AddDate(0, 0, -days))
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			t.log.Warn("pruning the IRC room archive failed", "err", err)
		case n > 0:
			t.log.Info("pruned the IRC room archive", "entries", n, "older_than_days", days)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// networkInfo resolves the network of an Address (its canonical spelling)
// to how it is reached, applying the user's settings for servers of an
// open gateway.
func (t *Transport) networkInfo(name string, set settings) (*netInfo, error) {
	if ni := t.networks[strings.ToLower(name)]; ni != nil {
		return ni, nil
	}
	host, ok := t.codec.Host(name)
	if !ok || !t.cfg.Open {
		return nil, bridge.Errorf(bridge.ItemNotFound, "There is no IRC network %q on this gateway.", name)
	}
	key := strings.ToLower(name)
	ni := &netInfo{
		name: name, host: host, port: t.cfg.OpenPort, tls: *t.cfg.OpenTLS, verify: true,
		charset: mustCharset(DefaultCharset), limits: t.cfg.netLimits(nil), bind: t.cfg.BindAddress, open: true,
	}
	if p, err := strconv.Atoi(set.net(key, keyPort)); err == nil && p > 0 && p < 65536 {
		ni.port = p
	}
	if v := set.net(key, keyTLS); v != "" {
		ni.tls = v == "1" || v == "true"
	}
	if v := set.net(key, keyTLSVerify); v != "" {
		ni.verify = !(v == "0" || v == "false")
	}
	if v := set.net(key, keyFingerprint); v != "" {
		if fp, err := parseFingerprint(v); err == nil {
			ni.fingerprint = fp
		}
	}
	return ni, nil
}

// dialSpec builds how a connection reaches ni.
func (t *Transport) dialSpec(ni *netInfo, cert *tls.Certificate) dialSpec {
	addr := net.JoinHostPort(ni.host, strconv.Itoa(ni.port))
	spec := dialSpec{addr: addr, bind: ni.bind, noPrivate: ni.open && !t.cfg.OpenAllowPrivate, idents: t.idents}
	if ni.tls {
		spec.tls = tlsConfig(ni.host, ni.verify, ni.fingerprint, cert)
	}
	t.slotsMu.Lock()
	s := t.slots[addr]
	if s == nil {
		s = make(chan struct{}, dialConcurrency)
		t.slots[addr] = s
	}
	t.slotsMu.Unlock()
	spec.slots = s
	return spec
}

// takeConnection counts a new IRC connection against max_connections; it
// reports false when the gateway is full.
func (t *Transport) takeConnection() bool {
	for {
		cur := t.conns.Load()
		if t.cfg.MaxConnections > 0 && cur >= int64(t.cfg.MaxConnections) {
			return false
		}
		if t.conns.CompareAndSwap(cur, cur+1) {
			t.connGauge.Inc()
			return true
		}
	}
}

// releaseConnection undoes takeConnection.
func (t *Transport) releaseConnection() {
	t.conns.Add(-1)
	t.connGauge.Dec()
}

// Connections returns the number of IRC connections open (or being opened)
// over all users.
func (t *Transport) Connections() int { return int(t.conns.Load()) }

func mustCharset(name string) encoding.Encoding {
	e, err := lookupCharset(name)
	if err != nil {
		panic(err)
	}
	return e
}
