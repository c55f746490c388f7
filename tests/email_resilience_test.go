package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestEmailKillInbound: 40 mails go through Postfix to alice; the gateway
// is killed with -9 while it delivers them and started again, once with
// the spool and once with the store's queue. Every mail
// reaches alice; a mail seen twice (the crash window between the XMPP
// server taking it and the store forgetting it) carries the same id both
// times, so clients drop the copy; none is lost.
func TestEmailKillInbound(t *testing.T) {
	t.Run("spool", func(t *testing.T) { killInbound(t, nil) })
	// spool_dir empty: accepted mail waits in the store's queue.
	t.Run("store", func(t *testing.T) { killInbound(t, map[string]any{"spool_dir": ""}) })
}

func killInbound(t *testing.T, email map[string]any) {
	s := newEmailStack(t, emailStackOptions{email: email})
	alice := s.user("alice")
	if r := registerMail(t, alice, nil); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	const n = 40
	carol := "carol@" + outsideDom
	go func() {
		for i := 0; i < n; i++ {
			raw := mail(carol, "alice@"+mailDomain, fmt.Sprintf("kill %d", i), fmt.Sprintf("k%d@example.test", i), fmt.Sprintf("inbound number %d", i))
			if err := sendMail(s.postfix.Addr(), "", carol, []string{"alice@" + mailDomain}, raw); err != nil {
				t.Errorf("sending %d: %v", i, err)
			}
		}
	}()
	ids := map[string]string{} // body → id
	dups := 0
	take := func(timeout time.Duration) bool {
		st, err := alice.Take(bodyContains("inbound number "), timeout)
		if err != nil {
			return false
		}
		b := st.Body()
		if prev, ok := ids[b]; ok {
			dups++
			if prev != st.ID {
				t.Errorf("%q delivered twice with different ids %q and %q", b, prev, st.ID)
			}
		}
		ids[b] = st.ID
		return true
	}
	for len(ids) < 5 {
		if !take(30 * time.Second) {
			t.Fatalf("only %d mails before the kill", len(ids))
		}
	}
	s.gw.Kill()
	t.Logf("gateway killed after %d mails", len(ids))
	time.Sleep(time.Second)
	s.gw.Start()
	// Postfix retries what it could not hand over while the gateway was
	// down with a backoff (and sometimes leaves a mail "still being
	// delivered" for a while): flush its queue when nothing comes.
	deadline := time.Now().Add(90 * time.Second)
	for len(ids) < n && time.Now().Before(deadline) {
		if !take(5 * time.Second) {
			s.postfix.Flush()
		}
	}
	if len(ids) < n {
		var missing []string
		for i := 0; i < n; i++ {
			if _, ok := ids[fmt.Sprintf("inbound number %d", i)]; !ok {
				missing = append(missing, fmt.Sprintf("k%d@example.test", i))
			}
		}
		var trail []string
		log := s.postfix.Log()
		for _, mid := range missing {
			for _, line := range strings.Split(log, "\n") {
				if strings.Contains(line, mid) {
					qid := strings.Fields(line)
					if len(qid) > 5 {
						id := strings.TrimSuffix(qid[5], ":")
						for _, l2 := range strings.Split(log, "\n") {
							if strings.Contains(l2, id) {
								trail = append(trail, l2)
							}
						}
					}
				}
			}
		}
		t.Fatalf("%d of %d mails reached alice after the restart; missing %v\npostfix on them:\n%s\n%s", len(ids), n, missing, strings.Join(trail, "\n"), s.gw.LogTail())
	}
	for take(2 * time.Second) {
	}
	t.Logf("%d mails delivered, %d delivered again with the same id", len(ids), dups)
}

// TestEmailKillOutbound: alice sends 30 messages to carol, asking for
// receipts; the gateway is killed with -9 while it sends them and started
// again. Every message that got a receipt is in carol's mailbox; each
// message is delivered, refused with an error, or (the few the gateway
// had read but not yet queued when it died, see doc/email.md) never
// acknowledged; a message sent twice (the window between the
// smarthost's 250 and the queue's update) carries the same Message-ID.
func TestEmailKillOutbound(t *testing.T) {
	s := newEmailStack(t, emailStackOptions{})
	alice := s.user("alice")
	if r := registerMail(t, alice, nil); r.Type != "result" {
		t.Fatalf("registration: %s", r.XML)
	}
	const n = 30
	carol := "carol@" + outsideDom
	for i := 0; i < n; i++ {
		alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s' id='o%d'><body>outbound number %d.</body><request xmlns='%s'/></message>`, mailJID(carol), i, i, nsReceipts))
	}
	s.waitMailbox(carol, "", 3, nil, 30*time.Second)
	s.gw.Kill()
	time.Sleep(time.Second)
	s.gw.Start()
	errs, acked := map[string]bool{}, map[string]bool{}
	// A mail the killed gateway had claimed comes back when its lease
	// (one minute) ends.
	deadline := time.Now().Add(100 * time.Second)
	var got map[string]string // body → Message-ID
	for {
		takeOutcomes(t, alice, errs, acked, "outbound number ", "o")
		var dups int
		got, dups = s.mailedOnce(carol, "outbound number ")
		settled := len(got)+len(errs) >= n || time.Now().After(deadline)
		if !settled {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for body := range acked {
			if _, ok := got[body]; !ok {
				t.Errorf("%q was acknowledged with a receipt but is not in the mailbox", body)
			}
		}
		lost := n - len(got) - len(errs)
		t.Logf("%d delivered (%d twice with the same Message-ID), %d refused with an error, %d receipts, %d never acknowledged (read by the gateway but not yet queued when it was killed)",
			len(got), dups, len(errs), len(acked), lost)
		if lost > 3 {
			t.Errorf("%d messages unaccounted for; the window at a kill should hold at most a few\n%s", lost, s.gw.LogTail())
		}
		return
	}
}
