package email

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
)

// fakeDNS answers TXT and A lookups from maps (no MX, no PTR).
type fakeDNS struct {
	txt map[string][]string
	ip  map[string][]string
}

func (d fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	if v, ok := d.txt[strings.TrimSuffix(name, ".")]; ok {
		return v, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (d fakeDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (d fakeDNS) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	var out []net.IPAddr
	for _, a := range d.ip[strings.TrimSuffix(host, ".")] {
		out = append(out, net.IPAddr{IP: net.ParseIP(a)})
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func (d fakeDNS) LookupAddr(_ context.Context, addr string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}
}

// TestCheckAuthDirect: for a client that is not a trusted relay the
// gateway checks SPF, DKIM and the From domain's DMARC policy itself (DNS
// answered by the test): an aligned valid signature passes, a tampered
// body fails, a forged From of a domain with a DMARC policy fails unless
// SPF passes for an aligned envelope domain (a subdomain counts: relaxed
// alignment), SPF passing for an unrelated envelope domain does not
// rescue it, a domain without DMARC is marked only when its SPF fails.
func TestCheckAuthDirect(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dns := fakeDNS{txt: map[string][]string{
		"sel._domainkey.bank.example": {"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)},
		"_dmarc.bank.example":         {"v=DMARC1; p=reject"},
		"bank.example":                {"v=spf1 ip4:192.0.2.10 -all"},
		"bounces.bank.example":        {"v=spf1 ip4:192.0.2.11 -all"},
		"nodmarc.example":             {"v=spf1 a:mx.nodmarc.example -all"},
		"spammer.example":             {"v=spf1 +all"},
	}, ip: map[string][]string{"mx.nodmarc.example": {"192.0.2.20"}}}
	tr := &Transport{cfg: Config{}, resolver: dns}
	msg := "From: ceo@bank.example\r\nTo: alice@mail.localhost\r\nSubject: hi\r\nMessage-ID: <a@bank.example>\r\n\r\nPlease wire money.\r\n"
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{Domain: "bank.example", Selector: "sel", Signer: priv}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stranger := authClient{ip: netip.MustParseAddr("203.0.113.5"), helo: "evil.example", mailFrom: "x@bank.example"}
	if v := tr.checkAuth(ctx, signed.Bytes(), false, stranger); v.result != "" {
		t.Errorf("a valid aligned signature: verdict %+v", v)
	}
	tampered := strings.Replace(signed.String(), "wire money", "wire MORE money", 1)
	if v := tr.checkAuth(ctx, []byte(tampered), false, stranger); v.result != "fail" {
		t.Errorf("a tampered body: verdict %+v, want fail", v)
	}
	if v := tr.checkAuth(ctx, []byte(msg), false, stranger); v.result != "fail" || !strings.Contains(v.why, "DMARC") || !strings.Contains(v.why, "SPF") {
		t.Errorf("an unsigned mail from a domain with p=reject, sent from an IP its SPF refuses: verdict %+v, want a DMARC failure naming SPF", v)
	}
	own := authClient{ip: netip.MustParseAddr("192.0.2.10"), helo: "mx.bank.example", mailFrom: "x@bank.example"}
	if v := tr.checkAuth(ctx, []byte(msg), false, own); v.result != "" {
		t.Errorf("an unsigned mail from the domain's own SPF-listed server: verdict %+v, want a pass (aligned SPF)", v)
	}
	sub := authClient{ip: netip.MustParseAddr("192.0.2.11"), helo: "mx.bank.example", mailFrom: "b@bounces.bank.example"}
	if v := tr.checkAuth(ctx, []byte(msg), false, sub); v.result != "" {
		t.Errorf("an SPF pass for a subdomain of the From domain: verdict %+v, want a pass (relaxed alignment)", v)
	}
	unaligned := authClient{ip: netip.MustParseAddr("203.0.113.5"), helo: "spammer.example", mailFrom: "x@spammer.example"}
	if v := tr.checkAuth(ctx, []byte(msg), false, unaligned); v.result != "fail" {
		t.Errorf("an SPF pass of an unrelated envelope domain: verdict %+v, want the DMARC failure", v)
	}
	other := strings.Replace(msg, "bank.example", "nodmarc.example", -1)
	good := authClient{ip: netip.MustParseAddr("192.0.2.20"), helo: "mx.nodmarc.example", mailFrom: "x@nodmarc.example"}
	if v := tr.checkAuth(ctx, []byte(other), false, good); v.result != "" {
		t.Errorf("an unsigned mail without DMARC from an SPF-allowed IP: verdict %+v, want none", v)
	}
	bad := authClient{ip: netip.MustParseAddr("203.0.113.5"), helo: "evil.example", mailFrom: "x@nodmarc.example"}
	if v := tr.checkAuth(ctx, []byte(other), false, bad); v.result != "fail" || !strings.Contains(v.why, "SPF") {
		t.Errorf("an unsigned mail without DMARC from an IP its SPF refuses: verdict %+v, want an SPF failure", v)
	}
	unknown := strings.Replace(msg, "bank.example", "unknown.example", -1)
	if v := tr.checkAuth(ctx, []byte(unknown), false, authClient{ip: netip.MustParseAddr("203.0.113.5"), mailFrom: "x@unknown.example"}); v.result != "" {
		t.Errorf("a domain that publishes nothing: verdict %+v, want none", v)
	}
	// From a trusted relay without authserv_id nothing is checked here.
	if v := tr.checkAuth(ctx, []byte(msg), true, stranger); v.result != "" {
		t.Errorf("trusted relay without authserv_id: verdict %+v", v)
	}
}

// TestRejectPolicy: with auth_policy = "reject", a mail the trusted
// relay's Authentication-Results mark dmarc=fail is refused at DATA with
// 550 5.7.1 (nothing is stored: the store is nil here and never touched).
func TestRejectPolicy(t *testing.T) {
	tr := &Transport{cfg: Config{AuthPolicy: "reject", AuthservID: "mx.localhost"}, log: slog.Default(), now: time.Now}
	s := &inSession{t: tr, trusted: true, from: "ceo@bank.example", rcpts: []inRcpt{{addr: "alice@mail.localhost", user: "alice@localhost"}}}
	raw := "Authentication-Results: mx.localhost; dmarc=fail header.from=bank.example\r\nFrom: ceo@bank.example\r\n\r\nhi\r\n"
	err := s.Data(strings.NewReader(raw))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("Data: %v, want 550 5.7.1", err)
	}
}

// statuses records LMTP per-recipient answers.
type statuses map[string]error

func (s statuses) SetStatus(rcpt string, err error) { s[rcpt] = err }

// TestLMTPPerRecipient: over LMTP each recipient gets its own answer at
// DATA: the one who blocks the From address gets 550 5.7.1 naming it,
// the other 250 (stored in the spool); over SMTP the same mail is
// accepted once for the recipient who takes it, and refused when every
// recipient blocks it.
func TestLMTPPerRecipient(t *testing.T) {
	sp, err := openSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); sp.run(stop) }()
	defer func() { close(stop); <-done; sp.close() }()
	tr := &Transport{cfg: Config{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now, spool: sp,
		wakeIn: make(chan struct{}, 1), blocked: map[string]string{"bob@localhost": "spam@example.test"}}
	raw := "From: Spammer <spam@example.test>\r\nTo: alice@mail.localhost, bob@mail.localhost\r\nSubject: x\r\n\r\nbuy\r\n"
	rcpts := []inRcpt{{addr: "alice@mail.localhost", user: "alice@localhost"}, {addr: "bob@mail.localhost", user: "bob@localhost"}}

	s := &inSession{t: tr, from: "other@example.test", rcpts: rcpts}
	st := statuses{}
	if err := s.LMTPData(strings.NewReader(raw), st); err != nil {
		t.Fatal(err)
	}
	var se *smtp.SMTPError
	if len(st) != 2 || st["alice@mail.localhost"] != nil {
		t.Fatalf("alice: %v (statuses %v)", st["alice@mail.localhost"], st)
	}
	if !errors.As(st["bob@mail.localhost"], &se) || se.Code != 550 || !strings.Contains(se.Message, "spam@example.test") {
		t.Fatalf("bob: %v, want 550 naming the blocked sender", st["bob@mail.localhost"])
	}
	if n := len(sp.list(10)); n != 1 {
		t.Fatalf("%d copies stored, want 1 (alice's)", n)
	}
	if err := (&inSession{t: tr, from: "other@example.test", rcpts: rcpts}).Data(strings.NewReader(raw)); err != nil {
		t.Fatalf("SMTP with one recipient taking it: %v", err)
	}
	err = (&inSession{t: tr, from: "other@example.test", rcpts: rcpts[1:]}).Data(strings.NewReader(raw))
	if !errors.As(err, &se) || se.Code != 550 {
		t.Fatalf("SMTP with every recipient blocking: %v, want 550", err)
	}
	if n := len(sp.list(10)); n != 2 {
		t.Fatalf("%d copies stored, want 2", n)
	}
}
