package irc

import (
	"context"
	"strings"
	"switchboard/bridge"
	"switchboard/tests/testbed"
	"testing"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"
)

// TestSettingsWebIRCCharset configures a network through the ad-hoc
// command (nick, after-connect commands), connects through WEBIRC, and
// decodes a latin-1 line.
func TestSettingsWebIRCCharset(t *testing.T) {
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true, ExtraConfig: "[Options]\n\tWebircPassword = webpass\n"})
	cfg := testConfig(ng.Addr())
	cfg.Networks[0].WebIRCPassword = "webpass"
	h := newHarness(t, cfg)
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Join("#set")
	alice := jid.MustParse("alice@localhost/pc")
	server := h.addr("local@irc.localhost")

	run := func(step int, values bridge.FormValues) (*bridge.CommandResponse, error) {
		cmd, err := h.gw.LookupCommand("irc", alice, server, NodeConfigure)
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			r   *bridge.CommandResponse
			err error
		}
		ch := make(chan result, 1)
		h.gw.ExecuteCommand(context.Background(), "irc", cmd, &bridge.CommandRequest{From: alice, To: server, Step: step, Values: values, State: map[string]string{}},
			func(r *bridge.CommandResponse, err error) { ch <- result{r, err} })
		res := <-ch
		return res.r, res.err
	}
	form, err := run(0, nil)
	if err != nil || form.Form == nil {
		t.Fatalf("form: %v %+v", err, form)
	}
	for _, bad := range []string{"PRIVMSG bob :hi\rQUIT", "PRIVMSG bob :a\x00b", "QUIT :bye", "CAP END"} {
		if _, err := run(1, bridge.FormValues{keyCommands: {bad}}); err == nil {
			t.Fatalf("the command %q was accepted", bad)
		}
	}
	if _, err := run(1, bridge.FormValues{keyNick: {"bad nick"}}); err == nil {
		t.Fatal("a nick with a space was accepted")
	}
	if _, err := run(1, bridge.FormValues{keyNick: {"ally"}, keyCommands: {"PRIVMSG bob :connected\nMODE ally +i"}, secretSASLPassword: {"s3cret"}}); err != nil {
		t.Fatal(err)
	}
	acct, err := h.st.GetAccount(context.Background(), "alice@localhost", "irc")
	if err != nil || acct.Fields["net.local.nick"] != "ally" || acct.Secrets["net.local.sasl_password"] != "s3cret" {
		t.Fatalf("account = %+v, %v", acct, err)
	}

	rj := h.join(alice, "#set%local@irc.localhost/alice")
	if rj.Self.Nick != "ally" || !rj.NickChanged {
		t.Fatalf("self = %+v (the configured nick wins, with status 210)", rj.Self)
	}
	bob.Expect(t, isPrivmsg("ally", "bob", "connected"), wait)
	bob.Send("WHOIS ally")
	who := bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "311" }, wait)
	if want := webircIP("alice@localhost"); who.Params[3] != want {
		t.Fatalf("host seen through WEBIRC = %q, want %q", who.Params[3], want)
	}

	bob.Send("PRIVMSG #set :caf\xe9 cr\xe8me")
	m := expectEv(h, func(m bridge.Message) bool { return strings.HasPrefix(m.Body, "caf") }, wait)
	if m.Body != "café crème" {
		t.Fatalf("latin-1 line decoded as %q", m.Body)
	}

	// A private message through the occupant JID is answered from it.
	occ := rj.Room.Occupant("bob")
	h.dispatch(alice, bridge.SendMessage{From: alice, To: occ, Type: bridge.Chat, ID: "pm", Body: "via room"})
	bob.Expect(t, isPrivmsg("ally", "bob", "via room"), wait)
	bob.Privmsg("ally", "answer")
	if m := expectEv(h, func(m bridge.Message) bool { return m.Body == "answer" }, wait); m.From != occ || !m.To.Equal(alice) {
		t.Fatalf("answer = %+v", m)
	}
}
