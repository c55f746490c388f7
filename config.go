package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"mellium.im/xmpp/jid"

	"switchboard/transports/irc"
)

// Config is the whole switchboard.toml. A transport is on when its section
// is present.
type Config struct {
	Log    LogConfig    `toml:"log"`
	XMPP   XMPPConfig   `toml:"xmpp"`
	Store  StoreConfig  `toml:"store"`
	HTTP   HTTPConfig   `toml:"http"`
	Access AccessConfig `toml:"access"`
	IRC    *irc.Config  `toml:"irc"`
}

// LogConfig is the [log] section.
type LogConfig struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text, json
}

// XMPPConfig is the [xmpp] section: how to reach the XMPP server.
type XMPPConfig struct {
	// Server is the XMPP server's component port, host:port.
	Server string `toml:"server"`
	// PingInterval is how often each link checks that the server answers
	// (a dead link is found within PingInterval + 20 s).
	PingInterval duration `toml:"ping_interval"`
	// QueueSize bounds the stanzas each link keeps while it is down.
	QueueSize int `toml:"queue_size"`
}

// StoreConfig is the [store] section.
type StoreConfig struct {
	Driver  string `toml:"driver"`   // sqlite or postgres
	DSN     string `toml:"dsn"`      // file path (sqlite) or URL (postgres)
	KeyFile string `toml:"key_file"` // secret-encryption key, created 0600 if absent
}

// HTTPConfig is the [http] section.
type HTTPConfig struct {
	Listen string `toml:"listen"` // /metrics, /healthz; "" turns HTTP off
	// PProf also serves net/http/pprof under /debug/pprof/ on Listen, for
	// profiling a running gateway. Bind Listen to loopback when it is on.
	PProf bool `toml:"pprof"`
}

// AccessConfig is the [access] section.
type AccessConfig struct {
	// Allow lists bare JIDs ("alice@example.org") and domains
	// ("example.org") allowed to use the gateway.
	Allow []string `toml:"allow"`
	// Admins are bare JIDs that may run the admin commands; they are
	// allowed even when not in Allow.
	Admins []string `toml:"admins"`
}

// duration is a time.Duration written as "30s" in TOML.
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"30s\"", string(b))
	}
	d.Duration = v
	return nil
}

// Environment variables that override or supply secrets, so that they need
// not sit in the config file.
const (
	envIRCSecret = "SWITCHBOARD_IRC_SECRET" // the IRC component's secret
	envStoreDSN  = "SWITCHBOARD_STORE_DSN"  // the store DSN (a PostgreSQL URL with a password)
	envStoreKey  = "SWITCHBOARD_STORE_KEY"  // the secret-encryption key, 64 hex digits, instead of key_file
)

// loadConfig reads, defaults and validates a config file. It returns every
// problem found, each naming its key, joined into one error.
func loadConfig(path string) (*Config, error) {
	var c Config
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("%s: %s", path, perr.ErrorWithPosition())
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config file %s does not exist (pass -config FILE; configs/switchboard.toml is an example)", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var problems []error
	for _, k := range md.Undecoded() {
		problems = append(problems, fmt.Errorf("%s: unknown key (misspelt, or not supported by this version)", k.String()))
	}
	c.applyEnv()
	c.setDefaults()
	problems = append(problems, c.validate()...)
	if len(problems) == 0 {
		problems = c.resolveSecrets()
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return &c, nil
}

func (c *Config) applyEnv() {
	if v := os.Getenv(envStoreDSN); v != "" {
		c.Store.DSN = v
	}
	if c.IRC != nil {
		if v := os.Getenv(envIRCSecret); v != "" {
			c.IRC.Secret, c.IRC.SecretFile = v, ""
		}
	}
}

func (c *Config) setDefaults() {
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.XMPP.Server == "" {
		c.XMPP.Server = "127.0.0.1:5347"
	}
	if c.XMPP.PingInterval.Duration == 0 {
		c.XMPP.PingInterval.Duration = 30 * time.Second
	}
	if c.XMPP.QueueSize == 0 {
		c.XMPP.QueueSize = 10000
	}
	if c.Store.Driver == "" {
		c.Store.Driver = "sqlite"
	}
	if c.Store.DSN == "" && c.Store.Driver == "sqlite" {
		c.Store.DSN = "switchboard.db"
	}
	if c.Store.KeyFile == "" {
		c.Store.KeyFile = "switchboard.key"
	}
	if c.IRC != nil {
		c.IRC.SetDefaults()
	}
}

func (c *Config) validate() []error {
	var p []error
	bad := func(key, format string, args ...any) {
		p = append(p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Log.Level)); err != nil {
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	if _, _, err := net.SplitHostPort(c.XMPP.Server); err != nil {
		bad("xmpp.server", "%q is not host:port (the XMPP server's component port)", c.XMPP.Server)
	}
	if c.XMPP.PingInterval.Duration < time.Second {
		bad("xmpp.ping_interval", "%s is too short (at least 1s)", c.XMPP.PingInterval.Duration)
	}
	if c.XMPP.QueueSize < 0 {
		bad("xmpp.queue_size", "%d is negative", c.XMPP.QueueSize)
	}
	switch c.Store.Driver {
	case "sqlite", "postgres":
	default:
		bad("store.driver", "%q is not one of sqlite, postgres", c.Store.Driver)
	}
	if c.Store.DSN == "" {
		bad("store.dsn", "is empty (a PostgreSQL URL is required with driver postgres; or set %s)", envStoreDSN)
	}
	if c.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			bad("http.listen", "%q is not host:port", c.HTTP.Listen)
		}
	}
	for i, a := range c.Access.Allow {
		if _, err := parseAccessEntry(a); err != nil {
			bad(fmt.Sprintf("access.allow[%d]", i), "%v", err)
		}
	}
	for i, a := range c.Access.Admins {
		j, err := jid.Parse(strings.TrimSpace(a))
		if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
			bad(fmt.Sprintf("access.admins[%d]", i), "%q is not a bare JID like admin@example.org", a)
		}
	}
	if len(c.Access.Allow) == 0 && len(c.Access.Admins) == 0 {
		bad("access.allow", "is empty: nobody could use the gateway (list your XMPP domain, e.g. allow = [\"example.org\"])")
	}
	if c.IRC == nil {
		p = append(p, errors.New("no transport is enabled: add an [irc] section"))
	} else {
		p = append(p, c.IRC.Validate()...)
	}
	return p
}

// resolveSecrets reads the secrets given as files.
func (c *Config) resolveSecrets() []error {
	if c.IRC != nil && c.IRC.Secret == "" && c.IRC.SecretFile != "" {
		b, err := os.ReadFile(c.IRC.SecretFile)
		if err != nil {
			return []error{fmt.Errorf("irc.secret_file: cannot be read: %w", err)}
		}
		if c.IRC.Secret = strings.TrimSpace(string(b)); c.IRC.Secret == "" {
			return []error{fmt.Errorf("irc.secret_file: %s is empty", c.IRC.SecretFile)}
		}
		c.IRC.SecretFile = "" // resolved: the secret is in Secret now
	}
	return nil
}

// parseAccessEntry reads an allow-list entry: a bare JID or a domain.
func parseAccessEntry(s string) (jid.JID, error) {
	j, err := jid.Parse(strings.TrimSpace(s))
	if err != nil || j.Resourcepart() != "" {
		return jid.JID{}, fmt.Errorf("%q is not a bare JID or a domain", s)
	}
	return j, nil
}

// accessPolicy implements bridge.Authorizer from the [access] section.
type accessPolicy struct {
	users   map[string]bool // bare JIDs
	domains map[string]bool
	admins  map[string]bool
}

func newAccessPolicy(c AccessConfig) *accessPolicy {
	p := &accessPolicy{users: map[string]bool{}, domains: map[string]bool{}, admins: map[string]bool{}}
	for _, a := range c.Allow {
		j, err := parseAccessEntry(a)
		if err != nil {
			continue // validate() reported it
		}
		if j.Localpart() == "" {
			p.domains[j.Domainpart()] = true
		} else {
			p.users[j.String()] = true
		}
	}
	for _, a := range c.Admins {
		if j, err := jid.Parse(strings.TrimSpace(a)); err == nil {
			p.admins[j.Bare().String()] = true
		}
	}
	return p
}

func (p *accessPolicy) Allowed(u jid.JID) bool {
	if u.Localpart() == "" {
		return false // servers and components are not users
	}
	b := u.Bare().String()
	return p.admins[b] || p.users[b] || p.domains[u.Domainpart()]
}

func (p *accessPolicy) IsAdmin(u jid.JID) bool {
	return u.Localpart() != "" && p.admins[u.Bare().String()]
}
