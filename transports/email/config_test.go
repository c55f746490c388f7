package email

import (
	"net/netip"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{HostedDomain: "mail.example.org", Listen: "127.0.0.1:2525", Smarthost: "smtp.example.org:587"}
	ok.SetDefaults()
	if errs := ok.Validate(); len(errs) > 0 {
		t.Fatalf("a valid section: %v", errs)
	}
	if ok.SmarthostSecurity != "starttls" || !*ok.SmarthostTLSVerify || ok.MaxMessageBytes != DefaultMaxMessageBytes {
		t.Errorf("defaults: %+v", ok)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Listen = "" }, "listen:"},
		{func(c *Config) { c.Smarthost = "nohostport" }, "smarthost:"},
		{func(c *Config) { c.SmarthostSecurity = "ssl" }, "smarthost_security:"},
		{func(c *Config) { c.SmarthostUsername = "u" }, "smarthost_username:"},
		{func(c *Config) { c.SmarthostSecurity = "none"; c.SmarthostUsername = "u"; c.SmarthostPassword = "p" }, "in clear"},
		{func(c *Config) { c.TrustedRelays = []string{"not-an-ip"} }, "trusted_relays[0]:"},
		{func(c *Config) { c.AuthPolicy = "drop" }, "auth_policy:"},
		{func(c *Config) { c.SendPerHour = -1 }, "send_per_hour:"},
		{func(c *Config) { c.DefaultSubject = "a\nb" }, "default_subject:"},
		{func(c *Config) { c.HostedDomain = "bad domain" }, "hosted_domain:"},
	} {
		c := ok
		tc.mod(&c)
		var msgs []string
		for _, e := range c.Validate() {
			msgs = append(msgs, e.Error())
		}
		if !strings.Contains(strings.Join(msgs, "\n"), tc.want) {
			t.Errorf("want an error with %q, got %q", tc.want, msgs)
		}
	}
}

func TestTrustedRelays(t *testing.T) {
	c := Config{TrustedRelays: []string{"127.0.0.0/8", "192.0.2.7"}}
	c.SetDefaults()
	c.Validate()
	for ip, want := range map[string]bool{"127.0.0.1": true, "::ffff:127.0.0.9": true, "192.0.2.7": true, "192.0.2.8": false, "::1": false} {
		if got := c.trustedAddr(mustAddr(t, ip)); got != want {
			t.Errorf("trusted(%s) = %v, want %v", ip, got, want)
		}
	}
}

func TestVerdictFromAR(t *testing.T) {
	for hdr, want := range map[string]string{
		"Authentication-Results: mx.localhost; dmarc=fail header.from=bank.example\r\n":                    "fail",
		"Authentication-Results: mx.localhost; dmarc=pass header.from=bank.example\r\n":                    "",
		"Authentication-Results: other.host; dmarc=fail header.from=bank.example\r\n":                      "",
		"Authentication-Results: mx.localhost;\r\n dkim=fail header.d=x;\r\n spf=fail smtp.mailfrom=x\r\n": "fail",
		"Authentication-Results: mx.localhost; dkim=fail header.d=x; spf=pass smtp.mailfrom=x\r\n":         "",
	} {
		if got := verdictFromAR([]byte(hdr), "mx.localhost").result; got != want {
			t.Errorf("%q: verdict %q, want %q", hdr, got, want)
		}
	}
}

func TestListPostAddress(t *testing.T) {
	for in, want := range map[string]string{
		"<mailto:list@example.org>":              "list@example.org",
		"list@example.org":                       "list@example.org",
		"<mailto:list@example.org?subject=help>": "list@example.org",
		"NO (posting not allowed)":               "",
		"<mailto:bad address@x>":                 "",
	} {
		if got := listPostAddress(in); got != want {
			t.Errorf("listPostAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDeriveIDStable(t *testing.T) {
	a, b := deriveID("mail-", "u\x00<m1@x>"), deriveID("mail-", "u\x00<m1@x>")
	if a != b || a == deriveID("mail-", "v\x00<m1@x>") || !strings.HasPrefix(a, "mail-") {
		t.Errorf("deriveID: %q %q", a, b)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
