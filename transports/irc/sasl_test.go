package irc

import (
	"strings"
	"testing"

	"switchboard/bridge"
	"switchboard/store"
)

// saslNet is a network in registration whose user configured SASL with
// fields and secrets (keys without the "net.local." prefix).
func saslNet(t *testing.T, tls bool, fields, secrets map[string]string) (*network, *fakeUser) {
	t.Helper()
	_, n, u := newTestNetwork(t, nil)
	if tls {
		n.info = &netInfo{name: "local", tls: true, limits: n.info.limits}
	}
	acct := &store.Account{Fields: map[string]string{}, Secrets: map[string]string{}}
	for k, v := range fields {
		acct.Fields["net.local."+k] = v
	}
	for k, v := range secrets {
		acct.Secrets["net.local."+k] = v
	}
	u.acct = acct
	n.state, n.nick, n.capEnded = stRegistering, "", false
	return n, u
}

// TestSASLNotTriedTellsUser: a configured SASL login that the gateway
// cannot try is explained to the user (once), instead of the connection
// silently going on without a login; negotiation still ends.
func TestSASLNotTriedTellsUser(t *testing.T) {
	plain := map[string]string{"sasl_mechanism": "PLAIN"}
	external := map[string]string{"sasl_mechanism": "EXTERNAL"}
	pw := map[string]string{"sasl_password": "pw"}
	cert := map[string]string{"client_cert": "PEM"}
	for _, tc := range []struct {
		name            string
		tls             bool
		fields, secrets map[string]string
		lines           []string
		want            string // in the notice; "" for none
	}{
		{"not offered", false, plain, pw, []string{":irc.test CAP * LS :multi-prefix", ":irc.test CAP * ACK :multi-prefix"}, "does not offer SASL"},
		{"mechanism not offered", true, external, cert, []string{":irc.test CAP * LS :sasl=PLAIN"}, "offers SASL with PLAIN only"},
		{"no password", false, plain, nil, []string{":irc.test CAP * LS :sasl"}, "no SASL password"},
		{"no certificate", true, external, nil, []string{":irc.test CAP * LS :sasl"}, "no client certificate"},
		{"EXTERNAL without TLS", false, external, cert, []string{":irc.test CAP * LS :sasl"}, "TLS"},
		{"refused", false, plain, pw, []string{":irc.test CAP * LS :sasl", ":irc.test CAP * NAK :sasl"}, "refused"},
		{"no CAP at all", false, plain, pw, []string{":irc.test 001 alice :Welcome"}, "capability negotiation"},
		{"not configured", false, nil, nil, []string{":irc.test CAP * LS :sasl"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, u := saslNet(t, tc.tls, tc.fields, tc.secrets)
			feed(t, n, tc.lines...)
			got := sent(n)
			if strings.Contains(strings.Join(got, "|"), "AUTHENTICATE") {
				t.Errorf("SASL was tried: %q", got)
			}
			if !n.capEnded {
				t.Errorf("negotiation did not end: sent %q", got)
			}
			msgs := take[bridge.Message](u)
			if tc.want == "" {
				if len(msgs) != 0 {
					t.Fatalf("messages = %+v", msgs)
				}
				return
			}
			if len(msgs) != 1 || !strings.Contains(msgs[0].Body, tc.want) || !strings.Contains(msgs[0].Body, "configure command of local@irc.localhost") ||
				!msgs[0].Notice || msgs[0].From.Network != "local" {
				t.Fatalf("want one notice with %q, got %+v", tc.want, msgs)
			}
			// 001 after CAP END tells nothing more.
			feed(t, n, ":irc.test 001 alice :Welcome")
			if msgs := take[bridge.Message](u); len(msgs) != 0 {
				t.Fatalf("a second notice: %+v", msgs)
			}
		})
	}
}

// TestSASLFailureSentence: a failed login says that the connection goes
// on without it and where the settings are.
func TestSASLFailureSentence(t *testing.T) {
	n, u := saslNet(t, false, map[string]string{"sasl_mechanism": "PLAIN"}, map[string]string{"sasl_password": "x"})
	feed(t, n, ":irc.test CAP * LS :sasl", ":irc.test CAP * ACK :sasl", "AUTHENTICATE +", ":irc.test 904 * :SASL authentication failed")
	msgs := take[bridge.Message](u)
	want := "Logging in to local with SASL failed: SASL authentication failed. Connecting without logging in; the SASL settings are in the configure command of local@irc.localhost."
	if len(msgs) != 1 || msgs[0].Body != want {
		t.Fatalf("messages = %+v, want one with %q", msgs, want)
	}
	if got := sent(n); got[len(got)-1] != "CAP END" {
		t.Fatalf("sent %q", got)
	}
}
