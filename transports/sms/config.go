package sms

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
)

// Defaults of the [sms] section.
const (
	DefaultAPIURL        = "https://api.twilio.com"
	DefaultDailyMessages = 200
	DefaultDailySegments = 600
	DefaultMaxSegments   = 10
	// DefaultMaxMediaBytes is Twilio's limit on the media of one MMS (5 MB).
	DefaultMaxMediaBytes = 5 << 20
	// MaxMedia is Twilio's limit on media per MMS.
	MaxMedia           = 10
	DefaultHistoryDays = 30
	// EnvAuthToken overrides auth_token and auth_token_file.
	EnvAuthToken = "SWITCHBOARD_SMS_AUTH_TOKEN"
)

// Config is the [sms] section.
type Config struct {
	bridge.ComponentConfig
	// AccountSID and AuthToken are the Twilio credentials (Basic auth of
	// the API, key of the webhook signatures). AuthTokenFile holds the
	// token instead; SWITCHBOARD_SMS_AUTH_TOKEN overrides both.
	AccountSID    string `toml:"account_sid"`
	AuthToken     string `toml:"auth_token"`
	AuthTokenFile string `toml:"auth_token_file"`
	// APIURL is the base URL of the Messages API (default
	// https://api.twilio.com; tests and Twilio-compatible providers).
	APIURL string `toml:"api_url"`
	// DefaultRegion reads national numbers typed by users ("US").
	DefaultRegion string `toml:"default_region"`
	// MessagingServiceSID, when set, sends through a Messaging Service
	// instead of From.
	MessagingServiceSID string `toml:"messaging_service_sid"`
	// Per-user quotas (0: no limit) and the longest text.
	DailyMessages *int `toml:"daily_messages"`
	DailySegments *int `toml:"daily_segments"`
	MaxSegments   *int `toml:"max_segments"`
	// GlobalDailySegments bounds the segments of every user together per
	// UTC day (0: no limit): the bill's ceiling.
	GlobalDailySegments int `toml:"global_daily_segments"`
	// Pool are numbers users may pick at registration (one each).
	Pool []string `toml:"pool"`
	// MaxMediaBytes bounds one inbound medium and the media of one
	// outbound MMS (default 5 MB, Twilio's limit).
	MaxMediaBytes int64 `toml:"max_media_bytes"`
	// HistoryDays is how long conversations are archived (XEP-0313 of
	// team inbox rooms, tapback matching); 0 keeps none.
	HistoryDays *int `toml:"history_days"`
	// QueueLease is how long one attempt holds a queued text (outbound
	// send or inbound delivery) before another attempt may take it: after
	// a crash, the texts in flight are taken up again this long after the
	// crashed attempt began (default "2m"; it must be longer than an API
	// call can take).
	QueueLease string `toml:"queue_lease"`
	// Numbers are the Twilio numbers and who owns them.
	Numbers []NumberConfig `toml:"number"`

	tokenErr error
	lease    time.Duration
}

// NumberConfig is one [[sms.number]].
type NumberConfig struct {
	Number string `toml:"number"`
	// Owner is the one user of the number; Owners make it a team inbox,
	// which needs a Name (the room JIDs' "%name").
	Owner  string   `toml:"owner"`
	Owners []string `toml:"owners"`
	Name   string   `toml:"name"`
}

// SetDefaults fills in what the admin left out and resolves the auth
// token (environment, then file).
func (c *Config) SetDefaults() {
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	c.APIURL = strings.TrimRight(c.APIURL, "/")
	if c.DailyMessages == nil {
		c.DailyMessages = ptr(DefaultDailyMessages)
	}
	if c.DailySegments == nil {
		c.DailySegments = ptr(DefaultDailySegments)
	}
	if c.MaxSegments == nil {
		c.MaxSegments = ptr(DefaultMaxSegments)
	}
	if c.MaxMediaBytes == 0 {
		c.MaxMediaBytes = DefaultMaxMediaBytes
	}
	if c.HistoryDays == nil {
		c.HistoryDays = ptr(DefaultHistoryDays)
	}
	if c.QueueLease == "" {
		c.QueueLease = "2m"
	}
	if v := os.Getenv(EnvAuthToken); v != "" {
		c.AuthToken, c.AuthTokenFile = v, ""
	} else if c.AuthTokenFile != "" && c.AuthToken == "" {
		b, err := os.ReadFile(c.AuthTokenFile)
		if err != nil {
			c.tokenErr = fmt.Errorf("auth_token_file: cannot be read: %w", err)
		} else if c.AuthToken = strings.TrimSpace(string(b)); c.AuthToken == "" {
			c.tokenErr = fmt.Errorf("auth_token_file: %s is empty", c.AuthTokenFile)
		}
	}
	for i := range c.Numbers {
		n := &c.Numbers[i]
		n.Name = strings.ToLower(strings.TrimSpace(n.Name))
	}
}

func ptr[T any](v T) *T { return &v }

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

// Validate returns every problem with the section's own keys.
func (c *Config) Validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if !strings.HasPrefix(c.AccountSID, "AC") || !alnum(c.AccountSID) {
		bad("account_sid", "%q is not a Twilio account SID (AC followed by 32 letters and digits, from the Twilio console)", c.AccountSID)
	}
	switch {
	case c.tokenErr != nil:
		errs = append(errs, c.tokenErr)
	case c.AuthToken == "" && c.AuthTokenFile != "":
		bad("auth_token_file", "%s gave no token", c.AuthTokenFile)
	case c.AuthToken == "":
		bad("auth_token", "is required (or auth_token_file, or %s): it signs the webhooks and authenticates the API calls", EnvAuthToken)
	case !alnum(c.AuthToken):
		bad("auth_token", "must be letters and digits only (as Twilio's are; twilio-go refuses others)")
	}
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("api_url", "%q is not an http:// or https:// URL like %q", c.APIURL, DefaultAPIURL)
	}
	if _, err := mapping.NewSMSCodec("sms.invalid", c.DefaultRegion); err != nil {
		bad("default_region", "%q is not a two-letter country code phone numbers are known for (US, GB, DE…)", c.DefaultRegion)
	}
	if c.MessagingServiceSID != "" && (!strings.HasPrefix(c.MessagingServiceSID, "MG") || !alnum(c.MessagingServiceSID)) {
		bad("messaging_service_sid", "%q is not a Messaging Service SID (MG followed by 32 letters and digits)", c.MessagingServiceSID)
	}
	for _, q := range []struct {
		key string
		v   *int
	}{{"daily_messages", c.DailyMessages}, {"daily_segments", c.DailySegments}, {"max_segments", c.MaxSegments}, {"history_days", c.HistoryDays}} {
		if q.v != nil && *q.v < 0 {
			bad(q.key, "must be 0 (no limit) or more, not %d", *q.v)
		}
	}
	if d, err := time.ParseDuration(c.QueueLease); err != nil || d < time.Second {
		bad("queue_lease", "%q is not a duration of a second or more, like \"2m\"", c.QueueLease)
	} else {
		c.lease = d
	}
	if c.GlobalDailySegments < 0 {
		bad("global_daily_segments", "must be 0 (no limit) or more, not %d", c.GlobalDailySegments)
	}
	if c.MaxMediaBytes < 0 {
		bad("max_media_bytes", "must be more than 0")
	}
	seen := map[string]string{}
	names := map[string]bool{}
	for i, n := range c.Numbers {
		key := fmt.Sprintf("number[%d]", i)
		if err := mapping.ValidE164(n.Number); err != nil {
			bad(key+".number", "%v", err)
		} else if prev, dup := seen[n.Number]; dup {
			bad(key+".number", "%s is already configured in %s", n.Number, prev)
		} else {
			seen[n.Number] = key
		}
		switch {
		case n.Owner != "" && len(n.Owners) > 0:
			bad(key, "set owner (one user) or owners (a team inbox), not both")
		case n.Owner == "" && len(n.Owners) == 0:
			bad(key, "%s has no owner: set owner = \"user@example.org\", or owners and name for a team inbox (or leave it out and put it in pool)", n.Number)
		}
		for _, o := range append([]string{n.Owner}, n.Owners...) {
			if o == "" {
				continue
			}
			j, err := jid.Parse(o)
			if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
				bad(key+".owner", "%q is not a bare JID like alice@example.org", o)
			}
		}
		if len(n.Owners) > 0 || n.Name != "" {
			if err := mapping.ValidInboxName(n.Name); err != nil {
				bad(key+".name", "%v", err)
			} else if names[n.Name] {
				bad(key+".name", "another team inbox is called %q", n.Name)
			}
			names[n.Name] = true
		}
	}
	for i, p := range c.Pool {
		key := fmt.Sprintf("pool[%d]", i)
		if err := mapping.ValidE164(p); err != nil {
			bad(key, "%v", err)
		} else if prev, dup := seen[p]; dup {
			bad(key, "%s is already configured in %s", p, prev)
		} else {
			seen[p] = key
		}
	}
	return errs
}
