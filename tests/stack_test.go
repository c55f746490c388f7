// Package tests holds the end-to-end tests: the real switchboard binary
// against real Prosody and real ngircd/InspIRCd on loopback, driven by real
// XMPP c2s clients (mellium) and raw IRC clients.
package tests

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/tests/testbed"
)

const (
	ircDomain = "irc.localhost"
	ircSecret = "e2e-secret"
	password  = "pass-word"
	wait      = 10 * time.Second
)

// stack is one Prosody, one ngircd and one gateway wired together, with
// users alice, bob and admin registered on Prosody.
type stack struct {
	t       *testing.T
	prosody *testbed.Prosody
	ircd    *testbed.Ngircd
	gw      *testbed.Gateway
}

type stackOptions struct {
	extra map[string]any // merged into the gateway config
}

func newStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	p := testbed.StartProsody(t, testbed.ProsodyOptions{
		Components: map[string]string{ircDomain: ircSecret},
	})
	for _, u := range []string{"alice", "bob", "admin", "carol"} {
		p.Register(u, password)
	}
	ircd := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	bin := testbed.BuildGateway(t)
	cfg := testbed.WriteGatewayConfig(t.TempDir(), testbed.GatewayConfig{
		XMPPServer: p.ComponentAddr(),
		Allow:      []string{"localhost"},
		Admins:     []string{"admin@localhost"},
		IRC: &testbed.GatewayIRC{
			Domain:   ircDomain,
			Secret:   ircSecret,
			Networks: []testbed.GatewayIRCNetwork{{Name: "local", Address: ircd.Addr()}},
		},
		Extra: opts.extra,
	})
	gw := testbed.StartGateway(t, bin, cfg)
	return &stack{t: t, prosody: p, ircd: ircd, gw: gw}
}

// user logs a Prosody user in with a real c2s client.
func (s *stack) user(name string) *testbed.XMPPClient {
	s.t.Helper()
	return testbed.DialXMPP(s.t, s.prosody.C2SAddr(), jid.MustParse(name+"@localhost/e2e"), password)
}

// irc connects a raw IRC client to the stack's ngircd.
func (s *stack) irc(nick string) *testbed.IRCClient {
	s.t.Helper()
	return testbed.DialIRC(s.t, s.ircd.Addr(), nick)
}

func room(ch string) string { return ch + "%local@" + ircDomain }

// join sends a MUC join and waits for the self-presence (status 110).
func join(t *testing.T, c *testbed.XMPPClient, roomJID, nick string) testbed.Stanza {
	t.Helper()
	c.SendRaw(fmt.Sprintf(`<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>`, roomJID, nick))
	return c.Expect(t, func(st testbed.Stanza) bool {
		return st.Name == "presence" && st.Type == "" && strings.HasPrefix(st.From, roomJID+"/") && hasStatus(st, "110")
	}, wait)
}

func hasStatus(st testbed.Stanza, code string) bool {
	for _, s := range st.Root.FindAll("{http://jabber.org/protocol/muc#user}x/status") {
		if s.AttrValue("code") == code {
			return true
		}
	}
	return false
}

func isPrivmsg(target, text string) func(*ircmsg.Message) bool {
	return func(m *ircmsg.Message) bool {
		return m.Command == "PRIVMSG" && len(m.Params) == 2 && strings.EqualFold(m.Params[0], target) && (text == "" || m.Params[1] == text)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
