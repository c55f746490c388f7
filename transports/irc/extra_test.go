package irc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/store"
	"switchboard/tests/testbed"
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

// TestBouncerRoom keeps a channel joined while the user is away and gives
// the missed messages on return.
func TestBouncerRoom(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	u.acct = &store.Account{Fields: map[string]string{"bouncer": "1"}}
	joinRoom(t, s, n, u)
	s.leave(bridge.LeaveRoom{From: phone, Room: roomAddr("#chan").Occupant("alice")})
	if got := sent(n); len(got) != 0 {
		t.Fatalf("sent %q (bouncer mode keeps the channel)", got)
	}
	if len(n.rooms) != 1 || s.Idle() {
		t.Fatal("the room or the session went away")
	}
	take[bridge.OccupantChanged](u)
	feed(t, n, ":bob!b@h PRIVMSG #chan :while you were away")
	if msgs := take[bridge.Message](u); len(msgs) != 0 {
		t.Fatalf("sent to nobody: %+v", msgs)
	}
	// The archive is written by the transport's batcher.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.t.archive.run(ctx) }()
	deadline := time.Now().Add(wait)
	for {
		p, _ := s.t.st.QueryArchive(context.Background(), store.ArchiveQuery{User: "alice@localhost", Transport: "irc", Peer: "#chan%local"})
		if p != nil && len(p.Entries) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#chan").Occupant("alice"), MUC: true})
	rj := take[bridge.RoomJoined](u)
	if len(rj) != 1 || len(rj[0].History) != 1 || rj[0].History[0].Body != "while you were away" {
		t.Fatalf("rejoin = %+v", rj)
	}
	if got := sent(n); len(got) != 0 {
		t.Fatalf("sent %q (already in the channel)", got)
	}
}

// TestStatusLines describes the connection for the status command.
func TestStatusLines(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	joinRoom(t, s, n, u)
	if st := s.Status(); len(st) != 1 || st[0] != "local: connected as alice, in #chan." {
		t.Fatalf("status = %q", st)
	}
}

// TestRestoreBouncers rejoins a bouncer user's channels after a restart.
func TestRestoreBouncers(t *testing.T) {
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	cfg := testConfig(ng.Addr())
	h := newHarness(t, cfg)
	alice := jid.MustParse("alice@localhost/pc")
	ctx := context.Background()
	if err := h.st.PutAccount(ctx, &store.Account{User: "alice@localhost", Transport: "irc", Fields: map[string]string{"bouncer": "1", "nick": "alice"}}); err != nil {
		t.Fatal(err)
	}
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Join("#keep")
	h.join(alice, "#keep%local@irc.localhost/alice")
	h.dispatch(alice, bridge.LeaveRoom{From: alice, Room: h.addr("#keep%local@irc.localhost/alice")})
	expectEv(h, func(o bridge.OccupantChanged) bool { return o.Self && o.Gone }, wait)
	bob.ExpectNone(t, func(m *ircmsg.Message) bool { return m.Command == "PART" || m.Command == "QUIT" }, 300*time.Millisecond)

	// A new gateway on the same store: the channel is joined again.
	h.gw.Shutdown()
	bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "QUIT" && m.Nick() == "alice" }, wait)
	h2 := newHarnessStore(t, cfg, h.st)
	if err := h2.tr.RestoreBouncers(ctx, h2.gw); err != nil {
		t.Fatal(err)
	}
	bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "JOIN" && m.Nick() == "alice" }, wait)
}
