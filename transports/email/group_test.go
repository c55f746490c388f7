package email

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
	"switchboard/store/memstore"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig() Config {
	return Config{
		ComponentConfig:   bridge.ComponentConfig{Domain: "mail.localhost", Secret: "s"},
		HostedDomain:      "mail.localhost",
		Listen:            "127.0.0.1:0",
		Smarthost:         "127.0.0.1:1",
		SmarthostSecurity: "none",
	}
}

func newTestTransport(t *testing.T, cfg Config, st store.Store) *Transport {
	t.Helper()
	tr, err := New(cfg, st, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func openSQLite(t *testing.T, path string) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite", path, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSendLogSurvivesRestart: send_per_hour is counted from a durable
// log: after the quota is used, a new Transport on the same database (a
// restarted gateway) still refuses, names when the next send can go, and
// allows it once the oldest send is an hour old.
func TestSendLogSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	cfg := testConfig()
	cfg.SendPerHour = 3
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	st := openSQLite(t, path)
	tr := newTestTransport(t, cfg, st)
	tr.now = func() time.Time { return now }
	const user = "alice@localhost"
	for i := 0; i < 3; i++ {
		ok, _, err := tr.takeSend(ctx, user)
		if err != nil || !ok {
			t.Fatalf("send %d: ok=%v err=%v", i+1, ok, err)
		}
		now = now.Add(10 * time.Minute)
	}
	if ok, reset, _ := tr.takeSend(ctx, user); ok || !reset.Equal(time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)) {
		t.Fatalf("fourth send: want refused until 11:00, got ok=%v reset=%v", ok, reset)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// The restart.
	st = openSQLite(t, path)
	defer st.Close()
	tr = newTestTransport(t, cfg, st)
	tr.now = func() time.Time { return now }
	if n, _, err := tr.rateState(ctx, user); err != nil || n != 3 {
		t.Fatalf("after a restart: %d sends counted (err %v), want 3", n, err)
	}
	if ok, reset, _ := tr.takeSend(ctx, user); ok || reset.Format("15:04") != "11:00" {
		t.Fatalf("after a restart: want refused until 11:00, got ok=%v reset=%v", ok, reset)
	}
	if n, _, _ := tr.rateState(ctx, "bob@localhost"); n != 0 {
		t.Errorf("another user has %d sends counted", n)
	}
	now = time.Date(2026, 12, 7, 11, 0, 0, 1e6, time.UTC)
	if ok, _, _ := tr.takeSend(ctx, user); !ok {
		t.Fatal("an hour after the first send: want allowed")
	}
	if ok, reset, _ := tr.takeSend(ctx, user); ok || reset.Format("15:04") != "11:10" {
		t.Fatalf("the window slides: want refused until 11:10, got ok=%v reset=%v", ok, reset)
	}
	// A mail that could not be queued gives its send back.
	tr.giveBackSend(ctx, user)
	if ok, _, _ := tr.takeSend(ctx, user); !ok {
		t.Fatal("after a give-back: want allowed")
	}
}

func hostedAccount() *store.Account {
	return &store.Account{User: "alice@localhost", Transport: "email", Fields: map[string]string{"address": "alice"}}
}

// TestConvertGroupMail: a mail to alice with other recipients shows them
// in a first line and as XEP-0033 addresses (never alice's own addresses,
// +tag included, nor the author; each once), and the thread remembers
// everyone a reply goes to; a one-to-one mail and list mail have none.
func TestConvertGroupMail(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	tr := newTestTransport(t, testConfig(), st)
	acct := hostedAccount()
	raw := "From: Bob <bob@example.test>\r\nTo: alice@mail.localhost, Carol <carol@example.test>, bob@example.test\r\n" +
		"Cc: ALICE+lists@mail.localhost, dave@example.test, carol@example.test\r\nSubject: plans\r\n" +
		"Message-ID: <g1@example.test>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\nLet us meet.\r\n"
	evs := tr.convert(ctx, acct, []byte(raw), "", "", "bob@example.test", nil)
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	m := evs[0].(bridge.Message)
	if want := "To: Carol <carol@example.test>; Cc: dave@example.test\nLet us meet."; m.Body != want {
		t.Errorf("body %q, want %q", m.Body, want)
	}
	codec := mapping.NewEmailCodec("mail.localhost")
	carol, _ := codec.Mailbox("carol@example.test")
	dave, _ := codec.Mailbox("dave@example.test")
	wantAddrs := []bridge.ExtAddress{{Type: "to", Addr: carol, Desc: "Carol"}, {Type: "cc", Addr: dave}}
	if len(m.Addresses) != 2 || m.Addresses[0] != wantAddrs[0] || m.Addresses[1] != wantAddrs[1] {
		t.Errorf("addresses %+v, want %+v", m.Addresses, wantAddrs)
	}
	c := tr.getConv(ctx, acct.User, "thread:"+m.Thread)
	var got []string
	for _, p := range c.People {
		got = append(got, p.Addr)
	}
	if strings.Join(got, " ") != "bob@example.test carol@example.test dave@example.test" {
		t.Errorf("thread participants %v", got)
	}
	if ps := tr.groupPeople(ctx, acct.User, "g1@example.test", conv{}); len(ps) != 3 {
		t.Errorf("participants by Message-ID: %+v", ps)
	}
	// Reply-all from the thread: To bob, Cc carol and dave.
	r := tr.replyAll(acct, "bob@example.test", c.People)
	if len(r.To) != 1 || r.To[0].Addr != "bob@example.test" || len(r.Cc) != 2 || r.Cc[0].Addr != "carol@example.test" || r.Cc[1].Addr != "dave@example.test" {
		t.Errorf("reply-all: %+v", r)
	}
	// Answering in carol's chat: To carol, Cc bob and dave.
	r = tr.replyAll(acct, "carol@example.test", c.People)
	if r.To[0].Addr != "carol@example.test" || len(r.Cc) != 2 || r.Cc[0].Addr != "bob@example.test" {
		t.Errorf("reply-all to carol: %+v", r)
	}

	// One-to-one: nothing added.
	raw = "From: bob@example.test\r\nTo: Alice <alice@mail.localhost>\r\nSubject: hi\r\nMessage-ID: <o1@example.test>\r\n\r\nJust you.\r\n"
	m = tr.convert(ctx, acct, []byte(raw), "", "", "bob@example.test", nil)[0].(bridge.Message)
	if m.Body != "Just you." || m.Addresses != nil {
		t.Errorf("one-to-one: body %q addresses %+v", m.Body, m.Addresses)
	}
	if c := tr.getConv(ctx, acct.User, "thread:"+m.Thread); c.People != nil {
		t.Errorf("one-to-one thread has participants %+v", c.People)
	}
	// List mail: the list is the contact, replies go to it only.
	raw = "From: bob@example.test\r\nTo: list@example.test, carol@example.test\r\nList-Id: <list.example.test>\r\nList-Post: <mailto:list@example.test>\r\n" +
		"Subject: news\r\nMessage-ID: <l1@example.test>\r\n\r\nList text.\r\n"
	m = tr.convert(ctx, acct, []byte(raw), "", "", "bob@example.test", nil)[0].(bridge.Message)
	if m.Addresses != nil || strings.Contains(m.Body, "To:") {
		t.Errorf("list mail: body %q addresses %+v", m.Body, m.Addresses)
	}
	if c := tr.getConv(ctx, acct.User, "thread:"+m.Thread); c.People != nil {
		t.Errorf("list thread has participants %+v", c.People)
	}
}

// TestParticipantsLine: names with addresses, To before Cc, at most
// maxShown named and the rest counted.
func TestParticipantsLine(t *testing.T) {
	if got := participantsLine([]person{{Addr: "a@x.test", Cc: true}, {Name: "B", Addr: "b@x.test"}, {Name: "c@x.test", Addr: "c@x.test"}}); got != "To: B <b@x.test>, c@x.test; Cc: a@x.test" {
		t.Errorf("got %q", got)
	}
	var many []person
	for i := 0; i < 12; i++ {
		many = append(many, person{Addr: string(rune('a'+i)) + "@x.test"})
	}
	if got := participantsLine(many); !strings.HasPrefix(got, "To: a@x.test, ") || !strings.HasSuffix(got, "h@x.test and 4 more") {
		t.Errorf("12 participants: %q", got)
	}
}

// TestIsOwn: the hosted address with any +tag and case, the
// bring-your-own address; nothing else.
func TestIsOwn(t *testing.T) {
	tr := newTestTransport(t, testConfig(), memstore.New())
	h := hostedAccount()
	for addr, want := range map[string]bool{
		"alice@mail.localhost": true, "ALICE@Mail.Localhost": true, "alice+x@mail.localhost": true,
		"alicex@mail.localhost": false, "alice@example.test": false, "": false, "bob@mail.localhost": false,
	} {
		if got := tr.isOwn(h, addr); got != want {
			t.Errorf("hosted isOwn(%q) = %v", addr, got)
		}
	}
	byo := &store.Account{User: "bob@localhost", Fields: map[string]string{"imap_server": "x:993", "email": "Bob@Example.test"}}
	if !tr.isOwn(byo, "bob@example.test") || tr.isOwn(byo, "bob@mail.localhost") {
		t.Error("bring-your-own isOwn")
	}
}

// TestMulticastRecipients: XEP-0033 addresses become To, Cc and Bcc;
// duplicates and delivered addresses are skipped; errors name the bad
// address; a Bcc-only mail is refused; max_recipients counts everyone
// and names the limit and the count.
func TestMulticastRecipients(t *testing.T) {
	cfg := testConfig()
	cfg.MaxRecipients = 3
	tr := newTestTransport(t, cfg, memstore.New())
	codec := mapping.NewEmailCodec("mail.localhost")
	c := func(typ, addr string) bridge.ExtAddress {
		a, err := codec.Mailbox(addr)
		if err != nil {
			t.Fatal(err)
		}
		return bridge.ExtAddress{Type: typ, JID: strings.Replace(addr, "@", `\40`, 1) + "@mail.localhost", Addr: a}
	}
	r, err := tr.multicastRecipients([]bridge.ExtAddress{c("to", "bob@example.test"), c("cc", "carol@example.test"),
		c("bcc", "dave@example.test"), c("cc", "BOB@example.test"), {Type: "to", Delivered: true, JID: "x", Err: "bad"},
		{Type: "to", URI: "mailto:erin@example.test?subject=x"}, {Type: "replyto", JID: "y"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.envelope(), " "); got != "bob@example.test erin@example.test carol@example.test dave@example.test" {
		t.Errorf("envelope %q", got)
	}
	if ps := r.people(); len(ps) != 3 {
		t.Errorf("people (no Bcc): %+v", ps)
	}
	if err := tr.checkRecipients(r); err == nil || !strings.Contains(err.Error(), "max_recipients") || !strings.Contains(err.Error(), "4") {
		t.Errorf("4 recipients, max 3: %v", err)
	}
	// Bcc only: a mail to undisclosed recipients (see TestBuildUndisclosed).
	if r, err := tr.multicastRecipients([]bridge.ExtAddress{c("bcc", "bob@example.test")}); err != nil || len(r.To)+len(r.Cc) != 0 || len(r.envelope()) != 1 {
		t.Errorf("Bcc only: %+v, %v", r, err)
	}
	for _, tc := range []struct {
		in   []bridge.ExtAddress
		cond string
		text string
	}{
		{[]bridge.ExtAddress{c("to", "bob@example.test"), {Type: "cc", JID: "carol@localhost", Err: "carol@localhost is not on mail.localhost"}}, bridge.JIDMalformed, "carol@localhost"},
		{[]bridge.ExtAddress{{Type: "to", JID: "mail.localhost", Addr: mapping.Address{Kind: mapping.KindGateway}}}, bridge.JIDMalformed, "mail.localhost"},
		{[]bridge.ExtAddress{{Type: "to", URI: "mailto:bad address@example.test"}}, bridge.JIDMalformed, "bad address@example.test"},
		{[]bridge.ExtAddress{{Type: "to", URI: "https://example.test/"}}, bridge.JIDMalformed, "https://example.test/"},
		{[]bridge.ExtAddress{c("forward", "bob@example.test")}, bridge.BadRequest, "forward"},
		{[]bridge.ExtAddress{{Type: "noreply"}}, bridge.BadRequest, "no recipient"},
	} {
		_, err := tr.multicastRecipients(tc.in)
		se := bridge.AsStanzaError(err)
		if err == nil || se.Condition != tc.cond || !strings.Contains(se.Text, tc.text) {
			t.Errorf("%+v: want %s naming %q, got %v", tc.in, tc.cond, tc.text, err)
		}
	}
}

// fakeSmarthost is an SMTP server that refuses and defers recipients as
// told and records what it accepted.
type fakeSmarthost struct {
	mu       sync.Mutex
	refuse   map[string]bool // 550 at RCPT
	defer4xx map[string]int  // 451 at RCPT this many times
	got      map[string]int  // recipient → mails delivered
}

type fakeSession struct {
	f     *fakeSmarthost
	rcpts []string
}

func (f *fakeSmarthost) NewSession(*smtp.Conn) (smtp.Session, error) { return &fakeSession{f: f}, nil }
func (s *fakeSession) Mail(string, *smtp.MailOptions) error          { return nil }
func (s *fakeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if s.f.refuse[to] {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	if s.f.defer4xx[to] > 0 {
		s.f.defer4xx[to]--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "mailbox busy"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *fakeSession) Data(r io.Reader) error {
	if _, err := io.ReadAll(r); err != nil {
		return err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	for _, r := range s.rcpts {
		s.f.got[r]++
	}
	return nil
}
func (s *fakeSession) Reset()        { s.rcpts = nil }
func (s *fakeSession) Logout() error { return nil }

func (f *fakeSmarthost) count(r string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[r]
}

type recordingSink struct {
	mu  sync.Mutex
	evs []bridge.Outbound
}

func (s *recordingSink) Send(ev bridge.Outbound) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evs = append(s.evs, ev)
	return nil
}

func (s *recordingSink) take() []bridge.Outbound {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.evs
	s.evs = nil
	return out
}

// TestSendItemSeveralRecipients: one queued mail to four recipients
// through a smarthost that refuses carol (550) and defers dave (451)
// once: bob and erin get it at once, dave on the retry and only dave;
// nobody gets it twice; the user gets one error stanza on the message id
// naming carol and the reply, and saying who got it. A mail whose every
// recipient is refused is one error naming them; a mail where everyone
// accepted gets its receipt.
func TestSendItemSeveralRecipients(t *testing.T) {
	ctx := context.Background()
	f := &fakeSmarthost{refuse: map[string]bool{"carol@example.test": true}, defer4xx: map[string]int{"dave@example.test": 1}, got: map[string]int{}}
	srv := smtp.NewServer(f)
	srv.Domain = "smarthost.test"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	defer func() { srv.Close(); <-done }()

	st := openSQLite(t, filepath.Join(t.TempDir(), "db.sqlite"))
	defer st.Close()
	cfg := testConfig()
	cfg.Smarthost = ln.Addr().String()
	tr := newTestTransport(t, cfg, st)
	sink := &recordingSink{}
	gw := bridge.New(st, allowAll{}, quietLog(), nil)
	defer gw.Shutdown()
	gw.AddTransport(tr, sink)
	tr.gw = gw

	queue := func(id string, to []string, receipt bool) {
		t.Helper()
		p, _ := json.Marshal(outItem{From: "alice@mail.localhost", To: to, Raw: []byte("Subject: x\r\n\r\nhello\r\n"), MessageID: id + "@mail.localhost",
			Receipt: receipt, Sender: "alice@localhost/phone", Multicast: true})
		if err := st.Enqueue(ctx, &store.QueueItem{Transport: queueOut, User: "alice@localhost", StanzaID: id, Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	runDue := func() {
		t.Helper()
		items, err := st.Claim(ctx, queueOut, time.Now().Add(time.Hour), outLease, 10)
		if err != nil {
			t.Fatal(err)
		}
		var snd sender
		defer snd.close()
		for _, it := range items {
			tr.sendItem(ctx, it, &snd)
		}
	}
	queue("m1", []string{"bob@example.test", "carol@example.test", "dave@example.test", "erin@example.test"}, true)
	runDue()
	if f.count("bob@example.test") != 1 || f.count("erin@example.test") != 1 || f.count("dave@example.test") != 0 {
		t.Fatalf("first attempt delivered %v", f.got)
	}
	if evs := sink.take(); len(evs) != 0 {
		t.Fatalf("events before the deferred recipient was done: %+v", evs)
	}
	runDue() // the retry (Claim with a clock an hour ahead)
	for _, r := range []string{"bob@example.test", "dave@example.test", "erin@example.test"} {
		if n := f.count(r); n != 1 {
			t.Errorf("%s got the mail %d times, want 1", r, n)
		}
	}
	if f.count("carol@example.test") != 0 {
		t.Error("carol got it")
	}
	evs := sink.take()
	if len(evs) != 1 {
		t.Fatalf("want one event, got %+v", evs)
	}
	de, ok := evs[0].(bridge.DeliveryError)
	if !ok || de.ID != "m1" || de.To.String() != "alice@localhost/phone" || de.From.Kind != mapping.KindGateway ||
		!strings.Contains(de.Err.Text, "carol@example.test (550 5.1.1 no such user)") ||
		!strings.Contains(de.Err.Text, "went to bob@example.test, erin@example.test and dave@example.test") {
		t.Errorf("partial refusal: %+v", evs[0])
	}
	if items, _ := st.Claim(ctx, queueOut, time.Now().Add(2*time.Hour), outLease, 10); len(items) != 0 {
		t.Errorf("the mail is still queued: %+v", items)
	}

	// Everyone refused: one error, nothing sent.
	f.refuse["zed@example.test"] = true
	queue("m2", []string{"carol@example.test", "zed@example.test"}, true)
	runDue()
	evs = sink.take()
	if len(evs) != 1 {
		t.Fatalf("all refused: %+v", evs)
	}
	if de, ok := evs[0].(bridge.DeliveryError); !ok || de.ID != "m2" || !strings.Contains(de.Err.Text, "carol@example.test") || !strings.Contains(de.Err.Text, "zed@example.test") {
		t.Errorf("all refused: %+v", evs[0])
	}
	// Everyone accepted: a receipt.
	queue("m3", []string{"bob@example.test", "erin@example.test"}, true)
	runDue()
	evs = sink.take()
	if len(evs) != 1 {
		t.Fatalf("all accepted: %+v", evs)
	}
	if rc, ok := evs[0].(bridge.Receipt); !ok || rc.ID != "m3" {
		t.Errorf("all accepted: want a receipt, got %+v", evs[0])
	}
	if f.count("bob@example.test") != 2 {
		t.Errorf("bob: %d mails, want 2", f.count("bob@example.test"))
	}
}

// TestSendGroup drives the session as the component does (Dispatch) and
// reads the queued mails: a message in a group thread, or a XEP-0461
// reply to a group mail, goes To the contact and Cc the others (never
// alice); a plain message stays one-to-one; a XEP-0033 message to the
// domain is one mail with Bcc in the envelope only; too many recipients
// and a bad address are error stanzas naming them, and nothing is queued.
func TestSendGroup(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t, filepath.Join(t.TempDir(), "db.sqlite"))
	defer st.Close()
	cfg := testConfig()
	cfg.MaxRecipients = 3
	tr := newTestTransport(t, cfg, st)
	sink := &recordingSink{}
	gw := bridge.New(st, allowAll{}, quietLog(), nil)
	defer gw.Shutdown()
	gw.AddTransport(tr, sink)
	tr.gw = gw
	acct := hostedAccount()
	acct.Secrets = map[string]string{}
	if err := st.PutAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	raw := "From: Bob <bob@example.test>\r\nTo: alice@mail.localhost, carol@example.test\r\nCc: dave@example.test\r\nSubject: plans\r\n" +
		"Message-ID: <g1@example.test>\r\n\r\nLet us meet.\r\n"
	in := tr.convert(ctx, acct, []byte(raw), "", "", "bob@example.test", nil)[0].(bridge.Message)

	alice := jid.MustParse("alice@localhost/phone")
	codec := mapping.NewEmailCodec("mail.localhost")
	bob, _ := codec.Mailbox("bob@example.test")
	send := func(m bridge.SendMessage) (outItem, string, bridge.Outbound) {
		t.Helper()
		m.From, m.Type = alice, bridge.Chat
		if err := gw.Dispatch("email", alice, m); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if evs := sink.take(); len(evs) > 0 {
				return outItem{}, "", evs[0]
			}
			items, err := st.Claim(ctx, queueOut, time.Now(), time.Minute, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) > 0 {
				var p outItem
				if err := json.Unmarshal(items[0].Payload, &p); err != nil {
					t.Fatal(err)
				}
				_ = st.Dequeue(ctx, items[0].ID, items[0].Lease)
				hdr := string(p.Raw)
				hdr = hdr[:strings.Index(hdr, "\r\n\r\n")]
				return p, strings.ReplaceAll(hdr, "\r\n ", " "), nil
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatal("nothing queued, no event")
		return outItem{}, "", nil
	}
	headerLine := func(hdr, k string) string {
		for _, l := range strings.Split(hdr, "\r\n") {
			if strings.HasPrefix(l, k+": ") {
				return l[len(k)+2:]
			}
		}
		return ""
	}

	p, hdr, _ := send(bridge.SendMessage{To: bob, ID: "r1", Body: "hi all", Thread: in.Thread})
	if strings.Join(p.To, " ") != "bob@example.test carol@example.test dave@example.test" || p.Multicast {
		t.Errorf("reply-all envelope %v", p.To)
	}
	if headerLine(hdr, "To") != `"Bob" <bob@example.test>` || headerLine(hdr, "Cc") != "<carol@example.test>, <dave@example.test>" ||
		headerLine(hdr, "In-Reply-To") != "<g1@example.test>" || strings.Contains(hdr, "alice@mail.localhost>,") {
		t.Errorf("reply-all header:\n%s", hdr)
	}
	p, hdr, _ = send(bridge.SendMessage{To: bob, ID: "p1", Body: "just you"})
	if strings.Join(p.To, " ") != "bob@example.test" || headerLine(hdr, "Cc") != "" {
		t.Errorf("plain message: envelope %v\n%s", p.To, hdr)
	}
	p, _, _ = send(bridge.SendMessage{To: bob, ID: "x1", Body: "re that", Reply: &bridge.Reply{ID: in.ID}})
	if len(p.To) != 3 {
		t.Errorf("XEP-0461 reply to the group mail: envelope %v", p.To)
	}

	addr := func(typ, a string) bridge.ExtAddress {
		m, _ := codec.Mailbox(a)
		return bridge.ExtAddress{Type: typ, JID: "x", Addr: m}
	}
	gwAddr := mapping.Address{Kind: mapping.KindGateway, Domain: "mail.localhost"}
	p, hdr, _ = send(bridge.SendMessage{To: gwAddr, ID: "m1", Body: "to three", Addresses: []bridge.ExtAddress{
		addr("to", "bob@example.test"), addr("cc", "carol@example.test"), addr("bcc", "dave@example.test")}})
	if strings.Join(p.To, " ") != "bob@example.test carol@example.test dave@example.test" || !p.Multicast {
		t.Errorf("multicast envelope %v", p.To)
	}
	if strings.Contains(hdr, "dave") || headerLine(hdr, "Cc") != "<carol@example.test>" || strings.Contains(strings.ToLower(hdr), "bcc") {
		t.Errorf("multicast header:\n%s", hdr)
	}
	_, _, ev := send(bridge.SendMessage{To: gwAddr, ID: "m2", Body: "to four", Addresses: []bridge.ExtAddress{
		addr("to", "bob@example.test"), addr("cc", "carol@example.test"), addr("bcc", "dave@example.test"), addr("bcc", "erin@example.test")}})
	if de, ok := ev.(bridge.DeliveryError); !ok || de.ID != "m2" || de.Err.Condition != bridge.PolicyViolation ||
		!strings.Contains(de.Err.Text, "this mail has 4") || !strings.Contains(de.Err.Text, "max_recipients allows 3") {
		t.Errorf("4 recipients, max 3: %+v", ev)
	}
	_, _, ev = send(bridge.SendMessage{To: gwAddr, ID: "m3", Body: "bad", Addresses: []bridge.ExtAddress{
		addr("to", "bob@example.test"), {Type: "cc", JID: "carol@localhost", Err: "not this gateway"}}})
	if de, ok := ev.(bridge.DeliveryError); !ok || de.ID != "m3" || de.Err.Condition != bridge.JIDMalformed || !strings.Contains(de.Err.Text, "carol@localhost") {
		t.Errorf("a bad address: %+v", ev)
	}
	// Reply-all with more people than max_recipients is refused too.
	raw = "From: bob@example.test\r\nTo: alice@mail.localhost, c1@example.test, c2@example.test, c3@example.test\r\nSubject: big\r\n" +
		"Message-ID: <g2@example.test>\r\n\r\nMany.\r\n"
	in = tr.convert(ctx, acct, []byte(raw), "", "", "bob@example.test", nil)[0].(bridge.Message)
	_, _, ev = send(bridge.SendMessage{To: bob, ID: "r2", Body: "to all of you", Thread: in.Thread})
	if de, ok := ev.(bridge.DeliveryError); !ok || de.ID != "r2" || !strings.Contains(de.Err.Text, "max_recipients") {
		t.Errorf("reply-all over max_recipients: %+v", ev)
	}

	// Reply-To: a mail from bob asking for replies at the helpdesk says
	// so and carries a XEP-0033 replyto address; the replies to bob's
	// chat go to the helpdesk (the next one too), and an answer from the
	// helpdesk is a XEP-0461 reply to the message. A later mail of bob's
	// without Reply-To makes replies go to bob again. A Reply-To that is
	// bob himself changes nothing.
	raw = "From: Bob <bob@example.test>\r\nReply-To: Help Desk <help@example.test>\r\nTo: alice@mail.localhost\r\nSubject: ticket\r\n" +
		"Message-ID: <rt1@example.test>\r\n\r\nAnswer the help desk, please.\r\n"
	in = tr.convert(ctx, acct, []byte(raw), "", "", "bob@example.test", nil)[0].(bridge.Message)
	if !strings.HasPrefix(in.Body, "Replies go to Help Desk <help@example.test>\n") {
		t.Errorf("Reply-To line: %q", in.Body)
	}
	if len(in.Addresses) != 1 || in.Addresses[0].Type != "replyto" || in.Addresses[0].Addr.Name != "help@example.test" {
		t.Errorf("XEP-0033 replyto: %+v", in.Addresses)
	}
	for _, id := range []string{"h1", "h2"} {
		p, hdr, _ = send(bridge.SendMessage{To: bob, ID: id, Body: "about the ticket"})
		if strings.Join(p.To, " ") != "help@example.test" || headerLine(hdr, "To") != `"Help Desk" <help@example.test>` {
			t.Errorf("%s: reply to a mail with Reply-To: envelope %v\n%s", id, p.To, hdr)
		}
	}
	helpAnswer := "From: help@example.test\r\nTo: alice@mail.localhost\r\nSubject: Re: ticket\r\nIn-Reply-To: " + "<" + p.MessageID + ">" +
		"\r\nMessage-ID: <rt2@example.test>\r\n\r\nSolved.\r\n"
	if got := tr.convert(ctx, acct, []byte(helpAnswer), "", "", "help@example.test", nil)[0].(bridge.Message); got.Reply == nil || got.Reply.ID != "h2" {
		t.Errorf("the help desk's answer: reply %+v, want a XEP-0461 reply to h2", got.Reply)
	}
	raw = "From: bob@example.test\r\nReply-To: BOB@example.test\r\nTo: alice@mail.localhost\r\nSubject: me again\r\n" +
		"Message-ID: <rt3@example.test>\r\n\r\nJust me.\r\n"
	in = tr.convert(ctx, acct, []byte(raw), "", "", "bob@example.test", nil)[0].(bridge.Message)
	if strings.Contains(in.Body, "Replies go to") || len(in.Addresses) != 0 {
		t.Errorf("a Reply-To of the author himself: %q %+v", in.Body, in.Addresses)
	}
	// A Reply-To that is no address is ignored, the mail is kept.
	raw = "From: bob@example.test\r\nReply-To: nobody at all\r\nTo: alice@mail.localhost\r\nSubject: odd\r\n" +
		"Message-ID: <rt4@example.test>\r\n\r\nStill here.\r\n"
	in = tr.convert(ctx, acct, []byte(raw), "", "", "bob@example.test", nil)[0].(bridge.Message)
	if !strings.Contains(in.Body, "Still here.") || strings.Contains(in.Body, "Replies go to") || len(in.Addresses) != 0 {
		t.Errorf("an unreadable Reply-To: %q %+v", in.Body, in.Addresses)
	}
	p, _, _ = send(bridge.SendMessage{To: bob, ID: "h3", Body: "back to you"})
	if strings.Join(p.To, " ") != "bob@example.test" {
		t.Errorf("after bob's mail without another Reply-To: envelope %v", p.To)
	}
}
