package tests

import (
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"switchboard/tests/testbed"
)

// blockCache is block_list_cache in these tests: how long the gateway
// keeps a user's XEP-0191 list before it reads it again.
const blockCache = 2 * time.Second

// rcptProbe opens an SMTP session to addr and returns the answer to RCPT
// TO (nil for 250), without sending a message.
func rcptProbe(addr, from, to string) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	c, err := smtp.NewClient(conn, "127.0.0.1")
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	rerr := c.Rcpt(to)
	_ = c.Quit()
	return rerr
}

// statusNote runs the status command and returns its note.
func statusNote(t *testing.T, c *testbed.XMPPClient) string {
	t.Helper()
	st := c.IQ(t, `<iq type='set' to='`+mailDomain+`'><command xmlns='http://jabber.org/protocol/commands' node='status' action='execute'/></iq>`, 20*time.Second)
	n := st.Root.Find("command/note")
	if st.Type != "result" || n == nil {
		t.Fatalf("status: %s", st.XML)
	}
	return n.Text
}

func is550(err error) bool {
	return err != nil && strings.Contains(err.Error(), "550") && strings.Contains(err.Error(), "5.7.1")
}

// TestEmailXEP0191Block: alice blocks bob's and a mailing list's contact
// JIDs with XEP-0191 on her own Prosody, which grants the gateway IQ
// "get" permission on urn:xmpp:blocking (XEP-0356). Within
// block_list_cache bob's mail is refused at RCPT with 550 5.7.1 (measured
// with RCPT probes), a mail whose From header is bob's and the list's
// mail are refused at DATA, and through Postfix in front bob gets a bounce
// with the gateway's 550 while alice never sees his mail; carol's mail
// still arrives. The status command lists the blocked senders. Killed
// with -9 and restarted, the gateway still refuses bob (it keeps no copy
// of the list: it reads it again). After <unblock/> bob's mail arrives
// again. A bring-your-own user (bob) who blocks carol does not get her
// mail from his IMAP inbox, and the watcher moves on to dave's.
func TestEmailXEP0191Block(t *testing.T) {
	s := newEmailStack(t, emailStackOptions{blockingPerm: true, email: map[string]any{"block_list_cache": blockCache.String()}})
	alice := s.user("alice")
	if r := registerMail(t, alice, nil); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	aliceAddr := "alice@" + mailDomain
	bob, carol, dave := "bob@"+outsideDom, "carol@"+outsideDom, "dave@"+outsideDom
	list := "list@" + outsideDom

	if note := statusNote(t, alice); !strings.Contains(note, "(XEP-0191): nobody") {
		t.Fatalf("status before any block: %q", note)
	}
	// The gateway has read (and caches) alice's empty list: the block
	// below waits for the cache to expire, the worst case.
	if err := rcptProbe(s.listen, bob, aliceAddr); err != nil {
		t.Fatalf("RCPT from bob before the block: %v", err)
	}
	r := alice.IQ(t, `<iq type='set'><block xmlns='urn:xmpp:blocking'><item jid='`+mailJID(bob)+`'/><item jid='`+mailJID(list)+`'/></block></iq>`, wait)
	if r.Type != "result" {
		t.Fatalf("block: %s", r.XML)
	}
	blockedAt := time.Now()
	var err error
	for {
		if err = rcptProbe(s.listen, bob, aliceAddr); err != nil || time.Since(blockedAt) > blockCache+3*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(blockedAt)
	if !is550(err) {
		t.Fatalf("RCPT from bob %s after the block: %v, want 550 5.7.1\n%s", took.Round(time.Millisecond), err, s.gw.LogTail())
	}
	if took > blockCache+2*time.Second {
		t.Errorf("the block took %s to apply at SMTP, want at most block_list_cache (%s) and a round trip", took, blockCache)
	}
	t.Logf("a new block applied at RCPT after %s (block_list_cache %s)", took.Round(time.Millisecond), blockCache)
	if !strings.Contains(err.Error(), "does not accept mail from") {
		t.Errorf("the refusal does not say why: %v", err)
	}
	// Upper case and the escaped-JID spelling are the same mailbox.
	if err := rcptProbe(s.listen, "Bob@EXAMPLE.test", aliceAddr); !is550(err) {
		t.Errorf("RCPT from Bob@EXAMPLE.test: %v, want 550", err)
	}
	// Others' mail is not refused.
	if err := rcptProbe(s.listen, carol, aliceAddr); err != nil {
		t.Errorf("RCPT from carol: %v", err)
	}

	// DATA: From header bob's behind another envelope sender; list mail
	// from a list alice blocks.
	err = sendMail(s.listen, "127.0.0.1", "relay@"+outsideDom, []string{aliceAddr}, mail(bob, aliceAddr, "hdr", "blk-hdr@example.test", "bob behind an envelope"))
	if !is550(err) {
		t.Errorf("From: bob at DATA: %v, want 550 5.7.1", err)
	}
	err = sendMail(s.listen, "127.0.0.1", dave, []string{aliceAddr}, mail(dave, list, "[list] news", "blk-list@example.test", "list mail to a blocked list",
		"List-Id: The List <list.example.test>", "List-Post: <mailto:"+list+">"))
	if !is550(err) {
		t.Errorf("mail from a blocked list at DATA: %v, want 550 5.7.1", err)
	}

	// Through Postfix: the gateway's 550 bounces to bob; carol's arrives.
	s.mustSend(bob, aliceAddr, mail(bob, aliceAddr, "via postfix", "blk-pf@example.test", "bob via postfix"))
	s.mustSend(carol, aliceAddr, mail(carol, aliceAddr, "hello", "ok-pf@example.test", "carol via postfix"))
	alice.Expect(t, bodyContains("carol via postfix"), 30*time.Second)
	bounce := s.waitMailbox(bob, "", 1, func(m string) bool { return strings.Contains(m, "blk-pf@example.test") }, 60*time.Second)[0]
	if !strings.Contains(bounce, "550") || !strings.Contains(bounce, "does not accept mail from") {
		t.Errorf("the bounce to bob does not carry the gateway's 550:\n%s", bounce)
	}
	note := statusNote(t, alice)
	if !strings.Contains(note, "XEP-0191") || !strings.Contains(note, bob) || !strings.Contains(note, list) {
		t.Errorf("status does not list the blocked senders: %q", note)
	}

	// Killed and restarted: still refused.
	s.gw.Kill()
	time.Sleep(500 * time.Millisecond)
	s.gw.Start()
	if err := testbed.WaitPort(s.listen, 15*time.Second); err != nil {
		t.Fatalf("listener after restart: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for err = rcptProbe(s.listen, bob, aliceAddr); !is550(err) && time.Now().Before(deadline); err = rcptProbe(s.listen, bob, aliceAddr) {
		// Until the link is up and the server has advertised the
		// permission, the gateway cannot read the list and lets mail
		// through (Prosody still drops bob's messages for alice).
		time.Sleep(200 * time.Millisecond)
	}
	if !is550(err) {
		t.Errorf("RCPT from bob after a restart: %v, want 550", err)
	}

	// Unblock bob (the list stays blocked).
	if r := alice.IQ(t, `<iq type='set'><unblock xmlns='urn:xmpp:blocking'><item jid='`+mailJID(bob)+`'/></unblock></iq>`, wait); r.Type != "result" {
		t.Fatalf("unblock: %s", r.XML)
	}
	time.Sleep(blockCache + 500*time.Millisecond)
	if err := rcptProbe(s.listen, bob, aliceAddr); err != nil {
		t.Fatalf("RCPT from bob after the unblock: %v", err)
	}
	s.mustSend(bob, aliceAddr, mail(bob, aliceAddr, "again", "ok-bob@example.test", "bob unblocked"))
	alice.Expect(t, bodyContains("bob unblocked"), 30*time.Second)
	for _, text := range []string{"bob behind an envelope", "list mail to a blocked list", "bob via postfix"} {
		alice.ExpectNone(t, bodyContains(text), 0)
	}

	// Bring your own: bob blocks carol; her mail in his INBOX is not
	// forwarded, dave's after it is.
	bobX := s.user("bob")
	if r := registerMail(t, bobX, s.byoFields(dovecotPass)); r.Type != "result" {
		t.Fatalf("bob's registration: %s", r.XML)
	}
	if r := bobX.IQ(t, `<iq type='set'><block xmlns='urn:xmpp:blocking'><item jid='`+mailJID(carol)+`'/></block></iq>`, wait); r.Type != "result" {
		t.Fatalf("bob's block: %s", r.XML)
	}
	time.Sleep(blockCache + 500*time.Millisecond)
	s.mustSend(carol, bob, mail(carol, bob, "hi bob", "byo-c@example.test", "carol to bob's own mailbox"))
	s.waitMailbox(bob, "", 1, func(m string) bool { return strings.Contains(m, "byo-c@example.test") }, 30*time.Second)
	s.mustSend(dave, bob, mail(dave, bob, "hi bob", "byo-d@example.test", "dave to bob's own mailbox"))
	bobX.Expect(t, bodyContains("dave to bob's own mailbox"), 30*time.Second)
	bobX.ExpectNone(t, bodyContains("carol to bob's own mailbox"), time.Second)
	if !strings.Contains(s.gw.LogTail(), "not forwarding mail from a blocked sender") {
		t.Errorf("the skipped mail is not logged:\n%s", s.gw.LogTail())
	}
}

// TestEmailXEP0191BlockNoPermission: without the IQ permission the status
// command says so and what to put in the Prosody config, and the gateway
// does not refuse the mail of a sender alice blocks on her server (her
// server drops the message instead).
func TestEmailXEP0191BlockNoPermission(t *testing.T) {
	s := newEmailStack(t, emailStackOptions{blocklist: true})
	alice := s.user("alice")
	if r := registerMail(t, alice, nil); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	aliceAddr := "alice@" + mailDomain
	bob, carol := "bob@"+outsideDom, "carol@"+outsideDom
	if r := alice.IQ(t, `<iq type='set'><block xmlns='urn:xmpp:blocking'><item jid='`+mailJID(bob)+`'/></block></iq>`, wait); r.Type != "result" {
		t.Fatalf("block: %s", r.XML)
	}
	note := statusNote(t, alice)
	for _, want := range []string{"has not granted", "privileged_entities", `["urn:xmpp:blocking"] = "get"`, mailDomain} {
		if !strings.Contains(note, want) {
			t.Errorf("status %q lacks %q", note, want)
		}
	}
	time.Sleep(blockCache)
	if err := sendMail(s.listen, "127.0.0.1", bob, []string{aliceAddr}, mail(bob, aliceAddr, "x", "np-b@example.test", "bob without permission")); err != nil {
		t.Errorf("the gateway refused bob's mail without the permission: %v", err)
	}
	s.mustSend(carol, aliceAddr, mail(carol, aliceAddr, "x", "np-c@example.test", "carol without permission"))
	alice.Expect(t, bodyContains("carol without permission"), 30*time.Second)
	// Prosody's mod_blocklist drops bob's message on its way to alice.
	alice.ExpectNone(t, bodyContains("bob without permission"), time.Second)
	if strings.Contains(s.gw.LogTail(), "block list could not be read") {
		t.Errorf("the gateway tried to read a block list without the permission:\n%s", s.gw.LogTail())
	}
}
