package irc

import (
	"context"
	"switchboard/bridge"
	"switchboard/store"
	"switchboard/tests/testbed"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"
)

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
