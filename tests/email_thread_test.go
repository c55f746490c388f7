package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestEmailThread: carol and alice exchange three replies each way. In
// XMPP every message of the conversation carries the same <thread>; in
// mail every reply's References start at carol's first Message-ID and its
// In-Reply-To is the message it answers, so a mail client shows one
// thread too. A reply with XEP-0461 to the first mail answers that mail.
func TestEmailThread(t *testing.T) {
	s := newEmailStack(t, emailStackOptions{})
	alice := s.user("alice")
	if r := registerMail(t, alice, nil); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	carol := "carol@" + outsideDom
	prevID := "t1@example.test"
	refs := "<t1@example.test>"
	s.mustSend(carol, "alice@"+mailDomain, mail(carol, "alice@"+mailDomain, "Plans", prevID, "message 1 from carol"))
	first := alice.Expect(t, bodyContains("message 1 from carol"), 20*time.Second)
	thread := first.Text("thread")
	if thread == "" {
		t.Fatalf("no thread: %s", first.XML)
	}
	for i := 1; i <= 3; i++ {
		body := fmt.Sprintf("reply %d from alice", i)
		alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='tr%d'><body>%s</body><thread>%s</thread></message>`, mailJID(carol), i, body, thread))
		got := s.waitMailbox(carol, "", 1, func(m string) bool { return strings.Contains(m, body) }, 20*time.Second)[0]
		if h := header(got, "In-Reply-To"); h != "<"+prevID+">" {
			t.Errorf("reply %d: In-Reply-To = %q, want <%s>", i, h, prevID)
		}
		if h := header(got, "References"); !strings.HasPrefix(h, "<t1@example.test>") {
			t.Errorf("reply %d: References = %q, want them to start at <t1@example.test>", i, h)
		}
		if h := header(got, "Subject"); h != "Re: Plans" {
			t.Errorf("reply %d: Subject = %q", i, h)
		}
		mine := strings.Trim(header(got, "Message-ID"), "<>")
		refs += " <" + mine + ">"
		prevID = fmt.Sprintf("t%d@example.test", i+1)
		if i < 3 {
			cbody := fmt.Sprintf("message %d from carol", i+1)
			s.mustSend(carol, "alice@"+mailDomain, mail(carol, "alice@"+mailDomain, "Re: Plans", prevID, cbody,
				"In-Reply-To: <"+mine+">", "References: "+refs))
			refs += " <" + prevID + ">"
			in := alice.Expect(t, bodyContains(cbody), 20*time.Second)
			if in.Text("thread") != thread {
				t.Errorf("carol's message %d: thread %q, want %q", i+1, in.Text("thread"), thread)
			}
			if r := in.Find("{urn:xmpp:reply:0}reply"); r == nil || r.AttrValue("id") != fmt.Sprintf("tr%d", i) {
				t.Errorf("carol's message %d: want a XEP-0461 reply to tr%d: %s", i+1, i, in.XML)
			}
		}
	}
	// A XEP-0461 reply to the first mail answers it, not the last one.
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='q1'><body>about your first mail</body><reply xmlns='urn:xmpp:reply:0' id='%s'/></message>`, mailJID(carol), first.ID))
	got := s.waitMailbox(carol, "", 1, func(m string) bool { return strings.Contains(m, "about your first mail") }, 20*time.Second)[0]
	if h := header(got, "In-Reply-To"); h != "<t1@example.test>" {
		t.Errorf("XEP-0461 reply: In-Reply-To = %q, want <t1@example.test>", h)
	}
}
