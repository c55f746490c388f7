package tests

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ergochat/irc-go/ircmsg"

	"switchboard/tests/testbed"
)

// TestIRCRooms runs the MUC emulation against ngircd through Prosody and
// the real binary: joins and leaves, nick handling, PART/QUIT/KICK/ban,
// modes, topics, moderation from XMPP, text handling, disco, the room
// list, private messages, the server JID and injection attempts. One stack
// serves every subtest; alice stays in #home so that leaving a room never
// ends her IRC connection.
func TestIRCRooms(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{
		irc:   map[string]any{"rate": float64(0)},
		users: []string{"nina", "otto", "pia", "quinn"},
	})
	alice := s.user("alice")
	home := room("#home")
	hw := s.irc(t, "homewatch")
	hw.Join("#home")
	joinRoom(t, alice, home, "alice", "")
	aliceConn := s.tap.connOf(t, `^NICK alice$`, wait)

	t.Run("join and leave", func(t *testing.T) {
		// A channel nobody is in: the user creates it (201) and, as its
		// first member, is its operator.
		r := room("#life")
		self := joinRoom(t, alice, r, "alice", "")
		if self.From != r+"/alice" || !hasStatus(self, "201") {
			t.Errorf("self-presence for a new channel lacks 201 or has the wrong nick: %s", self.XML)
		}
		if it := mucItem(self); it.AttrValue("role") != "moderator" || it.AttrValue("affiliation") != "admin" {
			t.Errorf("the creator of a channel (@ on IRC) is not moderator/admin: %s", self.XML)
		}
		if subj := expectSubject(t, alice, r); subj.Text("subject") != "" {
			t.Errorf("a channel without topic has a subject: %s", subj.XML)
		}
		w := s.irc(t, "lifewatch")
		w.Join("#life")
		p := occupantPresence(t, alice, r, "lifewatch", nil)
		if it := mucItem(p); p.Type != "" || it.AttrValue("role") != "participant" || it.AttrValue("affiliation") != "none" {
			t.Errorf("an IRC user joining: %s", p.XML)
		}
		bye := leaveRoom(t, alice, r, "alice")
		if bye.From != r+"/alice" {
			t.Errorf("leave self-presence from %s", bye.From)
		}
		w.Expect(t, func(m *ircmsg.Message) bool {
			return m.Command == "PART" && m.Nick() == "alice" && strings.EqualFold(m.Params[0], "#life")
		}, wait)

		// An existing channel: the occupants come first, and no 201.
		before := len(alice.Received())
		self = joinRoom(t, alice, r, "alice", "")
		if hasStatus(self, "201") {
			t.Errorf("201 for a channel that existed: %s", self.XML)
		}
		if it := mucItem(self); it.AttrValue("role") != "participant" {
			t.Errorf("rejoining a channel where someone else is op: %s", self.XML)
		}
		got := alice.Received()[before:]
		occ, selfAt := -1, -1
		for i, raw := range got {
			if strings.Contains(raw, `from="`+r+`/lifewatch"`) && occ < 0 {
				occ = i
			}
			if strings.Contains(raw, `from="`+r+`/alice"`) && strings.Contains(raw, `code="110"`) && selfAt < 0 {
				selfAt = i
			}
		}
		if occ < 0 || selfAt < 0 || occ > selfAt {
			t.Errorf("the occupant (lifewatch) must come before the self-presence:\n%s", strings.Join(got, "\n"))
		}
		expectSubject(t, alice, r)
		leaveRoom(t, alice, r, "alice")
	})

	t.Run("nick taken at connection", func(t *testing.T) {
		watch := s.irc(t, "nickwatch")
		watch.Join("#nick")
		s.irc(t, "nina")
		nina := s.user("nina")
		self := joinRoom(t, nina, room("#nick"), "nina", "")
		if self.From != room("#nick")+"/nina_" || !hasStatus(self, "210") {
			t.Errorf("nick taken: want self-presence from %s/nina_ with 210, got %s", room("#nick"), self.XML)
		}
		watch.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "JOIN" && m.Nick() == "nina_" }, wait)

		s.irc(t, "otto")
		s.irc(t, "otto_")
		otto := s.user("otto")
		self = joinRoom(t, otto, room("#nick"), "otto", "")
		if self.From != room("#nick")+"/otto__" || !hasStatus(self, "210") {
			t.Errorf("otto and otto_ taken: want self-presence from %s/otto__ with 210, got %s", room("#nick"), self.XML)
		}
		watch.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "JOIN" && m.Nick() == "otto__" }, wait)
	})

	t.Run("nick refused by the server", func(t *testing.T) {
		watch := s.irc(t, "badwatch")
		watch.Join("#badnick")
		// ngircd refuses '.' in nicks (432); the gateway accepts it.
		pia := s.user("pia")
		self := joinRoom(t, pia, room("#badnick"), "pi.a", "")
		nick := strings.TrimPrefix(self.From, room("#badnick")+"/")
		if nick == "pi.a" || !hasStatus(self, "210") {
			t.Errorf("a nick the server refuses: want another nick with 210, got %s", self.XML)
		}
		watch.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "JOIN" && m.Nick() == nick }, wait)
		t.Logf("pi.a joined as %s", nick)

		// Longer than the server's NICKLEN (30).
		long := "quinn" + strings.Repeat("x", 35)
		quinn := s.user("quinn")
		self = joinRoom(t, quinn, room("#badnick"), long, "")
		nick = strings.TrimPrefix(self.From, room("#badnick")+"/")
		if !hasStatus(self, "210") || len(nick) > 30 || !strings.HasPrefix(long, nick) {
			t.Errorf("a nick longer than NICKLEN: want a shorter prefix with 210, got %s", self.XML)
		}
		watch.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "JOIN" && m.Nick() == nick }, wait)
		t.Logf("a %d-byte nick joined as %s", len(long), nick)
	})

	t.Run("nick changes", func(t *testing.T) {
		r := room("#nc")
		w := s.irc(t, "ncw")
		w.Join("#nc")
		joinRoom(t, alice, r, "alice", "")
		alice.SendRaw(`<presence to='` + r + `/alicia'/>`)
		gone := occupantPresence(t, alice, r, "alice", func(st testbed.Stanza) bool { return st.Type == "unavailable" })
		if !hasStatus(gone, "303") || !hasStatus(gone, "110") || mucItem(gone).AttrValue("nick") != "alicia" {
			t.Errorf("own nick change, unavailable part: %s", gone.XML)
		}
		back := occupantPresence(t, alice, r, "alicia", nil)
		if back.Type != "" || !hasStatus(back, "110") {
			t.Errorf("own nick change, available part: %s", back.XML)
		}
		w.Expect(t, func(m *ircmsg.Message) bool {
			return m.Command == "NICK" && m.Nick() == "alice" && m.Params[0] == "alicia"
		}, wait)
		// The nick is the network's: the other rooms see it too.
		occupantPresence(t, alice, home, "alice", func(st testbed.Stanza) bool { return st.Type == "unavailable" && hasStatus(st, "303") })

		// Someone else's nick change.
		w.Send("NICK ncw2")
		p := occupantPresence(t, alice, r, "ncw", func(st testbed.Stanza) bool { return st.Type == "unavailable" })
		if !hasStatus(p, "303") || hasStatus(p, "110") || mucItem(p).AttrValue("nick") != "ncw2" {
			t.Errorf("an IRC user's nick change: %s", p.XML)
		}
		occupantPresence(t, alice, r, "ncw2", func(st testbed.Stanza) bool { return st.Type == "" })

		// A nick in use is refused with conflict.
		alice.SendRaw(`<presence to='` + r + `/ncw2'/>`)
		e := alice.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "presence" && st.Type == "error" && strings.HasPrefix(st.From, r)
		}, wait)
		if e.ErrorCondition() != "conflict" || e.ErrorText() == "" {
			t.Errorf("taken nick: %s", e.XML)
		}
		alice.SendRaw(`<presence to='` + r + `/alice'/>`)
		occupantPresence(t, alice, r, "alice", func(st testbed.Stanza) bool { return st.Type == "" && hasStatus(st, "110") })
		w.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "NICK" && m.Params[0] == "alice" }, wait)
	})

	t.Run("part quit kick ban", func(t *testing.T) {
		r := room("#gone")
		op := s.irc(t, "gop")
		op.Join("#gone")
		others := map[string]*testbed.IRCClient{}
		for _, n := range []string{"gpart", "gquit", "gkick", "gban"} {
			c := s.irc(t, n)
			c.Join("#gone")
			others[n] = c
		}
		joinRoom(t, alice, r, "alice", "")
		unavailable := func(st testbed.Stanza) bool { return st.Type == "unavailable" }

		others["gpart"].Send("PART #gone :bye now")
		p := occupantPresence(t, alice, r, "gpart", unavailable)
		if reasonOf(p) != "bye now" {
			t.Errorf("PART reason: %s", p.XML)
		}
		others["gquit"].Quit("gone fishing")
		p = occupantPresence(t, alice, r, "gquit", unavailable)
		if !strings.Contains(reasonOf(p), "gone fishing") {
			t.Errorf("QUIT reason: %s", p.XML)
		}
		op.Send("KICK #gone gkick :behave")
		p = occupantPresence(t, alice, r, "gkick", unavailable)
		if it := mucItem(p); !hasStatus(p, "307") || reasonOf(p) != "behave" || it.Find("actor").AttrValue("nick") != "gop" {
			t.Errorf("KICK: want 307, actor gop, reason behave: %s", p.XML)
		}
		op.Send("MODE #gone +b gban!*@*")
		op.Send("KICK #gone gban :banned")
		p = occupantPresence(t, alice, r, "gban", unavailable)
		if !hasStatus(p, "301") || mucItem(p).AttrValue("affiliation") != "outcast" || reasonOf(p) != "banned" {
			t.Errorf("ban and kick: want 301, outcast, reason banned: %s", p.XML)
		}
		// The user kicked.
		op.Send("KICK #gone alice :out you go")
		p = occupantPresence(t, alice, r, "alice", unavailable)
		if !hasStatus(p, "110") || !hasStatus(p, "307") || reasonOf(p) != "out you go" {
			t.Errorf("own kick: want 110, 307 and the reason: %s", p.XML)
		}
	})

	t.Run("modes", func(t *testing.T) {
		r := room("#modes")
		op := s.irc(t, "mop")
		op.Join("#modes")
		v := s.irc(t, "mvoice")
		v.Join("#modes")
		op.Send("MODE #modes +v mvoice")
		v.Expect(t, isCmd("MODE", "mop"), wait)
		joinRoom(t, alice, r, "alice", "")
		if it := mucItem(occupantPresence(t, alice, r, "mop", nil)); it.AttrValue("role") != "moderator" || it.AttrValue("affiliation") != "admin" {
			t.Errorf("@mop in NAMES: %s", it.XML())
		}
		if it := mucItem(occupantPresence(t, alice, r, "mvoice", nil)); it.AttrValue("role") != "participant" || it.AttrValue("affiliation") != "member" {
			t.Errorf("+mvoice in NAMES: %s", it.XML())
		}
		op.Send("MODE #modes +o alice")
		self := occupantPresence(t, alice, r, "alice", func(st testbed.Stanza) bool { return st.Type == "" })
		if it := mucItem(self); !hasStatus(self, "110") || it.AttrValue("role") != "moderator" || it.AttrValue("affiliation") != "admin" {
			t.Errorf("+o on the user: %s", self.XML)
		}
		op.Send("MODE #modes -v mvoice")
		if it := mucItem(occupantPresence(t, alice, r, "mvoice", nil)); it.AttrValue("role") != "participant" || it.AttrValue("affiliation") != "none" {
			t.Errorf("-v: %s", it.XML())
		}
		op.Send("MODE #modes +h mvoice")
		if it := mucItem(occupantPresence(t, alice, r, "mvoice", nil)); it.AttrValue("role") != "moderator" || it.AttrValue("affiliation") != "member" {
			t.Errorf("+h: %s", it.XML())
		}
		op.Send("MODE #modes -o alice")
		self = occupantPresence(t, alice, r, "alice", func(st testbed.Stanza) bool { return st.Type == "" })
		if it := mucItem(self); it.AttrValue("role") != "participant" || it.AttrValue("affiliation") != "none" {
			t.Errorf("-o on the user: %s", self.XML)
		}
	})

	t.Run("topic", func(t *testing.T) {
		r := room("#topic")
		ts := s.irc(t, "tsetter")
		ts.Join("#topic")
		ts.Send("TOPIC #topic :Old topic")
		ts.Expect(t, isCmd("TOPIC", "tsetter"), wait)
		joinRoom(t, alice, r, "alice", "")
		subj := expectSubject(t, alice, r)
		if subj.Text("subject") != "Old topic" {
			t.Errorf("topic on join: %s", subj.XML)
		}
		stamp, err := time.Parse(time.RFC3339, subj.Find("{"+nsDelay+"}delay").AttrValue("stamp"))
		if err != nil || time.Since(stamp) > time.Minute || time.Since(stamp) < -time.Minute {
			t.Errorf("the topic on join must say when it was set (delay stamp): %s", subj.XML)
		}

		ts.Send("TOPIC #topic :New topic")
		subj = expectSubject(t, alice, r)
		if subj.Text("subject") != "New topic" || subj.From != r+"/tsetter" {
			t.Errorf("topic change from IRC: want New topic from %s/tsetter: %s", r, subj.XML)
		}

		// From XMPP: the user is op, so TOPIC goes through.
		ts.Send("MODE #topic +o alice")
		occupantPresence(t, alice, r, "alice", func(st testbed.Stanza) bool { return mucItem(st).AttrValue("role") == "moderator" })
		alice.SendRaw(`<message type='groupchat' to='` + r + `' id='subj1'><subject>Set from XMPP</subject></message>`)
		ts.Expect(t, func(m *ircmsg.Message) bool {
			return m.Command == "TOPIC" && m.Nick() == "alice" && m.Params[1] == "Set from XMPP"
		}, wait)
		subj = expectSubject(t, alice, r)
		if subj.Text("subject") != "Set from XMPP" || subj.From != r+"/alice" {
			t.Errorf("own topic change: %s", subj.XML)
		}

		// Refused by the server (+t, not op): an error on the message id.
		ts.Send("MODE #topic +t-o alice")
		occupantPresence(t, alice, r, "alice", func(st testbed.Stanza) bool { return mucItem(st).AttrValue("role") == "participant" })
		alice.SendRaw(`<message type='groupchat' to='` + r + `' id='subj2'><subject>Not allowed</subject></message>`)
		e := alice.Expect(t, byID("subj2"), wait)
		if e.Type != "error" || e.ErrorText() == "" {
			t.Errorf("a refused topic change: want an error with text on subj2: %s", e.XML)
		}
	})

	t.Run("topic setter on join", func(t *testing.T) {
		// XEP-0045 §7.2.15: the subject comes from the occupant who set
		// it; IRC says who (333).
		r := room("#topicby")
		ts := s.irc(t, "tsetter2")
		ts.Join("#topicby")
		ts.Send("TOPIC #topicby :Who set me")
		ts.Expect(t, isCmd("TOPIC", "tsetter2"), wait)
		joinRoom(t, alice, r, "alice", "")
		subj := expectSubject(t, alice, r)
		if subj.From != r+"/tsetter2" {
			t.Errorf("the subject on join does not say who set the topic (RPL_TOPICWHOTIME says tsetter2): want from %s/tsetter2, got %s", r, subj.XML)
		}
		leaveRoom(t, alice, r, "alice")
	})

	t.Run("moderation from XMPP", func(t *testing.T) {
		r := room("#mod")
		joinRoom(t, alice, r, "alice", "") // first in: op
		clients := map[string]*testbed.IRCClient{}
		for _, n := range []string{"modkick", "modvoice", "modban"} {
			c := s.irc(t, n)
			c.Join("#mod")
			clients[n] = c
			occupantPresence(t, alice, r, n, nil)
		}
		admin := func(item string) testbed.Stanza {
			return alice.IQ(t, `<iq type='set' to='`+r+`'><query xmlns='`+nsMUCAdmin+`'>`+item+`</query></iq>`, wait)
		}
		if res := admin(`<item nick='modkick' role='none'><reason>bye</reason></item>`); res.Type != "result" {
			t.Errorf("kick: %s", res.XML)
		}
		clients["modkick"].Expect(t, func(m *ircmsg.Message) bool {
			return m.Command == "KICK" && m.Nick() == "alice" && m.Params[1] == "modkick" && m.Params[2] == "bye"
		}, wait)
		p := occupantPresence(t, alice, r, "modkick", func(st testbed.Stanza) bool { return st.Type == "unavailable" })
		if !hasStatus(p, "307") || reasonOf(p) != "bye" {
			t.Errorf("kicked occupant: %s", p.XML)
		}

		if res := admin(`<item nick='modvoice' role='moderator'/>`); res.Type != "result" {
			t.Errorf("grant moderator: %s", res.XML)
		}
		clients["modvoice"].Expect(t, func(m *ircmsg.Message) bool {
			return m.Command == "MODE" && m.Nick() == "alice" && m.Params[1] == "+o" && m.Params[2] == "modvoice"
		}, wait)
		occupantPresence(t, alice, r, "modvoice", func(st testbed.Stanza) bool { return mucItem(st).AttrValue("role") == "moderator" })

		if res := admin(`<item nick='modvoice' affiliation='member'/>`); res.Type != "result" {
			t.Errorf("make member: %s", res.XML)
		}
		clients["modvoice"].Expect(t, func(m *ircmsg.Message) bool { return m.Command == "MODE" && strings.Contains(m.Params[1], "+v") }, wait)
		p = occupantPresence(t, alice, r, "modvoice", func(st testbed.Stanza) bool { return mucItem(st).AttrValue("affiliation") == "member" })
		if mucItem(p).AttrValue("role") != "participant" {
			t.Errorf("member (voice, op taken): %s", p.XML)
		}

		if res := admin(`<item nick='modban' affiliation='outcast'><reason>spam</reason></item>`); res.Type != "result" {
			t.Errorf("ban: %s", res.XML)
		}
		clients["modban"].Expect(t, func(m *ircmsg.Message) bool { return m.Command == "MODE" && m.Params[1] == "+b" }, wait)
		clients["modban"].Expect(t, func(m *ircmsg.Message) bool { return m.Command == "KICK" && m.Params[1] == "modban" }, wait)
		p = occupantPresence(t, alice, r, "modban", func(st testbed.Stanza) bool { return st.Type == "unavailable" })
		if !hasStatus(p, "301") {
			t.Errorf("banned occupant: want 301: %s", p.XML)
		}

		if res := admin(`<item nick='nobodyhere' role='none'/>`); res.ErrorCondition() != "item-not-found" {
			t.Errorf("kick of a nick not in the room: %s", res.XML)
		}

		// Not op: the server refuses (482) and the IQ gets an error.
		r2 := room("#mod2")
		o2 := s.irc(t, "mod2op")
		o2.Join("#mod2")
		joinRoom(t, alice, r2, "alice", "")
		res := alice.IQ(t, `<iq type='set' to='`+r2+`'><query xmlns='`+nsMUCAdmin+`'><item nick='mod2op' role='none'/></query></iq>`, wait)
		if res.Type != "error" || res.ErrorCondition() != "forbidden" || res.ErrorText() == "" {
			t.Errorf("kick without op: want forbidden with text, got %s", res.XML)
		}
	})

	t.Run("actions formatting notices", func(t *testing.T) {
		r := room("#fmt")
		f := s.irc(t, "fmtbob")
		f.Join("#fmt")
		joinRoom(t, alice, r, "alice", "")
		sendGroupchat(alice, r, "me1", "/me waves")
		f.Expect(t, privmsgFrom("alice", "#fmt", "\x01ACTION waves\x01"), wait)
		if refl := groupchatFrom(t, alice, r+"/alice", byID("me1")); refl.Body() != "/me waves" {
			t.Errorf("reflected action: %s", refl.XML)
		}
		f.Privmsg("#fmt", "\x01ACTION dances\x01")
		groupchatFrom(t, alice, r+"/fmtbob", withBody("/me dances"))

		f.Privmsg("#fmt", "\x02bold\x02 and \x0304,01red\x03 and \x1ditalic\x1d and \x1funder\x1f\x0f end")
		got := groupchatFrom(t, alice, r+"/fmtbob", func(st testbed.Stanza) bool { return strings.HasSuffix(st.Body(), "end") })
		if want := "*bold* and red and _italic_ and under end"; got.Body() != want {
			t.Errorf("IRC formatting: want %q, got %q", want, got.Body())
		}

		f.Send("NOTICE #fmt :heads up")
		groupchatFrom(t, alice, r+"/fmtbob", withBody("heads up"))
		f.Send("NOTICE alice :private notice")
		n := alice.Expect(t, func(st testbed.Stanza) bool { return st.Name == "message" && st.From == contact("fmtbob") }, wait)
		if n.Body() != "private notice" || n.Type != "chat" {
			t.Errorf("private NOTICE: %s", n.XML)
		}
	})

	t.Run("CTCP answers", func(t *testing.T) {
		// One CTCP answer per 2 s and connection: ask three users.
		c := s.irc(t, "ctcper")
		c.Join("#ctcp")
		bob := s.user("bob")
		carol := s.user("carol")
		joinRoom(t, bob, room("#ctcp"), "bob", "")
		joinRoom(t, carol, room("#ctcp"), "carol", "")
		c.Privmsg("alice", "\x01VERSION\x01")
		c.Privmsg("bob", "\x01PING 1234567890\x01")
		c.Privmsg("carol", "\x01TIME\x01")
		v := c.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "NOTICE" && m.Nick() == "alice" }, wait)
		if !strings.HasPrefix(v.Params[1], "\x01VERSION ") || !strings.Contains(v.Params[1], "Switchboard") || !strings.HasSuffix(v.Params[1], "\x01") {
			t.Errorf("CTCP VERSION answer: %q", v.Params[1])
		}
		p := c.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "NOTICE" && m.Nick() == "bob" }, wait)
		if p.Params[1] != "\x01PING 1234567890\x01" {
			t.Errorf("CTCP PING answer: %q", p.Params[1])
		}
		tm := c.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "NOTICE" && m.Nick() == "carol" }, wait)
		ts := strings.TrimSuffix(strings.TrimPrefix(tm.Params[1], "\x01TIME "), "\x01")
		if when, err := time.Parse(time.RFC1123Z, ts); err != nil || time.Since(when) > time.Minute {
			t.Errorf("CTCP TIME answer: %q", tm.Params[1])
		}
		alice.ExpectNone(t, func(st testbed.Stanza) bool { return st.Name == "message" && st.From == contact("ctcper") }, time.Second)
	})

	t.Run("own messages reflected", func(t *testing.T) {
		r := room("#refl")
		w := s.irc(t, "reflw")
		w.Join("#refl")
		joinRoom(t, alice, r, "alice", "")
		alice.SendRaw(`<message type='groupchat' to='` + r + `' id='r1'><body>reflect me</body><origin-id xmlns='` + nsSID + `' id='o1'/></message>`)
		w.Expect(t, privmsgFrom("alice", "#refl", "reflect me"), wait)
		echo := groupchatFrom(t, alice, r+"/alice", withBody("reflect me"))
		sid := echo.Find("{" + nsSID + "}stanza-id")
		if echo.ID != "r1" || echo.Find("{"+nsSID+"}origin-id").AttrValue("id") != "o1" {
			t.Errorf("reflection must carry id r1 and origin-id o1: %s", echo.XML)
		}
		if sid.AttrValue("id") == "" || sid.AttrValue("by") != r {
			t.Errorf("reflection must carry a stanza-id by the room: %s", echo.XML)
		}
		// A correction (XEP-0308): IRC gets the corrected text, and the
		// reflection keeps <replace/>, so the client corrects the message
		// it shows instead of adding another one.
		alice.SendRaw(`<message type='groupchat' to='` + r + `' id='r2'><body>reflect me, fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='r1'/></message>`)
		w.Expect(t, privmsgFrom("alice", "#refl", "reflect me, fixed"), wait)
		fix := groupchatFrom(t, alice, r+"/alice", withBody("reflect me, fixed"))
		if fix.ID != "r2" || fix.Find("{urn:xmpp:message-correct:0}replace").AttrValue("id") != "r1" {
			t.Errorf("the reflected correction must carry id r2 and replace r1: %s", fix.XML)
		}
	})

	t.Run("multi-line", func(t *testing.T) {
		r := room("#ml")
		w := s.irc(t, "mlw")
		w.Join("#ml")
		joinRoom(t, alice, r, "alice", "")
		sendGroupchat(alice, r, "ml1", "first line\nsecond line\r\n\nthird line")
		var got []string
		for range 3 {
			got = append(got, w.Expect(t, privmsgFrom("alice", "#ml", ""), wait).Params[1])
		}
		if want := []string{"first line", "second line", "third line"}; !slices.Equal(got, want) {
			t.Errorf("lines: want %q, got %q", want, got)
		}
		w.ExpectNone(t, privmsgFrom("alice", "#ml", ""), 500*time.Millisecond)
		if refl := groupchatFrom(t, alice, r+"/alice", byID("ml1")); refl.Body() != "first line\nsecond line\nthird line" {
			t.Errorf("reflection of a multi-line message: %q", refl.Body())
		}
	})

	t.Run("long lines split at word boundaries", func(t *testing.T) {
		r := room("#split")
		w := s.irc(t, "splitw")
		w.Join("#split")
		joinRoom(t, alice, r, "alice", "")
		var sb strings.Builder
		for i := 0; sb.Len() < 1500; i++ {
			fmt.Fprintf(&sb, "wörd%d ", i)
		}
		words := sb.Len()
		sb.WriteString(strings.Repeat("é", 700)) // 1,400 bytes without a space
		sb.WriteString("😀end")
		text := sb.String()
		sendGroupchat(alice, r, "split1", text)
		parts := collectPrivmsgs(t, w, "alice", "#split", len(text), wait)
		if got := strings.Join(parts, ""); got != text {
			t.Fatalf("the split message lost or changed characters:\nsent %q\ngot  %q", text, got)
		}
		at := 0
		for i, p := range parts {
			if !utf8.ValidString(p) {
				t.Errorf("piece %d is not valid UTF-8: %q", i, p)
			}
			if i > 0 && at < words-20 && text[at] != ' ' {
				t.Errorf("piece %d starts inside a word: %q", i, p[:min(20, len(p))])
			}
			at += len(p)
		}
		if len(parts) < 4 {
			t.Errorf("%d bytes in %d lines", len(text), len(parts))
		}
	})

	t.Run("max_lines", func(t *testing.T) {
		r := room("#maxl")
		w := s.irc(t, "maxlw")
		w.Join("#maxl")
		joinRoom(t, alice, r, "alice", "")
		lines := func(n int) string {
			var l []string
			for i := 1; i <= n; i++ {
				l = append(l, fmt.Sprintf("line %d", i))
			}
			return strings.Join(l, "\n")
		}
		mark := s.tap.mark()
		sendGroupchat(alice, r, "ml41", lines(41))
		e := alice.Expect(t, byID("ml41"), wait)
		if e.Type != "error" || e.ErrorText() == "" {
			t.Errorf("41 lines: want an error with a sentence on ml41, got %s", e.XML)
		}
		w.ExpectNone(t, privmsgFrom("alice", "#maxl", ""), 1500*time.Millisecond)
		for _, l := range s.tap.linesOf(aliceConn, mark) {
			if strings.HasPrefix(l, "PRIVMSG #maxl") {
				t.Fatalf("a line of the refused message reached the server: %q", l)
			}
		}
		// 40 lines (the default max_lines) are sent.
		sendGroupchat(alice, r, "ml40", lines(40))
		for i := 1; i <= 40; i++ {
			w.Expect(t, privmsgFrom("alice", "#maxl", fmt.Sprintf("line %d", i)), wait)
		}
		alice.ExpectNone(t, func(st testbed.Stanza) bool { return st.ID == "ml40" && st.Type == "error" }, 500*time.Millisecond)
	})

	t.Run("10,000 character paste", func(t *testing.T) {
		r := room("#paste")
		w := s.irc(t, "pastew")
		w.Join("#paste")
		joinRoom(t, alice, r, "alice", "")
		var sb strings.Builder
		runes := 0
		for i := 0; runes < 10000; i++ {
			chunk := fmt.Sprintf("Grüße %d — ok; ", i)
			if runes+utf8.RuneCountInString(chunk) > 10000 {
				chunk = string([]rune(chunk)[:10000-runes])
			}
			sb.WriteString(chunk)
			runes += utf8.RuneCountInString(chunk)
		}
		text := strings.TrimRight(sb.String(), " ") + "!"
		sendGroupchat(alice, r, "paste1", text)
		parts := collectPrivmsgs(t, w, "alice", "#paste", len(text), 20*time.Second)
		if got := strings.Join(parts, ""); got != text {
			t.Fatalf("the paste arrived changed (%d lines):\nsent %q\ngot  %q", len(parts), text, got)
		}
		if refl := groupchatFrom(t, alice, r+"/alice", byID("paste1")); refl.Body() != text {
			t.Errorf("the reflection of the paste differs (%d bytes, want %d)", len(refl.Body()), len(text))
		}
	})

	t.Run("latin-1 from IRC", func(t *testing.T) {
		r := room("#latin")
		l := s.irc(t, "latinbob")
		l.Join("#latin")
		joinRoom(t, alice, r, "alice", "")
		l.Send("PRIVMSG #latin :caf\xe9 cr\xe8me br\xfbl\xe9e")
		groupchatFrom(t, alice, r+"/latinbob", withBody("café crème brûlée"))
		l.Privmsg("#latin", "déjà UTF-8")
		groupchatFrom(t, alice, r+"/latinbob", withBody("déjà UTF-8"))
	})

	t.Run("room disco", func(t *testing.T) {
		r := room("#disco2")
		d1 := s.irc(t, "disco1")
		d1.Join("#disco2")
		s.irc(t, "disco2").Join("#disco2")
		d1.Send("TOPIC #disco2 :Disco topic")
		d1.Expect(t, isCmd("TOPIC", "disco1"), wait)
		joinRoom(t, alice, r, "alice", "")
		expectSubject(t, alice, r)
		res := alice.IQ(t, `<iq type='get' to='`+r+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, wait)
		if res.Type != "result" || res.Find("query/identity[@category='conference']") == nil {
			t.Fatalf("room disco#info: %s", res.XML)
		}
		for _, f := range []string{"http://jabber.org/protocol/muc", "muc_open", "muc_persistent", "urn:xmpp:mam:2", nsSID} {
			if res.Find("query/feature[@var='"+f+"']") == nil {
				t.Errorf("room feature %s missing: %s", f, res.XML)
			}
		}
		if got := formValue(res, "query", "muc#roominfo_occupants"); got != "3" {
			t.Errorf("occupant count %q, want 3: %s", got, res.XML)
		}
		if got := formValue(res, "query", "muc#roominfo_subject"); got != "Disco topic" {
			t.Errorf("subject %q, want Disco topic: %s", got, res.XML)
		}
	})

	t.Run("room list with RSM", func(t *testing.T) {
		lister := s.irc(t, "lister")
		chans := []string{"#lst-a", "#lst-b", "#lst-c", "#lst-d", "#lst-e"}
		for _, ch := range chans {
			lister.Join(ch)
			lister.Send("TOPIC " + ch + " :topic of " + ch)
			lister.Expect(t, isCmd("TOPIC", "lister"), wait)
		}
		page := func(set string) testbed.Stanza {
			r := alice.IQ(t, `<iq type='get' to='`+serverJID+`'><query xmlns='http://jabber.org/protocol/disco#items'>`+set+`</query></iq>`, 30*time.Second)
			if r.Type != "result" {
				t.Fatalf("room list: %s", r.XML)
			}
			return r
		}
		first := page(`<set xmlns='` + nsRSM + `'><max>2</max></set>`)
		items := first.FindAll("query/item")
		if len(items) != 2 {
			t.Fatalf("max 2: got %d items: %s", len(items), first.XML)
		}
		count := first.Text("query/{" + nsRSM + "}set/count")
		var all []string
		names := map[string]string{}
		cur := first
		for range 50 {
			its := cur.FindAll("query/item")
			if len(its) == 0 {
				break
			}
			for _, it := range its {
				all = append(all, it.AttrValue("jid"))
				names[it.AttrValue("jid")] = it.AttrValue("name")
			}
			last := cur.Text("query/{" + nsRSM + "}set/last")
			if last == "" {
				t.Fatalf("a page without <last/>: %s", cur.XML)
			}
			cur = page(`<set xmlns='` + nsRSM + `'><max>2</max><after>` + xmlText(last) + `</after></set>`)
		}
		if fmt.Sprint(len(all)) != count {
			t.Errorf("paging gave %d rooms, <count/> says %s", len(all), count)
		}
		seen := map[string]bool{}
		for _, j := range all {
			if seen[j] {
				t.Errorf("room %s on two pages", j)
			}
			seen[j] = true
		}
		for _, ch := range chans {
			j := room(ch)
			if !seen[j] {
				t.Errorf("%s missing from the room list %v", j, all)
			}
			if !strings.Contains(names[j], "topic of "+ch) {
				t.Errorf("the name of %s does not show its topic: %q", j, names[j])
			}
		}
		if !slices.IsSortedFunc(all, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) }) {
			t.Errorf("pages are not in a stable order: %v", all)
		}
		// The last page.
		lastPage := page(`<set xmlns='` + nsRSM + `'><max>2</max><before/></set>`)
		var lastJIDs []string
		for _, it := range lastPage.FindAll("query/item") {
			lastJIDs = append(lastJIDs, it.AttrValue("jid"))
		}
		if len(all) >= 2 && !slices.Equal(lastJIDs, all[len(all)-2:]) {
			t.Errorf("last page %v, want %v", lastJIDs, all[len(all)-2:])
		}
	})

	t.Run("private messages", func(t *testing.T) {
		p1 := s.irc(t, "pmone")
		alice.SendRaw(`<message type='chat' to='` + contact("pmone") + `' id='pm1'><body>hi pmone</body></message>`)
		p1.Expect(t, privmsgFrom("alice", "pmone", "hi pmone"), wait)
		p1.Privmsg("alice", "hi alice")
		got := alice.Expect(t, func(st testbed.Stanza) bool { return st.Name == "message" && st.From == contact("pmone") }, wait)
		if got.Type != "chat" || got.Body() != "hi alice" {
			t.Errorf("PM from IRC: %s", got.XML)
		}
		p1.Privmsg("alice", "\x01ACTION waves privately\x01")
		alice.Expect(t, func(st testbed.Stanza) bool { return st.From == contact("pmone") && st.Body() == "/me waves privately" }, wait)

		// Through the occupant JID.
		r := room("#pmroom")
		p2 := s.irc(t, "pmtwo")
		p2.Join("#pmroom")
		joinRoom(t, alice, r, "alice", "")
		alice.SendRaw(`<message type='chat' to='` + r + `/pmtwo' id='pm2'><body>via the room</body></message>`)
		p2.Expect(t, privmsgFrom("alice", "pmtwo", "via the room"), wait)
		p2.Privmsg("alice", "answer via the room")
		got = alice.Expect(t, func(st testbed.Stanza) bool { return st.Name == "message" && st.Body() == "answer via the room" }, wait)
		if got.From != r+"/pmtwo" || got.Type != "chat" || got.Find("{"+nsMUCUser+"}x") == nil {
			t.Errorf("a reply to a PM sent through the room must come from the occupant JID with <x muc#user/>: %s", got.XML)
		}
	})

	t.Run("PM to a missing nick", func(t *testing.T) {
		// The server answers 401; the user must get an error on the
		// message id, at the resource that sent it (an error message to a
		// bare JID is dropped by the server, RFC 6121 §8.5.2.1.1).
		alice.SendRaw(`<message type='chat' to='` + contact("nosuchnick") + `' id='pm3'><body>anyone?</body></message>`)
		if e := alice.Expect(t, byID("pm3"), 5*time.Second); e.Type != "error" || e.ErrorCondition() != "item-not-found" {
			t.Errorf("PM to a missing nick: %s", e.XML)
		}
	})

	t.Run("server JID", func(t *testing.T) {
		rb := s.irc(t, "rawbob")
		alice.SendRaw(`<message type='chat' to='` + serverJID + `' id='raw1'><body>PRIVMSG rawbob :raw hello</body></message>`)
		rb.Expect(t, privmsgFrom("alice", "rawbob", "raw hello"), wait)
		alice.SendRaw(`<message type='chat' to='` + serverJID + `' id='raw2'><body>/msg rawbob slash hello</body></message>`)
		rb.Expect(t, privmsgFrom("alice", "rawbob", "slash hello"), wait)
		// The server's answer (421) is shown from the server JID.
		alice.SendRaw(`<message type='chat' to='` + serverJID + `' id='raw3'><body>FOOBAR baz</body></message>`)
		n := alice.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "message" && st.From == serverJID && strings.Contains(st.Body(), "FOOBAR")
		}, wait)
		if n.Type == "error" {
			t.Errorf("server notice: %s", n.XML)
		}
		// Services: a stand-in NickServ (a plain client; the test servers
		// run no services) gets the user's line and its answer reaches
		// the user.
		ns := s.irc(t, "NickServ")
		alice.SendRaw(`<message type='chat' to='` + serverJID + `' id='raw5'><body>/msg NickServ IDENTIFY s3cret</body></message>`)
		ns.Expect(t, privmsgFrom("alice", "NickServ", "IDENTIFY s3cret"), wait)
		ns.Send("NOTICE alice :You are now identified")
		got := alice.Expect(t, func(st testbed.Stanza) bool { return st.Name == "message" && st.Body() == "You are now identified" }, wait)
		if !strings.EqualFold(got.From, contact("NickServ")) && got.From != serverJID {
			t.Errorf("the service's answer: %s", got.XML)
		}
		// Commands the gateway handles itself are refused.
		alice.SendRaw(`<message type='chat' to='` + serverJID + `' id='raw4'><body>CAP LS</body></message>`)
		if e := alice.Expect(t, byID("raw4"), wait); e.Type != "error" || e.ErrorText() == "" {
			t.Errorf("CAP as a raw command: %s", e.XML)
		}
	})

	t.Run("CR LF injection", func(t *testing.T) {
		r := room("#inj")
		x := s.irc(t, "injbob")
		x.Join("#inj")
		// ngircd creates channels without +t: anyone may set the topic.
		joinRoom(t, alice, r, "alice", "")
		mark := s.tap.mark()

		// A private message: every line is text for injbob.
		alice.SendRaw(`<message type='chat' to='` + contact("injbob") + `' id='ipm'><body>one&#13;&#10;QUIT :bye&#13;NICK evil&#10;MODE #inj +o injbob</body></message>`)
		var got []string
		for range 4 {
			got = append(got, x.Expect(t, privmsgFrom("alice", "injbob", ""), wait).Params[1])
		}
		if want := []string{"one", "QUIT :bye", "NICK evil", "MODE #inj +o injbob"}; !slices.Equal(got, want) {
			t.Errorf("PM lines: want %q, got %q", want, got)
		}

		// A topic is one line.
		alice.SendRaw(`<message type='groupchat' to='` + r + `' id='itopic'><subject>calm&#13;&#10;QUIT :topic</subject></message>`)
		tm := x.Expect(t, isCmd("TOPIC", "alice"), wait)
		if tm.Params[1] != "calm QUIT :topic" {
			t.Errorf("topic with a line break: %q", tm.Params[1])
		}

		// A nick with a line break never reaches IRC.
		alice.SendRaw(`<presence to='` + r + `/evil&#13;&#10;QUIT'/>`)
		e := alice.Expect(t, func(st testbed.Stanza) bool { return st.Name == "presence" && st.Type == "error" }, wait)
		t.Logf("nick with CR LF answered: %s", e.XML)

		// Raw commands: one command per line the user typed, nothing more.
		alice.SendRaw(`<message type='chat' to='` + serverJID + `' id='iraw'><body>PRIVMSG injbob :raw one&#13;&#10;PRIVMSG injbob :raw two</body></message>`)
		x.Expect(t, privmsgFrom("alice", "injbob", "raw one"), wait)
		x.Expect(t, privmsgFrom("alice", "injbob", "raw two"), wait)
		x.ExpectNone(t, func(m *ircmsg.Message) bool {
			return m.Nick() == "alice" && (m.Command == "QUIT" || m.Command == "NICK" || m.Command == "MODE")
		}, time.Second)
		for _, l := range s.tap.linesOf(aliceConn, mark) {
			cmd, _, _ := strings.Cut(l, " ")
			if cmd != "PRIVMSG" && cmd != "TOPIC" && cmd != "PONG" && cmd != "PING" {
				t.Errorf("the gateway wrote a command the user did not ask for: %q", l)
			}
		}
	})
}

// reasonOf returns the reason of an occupant's unavailable presence: the
// muc#user item's <reason/>, else the presence's <status/>.
func reasonOf(st testbed.Stanza) string {
	if r := st.Find("{" + nsMUCUser + "}x/item/reason"); r != nil {
		return r.Text
	}
	return st.Text("status")
}

// TestIRCManyUsersJoin has 50 XMPP users join one channel on ngircd at
// once: every one gets in and the IRC side sees all of them.
func TestIRCManyUsersJoin(t *testing.T) {
	const n = 50
	var users []string
	for i := range n {
		users = append(users, fmt.Sprintf("crowd%02d", i))
	}
	s := newIRCStack(t, ircStackOptions{users: users})
	watch := s.irc(t, "crowdwatch")
	watch.Join("#crowd")
	clients := make([]*testbed.XMPPClient, n)
	for i, u := range users {
		clients[i] = s.user(u)
	}
	start := time.Now()
	r := room("#crowd")
	for i, c := range clients {
		c.SendRaw(fmt.Sprintf(`<presence to='%s/%s'><x xmlns='%s'/></presence>`, r, users[i], nsMUC))
	}
	for i, c := range clients {
		st := c.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "presence" && strings.HasPrefix(st.From, r+"/") && (hasStatus(st, "110") || st.Type == "error")
		}, 30*time.Second)
		if st.Type == "error" || st.From != r+"/"+users[i] {
			t.Fatalf("%s: %s", users[i], st.XML)
		}
	}
	joined := map[string]bool{}
	for len(joined) < n {
		m := watch.Expect(t, isCmd("JOIN", ""), 30*time.Second)
		joined[m.Nick()] = true
	}
	t.Logf("%d users joined in %s", n, time.Since(start).Round(time.Millisecond))
	// Everyone hears a line from IRC.
	watch.Privmsg("#crowd", "hello crowd")
	for i, c := range clients {
		c.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "message" && st.From == r+"/crowdwatch" && st.Body() == "hello crowd"
		}, wait)
		_ = i
	}
}
