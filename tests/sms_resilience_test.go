package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"switchboard/tests/testbed"
	"switchboard/tests/twilio"
)

// TestSMSKillInbound kills the gateway with -9 after it answered 200 to
// webhooks and before it could deliver them (Prosody is down, so the
// texts cannot reach XMPP): after the restart each text arrives exactly
// once, with the stanza id derived from its MessageSid.
func TestSMSKillInbound(t *testing.T) {
	s := newSMSStack(t, smsOptions{})
	s.prosody.Kill()
	const n = 20
	sids := make([]string, n)
	for i := range n {
		code, _, sid := s.inbound(t, twilio.Inbound{To: aliceNum, Body: fmt.Sprintf("crash %d", i)})
		if code != 200 {
			t.Fatalf("webhook %d answered %d while the XMPP server is down; it must be stored and accepted", i, code)
		}
		sids[i] = sid
	}
	time.Sleep(500 * time.Millisecond) // the delivery worker has claimed them
	s.gw.Kill()
	<-s.gw.Done()
	t0 := time.Now()
	s.prosody.Start()
	t.Logf("prosody up after %v", time.Since(t0))
	alice := s.user(t, "alice")
	s.gw.Start()
	t.Logf("gateway up after %v", time.Since(t0))
	defer func() { t.Logf("all delivered after %v", time.Since(t0)) }()
	seen := map[string]int{}
	for range n {
		m := alice.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "message" && st.From == smsJID(remoteNum) && strings.HasPrefix(st.Body(), "crash ")
		}, 30*time.Second)
		seen[m.ID]++
	}
	alice.ExpectNone(t, func(st testbed.Stanza) bool { return strings.HasPrefix(st.Body(), "crash ") }, 3*time.Second)
	for i, sid := range sids {
		if seen["sms-"+sid] != 1 {
			t.Errorf("text %d (%s) arrived %d times, want once with id sms-%s", i, sid, seen["sms-"+sid], sid)
		}
	}
	// A retry of one of them by Twilio after the restart is still a duplicate.
	if code, _, _ := s.inbound(t, twilio.Inbound{MessageSID: sids[0], To: aliceNum, Body: "crash 0"}); code != 200 {
		t.Fatalf("replay answered %d", code)
	}
	alice.ExpectNone(t, func(st testbed.Stanza) bool { return st.ID == "sms-"+sids[0] }, 2*time.Second)
}

// TestSMSKillOutbound kills the gateway with -9 after Twilio accepted a
// text and before the gateway read the answer: after the restart the
// retry finds the text through the Messages list API and does not send it
// again. Then a burst of texts is interrupted by -9: each is sent once.
func TestSMSKillOutbound(t *testing.T) {
	s := newSMSStack(t, smsOptions{})
	alice := s.user(t, "alice")

	to := "+12025550170"
	// Callbacks are held, so the retry can learn the SID only from the
	// list API (a "sent" callback carrying it would do too).
	s.tw.HoldCallbacks()
	s.tw.StallCreates()
	sendText(alice, smsJID(to), "k1", "sent once", "")
	s.waitCreates(t, to, 1)
	s.gw.Kill()
	<-s.gw.Done()
	s.tw.ReleaseCreates()
	s.gw.Start()
	deadline := time.Now().Add(15 * time.Second)
	listed := false
	for time.Now().Before(deadline) && !listed {
		for _, c := range s.tw.Calls() {
			if c.Method == http.MethodGet && strings.HasSuffix(c.Path, "/Messages.json") && c.Form.Get("To") == to {
				listed = true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !listed {
		t.Fatalf("the retry never asked the list API; calls: %s", s.callLog())
	}
	time.Sleep(2 * time.Second)
	if n := s.tw.Creates(to); n != 1 {
		t.Fatalf("%d creates to %s after the crash, want 1 (not sent twice); calls: %s", n, to, s.callLog())
	}
	s.tw.ReleaseCallbacks(false, false)
	alice.Expect(t, receiptFor("k1"), wait)
	alice.ExpectNone(t, receiptFor("k1"), time.Second)

	// A burst cut by -9: every text is created exactly once in the end.
	to = "+12025550171"
	alice = s.user(t, "alice")
	const n = 15
	for i := range n {
		sendText(alice, smsJID(to), fmt.Sprintf("b%d", i), fmt.Sprintf("burst %d", i), "")
	}
	deadline = time.Now().Add(wait)
	for len(s.tw.MessagesTo(to)) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s.gw.Kill()
	<-s.gw.Done()
	before := len(s.tw.MessagesTo(to))
	s.gw.Start()
	time.Sleep(8 * time.Second) // the leases of the texts in flight end; the retries run
	ms := s.tw.MessagesTo(to)
	count := map[string]int{}
	for _, m := range ms {
		count[m.Body]++
	}
	lost := 0
	for i := range n {
		id := fmt.Sprintf("b%d", i)
		switch c := count[fmt.Sprintf("burst %d", i)]; {
		case c > 1:
			t.Errorf("burst %d created %d times, want 1", i, c)
		case c == 0:
			// Not sent: the user must have been told (Prosody bounces what
			// it could not hand to the dead component).
			if !receivedError(alice, id, 2*time.Second) {
				// Read by the gateway from its XMPP stream but not yet
				// stored when it was killed: the component protocol has no
				// acknowledgements, so this window cannot be closed; the
				// user got no receipt for it (doc/sms.md).
				lost++
			}
		}
	}
	t.Logf("%d of %d texts were created before the kill; %d in all after the restart; %d were in the gateway's memory (read from XMPP, not yet stored) and got neither a receipt nor an error", before, n, len(ms), lost)
}

// receivedError reports whether c got an error stanza on id (in time).
func receivedError(c *testbed.XMPPClient, id string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		for _, raw := range c.Received() {
			st, err := testbed.ParseStanza(raw)
			if err == nil && errorOn(id)(st) {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
