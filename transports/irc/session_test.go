package irc

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
	"switchboard/store/memstore"
)

// fakeUser stands in for *bridge.User: it records what the session emits.
type fakeUser struct {
	j      jid.JID
	acct   *store.Account
	events []bridge.Outbound
	drop   bool // do not record (benchmarks)
	count  int
}

func (u *fakeUser) JID() jid.JID                           { return u.j }
func (u *fakeUser) Context() context.Context               { return context.Background() }
func (u *fakeUser) Log() *slog.Logger                      { return testLog() }
func (u *fakeUser) Account() *store.Account                { return u.acct }
func (u *fakeUser) Post(any) bool                          { return true }
func (u *fakeUser) PostOr(any, time.Duration, func()) bool { return true }
func (u *fakeUser) Online() bool                           { return true }
func (u *fakeUser) Emit(ev bridge.Outbound) error {
	u.count++
	if !u.drop {
		u.events = append(u.events, ev)
	}
	return nil
}

// msgidOfStanzaID checks that a stanza-id is an archive id followed by
// "~" and the IRC msgid, and returns the msgid.
func msgidOfStanzaID(t testing.TB, sid string) string {
	t.Helper()
	if _, ok := store.ArchiveSeq(sid); !ok || len(sid) <= store.ArchiveIDLen || sid[store.ArchiveIDLen] != '~' {
		t.Fatalf("stanza-id %q is not an archive id followed by ~msgid", sid)
	}
	return sid[store.ArchiveIDLen+1:]
}

// take removes and returns the recorded events of type T.
func take[T bridge.Outbound](u *fakeUser) []T {
	var out []T
	kept := u.events[:0]
	for _, ev := range u.events {
		if v, ok := ev.(T); ok {
			out = append(out, v)
		} else {
			kept = append(kept, ev)
		}
	}
	u.events = kept
	return out
}

// newTestNetwork is a session with a registered network "local" whose
// connection is never started: lines to the server stay in its queue, and
// lines from the server are fed with feed.
func newTestNetwork(tb testing.TB, mod func(*Config)) (*session, *network, *fakeUser) {
	tb.Helper()
	cfg := testConfig("127.0.0.1:6667")
	if mod != nil {
		mod(&cfg)
	}
	tr, err := New(cfg, memstore.New(), nil, testLog())
	if err != nil {
		tb.Fatal(err)
	}
	u := &fakeUser{j: jid.MustParse("alice@localhost")}
	s := newSession(tr, u)
	n, err := s.network(mapping.Address{Kind: mapping.KindRoom, Domain: "irc.localhost", Network: "local", Name: "#x"}, true, "alice")
	if err != nil {
		tb.Fatal(err)
	}
	n.c = newConn(dialSpec{}, u, testLog(), nil, 0, 10)
	n.gen = 1
	n.state = stRegistered
	n.registered = true
	n.nick = "alice"
	n.caps = map[string]bool{}
	n.is.apply([]string{"PREFIX=(qaohv)~&@%+", "CHANMODES=beI,k,l,imnpst"})
	c := n.c
	tb.Cleanup(c.close)
	return s, n, u
}

// feed hands server lines to the network.
func feed(tb testing.TB, n *network, lines ...string) {
	tb.Helper()
	for _, l := range lines {
		m, err := ircmsg.ParseLine(l)
		if err != nil {
			tb.Fatalf("parsing %q: %v", l, err)
		}
		n.handle(&m)
	}
}

// sent drains the lines queued for the server, as if they were written
// (own messages whose lines are drained are reflected).
func sent(n *network) []string {
	n.c.mu.Lock()
	var out []string
	var last uint64
	for _, l := range n.c.queue {
		out = append(out, strings.TrimSuffix(string(l.b), "\r\n"))
		last = max(last, l.seq)
	}
	n.c.queue, n.c.queued, n.c.lines = nil, 0, 0
	if last > 0 {
		n.c.written.Store(last)
	}
	n.c.mu.Unlock()
	n.onWritten(n.c.written.Load())
	return out
}

var phone = jid.MustParse("alice@localhost/phone")

func roomAddr(name string) mapping.Address {
	return mapping.Address{Kind: mapping.KindRoom, Domain: "irc.localhost", Network: "local", Name: name}
}

// joinRoom joins #chan with bob (op, voiced), carol (half-op) and dave.
func joinRoom(t *testing.T, s *session, n *network, u *fakeUser) bridge.RoomJoined {
	t.Helper()
	s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#chan").Occupant("alice"), MUC: true})
	if got := sent(n); len(got) != 1 || got[0] != "JOIN #chan" {
		t.Fatalf("sent %q", got)
	}
	feed(t, n,
		":alice!al@gw.example JOIN #chan",
		":irc.test 332 alice #chan :The \x02topic\x02",
		":irc.test 333 alice #chan bob!b@h 1700000000",
		":irc.test 353 alice = #chan :alice +@bob %carol",
		":irc.test 353 alice = #chan :dave",
		":irc.test 366 alice #chan :End of NAMES list",
		":irc.test 324 alice #chan +nt",
	)
	if got := sent(n); len(got) != 1 || got[0] != "MODE #chan" {
		t.Fatalf("sent %q after the JOIN (want the channel modes asked for)", got)
	}
	rjs := take[bridge.RoomJoined](u)
	if len(rjs) != 1 {
		t.Fatalf("RoomJoined events: %d (%+v)", len(rjs), u.events)
	}
	return rjs[0]
}

func TestJoinNamesSelfPresence(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	rj := joinRoom(t, s, n, u)
	if !rj.To.Equal(phone) || rj.Room != roomAddr("#chan") || rj.Self.Nick != "alice" || rj.NickChanged || rj.Created {
		t.Fatalf("RoomJoined = %+v", rj)
	}
	if rj.Subject != "The *topic*" || rj.SubjectBy != "bob" || !rj.SubjectAt.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("subject = %q by %q at %v", rj.Subject, rj.SubjectBy, rj.SubjectAt)
	}
	want := map[string][2]string{"bob": {"moderator", "admin"}, "carol": {"moderator", "member"}, "dave": {"participant", "none"}}
	if len(rj.Occupants) != 3 {
		t.Fatalf("occupants = %+v", rj.Occupants)
	}
	for _, o := range rj.Occupants {
		if w := want[o.Nick]; o.Role != w[0] || o.Affiliation != w[1] || o.RealJID != o.Nick+"%local@irc.localhost" {
			t.Errorf("occupant %+v, want %v", o, w)
		}
	}
	if n.user != "al" || n.host != "gw.example" {
		t.Errorf("own user@host = %s@%s", n.user, n.host)
	}
}

func TestNickCollisionAtRegistration(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	n.state = stRegistering
	n.nick = ""
	s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#chan").Occupant("alice"), MUC: true})
	feed(t, n, ":irc.test 433 * alice :Nickname already in use")
	if got := sent(n); len(got) != 1 || got[0] != "NICK alice_" {
		t.Fatalf("sent %q", got)
	}
	feed(t, n, ":irc.test 433 * alice_ :Nickname already in use")
	if got := sent(n); len(got) != 1 || got[0] != "NICK alice__" {
		t.Fatalf("sent %q", got)
	}
	feed(t, n, ":irc.test 001 alice__ :Welcome alice__!al@h")
	if got := sent(n); len(got) != 1 || got[0] != "JOIN #chan" {
		t.Fatalf("sent %q", got)
	}
	feed(t, n, ":alice__!al@h JOIN #chan", ":irc.test 353 alice__ = #chan :@alice__", ":irc.test 366 alice__ #chan :End", ":irc.test 324 alice__ #chan +nt")
	rj := take[bridge.RoomJoined](u)
	if len(rj) != 1 || rj[0].Self.Nick != "alice__" || !rj[0].NickChanged || !rj[0].Created {
		t.Fatalf("RoomJoined = %+v (want nick alice__, status 210 and 201)", rj)
	}
}

func TestModesKickNickTopic(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	joinRoom(t, s, n, u)

	feed(t, n, ":bob!b@h MODE #chan +o-h+v dave carol carol")
	occ := take[bridge.OccupantChanged](u)
	if len(occ) != 2 || occ[0].Occupant.Nick != "dave" || occ[0].Occupant.Role != "moderator" || occ[0].Occupant.Affiliation != "admin" ||
		occ[1].Occupant.Nick != "carol" || occ[1].Occupant.Role != "participant" || occ[1].Occupant.Affiliation != "member" {
		t.Fatalf("mode changes = %+v", occ)
	}

	feed(t, n, ":dave!d@h NICK :david")
	occ = take[bridge.OccupantChanged](u)
	if len(occ) != 1 || occ[0].Occupant.Nick != "dave" || occ[0].NewNick != "david" {
		t.Fatalf("nick change = %+v", occ)
	}

	feed(t, n, ":bob!b@h MODE #chan +b *!*@h", ":bob!b@h KICK #chan david :behave")
	occ = take[bridge.OccupantChanged](u)
	if len(occ) != 1 || !occ[0].Gone || !occ[0].Banned || occ[0].Actor != "bob" || occ[0].Reason != "behave" {
		t.Fatalf("kick-ban = %+v", occ)
	}
	feed(t, n, ":bob!b@h KICK #chan carol :out")
	occ = take[bridge.OccupantChanged](u)
	if len(occ) != 1 || !occ[0].Kicked || occ[0].Banned {
		t.Fatalf("kick = %+v", occ)
	}

	feed(t, n, ":bob!b@h PART #chan :bye", ":eve!e@h JOIN #chan", ":eve!e@h QUIT :Quit: gone")
	occ = take[bridge.OccupantChanged](u)
	if len(occ) != 3 || !occ[0].Gone || occ[0].Reason != "bye" || occ[1].Gone || occ[1].Occupant.Nick != "eve" || !occ[2].Gone || occ[2].Reason != "Quit: gone" {
		t.Fatalf("part/join/quit = %+v", occ)
	}

	feed(t, n, "@time=2024-01-02T03:04:05.000Z :eve!e@h TOPIC #chan :new \x0304topic")
	subj := take[bridge.RoomSubject](u)
	if len(subj) != 1 || subj[0].Subject != "new topic" || subj[0].By != "eve" || subj[0].At.Year() != 2024 {
		t.Fatalf("subject = %+v", subj)
	}
	topic := "from xmpp"
	s.sendMessage(bridge.SendMessage{From: phone, To: roomAddr("#chan"), Type: bridge.Groupchat, ID: "t1", Subject: &topic})
	if got := sent(n); len(got) != 1 || got[0] != "TOPIC #chan :from xmpp" {
		t.Fatalf("sent %q", got)
	}
	feed(t, n, ":irc.test 482 alice #chan :You're not channel operator")
	errs := take[bridge.DeliveryError](u)
	if len(errs) != 1 || errs[0].ID != "t1" || errs[0].Err.Condition != bridge.Forbidden {
		t.Fatalf("topic refusal = %+v", errs)
	}

	// Kicked ourselves: the room is gone.
	feed(t, n, ":bob!b@h KICK #chan alice :enough")
	occ = take[bridge.OccupantChanged](u)
	if len(occ) != 1 || !occ[0].Self || !occ[0].Gone || !occ[0].Kicked {
		t.Fatalf("self kick = %+v", occ)
	}
	if len(n.rooms) != 0 {
		t.Fatalf("rooms left: %d", len(n.rooms))
	}
}

func TestRoomAdmin(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	joinRoom(t, s, n, u)
	s.roomAdmin(bridge.RoomAdmin{From: phone, Room: roomAddr("#chan"), IQID: "k1", Nick: "dave", Role: "none", Reason: "spam\r\nQUIT"})
	if got := sent(n); len(got) != 1 || got[0] != "KICK #chan dave spam" {
		t.Fatalf("sent %q", got)
	}
	feed(t, n, ":alice!al@h KICK #chan dave :spam")
	res := take[bridge.IQResult](u)
	if len(res) != 1 || res[0].ID != "k1" || res[0].Err != nil {
		t.Fatalf("kick result = %+v", res)
	}
	s.roomAdmin(bridge.RoomAdmin{From: phone, Room: roomAddr("#chan"), IQID: "m1", Nick: "carol", Role: "moderator"})
	s.roomAdmin(bridge.RoomAdmin{From: phone, Room: roomAddr("#chan"), IQID: "m2", Nick: "bob", Affiliation: "none"})
	if got := sent(n); len(got) != 1 || got[0] != "MODE #chan -ov bob bob" {
		// carol already is a moderator (half-op): nothing to send.
		t.Fatalf("sent %q", got)
	}
	feed(t, n, ":irc.test 482 alice #chan :You're not channel operator")
	res = take[bridge.IQResult](u)
	if len(res) != 2 || res[0].ID != "m1" || res[0].Err != nil || res[1].ID != "m2" || res[1].Err == nil || res[1].Err.Condition != bridge.Forbidden {
		t.Fatalf("mode results = %+v", res)
	}
	s.roomAdmin(bridge.RoomAdmin{From: phone, Room: roomAddr("#chan"), IQID: "b1", Nick: "bob", Affiliation: "outcast"})
	if got := sent(n); len(got) != 2 || got[0] != "MODE #chan +b bob!*@*" || got[1] != "KICK #chan bob" {
		t.Fatalf("sent %q", got)
	}
	s.roomAdmin(bridge.RoomAdmin{From: phone, Room: roomAddr("#chan"), IQID: "x", Nick: "nobody", Role: "none"})
	if res := take[bridge.IQResult](u); len(res) != 1 || res[0].Err == nil || res[0].Err.Condition != bridge.ItemNotFound {
		t.Fatalf("unknown nick = %+v", res)
	}
}

func TestMessagesFromIRC(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	joinRoom(t, s, n, u)
	feed(t, n,
		"@time=2024-05-06T07:08:09.123Z;msgid=abc123 :bob!b@h PRIVMSG #chan :\x02hi\x02 there",
		":bob!b@h PRIVMSG #chan :\x01ACTION waves\x01",
		":bob!b@h NOTICE #chan :a notice",
		":bob!b@h PRIVMSG @#chan :ops only",
		":bob!b@h PRIVMSG alice :private",
		":irc.test NOTICE alice :server says",
		":bob!b@h PRIVMSG #unknown :ignored",
	)
	msgs := take[bridge.Message](u)
	if len(msgs) != 6 {
		t.Fatalf("messages = %+v", msgs)
	}
	m := msgs[0]
	if m.Body != "*hi* there" || m.From != roomAddr("#chan").Occupant("bob") || !m.Time.Equal(time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)) ||
		msgidOfStanzaID(t, m.StanzaID) != "abc123" {
		t.Fatalf("message = %+v", m)
	}
	if !msgs[1].Action || msgs[1].Body != "waves" {
		t.Fatalf("action = %+v", msgs[1])
	}
	if !msgs[2].Notice || msgs[2].Body != "a notice" {
		t.Fatalf("notice = %+v", msgs[2])
	}
	if msgs[3].Body != "ops only" || msgs[3].Type != bridge.Groupchat {
		t.Fatalf("statusmsg = %+v", msgs[3])
	}
	if msgs[4].Type != bridge.Chat || msgs[4].From != n.contact("bob") || msgs[4].Body != "private" {
		t.Fatalf("pm = %+v", msgs[4])
	}
	if msgs[5].From.Kind != mapping.KindServer || !msgs[5].Notice || msgs[5].Body != "server says" {
		t.Fatalf("server notice = %+v", msgs[5])
	}
}

func TestCTCPReplies(t *testing.T) {
	_, n, _ := newTestNetwork(t, nil)
	feed(t, n, ":bob!b@h PRIVMSG alice :\x01VERSION\x01")
	if got := sent(n); len(got) != 1 || got[0] != "NOTICE bob :\x01VERSION Switchboard XMPP gateway\x01" {
		t.Fatalf("sent %q", got)
	}
	n.lastCTCP = time.Time{}
	feed(t, n, ":bob!b@h PRIVMSG alice :\x01PING 123\x01")
	if got := sent(n); len(got) != 1 || got[0] != "NOTICE bob :\x01PING 123\x01" {
		t.Fatalf("sent %q", got)
	}
	// Flood: a second request at once is not answered.
	feed(t, n, ":bob!b@h PRIVMSG alice :\x01TIME\x01")
	if got := sent(n); len(got) != 0 {
		t.Fatalf("sent %q", got)
	}
	n.lastCTCP = time.Time{}
	feed(t, n, ":bob!b@h PRIVMSG alice :\x01TIME\x01")
	if got := sent(n); len(got) != 1 || !strings.HasPrefix(got[0], "NOTICE bob :\x01TIME ") {
		t.Fatalf("sent %q", got)
	}
	n.lastCTCP = time.Time{}
	feed(t, n, ":bob!b@h PRIVMSG alice :\x01DCC SEND x 1 2 3\x01")
	if got := sent(n); len(got) != 0 {
		t.Fatalf("sent %q", got)
	}
}

func TestSendActionReplyAndMaxLines(t *testing.T) {
	s, n, u := newTestNetwork(t, func(c *Config) { c.MaxLines = ptr(3) })
	joinRoom(t, s, n, u)
	s.sendMessage(bridge.SendMessage{From: phone, To: roomAddr("#chan"), Type: bridge.Groupchat, ID: "a1", Body: "waves", Action: true})
	if got := sent(n); len(got) != 1 || got[0] != "PRIVMSG #chan :\x01ACTION waves\x01" {
		t.Fatalf("sent %q", got)
	}
	refl := take[bridge.Message](u)
	if len(refl) != 1 || !refl[0].Action || refl[0].ID != "a1" {
		t.Fatalf("reflection = %+v", refl)
	}
	s.sendMessage(bridge.SendMessage{From: phone, To: roomAddr("#chan"), Type: bridge.Groupchat, ID: "l1", Body: "1\n2\n3\n4"})
	errs := take[bridge.DeliveryError](u)
	if len(errs) != 1 || errs[0].ID != "l1" || errs[0].Err.Condition != bridge.PolicyViolation {
		t.Fatalf("max_lines = %+v", errs)
	}
	if got := sent(n); len(got) != 0 {
		t.Fatalf("sent %q", got)
	}
	// Not in the room.
	s.sendMessage(bridge.SendMessage{From: phone, To: roomAddr("#other"), Type: bridge.Groupchat, ID: "n1", Body: "x"})
	if errs := take[bridge.DeliveryError](u); len(errs) != 1 || errs[0].Err.Condition != bridge.NotAcceptable {
		t.Fatalf("not in room = %+v", errs)
	}
}

func TestEchoMessageLabels(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	joinRoom(t, s, n, u)
	n.caps = map[string]bool{"echo-message": true, "labeled-response": true, "message-tags": true}
	s.sendMessage(bridge.SendMessage{From: phone, To: roomAddr("#chan"), Type: bridge.Groupchat, ID: "e1", OriginID: "o1", Body: "one\ntwo",
		Reply: &bridge.Reply{ID: "prev~" + s.tag}})
	got := sent(n)
	if len(got) != 2 || !strings.Contains(got[0], "label=sb1") || !strings.Contains(got[0], "+draft/reply=prev") || !strings.HasSuffix(got[0], "PRIVMSG #chan one") ||
		!strings.Contains(got[1], "label=sb2") || strings.Contains(got[1], "draft/reply") {
		t.Fatalf("sent %q", got)
	}
	if refl := take[bridge.Message](u); len(refl) != 0 {
		t.Fatalf("reflected before the echo: %+v", refl)
	}
	feed(t, n, "@label=sb1;msgid=m-1 :alice!al@h PRIVMSG #chan one", "@label=sb2;msgid=m-2 :alice!al@h PRIVMSG #chan two")
	refl := take[bridge.Message](u)
	if len(refl) != 1 || refl[0].ID != "e1" || refl[0].OriginID != "o1" || refl[0].Body != "one\ntwo" || msgidOfStanzaID(t, refl[0].StanzaID) != "m-1" {
		t.Fatalf("reflection = %+v", refl)
	}
	// A refused message gets its error through its label.
	s.sendMessage(bridge.SendMessage{From: phone, To: roomAddr("#chan"), Type: bridge.Groupchat, ID: "e2", Body: "x"})
	sent(n)
	feed(t, n, "@label=sb3 :irc.test 404 alice #chan :Cannot send to channel")
	errs := take[bridge.DeliveryError](u)
	if len(errs) != 1 || errs[0].ID != "e2" || errs[0].Err.Condition != bridge.Forbidden {
		t.Fatalf("error = %+v", errs)
	}
	// Private message with a receipt request: the echo is the receipt.
	s.sendMessage(bridge.SendMessage{From: phone, To: n.contact("bob"), Type: bridge.Chat, ID: "p1", Body: "hi", ReceiptRequested: true})
	sent(n)
	feed(t, n, "@label=sb4 :alice!al@h PRIVMSG bob :hi")
	if r := take[bridge.Receipt](u); len(r) != 1 || r[0].ID != "p1" {
		t.Fatalf("receipt = %+v", r)
	}
}

func TestNoSuchNick(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	s.sendMessage(bridge.SendMessage{From: phone, To: n.contact("ghost"), Type: bridge.Chat, ID: "g1", Body: "hello?"})
	sent(n)
	feed(t, n, ":irc.test 401 alice ghost :No such nick or channel name")
	errs := take[bridge.DeliveryError](u)
	if len(errs) != 1 || errs[0].ID != "g1" || errs[0].Err.Condition != bridge.ItemNotFound {
		t.Fatalf("errors = %+v", errs)
	}
}

func TestServerJIDRawCommands(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	server := mapping.Address{Kind: mapping.KindServer, Domain: "irc.localhost", Network: "local"}
	s.sendMessage(bridge.SendMessage{From: phone, To: server, Type: bridge.Chat, ID: "r1", Body: "PRIVMSG NickServ :identify secret\n/msg ChanServ op #x"})
	if got := sent(n); len(got) != 2 || got[0] != "PRIVMSG NickServ :identify secret" || got[1] != "PRIVMSG ChanServ :op #x" {
		t.Fatalf("sent %q", got)
	}
	s.sendMessage(bridge.SendMessage{From: phone, To: server, Type: bridge.Chat, ID: "r2", Body: "CAP REQ :x"})
	if errs := take[bridge.DeliveryError](u); len(errs) != 1 || errs[0].ID != "r2" {
		t.Fatalf("errors = %+v", errs)
	}
	if got := sent(n); len(got) != 0 {
		t.Fatalf("sent %q", got)
	}
}

func TestUnknownNetwork(t *testing.T) {
	s, _, u := newTestNetwork(t, nil)
	s.join(bridge.JoinRoom{From: phone, Room: mapping.Address{Kind: mapping.KindOccupant, Domain: "irc.localhost", Network: "elsewhere.example", Name: "#x", Resource: "a"}, MUC: true})
	errs := take[bridge.DeliveryError](u)
	if len(errs) != 1 || errs[0].Kind != "presence" || errs[0].Err.Condition != bridge.ItemNotFound {
		t.Fatalf("errors = %+v", errs)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{
		Rate: ptr(-1.0), Burst: ptr(0), MaxLines: ptr(0), HistoryDays: ptr(-3), BindAddress: "nope",
		Networks: []NetworkConfig{
			{Name: "a b", Address: "x"},
			{Name: "ok", Address: "host:99999", Fingerprint: "zz", Charset: "klingon", Password: "a b"},
			{Name: "OK", Address: "h:1"},
		},
	}
	c.SetDefaults()
	errs := c.Validate()
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	joined := strings.Join(all, "\n")
	// Keys are relative to the section (main puts "irc." in front, and
	// checks domain and secret itself: config_test.go).
	for _, want := range []string{
		"rate:", "burst:", "max_lines:", "history_days:", "bind_address:",
		"network[0].name:", `network[0].address: "x" is not host:port`, "network[1].address:",
		"network[1].fingerprint:", "network[1].charset:", "network[1].password:", "network[2].name:",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("no error for %s in:\n%s", want, joined)
		}
	}
	good := testConfig("127.0.0.1:6667")
	good.SetDefaults()
	if errs := good.Validate(); len(errs) != 0 {
		t.Fatalf("valid config refused: %v", errs)
	}
	if *good.Rate != 0 || *good.Burst != DefaultBurst || *good.MaxLines != DefaultMaxLines || *good.HistoryDays != DefaultHistoryDays {
		t.Fatalf("defaults = %+v", good)
	}
}

// BenchmarkHandlePrivmsg measures one channel line from IRC to the
// outbound Message event (parse, route, format, emit; archive off).
func BenchmarkHandlePrivmsg(b *testing.B) {
	s, n, u := newTestNetwork(b, func(c *Config) { c.HistoryDays = ptr(0) })
	s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#chan").Occupant("alice"), MUC: true})
	feed(b, n, ":alice!al@h JOIN #chan", ":irc.test 353 alice = #chan :alice @bob", ":irc.test 366 alice #chan :End", ":irc.test 324 alice #chan +nt")
	u.drop = true
	line := "@time=2024-05-06T07:08:09.123Z;msgid=abc123 :bob!b@host.example PRIVMSG #chan :hello there, this is a fairly ordinary line of chat"
	u.count = 0
	b.ReportAllocs()
	for b.Loop() {
		m, err := ircmsg.ParseLine(line)
		if err != nil {
			b.Fatal(err)
		}
		n.handle(&m)
	}
	if u.count == 0 {
		b.Fatal("nothing emitted")
	}
}

func TestAwayFromXMPP(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	joinRoom(t, s, n, u)
	occ := roomAddr("#chan").Occupant("alice")
	s.join(bridge.JoinRoom{From: phone, Room: occ, Show: "away", Status: "lunch\r\nQUIT"})
	s.join(bridge.JoinRoom{From: phone, Room: occ, Show: "dnd"})
	s.join(bridge.JoinRoom{From: phone, Room: occ})
	if got := sent(n); len(got) != 3 || got[0] != "AWAY lunch" || got[1] != "AWAY Busy" || got[2] != "AWAY" {
		t.Fatalf("sent %q", got)
	}
}

func TestConnectionLimits(t *testing.T) {
	s, _, u := newTestNetwork(t, func(c *Config) {
		c.MaxConnectionsPerUser = 1
		c.Networks = append(c.Networks, NetworkConfig{Name: "other", Address: "127.0.0.2:1"})
	})
	s.join(bridge.JoinRoom{From: phone, Room: mapping.Address{Kind: mapping.KindOccupant, Domain: "irc.localhost", Network: "other", Name: "#x", Resource: "alice"}, MUC: true})
	if errs := take[bridge.DeliveryError](u); len(errs) != 1 || errs[0].Err.Condition != bridge.ResourceConstraint {
		t.Fatalf("per-user limit: %+v", errs)
	}
	s2, _, u2 := newTestNetwork(t, func(c *Config) { c.MaxConnections = 1 })
	s2.t.takeConnection() // another user holds the last one
	_ = s2
	fresh := newSession(s2.t, u2)
	fresh.join(bridge.JoinRoom{From: phone, Room: roomAddr("#x").Occupant("alice"), MUC: true})
	if errs := take[bridge.DeliveryError](u2); len(errs) != 1 || errs[0].Err.Condition != bridge.ResourceConstraint {
		t.Fatalf("total limit: %+v", errs)
	}
}

func TestSASLExternal(t *testing.T) {
	_, n, u := newTestNetwork(t, nil)
	n.info = &netInfo{name: "local", tls: true, limits: n.info.limits}
	u.acct = &store.Account{Fields: map[string]string{"net.local.sasl_mechanism": "EXTERNAL"}, Secrets: map[string]string{"net.local.client_cert": "PEM"}}
	n.state, n.nick, n.capEnded = stRegistering, "", false
	feed(t, n, ":irc.test CAP * LS :sasl=EXTERNAL", ":irc.test CAP * ACK :sasl", "AUTHENTICATE +", ":irc.test 903 * :ok")
	if got := sent(n); strings.Join(got, "|") != "CAP REQ sasl|AUTHENTICATE EXTERNAL|AUTHENTICATE +|CAP END" {
		t.Fatalf("sent %q", got)
	}
}

func TestChannelPasswordChecked(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#locked").Occupant("alice"), MUC: true, Password: "a\r\nQUIT"})
	if errs := take[bridge.DeliveryError](u); len(errs) != 1 || errs[0].Err.Condition != bridge.NotAcceptable {
		t.Fatalf("errors = %+v", errs)
	}
	s.join(bridge.JoinRoom{From: phone, Room: roomAddr("#locked").Occupant("alice"), MUC: true, Password: "s3cret"})
	if got := sent(n); len(got) != 1 || got[0] != "JOIN #locked s3cret" {
		t.Fatalf("sent %q", got)
	}
	feed(t, n, ":irc.test 475 alice #locked :Cannot join channel (+k)")
	if errs := take[bridge.DeliveryError](u); len(errs) != 1 || errs[0].Err.Condition != bridge.NotAuthorized {
		t.Fatalf("errors = %+v", errs)
	}
}

// TestStatusLines describes the connection for the status command.
func TestStatusLines(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	joinRoom(t, s, n, u)
	if st := s.Status(); len(st) != 1 || st[0] != "local: connected as alice, in #chan." {
		t.Fatalf("status = %q", st)
	}
}
