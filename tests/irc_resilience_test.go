package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"switchboard/tests/testbed"
)

// TestIRCReconnect kills ngircd under a user in two rooms: the user is told
// in each room, messages sent meanwhile get an error with their id, and
// once ngircd is back on the same port every room is rejoined within 10 s
// and the user told.
func TestIRCReconnect(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{})
	alice := s.user("alice")
	rooms := []string{room("#re1"), room("#re2")}
	for _, r := range rooms {
		joinRoom(t, alice, r, "alice", "")
		expectSubject(t, alice, r)
	}
	s.ng.Kill()
	for _, r := range rooms {
		p := occupantPresence(t, alice, r, "alice", func(st testbed.Stanza) bool { return st.Type != "error" })
		if p.Text("status") == "" && !hasStatus(p, "332") && !hasStatus(p, "333") {
			t.Errorf("%s: the outage was not told with a status text or 332/333: %s", r, p.XML)
		}
		t.Logf("told in %s: %s", r, p.XML)
	}
	sendGroupchat(alice, rooms[0], "down1", "is anyone there?")
	e := alice.Expect(t, byID("down1"), wait)
	if e.Type != "error" || e.ErrorText() == "" {
		t.Errorf("a room message while down: want an error with a sentence on down1, got %s", e.XML)
	}
	alice.SendRaw(`<message type='chat' to='` + contact("somebody") + `' id='down2'><body>hello?</body></message>`)
	e = alice.Expect(t, byID("down2"), wait)
	if e.Type != "error" || e.ErrorText() == "" {
		t.Errorf("a private message while down: want an error with a sentence on down2, got %s", e.XML)
	}

	s.ng.Start()
	back := time.Now()
	for _, r := range rooms {
		p := alice.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "presence" && st.From == r+"/alice" && st.Type == "" && hasStatus(st, "110") && st.Text("show") == ""
		}, 15*time.Second)
		if d := time.Since(back); d > 10*time.Second {
			t.Errorf("%s rejoined %s after ngircd came back (want ≤ 10 s): %s", r, d, p.XML)
		}
		groupchatFrom(t, alice, r, func(st testbed.Stanza) bool { return strings.Contains(st.Body(), "back") })
	}
	t.Logf("rooms rejoined %s after ngircd came back", time.Since(back).Round(10*time.Millisecond))
	w := s.irc(t, "rew")
	w.Join("#re1")
	sendGroupchat(alice, rooms[0], "up1", "back online")
	w.Expect(t, privmsgFrom("alice", "#re1", "back online"), wait)
}

// TestIRCBouncer keeps the IRC connection of a user with bouncer mode
// (per user from registration, per channel from the room's configure
// command) while every XMPP resource is gone, and gives the messages
// kept meanwhile when the user comes back.
func TestIRCBouncer(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{users: []string{"dave"}})
	w := s.irc(t, "bncw")

	t.Run("per user", func(t *testing.T) {
		r := room("#bnc")
		w.Join("#bnc")
		alice := s.userRes(t, "alice", "first")
		if res := register(t, alice, map[string][]string{"bouncer": {"1"}}); res.Type != "result" {
			t.Fatalf("registering with bouncer on: %s", res.XML)
		}
		joinRoom(t, alice, r, "alice", "")
		w.Expect(t, isCmd("JOIN", "alice"), wait)
		alice.Close() // the last resource goes offline
		w.ExpectNone(t, func(m *ircmsg.Message) bool {
			return m.Nick() == "alice" && (m.Command == "PART" || m.Command == "QUIT")
		}, 2*time.Second)
		w.Privmsg("#bnc", "while you were away 1")
		w.Privmsg("#bnc", "while you were away 2")
		time.Sleep(300 * time.Millisecond)

		again := s.userRes(t, "alice", "second")
		joinRoom(t, again, r, "alice", "")
		for _, body := range []string{"while you were away 1", "while you were away 2"} {
			m := groupchatFrom(t, again, r+"/bncw", withBody(body))
			if m.Find("{"+nsDelay+"}delay") == nil {
				t.Errorf("a kept message without delay: %s", m.XML)
			}
		}
		expectSubject(t, again, r)
		w.ExpectNone(t, func(m *ircmsg.Message) bool { return m.Nick() == "alice" && m.Command == "JOIN" }, 500*time.Millisecond)
		res := again.IQ(t, `<iq type='set' to='`+r+`'><query xmlns='`+nsMAM+`'/></iq>`, wait)
		if res.Type != "result" || !strings.Contains(strings.Join(again.Received(), "\n"), "while you were away 2") {
			t.Errorf("MAM after coming back: %s", res.XML)
		}
	})

	t.Run("per channel, configured while in the room", func(t *testing.T) {
		// The natural place to turn bouncer mode on for a channel is the
		// room itself, while in it; it must apply to that room at once.
		kept := room("#bkept2")
		w.Join("#bkept2")
		dave := s.userRes(t, "dave", "first")
		joinRoom(t, dave, kept, "dave", "")
		w.Expect(t, isCmd("JOIN", "dave"), wait)
		_, done := command(t, dave, kept, "configure", map[string][]string{"bouncer": {"1"}})
		if done.Type != "result" || done.Find("{"+nsCommands+"}command").AttrValue("status") != "completed" {
			t.Fatalf("configure the room: %s", done.XML)
		}
		dave.Close()
		w.ExpectNone(t, func(m *ircmsg.Message) bool {
			return m.Nick() == "dave" && (m.Command == "QUIT" || m.Command == "PART")
		}, 2*time.Second)
	})

	t.Run("per channel", func(t *testing.T) {
		kept, plain := room("#bkept"), room("#bplain")
		w.Join("#bkept")
		w.Join("#bplain")
		carol := s.userRes(t, "carol", "first")
		_, done := command(t, carol, kept, "configure", map[string][]string{"bouncer": {"1"}})
		if done.Type != "result" || done.Find("{"+nsCommands+"}command").AttrValue("status") != "completed" {
			t.Fatalf("configure the room: %s", done.XML)
		}
		joinRoom(t, carol, kept, "carol", "")
		joinRoom(t, carol, plain, "carol", "")
		carol.Close()
		w.Expect(t, func(m *ircmsg.Message) bool {
			return m.Nick() == "carol" && m.Command == "PART" && strings.EqualFold(m.Params[0], "#bplain")
		}, wait)
		w.ExpectNone(t, func(m *ircmsg.Message) bool {
			return m.Nick() == "carol" && (m.Command == "QUIT" || m.Command == "PART" && strings.EqualFold(m.Params[0], "#bkept"))
		}, 2*time.Second)
		w.Privmsg("#bkept", "kept for carol")
		time.Sleep(300 * time.Millisecond)
		again := s.userRes(t, "carol", "second")
		joinRoom(t, again, kept, "carol", "")
		groupchatFrom(t, again, kept+"/bncw", withBody("kept for carol"))
	})

	t.Run("without bouncer the connection ends", func(t *testing.T) {
		w.Join("#bnone")
		bob := s.userRes(t, "bob", "first")
		joinRoom(t, bob, room("#bnone"), "bob", "")
		bob.Close()
		w.Expect(t, func(m *ircmsg.Message) bool {
			return m.Nick() == "bob" && (m.Command == "QUIT" || m.Command == "PART")
		}, wait)
	})
}

// TestIRCSettings sets a user's IRC identity by registration and a
// network's settings with the configure command of its server JID, and
// checks what the IRC server sees.
func TestIRCSettings(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{})
	w := s.irc(t, "setw")
	w.Join("#cfg")

	t.Run("registration", func(t *testing.T) {
		bob := s.user("bob")
		res := register(t, bob, map[string][]string{"nick": {"bobnick"}, "username": {"bobident"}, "realname": {"Bob Real Name"}})
		if res.Type != "result" {
			t.Fatalf("register: %s", res.XML)
		}
		self := joinRoom(t, bob, room("#cfg"), "whatever", "")
		if self.From != room("#cfg")+"/bobnick" || !hasStatus(self, "210") {
			t.Errorf("the registered nick is used (210): %s", self.XML)
		}
		j := w.Expect(t, isCmd("JOIN", "bobnick"), wait)
		if !strings.Contains(j.Source, "bobident@") {
			t.Errorf("the registered username is not the ident: %s", j.Source)
		}
		w.Send("WHOIS bobnick")
		who := w.Expect(t, isCmd("311", ""), wait)
		if who.Params[len(who.Params)-1] != "Bob Real Name" {
			t.Errorf("realname: %q", who.Params)
		}
		bad := register(t, bob, map[string][]string{"nick": {"bad nick"}})
		if bad.Type != "error" || bad.ErrorText() == "" {
			t.Errorf("a nick with a space: %s", bad.XML)
		}
	})

	t.Run("configure on the server JID", func(t *testing.T) {
		carol := s.user("carol")
		form, done := command(t, carol, serverJID, "configure", map[string][]string{
			"nick":     {"carolnet"},
			"username": {"carolid"},
			"realname": {"Carol Net"},
			"commands": {"PRIVMSG setw :hello from commands"},
			"autojoin": {"#auto1"},
		})
		for _, f := range []string{"nick", "username", "realname", "commands", "autojoin", "bouncer"} {
			if form.Find("{"+nsCommands+"}command/{"+nsData+"}x/field[@var='"+f+"']") == nil {
				t.Errorf("the configure form has no %s field: %s", f, form.XML)
			}
		}
		if done.Type != "result" || done.Find("{"+nsCommands+"}command").AttrValue("status") != "completed" {
			t.Fatalf("configure: %s", done.XML)
		}
		mark := s.tap.mark()
		self := joinRoom(t, carol, room("#cfg"), "carol", "")
		if self.From != room("#cfg")+"/carolnet" {
			t.Errorf("the network's nick is used: %s", self.XML)
		}
		s.tap.wait(t, mark, `^NICK carolnet$`, wait)
		s.tap.wait(t, mark, `^USER carolid 0 \* :?Carol Net$`, wait)
		w.Expect(t, privmsgFrom("carolnet", "setw", "hello from commands"), wait)
		s.tap.wait(t, mark, `^JOIN \S*#auto1`, wait)

		// A nick IRC cannot carry is refused with a sentence.
		_, bad := command(t, carol, serverJID, "configure", map[string][]string{"nick": {"two words"}})
		if bad.Type != "error" || bad.ErrorText() == "" {
			t.Errorf("configure with a bad nick: %s", bad.XML)
		}
		// The disconnect command quits the network.
		res := carol.IQ(t, `<iq type='set' to='`+serverJID+`'><command xmlns='`+nsCommands+`' node='disconnect' action='execute'/></iq>`, wait)
		if res.Type != "result" || res.Find("{"+nsCommands+"}command/note") == nil {
			t.Errorf("disconnect: %s", res.XML)
		}
		w.Expect(t, isCmd("QUIT", "carolnet"), wait)
		gone := occupantPresence(t, carol, room("#cfg"), "carolnet", func(st testbed.Stanza) bool { return st.Type == "unavailable" })
		if !hasStatus(gone, "110") {
			t.Errorf("disconnect must take the user out of the room: %s", gone.XML)
		}
	})
}

// TestIRCLimits checks the admin's limits: IRC connections per user and in
// total, refused with an error and a sentence.
func TestIRCLimits(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{
		secondNetwork: true,
		irc:           map[string]any{"max_connections_per_user": 1, "max_connections": 2},
	})
	alice := s.user("alice")
	joinRoom(t, alice, room("#lim"), "alice", "")
	other := "#lim%other@" + ircDomain
	alice.SendRaw(`<presence to='` + other + `/alice'><x xmlns='` + nsMUC + `'/></presence>`)
	e := alice.Expect(t, func(st testbed.Stanza) bool { return st.Name == "presence" && strings.HasPrefix(st.From, other) }, wait)
	if e.Type != "error" || e.ErrorCondition() != "resource-constraint" || e.ErrorText() == "" {
		t.Errorf("a second connection for one user: want resource-constraint with a sentence, got %s", e.XML)
	}

	bob := s.user("bob")
	joinRoom(t, bob, room("#lim"), "bob", "")
	carol := s.user("carol")
	carol.SendRaw(`<presence to='` + room("#lim") + `/carol'><x xmlns='` + nsMUC + `'/></presence>`)
	e = carol.Expect(t, func(st testbed.Stanza) bool { return st.Name == "presence" && strings.HasPrefix(st.From, room("#lim")) }, wait)
	if e.Type != "error" || e.ErrorCondition() != "resource-constraint" || e.ErrorText() == "" {
		t.Errorf("a third connection with max_connections 2: want resource-constraint with a sentence, got %s", e.XML)
	}
	// A freed slot can be used again.
	leaveRoom(t, bob, room("#lim"), "bob")
	deadline := time.Now().Add(wait)
	for {
		carol.SendRaw(`<presence to='` + room("#lim") + `/carol'><x xmlns='` + nsMUC + `'/></presence>`)
		st := carol.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "presence" && strings.HasPrefix(st.From, room("#lim")) && (st.Type == "error" || hasStatus(st, "110"))
		}, wait)
		if st.Type != "error" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot bob freed is still taken: %s", st.XML)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
