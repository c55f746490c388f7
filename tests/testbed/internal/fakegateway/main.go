// Command fakegateway stands in for the switchboard binary in the testbed's
// own tests: it reads -config like the gateway, serves GET /healthz on the
// [http] listen address, and exits on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
)

func main() {
	configPath := flag.String("config", "switchboard.toml", "config file")
	flag.Parse()
	var cfg struct {
		HTTP struct {
			Listen string `toml:"listen"`
		} `toml:"http"`
		IRC struct {
			Domain string `toml:"domain"`
		} `toml:"irc"`
	}
	if _, err := toml.DecodeFile(*configPath, &cfg); err != nil {
		log.Fatalf("fakegateway: reading %s: %v", *configPath, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Addr: cfg.HTTP.Listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("fakegateway: irc domain %q, listening on %s", cfg.IRC.Domain, cfg.HTTP.Listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("fakegateway: %v", err)
	}
	log.Printf("fakegateway: stopped")
}
