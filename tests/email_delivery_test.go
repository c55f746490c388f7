package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"switchboard/tests/testbed"
)

// TestEmailDelivery: the smarthost (Postfix) answers 450 for dave until
// its access map changes: no receipt meanwhile, then the retry is
// accepted, the receipt comes and the mail is in dave's mailbox once. A
// 550 at RCPT comes back as an error stanza on the message's id with
// Postfix's reply text. A mail Postfix accepts but cannot deliver (no such
// Dovecot user) comes back as a DSN, which becomes an error stanza on the
// original id.
func TestEmailDelivery(t *testing.T) {
	dave, reject, nosuch := "dave@"+outsideDom, "reject@"+outsideDom, "nosuch@"+outsideDom
	s := newEmailStack(t, emailStackOptions{access: map[string]string{
		dave:   "450 4.2.0 try again later (test)",
		reject: "550 5.1.1 no mailbox by that name (test)",
	}})
	alice := s.user("alice")
	if r := registerMail(t, alice, nil); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	isAbout := func(id string) func(testbed.Stanza) bool {
		return func(st testbed.Stanza) bool {
			if st.ID == id {
				return true
			}
			r := st.Find("{" + nsReceipts + "}received")
			return r != nil && r.AttrValue("id") == id
		}
	}
	// 4xx, then accepted.
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='d1'><body>deferred at first</body><request xmlns='%s'/></message>`, mailJID(dave), nsReceipts))
	alice.ExpectNone(t, isAbout("d1"), 3*time.Second)
	if n := len(s.dovecot.Messages(dave, "")); n != 0 {
		t.Fatalf("dave has %d messages while Postfix defers", n)
	}
	if !strings.Contains(s.gw.LogTail(), "mail deferred") {
		t.Errorf("the gateway did not log the deferral:\n%s", s.gw.LogTail())
	}
	s.postfix.SetAccess(map[string]string{reject: "550 5.1.1 no mailbox by that name (test)"})
	r := alice.Expect(t, isAbout("d1"), 30*time.Second)
	if r.Type == "error" {
		t.Fatalf("after the 4xx: %s", r.XML)
	}
	s.waitMailbox(dave, "", 1, func(m string) bool { return strings.Contains(m, "deferred at first") }, 20*time.Second)

	// 5xx at the smarthost.
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='d2'><body>to be refused</body><request xmlns='%s'/></message>`, mailJID(reject), nsReceipts))
	e := alice.Expect(t, isAbout("d2"), 20*time.Second)
	if e.Type != "error" || !strings.Contains(e.ErrorText(), "550") || !strings.Contains(e.ErrorText(), "no mailbox by that name") {
		t.Errorf("5xx: want an error stanza with Postfix's reply, got %s", e.XML)
	}

	// Accepted, then bounced: a DSN.
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='d3'><body>to be bounced</body><request xmlns='%s'/></message>`, mailJID(nosuch), nsReceipts))
	ok := alice.Expect(t, isAbout("d3"), 20*time.Second)
	if ok.Type == "error" {
		t.Fatalf("d3 refused at once; want Postfix to accept it: %s", ok.XML)
	}
	dsn := alice.Expect(t, func(st testbed.Stanza) bool { return st.ID == "d3" && st.Type == "error" }, 30*time.Second)
	if !strings.Contains(dsn.ErrorText(), "5.1.1") || dsn.From != mailJID(nosuch) {
		t.Errorf("DSN: want an error from %s naming 5.1.1, got %s", mailJID(nosuch), dsn.XML)
	}
}

// TestEmailExpiry: a mail the smarthost keeps deferring comes back as an
// error stanza once queue_lifetime is over, with the last reply.
func TestEmailExpiry(t *testing.T) {
	dave := "dave@" + outsideDom
	s := newEmailStack(t, emailStackOptions{
		access: map[string]string{dave: "450 4.2.0 try again later (test)"},
		email:  map[string]any{"queue_lifetime": "3s"},
	})
	alice := s.user("alice")
	if r := registerMail(t, alice, nil); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='x1'><body>never accepted</body></message>`, mailJID(dave)))
	e := alice.Expect(t, byID("x1"), 20*time.Second)
	if e.Type != "error" || !strings.Contains(e.ErrorText(), "queue_lifetime") || !strings.Contains(e.ErrorText(), "try again later") {
		t.Errorf("want an expiry error naming queue_lifetime and the last reply, got %s", e.XML)
	}
}
