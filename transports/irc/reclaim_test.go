package irc

import (
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/tests/testbed"
)

// TestReclaimNickLines: a user on alice_ asks for alice when its holder
// quits or changes nick, swallows the refusals, and gives up on a nick the
// server finds erroneous.
func TestReclaimNickLines(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	n.nick, n.wantNick = "alice_", "alice"
	s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#chan").Occupant("alice"), MUC: true})
	sent(n)
	feed(t, n, ":alice_!al@h JOIN #chan", ":irc.test 353 alice_ = #chan :alice_ alice bob", ":irc.test 366 alice_ #chan :End", ":irc.test 324 alice_ #chan +nt")
	sent(n)
	take[bridge.RoomJoined](u)

	feed(t, n, ":alice!x@y QUIT :gone")
	if got := sent(n); len(got) != 1 || got[0] != "NICK alice" {
		t.Fatalf("sent %q after the holder quit, want NICK alice", got)
	}
	// Someone else was quicker: the refusal is not shown.
	feed(t, n, ":irc.test 433 alice_ alice :Nickname already in use")
	if msgs := take[bridge.Message](u); len(msgs) != 0 {
		t.Fatalf("the refusal was shown: %+v", msgs)
	}
	// The new holder moves away, but moments after the last attempt: the
	// next one waits for the gap (the timer), nothing is sent now.
	feed(t, n, ":alice!x@y NICK alfred")
	if got := sent(n); len(got) != 0 {
		t.Fatalf("sent %q within the gap", got)
	}
	n.lastReclaim = time.Now().Add(-reclaimMinGap)
	n.reclaimNick(false) // the timer firing
	if got := sent(n); len(got) != 1 || got[0] != "NICK alice" {
		t.Fatalf("sent %q, want NICK alice", got)
	}
	take[bridge.OccupantChanged](u)
	feed(t, n, ":alice_!al@h NICK alice")
	oc := take[bridge.OccupantChanged](u)
	if len(oc) != 1 || !oc[0].Self || oc[0].Occupant.Nick != "alice_" || oc[0].NewNick != "alice" {
		t.Fatalf("nick change = %+v", oc)
	}
	if n.needsReclaim() || n.reclaimT != nil || n.reclaimTry != "" {
		t.Fatalf("still reclaiming: needs %v, timer %v, try %q", n.needsReclaim(), n.reclaimT != nil, n.reclaimTry)
	}

	// An erroneous wanted nick is given up.
	n.nick, n.wantNick = "bobby", "bob"
	n.lastReclaim = time.Time{}
	n.reclaimNick(false)
	if got := sent(n); len(got) != 1 || got[0] != "NICK bob" {
		t.Fatalf("sent %q", got)
	}
	feed(t, n, ":irc.test 432 bobby bob :Erroneous nickname")
	if msgs := take[bridge.Message](u); len(msgs) != 0 || n.wantNick != "bobby" || n.reclaimT != nil {
		t.Fatalf("after 432: notices %+v, wanted %q, timer %v", msgs, n.wantNick, n.reclaimT != nil)
	}
	// A user's own nick change is not mistaken for an attempt.
	s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#chan").Occupant("carol"), ID: "nc"})
	if got := sent(n); len(got) != 1 || got[0] != "NICK carol" {
		t.Fatalf("sent %q", got)
	}
	feed(t, n, ":irc.test 433 bobby carol :Nickname already in use")
	if e := take[bridge.DeliveryError](u); len(e) != 1 || e[0].ID != "nc" || e[0].Err.Condition != bridge.Conflict {
		t.Fatalf("nick change refusal = %+v", e)
	}
}

// TestReclaimNickOnNgircd: the user lands on alice_ because alice is
// taken; when the holder quits, the rooms see the user take alice back
// (303) within seconds; and without a shared channel the periodic attempt
// does it.
func TestReclaimNickOnNgircd(t *testing.T) {
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	h := newHarness(t, testConfig(ng.Addr()))
	squat := testbed.DialIRC(t, ng.Addr(), "alice")
	squat.Join("#take")
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Join("#take")

	alice := jid.MustParse("alice@localhost/pc")
	rj := h.join(alice, "#take%local@irc.localhost/alice")
	if rj.Self.Nick != "alice_" || !rj.NickChanged {
		t.Fatalf("self = %+v, want alice_", rj.Self)
	}
	squat.Quit("bye")
	start := time.Now()
	nc := expectEv(h, func(o bridge.OccupantChanged) bool { return o.Self && o.NewNick != "" }, 5*time.Second)
	if nc.Occupant.Nick != "alice_" || nc.NewNick != "alice" {
		t.Fatalf("nick change = %+v", nc)
	}
	t.Logf("took the nick back %s after the holder quit", time.Since(start).Round(time.Millisecond))
	bob.Expect(t, func(m *ircmsg.Message) bool {
		return m.Command == "NICK" && m.Nick() == "alice_" && m.Params[0] == "alice"
	}, wait)
	h.dispatch(alice, bridge.SendMessage{From: alice, To: rj.Room, Type: bridge.Groupchat, ID: "m", Body: "me again"})
	bob.Expect(t, isPrivmsg("alice", "#take", "me again"), wait)

	// A holder that shares no channel: the periodic attempt takes it.
	h2 := newHarness(t, testConfig(ng.Addr()))
	h2.tr.reclaimEvery = 500 * time.Millisecond
	squat2 := testbed.DialIRC(t, ng.Addr(), "carol")
	carol := jid.MustParse("carol@localhost/pc")
	rj2 := h2.join(carol, "#take%local@irc.localhost/carol")
	if rj2.Self.Nick != "carol_" {
		t.Fatalf("self = %+v, want carol_", rj2.Self)
	}
	// Attempts while the nick is held are refused quietly.
	time.Sleep(1200 * time.Millisecond)
	expectNoEv(h2, func(m bridge.Message) bool { return m.Notice }, 10*time.Millisecond)
	squat2.Quit("bye")
	nc = expectEv(h2, func(o bridge.OccupantChanged) bool { return o.Self && o.NewNick != "" }, 5*time.Second)
	if nc.NewNick != "carol" {
		t.Fatalf("nick change = %+v", nc)
	}
}
