package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"switchboard/tests/testbed"
)

// byoFields are bob's bring-your-own settings for his Dovecot mailbox.
func (s *emailStack) byoFields(pass string) map[string][]string {
	return map[string][]string{
		"email":         {"bob@" + outsideDom},
		"imap_server":   {s.dovecot.IMAPAddr()},
		"imap_security": {"none"},
		"smtp_server":   {s.dovecot.SubmissionAddr()},
		"smtp_security": {"none"},
		"username":      {"bob@" + outsideDom},
		"password":      {pass},
	}
}

// TestEmailBringYourOwn: a wrong password is refused naming the IMAP
// server and nothing is saved; with the right one, mail delivered to bob's
// Dovecot INBOX reaches him through IMAP IDLE, his reply goes out through
// Dovecot's submission service (AUTH) and lands in carol's mailbox and,
// as a copy, in his \Sent folder. Dovecot restarted: the watcher
// reconnects, the next mail arrives once and nothing earlier is repeated.
func TestEmailBringYourOwn(t *testing.T) {
	s := newEmailStack(t, emailStackOptions{})
	bob := s.user("bob")
	r := registerMail(t, bob, s.byoFields("wrong"))
	if r.Type != "error" || !strings.Contains(r.ErrorText(), "IMAP") {
		t.Fatalf("wrong password: want an error naming IMAP, got %s", r.XML)
	}
	form := bob.IQ(t, `<iq type='get' to='`+mailDomain+`'><query xmlns='jabber:iq:register'/></iq>`, wait)
	if form.Find("{jabber:iq:register}query/{jabber:iq:register}registered") != nil {
		t.Fatalf("a failed registration was saved: %s", form.XML)
	}
	f := s.byoFields(dovecotPass)
	f["smtp_server"] = []string{"127.0.0.1:1"}
	if r := registerMail(t, bob, f); r.Type != "error" || !strings.Contains(r.ErrorText(), "SMTP") {
		t.Fatalf("unreachable SMTP server: want an error naming SMTP, got %s", r.XML)
	}
	if r := registerMail(t, bob, s.byoFields(dovecotPass)); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	time.Sleep(time.Second) // the watcher selects INBOX and remembers where it starts

	carol := "carol@" + outsideDom
	s.mustSend(carol, "bob@"+outsideDom, mail(carol, "bob@"+outsideDom, "Hi Bob", "b1@example.test", "first mail to bob"))
	in := bob.Expect(t, chatFrom(mailJID(carol)), 20*time.Second)
	if !strings.Contains(in.Body(), "first mail to bob") || in.Text("subject") != "Hi Bob" {
		t.Fatalf("inbound: %s", in.XML)
	}
	bob.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='br1'><body>hello carol, from bob</body><request xmlns='%s'/></message>`, mailJID(carol), nsReceipts))
	rc := bob.Expect(t, func(st testbed.Stanza) bool { return st.ID == "br1" || st.Find("{"+nsReceipts+"}received") != nil }, 20*time.Second)
	if rc.Type == "error" {
		t.Fatalf("reply failed: %s", rc.XML)
	}
	got := s.waitMailbox(carol, "", 1, func(m string) bool { return strings.Contains(m, "hello carol, from bob") }, 20*time.Second)[0]
	if h := header(got, "In-Reply-To"); h != "<b1@example.test>" {
		t.Errorf("In-Reply-To = %q", h)
	}
	if !strings.Contains(header(got, "From"), "bob@"+outsideDom) {
		t.Errorf("From = %q", header(got, "From"))
	}
	s.waitMailbox("bob@"+outsideDom, "Sent", 1, func(m string) bool { return strings.Contains(m, "hello carol, from bob") }, 20*time.Second)

	// Dovecot restart.
	s.dovecot.Kill()
	time.Sleep(500 * time.Millisecond)
	s.dovecot.Start()
	s.mustSend(carol, "bob@"+outsideDom, mail(carol, "bob@"+outsideDom, "Again", "b2@example.test", "second mail after restart"))
	bob.Expect(t, bodyContains("second mail after restart"), 40*time.Second)
	bob.ExpectNone(t, func(st testbed.Stanza) bool {
		return strings.Contains(st.Body(), "first mail to bob") || strings.Contains(st.Body(), "second mail after restart")
	}, 3*time.Second)
}
