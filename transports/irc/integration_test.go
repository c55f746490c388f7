package irc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/tests/testbed"
)

// TestOpenGateway reaches a server that is not configured, by host name.
func TestOpenGateway(t *testing.T) {
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	cfg := Config{ComponentConfig: bridge.ComponentConfig{Domain: "irc.localhost", Secret: "s"}, Open: true, OpenPort: ng.Port(), OpenTLS: ptr(false), OpenAllowPrivate: true, Rate: ptr(0.0)}
	h := newHarness(t, cfg)
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Join("#open")
	alice := jid.MustParse("alice@localhost/pc")
	rj := h.join(alice, "#open%127.0.0.1@irc.localhost/alice")
	if len(rj.Occupants) != 1 {
		t.Fatalf("occupants = %+v", rj.Occupants)
	}
	h.dispatch(alice, bridge.SendMessage{From: alice, To: rj.Room, Type: bridge.Groupchat, ID: "1", Body: "open hello"})
	bob.Expect(t, isPrivmsg("alice", "#open", "open hello"), wait)

	// Without open_allow_private, loopback is out of reach.
	cfg.OpenAllowPrivate = false
	h2 := newHarness(t, cfg)
	occ := h2.addr("#open%127.0.0.1@irc.localhost/carol")
	h2.dispatch(alice, bridge.JoinRoom{From: alice, Room: occ, MUC: true})
	e := expectEv(h2, func(e bridge.DeliveryError) bool { return e.Kind == "presence" }, 20*time.Second)
	if !strings.Contains(e.Err.Text, "local or private") {
		t.Fatalf("error = %+v", e.Err)
	}
}

// TestNickCollisionKickTopicModes exercises a channel's life against ngircd.
func TestNickCollisionKickTopicModes(t *testing.T) {
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	h := newHarness(t, testConfig(ng.Addr()))
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Join("#life")
	squat := testbed.DialIRC(t, ng.Addr(), "alice")
	_ = squat

	alice := jid.MustParse("alice@localhost/pc")
	rj := h.join(alice, "#life%local@irc.localhost/alice")
	if rj.Self.Nick != "alice_" || !rj.NickChanged {
		t.Fatalf("self = %+v, nick changed %v (want alice_, 210)", rj.Self, rj.NickChanged)
	}
	room := rj.Room

	// Topic from IRC.
	bob.Send("TOPIC #life :Welcome to life")
	subj := expectEv(h, func(s bridge.RoomSubject) bool { return s.Subject == "Welcome to life" }, wait)
	if subj.By != "bob" {
		t.Fatalf("subject = %+v", subj)
	}
	// Op from IRC: the user becomes a moderator.
	bob.Send("MODE #life +o alice_")
	self := expectEv(h, func(o bridge.OccupantChanged) bool { return o.Self && o.Occupant.Role == "moderator" }, wait)
	if self.Occupant.Affiliation != "admin" {
		t.Fatalf("self = %+v", self)
	}
	// Topic from XMPP.
	topic := "Set from XMPP"
	h.dispatch(alice, bridge.SendMessage{From: alice, To: room, Type: bridge.Groupchat, ID: "t", Subject: &topic})
	bob.Expect(t, func(m *ircmsg.Message) bool {
		return m.Command == "TOPIC" && m.Nick() == "alice_" && m.Params[1] == topic
	}, wait)
	expectEv(h, func(s bridge.RoomSubject) bool { return s.Subject == topic && s.By == "alice_" }, wait)

	// Nick change from XMPP (303) and from IRC.
	h.dispatch(alice, bridge.JoinRoom{From: alice, Room: room.Occupant("alicia")})
	nc := expectEv(h, func(o bridge.OccupantChanged) bool { return o.Self && o.NewNick != "" }, wait)
	if nc.NewNick != "alicia" || nc.Occupant.Nick != "alice_" {
		t.Fatalf("nick change = %+v", nc)
	}
	bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "NICK" && m.Params[0] == "alicia" }, wait)
	h.dispatch(alice, bridge.JoinRoom{From: alice, Room: room.Occupant("bob")})
	if e := expectEv(h, func(e bridge.DeliveryError) bool { return e.Kind == "presence" }, wait); e.Err.Condition != bridge.Conflict {
		t.Fatalf("taken nick = %+v", e.Err)
	}
	bob.Send("NICK robert")
	if o := expectEv(h, func(o bridge.OccupantChanged) bool { return o.NewNick == "robert" }, wait); o.Occupant.Nick != "bob" || o.Self {
		t.Fatalf("bob's nick change = %+v", o)
	}

	// Kick from XMPP (muc#admin) answered with a result.
	carol := testbed.DialIRC(t, ng.Addr(), "carol")
	carol.Join("#life")
	expectEv(h, func(o bridge.OccupantChanged) bool { return o.Occupant.Nick == "carol" && !o.Gone }, wait)
	h.dispatch(alice, bridge.RoomAdmin{From: alice, Room: room, IQID: "kick1", Nick: "carol", Role: "none", Reason: "test kick"})
	res := expectEv(h, func(r bridge.IQResult) bool { return r.ID == "kick1" }, wait)
	if res.Err != nil {
		t.Fatalf("kick result = %+v", res.Err)
	}
	gone := expectEv(h, func(o bridge.OccupantChanged) bool { return o.Occupant.Nick == "carol" && o.Gone }, wait)
	if !gone.Kicked || gone.Actor != "alicia" || gone.Reason != "test kick" {
		t.Fatalf("carol's kick = %+v", gone)
	}
	carol.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "KICK" && m.Params[1] == "carol" }, wait)

	// Actions and notices from IRC.
	bob.Privmsg("#life", "\x01ACTION dances\x01")
	if m := expectEv(h, func(m bridge.Message) bool { return m.Body == "dances" }, wait); !m.Action {
		t.Fatalf("action = %+v", m)
	}
	bob.Send("NOTICE #life :heads up")
	if m := expectEv(h, func(m bridge.Message) bool { return m.Body == "heads up" }, wait); !m.Notice {
		t.Fatalf("notice = %+v", m)
	}
	// CTCP VERSION is answered.
	bob.Privmsg("alicia", "\x01VERSION\x01")
	bob.Expect(t, func(m *ircmsg.Message) bool {
		return m.Command == "NOTICE" && strings.HasPrefix(m.Params[1], "\x01VERSION Switchboard")
	}, wait)

	// Kicked from IRC.
	bob.Send("KICK #life alicia :out")
	k := expectEv(h, func(o bridge.OccupantChanged) bool { return o.Self && o.Gone }, wait)
	if !k.Kicked || k.Reason != "out" || k.Actor != "robert" {
		t.Fatalf("self kick = %+v", k)
	}
}

// TestReconnect kills the IRC server under a joined user: the user is told,
// messages sent meanwhile fail with their id, and the room comes back
// within seconds of the server.
func TestReconnect(t *testing.T) {
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	h := newHarness(t, testConfig(ng.Addr()))
	alice := jid.MustParse("alice@localhost/pc")
	rj := h.join(alice, "#re%local@irc.localhost/alice")

	ng.Kill()
	notice := expectEv(h, func(m bridge.Message) bool { return m.From == rj.Room && m.Notice }, wait)
	if !strings.Contains(notice.Body, "reconnecting") {
		t.Fatalf("notice = %+v", notice)
	}
	gone := expectEv(h, func(o bridge.OccupantChanged) bool { return o.Self }, wait)
	if !gone.Gone || len(gone.Codes) != 1 || gone.Codes[0] != 333 || gone.Reason == "" {
		t.Fatalf("self-presence while down = %+v", gone)
	}
	h.dispatch(alice, bridge.SendMessage{From: alice, To: rj.Room, Type: bridge.Groupchat, ID: "lost", Body: "anyone?"})
	e := expectEv(h, func(e bridge.DeliveryError) bool { return e.ID == "lost" }, wait)
	if e.Err.Condition != bridge.RemoteServerTimeout {
		t.Fatalf("error = %+v", e.Err)
	}

	time.Sleep(2 * time.Second)
	ng.Start()
	back := time.Now()
	rj2 := expectEv(h, func(r bridge.RoomJoined) bool { return r.To.Equal(alice) }, 15*time.Second)
	if d := time.Since(back); d > 10*time.Second {
		t.Fatalf("rejoined %s after the server came back", d)
	}
	if rj2.Self.Nick != "alice" || rj2.NickChanged {
		t.Fatalf("rejoin = %+v", rj2)
	}
	expectEv(h, func(m bridge.Message) bool { return m.From == rj.Room && strings.Contains(m.Body, "back in") }, wait)
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Join("#re")
	bob.Privmsg("#re", "welcome back")
	expectEv(h, func(m bridge.Message) bool { return m.Body == "welcome back" }, wait)
	h.dispatch(alice, bridge.SendMessage{From: alice, To: rj.Room, Type: bridge.Groupchat, ID: "ok", Body: "thanks"})
	bob.Expect(t, isPrivmsg("alice", "#re", "thanks"), wait)
}

// TestRateLimit checks the token bucket: with rate 4/s and burst 2, six
// lines take at least a second.
func TestRateLimit(t *testing.T) {
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	cfg := testConfig(ng.Addr())
	cfg.Rate, cfg.Burst = ptr(4.0), ptr(2)
	h := newHarness(t, cfg)
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Join("#slow")
	alice := jid.MustParse("alice@localhost/pc")
	rj := h.join(alice, "#slow%local@irc.localhost/alice")
	time.Sleep(time.Second) // let the bucket fill
	start := time.Now()
	h.dispatch(alice, bridge.SendMessage{From: alice, To: rj.Room, Type: bridge.Groupchat, ID: "r", Body: "1\n2\n3\n4\n5\n6"})
	for i := 1; i <= 6; i++ {
		bob.Expect(t, isPrivmsg("alice", "#slow", fmt.Sprint(i)), wait)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("six lines took %s; the rate limit did not hold", d)
	}
}

// TestHistoryArchiveAndList covers MUC history on join, MAM and the room
// list with RSM paging.
func TestHistoryArchiveAndList(t *testing.T) {
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	h := newHarness(t, testConfig(ng.Addr()))
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Join("#hist")
	for _, c := range []string{"#la", "#lb", "#lc"} {
		bob.Join(c)
	}
	alice := jid.MustParse("alice@localhost/pc")
	rj := h.join(alice, "#hist%local@irc.localhost/alice")
	for i := 1; i <= 5; i++ {
		bob.Privmsg("#hist", fmt.Sprintf("line %d", i))
		expectEv(h, func(m bridge.Message) bool { return m.Body == fmt.Sprintf("line %d", i) }, wait)
	}
	h.dispatch(alice, bridge.SendMessage{From: alice, To: rj.Room, Type: bridge.Groupchat, ID: "mine", Body: "my line"})
	expectEv(h, func(m bridge.Message) bool { return m.ID == "mine" }, wait)
	// No wait for the archive batch (written every second): the query
	// writes what waits first.

	// MAM: the last two entries, then the page before them.
	max := 2
	before := ""
	h.gw.Query("irc", bridge.Query{From: alice, To: rj.Room, ID: "q1", Request: &bridge.ArchiveQuery{QueryID: "a", Page: &bridge.PageRequest{Max: &max, Before: &before}}})
	res := expectEv(h, func(r bridge.IQResult) bool { return r.ID == "q1" }, wait)
	ar, ok := res.Payload.(*bridge.ArchiveResult)
	if !ok || len(ar.Messages) != 2 || ar.Messages[0].Body != "line 5" || ar.Messages[1].Body != "my line" || ar.Messages[1].ID != "" && ar.Messages[1].ID != "mine" {
		t.Fatalf("archive = %+v (err %+v)", res.Payload, res.Err)
	}
	first := ar.Page.First
	h.gw.Query("irc", bridge.Query{From: alice, To: rj.Room, ID: "q2", Request: &bridge.ArchiveQuery{QueryID: "b", Page: &bridge.PageRequest{Max: &max, Before: &first}}})
	res = expectEv(h, func(r bridge.IQResult) bool { return r.ID == "q2" }, wait)
	if ar := res.Payload.(*bridge.ArchiveResult); len(ar.Messages) != 2 || ar.Messages[0].Body != "line 3" {
		t.Fatalf("previous page = %+v", ar)
	}

	// MUC history on join from another resource.
	laptop := jid.MustParse("alice@localhost/laptop")
	three := 3
	occ := rj.Room.Occupant("alice")
	h.dispatch(laptop, bridge.JoinRoom{From: laptop, Room: occ, MUC: true, History: &bridge.HistoryRequest{MaxStanzas: &three}})
	rj2 := expectEv(h, func(r bridge.RoomJoined) bool { return r.To.Equal(laptop) }, wait)
	if len(rj2.History) != 3 || rj2.History[0].Body != "line 4" || !rj2.History[0].Delayed || rj2.History[2].Body != "my line" {
		t.Fatalf("history = %+v", rj2.History)
	}

	// Room list with paging.
	server := h.addr("local@irc.localhost")
	two := 2
	h.gw.Query("irc", bridge.Query{From: alice, To: server, ID: "l1", Request: &bridge.DiscoItemsQuery{Page: &bridge.PageRequest{Max: &two}}})
	res = expectEv(h, func(r bridge.IQResult) bool { return r.ID == "l1" }, wait)
	items := res.Payload.(*bridge.DiscoItems)
	if len(items.Items) != 2 || items.Page.Count < 4 || !strings.HasPrefix(items.Items[0].Name, "#hist") { // ngircd adds &SERVER
		t.Fatalf("list page 1 = %+v", items)
	}
	after := items.Page.Last
	h.gw.Query("irc", bridge.Query{From: alice, To: server, ID: "l2", Request: &bridge.DiscoItemsQuery{Page: &bridge.PageRequest{Max: &two, After: &after}}})
	res = expectEv(h, func(r bridge.IQResult) bool { return r.ID == "l2" }, wait)
	items = res.Payload.(*bridge.DiscoItems)
	if len(items.Items) != 2 || items.Items[1].JID.String() != "#lc%local@irc.localhost" {
		t.Fatalf("list page 2 = %+v", items)
	}

	// Room disco info.
	h.gw.Query("irc", bridge.Query{From: alice, To: rj.Room, ID: "d", Request: &bridge.DiscoInfoQuery{}})
	res = expectEv(h, func(r bridge.IQResult) bool { return r.ID == "d" }, wait)
	info := res.Payload.(*bridge.DiscoInfo)
	var occupants string
	for _, f := range info.Form.Fields {
		if f.Var == "muc#roominfo_occupants" {
			occupants = f.Values[0]
		}
	}
	if occupants != "2" || !strings.Contains(strings.Join(info.Features, " "), "urn:xmpp:mam:2") {
		t.Fatalf("disco info = %+v", info)
	}
}

// TestShutdownTellsRooms stops the gateway with a user in a room: the IRC
// side sees QUIT and the user a 332 unavailable self-presence.
func TestShutdownTellsRooms(t *testing.T) {
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	h := newHarness(t, testConfig(ng.Addr()))
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Join("#bye")
	alice := jid.MustParse("alice@localhost/pc")
	h.join(alice, "#bye%local@irc.localhost/alice")
	h.gw.Shutdown()
	bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "QUIT" && m.Nick() == "alice" }, wait)
	o := expectEv(h, func(o bridge.OccupantChanged) bool { return o.Self && o.Gone }, wait)
	if len(o.Codes) != 1 || o.Codes[0] != 332 {
		t.Fatalf("self-presence = %+v", o)
	}
}
