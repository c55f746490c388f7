package tests

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/tests/testbed"
)

// This file holds the helpers of the IRC end-to-end tests (irc_*_test.go):
// a stack with a choice of IRC server and a tap that records every line
// the gateway writes to it, and XMPP helpers for MUC, MAM, ad-hoc commands
// and registration.

const (
	nsMUC      = "http://jabber.org/protocol/muc"
	nsMUCUser  = "http://jabber.org/protocol/muc#user"
	nsMUCAdmin = "http://jabber.org/protocol/muc#admin"
	nsMAM      = "urn:xmpp:mam:2"
	nsRSM      = "http://jabber.org/protocol/rsm"
	nsSID      = "urn:xmpp:sid:0"
	nsDelay    = "urn:xmpp:delay"
	nsCommands = "http://jabber.org/protocol/commands"
	nsData     = "jabber:x:data"
)

// ircStackOptions configures newIRCStack.
type ircStackOptions struct {
	// insp runs InspIRCd (IRCv3) instead of ngircd.
	insp     bool
	ngircd   testbed.NgircdOptions
	inspOpts testbed.InspOptions
	// irc is merged into the gateway's [irc] section (rate, max_lines, …).
	irc map[string]any
	// secondNetwork adds a network "other" that reaches the same IRC
	// server through another address (localhost instead of 127.0.0.1).
	secondNetwork bool
	// users are registered on Prosody besides alice, bob, carol and admin.
	users []string
	// atheme links Atheme (NickServ, SaslServ) to the InspIRCd (with
	// insp: inspOpts.Services is set to services.test).
	atheme bool
	// tlsNetwork adds a network "secure" that reaches the InspIRCd's TLS
	// port (inspOpts.TLS is set) directly, not through the tap, as
	// localhost (the gateway refuses two networks on one host), pinning
	// its certificate. Not with secondNetwork, which uses localhost too.
	tlsNetwork bool
}

// ircStack is Prosody, one IRC server, a tap between the gateway and that
// server, and the gateway.
type ircStack struct {
	t       *testing.T
	prosody *testbed.Prosody
	ng      *testbed.Ngircd
	insp    *testbed.InspIRCd
	atheme  *testbed.Atheme
	tap     *ircTap
	gw      *testbed.Gateway
	// addr is the IRC server itself (test clients connect here directly).
	addr string
}

func newIRCStack(t *testing.T, opts ircStackOptions) *ircStack {
	t.Helper()
	s := &ircStack{t: t}
	if (opts.atheme || opts.tlsNetwork) && !opts.insp || opts.tlsNetwork && opts.secondNetwork {
		t.Fatal("newIRCStack: atheme and tlsNetwork need insp; tlsNetwork and secondNetwork exclude each other")
	}
	s.prosody = testbed.StartProsody(t, testbed.ProsodyOptions{
		Components: map[string]string{ircDomain: ircSecret},
	})
	users := append([]string{"alice", "bob", "carol", "admin"}, opts.users...)
	registerUsers(t, s.prosody, users)
	if opts.insp {
		if opts.atheme {
			opts.inspOpts.Services = "services.test"
		}
		if opts.tlsNetwork {
			opts.inspOpts.TLS = true
		}
		s.insp = testbed.StartInspIRCd(t, opts.inspOpts)
		s.addr = s.insp.Addr()
		if opts.atheme {
			s.atheme = testbed.StartAtheme(t, s.insp, testbed.AthemeOptions{})
		}
	} else {
		o := opts.ngircd
		o.NoFloodLimit = true
		s.ng = testbed.StartNgircd(t, o)
		s.addr = s.ng.Addr()
	}
	s.tap = startIRCTap(t, s.addr)
	networks := []testbed.GatewayIRCNetwork{{Name: "local", Address: s.tap.Addr()}}
	if opts.secondNetwork {
		_, port, _ := net.SplitHostPort(s.tap.Addr())
		networks = append(networks, testbed.GatewayIRCNetwork{Name: "other", Address: "localhost:" + port})
	}
	if opts.tlsNetwork {
		networks = append(networks, testbed.GatewayIRCNetwork{Name: "secure", Address: "localhost:" + strconv.Itoa(s.insp.TLSPort()), TLS: true, Fingerprint: s.insp.CertFingerprint})
	}
	var extra map[string]any
	if opts.irc != nil {
		extra = map[string]any{"irc": opts.irc}
	}
	cfg := testbed.WriteGatewayConfig(t.TempDir(), testbed.GatewayConfig{
		XMPPServer: s.prosody.ComponentAddr(),
		Allow:      []string{"localhost"},
		Admins:     []string{"admin@localhost"},
		IRC:        &testbed.GatewayIRC{Domain: ircDomain, Secret: ircSecret, Networks: networks},
		Extra:      extra,
	})
	s.gw = testbed.StartGateway(t, testbed.BuildGateway(t), cfg)
	// Registered after StartGateway's cleanup, so it runs before the
	// gateway stops: every line the gateway ever wrote is checked.
	t.Cleanup(func() { s.tap.checkClean(t) })
	return s
}

// registerUsers registers users on Prosody, a few at a time
// (prosodyctl takes about 0.1 s each).
func registerUsers(t *testing.T, p *testbed.Prosody, users []string) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, u := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p.Register(u, password)
		}()
	}
	wg.Wait()
}

// user logs a Prosody user in (resource e2e).
func (s *ircStack) user(name string) *testbed.XMPPClient {
	s.t.Helper()
	return testbed.DialXMPP(s.t, s.prosody.C2SAddr(), jid.MustParse(name+"@localhost/e2e"), password)
}

// userRes logs a Prosody user in with a given resource.
func (s *ircStack) userRes(t *testing.T, name, resource string) *testbed.XMPPClient {
	t.Helper()
	return testbed.DialXMPP(t, s.prosody.C2SAddr(), jid.MustParse(name+"@localhost/"+resource), password)
}

// irc connects a raw IRC client to the IRC server (not through the tap).
func (s *ircStack) irc(t *testing.T, nick string, caps ...string) *testbed.IRCClient {
	t.Helper()
	return testbed.DialIRCOpts(t, s.addr, testbed.IRCOptions{Nick: nick, Caps: caps})
}

// ---------------------------------------------------------------- tap

// ircTap is a TCP proxy between the gateway and the IRC server that
// records every line the gateway writes, byte for byte, so that a test
// can check what went out (nothing at all, exactly these commands, no
// stray CR/LF/NUL).
type ircTap struct {
	ln       net.Listener
	upstream string

	mu     sync.Mutex
	lines  []tapLine
	notify chan struct{}
	conns  map[net.Conn]struct{}
	nconn  int
	closed bool
	wg     sync.WaitGroup
}

// tapLine is one line the gateway wrote: raw includes its terminator.
type tapLine struct {
	conn int
	raw  string
}

func startIRCTap(t *testing.T, upstream string) *ircTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tap: %v", err)
	}
	tp := &ircTap{ln: ln, upstream: upstream, notify: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	tp.wg.Add(1)
	go tp.accept()
	t.Cleanup(tp.close)
	return tp
}

// Addr is where the gateway connects.
func (tp *ircTap) Addr() string { return tp.ln.Addr().String() }

func (tp *ircTap) accept() {
	defer tp.wg.Done()
	for {
		c, err := tp.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", tp.upstream, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		tp.mu.Lock()
		if tp.closed {
			tp.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		tp.nconn++
		id := tp.nconn
		tp.conns[c] = struct{}{}
		tp.conns[up] = struct{}{}
		tp.mu.Unlock()
		tp.wg.Add(2)
		go func() {
			defer tp.wg.Done()
			_, _ = io.Copy(c, up)
			c.Close()
			up.Close()
		}()
		go func() {
			defer tp.wg.Done()
			defer c.Close()
			defer up.Close()
			r := bufio.NewReaderSize(c, 4096)
			for {
				line, err := r.ReadString('\n')
				if line != "" {
					tp.record(id, line)
					if _, werr := up.Write([]byte(line)); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func (tp *ircTap) record(conn int, raw string) {
	tp.mu.Lock()
	tp.lines = append(tp.lines, tapLine{conn: conn, raw: raw})
	close(tp.notify)
	tp.notify = make(chan struct{})
	tp.mu.Unlock()
}

func (tp *ircTap) close() {
	tp.mu.Lock()
	tp.closed = true
	for c := range tp.conns {
		c.Close()
	}
	tp.mu.Unlock()
	tp.ln.Close()
	tp.wg.Wait()
}

// mark returns a position in the record; since and wait look after it.
func (tp *ircTap) mark() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return len(tp.lines)
}

// since returns the lines recorded after mark.
func (tp *ircTap) since(mark int) []tapLine {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]tapLine(nil), tp.lines[mark:]...)
}

// wait waits for a line after mark whose text (terminator stripped)
// matches pattern and returns it.
func (tp *ircTap) wait(t *testing.T, mark int, pattern string, timeout time.Duration) tapLine {
	t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(timeout)
	for {
		tp.mu.Lock()
		for _, l := range tp.lines[mark:] {
			if re.MatchString(strings.TrimRight(l.raw, "\r\n")) {
				tp.mu.Unlock()
				return l
			}
		}
		notify := tp.notify
		tp.mu.Unlock()
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("tap: the gateway wrote no line matching %q within %s; it wrote:\n%s", pattern, timeout, formatTap(tp.since(mark)))
		}
		select {
		case <-notify:
		case <-time.After(left):
		}
	}
}

// connOf returns the tap connection a line matching pattern came on (the
// connection of one user).
func (tp *ircTap) connOf(t *testing.T, pattern string, timeout time.Duration) int {
	t.Helper()
	return tp.wait(t, 0, pattern, timeout).conn
}

// linesOf returns the text of the lines conn wrote after mark.
func (tp *ircTap) linesOf(conn, mark int) []string {
	var out []string
	for _, l := range tp.since(mark) {
		if l.conn == conn {
			out = append(out, strings.TrimRight(l.raw, "\r\n"))
		}
	}
	return out
}

func formatTap(lines []tapLine) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "  [%d] %q\n", l.conn, l.raw)
	}
	if b.Len() == 0 {
		return "  (nothing)\n"
	}
	return b.String()
}

// checkClean fails the test if any line the gateway wrote holds a CR,
// LF or NUL other than its CR LF terminator: such a byte would end the
// line early and start another command on the server.
func (tp *ircTap) checkClean(t *testing.T) {
	t.Helper()
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, l := range tp.lines {
		body, ok := strings.CutSuffix(l.raw, "\r\n")
		if !ok || strings.ContainsAny(body, "\r\n\x00") {
			t.Errorf("tap: the gateway wrote a line with a stray CR, LF or NUL: %q", l.raw)
		}
		if len(body) > 510 && !strings.HasPrefix(body, "@") {
			t.Errorf("tap: the gateway wrote a line of %d bytes (IRC allows 510 plus CR LF): %q", len(body), l.raw)
		}
	}
}

// ---------------------------------------------------------------- XMPP

// joinRoom sends a MUC join to room/nick with extra inside the MUC <x/>
// (e.g. a <history/>) and returns the self-presence (status 110).
func joinRoom(t *testing.T, c *testbed.XMPPClient, roomJID, nick, extra string) testbed.Stanza {
	t.Helper()
	c.SendRaw(fmt.Sprintf(`<presence to='%s/%s'><x xmlns='%s'>%s</x></presence>`, roomJID, nick, nsMUC, extra))
	st := c.Expect(t, func(st testbed.Stanza) bool {
		return st.Name == "presence" && strings.HasPrefix(st.From, roomJID+"/") &&
			(st.Type == "" && hasStatus(st, "110") || st.Type == "error")
	}, wait)
	if st.Type == "error" {
		t.Fatalf("joining %s as %s: %s", roomJID, nick, st.XML)
	}
	return st
}

// expectSubject waits for the subject message a join ends with (or a
// subject change) from the room or one of its occupants.
func expectSubject(t *testing.T, c *testbed.XMPPClient, roomJID string) testbed.Stanza {
	t.Helper()
	return c.Expect(t, func(st testbed.Stanza) bool {
		return st.Name == "message" && st.Type == "groupchat" && (st.From == roomJID || strings.HasPrefix(st.From, roomJID+"/")) &&
			st.Find("subject") != nil && st.Find("body") == nil
	}, wait)
}

// leaveRoom sends unavailable presence to the room and waits for the
// self-presence.
func leaveRoom(t *testing.T, c *testbed.XMPPClient, roomJID, nick string) testbed.Stanza {
	t.Helper()
	c.SendRaw(fmt.Sprintf(`<presence type='unavailable' to='%s/%s'/>`, roomJID, nick))
	return c.Expect(t, func(st testbed.Stanza) bool {
		return st.Name == "presence" && st.Type == "unavailable" && strings.HasPrefix(st.From, roomJID+"/") && hasStatus(st, "110")
	}, wait)
}

// occupantPresence waits for presence from room/nick matching pred.
func occupantPresence(t *testing.T, c *testbed.XMPPClient, roomJID, nick string, pred func(testbed.Stanza) bool) testbed.Stanza {
	t.Helper()
	return c.Expect(t, func(st testbed.Stanza) bool {
		return st.Name == "presence" && st.From == roomJID+"/"+nick && (pred == nil || pred(st))
	}, wait)
}

// mucItem returns the muc#user item of a presence.
func mucItem(st testbed.Stanza) *testbed.Node {
	return st.Find("{" + nsMUCUser + "}x/item")
}

// groupchatFrom waits for a groupchat message with a body from from.
func groupchatFrom(t *testing.T, c *testbed.XMPPClient, from string, pred func(testbed.Stanza) bool) testbed.Stanza {
	t.Helper()
	return c.Expect(t, func(st testbed.Stanza) bool {
		return st.Name == "message" && st.Type == "groupchat" && st.From == from && st.Find("body") != nil && (pred == nil || pred(st))
	}, wait)
}

// withBody matches a stanza whose body is text.
func withBody(text string) func(testbed.Stanza) bool {
	return func(st testbed.Stanza) bool { return st.Body() == text }
}

// byID matches a stanza with the given id.
func byID(id string) func(testbed.Stanza) bool {
	return func(st testbed.Stanza) bool { return st.ID == id }
}

// sendGroupchat sends body (XML-escaped here) to a room with an id.
func sendGroupchat(c *testbed.XMPPClient, roomJID, id, body string) {
	c.SendRaw(fmt.Sprintf(`<message type='groupchat' to='%s' id='%s'><body>%s</body></message>`, roomJID, id, xmlText(body)))
}

// xmlText escapes text for XML character data.
func xmlText(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&#39;", `"`, "&#34;")
	return r.Replace(s)
}

// contact is the JID of an IRC nick on the network local.
func contact(nick string) string { return nick + "%local@" + ircDomain }

// serverJID is the JID of the network local.
const serverJID = "local@" + ircDomain

// command runs an ad-hoc command in two steps: execute (which must answer
// with a form) and complete with fields; it returns both answers.
func command(t *testing.T, c *testbed.XMPPClient, to, node string, fields map[string][]string) (form, done testbed.Stanza) {
	t.Helper()
	form = c.IQ(t, fmt.Sprintf(`<iq type='set' to='%s'><command xmlns='%s' node='%s' action='execute'/></iq>`, to, nsCommands, node), wait)
	cmd := form.Find("{" + nsCommands + "}command")
	if form.Type != "result" || cmd.AttrValue("status") != "executing" || form.Find("{"+nsCommands+"}command/{"+nsData+"}x") == nil {
		t.Fatalf("command %s on %s: the first step is not a form: %s", node, to, form.XML)
	}
	done = c.IQ(t, fmt.Sprintf(`<iq type='set' to='%s'><command xmlns='%s' node='%s' sessionid='%s' action='complete'>%s</command></iq>`,
		to, nsCommands, node, cmd.AttrValue("sessionid"), submitForm("", fields)), wait)
	return form, done
}

// submitForm renders a data form of type submit.
func submitForm(formType string, fields map[string][]string) string {
	var b strings.Builder
	b.WriteString(`<x xmlns='jabber:x:data' type='submit'>`)
	if formType != "" {
		fmt.Fprintf(&b, `<field var='FORM_TYPE' type='hidden'><value>%s</value></field>`, formType)
	}
	for k, vs := range fields {
		fmt.Fprintf(&b, `<field var='%s'>`, k)
		for _, v := range vs {
			fmt.Fprintf(&b, `<value>%s</value>`, xmlText(v))
		}
		b.WriteString(`</field>`)
	}
	b.WriteString(`</x>`)
	return b.String()
}

// register submits the gateway's registration form.
func register(t *testing.T, c *testbed.XMPPClient, fields map[string][]string) testbed.Stanza {
	t.Helper()
	return c.IQ(t, fmt.Sprintf(`<iq type='set' to='%s'><query xmlns='jabber:iq:register'>%s</query></iq>`,
		ircDomain, submitForm("jabber:iq:register", fields)), wait)
}

// formValue returns the value of a field of the first data form under
// the stanza's element reached by path.
func formValue(st testbed.Stanza, path, field string) string {
	for _, f := range st.FindAll(path + "/{" + nsData + "}x/field") {
		if f.AttrValue("var") == field {
			if v := f.Find("value"); v != nil {
				return v.Text
			}
			return ""
		}
	}
	return ""
}

// ---------------------------------------------------------------- IRC

// isCmd matches an IRC command from nick (any nick when "").
func isCmd(cmd, nick string) func(*ircmsg.Message) bool {
	return func(m *ircmsg.Message) bool {
		return m.Command == cmd && (nick == "" || strings.EqualFold(m.Nick(), nick))
	}
}

// privmsgFrom matches a PRIVMSG from nick to target (any text when "").
func privmsgFrom(nick, target, text string) func(*ircmsg.Message) bool {
	return func(m *ircmsg.Message) bool {
		return isPrivmsg(target, text)(m) && strings.EqualFold(m.Nick(), nick)
	}
}

// collectPrivmsgs reads PRIVMSGs from nick to target until their texts
// add up to want bytes (or timeout) and returns them in order.
func collectPrivmsgs(t *testing.T, c *testbed.IRCClient, nick, target string, want int, timeout time.Duration) []string {
	t.Helper()
	var parts []string
	n := 0
	deadline := time.Now().Add(timeout)
	for n < want {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("received %d of %d bytes in %d lines within %s", n, want, len(parts), timeout)
		}
		m := c.Expect(t, privmsgFrom(nick, target, ""), left)
		parts = append(parts, m.Params[1])
		n += len(m.Params[1])
	}
	return parts
}

// mamQueries numbers MAM queries (queryid).
var mamQueries atomic.Int64

// mamQuery runs a XEP-0313 query (form and rsm are raw XML inside
// <query/>, either may be "") and returns the result messages and the
// IQ answer (an error answer comes back with no messages).
func mamQuery(t *testing.T, c *testbed.XMPPClient, to, form, rsm string) ([]testbed.Stanza, testbed.Stanza) {
	t.Helper()
	qid := fmt.Sprintf("q%d", mamQueries.Add(1))
	res := c.IQ(t, `<iq type='set' to='`+to+`'><query xmlns='`+nsMAM+`' queryid='`+qid+`'>`+form+rsm+`</query></iq>`, wait)
	if res.Type != "result" {
		return nil, res
	}
	// The results come before the answer, so they are buffered now.
	var msgs []testbed.Stanza
	for _, raw := range c.Received() {
		if strings.Contains(raw, `queryid="`+qid+`"`) {
			st, err := testbed.ParseStanza(raw)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, st)
		}
	}
	for range msgs { // take them out of the buffer
		c.Expect(t, func(st testbed.Stanza) bool {
			return st.Find("{"+nsMAM+"}result").AttrValue("queryid") == qid
		}, wait)
	}
	return msgs, res
}

// mamBodies returns the bodies of MAM results.
func mamBodies(msgs []testbed.Stanza) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Text("{"+nsMAM+"}result/{urn:xmpp:forward:0}forwarded/message/body"))
	}
	return out
}
