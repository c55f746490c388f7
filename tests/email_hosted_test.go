package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"switchboard/tests/testbed"
)

// TestEmailHosted: alice registers (her address defaults to her XMPP
// name); a mail from carol through Postfix reaches her as a chat message
// from carol's contact JID with subject, thread and nick; her reply goes
// out through the smarthost (Postfix) into carol's Dovecot mailbox with
// Re: subject and In-Reply-To, and she gets a receipt once Postfix took
// it. A taken address is refused, an unknown local part gets 550 5.1.1 at
// RCPT, and +tag reaches the user.
func TestEmailHosted(t *testing.T) {
	s := newEmailStack(t, emailStackOptions{})
	alice := s.user("alice")
	if r := registerMail(t, alice, map[string][]string{"name": {"Alice Liddell"}}); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	bob := s.user("bob")
	if r := registerMail(t, bob, map[string][]string{"address": {"alice"}}); r.Type != "error" || r.ErrorCondition() != "conflict" || !strings.Contains(r.ErrorText(), "taken") {
		t.Errorf("registering a taken address: want conflict 'taken', got %s", r.XML)
	}

	carol := "carol@" + outsideDom
	s.mustSend(carol, "alice@"+mailDomain, mail(`"Carol Example" <`+carol+`>`, "alice@"+mailDomain, "Lunch?", "m1@example.test", "Shall we have lunch?"))
	in := alice.Expect(t, chatFrom(mailJID(carol)), 20*time.Second)
	if !strings.Contains(in.Body(), "Shall we have lunch?") || in.Text("subject") != "Lunch?" {
		t.Errorf("inbound mail: body/subject wrong: %s", in.XML)
	}
	if in.Text("thread") == "" || in.Text("{"+nsNick+"}nick") != "Carol Example" {
		t.Errorf("inbound mail: want a thread and the nick 'Carol Example': %s", in.XML)
	}
	if in.ID == "" {
		t.Errorf("inbound mail has no id: %s", in.XML)
	}

	// Reply.
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='r1'><body>Yes, at noon.</body><thread>%s</thread><request xmlns='%s'/></message>`,
		mailJID(carol), in.Text("thread"), nsReceipts))
	rcpt := alice.Expect(t, func(st testbed.Stanza) bool { return st.Find("{"+nsReceipts+"}received") != nil || st.ID == "r1" }, 20*time.Second)
	if rcpt.Type == "error" || rcpt.Find("{"+nsReceipts+"}received").AttrValue("id") != "r1" {
		t.Fatalf("want a receipt for r1, got %s", rcpt.XML)
	}
	got := s.waitMailbox(carol, "", 1, func(m string) bool { return strings.Contains(m, "Yes, at noon.") }, 20*time.Second)[0]
	if h := header(got, "In-Reply-To"); h != "<m1@example.test>" {
		t.Errorf("reply In-Reply-To = %q, want <m1@example.test>\n%s", h, got)
	}
	if h := header(got, "Subject"); h != "Re: Lunch?" {
		t.Errorf("reply Subject = %q, want Re: Lunch?", h)
	}
	if h := header(got, "From"); !strings.Contains(h, "alice@"+mailDomain) || !strings.Contains(h, "Alice Liddell") {
		t.Errorf("reply From = %q, want Alice Liddell <alice@%s>", h, mailDomain)
	}
	if header(got, "Message-ID") == "" || header(got, "Date") == "" {
		t.Errorf("reply lacks Message-ID or Date:\n%s", got)
	}

	// +tag, and an unknown local part refused at RCPT.
	s.mustSend(carol, "alice+news@"+mailDomain, mail(carol, "alice+news@"+mailDomain, "Tagged", "m2@example.test", "tagged mail"))
	alice.Expect(t, bodyContains("tagged mail"), 20*time.Second)
	err := sendMail(s.listen, untrustedIP, carol, []string{"nobody@" + mailDomain}, mail(carol, "nobody@"+mailDomain, "x", "m3@example.test", "x"))
	if err == nil || !strings.Contains(err.Error(), "550") || !strings.Contains(err.Error(), "5.1.1") {
		t.Errorf("unknown recipient: want 550 5.1.1, got %v", err)
	}
}

// TestEmailLMTP: with lmtp = true, Postfix delivers to the listener over
// LMTP (transport lmtp:), and a mail reaches the user; an unknown local
// part is refused at RCPT.
func TestEmailLMTP(t *testing.T) {
	s := newEmailStack(t, emailStackOptions{lmtp: true})
	alice := s.user("alice")
	if r := registerMail(t, alice, nil); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	carol := "carol@" + outsideDom
	s.mustSend(carol, "alice@"+mailDomain, mail(carol, "alice@"+mailDomain, "over LMTP", "lm1@example.test", "delivered over LMTP"))
	alice.Expect(t, bodyContains("delivered over LMTP"), 20*time.Second)
	if !strings.Contains(s.postfix.Log(), "lmtp") {
		t.Errorf("Postfix did not use lmtp:\n%s", s.postfix.LogTail())
	}
}

// TestEmailCommands: the admin assigns bob an address with
// assign-address (a taken one is refused); alice changes her display name
// with the configure command; jabber:iq:gateway turns an address into the
// contact JID.
func TestEmailCommands(t *testing.T) {
	s := newEmailStack(t, emailStackOptions{})
	alice := s.user("alice")
	if r := registerMail(t, alice, nil); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	admin := s.user("admin")
	_, done := command(t, admin, mailDomain, "assign-address", map[string][]string{"jid": {"bob@localhost"}, "address": {"alice"}})
	if done.Type != "error" || done.ErrorCondition() != "conflict" {
		t.Errorf("assigning a taken address: want conflict, got %s", done.XML)
	}
	_, done = command(t, admin, mailDomain, "assign-address", map[string][]string{"jid": {"bob@localhost"}, "address": {"robert"}})
	if done.Type != "result" || !strings.Contains(done.XML, "robert@"+mailDomain) {
		t.Fatalf("assign-address: %s", done.XML)
	}
	bob := s.user("bob")
	carol := "carol@" + outsideDom
	s.mustSend(carol, "robert@"+mailDomain, mail(carol, "robert@"+mailDomain, "hi", "c1@example.test", "to robert"))
	bob.Expect(t, bodyContains("to robert"), 20*time.Second)

	_, done = command(t, alice, mailDomain, "configure", map[string][]string{"name": {"Alice Configured"}})
	if done.Type != "result" {
		t.Fatalf("configure: %s", done.XML)
	}
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='c1'><body>named mail</body></message>`, mailJID(carol)))
	got := s.waitMailbox(carol, "", 1, func(m string) bool { return strings.Contains(m, "named mail") }, 20*time.Second)[0]
	if !strings.Contains(header(got, "From"), "Alice Configured") {
		t.Errorf("From after configure: %q", header(got, "From"))
	}

	r := alice.IQ(t, `<iq type='set' to='`+mailDomain+`'><query xmlns='jabber:iq:gateway'><prompt>Dave &lt;dave@example.test&gt;</prompt></query></iq>`, wait)
	if j := r.Text("{jabber:iq:gateway}query/{jabber:iq:gateway}jid"); j != mailJID("dave@"+outsideDom) {
		t.Errorf("jabber:iq:gateway: got %q (%s)", j, r.XML)
	}
	st := alice.IQ(t, `<iq type='set' to='`+mailDomain+`'><command xmlns='http://jabber.org/protocol/commands' node='status' action='execute'/></iq>`, wait)
	if !strings.Contains(st.XML, "alice@"+mailDomain) {
		t.Errorf("status does not show the address: %s", st.XML)
	}
}
