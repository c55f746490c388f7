package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"mellium.im/xmpp/jid"

	"switchboard/attachments"
	"switchboard/bridge"
)

// Config is the whole switchboard.toml. A transport is on when its section
// is present.
type Config struct {
	Log    LogConfig
	XMPP   XMPPConfig
	Store  StoreConfig
	HTTP   HTTPConfig
	Access AccessConfig
	Files  AttachmentsConfig
	// Transports are the transport sections present, in the order of the
	// plugins list.
	Transports []TransportSection
}

// TransportSection is one transport's section of the config file.
type TransportSection struct {
	Plugin bridge.Plugin
	Config bridge.TransportConfig
}

// Transport returns the section of the named transport, or nil.
func (c *Config) Transport(name string) bridge.TransportConfig {
	for _, t := range c.Transports {
		if t.Plugin.Name == name {
			return t.Config
		}
	}
	return nil
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
	Listen string `toml:"listen"` // /metrics, /healthz, webhooks, attachments; "" turns HTTP off
	// PublicURL is the address the outside world reaches Listen at,
	// through whatever proxy is in front ("https://gw.example.org"):
	// webhook signatures are checked against it and attachment links are
	// built from it. Empty: http://<listen>.
	PublicURL string `toml:"public_url"`
	// PProf also serves net/http/pprof under /debug/pprof/ on Listen, for
	// profiling a running gateway. Bind Listen to loopback when it is on.
	PProf bool `toml:"pprof"`
}

// AttachmentsConfig is the [attachments] section: the file service that
// serves mail parts and MMS media under /files/ on the HTTP listener.
type AttachmentsConfig struct {
	// Dir keeps the files (created 0700); default "attachments" beside
	// the SQLite database, or in the working directory.
	Dir string `toml:"dir"`
	// TTL is how long a file's URL works; default 720h (30 days).
	TTL duration `toml:"ttl"`
	// AllowPrivateFetch lets the gateway download attachment URLs on
	// loopback and private networks (an XMPP server's upload service on
	// the LAN); off by default, so that a message cannot make the gateway
	// probe the internal network.
	AllowPrivateFetch bool `toml:"allow_private_fetch"`
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
// SWITCHBOARD_<NAME>_SECRET (envSecret) overrides the component secret
// of each transport.
const (
	envStoreDSN = "SWITCHBOARD_STORE_DSN" // the store DSN (a PostgreSQL URL with a password)
	envStoreKey = "SWITCHBOARD_STORE_KEY" // the secret-encryption key, 64 hex digits, instead of key_file
)

// envSecret is the environment variable that overrides the component
// secret of a transport: SWITCHBOARD_IRC_SECRET for "irc".
func envSecret(transport string) string {
	return "SWITCHBOARD_" + strings.ToUpper(transport) + "_SECRET"
}

// coreSections are the sections that are not transports.
var coreSections = []string{"log", "xmpp", "store", "http", "access", "attachments"}

// loadConfig reads, defaults and validates a config file. It returns every
// problem found, each naming its key, joined into one error.
func loadConfig(path string) (*Config, error) {
	return loadConfigWith(path, plugins)
}

// loadConfigWith is loadConfig with the given transport plugins.
func loadConfigWith(path string, kinds []bridge.Plugin) (*Config, error) {
	var c Config
	var sections map[string]toml.Primitive
	md, err := toml.DecodeFile(path, &sections)
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
	decode := func(name string, v any) {
		if p, ok := sections[name]; ok {
			if err := md.PrimitiveDecode(p, v); err != nil {
				problems = append(problems, fmt.Errorf("%s: %v", name, err))
			}
		}
	}
	decode("log", &c.Log)
	decode("xmpp", &c.XMPP)
	decode("store", &c.Store)
	decode("http", &c.HTTP)
	decode("access", &c.Access)
	decode("attachments", &c.Files)
	known := map[string]bool{}
	for _, n := range coreSections {
		known[n] = true
	}
	for _, k := range kinds {
		known[k.Name] = true
		if _, ok := sections[k.Name]; !ok {
			continue
		}
		tc := k.NewConfig()
		decode(k.Name, tc)
		c.Transports = append(c.Transports, TransportSection{Plugin: k, Config: tc})
	}
	for name := range sections {
		if !known[name] {
			var names []string
			for _, k := range kinds {
				names = append(names, k.Name)
			}
			problems = append(problems, fmt.Errorf("%s: unknown section (transports this version knows: %s)", name, strings.Join(names, ", ")))
		}
	}
	for _, k := range md.Undecoded() {
		if !known[k[0]] {
			continue // reported above as a whole
		}
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
	for _, t := range c.Transports {
		if v := os.Getenv(envSecret(t.Plugin.Name)); v != "" {
			cc := t.Config.Component()
			cc.Secret, cc.SecretFile = v, ""
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
	if c.Files.Dir == "" {
		c.Files.Dir = "attachments"
		if c.Store.Driver == "sqlite" && !strings.HasPrefix(c.Store.DSN, "file:") && c.Store.DSN != ":memory:" {
			c.Files.Dir = filepath.Join(filepath.Dir(c.Store.DSN), "attachments")
		}
	}
	if c.Files.TTL.Duration == 0 {
		c.Files.TTL.Duration = attachments.DefaultTTL
	}
	for _, t := range c.Transports {
		t.Config.SetDefaults()
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
	if c.HTTP.PublicURL != "" {
		u, err := url.Parse(c.HTTP.PublicURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("http.public_url", "%q is not an http:// or https:// URL like \"https://gw.example.org\"", c.HTTP.PublicURL)
		case u.RawQuery != "" || u.Fragment != "":
			bad("http.public_url", "%q must not have a query or fragment", c.HTTP.PublicURL)
		case c.HTTP.Listen == "":
			bad("http.public_url", "is set but http.listen is empty: nothing would answer at it")
		}
	}
	if c.Files.TTL.Duration < time.Minute {
		bad("attachments.ttl", "%s is too short (at least 1m; default 720h)", c.Files.TTL.Duration)
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
	if len(c.Transports) == 0 {
		var names []string
		for _, k := range plugins {
			names = append(names, "["+k.Name+"]")
		}
		p = append(p, fmt.Errorf("no transport is enabled: add one of the sections %s", strings.Join(names, ", ")))
	}
	domains := map[string]string{}
	for _, t := range c.Transports {
		name, cc := t.Plugin.Name, t.Config.Component()
		if cc.Domain == "" {
			bad(name+".domain", "is missing: set the component domain, e.g. domain = \"%s.example.org\"", name)
		} else if d, err := jid.Parse(cc.Domain); err != nil || d.Localpart() != "" || d.Resourcepart() != "" {
			bad(name+".domain", "%q is not a domain name", cc.Domain)
		} else if other, dup := domains[d.Domainpart()]; dup {
			bad(name+".domain", "%q is the domain of [%s] too: each transport needs its own component domain", cc.Domain, other)
		} else {
			domains[d.Domainpart()] = name
		}
		switch {
		case cc.Secret != "" && cc.SecretFile != "":
			bad(name+".secret", "secret and secret_file are both set; keep one")
		case cc.Secret == "" && cc.SecretFile == "":
			bad(name+".secret", "is missing: set secret or secret_file to the component secret of the XMPP server (or %s)", envSecret(name))
		case cc.SecretFile != "":
			if _, err := os.Stat(cc.SecretFile); err != nil {
				bad(name+".secret_file", "%q cannot be read: %v", cc.SecretFile, err)
			}
		}
		for _, e := range t.Config.Validate() {
			p = append(p, fmt.Errorf("%s.%w", name, e))
		}
	}
	return p
}

// resolveSecrets reads the secrets given as files.
func (c *Config) resolveSecrets() []error {
	var p []error
	for _, t := range c.Transports {
		cc := t.Config.Component()
		if cc.Secret != "" || cc.SecretFile == "" {
			continue
		}
		b, err := os.ReadFile(cc.SecretFile)
		if err != nil {
			p = append(p, fmt.Errorf("%s.secret_file: cannot be read: %w", t.Plugin.Name, err))
			continue
		}
		if cc.Secret = strings.TrimSpace(string(b)); cc.Secret == "" {
			p = append(p, fmt.Errorf("%s.secret_file: %s is empty", t.Plugin.Name, cc.SecretFile))
		}
		cc.SecretFile = "" // resolved: the secret is in Secret now
	}
	return p
}

// publicURL is [http] public_url without a trailing slash, or
// http://<listen> when only listen is set ("" without HTTP).
func (c *Config) publicURL() string {
	if c.HTTP.PublicURL != "" {
		return strings.TrimRight(c.HTTP.PublicURL, "/")
	}
	if c.HTTP.Listen != "" {
		return "http://" + c.HTTP.Listen
	}
	return ""
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
