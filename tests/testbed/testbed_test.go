package testbed

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
)

const wait = 10 * time.Second

// TestProsodyClients: two users log in with DialXMPP and exchange messages;
// an IQ gets its reply; a message to a component that is not connected
// bounces with service-unavailable.
func TestProsodyClients(t *testing.T) {
	t.Parallel()
	p := StartProsody(t, ProsodyOptions{Components: map[string]string{"irc.localhost": "s3cret"}})
	p.Register("alice", "pw-alice")
	p.Register("bob", "pw-bob")
	alice := DialXMPP(t, p.C2SAddr(), jid.MustParse("alice@localhost/phone"), "pw-alice")
	bob := DialXMPP(t, p.C2SAddr(), jid.MustParse("bob@localhost"), "pw-bob")
	if got := alice.JID.String(); got != "alice@localhost/phone" {
		t.Errorf("alice bound %q, want alice@localhost/phone", got)
	}
	if bob.JID.Resourcepart() == "" {
		t.Errorf("bob bound %q, want a server-chosen resource", bob.JID)
	}

	alice.SendMessage("bob@localhost", "hello <bob> & co")
	m := bob.Expect(t, func(s Stanza) bool { return s.Name == "message" && s.Body() != "" }, wait)
	if m.Body() != "hello <bob> & co" || m.From != alice.JID.String() || m.Type != "chat" {
		t.Errorf("bob got %s", m.XML)
	}
	bob.SendRaw("<message to='" + alice.JID.String() + "' type='chat' id='r1'><body>hi alice</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
	m = alice.Expect(t, func(s Stanza) bool { return s.Name == "message" && s.ID == "r1" }, wait)
	if m.Body() != "hi alice" || m.Find("{http://jabber.org/protocol/chatstates}active") == nil {
		t.Errorf("alice got %s", m.XML)
	}
	if !m.Contains("<body>hi alice</body>") {
		t.Errorf("re-serialised XML %s lacks <body>hi alice</body>", m.XML)
	}

	info := alice.IQ(t, "<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", wait)
	if info.Type != "result" || info.Find("query/feature[@var='urn:xmpp:ping']") == nil {
		t.Errorf("disco#info of localhost: %s", info.XML)
	}

	// An IQ to a full JID: bob's responder answers version queries, mellium
	// answers the rest service-unavailable.
	bob.SetIQResponder(func(req Stanza) string {
		if req.Find("{jabber:iq:version}query") == nil {
			return ""
		}
		return "<iq type='result' id='" + xmlEscape(req.ID) + "' to='" + xmlEscape(req.From) +
			"'><query xmlns='jabber:iq:version'><name>testbed</name></query></iq>"
	})
	v := alice.IQ(t, "<iq type='get' to='"+bob.JID.String()+"'><query xmlns='jabber:iq:version'/></iq>", wait)
	if v.Type != "result" || v.Text("{jabber:iq:version}query/name") != "testbed" {
		t.Errorf("version reply: %s", v.XML)
	}
	bob.Expect(t, func(s Stanza) bool { return s.Name == "iq" && s.Find("{jabber:iq:version}query") != nil }, wait)
	u := alice.IQ(t, "<iq type='get' to='"+bob.JID.String()+"'><query xmlns='jabber:iq:last'/></iq>", wait)
	if u.ErrorCondition() != "service-unavailable" {
		t.Errorf("unanswered IQ: %s", u.XML)
	}

	alice.SendRaw("<message to='nick%local@irc.localhost' type='chat' id='bounce'><body>x</body></message>")
	e := alice.Expect(t, func(s Stanza) bool { return s.ID == "bounce" }, wait)
	// Prosody answers for a component that is not connected.
	if !e.IsError() || e.ErrorCondition() != "remote-server-timeout" || e.ErrorText() != "Component unavailable" {
		t.Errorf("message to a disconnected component: %s (condition %q)", e.XML, e.ErrorCondition())
	}
	alice.ExpectNone(t, func(s Stanza) bool { return s.Name == "message" }, 200*time.Millisecond)
}

// TestProsodyComponent: a XEP-0114 component logs in on ComponentAddr with
// its secret and receives a user's message.
func TestProsodyComponent(t *testing.T) {
	t.Parallel()
	p := StartProsody(t, ProsodyOptions{Components: map[string]string{"irc.localhost": "s3cret"}})
	p.Register("alice", "pw")

	conn, err := net.Dial("tcp", p.ComponentAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	comp, err := component.NewSession(ctx, jid.MustParse("irc.localhost"), []byte("s3cret"), conn)
	if err != nil {
		t.Fatalf("component handshake: %v\n%s", err, p.LogTail())
	}
	got := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		served <- comp.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			var msg struct {
				Body string `xml:"body"`
			}
			// Decode with the start element in front: DecodeElement on
			// the bare handler reader fills msg but then fails on the
			// end element.
			d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r))
			if start.Name.Local == "message" && d.Decode(&msg) == nil {
				select {
				case got <- msg.Body:
				default:
				}
			}
			return nil
		}))
	}()
	alice := DialXMPP(t, p.C2SAddr(), jid.MustParse("alice@localhost"), "pw")
	alice.SendMessage("#chan%local@irc.localhost", "to the component")
	select {
	case body := <-got:
		if body != "to the component" {
			t.Errorf("component got body %q", body)
		}
	case <-time.After(wait):
		t.Fatalf("the component got nothing\n%s", p.LogTail())
	}
	_ = comp.Close()
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	<-served
}

// TestProsodyRestart: Stop/Start and Kill/Start keep the ports and the
// accounts.
func TestProsodyRestart(t *testing.T) {
	t.Parallel()
	p := StartProsody(t, ProsodyOptions{})
	c2s, comp := p.C2SAddr(), p.ComponentAddr()
	p.Register("alice", "pw")
	DialXMPP(t, c2s, jid.MustParse("alice@localhost"), "pw").Close()

	p.Stop()
	if p.Running() {
		t.Fatal("prosody still runs after Stop")
	}
	if err := WaitPort(c2s, 200*time.Millisecond); err == nil {
		t.Fatal("c2s port still accepts after Stop")
	}
	p.Start()
	if p.C2SAddr() != c2s || p.ComponentAddr() != comp {
		t.Fatalf("ports moved: %s %s, were %s %s", p.C2SAddr(), p.ComponentAddr(), c2s, comp)
	}
	DialXMPP(t, c2s, jid.MustParse("alice@localhost"), "pw").Close()

	p.Kill()
	p.Start()
	DialXMPP(t, c2s, jid.MustParse("alice@localhost"), "pw").Close()
}

// TestNgircd: two clients talk in a channel and privately; restart keeps
// the port.
func TestNgircd(t *testing.T) {
	t.Parallel()
	n := StartNgircd(t, NgircdOptions{NoFloodLimit: true, Opers: map[string]string{"admin": "operpw"}})
	alice := DialIRC(t, n.Addr(), "alice_with_a_long_nick")
	bob := DialIRC(t, n.Addr(), "bob")
	if alice.Nick != "alice_with_a_long_nick" {
		t.Errorf("nick %q: MaxNickLength not applied", alice.Nick)
	}
	if alice.ISupport["NETWORK"] == "" && alice.ISupport["PREFIX"] == "" {
		t.Errorf("no ISUPPORT parsed: %v", alice.ISupport)
	}
	alice.Join("#test")
	bob.Join("#test")
	alice.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "JOIN" && m.Nick() == "bob" }, wait)
	for i := range 20 { // no flood limit: 20 lines at once arrive in order
		alice.Privmsg("#test", "line "+string(rune('a'+i)))
	}
	for i := range 20 {
		m := bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "PRIVMSG" }, wait)
		if want := "line " + string(rune('a'+i)); m.Params[1] != want || m.Nick() != alice.Nick {
			t.Fatalf("bob got %v from %s, want %q", m.Params, m.Source, want)
		}
	}
	bob.Privmsg(alice.Nick, "private")
	got := alice.ExpectLine(t, `^:bob!\S+ PRIVMSG (\S+) :(.*)$`, wait)
	if got[1] != alice.Nick || got[2] != "private" {
		t.Errorf("alice got %q", got)
	}
	bob.Send("OPER admin operpw")
	bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "381" }, wait)

	addr := n.Addr()
	bob.Quit("bye")
	n.Stop()
	n.Start()
	if n.Addr() != addr {
		t.Fatalf("port moved: %s, was %s", n.Addr(), addr)
	}
	DialIRC(t, n.Addr(), "carol").Quit("done")
}

// TestInspIRCd: CAP LS offers the IRCv3 capabilities; echo-message and
// server-time work; the ~&@%+ prefixes exist.
func TestInspIRCd(t *testing.T) {
	t.Parallel()
	s := StartInspIRCd(t, InspOptions{Opers: map[string]string{"admin": "operpw"}})
	caps := []string{"echo-message", "server-time", "message-tags", "multi-prefix", "labeled-response", "batch"}
	alice := DialIRCOpts(t, s.Addr(), IRCOptions{Nick: "alice", Caps: caps})
	for _, c := range append(caps, "userhost-in-names", "account-tag", "cap-notify", "chghost", "invite-notify") {
		if _, ok := alice.AvailableCaps[c]; !ok {
			t.Errorf("CAP LS lacks %s: %v", c, alice.AvailableCaps)
		}
	}
	for _, c := range caps {
		if !alice.EnabledCaps[c] {
			t.Errorf("%s not enabled: %v", c, alice.EnabledCaps)
		}
	}
	if p := alice.ISupport["PREFIX"]; p != "(qaohv)~&@%+" {
		t.Errorf("PREFIX=%q, want (qaohv)~&@%%+", p)
	}
	bob := DialIRC(t, s.Addr(), "bob")
	alice.Join("#v3")
	bob.Join("#v3")
	alice.Send("@+draft/reply=x;label=l1 PRIVMSG #v3 :tagged")
	echo := alice.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "PRIVMSG" }, wait)
	if ok, _ := echo.GetTag("time"); !ok {
		t.Errorf("echo has no server-time tag: %v", echo.AllTags())
	}
	if ok, label := echo.GetTag("label"); !ok || label != "l1" {
		t.Errorf("echo has no label l1: %v", echo.AllTags())
	}
	m := bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "PRIVMSG" }, wait)
	if m.Params[1] != "tagged" || m.HasTag("time") {
		t.Errorf("bob (no caps) got %v tags %v", m.Params, m.AllTags())
	}
	alice.Send("OPER admin operpw")
	alice.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "381" }, wait)

	addr := s.Addr()
	s.Stop()
	s.Start()
	if s.Addr() != addr {
		t.Fatalf("port moved: %s, was %s", s.Addr(), addr)
	}
	DialIRC(t, s.Addr(), "carol").Quit("done")
}

// TestGatewayHelpers: WriteGatewayConfig writes the documented TOML and
// StartGateway runs a binary until /healthz answers, restarts it and stops
// it (with a stand-in binary: the real one is tested in tests/e2e).
func TestGatewayHelpers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := WriteGatewayConfig(dir, GatewayConfig{
		XMPPServer: "127.0.0.1:5347",
		Admins:     []string{"admin@localhost"},
		IRC: &GatewayIRC{Domain: "irc.localhost", Secret: "secret", Networks: []GatewayIRCNetwork{
			{Name: "local", Address: "127.0.0.1:16667"},
			{Name: "other", Address: "127.0.0.1:6697", TLS: true},
		}},
		Extra: map[string]any{"irc": map[string]any{"max_users": 5}, "sms": map[string]any{"domain": "sms.localhost"}},
	})
	var cfg struct {
		Log    struct{ Level string }
		XMPP   struct{ Server string }
		Store  struct{ Driver, DSN, KeyFile string } `toml:"store"`
		HTTP   struct{ Listen string }
		Access struct{ Allow, Admins []string }
		IRC    struct {
			Domain, Secret string
			Open           bool
			MaxUsers       int `toml:"max_users"`
			Network        []struct {
				Name, Address string
				TLS           bool
			}
		}
		SMS struct{ Domain string }
	}
	md, err := toml.DecodeFile(path, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = md
	if cfg.Log.Level != "debug" || cfg.XMPP.Server != "127.0.0.1:5347" || cfg.Store.Driver != "sqlite" ||
		cfg.Store.DSN != filepath.Join(dir, "switchboard.db") ||
		strings.Join(cfg.Access.Allow, ",") != "localhost" || cfg.IRC.Domain != "irc.localhost" ||
		cfg.IRC.MaxUsers != 5 || len(cfg.IRC.Network) != 2 || !cfg.IRC.Network[1].TLS || cfg.SMS.Domain != "sms.localhost" ||
		!strings.HasPrefix(cfg.HTTP.Listen, "127.0.0.1:") {
		data, _ := os.ReadFile(path)
		t.Errorf("config decodes to %+v:\n%s", cfg, data)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "key_file") || !strings.Contains(string(data), "[[irc.network]]") {
		t.Errorf("config:\n%s", data)
	}

	bin := BuildPackage(t, "switchboard/tests/testbed/internal/fakegateway")
	g := StartGateway(t, bin, path)
	resp, err := http.Get(g.URL("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("/healthz: %s %q", resp.Status, body)
	}
	g.Stop()
	if g.Running() || g.ExitErr() != nil {
		t.Errorf("after Stop: running %v, exit %v", g.Running(), g.ExitErr())
	}
	g.Start()
	g.Kill()
	g.Start()
	if !strings.Contains(g.Output(), "irc domain \"irc.localhost\"") {
		t.Errorf("output:\n%s", g.Output())
	}
}

// TestStanza checks the stanza parser, path lookup and re-serialisation.
func TestStanza(t *testing.T) {
	s, err := ParseStanza(`<iq xmlns='jabber:client' type='error' id='7' from='a@b/c' xml:lang='en'>
<query xmlns='http://jabber.org/protocol/disco#items'><item jid='x/y' name='one'/><item jid='z' name='two'/></query>
<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no &amp; no</text></error></iq>`)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "iq" || s.Type != "error" || s.ID != "7" || s.From != "a@b/c" {
		t.Errorf("attributes: %+v", s)
	}
	if s.ErrorCondition() != "item-not-found" || s.ErrorText() != "no & no" {
		t.Errorf("error %q %q", s.ErrorCondition(), s.ErrorText())
	}
	if n := s.Find("{http://jabber.org/protocol/disco#items}query/item[@jid='x/y']"); n == nil || n.AttrValue("name") != "one" {
		t.Errorf("find by namespace and attribute: %v", n)
	}
	if got := len(s.FindAll("query/*")); got != 2 {
		t.Errorf("FindAll query/* = %d", got)
	}
	if s.Find("query/nothing") != nil || s.Find("{urn:other}query") != nil {
		t.Error("found what is not there")
	}
	for _, want := range []string{`<iq xmlns="jabber:client"`, `xml:lang="en"`, `<item jid="x/y" name="one"/>`, `<query xmlns="http://jabber.org/protocol/disco#items">`, `no &amp; no</text>`} {
		if !s.Contains(want) {
			t.Errorf("XML lacks %s:\n%s", want, s.XML)
		}
	}
	if _, err := ParseStanza("<a><b></a>"); err == nil {
		t.Error("ill-formed XML parsed")
	}
}

// TestStandalone: cleanups run last first, once; TempDir is removed.
func TestStandalone(t *testing.T) {
	s := NewStandalone("test")
	var order []int
	dir := s.TempDir()
	s.Cleanup(func() { order = append(order, 1) })
	s.Cleanup(func() { order = append(order, 2) })
	s.Close()
	s.Close()
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		t.Errorf("cleanup order %v", order)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s not removed: %v", dir, err)
	}
	if s.Context().Err() == nil {
		t.Error("context not canceled")
	}
}

// TestPortTaken: a server whose port another process holds is detected
// (not mistaken for the server), whether the server exits (ngircd) or runs
// on without the port (Prosody).
func TestPortTaken(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	taken := l.Addr().(*net.TCPAddr).Port

	n := StartNgircd(t, NgircdOptions{})
	n.Stop()
	n.port = taken
	writeFile(t, n.ConfigPath, ngircdConfig(n.Dir, NgircdOptions{Port: taken, ServerName: "irc.test", MaxNickLength: 30}))
	var pt *portTakenError
	if err := n.start(); !errors.As(err, &pt) {
		t.Errorf("ngircd on a taken port: %v, want a portTakenError", err)
	}

	p := StartProsody(t, ProsodyOptions{})
	p.Stop()
	p.c2sPort = taken
	writeFile(t, p.ConfigPath, prosodyConfig(p.Dir, ProsodyOptions{Domain: "localhost", LogLevel: "debug", C2SPort: taken, ComponentPort: p.componentPort}))
	if err := p.start(); !errors.As(err, &pt) {
		t.Errorf("prosody on a taken port: %v, want a portTakenError", err)
	}
}
