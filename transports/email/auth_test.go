package email

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
)

// TestCheckAuthDirect: for a client that is not a trusted relay the
// gateway verifies DKIM itself and applies the From domain's DMARC policy
// (go-msgauth, DNS answered by the test): an aligned valid signature
// passes, a tampered body fails, a forged From of a domain with a DMARC
// policy and no signature fails, a domain without DMARC and no signature
// is not marked.
func TestCheckAuthDirect(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dns := map[string][]string{
		"sel._domainkey.bank.example": {"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)},
		"_dmarc.bank.example":         {"v=DMARC1; p=reject"},
	}
	tr := &Transport{cfg: Config{}, lookupTXT: func(_ context.Context, name string) ([]string, error) {
		if v, ok := dns[strings.TrimSuffix(name, ".")]; ok {
			return v, nil
		}
		return nil, errors.New("no such name")
	}}
	msg := "From: ceo@bank.example\r\nTo: alice@mail.localhost\r\nSubject: hi\r\nMessage-ID: <a@bank.example>\r\n\r\nPlease wire money.\r\n"
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{Domain: "bank.example", Selector: "sel", Signer: priv}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if v := tr.checkAuth(ctx, signed.Bytes(), false); v.result != "" {
		t.Errorf("a valid aligned signature: verdict %+v", v)
	}
	tampered := strings.Replace(signed.String(), "wire money", "wire MORE money", 1)
	if v := tr.checkAuth(ctx, []byte(tampered), false); v.result != "fail" {
		t.Errorf("a tampered body: verdict %+v, want fail", v)
	}
	if v := tr.checkAuth(ctx, []byte(msg), false); v.result != "fail" || !strings.Contains(v.why, "DMARC") {
		t.Errorf("an unsigned mail from a domain with p=reject: verdict %+v, want a DMARC failure", v)
	}
	other := strings.Replace(msg, "bank.example", "nodmarc.example", -1)
	if v := tr.checkAuth(ctx, []byte(other), false); v.result != "" {
		t.Errorf("an unsigned mail from a domain without DMARC: verdict %+v, want none", v)
	}
	// From a trusted relay without authserv_id nothing is checked here.
	if v := tr.checkAuth(ctx, []byte(msg), true); v.result != "" {
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
