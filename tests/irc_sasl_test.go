package tests

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"switchboard/tests/testbed"
)

// TestIRCSASL logs gateway users in to IRC services for real: InspIRCd 3
// with Atheme linked (NickServ, SaslServ) through Prosody and the real
// binary. SASL PLAIN with the right and a wrong password, SASL EXTERNAL
// with a client certificate on InspIRCd's TLS port, EXTERNAL configured
// for a network without TLS, and what the XMPP user sees of
// account-notify and extended-join (nothing yet: the gateway tracks
// member accounts but shows them nowhere). Each InspIRCd registration
// takes about 1 s, so each IRC client counts.
func TestIRCSASL(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{insp: true, atheme: true, tlsNetwork: true, users: []string{"dora"}})
	const (
		alicePW = "alice-sasl-pw"
		bobPW   = "bob-right-pw"
		carolPW = "carol-pw"
		davePW  = "dave-pw"
		erinPW  = "erin-pw"
	)
	for acct, pw := range map[string]string{"aliceacct": alicePW, "bobacct": bobPW, "carolacct": carolPW, "daveacct": davePW, "erinacct": erinPW} {
		s.atheme.RegisterAccount(acct, pw)
	}
	certPEM, keyPEM, certFP := testbed.SelfSignedPEM(t, "carol")
	s.atheme.AddCertFP("carolacct", carolPW, certFP)

	// w watches #sasl with the capabilities the gateway asks for, so it
	// sees what the gateway's connections receive.
	w := s.irc(t, "saslw", "account-notify", "extended-join")
	w.Join("#sasl")
	r := room("#sasl")

	// whoisAccount asks WHOIS nick and returns the account of 330 ("" when
	// the nick is not logged in) and the lines of the reply.
	whoisAccount := func(t *testing.T, nick string) (string, []*ircmsg.Message) {
		t.Helper()
		w.Send("WHOIS " + nick)
		var reply []*ircmsg.Message
		for {
			m := w.Expect(t, func(m *ircmsg.Message) bool {
				return len(m.Params) > 1 && strings.EqualFold(m.Params[1], nick) && len(m.Command) == 3 && m.Command[0] >= '2' && m.Command[0] <= '4'
			}, wait)
			reply = append(reply, m)
			if m.Command == "318" || m.Command == "401" {
				break
			}
		}
		for _, m := range reply {
			if m.Command == "330" && len(m.Params) > 2 {
				return m.Params[2], reply
			}
		}
		return "", reply
	}
	configure := func(t *testing.T, c *testbed.XMPPClient, server string, fields map[string][]string) {
		t.Helper()
		_, done := command(t, c, server, "configure", fields)
		if done.Type != "result" || done.Find("{"+nsCommands+"}command").AttrValue("status") != "completed" {
			t.Fatalf("configure %s: %s", server, done.XML)
		}
	}
	saslNotice := func(st testbed.Stanza) bool {
		return st.Name == "message" && st.From == serverJID && strings.Contains(st.Body(), "SASL")
	}

	t.Run("PLAIN logs in", func(t *testing.T) {
		alice := s.user("alice")
		configure(t, alice, serverJID, map[string][]string{
			"sasl_mechanism": {"PLAIN"}, "sasl_username": {"aliceacct"}, "sasl_password": {alicePW},
		})
		mark := s.tap.mark()
		joinRoom(t, alice, r, "alice", "")
		conn := s.tap.wait(t, mark, `^NICK alice$`, wait).conn
		s.tap.wait(t, mark, `^CAP REQ :(.* )?sasl( |$)`, wait)
		lines := s.tap.linesOf(conn, mark)
		iMech := slices.Index(lines, "AUTHENTICATE PLAIN")
		iEnd := slices.Index(lines, "CAP END")
		if iMech < 0 || iEnd < iMech+2 {
			t.Fatalf("want AUTHENTICATE PLAIN, the response, then CAP END; the gateway wrote:\n%s", strings.Join(lines, "\n"))
		}
		resp, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[iMech+1], "AUTHENTICATE "))
		if err != nil || string(resp) != "aliceacct\x00aliceacct\x00"+alicePW {
			t.Errorf("the PLAIN response %q decodes to %q (%v)", lines[iMech+1], resp, err)
		}
		// InspIRCd saw the account before the user joined (extended-join)
		// and WHOIS shows it (330).
		w.ExpectLine(t, `^:alice!\S+ JOIN #sasl aliceacct :`, wait)
		if acct, reply := whoisAccount(t, "alice"); acct != "aliceacct" {
			t.Errorf("WHOIS alice: account %q, want aliceacct: %v", acct, reply)
		}
		alice.ExpectNone(t, saslNotice, 300*time.Millisecond)
	})

	t.Run("PLAIN with a wrong password", func(t *testing.T) {
		bob := s.user("bob")
		configure(t, bob, serverJID, map[string][]string{
			"sasl_mechanism": {"PLAIN"}, "sasl_username": {"bobacct"}, "sasl_password": {"not-" + bobPW},
		})
		mark := s.tap.mark()
		// The connection completes without a login: the join succeeds...
		joinRoom(t, bob, r, "bob", "")
		// ...and the user is told why they are not logged in.
		notice := bob.Expect(t, saslNotice, wait)
		if notice.Type != "chat" {
			t.Errorf("the SASL failure notice is not a chat message: %s", notice.XML)
		}
		for _, want := range []string{"SASL authentication failed", "without logging in", "configure command of " + serverJID} {
			if !strings.Contains(notice.Body(), want) {
				t.Errorf("the SASL failure notice lacks %q: %s", want, notice.XML)
			}
		}
		conn := s.tap.wait(t, mark, `^NICK bob$`, wait).conn
		lines := s.tap.linesOf(conn, mark)
		iMech := slices.Index(lines, "AUTHENTICATE PLAIN")
		iEnd := slices.Index(lines, "CAP END")
		if iMech < 0 || iEnd < iMech+2 {
			t.Errorf("want AUTHENTICATE PLAIN, the response, then CAP END; the gateway wrote:\n%s", strings.Join(lines, "\n"))
		}
		if n := strings.Count(strings.Join(lines, "\n"), "AUTHENTICATE PLAIN"); n != 1 {
			t.Errorf("the gateway tried PLAIN %d times, want once:\n%s", n, strings.Join(lines, "\n"))
		}
		w.ExpectLine(t, `^:bob!\S+ JOIN #sasl \* :`, wait)
		if acct, reply := whoisAccount(t, "bob"); acct != "" {
			t.Errorf("WHOIS bob: logged in as %q with a wrong password: %v", acct, reply)
		}
	})

	t.Run("EXTERNAL with a client certificate", func(t *testing.T) {
		carol := s.user("carol")
		secure := "secure@" + ircDomain
		pemLines := strings.Split(strings.TrimSpace(certPEM+keyPEM), "\n")
		configure(t, carol, secure, map[string][]string{
			"sasl_mechanism": {"EXTERNAL"}, "client_cert": pemLines,
		})
		joinRoom(t, carol, "#sasl%secure@"+ircDomain, "carol", "")
		w.ExpectLine(t, `^:carol!\S+ JOIN #sasl carolacct :`, wait)
		acct, reply := whoisAccount(t, "carol")
		if acct != "carolacct" {
			t.Errorf("WHOIS carol: account %q, want carolacct: %v", acct, reply)
		}
		certShown := false
		for _, m := range reply {
			if m.Command == "276" && strings.Contains(m.Params[len(m.Params)-1], certFP) {
				certShown = true
			}
		}
		if !certShown {
			t.Errorf("WHOIS carol shows no client certificate fingerprint %s (276): %v", certFP, reply)
		}
		carol.ExpectNone(t, func(st testbed.Stanza) bool {
			return st.Name == "message" && st.From == secure && strings.Contains(st.Body(), "SASL")
		}, 300*time.Millisecond)
	})

	t.Run("EXTERNAL without TLS is explained", func(t *testing.T) {
		// The network local is plain TCP: a client certificate cannot be
		// presented, so SASL is not tried, and the user is told.
		dora := s.user("dora")
		configure(t, dora, serverJID, map[string][]string{
			"sasl_mechanism": {"EXTERNAL"}, "client_cert": strings.Split(strings.TrimSpace(certPEM+keyPEM), "\n"),
		})
		mark := s.tap.mark()
		joinRoom(t, dora, r, "dora", "")
		notice := dora.Expect(t, saslNotice, wait)
		if !strings.Contains(notice.Body(), "TLS") || !strings.Contains(notice.Body(), "without logging in") {
			t.Errorf("the notice: %s", notice.XML)
		}
		conn := s.tap.wait(t, mark, `^NICK dora$`, wait).conn
		if lines := s.tap.linesOf(conn, mark); slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "AUTHENTICATE") }) {
			t.Errorf("SASL was tried without TLS:\n%s", strings.Join(lines, "\n"))
		}
		w.ExpectLine(t, `^:dora!\S+ JOIN #sasl \* :`, wait)
	})

	t.Run("account-notify and extended-join", func(t *testing.T) {
		alice := s.userRes(t, "alice", "acct")
		joinRoom(t, alice, r, "alice", "")
		s.tap.wait(t, 0, `^CAP REQ :(.* )?account-notify( .*)? extended-join( |$)`, wait)
		// dave joins logged out, then identifies: the server sends ACCOUNT
		// to the clients that asked for account-notify, as the gateway did.
		dave := s.irc(t, "dave")
		dave.Join("#sasl")
		occupantPresence(t, alice, r, "dave", func(st testbed.Stanza) bool { return st.Type == "" })
		dave.Send("PRIVMSG NickServ :IDENTIFY daveacct " + davePW)
		dave.Expect(t, isCmd("900", ""), wait)
		w.ExpectLine(t, `^:dave!\S+ ACCOUNT :?daveacct$`, wait)
		// The gateway keeps the account (member.account) but shows it
		// nowhere: no presence update, nothing else.
		alice.ExpectNone(t, func(st testbed.Stanza) bool {
			return st.Name == "presence" && st.From == r+"/dave"
		}, time.Second)
		dave.Privmsg("#sasl", "logged in now")
		groupchatFrom(t, alice, r+"/dave", withBody("logged in now"))

		// erin identifies, then joins: extended-join carries the account.
		erin := s.irc(t, "erin")
		erin.Send("PRIVMSG NickServ :IDENTIFY erinacct " + erinPW)
		erin.Expect(t, isCmd("900", ""), wait)
		erin.Join("#sasl")
		w.ExpectLine(t, `^:erin!\S+ JOIN #sasl erinacct :`, wait)
		p := occupantPresence(t, alice, r, "erin", func(st testbed.Stanza) bool { return st.Type == "" })
		if item := mucItem(p); item == nil || item.AttrValue("jid") != contact("erin") || item.AttrValue("role") != "participant" {
			t.Errorf("erin's presence: %s", p.XML)
		}
		if p.Contains("erinacct") {
			t.Errorf("erin's presence shows the account (update the test and the docs): %s", p.XML)
		}
	})
}
