package tests

import (
	"fmt"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"switchboard/tests/testbed"
)

const nsAddress = "http://jabber.org/protocol/address"

// addressesOf returns the XEP-0033 addresses of a stanza as "type jid".
func addressesOf(st testbed.Stanza) []string {
	var out []string
	for _, a := range st.FindAll("{" + nsAddress + "}addresses/{" + nsAddress + "}address") {
		out = append(out, a.AttrValue("type")+" "+a.AttrValue("jid"))
	}
	return out
}

// addrs returns the addresses of an address-list header, comma-separated
// ("" for none, "?" when it cannot be read).
func addrs(h string) string {
	if h == "" {
		return ""
	}
	l, err := netmail.ParseAddressList(h)
	if err != nil {
		return "?" + h
	}
	var out []string
	for _, a := range l {
		out = append(out, strings.ToLower(a.Address))
	}
	return strings.Join(out, ",")
}

// multicast is a XEP-0033 message to the gateway domain.
func multicast(id, body string, addrs ...[2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<message type='chat' to='%s' id='%s'><body>%s</body><request xmlns='%s'/><addresses xmlns='%s'>`, mailDomain, id, body, nsReceipts, nsAddress)
	for _, a := range addrs {
		fmt.Fprintf(&b, `<address type='%s' jid='%s'/>`, a[0], a[1])
	}
	b.WriteString(`</addresses></message>`)
	return b.String()
}

// TestEmailGroup: group mail on the real stack (Postfix in front and as
// smarthost, Dovecot mailboxes, Prosody).
//   - bob writes to alice with carol on Cc, through Postfix: alice sees
//     "Cc: Carol <carol@…>" as the first line and XEP-0033 addresses;
//   - her reply in the thread reaches bob's and carol's mailboxes, To bob,
//     Cc carol, In-Reply-To bob's mail, her own address in neither; a
//     XEP-0461 reply to bob's mail (no thread) also goes to both; a plain
//     message to bob outside the thread goes to bob alone;
//   - a mail of bob's with Reply-To the help desk says so (first line,
//     XEP-0033 replyto) and alice's answer in bob's chat reaches the help
//     desk, In-Reply-To bob's mail, not bob;
//   - the domain advertises XEP-0033; a multicast message to bob (to),
//     carol (cc) and dave (bcc) arrives in all three mailboxes, with dave
//     in no header, and is acknowledged once with a receipt;
//   - 21 recipients with max_recipients = 20 are refused naming the limit
//     and the count; an address that is not a contact is refused naming it;
//   - a recipient the smarthost refuses at RCPT (550) is named in the
//     error stanza and the others still get the mail; one it defers (450)
//     gets the mail on a retry, the others once, then the receipt comes;
//     a DSN for one recipient of two is an error stanza naming it.
func TestEmailGroup(t *testing.T) {
	s := newEmailStack(t, emailStackOptions{
		email:  map[string]any{"max_recipients": 20},
		access: map[string]string{"ghost@" + outsideDom: "550 5.1.1 no such user"},
	})
	alice := s.user("alice")
	if r := registerMail(t, alice, nil); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	bob, carol, dave := "bob@"+outsideDom, "carol@"+outsideDom, "dave@"+outsideDom
	aliceAddr := "alice@" + mailDomain

	// Inbound group mail.
	s.mustSend(bob, aliceAddr, mail("Bob <"+bob+">", aliceAddr, "Group plans", "g1@example.test", "let us all meet", "Cc: Carol <"+carol+">"))
	in := alice.Expect(t, bodyContains("let us all meet"), 20*time.Second)
	if !strings.HasPrefix(in.Body(), "Cc: Carol <"+carol+">\n") {
		t.Errorf("the other recipients are not the first line: %q", in.Body())
	}
	if got := strings.Join(addressesOf(in), ","); got != "cc "+mailJID(carol) {
		t.Errorf("XEP-0033 addresses: %q, want cc %s\n%s", got, mailJID(carol), in.XML)
	}
	thread := in.Text("thread")
	if thread == "" {
		t.Fatalf("no thread: %s", in.XML)
	}
	// Reply-all in the thread.
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='ra1'><body>count me in</body><thread>%s</thread></message>`, mailJID(bob), thread))
	for _, who := range []string{bob, carol} {
		got := s.waitMailbox(who, "", 1, func(m string) bool { return strings.Contains(m, "count me in") }, 20*time.Second)[0]
		to, cc := addrs(header(got, "To")), addrs(header(got, "Cc"))
		if to != bob || cc != carol || strings.Contains(to+cc, "alice") {
			t.Errorf("%s: reply-all To %q Cc %q, want To %s Cc %s", who, to, cc, bob, carol)
		}
		if h := header(got, "In-Reply-To"); h != "<g1@example.test>" {
			t.Errorf("%s: In-Reply-To %q", who, h)
		}
		if h := header(got, "Subject"); h != "Re: Group plans" {
			t.Errorf("%s: Subject %q", who, h)
		}
	}
	// A XEP-0461 reply to bob's mail, no thread: reply-all too.
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='ra2'><body>replying to that one</body><reply xmlns='urn:xmpp:reply:0' id='%s'/></message>`, mailJID(bob), in.ID))
	for _, who := range []string{bob, carol} {
		got := s.waitMailbox(who, "", 1, func(m string) bool { return strings.Contains(m, "replying to that one") }, 20*time.Second)[0]
		if addrs(header(got, "To")) != bob || addrs(header(got, "Cc")) != carol {
			t.Errorf("%s: XEP-0461 reply-all To %q Cc %q", who, header(got, "To"), header(got, "Cc"))
		}
	}
	// Outside the thread: one-to-one.
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='p1'><body>just between us</body></message>`, mailJID(bob)))
	got := s.waitMailbox(bob, "", 1, func(m string) bool { return strings.Contains(m, "just between us") }, 20*time.Second)[0]
	if header(got, "Cc") != "" || addrs(header(got, "To")) != bob {
		t.Errorf("a plain message went To %q Cc %q", header(got, "To"), header(got, "Cc"))
	}
	help := "list@" + outsideDom
	// Reply-To: bob asks for replies at the help desk's; alice is told, and her
	// answer in bob's chat reaches the help desk (another Dovecot user), not bob.
	s.mustSend(bob, aliceAddr, mail("Bob <"+bob+">", aliceAddr, "Ticket", "rt1@example.test", "please answer the help desk", "Reply-To: Help <"+help+">"))
	rt := alice.Expect(t, bodyContains("please answer the help desk"), 20*time.Second)
	if !strings.HasPrefix(rt.Body(), "Replies go to Help <"+help+">\n") || strings.Join(addressesOf(rt), ",") != "replyto "+mailJID(help) {
		t.Errorf("Reply-To: want the line and a XEP-0033 replyto address, got %s", rt.XML)
	}
	alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='rt1'><body>answer for the help desk</body></message>`, mailJID(bob)))
	got = s.waitMailbox(help, "", 1, func(m string) bool { return strings.Contains(m, "answer for the help desk") }, 20*time.Second)[0]
	if addrs(header(got, "To")) != help || header(got, "In-Reply-To") != "<rt1@example.test>" {
		t.Errorf("the reply to a Reply-To mail: To %q In-Reply-To %q", header(got, "To"), header(got, "In-Reply-To"))
	}
	if n := len(s.dovecot.Messages(bob, "")); n != 3 {
		t.Errorf("bob has %d mails, want 3 (the answer went to the help desk)", n)
	}

	// XEP-0033 from XMPP.
	info := alice.IQ(t, `<iq type='get' to='`+mailDomain+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, wait)
	if !strings.Contains(info.XML, `var='`+nsAddress+`'`) && !strings.Contains(info.XML, `var="`+nsAddress+`"`) {
		t.Errorf("disco#info does not advertise XEP-0033: %s", info.XML)
	}
	alice.SendRaw(multicast("mc1", "one mail for three", [2]string{"to", mailJID(bob)}, [2]string{"cc", mailJID(carol)}, [2]string{"bcc", mailJID(dave)}))
	for _, who := range []string{bob, carol, dave} {
		got := s.waitMailbox(who, "", 1, func(m string) bool { return strings.Contains(m, "one mail for three") }, 20*time.Second)[0]
		if addrs(header(got, "To")) != bob || addrs(header(got, "Cc")) != carol || header(got, "Bcc") != "" || strings.Contains(strings.SplitN(got, "\r\n\r\n", 2)[0], dave) {
			t.Errorf("%s: multicast headers To %q Cc %q Bcc %q (dave must be in none)", who, header(got, "To"), header(got, "Cc"), header(got, "Bcc"))
		}
	}
	rc := alice.Expect(t, func(st testbed.Stanza) bool {
		return st.ID == "mc1" || st.Find("{"+nsReceipts+"}received[@id='mc1']") != nil
	}, 20*time.Second)
	if rc.Type == "error" || rc.From != mailDomain {
		t.Errorf("multicast: want a receipt from %s, got %s", mailDomain, rc.XML)
	}
	// carol answers everyone: alice sees it as a reply to her message,
	// with bob named as the other recipient.
	mc1 := s.waitMailbox(carol, "", 1, func(m string) bool { return strings.Contains(m, "one mail for three") }, time.Second)[0]
	mc1ID := header(mc1, "Message-ID")
	s.mustSend(carol, aliceAddr, mail(carol, aliceAddr+", "+bob, "Re: one mail", "c9@example.test", "carol answers all",
		"In-Reply-To: "+mc1ID, "References: "+mc1ID))
	ans := alice.Expect(t, bodyContains("carol answers all"), 20*time.Second)
	if r := ans.Find("{urn:xmpp:reply:0}reply"); r == nil || r.AttrValue("id") != "mc1" {
		t.Errorf("carol's answer to the multicast mail: want a XEP-0461 reply to mc1, got %s", ans.XML)
	}
	if !strings.HasPrefix(ans.Body(), "To: "+bob+"\n") || strings.Join(addressesOf(ans), ",") != "to "+mailJID(bob) {
		t.Errorf("carol's answer: want bob named as the other recipient, got %q %v", ans.Body(), addressesOf(ans))
	}

	// max_recipients.
	var many [][2]string
	for i := 1; i <= 21; i++ {
		many = append(many, [2]string{"to", mailJID(fmt.Sprintf("r%d@%s", i, outsideDom))})
	}
	alice.SendRaw(multicast("mc21", "too many", many...))
	e := alice.Expect(t, byID("mc21"), wait)
	if e.Type != "error" || e.ErrorCondition() != "policy-violation" || !strings.Contains(e.ErrorText(), "max_recipients") || !strings.Contains(e.ErrorText(), "21") || !strings.Contains(e.ErrorText(), "20") {
		t.Errorf("21 recipients: want policy-violation naming max_recipients, 21 and 20, got %s", e.XML)
	}
	// 20 is fine (refused or not by the outside world, it is not refused here).
	alice.SendRaw(multicast("mcbad", "bad one", [2]string{"to", mailJID(bob)}, [2]string{"cc", "carol@localhost"}))
	e = alice.Expect(t, byID("mcbad"), wait)
	if e.Type != "error" || e.ErrorCondition() != "jid-malformed" || !strings.Contains(e.ErrorText(), "carol@localhost") {
		t.Errorf("a recipient that is not a contact: want jid-malformed naming it, got %s", e.XML)
	}

	// One recipient refused by the smarthost at RCPT.
	ghost := "ghost@" + outsideDom
	alice.SendRaw(multicast("mcghost", "partly refused", [2]string{"to", mailJID(carol)}, [2]string{"cc", mailJID(ghost)}))
	e = alice.Expect(t, byID("mcghost"), 30*time.Second)
	if e.Type != "error" || !strings.Contains(e.ErrorText(), ghost) || !strings.Contains(e.ErrorText(), "550") || !strings.Contains(e.ErrorText(), "went to "+carol) {
		t.Errorf("partial refusal: want an error naming %s and the 550, saying it went to carol; got %s", ghost, e.XML)
	}
	s.waitMailbox(carol, "", 1, func(m string) bool { return strings.Contains(m, "partly refused") }, 20*time.Second)

	// One recipient deferred (450) at RCPT: carol gets it at once, dave
	// on a retry once the smarthost takes it, nobody twice; then the
	// receipt.
	s.postfix.SetAccess(map[string]string{ghost: "550 5.1.1 no such user", dave: "450 4.2.0 try again later"})
	alice.SendRaw(multicast("mcdefer", "dave is busy", [2]string{"to", mailJID(carol)}, [2]string{"to", mailJID(dave)}))
	s.waitMailbox(carol, "", 1, func(m string) bool { return strings.Contains(m, "dave is busy") }, 20*time.Second)
	time.Sleep(2 * time.Second) // a few retries against the 450
	if n := len(s.dovecot.Messages(dave, "")); n != 1 {
		t.Errorf("dave has %d mails while deferred, want 1 (the multicast)", n)
	}
	alice.ExpectNone(t, func(st testbed.Stanza) bool { return st.ID == "mcdefer" || st.Contains("mcdefer") }, 10*time.Millisecond)
	s.postfix.SetAccess(map[string]string{ghost: "550 5.1.1 no such user"})
	s.waitMailbox(dave, "", 1, func(m string) bool { return strings.Contains(m, "dave is busy") }, 30*time.Second)
	rc = alice.Expect(t, func(st testbed.Stanza) bool {
		return st.ID == "mcdefer" || st.Find("{"+nsReceipts+"}received[@id='mcdefer']") != nil
	}, 20*time.Second)
	if rc.Type == "error" {
		t.Errorf("deferred then delivered: want a receipt, got %s", rc.XML)
	}

	// Accepted for both, bounced for one: the DSN's error stanza comes
	// from the gateway domain and names that recipient.
	nosuch := "nosuch@" + outsideDom
	alice.SendRaw(multicast("mcdsn", "one will bounce", [2]string{"to", mailJID(carol)}, [2]string{"cc", mailJID(nosuch)}))
	rc = alice.Expect(t, func(st testbed.Stanza) bool {
		return st.ID == "mcdsn" || st.Find("{"+nsReceipts+"}received[@id='mcdsn']") != nil
	}, 20*time.Second)
	if rc.Type == "error" {
		t.Fatalf("accepted by the smarthost: want a receipt first, got %s", rc.XML)
	}
	dsn := alice.Expect(t, func(st testbed.Stanza) bool { return st.ID == "mcdsn" && st.Type == "error" }, 30*time.Second)
	if dsn.From != mailDomain || !strings.Contains(dsn.ErrorText(), nosuch) || !strings.Contains(dsn.ErrorText(), "5.1.1") {
		t.Errorf("DSN for one recipient of two: want an error from %s naming %s and 5.1.1, got %s", mailDomain, nosuch, dsn.XML)
	}

	// Nothing doubled: every mail above reached each mailbox once.
	time.Sleep(time.Second)
	for who, bodies := range map[string][]string{
		bob:   {"count me in", "replying to that one", "just between us", "one mail for three"},
		carol: {"count me in", "replying to that one", "one mail for three", "partly refused", "dave is busy", "one will bounce"},
		dave:  {"one mail for three", "dave is busy"},
	} {
		msgs := s.dovecot.Messages(who, "")
		for _, b := range bodies {
			n := 0
			for _, m := range msgs {
				if strings.Contains(m, b) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s has %d copies of %q, want 1", who, n, b)
			}
		}
		if who == carol {
			for _, m := range msgs {
				if strings.Contains(m, "just between us") {
					t.Error("carol got the one-to-one message")
				}
			}
		}
	}
}

// TestEmailGroupKill: alice sends 40 multicast mails (to bob, Cc carol)
// asking for receipts; the gateway is killed with -9 while they go out
// and started again. Counted in both mailboxes: nothing acknowledged is
// missing, each mail reaches bob and carol alike, a mail that arrives
// twice carries the same Message-ID both times (the documented window
// between the smarthost's 250 and the queue's update), and at most the
// few messages read but not yet queued at the kill are unaccounted for.
func TestEmailGroupKill(t *testing.T) {
	s := newEmailStack(t, emailStackOptions{})
	alice := s.user("alice")
	if r := registerMail(t, alice, nil); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	bob, carol := "bob@"+outsideDom, "carol@"+outsideDom
	const n = 40
	for i := 0; i < n; i++ {
		alice.SendRaw(multicast(fmt.Sprintf("k%d", i), fmt.Sprintf("group number %d.", i), [2]string{"to", mailJID(bob)}, [2]string{"cc", mailJID(carol)}))
	}
	s.waitMailbox(carol, "", 1, func(m string) bool { return strings.Contains(m, "group number ") }, 30*time.Second)
	s.gw.Kill()
	t.Logf("killed with %d of %d in carol's mailbox", len(s.dovecot.Messages(carol, "")), n)
	<-s.gw.Done()
	s.gw.Start()
	errs, acked := map[string]bool{}, map[string]bool{}
	// A mail the killed gateway had claimed comes back when its lease
	// (one minute) ends.
	deadline := time.Now().Add(100 * time.Second)
	collect := func(who string) (map[string]string, int) { return s.mailedOnce(who, "group number ") }
	for {
		takeOutcomes(t, alice, errs, acked, "group number ", "k")
		gotBob, dupsBob := collect(bob)
		gotCarol, dupsCarol := collect(carol)
		settled := (len(gotBob)+len(errs) >= n && len(gotCarol)+len(errs) >= n) || time.Now().After(deadline)
		if !settled {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for body := range acked {
			if gotBob[body] == "" || gotCarol[body] == "" {
				t.Errorf("%q was acknowledged with a receipt but is missing (bob %v, carol %v)", body, gotBob[body] != "", gotCarol[body] != "")
			}
		}
		for body, mid := range gotBob {
			if gotCarol[body] != mid {
				t.Errorf("%q: bob got Message-ID %s, carol %q", body, mid, gotCarol[body])
			}
		}
		if len(gotBob) != len(gotCarol) {
			t.Errorf("bob got %d mails, carol %d", len(gotBob), len(gotCarol))
		}
		lost := n - len(gotBob) - len(errs)
		t.Logf("%d delivered to both (%d/%d twice with the same Message-ID), %d errors, %d receipts, %d never acknowledged",
			len(gotBob), dupsBob, dupsCarol, len(errs), len(acked), lost)
		if lost > 3 {
			t.Errorf("%d messages unaccounted for; the window at a kill should hold at most a few\n%s", lost, s.gw.LogTail())
		}
		return
	}
}
