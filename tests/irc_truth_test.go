package tests

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/tests/testbed"
)

// floodRecord counts, per message id, what the sender was told: a
// reflection (room), a receipt (private message) or an error.
type floodRecord struct {
	mu      sync.Mutex
	told    map[string]string // id → "reflected", "receipt" or "error <condition>: <text>"
	twice   []string
	changed chan struct{}
}

func newFloodRecord() *floodRecord {
	return &floodRecord{told: map[string]string{}, changed: make(chan struct{}, 1)}
}

// onStanza is an XMPPOptions.OnStanza: it consumes the answers to the
// flood (ids f… and p…) and leaves everything else to Expect.
func (fr *floodRecord) onStanza(st testbed.Stanza) bool {
	var id, what string
	switch {
	case st.Name == "message" && st.Type == "error" && isFloodID(st.ID):
		id, what = st.ID, "error "+st.ErrorCondition()+": "+st.ErrorText()
	case st.Name == "message" && st.Type == "groupchat" && isFloodID(st.ID) && st.Find("body") != nil:
		id, what = st.ID, "reflected"
	case st.Name == "message" && st.Find("{"+nsReceipts+"}received") != nil:
		id, what = st.Find("{"+nsReceipts+"}received").AttrValue("id"), "receipt"
		if !isFloodID(id) {
			return false
		}
	default:
		return false
	}
	fr.mu.Lock()
	if prev, ok := fr.told[id]; ok {
		fr.twice = append(fr.twice, id+": "+prev+" then "+what)
	} else {
		fr.told[id] = what
	}
	fr.mu.Unlock()
	select {
	case fr.changed <- struct{}{}:
	default:
	}
	return true
}

func isFloodID(id string) bool {
	return len(id) == 4 && (id[0] == 'f' || id[0] == 'p')
}

// waitAll waits until every id in ids was answered, or timeout.
func (fr *floodRecord) waitAll(ids []string, timeout time.Duration) {
	deadline := time.After(timeout)
	for {
		fr.mu.Lock()
		n := 0
		for _, id := range ids {
			if _, ok := fr.told[id]; ok {
				n++
			}
		}
		fr.mu.Unlock()
		if n == len(ids) {
			return
		}
		select {
		case <-fr.changed:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			return
		}
	}
}

// TestIRCReflectOnlyWhatReachedIRC sends 200 messages at 20 per second
// (a private message with a receipt request every tenth) through the
// default rate limit of 2 lines per second, then kills the gateway (-9),
// stops it (SIGTERM) or kills ngircd. In every case no message may be
// reflected (or receipted) whose line the gateway never wrote to the IRC
// connection (the tap in front of ngircd records every line written).
// After SIGTERM and after the ircd's death every message must have been
// answered, with a reflection or an error with a sentence (never silence),
// and on SIGTERM IRC must see the QUIT reason, not a dropped connection.
func TestIRCReflectOnlyWhatReachedIRC(t *testing.T) {
	for _, scenario := range []string{"gateway killed", "gateway stopped", "ircd killed"} {
		t.Run(scenario, func(t *testing.T) {
			s := newIRCStack(t, ircStackOptions{})
			w := s.irc(t, "floodw")
			w.Join("#flood")
			fr := newFloodRecord()
			alice := testbed.DialXMPPOpts(t, s.prosody.C2SAddr(), jid.MustParse("alice@localhost/flood"), password,
				testbed.XMPPOptions{OnStanza: fr.onStanza})
			r := room("#flood")
			joinRoom(t, alice, r, "alice", "")
			expectSubject(t, alice, r)

			mark := s.tap.mark()
			var ids []string
			for i := 0; i < 200; i++ {
				if i%10 == 9 {
					id := fmt.Sprintf("p%03d", i)
					alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='%s'><body>flood %03d</body><request xmlns='%s'/></message>`,
						contact("floodw"), id, i, nsReceipts))
					ids = append(ids, id)
				} else {
					id := fmt.Sprintf("f%03d", i)
					sendGroupchat(alice, r, id, fmt.Sprintf("flood %03d", i))
					ids = append(ids, id)
				}
				time.Sleep(50 * time.Millisecond)
			}

			switch scenario {
			case "gateway killed":
				s.gw.Kill()
				time.Sleep(2 * time.Second) // what Prosody already had arrives
			case "gateway stopped":
				stopped := time.Now()
				s.gw.Stop()
				t.Logf("the gateway stopped %s after SIGTERM", time.Since(stopped).Round(10*time.Millisecond))
				fr.waitAll(ids, 10*time.Second)
				s.tap.wait(t, mark, `^QUIT :?The gateway is shutting down`, wait)
				q := w.Expect(t, isCmd("QUIT", "alice"), wait)
				if reason := q.Params[len(q.Params)-1]; !strings.Contains(reason, "The gateway is shutting down") {
					t.Errorf("IRC saw alice quit with %q, not the gateway's reason", reason)
				}
			case "ircd killed":
				s.ng.Kill()
				fr.waitAll(ids, 15*time.Second)
			}

			onIRC := map[int]bool{}
			re := regexp.MustCompile(`^PRIVMSG (#flood|floodw) :flood (\d{3})$`)
			for _, l := range s.tap.since(mark) {
				if m := re.FindStringSubmatch(strings.TrimRight(l.raw, "\r\n")); m != nil {
					var n int
					fmt.Sscanf(m[2], "%d", &n)
					onIRC[n] = true
				}
			}
			fr.mu.Lock()
			defer fr.mu.Unlock()
			var lies, silent, badErrors []string
			reflected, receipted, errored, constrained := 0, 0, 0, 0
			for i, id := range ids {
				what, ok := fr.told[id]
				switch {
				case !ok:
					silent = append(silent, id)
				case what == "reflected" || what == "receipt":
					if what == "reflected" {
						reflected++
					} else {
						receipted++
					}
					if !onIRC[i] {
						lies = append(lies, id)
					}
				default:
					errored++
					if strings.HasPrefix(what, "error resource-constraint") {
						constrained++
					}
					cond, text, _ := strings.Cut(strings.TrimPrefix(what, "error "), ": ")
					switch cond {
					case "resource-constraint", "remote-server-timeout", "recipient-unavailable":
					default:
						badErrors = append(badErrors, id+": "+what)
					}
					if text == "" {
						badErrors = append(badErrors, id+": an error without a sentence")
					}
				}
			}
			t.Logf("%s: %d messages, %d on IRC, %d reflected, %d receipted, %d errors (%d resource-constraint), %d unanswered",
				scenario, len(ids), len(onIRC), reflected, receipted, errored, constrained, len(silent))
			if len(lies) > 0 {
				t.Errorf("%d messages were reflected or receipted but never written to IRC: %v", len(lies), lies)
			}
			if len(fr.twice) > 0 {
				t.Errorf("messages answered twice: %v", fr.twice)
			}
			if len(badErrors) > 0 {
				t.Errorf("errors with the wrong condition or no sentence: %v", badErrors)
			}
			if constrained == 0 {
				t.Errorf("200 messages at 20/s through 2 lines/s: the backlog cap never answered resource-constraint")
			}
			if scenario != "gateway killed" && len(silent) > 0 {
				t.Errorf("%d messages got neither a reflection nor an error: %v", len(silent), silent)
			}
			if scenario == "gateway killed" {
				for _, id := range ids {
					if strings.HasPrefix(fr.told[id], "error ") && !strings.HasPrefix(fr.told[id], "error resource-constraint") {
						t.Logf("note: %s errored before the kill: %s", id, fr.told[id])
					}
				}
			}
		})
	}
}

// TestIRCLeaveRoomNotIn: unavailable presence to a room the user is not
// in (any user can send it, at will) is ignored quietly: no warning in
// the log, nothing counted in switchboard_events_dropped_total, and the
// user's real rooms are untouched.
func TestIRCLeaveRoomNotIn(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{})
	w := s.irc(t, "leavew")
	w.Join("#in")
	alice := s.user("alice")
	joinRoom(t, alice, room("#in"), "alice", "")
	w.Expect(t, isCmd("JOIN", "alice"), wait)
	logBefore := len(readFile(t, s.gw.LogPath))
	for i := 0; i < 20; i++ {
		alice.SendRaw(fmt.Sprintf(`<presence type='unavailable' to='%s/alice'/>`, room(fmt.Sprintf("#notin%d", i))))
	}
	// A round trip through the gateway: everything before it was handled.
	alice.IQ(t, `<iq type='get' to='`+ircDomain+`'><ping xmlns='urn:xmpp:ping'/></iq>`, wait)
	time.Sleep(500 * time.Millisecond)
	logText := readFile(t, s.gw.LogPath)[logBefore:]
	for _, l := range strings.Split(logText, "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			t.Errorf("a leave of a room the user is not in was logged: %s", l)
		}
	}
	if v := metricValue(t, s.gw.URL("/metrics"), "switchboard_events_dropped_total"); v != 0 {
		t.Errorf("switchboard_events_dropped_total = %v after leaves of rooms the user is not in; want 0", v)
	}
	alice.ExpectNone(t, func(st testbed.Stanza) bool {
		return st.Name == "presence" && strings.Contains(st.From, "#notin")
	}, 500*time.Millisecond)
	w.ExpectNone(t, func(m *ircmsg.Message) bool { return m.Nick() == "alice" && m.Command != "PRIVMSG" }, 500*time.Millisecond)
	sendGroupchat(alice, room("#in"), "still1", "still here")
	w.Expect(t, privmsgFrom("alice", "#in", "still here"), wait)
}

// readFile returns a file's text ("" when it does not exist).
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// metricValue sums a metric's samples on a /metrics page.
func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			f := strings.Fields(l)
			var v float64
			fmt.Sscanf(f[len(f)-1], "%g", &v)
			sum += v
		}
	}
	return sum
}

// waitLinkUp polls the gateway's /healthz (200 only while every component
// link is up).
func waitLinkUp(t *testing.T, gw *testbed.Gateway, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(gw.URL("/healthz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the component link did not come up within %s:\n%s", timeout, gw.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// retryIns returns the retry_in values of the gateway's "component link
// down" log lines after offset.
func retryIns(t *testing.T, gw *testbed.Gateway, offset int) []time.Duration {
	t.Helper()
	var out []time.Duration
	re := regexp.MustCompile(`component link down.* retry_in=(\S+)`)
	for _, l := range strings.Split(readFile(t, gw.LogPath)[offset:], "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			d, err := time.ParseDuration(m[1])
			if err != nil {
				t.Fatalf("retry_in %q: %v", m[1], err)
			}
			out = append(out, d)
		}
	}
	return out
}

// TestIRCXMPPServerRestarts kills Prosody (-9) twice, a few seconds apart:
// the link's reconnect backoff starts over after each successful
// handshake (the first retry of the second outage comes as soon as the
// first retry of the first), and a TCP close without </stream:stream> is
// logged as the XMPP server closing the connection, not as malformed XML.
func TestIRCXMPPServerRestarts(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{})
	waitLinkUp(t, s.gw, wait)
	offset := len(readFile(t, s.gw.LogPath))
	var secondOffset int
	for round := 1; round <= 2; round++ {
		if round == 2 {
			secondOffset = len(readFile(t, s.gw.LogPath))
		}
		s.prosody.Kill()
		time.Sleep(1500 * time.Millisecond) // the first retry finds nobody
		s.prosody.Start()
		up := waitLinkUp(t, s.gw, 30*time.Second)
		t.Logf("round %d: link up again at %s", round, up.Format("15:04:05.000"))
		time.Sleep(3 * time.Second)
	}
	logText := readFile(t, s.gw.LogPath)[offset:]
	var downs []string
	for _, l := range strings.Split(logText, "\n") {
		if strings.Contains(l, "component link down") {
			downs = append(downs, l)
		}
	}
	for _, l := range downs {
		if strings.Contains(l, "syntax error") || strings.Contains(l, "unexpected EOF") {
			t.Errorf("a closed connection logged as an XML error: %s", l)
		}
	}
	if !strings.Contains(logText, "the XMPP server closed the connection") {
		t.Errorf("no \"the XMPP server closed the connection\" in the log; link-down lines:\n%s", strings.Join(downs, "\n"))
	}
	// The first line of the second outage is the link dropping; its
	// retry_in must be the shortest backoff (1 s ± 20 %), as in the first.
	t.Logf("retry_in values: %v", retryIns(t, s.gw, offset))
	second := retryIns(t, s.gw, secondOffset)
	if len(second) == 0 {
		t.Fatalf("no link-down line in the second outage:\n%s", strings.Join(downs, "\n"))
	}
	if second[0] > 1200*time.Millisecond {
		t.Errorf("the first retry after the second outage waited %s; the backoff must start over after a successful handshake (≤ 1.2 s)", second[0])
	}
}

// answerPings makes a test client answer XEP-0199 pings, as real clients do.
func answerPings(c *testbed.XMPPClient) {
	c.SetIQResponder(func(req testbed.Stanza) string {
		if req.Find("{urn:xmpp:ping}ping") == nil {
			return ""
		}
		return fmt.Sprintf(`<iq type='result' to='%s' id='%s'/>`, xmlText(req.From), xmlText(req.ID))
	})
}

// TestIRCXMPPServerCrashLeavesGhosts kills Prosody (-9) under two users
// in a room and starts it again. Alice's client does not come back: once
// the component link is up again, the gateway must find out (a ping to
// her full JID fails) and leave the room on IRC, so that she is no ghost.
// Bob's client comes back with the same resource and answers pings: he
// stays in the room, and his messages still go out.
func TestIRCXMPPServerCrashLeavesGhosts(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{})
	w := s.irc(t, "ghostw")
	w.Join("#ghost")
	r := room("#ghost")
	alice := s.userRes(t, "alice", "gone")
	answerPings(alice)
	joinRoom(t, alice, r, "alice", "")
	w.Expect(t, isCmd("JOIN", "alice"), wait)
	bob := s.userRes(t, "bob", "back")
	answerPings(bob)
	joinRoom(t, bob, r, "bob", "")
	w.Expect(t, isCmd("JOIN", "bob"), wait)

	s.prosody.Kill()
	killed := time.Now()
	s.prosody.Start()
	bob2 := s.userRes(t, "bob", "back")
	answerPings(bob2)
	waitLinkUp(t, s.gw, 30*time.Second)

	m := w.Expect(t, func(m *ircmsg.Message) bool {
		return m.Nick() == "alice" && (m.Command == "PART" || m.Command == "QUIT")
	}, 30*time.Second)
	t.Logf("alice left IRC (%s) %s after Prosody was killed", m.Command, time.Since(killed).Round(100*time.Millisecond))
	w.ExpectNone(t, func(m *ircmsg.Message) bool {
		return m.Nick() == "bob" && (m.Command == "PART" || m.Command == "QUIT")
	}, 3*time.Second)
	sendGroupchat(bob2, r, "after1", "bob is still here")
	w.Expect(t, privmsgFrom("bob", "#ghost", "bob is still here"), wait)
}

// TestIRCGatewayCrashTellsOccupants kills the gateway (-9) under a user
// with two resources in two rooms and starts it again: each full JID
// gets, for each room it was in, an unavailable self-presence with status
// 332 and a sentence, so that clients join again at once. After a clean
// stop there is nothing more to tell: a start after it sends nothing.
func TestIRCGatewayCrashTellsOccupants(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{})
	phone := s.userRes(t, "alice", "phone")
	laptop := s.userRes(t, "alice", "laptop")
	r1, r2 := room("#crash1"), room("#crash2")
	joinRoom(t, phone, r1, "alice", "")
	joinRoom(t, phone, r2, "alice", "")
	joinRoom(t, laptop, r1, "alice", "")

	s.gw.Kill()
	s.gw.Start()
	for _, c := range []struct {
		cl   *testbed.XMPPClient
		room string
	}{{phone, r1}, {phone, r2}, {laptop, r1}} {
		p := c.cl.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "presence" && st.Type == "unavailable" && strings.HasPrefix(st.From, c.room+"/") && hasStatus(st, "110")
		}, 30*time.Second)
		if !hasStatus(p, "332") || p.Text("status") == "" {
			t.Errorf("%s in %s: the restart notice needs status 332 and a sentence: %s", c.cl.JID, c.room, p.XML)
		}
	}
	laptop.ExpectNone(t, func(st testbed.Stanza) bool {
		return st.Name == "presence" && strings.HasPrefix(st.From, r2+"/")
	}, time.Second)

	// Rejoin, stop cleanly (the stop itself tells), start: nothing more.
	joinRoom(t, phone, r1, "alice", "")
	s.gw.Stop()
	phone.Expect(t, func(st testbed.Stanza) bool {
		return st.Name == "presence" && st.Type == "unavailable" && strings.HasPrefix(st.From, r1+"/") && hasStatus(st, "110")
	}, wait)
	s.gw.Start()
	waitLinkUp(t, s.gw, 30*time.Second)
	phone.ExpectNone(t, func(st testbed.Stanza) bool {
		return st.Name == "presence" && st.Type == "unavailable" && strings.HasPrefix(st.From, r1+"/")
	}, 3*time.Second)
}

// TestIRCRawCommandReplies sends raw commands to the server JID (WHOIS,
// MOTD, TIME, VERSION, LUSERS): every reply comes back, as readable text,
// in one message per command.
func TestIRCRawCommandReplies(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{})
	w := testbed.DialIRCOpts(t, s.addr, testbed.IRCOptions{Nick: "whoisme", RealName: "Somebody To Find"})
	w.Join("#rawr")
	alice := s.user("alice")
	joinRoom(t, alice, room("#rawr"), "alice", "")
	fromServer := func(pred func(string) bool) func(testbed.Stanza) bool {
		return func(st testbed.Stanza) bool {
			return st.Name == "message" && st.From == serverJID && st.Type != "error" && pred(st.Body())
		}
	}
	for _, c := range []struct {
		cmd  string
		want []string
	}{
		{"WHOIS whoisme", []string{"whoisme is ", "Somebody To Find", "whoisme is in", "End of"}},
		{"MOTD", []string{"MOTD"}},
		{"TIME", []string{"Time on "}},
		{"VERSION", []string{"ngircd"}},
		{"LUSERS", []string{"There are ", "global users"}},
	} {
		alice.SendRaw(`<message type='chat' to='` + serverJID + `'><body>` + c.cmd + `</body></message>`)
		m := alice.Expect(t, fromServer(func(body string) bool { return strings.Contains(strings.ToLower(body), strings.ToLower(c.want[0])) }), wait)
		for _, w := range c.want[1:] {
			if !strings.Contains(m.Body(), w) {
				t.Errorf("%s: the reply lacks %q:\n%s", c.cmd, w, m.Body())
			}
		}
		if regexp.MustCompile(`(?m)^\d{3} `).MatchString(m.Body()) {
			t.Errorf("%s: a bare numeric in the reply:\n%s", c.cmd, m.Body())
		}
		t.Logf("%s →\n%s", c.cmd, m.Body())
	}
}

// TestIRCRoomAliasSpellings: on an open gateway a room can be named by the
// configured network's host, and a backslash may be escaped where it need
// not be. The gateway answers from one JID per room, so a join by another
// spelling is refused with <gone/> naming the room's address (instead of
// being answered from a JID the client never joined, so that its join
// never completes); a join at that address works.
func TestIRCRoomAliasSpellings(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{irc: map[string]any{"open": true, "open_allow_private": true}})
	alice := s.user("alice")
	for _, c := range []struct{ alias, canon string }{
		{"#t%127.0.0.1@" + ircDomain, "#t%local@" + ircDomain},
		{`#a\5c\5cb%local@` + ircDomain, `#a\\b%local@` + ircDomain},
	} {
		alice.SendRaw(fmt.Sprintf(`<presence to='%s/alice' id='al1'><x xmlns='%s'/></presence>`, c.alias, nsMUC))
		st := alice.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "presence" && (strings.HasPrefix(st.From, "#t%") || strings.HasPrefix(st.From, "#a"))
		}, wait)
		if st.From != c.alias+"/alice" {
			t.Errorf("joining %s: answered from %s, not the JID joined", c.alias, st.From)
		}
		if st.Type != "error" || st.ErrorCondition() != "gone" || !strings.Contains(st.ErrorText(), c.canon) {
			t.Errorf("joining %s: want <gone/> naming %s, got %s", c.alias, c.canon, st.XML)
		}
		self := joinRoom(t, alice, c.canon, "alice", "")
		if self.From != c.canon+"/alice" {
			t.Errorf("joining %s: self-presence from %s", c.canon, self.From)
		}
	}
}

// TestIRCSettingsValidation: registration and configure refuse IRC-bound
// settings that cannot be sent (too long for an IRC line, control
// characters including TAB and U+0085) with a sentence that quotes at
// most a short prefix of the input; after-connect commands are stored
// sealed and never shown back, and still sent.
func TestIRCSettingsValidation(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{})
	bob := s.user("bob")
	long := strings.Repeat("x", 100_000)
	for _, c := range []struct {
		name   string
		fields map[string][]string
	}{
		{"realname too long for USER", map[string][]string{"realname": {strings.Repeat("R", 600)}}},
		{"realname with TAB", map[string][]string{"realname": {"Bob\tReal"}}},
		{"realname with U+0085", map[string][]string{"realname": {"Bob\u0085Real"}}},
		{"100 KB nick", map[string][]string{"nick": {long}}},
		{"100 KB username", map[string][]string{"username": {long}}},
	} {
		res := register(t, bob, c.fields)
		if res.Type != "error" || res.ErrorText() == "" {
			t.Errorf("%s: registration accepted it: %s", c.name, res.XML)
			continue
		}
		if n := len(res.ErrorText()); n > 300 {
			t.Errorf("%s: the error text is %d bytes; it must quote at most a short prefix", c.name, n)
		}
		t.Logf("%s → %s: %s", c.name, res.ErrorCondition(), res.ErrorText())
	}
	for _, c := range []struct {
		name   string
		fields map[string][]string
	}{
		{"realname too long", map[string][]string{"realname": {strings.Repeat("R", 600)}}},
		{"command with TAB", map[string][]string{"commands": {"PRIVMSG NickServ :IDENTIFY a\tb"}}},
		{"command too long", map[string][]string{"commands": {"PRIVMSG NickServ :" + strings.Repeat("y", 600)}}},
		{"100 KB nick", map[string][]string{"nick": {long}}},
	} {
		_, done := command(t, bob, serverJID, "configure", c.fields)
		if done.Type != "error" || done.ErrorText() == "" || len(done.ErrorText()) > 300 {
			t.Errorf("%s: configure: want an error with a short sentence, got %.400s", c.name, done.XML)
		}
	}

	// After-connect commands: sealed, not shown back, still sent.
	w := s.irc(t, "nickservw")
	const secret = "hunter2-sealed-secret"
	_, done := command(t, bob, serverJID, "configure", map[string][]string{"commands": {"PRIVMSG nickservw :IDENTIFY " + secret}})
	if done.Type != "result" {
		t.Fatalf("configure commands: %s", done.XML)
	}
	form, done := command(t, bob, serverJID, "configure", map[string][]string{})
	if strings.Contains(form.XML, secret) || strings.Contains(done.XML, secret) {
		t.Errorf("the configure form shows the saved commands back: %s", form.XML)
	}
	dir := filepath.Dir(s.gw.ConfigPath)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "switchboard.db") {
			if b, _ := os.ReadFile(filepath.Join(dir, e.Name())); strings.Contains(string(b), secret) {
				t.Errorf("%s holds the after-connect command in plaintext", e.Name())
			}
		}
	}
	joinRoom(t, bob, room("#sealed"), "bob", "")
	w.Expect(t, privmsgFrom("bob", "nickservw", "IDENTIFY "+secret), wait)
}

// startCommand runs the first step of configure on the gateway and
// returns the answer.
func startCommand(t *testing.T, c *testbed.XMPPClient) testbed.Stanza {
	t.Helper()
	return c.IQ(t, fmt.Sprintf(`<iq type='set' to='%s'><command xmlns='%s' node='configure' action='execute'/></iq>`, ircDomain, nsCommands), wait)
}

// TestIRCCommandSessionLimits: one user opening 1,000 ad-hoc command
// sessions (never finishing them) neither locks other users nor admins
// out, and a user's sessions end when the resource goes offline.
func TestIRCCommandSessionLimits(t *testing.T) {
	s := newIRCStack(t, ircStackOptions{})
	mallory := s.user("bob")
	var last testbed.Stanza
	opened := 0
	for i := 0; i < 1000; i++ {
		last = startCommand(t, mallory)
		if last.Type == "result" {
			opened++
		}
	}
	t.Logf("one user started 1000 sessions (%d answered with a form)", opened)
	t.Logf("the 1000th session: %.200s", last.XML)
	for _, name := range []string{"carol", "admin"} {
		c := s.user(name)
		if res := startCommand(t, c); res.Type != "result" {
			t.Errorf("%s cannot run a command after another user opened 1000 sessions: %s", name, res.XML)
		}
	}

	// Sessions end when their resource goes offline.
	alice := s.userRes(t, "alice", "laptop")
	alice.SendRaw(`<presence to='` + ircDomain + `'/>`)
	form := startCommand(t, alice)
	sid := form.Find("{" + nsCommands + "}command").AttrValue("sessionid")
	if form.Type != "result" || sid == "" {
		t.Fatalf("configure: %s", form.XML)
	}
	alice.Close()
	time.Sleep(time.Second)
	again := s.userRes(t, "alice", "laptop")
	res := again.IQ(t, fmt.Sprintf(`<iq type='set' to='%s'><command xmlns='%s' node='configure' sessionid='%s' action='complete'/></iq>`, ircDomain, nsCommands, sid), wait)
	if res.Type != "error" {
		t.Errorf("a session of a resource that went offline is still there: %s", res.XML)
	}
}
