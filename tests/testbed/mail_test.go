package testbed

import (
	"net/smtp"
	"strings"
	"testing"
	"time"
)

// TestPostfixDovecot: Postfix relays a mail for example.test to Dovecot
// over LMTP, and refuses a recipient its access map rejects; Dovecot's
// submission service takes an authenticated mail and relays it through
// Postfix into the recipient's Maildir.
func TestPostfixDovecot(t *testing.T) {
	dv := StartDovecot(t, DovecotOptions{Users: map[string]string{"bob@example.test": "bobpw"}})
	pf := StartPostfix(t, PostfixOptions{
		Transport: map[string]string{"example.test": "lmtp:[127.0.0.1]:" + strings.Split(dv.LMTPAddr(), ":")[1]},
		Access:    map[string]string{"reject@example.test": "550 5.1.1 rejected by test"},
	})
	msg := "From: x@example.org\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nhello\r\n"
	if err := smtp.SendMail(pf.Addr(), nil, "x@example.org", []string{"bob@example.test"}, []byte(msg)); err != nil {
		t.Fatalf("sending through postfix: %v", err)
	}
	err := smtp.SendMail(pf.Addr(), nil, "x@example.org", []string{"reject@example.test"}, []byte(msg))
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("a rejected recipient: err = %v, want 550", err)
	}
	waitFor(t, func() bool { return len(dv.Messages("bob@example.test", "")) == 1 })

	// Submission with AUTH relays through Postfix.
	dv2 := StartDovecot(t, DovecotOptions{Users: map[string]string{"carol@example.test": "carolpw"}, RelayAddr: pf.Addr()})
	auth := smtp.PlainAuth("", "carol@example.test", "carolpw", "127.0.0.1")
	if err := smtp.SendMail(dv2.SubmissionAddr(), auth, "carol@example.test", []string{"bob@example.test"}, []byte(msg)); err != nil {
		t.Fatalf("submission: %v", err)
	}
	waitFor(t, func() bool { return len(dv.Messages("bob@example.test", "")) == 2 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
