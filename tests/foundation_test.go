package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"switchboard/tests/testbed"
)

// TestFoundation runs the foundation issue's scenarios against one stack:
// service discovery, registration, jabber:iq:gateway, ad-hoc commands,
// ping, rooms and private messages both ways, injection attempts, long
// messages and malformed addresses.
func TestFoundation(t *testing.T) {
	s := newStack(t, stackOptions{})
	alice := s.user("alice")

	t.Run("disco domain", func(t *testing.T) {
		r := alice.IQ(t, `<iq type='get' to='`+ircDomain+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, wait)
		if r.Type != "result" {
			t.Fatalf("disco#info: %s", r.XML)
		}
		id := r.Root.Find("query/identity")
		if id.AttrValue("category") != "gateway" || id.AttrValue("type") != "irc" {
			t.Fatalf("identity: %s", r.XML)
		}
		for _, f := range []string{"jid\\20escaping", "jabber:iq:register", "jabber:iq:gateway", "http://jabber.org/protocol/commands", "urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time"} {
			if r.Root.Find("query/feature[@var='"+f+"']") == nil {
				t.Errorf("feature %s missing: %s", f, r.XML)
			}
		}
	})

	t.Run("disco room and contact", func(t *testing.T) {
		r := alice.IQ(t, `<iq type='get' to='`+room("#disco")+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, wait)
		if r.Type != "result" || r.Root.Find("query/identity[@category='conference']") == nil ||
			r.Root.Find("query/feature[@var='http://jabber.org/protocol/muc']") == nil {
			t.Fatalf("room disco#info: %s", r.XML)
		}
		r = alice.IQ(t, `<iq type='get' to='somebody%local@`+ircDomain+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, wait)
		if r.Type != "result" || r.Root.Find("query/identity") == nil {
			t.Fatalf("contact disco#info: %s", r.XML)
		}
		if r.Root.Find("query/identity[@category='conference']") != nil {
			t.Fatalf("a contact must not look like a room: %s", r.XML)
		}
	})

	t.Run("ping version time", func(t *testing.T) {
		if r := alice.IQ(t, `<iq type='get' to='`+ircDomain+`'><ping xmlns='urn:xmpp:ping'/></iq>`, wait); r.Type != "result" {
			t.Fatalf("ping: %s", r.XML)
		}
		r := alice.IQ(t, `<iq type='get' to='`+ircDomain+`'><query xmlns='jabber:iq:version'/></iq>`, wait)
		if r.Type != "result" || r.Root.Find("query/name").Text != "Switchboard" {
			t.Fatalf("version: %s", r.XML)
		}
		r = alice.IQ(t, `<iq type='get' to='`+ircDomain+`'><time xmlns='urn:xmpp:time'/></iq>`, wait)
		if r.Type != "result" || r.Root.Find("time/utc") == nil {
			t.Fatalf("time: %s", r.XML)
		}
	})

	t.Run("registration", func(t *testing.T) {
		carol := s.user("carol")
		get := `<iq type='get' to='` + ircDomain + `'><query xmlns='jabber:iq:register'/></iq>`
		r := carol.IQ(t, get, wait)
		if r.Type != "result" || r.Root.Find("query/{jabber:x:data}x") == nil || r.Root.Find("query/registered") != nil {
			t.Fatalf("register get before registering: %s", r.XML)
		}
		set := `<iq type='set' to='` + ircDomain + `'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>` +
			`<field var='FORM_TYPE' type='hidden'><value>jabber:iq:register</value></field>` +
			`<field var='nick'><value>carolnick</value></field></x></query></iq>`
		if r := carol.IQ(t, set, wait); r.Type != "result" {
			t.Fatalf("register set: %s", r.XML)
		}
		r = carol.IQ(t, get, wait)
		if r.Root.Find("query/registered") == nil || !strings.Contains(r.XML, "carolnick") {
			t.Fatalf("register get after registering: %s", r.XML)
		}
		// The registered nick is used on IRC.
		watcher := s.irc("regwatch")
		watcher.Join("#reg")
		join(t, carol, room("#reg"), "carolnick")
		watcher.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "JOIN" && m.Nick() == "carolnick" }, wait)

		if r := carol.IQ(t, `<iq type='set' to='`+ircDomain+`'><query xmlns='jabber:iq:register'><remove/></query></iq>`, wait); r.Type != "result" {
			t.Fatalf("register remove: %s", r.XML)
		}
		r = carol.IQ(t, get, wait)
		if r.Root.Find("query/registered") != nil {
			t.Fatalf("still registered after remove: %s", r.XML)
		}
	})

	t.Run("jabber:iq:gateway", func(t *testing.T) {
		r := alice.IQ(t, `<iq type='get' to='`+ircDomain+`'><query xmlns='jabber:iq:gateway'/></iq>`, wait)
		if r.Type != "result" || r.Root.Find("query/prompt") == nil {
			t.Fatalf("gateway get: %s", r.XML)
		}
		r = alice.IQ(t, `<iq type='set' to='`+ircDomain+`'><query xmlns='jabber:iq:gateway'><prompt>#bars</prompt></query></iq>`, wait)
		if got := r.Root.Find("query/jid").Text; got != room("#bars") {
			t.Fatalf("#bars translated to %q: %s", got, r.XML)
		}
		r = alice.IQ(t, `<iq type='set' to='`+ircDomain+`'><query xmlns='jabber:iq:gateway'><prompt>a,b</prompt></query></iq>`, wait)
		if r.Type != "error" {
			t.Fatalf("a,b translated: %s", r.XML)
		}
	})

	t.Run("ad-hoc commands", func(t *testing.T) {
		r := alice.IQ(t, `<iq type='get' to='`+ircDomain+`'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>`, wait)
		for _, node := range []string{"status", "unregister"} {
			if r.Root.Find("query/item[@node='"+node+"']") == nil {
				t.Errorf("command %s not listed: %s", node, r.XML)
			}
		}
		if r.Root.Find("query/item[@node='users']") != nil {
			t.Errorf("admin command listed to a user: %s", r.XML)
		}
		r = alice.IQ(t, `<iq type='set' to='`+ircDomain+`'><command xmlns='http://jabber.org/protocol/commands' node='status' action='execute'/></iq>`, wait)
		if r.Type != "result" || r.Root.Find("command").AttrValue("status") != "completed" || r.Root.Find("command/note") == nil {
			t.Fatalf("status: %s", r.XML)
		}
		r = alice.IQ(t, `<iq type='set' to='`+ircDomain+`'><command xmlns='http://jabber.org/protocol/commands' node='users' action='execute'/></iq>`, wait)
		if r.ErrorCondition() != "forbidden" {
			t.Fatalf("users by a non-admin: %s", r.XML)
		}
		admin := s.user("admin")
		r = admin.IQ(t, `<iq type='set' to='`+ircDomain+`'><command xmlns='http://jabber.org/protocol/commands' node='users' action='execute'/></iq>`, wait)
		if r.Type != "result" || r.Root.Find("command/{jabber:x:data}x") == nil {
			t.Fatalf("users by admin: %s", r.XML)
		}
		// A multi-step command: disconnect-user asks for a JID, then runs.
		r = admin.IQ(t, `<iq type='set' to='`+ircDomain+`'><command xmlns='http://jabber.org/protocol/commands' node='disconnect-user' action='execute'/></iq>`, wait)
		cmd := r.Root.Find("command")
		if cmd.AttrValue("status") != "executing" || cmd.AttrValue("sessionid") == "" {
			t.Fatalf("disconnect-user first step: %s", r.XML)
		}
		r = admin.IQ(t, `<iq type='set' to='`+ircDomain+`'><command xmlns='http://jabber.org/protocol/commands' node='disconnect-user' sessionid='`+cmd.AttrValue("sessionid")+`' action='cancel'/></iq>`, wait)
		if r.Root.Find("command").AttrValue("status") != "canceled" {
			t.Fatalf("cancel: %s", r.XML)
		}
	})

	t.Run("room both ways", func(t *testing.T) {
		bob := s.irc("ircbob")
		bob.Join("#test")
		self := join(t, alice, room("#test"), "alice")
		if self.From != room("#test")+"/alice" {
			t.Fatalf("self presence from %s", self.From)
		}
		// The occupant list from NAMES came before the self-presence.
		found := false
		for _, raw := range alice.Received() {
			if strings.Contains(raw, room("#test")+"/ircbob") {
				found = true
			}
		}
		if !found {
			t.Fatalf("no occupant presence for ircbob before self-presence:\n%s", strings.Join(alice.Received(), "\n"))
		}
		bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "JOIN" && m.Nick() == "alice" }, wait)
		// XEP-0410 MUC self-ping: joined.
		if r := alice.IQ(t, `<iq type='get' to='`+room("#test")+`/alice'><ping xmlns='urn:xmpp:ping'/></iq>`, wait); r.Type != "result" {
			t.Fatalf("self-ping while joined: %s", r.XML)
		}

		alice.SendRaw(`<message type='groupchat' to='` + room("#test") + `' id='m1'><body>hello irc</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`)
		m := bob.Expect(t, isPrivmsg("#test", "hello irc"), wait)
		if m.Nick() != "alice" {
			t.Fatalf("PRIVMSG from %q, want alice", m.Nick())
		}
		echo := alice.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "message" && st.From == room("#test")+"/alice" && st.Root.Find("body").Text == "hello irc"
		}, wait)
		if echo.ID != "m1" {
			t.Fatalf("reflection id %q, want m1: %s", echo.ID, echo.XML)
		}

		bob.Privmsg("#test", "hello xmpp")
		got := alice.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "message" && st.Type == "groupchat" && st.From == room("#test")+"/ircbob"
		}, wait)
		if got.Root.Find("body").Text != "hello xmpp" {
			t.Fatalf("IRC to XMPP: %s", got.XML)
		}
	})

	t.Run("private messages", func(t *testing.T) {
		pm := s.irc("pmbob")
		alice.SendRaw(`<message type='chat' to='pmbob%local@` + ircDomain + `' id='p1'><body>psst</body></message>`)
		m := pm.Expect(t, isPrivmsg("pmbob", "psst"), wait)
		if m.Nick() != "alice" {
			t.Fatalf("PM from %q", m.Nick())
		}
		pm.Privmsg("alice", "psst back")
		got := alice.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "message" && st.From == "pmbob%local@"+ircDomain
		}, wait)
		if got.Root.Find("body").Text != "psst back" || got.Type != "chat" {
			t.Fatalf("PM to XMPP: %s", got.XML)
		}
	})

	t.Run("CRLF injection", func(t *testing.T) {
		bob := s.irc("crlfbob")
		bob.Join("#test")
		bob.Join("#evil")
		alice.SendRaw(`<message type='groupchat' to='` + room("#test") + `' id='inj'><body>innocent&#13;&#10;JOIN #evil&#13;PRIVMSG #evil :pwned&#10;QUIT :bye</body></message>`)
		// Every line arrives as text in #test; nothing becomes a command.
		for _, line := range []string{"innocent", "JOIN #evil", "PRIVMSG #evil :pwned", "QUIT :bye"} {
			bob.Expect(t, isPrivmsg("#test", line), wait)
		}
		bob.ExpectNone(t, func(m *ircmsg.Message) bool {
			return m.Nick() == "alice" && (m.Command == "JOIN" || m.Command == "QUIT" || isPrivmsg("#evil", "")(m))
		}, 2*time.Second)
		// A nick with a comma (two IRC targets) is refused with an error.
		alice.SendRaw(`<message type='chat' to='nobody,crlfbob%local@` + ircDomain + `' id='comma'><body>x</body></message>`)
		e := alice.Expect(t, func(st testbed.Stanza) bool { return st.Name == "message" && st.ID == "comma" }, wait)
		if st := e.Type; st != "error" || e.ErrorText() == "" {
			t.Fatalf("comma target: %s", e.XML)
		}
		bob.ExpectNone(t, isPrivmsg("crlfbob", ""), time.Second)
	})

	t.Run("long message", func(t *testing.T) {
		bob := s.irc("longbob")
		bob.Join("#test")
		var sb strings.Builder
		for i := 0; sb.Len() < 2000; i++ {
			fmt.Fprintf(&sb, "wörd%d ", i)
		}
		text := strings.TrimSpace(sb.String())[:1990] + "✓end"
		alice.SendRaw(`<message type='groupchat' to='` + room("#test") + `' id='long'><body>` + text + `</body></message>`)
		var got strings.Builder
		deadline := time.Now().Add(wait)
		for got.Len() < len(text) && time.Now().Before(deadline) {
			m := bob.Expect(t, isPrivmsg("#test", ""), wait)
			if len(m.Params[1]) > 510 {
				t.Fatalf("a line of %d bytes", len(m.Params[1]))
			}
			got.WriteString(m.Params[1])
		}
		if got.String() != text {
			t.Fatalf("the 2,000-character message arrived changed:\nsent %q\ngot  %q", text, got.String())
		}
	})

	t.Run("malformed addresses", func(t *testing.T) {
		// Unknown network: item-not-found with a sentence.
		alice.SendRaw(`<message type='groupchat' to='#x%nowhere@` + ircDomain + `' id='nonet'><body>x</body></message>`)
		e := alice.Expect(t, func(st testbed.Stanza) bool { return st.ID == "nonet" }, wait)
		if e.Type != "error" || e.ErrorCondition() != "item-not-found" || e.ErrorText() == "" {
			t.Fatalf("unknown network: %s", e.XML)
		}
		// A channel with a comma cannot be joined.
		alice.SendRaw(`<presence to='#a,b%local@` + ircDomain + `/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
		e = alice.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "presence" && st.Type == "error" && strings.HasPrefix(st.From, "#a,b%local@")
		}, wait)
		if e.ErrorText() == "" {
			t.Fatalf("no text: %s", e.XML)
		}
		// A local part Prosody passes but PRECIS refuses must be answered,
		// and must not end the component stream.
		alice.SendRaw(`<message type='chat' to='#chän%local@` + ircDomain + `' id='precis'><body>x</body></message>`)
		e = alice.Expect(t, func(st testbed.Stanza) bool { return st.ID == "precis" }, wait)
		if e.Type != "error" {
			t.Fatalf("non-ASCII channel: %s", e.XML)
		}
		// An IQ nobody serves.
		r := alice.IQ(t, `<iq type='get' to='`+ircDomain+`'><query xmlns='urn:example:nothing'/></iq>`, wait)
		if r.Type != "error" {
			t.Fatalf("unknown IQ: %s", r.XML)
		}
		// The link is still up.
		if r := alice.IQ(t, `<iq type='get' to='`+ircDomain+`'><ping xmlns='urn:xmpp:ping'/></iq>`, wait); r.Type != "result" {
			t.Fatalf("ping after malformed input: %s", r.XML)
		}
	})

	t.Run("metrics and health", func(t *testing.T) {
		code, body := httpGet(t, s.gw.URL("/healthz"))
		if code != 200 {
			t.Fatalf("/healthz %d %s", code, body)
		}
		code, body = httpGet(t, s.gw.URL("/metrics"))
		if code != 200 || !strings.Contains(body, `switchboard_component_link_up{domain="irc.localhost"} 1`) ||
			!strings.Contains(body, "switchboard_stanzas_total") {
			t.Fatalf("/metrics %d:\n%s", code, body)
		}
	})

	t.Run("leaving the last room quits", func(t *testing.T) {
		watch := s.irc("quitwatch")
		watch.Join("#test")
		alice.SendRaw(`<presence type='unavailable' to='` + room("#test") + `/alice'/>`)
		alice.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "presence" && st.Type == "unavailable" && st.From == room("#test")+"/alice"
		}, wait)
		watch.Expect(t, func(m *ircmsg.Message) bool {
			return (m.Command == "QUIT" || m.Command == "PART") && m.Nick() == "alice"
		}, wait)
		// XEP-0410 MUC self-ping: not joined any more, so the client rejoins.
		r := alice.IQ(t, `<iq type='get' to='`+room("#test")+`/alice'><ping xmlns='urn:xmpp:ping'/></iq>`, wait)
		if r.ErrorCondition() != "not-acceptable" {
			t.Fatalf("self-ping after leaving: %s", r.XML)
		}
	})
}

// TestGatewayPresence checks XEP-0100 presence: registered users get the
// gateway's presence when it starts and unavailable when it stops, probes
// are answered, subscriptions to contacts are accepted, and the gateway
// never sends an unsolicited "subscribed".
func TestGatewayPresence(t *testing.T) {
	s := newStack(t, stackOptions{})
	alice := s.user("alice")
	form := `<iq type='set' to='` + ircDomain + `'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>` +
		`<field var='FORM_TYPE' type='hidden'><value>jabber:iq:register</value></field>` +
		`<field var='nick'><value>alice</value></field></x></query></iq>`
	if r := alice.IQ(t, form, wait); r.Type != "result" {
		t.Fatalf("register: %s", r.XML)
	}
	// XEP-0100 §6: after registering, the gateway asks to subscribe.
	alice.Expect(t, func(st testbed.Stanza) bool {
		return st.Name == "presence" && st.Type == "subscribe" && st.From == ircDomain
	}, wait)

	// A probe to the domain is answered with its presence.
	alice.SendRaw(`<presence type='probe' to='` + ircDomain + `'/>`)
	alice.Expect(t, func(st testbed.Stanza) bool {
		return st.Name == "presence" && st.Type == "" && st.From == ircDomain
	}, wait)

	// Subscribing to a contact is accepted (a solicited "subscribed"):
	// Prosody applies it to the roster rather than forwarding it.
	alice.SendRaw(`<presence type='subscribe' to='somebody%local@` + ircDomain + `'/>`)
	deadline := time.Now().Add(wait)
	for {
		r := alice.IQ(t, `<iq type='get'><query xmlns='jabber:iq:roster'/></iq>`, wait)
		if r.Root.Find("query/item[@subscription='to']") != nil &&
			r.Root.Find("query/item").AttrValue("jid") == "somebody%local@"+ircDomain {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the contact subscription was not approved: %s", r.XML)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Stopping the gateway sends unavailable presence from the domain.
	s.gw.Stop()
	alice.Expect(t, func(st testbed.Stanza) bool {
		return st.Name == "presence" && st.Type == "unavailable" && st.From == ircDomain
	}, wait)
	// Starting it again sends available presence to the registered user.
	s.gw.Start()
	alice.Expect(t, func(st testbed.Stanza) bool {
		return st.Name == "presence" && st.Type == "" && st.From == ircDomain
	}, wait)
	for _, raw := range alice.Received() {
		solicited := strings.Contains(raw, `from="somebody%local@`+ircDomain+`"`)
		if (strings.Contains(raw, `type="subscribed"`) || strings.Contains(raw, "type='subscribed'")) && !solicited {
			t.Fatalf("an unsolicited subscribed reached the client: %s", raw)
		}
	}
}

// TestProsodyRestart kills Prosody and starts it again: the gateway
// reconnects and serves again within 10 s.
func TestProsodyRestart(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.prosody.Kill()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if code, _ := httpGet(t, s.gw.URL("/healthz")); code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/healthz still 200 with Prosody dead")
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.prosody.Start()
	back := time.Now()
	for {
		if code, _ := httpGet(t, s.gw.URL("/healthz")); code == 200 {
			break
		}
		if time.Since(back) > 10*time.Second {
			t.Fatalf("the gateway did not reconnect within 10 s of Prosody's restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("reconnected %s after Prosody came back", time.Since(back).Round(10*time.Millisecond))
	alice := s.user("alice")
	if r := alice.IQ(t, `<iq type='get' to='`+ircDomain+`'><ping xmlns='urn:xmpp:ping'/></iq>`, wait); r.Type != "result" {
		t.Fatalf("ping after restart: %s", r.XML)
	}
	join(t, alice, room("#back"), "alice")
}

// TestIRCServerDies kills ngircd under a joined user: the user is told in
// the room, with a reason, not left in silence.
func TestIRCServerDies(t *testing.T) {
	s := newStack(t, stackOptions{})
	alice := s.user("alice")
	join(t, alice, room("#doomed"), "alice")
	s.ircd.Kill()
	st := alice.Expect(t, func(st testbed.Stanza) bool {
		return st.Name == "presence" && st.From == room("#doomed")+"/alice" &&
			(st.Type == "unavailable" || hasStatus(st, "332") || hasStatus(st, "333"))
	}, 15*time.Second)
	reason := st.Root.Find("status").Text
	if reason == "" && !hasStatus(st, "332") && !hasStatus(st, "333") {
		t.Fatalf("the room went away without a reason: %s", st.XML)
	}
	t.Logf("told: %s", st.XML)
}
