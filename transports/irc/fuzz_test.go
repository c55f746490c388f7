package irc

import (
	"strings"
	"testing"

	"github.com/ergochat/irc-go/ircmsg"

	"switchboard/bridge"
)

// checkLines asserts the invariants of every line the gateway queued for
// the server: one line each (no NUL, CR or LF inside), at most 512 bytes
// without tags, and parseable.
func checkLines(t *testing.T, lines []string) []ircmsg.Message {
	t.Helper()
	var out []ircmsg.Message
	for _, l := range lines {
		if strings.ContainsAny(l, "\x00\r\n") {
			t.Fatalf("a queued line holds NUL, CR or LF: %q", l)
		}
		body := l
		if strings.HasPrefix(l, "@") {
			_, body, _ = strings.Cut(l, " ")
		}
		if len(body)+2 > maxLine {
			t.Fatalf("a queued line is %d bytes: %q", len(body)+2, l)
		}
		m, err := ircmsg.ParseLine(l)
		if err != nil {
			t.Fatalf("a queued line does not parse: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// FuzzSendText sends arbitrary text from XMPP to a channel and to a nick,
// and checks that only well-formed PRIVMSGs to the right target leave,
// with every character of the (cleaned) text.
func FuzzSendText(f *testing.F) {
	f.Add("hello", false, "bob")
	f.Add("a\r\nJOIN #evil", false, "bob")
	f.Add("x\x00QUIT", true, "bob,#evil")
	f.Add(strings.Repeat("é", 400), false, "bob")
	f.Add("", false, "bob\r\nQUIT")
	s, n, u := newTestNetwork(f, func(c *Config) { c.MaxLines = ptr(100000) })
	s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#chan").Occupant("alice"), MUC: true})
	feed(f, n, ":alice!al@h JOIN #chan", ":irc.test 353 alice = #chan :alice @bob", ":irc.test 366 alice #chan :End", ":irc.test 324 alice #chan +nt")
	sent(n)
	u.drop = true
	f.Fuzz(func(t *testing.T, body string, action bool, nick string) {
		want := strings.Join(cleanText(body), "")
		for _, to := range []struct {
			target string
			ev     bridge.SendMessage
		}{
			{"#chan", bridge.SendMessage{From: phone, To: roomAddr("#chan"), Type: bridge.Groupchat, ID: "f", Body: body, Action: action}},
			{nick, bridge.SendMessage{From: phone, To: n.contact(nick), Type: bridge.Chat, ID: "f", Body: body, Action: action}},
		} {
			s.sendMessage(to.ev)
			msgs := checkLines(t, sent(n))
			var got strings.Builder
			for _, m := range msgs {
				if m.Command != "PRIVMSG" || len(m.Params) != 2 || m.Params[0] != to.target {
					t.Fatalf("unexpected line %s %q", m.Command, m.Params)
				}
				if !validTarget(m.Params[0]) {
					t.Fatalf("invalid target %q went out", m.Params[0])
				}
				text := m.Params[1]
				if action {
					c, ok := parseCTCP(text)
					if !ok || c.Command != "ACTION" {
						t.Fatalf("action line %q", text)
					}
					text = c.Args
				} else if strings.HasPrefix(text, "\x01") {
					t.Fatalf("a CTCP was forged: %q", text)
				}
				got.WriteString(text)
			}
			if len(msgs) > 0 && got.String() != want {
				t.Fatalf("text changed on the way:\n got %q\nwant %q", got.String(), want)
			}
		}
	})
}

// FuzzIRCLine feeds arbitrary server lines to a session in a channel: it
// must not panic, must answer only with well-formed lines, and must give
// XMPP only text that XML can carry.
func FuzzIRCLine(f *testing.F) {
	for _, l := range []string{
		":bob!b@h PRIVMSG #chan :hello",
		":bob!b@h PRIVMSG alice :\x01VERSION\x01",
		":bob!b@h PRIVMSG alice :\x01PING \x02x\x01",
		"PING :irc.test",
		":irc.test 353 alice = #chan :~&@%+bob!b@h carol",
		":bob!b@h MODE #chan +ov-b+l alice bob *!*@* 5",
		":bob!b@h KICK #chan alice :bye",
		":bob!b@h NICK :alice",
		"@time=bogus;msgid=\\:x :bob!b@h PRIVMSG #chan :\x0304,12c\x02o\x1dl",
		":irc.test 005 alice PREFIX=(q)~ CASEMAPPING=ascii CHANTYPES= :are supported",
		":irc.test CAP * LS * :sasl=PLAIN",
		":irc.test 433 * alice :in use",
		"ERROR :Closing link",
	} {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line string) {
		s, n, u := newTestNetwork(t, nil)
		s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#chan").Occupant("alice"), MUC: true})
		feed(t, n, ":alice!al@h JOIN #chan", ":irc.test 353 alice = #chan :alice @bob", ":irc.test 366 alice #chan :End", ":irc.test 324 alice #chan +nt")
		sent(n)
		u.events = nil
		c := n.c
		m, err := ircmsg.ParseLine(line)
		if err != nil {
			return
		}
		n.handle(&m)
		c.mu.Lock()
		var lines []string
		for _, l := range c.queue {
			lines = append(lines, strings.TrimSuffix(string(l.b), "\r\n"))
		}
		c.mu.Unlock()
		checkLines(t, lines)
		for _, ev := range u.events {
			var texts []string
			switch ev := ev.(type) {
			case bridge.Message:
				texts = []string{ev.Body}
			case bridge.RoomSubject:
				texts = []string{ev.Subject}
			case bridge.OccupantChanged:
				texts = []string{ev.Reason, ev.Occupant.Status}
			}
			for _, s := range texts {
				// The component removes what XML 1.0 cannot carry
				// (TestRenderMessage); formatting and controls are ours.
				if hasControl(strings.ReplaceAll(s, "\n", "")) {
					t.Fatalf("a control character reached XMPP: %q", s)
				}
			}
		}
	})
}
