package irc

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"

	"switchboard/bridge"
	"switchboard/mapping"
)

// Defaults of the [irc] section.
const (
	DefaultRate        = 2.0 // lines per second per connection
	DefaultBurst       = 10  // lines
	DefaultMaxLines    = 40  // IRC lines one XMPP message may become
	DefaultHistoryDays = 30  // days the room archive keeps messages
	// DefaultMaxBacklog bounds, in seconds at the rate, the lines one IRC
	// connection may have waiting to be written.
	DefaultMaxBacklog = 30
	// DefaultShutdownGrace is how many seconds queued lines get to leave
	// when the gateway stops.
	DefaultShutdownGrace = 5
	// DefaultMaxConnectionsPerUser bounds the IRC connections one user may
	// have open at once (one per network).
	DefaultMaxConnectionsPerUser = 10
	// DefaultRealname is the realname (gecos) sent when neither the user
	// nor the admin set one.
	DefaultRealname = "Switchboard XMPP gateway user"
	// DefaultCharset decodes lines from IRC that are not valid UTF-8.
	DefaultCharset = "latin-1"
	// DefaultOpenPort is the port of servers of an open gateway that are
	// not configured (TLS on by default).
	DefaultOpenPort = 6697
)

// Config is the [irc] section of the configuration file.
type Config struct {
	// ComponentConfig holds domain, secret and secret_file, which main
	// validates and resolves (secret_file is read into Secret).
	bridge.ComponentConfig
	// Open lets users reach IRC servers the admin did not configure, by
	// host name (#chan%irc.example.net@domain).
	Open bool `toml:"open"`
	// OpenPort and OpenTLS say how servers of an open gateway are reached
	// (default 6697 with TLS); a user may override both per server with
	// the configure command.
	OpenPort int   `toml:"open_port"`
	OpenTLS  *bool `toml:"open_tls"`
	// OpenAllowPrivate lets users of an open gateway reach loopback,
	// private and link-local addresses (off by default: an open gateway
	// must not become a way into the admin's own network).
	OpenAllowPrivate bool `toml:"open_allow_private"`

	// Rate is the outgoing line rate per IRC connection, lines per second
	// (token bucket; 0 turns the limit off). Burst is the bucket size.
	Rate  *float64 `toml:"rate"`
	Burst *int     `toml:"burst"`
	// MaxBacklog bounds the lines waiting to be written on one connection,
	// in seconds at its rate (30 at rate 2 is 60 lines, or burst if that
	// is more); a message that would go past it is refused with
	// resource-constraint. 0 leaves only the 256 KiB bound of the queue.
	MaxBacklog *int `toml:"max_backlog"`
	// ShutdownGrace is how many seconds lines still queued get to leave
	// (within the rate limit) when the gateway stops, before the others
	// are answered with an error and the connections QUIT.
	ShutdownGrace *int `toml:"shutdown_grace"`
	// MaxLines is how many IRC lines one XMPP message may become; a longer
	// message is refused with an error instead of flooding the channel.
	MaxLines *int `toml:"max_lines"`
	// HistoryDays is how long the room archive (XEP-0313, MUC history)
	// keeps messages; 0 keeps no archive.
	HistoryDays *int `toml:"history_days"`

	// MaxConnectionsPerUser bounds the IRC connections of one user;
	// MaxConnections bounds them over all users (0: no bound).
	MaxConnectionsPerUser int `toml:"max_connections_per_user"`
	MaxConnections        int `toml:"max_connections"`
	// BindAddress is the local IP address IRC connections come from
	// (empty: the system chooses).
	BindAddress string `toml:"bind_address"`
	// Realname is the default realname (gecos) of users who set none.
	Realname string `toml:"realname"`
	// IdentdListen is the address ("0.0.0.0:113", "[::]:113") of an
	// identd (RFC 1413) that answers IRC servers' ident queries about the
	// gateway's connections with a per-user hash; empty (the default)
	// runs none. Servers ask on port 113 of the address the connection
	// came from, so that is the port to listen on (or to forward).
	IdentdListen string `toml:"identd_listen"`

	// Networks are the IRC networks users may reach by name.
	Networks []NetworkConfig `toml:"network"`
}

// NetworkConfig is one [[irc.network]].
type NetworkConfig struct {
	// Name is the network's alias in JIDs: "#chan%Name@domain".
	Name string `toml:"name"`
	// Address is "host:port" of the server to connect to.
	Address string `toml:"address"`
	// TLS connects with TLS. TLSVerify (default true) checks the server's
	// certificate against the system roots; Fingerprint pins the SHA-256
	// of the server certificate (hex, colons allowed) instead.
	TLS         bool   `toml:"tls"`
	TLSVerify   *bool  `toml:"tls_verify"`
	Fingerprint string `toml:"fingerprint"`
	// Charset decodes lines that are not valid UTF-8 (default latin-1).
	Charset string `toml:"charset"`
	// Password is the server password (PASS) for every user.
	Password string `toml:"password"`
	// WebIRCPassword, when set, makes the gateway send WEBIRC so that the
	// network sees one distinct host per XMPP user.
	WebIRCPassword string `toml:"webirc_password"`
	// Overrides of the [irc] values for this network.
	Rate        *float64 `toml:"rate"`
	Burst       *int     `toml:"burst"`
	MaxLines    *int     `toml:"max_lines"`
	HistoryDays *int     `toml:"history_days"`
	BindAddress string   `toml:"bind_address"`
}

// SetDefaults fills in every value left out of the configuration.
func (c *Config) SetDefaults() {
	if c.Rate == nil {
		c.Rate = ptr(DefaultRate)
	}
	if c.Burst == nil {
		c.Burst = ptr(DefaultBurst)
	}
	if c.MaxLines == nil {
		c.MaxLines = ptr(DefaultMaxLines)
	}
	if c.MaxBacklog == nil {
		c.MaxBacklog = ptr(DefaultMaxBacklog)
	}
	if c.ShutdownGrace == nil {
		c.ShutdownGrace = ptr(DefaultShutdownGrace)
	}
	if c.HistoryDays == nil {
		c.HistoryDays = ptr(DefaultHistoryDays)
	}
	if c.MaxConnectionsPerUser == 0 {
		c.MaxConnectionsPerUser = DefaultMaxConnectionsPerUser
	}
	if c.Realname == "" {
		c.Realname = DefaultRealname
	}
	if c.OpenPort == 0 {
		c.OpenPort = DefaultOpenPort
	}
	if c.OpenTLS == nil {
		c.OpenTLS = ptr(true)
	}
	for i := range c.Networks {
		n := &c.Networks[i]
		if n.TLSVerify == nil {
			n.TLSVerify = ptr(true)
		}
		if n.Charset == "" {
			n.Charset = DefaultCharset
		}
	}
}

func ptr[T any](v T) *T { return &v }

// Validate returns every problem of the configuration, each naming its
// key. Call SetDefaults first.
func (c *Config) Validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if !c.Open && len(c.Networks) == 0 {
		bad("network", "no network is configured and open is false, so users could reach nothing")
	}
	if c.OpenPort < 0 || c.OpenPort > 65535 {
		bad("open_port", "%d is not a TCP port", c.OpenPort)
	}
	checkLimits(bad, "", c.Rate, c.Burst, c.MaxLines, c.HistoryDays)
	if c.MaxBacklog != nil && *c.MaxBacklog < 0 {
		bad("max_backlog", "%d is negative (0 leaves only the 256 KiB bound of the queue)", *c.MaxBacklog)
	}
	if c.ShutdownGrace != nil && (*c.ShutdownGrace < 0 || *c.ShutdownGrace > 300) {
		bad("shutdown_grace", "%d is not a number of seconds from 0 to 300", *c.ShutdownGrace)
	}
	if c.MaxConnectionsPerUser < 0 {
		bad("max_connections_per_user", "%d is negative", c.MaxConnectionsPerUser)
	}
	if c.MaxConnections < 0 {
		bad("max_connections", "%d is negative (0 means no limit)", c.MaxConnections)
	}
	if c.BindAddress != "" {
		if _, err := netip.ParseAddr(c.BindAddress); err != nil {
			bad("bind_address", "%q is not an IP address", c.BindAddress)
		}
	}
	if !safeParam(c.Realname) {
		bad("realname", "contains a line break or NUL")
	}
	if c.IdentdListen != "" {
		if p := listenAddrProblem(c.IdentdListen); p != "" {
			bad("identd_listen", "%q is not an address to listen on: %s (for example \"0.0.0.0:113\")", c.IdentdListen, p)
		}
	}
	seen := map[string]int{}
	for i, n := range c.Networks {
		key := fmt.Sprintf("network[%d]", i)
		if n.Name == "" {
			bad(key+".name", "is missing")
		} else if p := networkNameProblem(n.Name); p != "" {
			bad(key+".name", "%q is not a valid network name: %s", n.Name, p)
		} else if j, dup := seen[strings.ToLower(n.Name)]; dup {
			bad(key+".name", "%q is already the name of network[%d]", n.Name, j)
		} else {
			seen[strings.ToLower(n.Name)] = i
		}
		if n.Address == "" {
			bad(key+".address", "is missing: set it to \"host:port\"")
		} else if host, port, err := net.SplitHostPort(n.Address); err != nil || host == "" {
			bad(key+".address", "%q is not host:port", n.Address)
		} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			bad(key+".address", "%q has no valid port", n.Address)
		}
		if n.Fingerprint != "" {
			if _, err := parseFingerprint(n.Fingerprint); err != nil {
				bad(key+".fingerprint", "%v", err)
			}
			if !n.TLS {
				bad(key+".fingerprint", "is set but tls is false; a fingerprint pins a TLS certificate")
			}
		}
		if _, err := lookupCharset(n.Charset); err != nil {
			bad(key+".charset", "%v", err)
		}
		for _, f := range []struct{ k, v string }{{"password", n.Password}, {"webirc_password", n.WebIRCPassword}} {
			if !safeParam(f.v) || strings.ContainsRune(f.v, ' ') {
				bad(key+"."+f.k, "contains a space, line break or NUL, which IRC cannot carry")
			}
		}
		checkLimits(bad, key+".", n.Rate, n.Burst, n.MaxLines, n.HistoryDays)
		if n.BindAddress != "" {
			if _, err := netip.ParseAddr(n.BindAddress); err != nil {
				bad(key+".bind_address", "%q is not an IP address", n.BindAddress)
			}
		}
	}
	if len(errs) == 0 {
		if _, err := mapping.NewIRCCodec(c.Domain, c.codecNetworks(), c.Open); err != nil {
			errs = append(errs, fmt.Errorf("irc: %w", err))
		}
	}
	return errs
}

// checkLimits validates the values a network may override.
func checkLimits(bad func(key, format string, args ...any), prefix string, rate *float64, burst, maxLines, historyDays *int) {
	if rate != nil && (*rate < 0 || *rate != *rate) {
		bad(prefix+"rate", "%v is negative (0 turns the limit off)", *rate)
	}
	if burst != nil && *burst < 1 {
		bad(prefix+"burst", "%d is less than 1", *burst)
	}
	if maxLines != nil && *maxLines < 1 {
		bad(prefix+"max_lines", "%d is less than 1", *maxLines)
	}
	if historyDays != nil && *historyDays < 0 {
		bad(prefix+"history_days", "%d is negative (0 keeps no history)", *historyDays)
	}
}

// listenAddrProblem says what is wrong with "ip:port" (the IP may be left
// out: all addresses), or "".
func listenAddrProblem(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "it is not ip:port"
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Sprintf("%q is not an IP address", host)
		}
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Sprintf("%q is not a port from 1 to 65535", port)
	}
	return ""
}

// networkNameProblem mirrors mapping's rule for network aliases.
func networkNameProblem(s string) string {
	if len(s) > 63 {
		return "it is longer than 63 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return "it may contain only ASCII letters, digits, '-', '.' and '_'"
		}
	}
	return ""
}

// codecNetworks are the networks as mapping.NewIRCCodec wants them.
func (c *Config) codecNetworks() []mapping.IRCNetwork {
	out := make([]mapping.IRCNetwork, 0, len(c.Networks))
	for _, n := range c.Networks {
		host, _, err := net.SplitHostPort(n.Address)
		if err != nil {
			host = n.Address
		}
		out = append(out, mapping.IRCNetwork{Name: n.Name, Host: host})
	}
	return out
}

// parseFingerprint reads a SHA-256 certificate fingerprint written as hex,
// with or without colons.
func parseFingerprint(s string) ([]byte, error) {
	h := strings.ReplaceAll(strings.ReplaceAll(strings.TrimSpace(s), ":", ""), " ", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("%q is not a SHA-256 fingerprint (64 hex digits, colons allowed)", s)
	}
	return b, nil
}

// lookupCharset finds the fallback decoder for a charset name. latin-1
// means ISO 8859-1 proper (every byte a character); other names follow the
// WHATWG encoding labels (windows-1252, koi8-r, shift_jis, …).
func lookupCharset(name string) (encoding.Encoding, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "latin-1", "latin1", "iso-8859-1", "iso8859-1":
		return charmap.ISO8859_1, nil
	case "utf-8", "utf8":
		return nil, fmt.Errorf("%q cannot be the fallback charset: it is for lines that are not UTF-8", name)
	}
	e, err := htmlindex.Get(name)
	if err != nil {
		return nil, fmt.Errorf("%q is not a known charset (try latin-1, windows-1252, iso-8859-15, koi8-r)", name)
	}
	return e, nil
}

// limits are the effective per-network values after overrides.
type limits struct {
	rate        float64
	burst       int
	maxLines    int
	historyDays int
}

// netLimits returns the effective limits of a configured network (nil for
// a server of an open gateway).
func (c *Config) netLimits(n *NetworkConfig) limits {
	l := limits{rate: *c.Rate, burst: *c.Burst, maxLines: *c.MaxLines, historyDays: *c.HistoryDays}
	if n == nil {
		return l
	}
	if n.Rate != nil {
		l.rate = *n.Rate
	}
	if n.Burst != nil {
		l.burst = *n.Burst
	}
	if n.MaxLines != nil {
		l.maxLines = *n.MaxLines
	}
	if n.HistoryDays != nil {
		l.historyDays = *n.HistoryDays
	}
	return l
}
