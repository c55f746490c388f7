package tests

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"switchboard/tests/testbed"
)

// TestIRCv3 runs the IRCv3 paths against InspIRCd 3 through Prosody and
// the real binary: capability negotiation, echo-message with
// labeled-response, msgid → stanza-id, message-tags replies, server-time
// and a chathistory batch → delay, multi-prefix, away-notify, chghost.
// Every InspIRCd registration takes about 1 s, so few clients are used.
func TestIRCv3(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{
		insp: true,
		inspOpts: testbed.InspOptions{
			ExtraModules: []string{"chanhistory", "samode", "chghost", "sanick"},
			Opers:        map[string]string{"oper": "operpw"},
		},
	})
	op := s.irc(t, "v3op")
	op.Send("OPER oper operpw")
	op.Expect(t, isCmd("381", ""), wait)
	// Channel history written now is replayed (with server-time, in a
	// chathistory batch) to whoever joins later.
	op.Join("#hist3")
	op.Send("MODE #hist3 +H 20:1h")
	op.Expect(t, isCmd("MODE", "v3op"), wait)
	historyAt := time.Now()
	op.Privmsg("#hist3", "before you came 1")
	op.Privmsg("#hist3", "before you came 2")
	op.Join("#v3")
	bob := s.irc(t, "v3bob", "message-tags", "echo-message", "server-time")
	bob.Join("#v3")

	alice := s.user("alice")
	r := room("#v3")
	joinRoom(t, alice, r, "alice", "")
	aliceConn := s.tap.connOf(t, `^NICK alice$`, wait)

	t.Run("capabilities negotiated", func(t *testing.T) {
		var req []string
		for _, l := range s.tap.linesOf(aliceConn, 0) {
			if rest, ok := strings.CutPrefix(l, "CAP REQ :"); ok {
				req = append(req, strings.Fields(rest)...)
			} else if rest, ok := strings.CutPrefix(l, "CAP REQ "); ok {
				req = append(req, strings.Fields(rest)...)
			}
		}
		for _, c := range []string{"server-time", "echo-message", "message-tags", "multi-prefix", "away-notify",
			"account-notify", "extended-join", "chghost", "batch", "labeled-response"} {
			if !strings.Contains(" "+strings.Join(req, " ")+" ", " "+c+" ") {
				t.Errorf("the gateway did not request %s (CAP REQ %v)", c, req)
			}
		}
		s.tap.wait(t, 0, `^CAP END$`, wait)
	})

	var aliceSID, bobMsgid, aliceMsgid string
	t.Run("echo-message and msgid", func(t *testing.T) {
		mark := s.tap.mark()
		alice.SendRaw(`<message type='groupchat' to='` + r + `' id='e1'><body>hello v3</body><origin-id xmlns='` + nsSID + `' id='o1'/></message>`)
		s.tap.wait(t, mark, `^@label=\S+ PRIVMSG #v3 :hello v3$`, wait)
		got := bob.Expect(t, privmsgFrom("alice", "#v3", "hello v3"), wait)
		_, aliceMsgid = got.GetTag("msgid")
		if aliceMsgid == "" {
			t.Fatalf("InspIRCd gave no msgid: %v", got)
		}
		refl := groupchatFrom(t, alice, r+"/alice", byID("e1"))
		aliceSID = refl.Find("{" + nsSID + "}stanza-id").AttrValue("id")
		if refl.Body() != "hello v3" || refl.Find("{"+nsSID+"}origin-id").AttrValue("id") != "o1" {
			t.Errorf("reflection: %s", refl.XML)
		}
		if !strings.HasSuffix(aliceSID, "~"+aliceMsgid) {
			t.Errorf("the reflection's stanza-id %q does not come from the echo's msgid %q: %s", aliceSID, aliceMsgid, refl.XML)
		}
		alice.ExpectNone(t, func(st testbed.Stanza) bool { return st.ID == "e1" }, time.Second)

		bob.Privmsg("#v3", "from bob")
		echo := bob.Expect(t, privmsgFrom("v3bob", "#v3", "from bob"), wait)
		_, bobMsgid = echo.GetTag("msgid")
		m := groupchatFrom(t, alice, r+"/v3bob", withBody("from bob"))
		sid := m.Find("{" + nsSID + "}stanza-id")
		if bobMsgid == "" || !strings.HasSuffix(sid.AttrValue("id"), "~"+bobMsgid) || sid.AttrValue("by") != r {
			t.Errorf("stanza-id from msgid %q: %s", bobMsgid, m.XML)
		}

		// A private message keeps its msgid too.
		bob.Privmsg("alice", "private v3")
		pe := bob.Expect(t, privmsgFrom("v3bob", "alice", "private v3"), wait)
		_, pmid := pe.GetTag("msgid")
		pm := alice.Expect(t, func(st testbed.Stanza) bool { return st.From == contact("v3bob") && st.Body() == "private v3" }, wait)
		if sid := pm.Find("{" + nsSID + "}stanza-id"); pmid == "" || sid.AttrValue("id") != pmid {
			t.Errorf("private message stanza-id, want msgid %q: %s", pmid, pm.XML)
		}
	})

	t.Run("message-tags replies", func(t *testing.T) {
		if aliceSID == "" || bobMsgid == "" {
			t.Fatal("the previous subtest (echo-message and msgid) did not get the ids this one needs")
		}
		bobSID := ""
		for _, raw := range alice.Received() {
			if strings.Contains(raw, "from bob") {
				st, _ := testbed.ParseStanza(raw)
				bobSID = st.Find("{" + nsSID + "}stanza-id").AttrValue("id")
			}
		}
		alice.SendRaw(`<message type='groupchat' to='` + r + `' id='rep1'><body>re: from bob</body><reply xmlns='urn:xmpp:reply:0' id='` + bobSID + `' to='` + r + `/v3bob'/></message>`)
		got := bob.Expect(t, privmsgFrom("alice", "#v3", "re: from bob"), wait)
		if _, v := got.GetTag("+draft/reply"); v != bobMsgid {
			t.Errorf("+draft/reply = %q, want bob's msgid %q", v, bobMsgid)
		}
		bob.Send("@+draft/reply=" + aliceMsgid + " PRIVMSG #v3 :thanks alice")
		m := groupchatFrom(t, alice, r+"/v3bob", withBody("thanks alice"))
		if rep := m.Find("{urn:xmpp:reply:0}reply"); rep.AttrValue("id") != aliceSID {
			t.Errorf("reply from IRC: want <reply id=%q>: %s", aliceSID, m.XML)
		}
	})

	t.Run("correction through echo-message", func(t *testing.T) {
		// With echo-message the reflection waits for the server's echo;
		// it must keep <replace/> as the direct reflection does on ngircd.
		alice.SendRaw(`<message type='groupchat' to='` + r + `' id='e2'><body>hello v3, fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='e1'/></message>`)
		bob.Expect(t, privmsgFrom("alice", "#v3", "hello v3, fixed"), wait)
		fix := groupchatFrom(t, alice, r+"/alice", byID("e2"))
		if fix.Body() != "hello v3, fixed" || fix.Find("{urn:xmpp:message-correct:0}replace").AttrValue("id") != "e1" {
			t.Errorf("the echoed correction must replace e1: %s", fix.XML)
		}
		if sid := fix.Find("{" + nsSID + "}stanza-id").AttrValue("id"); !strings.Contains(sid, "~") {
			t.Errorf("the echoed correction's stanza-id must carry the echo's msgid: %s", fix.XML)
		}
	})

	t.Run("chathistory replay on join", func(t *testing.T) {
		if d := time.Until(historyAt.Add(6 * time.Second)); d > 0 {
			time.Sleep(d) // older than the 5 s after which a delay is shown
		}
		hr := room("#hist3")
		joinRoom(t, alice, hr, "alice", "")
		// The server replays the channel's history right after the
		// JOIN (in a chathistory batch, with server-time); the user must
		// see it, with the lines' own time as delay.
		for _, body := range []string{"before you came 1", "before you came 2"} {
			m := alice.Expect(t, func(st testbed.Stanza) bool {
				return st.Name == "message" && st.From == hr+"/v3op" && st.Body() == body
			}, 5*time.Second)
			d := m.Find("{" + nsDelay + "}delay")
			stamp, err := time.Parse(time.RFC3339, d.AttrValue("stamp"))
			if err != nil {
				t.Errorf("a replayed line without delay: %s", m.XML)
				continue
			}
			if stamp.Before(historyAt.Truncate(time.Second)) || stamp.After(historyAt.Add(2*time.Second)) {
				t.Errorf("delay stamp %s is not the server-time of the line (sent at %s): %s", stamp, historyAt.UTC(), m.XML)
			}
		}
	})

	t.Run("server-time kept in the archive", func(t *testing.T) {
		hr := room("#hist3")
		time.Sleep(200 * time.Millisecond) // the archive is written every 50 ms
		msgs, res := mamQuery(t, alice, hr, "", "")
		if got := mamBodies(msgs); len(got) < 2 || got[0] != "before you came 1" || got[1] != "before you came 2" {
			t.Fatalf("the replayed lines are not archived: %q (%s)", got, res.XML)
		}
		for _, m := range msgs[:2] {
			d := m.Find("{" + nsMAM + "}result/{urn:xmpp:forward:0}forwarded/{" + nsDelay + "}delay")
			stamp, err := time.Parse(time.RFC3339, d.AttrValue("stamp"))
			if err != nil || stamp.Before(historyAt.Truncate(time.Second)) || stamp.After(historyAt.Add(2*time.Second)) {
				t.Errorf("the archived time is not the line's server-time (sent at %s): %s", historyAt.UTC(), m.XML)
			}
		}
		leaveRoom(t, alice, hr, "alice")
	})

	t.Run("multi-prefix", func(t *testing.T) {
		mr := room("#mp")
		op.Join("#mp")
		bob.Join("#mp")
		op.Send("SAMODE #mp +qh v3bob v3bob")
		bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "MODE" && strings.HasPrefix(m.Params[0], "#mp") }, wait)
		joinRoom(t, alice, mr, "alice", "")
		item := func(st testbed.Stanza) string {
			it := mucItem(st)
			return it.AttrValue("role") + "/" + it.AttrValue("affiliation")
		}
		if p := occupantPresence(t, alice, mr, "v3bob", nil); item(p) != "moderator/owner" {
			t.Errorf("~%%v3bob in NAMES: want moderator/owner, got %s", p.XML)
		}
		steps := []struct{ modes, want string }{
			{"-q", "moderator/member"}, // % stays: known only from multi-prefix NAMES
			{"+a", "moderator/owner"},
			{"-a+o", "moderator/admin"},
			{"-o-h+v", "participant/member"},
			{"-v", "participant/none"},
		}
		for _, st := range steps {
			n := strings.Count(st.modes, "q") + strings.Count(st.modes, "a") + strings.Count(st.modes, "o") + strings.Count(st.modes, "h") + strings.Count(st.modes, "v")
			op.Send("SAMODE #mp " + st.modes + strings.Repeat(" v3bob", n))
			got := occupantPresence(t, alice, mr, "v3bob", nil)
			if item(got) != st.want {
				t.Errorf("after MODE %s: want %s, got %s", st.modes, st.want, got.XML)
			}
		}
	})

	t.Run("away-notify", func(t *testing.T) {
		bob.Send("AWAY :lunch")
		p := occupantPresence(t, alice, r, "v3bob", func(st testbed.Stanza) bool { return st.Text("show") != "" })
		if p.Text("show") != "away" || p.Text("status") != "lunch" {
			t.Errorf("away: %s", p.XML)
		}
		bob.Send("AWAY")
		p = occupantPresence(t, alice, r, "v3bob", nil)
		if p.Type != "" || p.Text("show") != "" {
			t.Errorf("back: %s", p.XML)
		}
	})

	t.Run("chghost", func(t *testing.T) {
		cr := room("#cg")
		joinRoom(t, alice, cr, "alice", "") // first in: op
		bob.Join("#cg")
		occupantPresence(t, alice, cr, "v3bob", nil)
		op.Send("CHGHOST v3bob cloaked.example")
		bob.Expect(t, isCmd("396", ""), wait)
		// A line after CHGHOST on the same connection: once the user sees
		// it, the gateway has handled CHGHOST.
		bob.Privmsg("#cg", "after chghost")
		groupchatFrom(t, alice, cr+"/v3bob", withBody("after chghost"))
		// The gateway bans by host: it must use the new one.
		mark := s.tap.mark()
		res := alice.IQ(t, `<iq type='set' to='`+cr+`'><query xmlns='`+nsMUCAdmin+`'><item nick='v3bob' affiliation='outcast'/></query></iq>`, wait)
		if res.Type != "result" {
			t.Errorf("ban: %s", res.XML)
		}
		l := s.tap.wait(t, mark, `^MODE #cg \+b `, wait)
		if !regexp.MustCompile(`cloaked\.example\r\n$`).MatchString(l.raw) {
			t.Errorf("the ban mask ignores CHGHOST: %q", l.raw)
		}
		bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "KICK" && m.Params[1] == "v3bob" }, wait)
	})

	t.Run("muted channel: labeled 404 on the message id", func(t *testing.T) {
		op.Send("MODE #v3 +m")
		bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "MODE" && len(m.Params) > 1 && m.Params[1] == "+m" }, wait)
		mark := s.tap.mark()
		for i := 1; i <= 3; i++ {
			sendGroupchat(alice, r, fmt.Sprintf("muted%d", i), fmt.Sprintf("can anyone hear me %d", i))
		}
		for i := 1; i <= 3; i++ {
			e := alice.Expect(t, byID(fmt.Sprintf("muted%d", i)), wait)
			if e.Type != "error" || e.ErrorCondition() != "forbidden" || e.ErrorText() == "" {
				t.Errorf("message %d to a +m channel: %s", i, e.XML)
			}
		}
		if n := len(s.tap.linesOf(aliceConn, mark)); n < 3 {
			t.Errorf("%d lines written for 3 messages", n)
		}
		for _, l := range s.tap.linesOf(aliceConn, mark) {
			if strings.Contains(l, "PRIVMSG") && !strings.HasPrefix(l, "@label=") {
				t.Errorf("an unlabeled PRIVMSG with labeled-response on: %q", l)
			}
		}
		op.Send("MODE #v3 -m")
		bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "MODE" && m.Params[1] == "-m" }, wait)
		sendGroupchat(alice, r, "unmuted", "heard now")
		groupchatFrom(t, alice, r+"/alice", byID("unmuted"))
	})

	t.Run("PM to a missing nick", func(t *testing.T) {
		// With labeled-response the 401 names the message it answers.
		alice.SendRaw(`<message type='chat' to='` + contact("nobodyv3") + `' id='pmx'><body>anyone?</body></message>`)
		if e := alice.Expect(t, byID("pmx"), 5*time.Second); e.Type != "error" || e.ErrorCondition() != "item-not-found" || e.ErrorText() == "" {
			t.Errorf("PM to a missing nick: %s", e.XML)
		}
	})

	t.Run("nick changed by the server", func(t *testing.T) {
		// Last: the user's nick is not alice any more afterwards.
		op.Send("SANICK alice alice_forced")
		gone := occupantPresence(t, alice, r, "alice", func(st testbed.Stanza) bool { return st.Type == "unavailable" })
		if !hasStatus(gone, "303") || !hasStatus(gone, "110") || mucItem(gone).AttrValue("nick") != "alice_forced" {
			t.Errorf("a nick change forced by the server: %s", gone.XML)
		}
		occupantPresence(t, alice, r, "alice_forced", func(st testbed.Stanza) bool { return st.Type == "" && hasStatus(st, "110") })
		sendGroupchat(alice, r, "forced1", "my new name")
		bob.Expect(t, privmsgFrom("alice_forced", "#v3", "my new name"), wait)
		groupchatFrom(t, alice, r+"/alice_forced", byID("forced1"))
	})
}
