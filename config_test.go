package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/transports/irc"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "switchboard.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ircSection is the [irc] section of c, or nil.
func ircSection(c *Config) *irc.Config {
	if c == nil {
		return nil
	}
	ic, _ := c.Transport("irc").(*irc.Config)
	return ic
}

func TestExampleConfigIsValid(t *testing.T) {
	c, err := loadConfig("configs/switchboard.toml")
	if err != nil {
		t.Fatalf("configs/switchboard.toml: %v", err)
	}
	if ic := ircSection(c); ic == nil || ic.Domain != "irc.example.org" || c.XMPP.Server != "127.0.0.1:5347" {
		t.Fatalf("decoded %+v", c)
	}
}

func TestBadConfigNamesEveryKey(t *testing.T) {
	_, err := loadConfig(writeConfig(t, `
[log]
level = "loud"
[xmpp]
server = "nohost"
typo = 1
[store]
driver = "mysql"
[http]
listen = "8480"
[access]
allow = ["a@b/c"]
admins = ["nope"]
[irc]
domain = "irc.localhost"
secret = "s"
[[irc.network]]
name = "local"
address = "bad"
`))
	if err == nil {
		t.Fatal("a config full of mistakes was accepted")
	}
	for _, key := range []string{"log.level", "xmpp.server", "xmpp.typo", "store.driver", "http.listen", "access.allow[0]", "access.admins[0]", "irc.network[0].address"} {
		if !strings.Contains(err.Error(), key+":") {
			t.Errorf("no problem reported for %s in:\n%v", key, err)
		}
	}
}

func TestConfigSyntaxErrorHasPosition(t *testing.T) {
	_, err := loadConfig(writeConfig(t, "[xmpp\nserver = 1\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("got %v, want a position", err)
	}
	_, err = loadConfig(filepath.Join(t.TempDir(), "missing.toml"))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestSecretsFromEnvironmentAndFile(t *testing.T) {
	base := `
[access]
allow = ["localhost"]
[irc]
domain = "irc.localhost"
%s
[[irc.network]]
name = "local"
address = "127.0.0.1:6667"
`
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(writeConfig(t, strings.Replace(base, "%s", `secret_file = "`+secretFile+`"`, 1)))
	if err != nil || ircSection(c).Secret != "from-file" {
		t.Fatalf("secret_file: %v %q", err, ircSection(c).Secret)
	}
	t.Setenv(envSecret("irc"), "from-env")
	t.Setenv(envStoreDSN, "/tmp/other.db")
	c, err = loadConfig(writeConfig(t, strings.Replace(base, "%s", `secret_file = "`+secretFile+`"`, 1)))
	if err != nil || ircSection(c).Secret != "from-env" || c.Store.DSN != "/tmp/other.db" {
		t.Fatalf("environment: %v %q %q", err, ircSection(c).Secret, c.Store.DSN)
	}
	t.Setenv(envSecret("irc"), "")
	_, err = loadConfig(writeConfig(t, strings.Replace(base, "%s", "", 1)))
	if err == nil || !strings.Contains(err.Error(), "irc.secret") {
		t.Fatalf("no secret at all: %v", err)
	}
}

func TestAccessPolicy(t *testing.T) {
	p := newAccessPolicy(AccessConfig{Allow: []string{"example.org", "guest@other.org"}, Admins: []string{"boss@elsewhere.net"}})
	cases := []struct {
		jid            string
		allowed, admin bool
	}{
		{"alice@example.org/phone", true, false},
		{"guest@other.org", true, false},
		{"stranger@other.org", false, false},
		{"boss@elsewhere.net/pc", true, true},
		{"example.org", false, false}, // a server is not a user
		{"alice@sub.example.org", false, false},
	}
	for _, c := range cases {
		j := jid.MustParse(c.jid)
		if got := p.Allowed(j); got != c.allowed {
			t.Errorf("Allowed(%s) = %v", c.jid, got)
		}
		if got := p.IsAdmin(j); got != c.admin {
			t.Errorf("IsAdmin(%s) = %v", c.jid, got)
		}
	}
}

// fakeConfig is a transport section with one key of its own, for the
// tests of the generic config loop.
type fakeConfig struct {
	bridge.ComponentConfig
	Token string `toml:"token"`
}

func (c *fakeConfig) SetDefaults() {}
func (c *fakeConfig) Validate() []error {
	if c.Token == "" {
		return []error{errors.New("token: is missing")}
	}
	return nil
}

var fakePlugin = bridge.Plugin{Name: "fake", NewConfig: func() bridge.TransportConfig { return new(fakeConfig) }}

func TestTransportSectionsAreGeneric(t *testing.T) {
	kinds := []bridge.Plugin{irc.Plugin, fakePlugin}
	c, err := loadConfigWith(writeConfig(t, `
[access]
allow = ["localhost"]
[http]
listen = "127.0.0.1:8480"
public_url = "https://gw.example.org/"
[fake]
domain = "fake.localhost"
secret = "s"
token = "t"
`), kinds)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Transports) != 1 || c.Transport("fake").(*fakeConfig).Token != "t" || c.Transport("irc") != nil {
		t.Fatalf("sections %+v", c.Transports)
	}
	if c.publicURL() != "https://gw.example.org" {
		t.Fatalf("public url %q", c.publicURL())
	}
	t.Setenv(envSecret("fake"), "from-env")
	c, err = loadConfigWith(writeConfig(t, `
[access]
allow = ["localhost"]
[fake]
domain = "fake.localhost"
token = "t"
`), kinds)
	if err != nil || c.Transport("fake").Component().Secret != "from-env" {
		t.Fatalf("secret from SWITCHBOARD_FAKE_SECRET: %v", err)
	}
	t.Setenv(envSecret("fake"), "")

	// Every problem of every section, with its key.
	_, err = loadConfigWith(writeConfig(t, `
[access]
allow = ["localhost"]
[http]
public_url = "ftp://x"
[fake]
domain = "irc.localhost"
typo = 1
[irc]
domain = "irc.localhost"
secret = "s"
open = true
[smtp]
x = 1
`), kinds)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"fake.token: is missing", "fake.typo: unknown key", "fake.secret: is missing", "fake.domain:", "the domain of [irc] too", "http.public_url:", "smtp: unknown section"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no %q in:\n%v", want, err)
		}
	}
	_, err = loadConfigWith(writeConfig(t, "[access]\nallow = [\"localhost\"]\n"), kinds)
	if err == nil || !strings.Contains(err.Error(), "no transport is enabled") {
		t.Fatalf("no transport: %v", err)
	}
}

// TestComponentKeysChecked: main checks every transport's domain and
// secret (the IRC section's own Validate no longer does).
func TestComponentKeysChecked(t *testing.T) {
	_, err := loadConfig(writeConfig(t, `
[access]
allow = ["localhost"]
[irc]
open = true
`))
	for _, want := range []string{"irc.domain: is missing", "irc.secret: is missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no %q in %v", want, err)
		}
	}
}
