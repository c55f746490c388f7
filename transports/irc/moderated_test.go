package irc

import (
	"strings"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/tests/testbed"
)

// roles maps nick → role of occupants.
func roles(occ []bridge.Occupant) map[string]string {
	out := map[string]string{}
	for _, o := range occ {
		out[o.Nick] = o.Role
	}
	return out
}

// TestModeratedJoinWaitsForModes: the join completes with the channel
// modes, and +m makes members without voice visitors.
func TestModeratedJoinWaitsForModes(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#chan").Occupant("alice"), MUC: true})
	sent(n)
	feed(t, n,
		":alice!al@gw.example JOIN #chan",
		":irc.test 353 alice = #chan :alice +bob @carol dave",
		":irc.test 366 alice #chan :End of NAMES list",
		":eve!e@h JOIN #chan", // between NAMES and the modes
		"@time=2024-01-02T03:04:05.000Z;msgid=replay1 :bob!b@h PRIVMSG #chan :replayed line",
	)
	if got := sent(n); len(got) != 1 || got[0] != "MODE #chan" {
		t.Fatalf("sent %q, want the modes asked for", got)
	}
	if rj := take[bridge.RoomJoined](u); len(rj) != 0 {
		t.Fatalf("joined before the modes were known: %+v", rj)
	}
	if msgs := take[bridge.Message](u); len(msgs) != 0 {
		t.Fatalf("a message reached the room before the join: %+v", msgs)
	}
	feed(t, n, ":irc.test 324 alice #chan +mnt", ":irc.test 329 alice #chan 1700000000")
	// The line that came meanwhile follows the join.
	if len(u.events) != 2 {
		t.Fatalf("events = %+v", u.events)
	}
	if m, ok := u.events[1].(bridge.Message); !ok || m.Body != "replayed line" || !m.To.Equal(phone) || m.Time.Year() != 2024 || m.StanzaID == "" {
		t.Fatalf("after the join: %+v", u.events[1])
	}
	take[bridge.Message](u)
	rj := take[bridge.RoomJoined](u)
	if len(rj) != 1 {
		t.Fatalf("RoomJoined = %+v", rj)
	}
	if rj[0].Self.Role != "visitor" || rj[0].Self.Affiliation != "none" {
		t.Fatalf("self = %+v, want a visitor", rj[0].Self)
	}
	want := map[string]string{"bob": "participant", "carol": "moderator", "dave": "visitor", "eve": "visitor"}
	if got := roles(rj[0].Occupants); len(got) != len(want) || got["bob"] != want["bob"] || got["carol"] != want["carol"] || got["dave"] != want["dave"] || got["eve"] != want["eve"] {
		t.Fatalf("roles = %v, want %v", got, want)
	}
	if oc := take[bridge.OccupantChanged](u); len(oc) != 0 {
		t.Fatalf("occupant changes before the join completed: %+v", oc)
	}

	// -m: every member without voice becomes a participant, self included.
	feed(t, n, ":carol!c@h MODE #chan -m")
	oc := take[bridge.OccupantChanged](u)
	got := map[string]string{}
	for _, o := range oc {
		got[o.Occupant.Nick] = o.Occupant.Role
		if o.Actor != "carol" || o.Self != (o.Occupant.Nick == "alice") {
			t.Errorf("change = %+v", o)
		}
	}
	if len(oc) != 3 || got["alice"] != "participant" || got["dave"] != "participant" || got["eve"] != "participant" {
		t.Fatalf("after -m: %+v", oc)
	}
	// +m with voice for dave in the same line: dave stays a participant
	// (told once), alice and eve become visitors.
	feed(t, n, ":carol!c@h MODE #chan +mv dave")
	oc = take[bridge.OccupantChanged](u)
	got = map[string]string{}
	for _, o := range oc {
		if _, dup := got[o.Occupant.Nick]; dup {
			t.Errorf("%s told twice", o.Occupant.Nick)
		}
		got[o.Occupant.Nick] = o.Occupant.Role
	}
	if len(oc) != 3 || got["alice"] != "visitor" || got["eve"] != "visitor" || got["dave"] != "participant" {
		t.Fatalf("after +mv dave: %+v", oc)
	}
	// Voice for alice: participant.
	feed(t, n, ":carol!c@h MODE #chan +v alice")
	oc = take[bridge.OccupantChanged](u)
	if len(oc) != 1 || !oc[0].Self || oc[0].Occupant.Role != "participant" || oc[0].Occupant.Affiliation != "member" {
		t.Fatalf("after +v alice: %+v", oc)
	}
	// Modes that do not touch +m change no role.
	feed(t, n, ":carol!c@h MODE #chan +s-t", ":irc.test 324 alice #chan +mns")
	if oc := take[bridge.OccupantChanged](u); len(oc) != 0 {
		t.Fatalf("changes without +m/-m: %+v", oc)
	}
	// A MODE query answered later (the user's own) that says -m.
	feed(t, n, ":irc.test 324 alice #chan +ns")
	if oc := take[bridge.OccupantChanged](u); len(oc) != 1 || oc[0].Occupant.Nick != "eve" || oc[0].Occupant.Role != "participant" {
		t.Fatalf("after 324 without m: %+v", oc)
	}
	info := s.discoInfo(roomAddr("#chan"))
	if f := strings.Join(info.Features, " "); !strings.Contains(f, "muc_unmoderated") || strings.Contains(f, "muc_moderated") {
		t.Fatalf("features = %s", f)
	}
	feed(t, n, ":carol!c@h MODE #chan +m")
	take[bridge.OccupantChanged](u)
	if f := strings.Join(s.discoInfo(roomAddr("#chan")).Features, " "); !strings.Contains(f, "muc_moderated") || strings.Contains(f, "muc_unmoderated") {
		t.Fatalf("features = %s", f)
	}
}

// TestModesUnanswered completes a join whose MODE query got no answer.
func TestModesUnanswered(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#chan").Occupant("alice"), MUC: true})
	feed(t, n, ":alice!al@gw.example JOIN #chan", ":irc.test 353 alice = #chan :alice bob", ":irc.test 366 alice #chan :End")
	if rj := take[bridge.RoomJoined](u); len(rj) != 0 {
		t.Fatalf("joined early: %+v", rj)
	}
	n.expireModeQueries() // too early: nothing happens
	if rj := take[bridge.RoomJoined](u); len(rj) != 0 {
		t.Fatalf("joined early: %+v", rj)
	}
	n.rooms["#chan"].modesAsked = time.Now().Add(-modesTimeout)
	n.expireModeQueries()
	rj := take[bridge.RoomJoined](u)
	if len(rj) != 1 || rj[0].Self.Role != "participant" || len(rj[0].Occupants) != 1 {
		t.Fatalf("RoomJoined = %+v", rj)
	}
	// A late answer still applies.
	feed(t, n, ":irc.test 324 alice #chan +m")
	if oc := take[bridge.OccupantChanged](u); len(oc) != 2 {
		t.Fatalf("late +m: %+v", oc)
	}
}

// TestModeratedOnNgircd: in a +m channel members without voice are
// visitors, and MODE -m / +m changes every such occupant's role.
func TestModeratedOnNgircd(t *testing.T) {
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	h := newHarness(t, testConfig(ng.Addr()))
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Join("#mod")
	bob.Send("MODE #mod +m")
	bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "MODE" && m.Params[1] == "+m" }, wait)
	carol := testbed.DialIRC(t, ng.Addr(), "carol")
	carol.Join("#mod")
	dave := testbed.DialIRC(t, ng.Addr(), "dave")
	dave.Join("#mod")
	bob.Send("MODE #mod +v dave")
	bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "MODE" && m.Params[1] == "+v" }, wait)

	alice := jid.MustParse("alice@localhost/pc")
	rj := h.join(alice, "#mod%local@irc.localhost/alice")
	if rj.Self.Role != "visitor" {
		t.Fatalf("self = %+v, want a visitor in a +m channel", rj.Self)
	}
	if r := roles(rj.Occupants); r["bob"] != "moderator" || r["carol"] != "visitor" || r["dave"] != "participant" {
		t.Fatalf("roles = %v", r)
	}
	// A visitor cannot speak: the server's refusal comes back with the id.
	h.dispatch(alice, bridge.SendMessage{From: alice, To: rj.Room, Type: bridge.Groupchat, ID: "hush", Body: "can I talk?"})
	if e := expectEv(h, func(e bridge.DeliveryError) bool { return e.ID == "hush" }, wait); e.Err.Condition != bridge.Forbidden {
		t.Fatalf("error = %+v", e.Err)
	}

	bob.Send("MODE #mod -m")
	self := expectEv(h, func(o bridge.OccupantChanged) bool { return o.Self }, wait)
	if self.Occupant.Role != "participant" || self.Actor != "bob" {
		t.Fatalf("self after -m = %+v", self)
	}
	c := expectEv(h, func(o bridge.OccupantChanged) bool { return o.Occupant.Nick == "carol" }, wait)
	if c.Occupant.Role != "participant" {
		t.Fatalf("carol after -m = %+v", c)
	}
	expectNoEv(h, func(o bridge.OccupantChanged) bool { return o.Occupant.Nick == "dave" || o.Occupant.Nick == "bob" }, 300*time.Millisecond)

	bob.Send("MODE #mod +m")
	self = expectEv(h, func(o bridge.OccupantChanged) bool { return o.Self }, wait)
	c = expectEv(h, func(o bridge.OccupantChanged) bool { return o.Occupant.Nick == "carol" }, wait)
	if self.Occupant.Role != "visitor" || c.Occupant.Role != "visitor" {
		t.Fatalf("after +m: self %+v, carol %+v", self, c)
	}
	bob.Send("MODE #mod +v alice")
	self = expectEv(h, func(o bridge.OccupantChanged) bool { return o.Self }, wait)
	if self.Occupant.Role != "participant" {
		t.Fatalf("self after +v = %+v", self)
	}
	h.dispatch(alice, bridge.SendMessage{From: alice, To: rj.Room, Type: bridge.Groupchat, ID: "voiced", Body: "thanks for the voice"})
	bob.Expect(t, isPrivmsg("alice", "#mod", "thanks for the voice"), wait)

	// A second resource joining later sees the same roles.
	laptop := jid.MustParse("alice@localhost/laptop")
	rj2 := h.join(laptop, "#mod%local@irc.localhost/alice")
	if r := roles(rj2.Occupants); rj2.Self.Role != "participant" || r["carol"] != "visitor" {
		t.Fatalf("second join: self %+v, roles %v", rj2.Self, r)
	}
}
