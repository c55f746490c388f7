package component

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

const testDomain = "irc.localhost"

// ---------------------------------------------------------------- store

// memStore is an in-memory store.Accounts, all the bridge needs.
type memStore struct {
	mu       sync.Mutex
	accounts map[string]store.Account
}

func newMemStore() *memStore { return &memStore{accounts: map[string]store.Account{}} }

func (m *memStore) GetAccount(_ context.Context, user, transport string) (*store.Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.accounts[user+"|"+transport]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &a, nil
}

func (m *memStore) PutAccount(_ context.Context, a *store.Account) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.accounts[a.User+"|"+a.Transport] = *a
	return nil
}

func (m *memStore) DeleteAccount(_ context.Context, user, transport string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.accounts[user+"|"+transport]; !ok {
		return store.ErrNotFound
	}
	delete(m.accounts, user+"|"+transport)
	return nil
}

func (m *memStore) ListAccounts(_ context.Context, transport string) ([]store.Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Account
	for _, a := range m.accounts {
		if a.Transport == transport {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, nil
}

// ---------------------------------------------------------------- auth

type fakeAuth struct {
	allowed map[string]bool // bare JID or domain
	admins  map[string]bool
}

func (a *fakeAuth) Allowed(u jid.JID) bool {
	return a.allowed[u.Bare().String()] || a.allowed[u.Domainpart()]
}
func (a *fakeAuth) IsAdmin(u jid.JID) bool { return a.admins[u.Bare().String()] }

// ---------------------------------------------------------------- codec

// fakeCodec maps "name%network@domain" (room when name starts with '#'),
// "network@domain" (a server, with a dot) and the domain.
type fakeCodec struct{ domain string }

func (c fakeCodec) Domain() string { return c.domain }

func (c fakeCodec) Parse(j jid.JID) (mapping.Address, error) {
	if j.Domainpart() != c.domain {
		return mapping.Address{}, &mapping.Error{Condition: "item-not-found", Text: "not this gateway"}
	}
	local := j.Localpart()
	a := mapping.Address{Domain: c.domain, Resource: j.Resourcepart()}
	switch {
	case local == "":
		a.Kind = mapping.KindGateway
	case strings.Contains(local, "%"):
		name, network, _ := strings.Cut(local, "%")
		if name == "" || network == "" {
			return mapping.Address{}, mapping.ErrMalformed("%q has an empty name or network", local)
		}
		a.Name, a.Network = name, network
		switch {
		case strings.HasPrefix(name, "#") && a.Resource != "":
			a.Kind = mapping.KindOccupant
		case strings.HasPrefix(name, "#"):
			a.Kind = mapping.KindRoom
		default:
			a.Kind = mapping.KindContact
		}
	case strings.Contains(local, "."):
		a.Kind, a.Network = mapping.KindServer, local
	default:
		return mapping.Address{}, mapping.ErrMalformed("%q names no IRC network: write name%%network", local)
	}
	return a, nil
}

func (c fakeCodec) JID(a mapping.Address) (jid.JID, error) {
	local := ""
	switch a.Kind {
	case mapping.KindServer:
		local = a.Network
	case mapping.KindRoom, mapping.KindOccupant, mapping.KindContact:
		local = a.Name + "%" + a.Network
	}
	return jid.New(local, c.domain, a.Resource)
}

func (c fakeCodec) Translate(typed string) (mapping.Address, error) {
	name, network, ok := strings.Cut(typed, "%")
	if !ok || name == "" || network == "" {
		return mapping.Address{}, &mapping.Error{Condition: "bad-request", Text: "type nick%network"}
	}
	return mapping.Address{Kind: mapping.KindContact, Domain: c.domain, Name: name, Network: network}, nil
}

func (c fakeCodec) Prompt() (string, string) {
	return "IRC nick or channel", "Enter nick%network, e.g. alice%irc.libera.chat"
}

// ---------------------------------------------------------------- transport

// fakeTransport records what sessions receive and answers queries with
// answer (or an empty result).
type fakeTransport struct {
	codec    mapping.Codec
	regReq   bool
	events   chan any
	answer   func(q bridge.Query) bridge.IQResult
	commands []bridge.Command
	// answerAdmin makes sessions answer RoomAdmin with an empty result.
	answerAdmin bool
}

func newFakeTransport() *fakeTransport {
	return &fakeTransport{codec: fakeCodec{domain: testDomain}, events: make(chan any, 1000)}
}

func (f *fakeTransport) Name() string                             { return "irc" }
func (f *fakeTransport) Codec() mapping.Codec                     { return f.codec }
func (f *fakeTransport) Identity() (string, string, string)       { return "gateway", "irc", "IRC gateway" }
func (f *fakeTransport) RegistrationRequired() bool               { return f.regReq }
func (f *fakeTransport) Commands() []bridge.Command               { return f.commands }
func (f *fakeTransport) Run(ctx context.Context) error            { <-ctx.Done(); return nil }
func (f *fakeTransport) NewSession(u *bridge.User) bridge.Session { return &fakeSession{f: f, u: u} }
func (f *fakeTransport) RegistrationForm(acct *store.Account) *bridge.Form {
	nick := ""
	if acct != nil {
		nick = acct.Fields["nick"]
	}
	return &bridge.Form{Type: "form", Title: "IRC registration", Instructions: "Choose your IRC nick.", Fields: []bridge.FormField{
		{Var: "nick", Type: bridge.FieldTextSingle, Label: "Nick", Required: true, Values: []string{nick}},
		{Var: "password", Type: bridge.FieldTextPrivate, Label: "NickServ password"},
	}}
}

func (f *fakeTransport) ApplyRegistration(acct *store.Account, v bridge.FormValues) error {
	nick := v.Get("nick")
	if nick == "" || strings.ContainsAny(nick, " ,") {
		return bridge.Errorf(bridge.NotAcceptable, "%q is not a valid IRC nick.", nick)
	}
	acct.Fields["nick"] = nick
	if p := v.Get("password"); p != "" {
		acct.Secrets["password"] = p
	}
	return nil
}

// record keeps an event for the test; a full buffer drops it (fuzzing).
func (f *fakeTransport) record(ev any) {
	select {
	case f.events <- ev:
	default:
	}
}

type fakeSession struct {
	f *fakeTransport
	u *bridge.User
}

func (s *fakeSession) HandleInbound(ev bridge.Inbound) {
	s.f.record(ev)
	if ra, ok := ev.(bridge.RoomAdmin); ok && s.f.answerAdmin {
		_ = s.u.Emit(bridge.IQResult{To: ra.From, From: ra.Room, ID: ra.IQID})
	}
}

func (s *fakeSession) HandleQuery(q bridge.Query) {
	s.f.record(q)
	res := bridge.IQResult{To: q.From, From: q.To, ID: q.ID}
	if s.f.answer != nil {
		res = s.f.answer(q)
	}
	_ = s.u.Emit(res)
}
func (s *fakeSession) HandleNetwork(any)   {}
func (s *fakeSession) Status() []string    { return []string{"fake session"} }
func (s *fakeSession) Idle() bool          { return false }
func (s *fakeSession) Close(reason string) {}

// ---------------------------------------------------------------- harness

type harness struct {
	t    *testing.T
	st   *memStore
	auth *fakeAuth
	tr   *fakeTransport
	gw   *bridge.Gateway
	l    *Link
}

// newHarness builds a link on a real gateway with fakes around it. The
// worker pool runs; no connection is made: tests feed stanzas with in and
// read the send queue with out.
func newHarness(t testing.TB, cfg LinkConfig) *harness {
	return newHarnessCodec(t, cfg, nil)
}

// newHarnessCodec is newHarness with another codec than the fake one.
func newHarnessCodec(t testing.TB, cfg LinkConfig, codec mapping.Codec) *harness {
	tt, _ := t.(*testing.T)
	h := &harness{
		t:    tt,
		st:   newMemStore(),
		auth: &fakeAuth{allowed: map[string]bool{"example.org": true}, admins: map[string]bool{"admin@example.org": true}},
		tr:   newFakeTransport(),
	}
	if codec != nil {
		h.tr.codec = codec
	}
	h.gw = bridge.New(h.st, h.auth, discardLog(), nil)
	if cfg.Domain == "" {
		cfg.Domain = testDomain
	}
	if cfg.Transport == "" {
		cfg.Transport = "irc"
	}
	h.l = NewLink(cfg, h.gw, h.tr.codec, discardLog())
	h.l.now = func() time.Time { return fixedNow }
	h.gw.AddTransport(h.tr, h.l)
	stop := h.l.startWorkers(context.Background())
	t.Cleanup(func() {
		h.gw.Shutdown()
		stop()
	})
	return h
}

var fixedNow = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

const streamOpen = `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>`

// in feeds stanzas to the link's handler as the read loop would.
func (h *harness) in(stanzas string) {
	h.t.Helper()
	feed(h.l, stanzas)
}

// feed parses and handles every stanza in s; it returns the stream-level
// error that ended it, if any.
func feed(l *Link, s string) error {
	d := xml.NewDecoder(strings.NewReader(streamOpen + s + "</stream:stream>"))
	if _, err := d.Token(); err != nil {
		return err
	}
	var t tree
	for {
		if err := readStanza(d, &t); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		l.handle(&t)
	}
}

// out returns the next queued output, waiting up to a second.
func (h *harness) out() string {
	h.t.Helper()
	select {
	case it := <-h.l.queue:
		return string(it.b)
	case <-time.After(2 * time.Second):
		h.t.Fatalf("no output")
		return ""
	}
}

// none checks that nothing was queued within a short while.
func (h *harness) none() {
	h.t.Helper()
	select {
	case it := <-h.l.queue:
		h.t.Fatalf("unexpected output: %s", it.b)
	case <-time.After(50 * time.Millisecond):
	}
}

// event returns the next event a session received.
func (h *harness) event() any {
	h.t.Helper()
	select {
	case ev := <-h.tr.events:
		return ev
	case <-time.After(2 * time.Second):
		h.t.Fatalf("no event reached the transport")
		return nil
	}
}

func (h *harness) noEvent() {
	h.t.Helper()
	select {
	case ev := <-h.tr.events:
		h.t.Fatalf("unexpected event: %#v", ev)
	case <-time.After(50 * time.Millisecond):
	}
}

// parseOut parses rendered output into its top-level stanzas.
func parseOut(t testing.TB, s string) []*parsed {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(streamOpen + s + "</stream:stream>"))
	if _, err := d.Token(); err != nil {
		t.Fatalf("parsing output: %v", err)
	}
	var out []*parsed
	for {
		var tr tree
		if err := readStanza(d, &tr); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("output is not well-formed XML: %v\n%s", err, s)
		}
		out = append(out, &parsed{t: tr})
	}
}

// parsed is one output stanza for assertions.
type parsed struct{ t tree }

func (p *parsed) name() string            { return p.t.root().local }
func (p *parsed) attr(name string) string { return p.t.root().attrValue(name) }

// find walks a path of local names from the root ("query/item") and
// returns the first match.
func (p *parsed) find(path string) *node {
	n := p.t.root()
	for _, part := range strings.Split(path, "/") {
		n = p.t.child(n, "", part)
		if n == nil {
			return nil
		}
	}
	return n
}

func (p *parsed) text(path string) string {
	if n := p.find(path); n != nil {
		return n.text
	}
	return ""
}

// errCond returns the condition of an error stanza.
func (p *parsed) errCond() string {
	e := p.find("error")
	if e == nil {
		return ""
	}
	if c := p.t.firstElem(e); c != nil {
		return c.local
	}
	return ""
}

// ---------------------------------------------------------------- fake server

// fakeServer is the server side of XEP-0114, enough for the link: it
// reads the stream header, answers with a header and an id, checks the
// handshake and acknowledges it.
type fakeServer struct {
	t      *testing.T
	ln     net.Listener
	secret string
	conns  chan *serverConn
}

type serverConn struct {
	net.Conn
	dec *xml.Decoder
	mu  sync.Mutex
}

func newFakeServer(t *testing.T, secret string) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, secret: secret, conns: make(chan *serverConn, 10)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			sc, err := s.handshake(c)
			if err != nil {
				_ = c.Close()
				continue
			}
			s.conns <- sc
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) handshake(c net.Conn) (*serverConn, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	dec := xml.NewDecoder(c)
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			break
		}
	}
	const id = "f4k3-57r34m-1d"
	fmt.Fprintf(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='%s' id='%s'>", testDomain, id)
	var hs struct {
		Text string `xml:",chardata"`
	}
	if err := dec.Decode(&hs); err != nil {
		return nil, err
	}
	sum := sha1.Sum([]byte(id + s.secret))
	if hs.Text != hex.EncodeToString(sum[:]) {
		_, _ = io.WriteString(c, "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")
		return nil, errors.New("bad handshake")
	}
	_, _ = io.WriteString(c, "<handshake/>")
	return &serverConn{Conn: c, dec: dec}, nil
}

// accept waits for the next authenticated connection.
func (s *fakeServer) accept() *serverConn {
	s.t.Helper()
	select {
	case c := <-s.conns:
		s.t.Cleanup(func() { _ = c.Close() })
		return c
	case <-time.After(5 * time.Second):
		s.t.Fatal("the link did not connect")
		return nil
	}
}

// read returns the next stanza the link sent, skipping keepalive pings
// unless pings is true; it answers pings when answer is true.
func (c *serverConn) read(t *testing.T) (*parsed, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var tr tree
	if err := readStanza(c.dec, &tr); err != nil {
		return nil, err
	}
	return &parsed{t: tr}, nil
}

// readNonPing reads stanzas until one that is not a ping (answering pings).
func (c *serverConn) readNonPing(t *testing.T) *parsed {
	t.Helper()
	for {
		p, err := c.read(t)
		if err != nil {
			t.Fatalf("reading from the link: %v", err)
		}
		if p.name() == "iq" && p.find("ping") != nil && p.attr("type") == "get" && p.attr("from") == testDomain {
			c.send(fmt.Sprintf("<iq type='result' id='%s' from='%s' to='%s'/>", p.attr("id"), p.attr("to"), p.attr("from")))
			continue
		}
		return p
	}
}

func (c *serverConn) send(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = io.WriteString(c, s)
}

// discardLog is a silent logger; COMPONENT_TEST_LOG=1 shows the logs.
func discardLog() *slog.Logger {
	if os.Getenv("COMPONENT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
