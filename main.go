// Command switchboard is an XMPP gateway to IRC, email and SMS. It
// attaches to an XMPP server as an XEP-0114 external component per
// transport and lets that server's users reach remote networks from their
// own XMPP client. See README.md and doc/architecture.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"switchboard/attachments"
	"switchboard/bridge"
	"switchboard/component"
	"switchboard/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func main() {
	configPath := flag.String("config", "switchboard.toml", "the configuration file")
	checkOnly := flag.Bool("check-config", false, "validate the configuration, print every problem and exit (0 when valid, 1 otherwise)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()

	if *showVersion {
		fmt.Println("switchboard", version)
		return
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "switchboard: the configuration has problems:\n")
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(os.Stderr, "  %s\n", line)
		}
		os.Exit(1)
	}
	if *checkOnly {
		fmt.Printf("%s: the configuration is valid\n", *configPath)
		return
	}
	log := newLogger(cfg.Log, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("switchboard stopped", "err", err)
		os.Exit(1)
	}
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level)) // validated in loadConfig
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// run wires the parts and runs them until ctx is done. Shutdown order: the
// gateway first (sessions QUIT their networks and emit their last
// presences into the link queues), then the links (they flush, send
// unavailable presence and close their streams), then HTTP.
func run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	key, err := loadKey(cfg.Store)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Store.Driver, cfg.Store.DSN, key)
	if err != nil {
		return fmt.Errorf("opening the %s store: %w", cfg.Store.Driver, err)
	}
	defer st.Close()

	metrics := bridge.NewMetrics(nil)
	gw := bridge.New(st, newAccessPolicy(cfg.Access), log, metrics)
	files, err := attachments.New(cfg.Files.Dir, cfg.publicURL(), cfg.Files.TTL.Duration, log.With("part", "attachments"))
	if err != nil {
		return fmt.Errorf("attachments.dir: %w", err)
	}
	env := bridge.Env{
		Gateway: gw, Store: st, Metrics: metrics, Log: log, PublicURL: cfg.publicURL(),
		Attachments: files, AllowPrivateFetch: cfg.Files.AllowPrivateFetch,
	}

	var links []*component.Link
	routes := map[string]http.Handler{}
	if prefix, h := files.HTTPHandler(); h != nil {
		routes[prefix] = h
	}
	for _, sec := range cfg.Transports {
		name, cc := sec.Plugin.Name, sec.Config.Component()
		t, err := sec.Plugin.New(sec.Config, env)
		if err != nil {
			return fmt.Errorf("starting the %s transport: %w", name, err)
		}
		link := component.NewLink(component.LinkConfig{
			Domain:       cc.Domain,
			Server:       cfg.XMPP.Server,
			Secret:       cc.Secret,
			Transport:    t.Name(),
			QueueSize:    cfg.XMPP.QueueSize,
			PingInterval: cfg.XMPP.PingInterval.Duration,
			Version:      version,
		}, gw, t.Codec(), log)
		gw.AddTransport(t, link)
		links = append(links, link)
		if hs, ok := t.(bridge.HTTPService); ok {
			prefix, h := hs.HTTPHandler()
			routes[prefix] = h
		}
	}

	var httpSrv *http.Server
	if cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
		}
		httpSrv = &http.Server{Handler: httpHandler(metrics, links, routes, cfg.HTTP.PProf), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("the HTTP server stopped", "err", err)
			}
		}()
		paths := []string{"/metrics", "/healthz"}
		for p := range routes {
			paths = append(paths, p)
		}
		if cfg.HTTP.PProf {
			paths = append(paths, "/debug/pprof/")
		}
		sort.Strings(paths)
		log.Info("HTTP listening", "addr", ln.Addr().String(), "paths", strings.Join(paths, " "), "public_url", env.PublicURL)
	} else if len(routes) > 0 {
		log.Warn("http.listen is empty: the HTTP paths the transports serve (webhooks, attachments) are not reachable")
	}

	linkCtx, stopLinks := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, l := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Run(linkCtx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("component link stopped", "err", err)
			}
		}()
	}
	log.Info("switchboard started", "version", version, "xmpp", cfg.XMPP.Server, "store", cfg.Store.Driver)

	wg.Add(1)
	go func() {
		defer wg.Done()
		trimAfterBursts(linkCtx, log)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = files.Run(linkCtx)
	}()

	gwErr := gw.Run(ctx)
	log.Info("shutting down")
	stopLinks()
	wg.Wait()
	if httpSrv != nil {
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = httpSrv.Shutdown(shutCtx)
		cancel()
	}
	return gwErr
}

// loadKey returns the secret-encryption key from the environment or the
// key file (created on first start).
func loadKey(c StoreConfig) ([]byte, error) {
	if v := os.Getenv(envStoreKey); v != "" {
		key, err := store.ParseKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envStoreKey, err)
		}
		return key, nil
	}
	key, err := store.LoadOrCreateKey(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("store.key_file: %w", err)
	}
	return key, nil
}

// httpHandler serves /metrics and /healthz (200 only while every
// component link is up), and the transports' routes (prefix → handler).
func httpHandler(m *bridge.Metrics, links []*component.Link, routes map[string]http.Handler, withPProf bool) http.Handler {
	mux := http.NewServeMux()
	for prefix, h := range routes {
		mux.Handle(prefix, h)
	}
	if withPProf {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		var down []string
		for _, l := range links {
			if !l.Up() {
				down = append(down, l.Domain())
			}
		}
		if len(down) > 0 {
			http.Error(w, "component links down: "+strings.Join(down, ", "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
