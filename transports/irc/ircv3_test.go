package irc

import (
	"context"
	"encoding/base64"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/store"
	"switchboard/tests/testbed"
)

// TestIRCv3InspIRCd checks the IRCv3 features against InspIRCd 3:
// echo-message with labeled-response, msgid, server-time, multi-prefix,
// away-notify and +draft/reply.
func TestIRCv3InspIRCd(t *testing.T) {
	insp := testbed.StartInspIRCd(t, testbed.InspOptions{})
	h := newHarness(t, testConfig(insp.Addr()))
	bob := testbed.DialIRCOpts(t, insp.Addr(), testbed.IRCOptions{Nick: "bob", Caps: []string{"message-tags", "echo-message"}})
	bob.Join("#v3")
	bob.Send("MODE #v3 +v bob")
	bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "MODE" }, wait)

	alice := jid.MustParse("alice@localhost/pc")
	rj := h.join(alice, "#v3%local@irc.localhost/alice")
	if len(rj.Occupants) != 1 || rj.Occupants[0].Nick != "bob" || rj.Occupants[0].Affiliation != "admin" {
		t.Fatalf("occupants = %+v (multi-prefix @+bob)", rj.Occupants)
	}
	n := h.session(t, alice)
	caps := make(chan map[string]bool, 1)
	h.gw.ExecuteCommand(context.Background(), "irc", bridge.Command{User: true, Run: func(context.Context, *bridge.CommandRequest) (*bridge.CommandResponse, error) {
		caps <- maps.Clone(n.caps)
		return nil, nil
	}}, &bridge.CommandRequest{From: alice}, func(*bridge.CommandResponse, error) {})
	enabled := <-caps
	for _, c := range []string{"echo-message", "labeled-response", "server-time", "message-tags", "multi-prefix", "away-notify"} {
		if !enabled[c] {
			t.Errorf("capability %s not enabled (have %v)", c, enabled)
		}
	}

	// Incoming: msgid and server-time.
	bob.Privmsg("#v3", "tagged")
	m := expectEv(h, func(m bridge.Message) bool { return m.Body == "tagged" }, wait)
	if m.StanzaID == "" || m.Time.IsZero() {
		t.Fatalf("message = %+v (want stanza-id from msgid and a time)", m)
	}
	msgid := msgidOfStanzaID(t, m.StanzaID)

	// Outgoing: reflected after the echo, with the echo's msgid, and
	// carrying +draft/reply.
	h.dispatch(alice, bridge.SendMessage{From: alice, To: rj.Room, Type: bridge.Groupchat, ID: "e1", OriginID: "o1", Body: "answer",
		Reply: &bridge.Reply{ID: m.StanzaID}})
	got := bob.Expect(t, isPrivmsg("alice", "#v3", "answer"), wait)
	if _, reply := got.GetTag("+draft/reply"); reply != msgid {
		t.Fatalf("+draft/reply = %q, want %q", reply, msgid)
	}
	refl := expectEv(h, func(m bridge.Message) bool { return m.ID == "e1" }, wait)
	if refl.StanzaID == "" || refl.OriginID != "o1" || refl.Time.IsZero() {
		t.Fatalf("reflection = %+v", refl)
	}
	bob.Send("@+draft/reply=" + msgidOfStanzaID(t, refl.StanzaID) + " PRIVMSG #v3 :thanks")
	if m := expectEv(h, func(m bridge.Message) bool { return m.Body == "thanks" }, wait); m.Reply == nil || m.Reply.ID != refl.StanzaID {
		t.Fatalf("reply = %+v", m.Reply)
	}

	// A refused message: its error comes back through its label.
	bob.Send("MODE #v3 +m")
	bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "MODE" && m.Params[1] == "+m" }, wait)
	h.dispatch(alice, bridge.SendMessage{From: alice, To: rj.Room, Type: bridge.Groupchat, ID: "muted", Body: "can anyone hear me"})
	e := expectEv(h, func(e bridge.DeliveryError) bool { return e.ID == "muted" }, wait)
	if e.Err.Condition != bridge.Forbidden {
		t.Fatalf("error = %+v", e.Err)
	}
	expectNoEv(h, func(m bridge.Message) bool { return m.ID == "muted" }, 300*time.Millisecond)

	// away-notify.
	bob.Send("AWAY :lunch")
	o := expectEv(h, func(o bridge.OccupantChanged) bool { return o.Occupant.Nick == "bob" && o.Occupant.Show == "away" }, wait)
	if o.Occupant.Status != "lunch" {
		t.Fatalf("away = %+v", o)
	}
	// Half-op (%) maps to moderator/member.
	bob.Send("MODE #v3 +h alice")
	if o := expectEv(h, func(o bridge.OccupantChanged) bool { return o.Self && o.Occupant.Role == "moderator" }, wait); o.Occupant.Affiliation != "member" {
		t.Fatalf("half-op = %+v", o)
	}
}

// session returns the first network of a user's running session (for
// white-box checks), read on the user's goroutine.
func (h *harness) session(t *testing.T, from jid.JID) *network {
	t.Helper()
	done := make(chan *network, 1)
	cmd := bridge.Command{Node: "test", User: true, Run: func(_ context.Context, req *bridge.CommandRequest) (*bridge.CommandResponse, error) {
		if s, ok := req.Session.(*session); ok {
			for _, n := range s.nets {
				done <- n
				return nil, nil
			}
		}
		done <- nil
		return nil, nil
	}}
	h.gw.ExecuteCommand(context.Background(), "irc", cmd, &bridge.CommandRequest{From: from}, func(*bridge.CommandResponse, error) {})
	n := <-done
	if n == nil {
		t.Fatal("no network")
	}
	return n
}

// TestSASLPlain runs CAP negotiation and SASL PLAIN against a scripted
// server.
func TestSASLPlain(t *testing.T) {
	_, n, u := newTestNetwork(t, nil)
	u.acct = &store.Account{Fields: map[string]string{"net.local.sasl_mechanism": "PLAIN", "net.local.sasl_username": "acct"},
		Secrets: map[string]string{"net.local.sasl_password": "pa ss"}}
	n.state, n.nick, n.capEnded = stRegistering, "", false
	feed(t, n, ":irc.test CAP * LS * :multi-prefix sasl=PLAIN,EXTERNAL", ":irc.test CAP * LS :echo-message server-time unknown-cap")
	if got := sent(n); len(got) != 1 || got[0] != "CAP REQ :server-time echo-message multi-prefix sasl" {
		t.Fatalf("sent %q", got)
	}
	feed(t, n, ":irc.test CAP * ACK :server-time echo-message multi-prefix sasl")
	if got := sent(n); len(got) != 1 || got[0] != "AUTHENTICATE PLAIN" {
		t.Fatalf("sent %q", got)
	}
	feed(t, n, "AUTHENTICATE +")
	want := "AUTHENTICATE " + base64.StdEncoding.EncodeToString([]byte("acct\x00acct\x00pa ss"))
	if got := sent(n); len(got) != 1 || got[0] != want {
		t.Fatalf("sent %q, want %q", got, want)
	}
	feed(t, n, ":irc.test 903 * :SASL authentication successful")
	if got := sent(n); len(got) != 1 || got[0] != "CAP END" {
		t.Fatalf("sent %q", got)
	}
	if !n.caps["echo-message"] || !n.caps["sasl"] {
		t.Fatalf("caps = %v", n.caps)
	}
}

// TestSASLFailureTellsUser continues without login and says why.
func TestSASLFailureTellsUser(t *testing.T) {
	_, n, u := newTestNetwork(t, nil)
	u.acct = &store.Account{Fields: map[string]string{"net.local.sasl_mechanism": "PLAIN"}, Secrets: map[string]string{"net.local.sasl_password": "x"}}
	n.state, n.nick, n.capEnded = stRegistering, "", false
	feed(t, n, ":irc.test CAP * LS :sasl", ":irc.test CAP * ACK :sasl", "AUTHENTICATE +", ":irc.test 904 * :SASL authentication failed")
	got := sent(n)
	if got[len(got)-1] != "CAP END" {
		t.Fatalf("sent %q", got)
	}
	if msgs := take[bridge.Message](u); len(msgs) != 1 || !strings.Contains(msgs[0].Body, "SASL") {
		t.Fatalf("messages = %+v", msgs)
	}
}
