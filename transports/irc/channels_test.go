package irc

import (
	"slices"
	"strings"
	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/tests/testbed"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"
)

// TestFoundation runs the first slice against a real ngircd: join, NAMES,
// self-presence, messages both ways, private messages, refusals, leave.
func TestFoundation(t *testing.T) {
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	h := newHarness(t, testConfig(ng.Addr()))
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Join("#chan")

	alice := jid.MustParse("alice@localhost/phone")
	rj := h.join(alice, "#chan%local@irc.localhost/alice")
	if rj.Self.Nick != "alice" || rj.NickChanged {
		t.Fatalf("self = %+v, nick changed %v", rj.Self, rj.NickChanged)
	}
	if len(rj.Occupants) != 1 || rj.Occupants[0].Nick != "bob" || rj.Occupants[0].Role != "moderator" {
		t.Fatalf("occupants = %+v (bob created #chan and is op)", rj.Occupants)
	}
	bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "JOIN" && m.Nick() == "alice" }, wait)
	if got := h.tr.Connections(); got != 1 {
		t.Fatalf("connections = %d", got)
	}

	room := h.addr("#chan%local@irc.localhost")

	// IRC → XMPP.
	bob.Privmsg("#chan", "hello alice")
	m := expectEv(h, func(m bridge.Message) bool { return m.Body == "hello alice" }, wait)
	if m.Type != bridge.Groupchat || m.From != room.Occupant("bob") || !m.To.Equal(alice) {
		t.Fatalf("message = %+v", m)
	}

	// XMPP → IRC, reflected with its id.
	h.dispatch(alice, bridge.SendMessage{From: alice, To: room, Type: bridge.Groupchat, ID: "m1", OriginID: "o1", Body: "hi bob"})
	bob.Expect(t, isPrivmsg("alice", "#chan", "hi bob"), wait)
	refl := expectEv(h, func(m bridge.Message) bool { return m.ID == "m1" }, wait)
	if refl.From != room.Occupant("alice") || refl.Body != "hi bob" || refl.OriginID != "o1" || refl.StanzaID == "" {
		t.Fatalf("reflection = %+v", refl)
	}

	// Private messages both ways.
	bobAddr := h.addr("bob%local@irc.localhost")
	h.dispatch(alice, bridge.SendMessage{From: alice, To: bobAddr, Type: bridge.Chat, ID: "p1", Body: "psst"})
	bob.Expect(t, isPrivmsg("alice", "bob", "psst"), wait)
	bob.Privmsg("alice", "psst back")
	pm := expectEv(h, func(m bridge.Message) bool { return m.Body == "psst back" }, wait)
	if pm.Type != bridge.Chat || pm.From != bobAddr || !pm.To.Equal(alice.Bare()) {
		t.Fatalf("pm = %+v", pm)
	}

	// CR, LF and NUL never start a new IRC line.
	h.dispatch(alice, bridge.SendMessage{From: alice, To: room, Type: bridge.Groupchat, ID: "m2", Body: "one\r\nJOIN #evil\rQUIT :x\x00PRIVMSG #chan :forged\nlast"})
	bob.Expect(t, isPrivmsg("alice", "#chan", "one"), wait)
	bob.Expect(t, isPrivmsg("alice", "#chan", "JOIN #evil"), wait)
	bob.Expect(t, isPrivmsg("alice", "#chan", "QUIT :xPRIVMSG #chan :forged"), wait)
	bob.Expect(t, isPrivmsg("alice", "#chan", "last"), wait)
	// Names with a comma, a space or a control character are refused.
	for _, bad := range []mapping.Address{
		{Kind: mapping.KindContact, Domain: "irc.localhost", Network: "local", Name: "bob,#evil"},
		{Kind: mapping.KindContact, Domain: "irc.localhost", Network: "local", Name: "bob #evil"},
		{Kind: mapping.KindContact, Domain: "irc.localhost", Network: "local", Name: "bob\x07"},
		{Kind: mapping.KindOccupant, Domain: "irc.localhost", Network: "local", Name: "#chan", Resource: "bob\r\nQUIT"},
	} {
		h.dispatch(alice, bridge.SendMessage{From: alice, To: bad, Type: bridge.Chat, ID: "bad", Body: "x"})
		e := expectEv(h, func(e bridge.DeliveryError) bool { return e.ID == "bad" }, wait)
		if e.Err.Condition != bridge.JIDMalformed {
			t.Fatalf("%+v: error %+v", bad, e.Err)
		}
	}
	for _, bad := range []mapping.Address{
		{Kind: mapping.KindOccupant, Domain: "irc.localhost", Network: "local", Name: "#a,#b", Resource: "alice"},
		{Kind: mapping.KindOccupant, Domain: "irc.localhost", Network: "local", Name: "#a b", Resource: "alice"},
		{Kind: mapping.KindOccupant, Domain: "irc.localhost", Network: "local", Name: "#a\x00", Resource: "alice"},
		{Kind: mapping.KindOccupant, Domain: "irc.localhost", Network: "local", Name: "#ok", Resource: "al ice"},
		{Kind: mapping.KindOccupant, Domain: "irc.localhost", Network: "local", Name: "#ok", Resource: "al,ice"},
	} {
		h.dispatch(alice, bridge.JoinRoom{From: alice, Room: bad, MUC: true})
		e := expectEv(h, func(e bridge.DeliveryError) bool { return e.Kind == "presence" && e.From == bad }, wait)
		if e.Err.Condition != bridge.JIDMalformed {
			t.Fatalf("%+v: error %+v", bad, e.Err)
		}
	}

	// A 10,000-character paste arrives whole, cut at word boundaries.
	var paste strings.Builder
	for i := 0; paste.Len() < 10000; i++ {
		paste.WriteString("word")
		paste.WriteString(strings.Repeat("x", i%7))
		paste.WriteString(" ")
	}
	text := paste.String()[:10000]
	h.dispatch(alice, bridge.SendMessage{From: alice, To: room, Type: bridge.Groupchat, ID: "paste", Body: text})
	var got strings.Builder
	for got.Len() < len(text) {
		m := bob.Expect(t, isPrivmsg("alice", "#chan", ""), wait)
		got.WriteString(m.Params[1])
	}
	if got.String() != text {
		t.Fatalf("paste arrived changed:\n got %q\nwant %q", got.String(), text)
	}
	if refl := expectEv(h, func(m bridge.Message) bool { return m.ID == "paste" }, wait); refl.Body != text {
		t.Fatalf("paste reflected changed")
	}

	// Leaving the last room quits.
	h.dispatch(alice, bridge.LeaveRoom{From: alice, Room: room.Occupant("alice")})
	self := expectEv(h, func(e bridge.OccupantChanged) bool { return e.Self && e.Gone }, wait)
	if !self.To.Equal(alice) {
		t.Fatalf("self-presence = %+v", self)
	}
	bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "PART" && m.Nick() == "alice" }, wait)
	waitGone(t, bob, "alice")
	deadline := time.Now().Add(wait)
	for h.tr.Connections() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("connections = %d after leaving", h.tr.Connections())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRejoinBeforePartEcho: a user who leaves a room and joins it again
// before the server's echo of the PART arrives is joined; the late echo
// does not end the new join (it did, and the client waited for ever).
func TestRejoinBeforePartEcho(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	joinRoom(t, s, n, u)
	// A second room keeps the connection when #chan is left.
	s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#two").Occupant("alice"), MUC: true})
	sent(n)
	feed(t, n, ":alice!al@gw.example JOIN #two", ":irc.test 353 alice = #two :alice", ":irc.test 366 alice #two :End of NAMES list", ":irc.test 324 alice #two +nt")
	take[bridge.RoomJoined](u)
	s.leave(bridge.LeaveRoom{From: phone, Room: roomAddr("#chan").Occupant("alice")})
	if got := sent(n); !slices.Contains(got, "PART #chan") {
		t.Fatalf("leave sent %q", got)
	}
	s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#chan").Occupant("alice"), MUC: true})
	if got := sent(n); !slices.Contains(got, "JOIN #chan") {
		t.Fatalf("rejoin sent %q", got)
	}
	u.events = nil
	feed(t, n,
		":alice!al@gw.example PART #chan", // the echo of the first PART
		":alice!al@gw.example JOIN #chan",
		":irc.test 353 alice = #chan :alice @bob",
		":irc.test 366 alice #chan :End of NAMES list",
		":irc.test 324 alice #chan +nt",
	)
	if gone := take[bridge.OccupantChanged](u); len(gone) != 0 {
		t.Errorf("the PART echo was taken for the new join: %+v", gone)
	}
	rj := take[bridge.RoomJoined](u)
	if len(rj) != 1 || !rj[0].To.Equal(phone) {
		t.Fatalf("the rejoin did not complete: %+v (events left %+v)", rj, u.events)
	}
	// A PART the user did not ask for still ends the room.
	feed(t, n, ":alice!al@gw.example PART #chan :kicked out by services")
	if gone := take[bridge.OccupantChanged](u); len(gone) != 1 || !gone[0].Gone || !gone[0].Self {
		t.Fatalf("an unasked PART: %+v", gone)
	}
}
