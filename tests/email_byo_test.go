package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

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

// TestEmailSentElsewhere: with XEP-0356 outgoing message permission
// granted by Prosody, a mail bob sent from another mail client (it appears
// in his \Sent folder) is shown to his XMPP clients as his own outgoing
// message (a sent carbon), and the gateway does not mail it again; mail
// the gateway sent itself is not shown twice.
func TestEmailSentElsewhere(t *testing.T) {
	s := newEmailStack(t, emailStackOptions{privilege: true})
	bob := s.user("bob")
	if r := bob.IQ(t, `<iq type='set'><enable xmlns='urn:xmpp:carbons:2'/></iq>`, wait); r.Type != "result" {
		t.Fatalf("enabling carbons: %s", r.XML)
	}
	if r := registerMail(t, bob, s.byoFields(dovecotPass)); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	time.Sleep(1500 * time.Millisecond) // both watchers remember where they start
	carol := "carol@" + outsideDom
	c, err := imapclient.DialInsecure(s.dovecot.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("bob@"+outsideDom, dovecotPass).Wait(); err != nil {
		t.Fatal(err)
	}
	raw := mail("bob@"+outsideDom, carol, "From my phone", "other1@example.test", "sent from another client")
	cmd := c.Append("Sent", int64(len(raw)), nil)
	_, _ = cmd.Write([]byte(raw))
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	got := bob.Expect(t, func(st testbed.Stanza) bool { return strings.Contains(st.XML, "sent from another client") }, 20*time.Second)
	fwd := got.Find("{urn:xmpp:carbons:2}sent/{urn:xmpp:forward:0}forwarded/{jabber:client}message")
	if fwd == nil || fwd.AttrValue("to") != mailJID(carol) || !strings.HasPrefix(fwd.AttrValue("from"), "bob@localhost") {
		t.Errorf("want a sent carbon from bob to %s, got %s", mailJID(carol), got.XML)
	}
	time.Sleep(2 * time.Second)
	for _, m := range s.dovecot.Messages(carol, "") {
		if strings.Contains(m, "sent from another client") {
			t.Errorf("the gateway mailed bob's own message again:\n%s", m)
		}
	}
	// carol's answer to the mail bob sent from his phone is a XEP-0461
	// reply to the message he saw as his own.
	s.mustSend(carol, "bob@"+outsideDom, mail(carol, "bob@"+outsideDom, "Re: From my phone", "c1@example.test", "carol answers the phone mail",
		"In-Reply-To: <other1@example.test>", "References: <other1@example.test>"))
	ans := bob.Expect(t, bodyContains("carol answers the phone mail"), 20*time.Second)
	if r := ans.Find("{urn:xmpp:reply:0}reply"); r == nil || r.AttrValue("id") != fwd.AttrValue("id") || !strings.HasPrefix(r.AttrValue("id"), "mailsent-") {
		t.Errorf("carol's answer: want a XEP-0461 reply to %q, got %s", fwd.AttrValue("id"), ans.XML)
	}
	// Mail the gateway sends is appended to Sent too; it is not shown
	// back. It continues the conversation: it replies to carol's answer.
	bob.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='g1'><body>sent through the gateway</body></message>`, mailJID(carol)))
	s.waitMailbox("bob@"+outsideDom, "Sent", 1, func(m string) bool { return strings.Contains(m, "sent through the gateway") }, 20*time.Second)
	out := s.waitMailbox(carol, "", 1, func(m string) bool { return strings.Contains(m, "sent through the gateway") }, 20*time.Second)[0]
	if h := header(out, "In-Reply-To"); h != "<c1@example.test>" || !strings.Contains(header(out, "References"), "<other1@example.test>") {
		t.Errorf("bob's next mail: In-Reply-To %q References %q, want carol's answer and the phone mail", h, header(out, "References"))
	}
	bob.ExpectNone(t, func(st testbed.Stanza) bool {
		return st.Find("{urn:xmpp:carbons:2}sent") != nil && strings.Contains(st.XML, "sent through the gateway")
	}, 3*time.Second)
}
