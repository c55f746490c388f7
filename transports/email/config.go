package email

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"switchboard/bridge"
	"switchboard/mapping"
)

// Defaults of the [email] section.
const (
	DefaultMaxMessageBytes = 25 << 20
	DefaultQueueLifetime   = 120 * time.Hour
	DefaultSendPerHour     = 100
	DefaultMaxRecipients   = 20
	DefaultListenPerIP     = 20
	DefaultRetryInitial    = time.Minute
	DefaultDefaultSubject  = ""
	DefaultBlockListCache  = 10 * time.Second
)

// Config is the [email] section.
type Config struct {
	bridge.ComponentConfig

	// HostedDomain is the mail domain of gateway-hosted addresses; empty
	// means bring-your-own mailboxes only.
	HostedDomain string `toml:"hosted_domain"`
	// Listen is the SMTP (or LMTP) listener for mail to hosted addresses.
	Listen string `toml:"listen"`
	LMTP   bool   `toml:"lmtp"`
	// Smarthost is host:port of the submission server for hosted
	// addresses' outbound mail.
	Smarthost         string `toml:"smarthost"`
	SmarthostSecurity string `toml:"smarthost_security"` // starttls (default), tls, none
	SmarthostUsername string `toml:"smarthost_username"`
	SmarthostPassword string `toml:"smarthost_password"`
	// SmarthostTLSVerify checks the smarthost's certificate (default true).
	SmarthostTLSVerify *bool `toml:"smarthost_tls_verify"`

	// SpoolDir keeps accepted inbound mail as fsync'd files until the XMPP
	// server has it; empty: the store's durable queue does.
	SpoolDir string `toml:"spool_dir"`

	MaxMessageBytes int64    `toml:"max_message_bytes"`
	QueueLifetime   duration `toml:"queue_lifetime"`
	// RetryInitial is the first retry delay of outbound mail after a 4xx
	// or network error; it doubles up to an hour.
	RetryInitial  duration `toml:"retry_initial"`
	SendPerHour   int      `toml:"send_per_hour"`
	MaxRecipients int      `toml:"max_recipients"`
	ListenPerIP   int      `toml:"listen_per_ip"`
	TrustedRelays []string `toml:"trusted_relays"`

	// AuthPolicy is what happens to mail that fails DMARC (or DKIM and
	// SPF when the sender publishes no DMARC): "mark" (default) delivers
	// it marked as unverified, "reject" refuses it at SMTP time (550).
	AuthPolicy string `toml:"auth_policy"`
	// AuthservID is the authserv-id of the Authentication-Results header
	// that the trusted relays add (e.g. the MTA's host name); only that
	// header is believed, and only on mail from a trusted relay.
	AuthservID string `toml:"authserv_id"`
	// DefaultSubject is the subject of a mail sent from a message that
	// has none and no thread subject to take.
	DefaultSubject string `toml:"default_subject"`
	// FoldQuotes is the default treatment of quoted history below a reply:
	// "fold" (XEP-0393 quote, default), "drop" or "keep"; users may change
	// theirs.
	FoldQuotes string `toml:"fold_quotes"`
	// IMAPRetryMax bounds the reconnect backoff of the IMAP watcher.
	IMAPRetryMax duration `toml:"imap_retry_max"`
	// BlockListCache is how long a user's XEP-0191 block list, read from
	// their XMPP server (XEP-0356 IQ permission), is used before it is
	// read again: how long a new block or unblock takes to apply to mail.
	BlockListCache duration `toml:"block_list_cache"`

	trusted []netip.Prefix
}

// duration is a time.Duration written as "30s" in TOML.
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

func (d duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// SetDefaults fills in what the admin left out; the smarthost password
// comes from SWITCHBOARD_EMAIL_SMARTHOST_PASSWORD when set.
func (c *Config) SetDefaults() {
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.QueueLifetime.Duration == 0 {
		c.QueueLifetime.Duration = DefaultQueueLifetime
	}
	if c.RetryInitial.Duration == 0 {
		c.RetryInitial.Duration = DefaultRetryInitial
	}
	if c.SmarthostSecurity == "" {
		c.SmarthostSecurity = "starttls"
	}
	if c.SmarthostTLSVerify == nil {
		t := true
		c.SmarthostTLSVerify = &t
	}
	if c.MaxRecipients == 0 {
		c.MaxRecipients = DefaultMaxRecipients
	}
	if c.AuthPolicy == "" {
		c.AuthPolicy = "mark"
	}
	if c.FoldQuotes == "" {
		c.FoldQuotes = "fold"
	}
	if c.IMAPRetryMax.Duration == 0 {
		c.IMAPRetryMax.Duration = 5 * time.Minute
	}
	if c.BlockListCache.Duration == 0 {
		c.BlockListCache.Duration = DefaultBlockListCache
	}
	if p := os.Getenv("SWITCHBOARD_EMAIL_SMARTHOST_PASSWORD"); p != "" {
		c.SmarthostPassword = p
	}
}

// Validate returns every problem with the section's own keys.
func (c *Config) Validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.HostedDomain != "" {
		if _, err := mapping.NormalizeMailbox("postmaster@" + c.HostedDomain); err != nil {
			bad("hosted_domain", "%q is not a mail domain", c.HostedDomain)
		}
		if c.Listen == "" {
			bad("listen", "is required with hosted_domain (the SMTP listener that receives the hosted addresses' mail)")
		}
		if c.Smarthost == "" {
			bad("smarthost", "is required with hosted_domain (the server that sends the hosted addresses' mail)")
		}
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			bad("listen", "%q is not host:port", c.Listen)
		}
	}
	if c.Smarthost != "" {
		if _, _, err := net.SplitHostPort(c.Smarthost); err != nil {
			bad("smarthost", "%q is not host:port", c.Smarthost)
		}
	}
	switch c.SmarthostSecurity {
	case "starttls", "tls", "none":
	default:
		bad("smarthost_security", "%q is not one of starttls, tls, none", c.SmarthostSecurity)
	}
	if (c.SmarthostUsername == "") != (c.SmarthostPassword == "") {
		bad("smarthost_username", "smarthost_username and smarthost_password (or SWITCHBOARD_EMAIL_SMARTHOST_PASSWORD) go together")
	}
	if c.SmarthostUsername != "" && c.SmarthostSecurity == "none" {
		bad("smarthost_security", "\"none\" would send the smarthost password in clear; use starttls or tls")
	}
	if c.MaxMessageBytes < 1024 {
		bad("max_message_bytes", "%d is too small (at least 1024)", c.MaxMessageBytes)
	}
	if c.QueueLifetime.Duration < time.Second {
		bad("queue_lifetime", "%s is too short (at least 1s)", c.QueueLifetime.Duration)
	}
	if c.RetryInitial.Duration < 100*time.Millisecond {
		bad("retry_initial", "%s is too short (at least 100ms)", c.RetryInitial.Duration)
	}
	if c.SendPerHour < 0 {
		bad("send_per_hour", "%d is negative (0 means no limit)", c.SendPerHour)
	}
	if c.MaxRecipients < 0 {
		bad("max_recipients", "%d is negative", c.MaxRecipients)
	}
	if c.ListenPerIP < 0 {
		bad("listen_per_ip", "%d is negative (0 means no limit)", c.ListenPerIP)
	}
	c.trusted = nil
	for i, r := range c.TrustedRelays {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			a, err2 := netip.ParseAddr(r)
			if err2 != nil {
				bad(fmt.Sprintf("trusted_relays[%d]", i), "%q is not an IP address or CIDR prefix", r)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		c.trusted = append(c.trusted, p.Masked())
	}
	switch c.AuthPolicy {
	case "mark", "reject":
	default:
		bad("auth_policy", "%q is not one of mark, reject", c.AuthPolicy)
	}
	switch c.FoldQuotes {
	case "fold", "drop", "keep":
	default:
		bad("fold_quotes", "%q is not one of fold, drop, keep", c.FoldQuotes)
	}
	if d := c.BlockListCache.Duration; d < 100*time.Millisecond || d > time.Hour {
		bad("block_list_cache", "%s is out of range (100ms to 1h)", d)
	}
	if strings.ContainsAny(c.DefaultSubject, "\r\n\x00") {
		bad("default_subject", "contains a line break or NUL")
	}
	return errs
}

// trustedAddr reports whether ip is one of the trusted relays.
func (c *Config) trustedAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range c.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
