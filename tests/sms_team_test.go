package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"switchboard/tests/testbed"
	"switchboard/tests/twilio"
)

// TestSMSTeamInbox: a number with two owners is a team inbox. A text to
// it appears in the conversation's room for both members; bob replies
// from the room, the text goes out from the inbox's number, and carol
// sees that bob replied. The room's history is served by MAM.
func TestSMSTeamInbox(t *testing.T) {
	s := newSMSStack(t, smsOptions{})
	bob, carol := s.user(t, "bob"), s.user(t, "carol")
	room := salesRoom(remoteNum)
	// Before joining, a text reaches the members as a message from the room.
	s.inbound(t, twilio.Inbound{To: salesNum, Body: "anyone there?"})
	for _, c := range []*testbed.XMPPClient{bob, carol} {
		m := c.Expect(t, func(st testbed.Stanza) bool {
			return st.Name == "message" && st.From == room && strings.Contains(st.Body(), "anyone there?")
		}, wait)
		if m.Type != "normal" {
			t.Errorf("a text to a member not in the room: %s", m.XML)
		}
	}
	joinRoom(t, bob, room, "bob", "")
	joinRoom(t, carol, room, "carol", "")

	_, _, sid := s.inbound(t, twilio.Inbound{To: salesNum, Body: "is the shop open?"})
	for _, c := range []*testbed.XMPPClient{bob, carol} {
		m := groupchatFrom(t, c, room+"/"+remoteNum, withBody("is the shop open?"))
		if m.ID != "sms-"+sid {
			t.Errorf("id %q, want sms-%s", m.ID, sid)
		}
	}

	sendGroupchat(bob, room, "r1", "yes, until 6")
	ms := s.waitCreates(t, remoteNum, 1)
	if ms[0].From != salesNum || ms[0].Body != "yes, until 6" {
		t.Errorf("reply created as %+v, want from %s", ms[0], salesNum)
	}
	groupchatFrom(t, carol, room+"/bob", withBody("yes, until 6"))
	if echo := groupchatFrom(t, bob, room+"/bob", withBody("yes, until 6")); echo.ID != "r1" {
		t.Errorf("bob's own reflection has id %q, want r1", echo.ID)
	}
	bob.Expect(t, receiptFor("r1"), wait)

	// alice is no member: she may not join.
	alice := s.user(t, "alice")
	alice.SendRaw(`<presence to='` + room + `/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	e := alice.Expect(t, func(st testbed.Stanza) bool { return st.Name == "presence" && st.Type == "error" }, wait)
	if e.ErrorCondition() != "registration-required" {
		t.Errorf("a non-member joining: %s", e.XML)
	}

	// History: carol leaves and comes back, and asks MAM.
	time.Sleep(300 * time.Millisecond)
	msgs, fin := mamQuery(t, carol, room, "", "")
	if fin.Type != "result" {
		t.Fatalf("MAM: %s", fin.XML)
	}
	got := strings.Join(mamBodies(msgs), "|")
	if got != "anyone there?|is the shop open?|yes, until 6" {
		t.Errorf("MAM bodies %q", got)
	}

	// A tapback on bob's reply becomes a reaction.
	s.inbound(t, twilio.Inbound{To: salesNum, Body: "Loved “yes, until 6”"})
	r := carol.Expect(t, func(st testbed.Stanza) bool {
		return st.Find("{urn:xmpp:reactions:0}reactions") != nil
	}, wait)
	if r.Text("{urn:xmpp:reactions:0}reactions/{urn:xmpp:reactions:0}reaction") != "❤️" {
		t.Errorf("reaction: %s", r.XML)
	}
	// "Liked an image" stays a text.
	s.inbound(t, twilio.Inbound{To: salesNum, Body: "Liked an image"})
	groupchatFrom(t, carol, room+"/"+remoteNum, withBody("Liked an image"))
}

// TestSMSQuota: over daily_messages, or a text that would go over
// daily_segments, is refused with an error naming the limit and when it
// resets; the admin's usage command shows the counts.
func TestSMSQuota(t *testing.T) {
	s := newSMSStack(t, smsOptions{sms: map[string]any{"daily_messages": 3, "daily_segments": 4, "max_segments": 10}})
	alice := s.user(t, "alice")
	to := smsJID(remoteNum)
	sendText(alice, to, "q1", "one", "")
	alice.Expect(t, receiptFor("q1"), wait)
	sendText(alice, to, "q2", strings.Repeat("x", 200), "") // 2 segments: 3 of 4
	alice.Expect(t, receiptFor("q2"), wait)
	sendText(alice, to, "q3", strings.Repeat("y", 200), "") // would be 5 of 4
	e := alice.Expect(t, errorOn("q3"), wait)
	if e.ErrorCondition() != "resource-constraint" || !strings.Contains(e.ErrorText(), "daily_segments") || !strings.Contains(e.ErrorText(), "UTC") {
		t.Errorf("over daily_segments: %s", e.XML)
	}
	sendText(alice, to, "q4", "three", "")
	alice.Expect(t, receiptFor("q4"), wait)
	sendText(alice, to, "q5", "four", "")
	e = alice.Expect(t, errorOn("q5"), wait)
	if e.ErrorCondition() != "resource-constraint" || !strings.Contains(e.ErrorText(), "daily_messages") {
		t.Errorf("over daily_messages: %s", e.XML)
	}
	if n := len(s.tw.MessagesTo(remoteNum)); n != 3 {
		t.Errorf("%d texts created, want 3", n)
	}
	admin := s.user(t, "admin")
	done := admin.IQ(t, `<iq type='set' to='`+smsDomain+`'><command xmlns='http://jabber.org/protocol/commands' node='usage' action='execute'/></iq>`, wait)
	if done.Type != "result" || !strings.Contains(done.XML, "alice@localhost") || !strings.Contains(done.XML, ">4<") {
		t.Errorf("usage: %s", done.XML)
	}
}

// TestSMSNumbers: the admin assigns a number to dave, who texts from it
// and receives on it; a pool number is picked at registration.
func TestSMSNumbers(t *testing.T) {
	s := newSMSStack(t, smsOptions{sms: map[string]any{"pool": []string{"+15005550010", "+15005550011"}}})
	admin, dave := s.user(t, "admin"), s.user(t, "dave")
	_, done := command(t, admin, smsDomain, "assign-number", map[string][]string{"user": {"dave@localhost"}, "number": {"+15005550009"}})
	if done.Type != "result" {
		t.Fatalf("assign: %s", done.XML)
	}
	sendText(dave, smsJID(remoteNum), "d1", "from dave", "")
	if ms := s.waitCreates(t, remoteNum, 1); ms[0].From != "+15005550009" {
		t.Errorf("dave's text from %s", ms[0].From)
	}
	s.inbound(t, twilio.Inbound{To: "+15005550009", Body: "to dave"})
	dave.Expect(t, textFrom(remoteNum, "to dave"), wait)

	carol := s.user(t, "carol")
	form := carol.IQ(t, `<iq type='get' to='`+smsDomain+`'><query xmlns='jabber:iq:register'/></iq>`, wait)
	if !strings.Contains(form.XML, "+15005550010") {
		t.Fatalf("the registration form does not offer the pool: %s", form.XML)
	}
	r := carol.IQ(t, fmt.Sprintf(`<iq type='set' to='%s'><query xmlns='jabber:iq:register'>%s</query></iq>`, smsDomain,
		submitForm("jabber:iq:register", map[string][]string{"number": {"+15005550011"}})), wait)
	if r.Type != "result" {
		t.Fatalf("registering with a pool number: %s", r.XML)
	}
	sendText(carol, smsJID("+12025550180"), "c1", "from the pool", "")
	if ms := s.waitCreates(t, "+12025550180", 1); ms[0].From != "+15005550011" {
		t.Errorf("carol's text from %s", ms[0].From)
	}
	// The number is taken now.
	r = dave.IQ(t, fmt.Sprintf(`<iq type='set' to='%s'><query xmlns='jabber:iq:register'>%s</query></iq>`, smsDomain,
		submitForm("jabber:iq:register", map[string][]string{"number": {"+15005550011"}})), wait)
	if r.Type != "error" {
		t.Errorf("a taken pool number was given again: %s", r.XML)
	}
	// The configure command: tell the segment count after sending.
	if _, done := command(t, dave, smsDomain, "configure", map[string][]string{"segments": {"tell"}}); done.Type != "result" {
		t.Fatalf("configure: %s", done.XML)
	}
	sendText(dave, smsJID(remoteNum), "d3", "ж", "")
	n := dave.Expect(t, func(st testbed.Stanza) bool {
		return st.From == smsJID(remoteNum) && strings.Contains(st.Body(), "segment")
	}, wait)
	if !strings.Contains(n.Body(), "UCS-2") {
		t.Errorf("segment notice: %s", n.XML)
	}
	_, done = command(t, admin, smsDomain, "unassign-number", map[string][]string{"user": {"dave@localhost"}})
	if done.Type != "result" {
		t.Fatalf("unassign: %s", done.XML)
	}
	sendText(dave, smsJID(remoteNum), "d2", "no number now", "")
	if e := dave.Expect(t, errorOn("d2"), wait); e.ErrorCondition() != "not-allowed" {
		t.Errorf("after unassign: %s", e.XML)
	}
}

// TestSMSOfflineAndBlock: a text to an offline owner waits in Prosody's
// offline storage; a number the owner blocked (XEP-0191, enforced by
// Prosody's mod_blocklist) is refused for them while Twilio gets its 200.
func TestSMSOfflineAndBlock(t *testing.T) {
	s := newSMSStack(t, smsOptions{})
	_, _, sid := s.inbound(t, twilio.Inbound{To: aliceNum, Body: "while you were away"})
	time.Sleep(time.Second) // delivered into offline storage
	alice := s.user(t, "alice")
	if m := alice.Expect(t, textFrom(remoteNum, "while you were away"), wait); m.ID != "sms-"+sid {
		t.Errorf("offline text id %q", m.ID)
	}

	blocked := "+12025550190"
	r := alice.IQ(t, `<iq type='set'><block xmlns='urn:xmpp:blocking'><item jid='`+smsJID(blocked)+`'/></block></iq>`, wait)
	if r.Type != "result" {
		t.Fatalf("block: %s", r.XML)
	}
	if code, _, _ := s.inbound(t, twilio.Inbound{From: blocked, To: aliceNum, Body: "spam"}); code != 200 {
		t.Errorf("a blocked sender's webhook answered %d, want 200", code)
	}
	s.inbound(t, twilio.Inbound{To: aliceNum, Body: "not blocked"})
	alice.Expect(t, textFrom(remoteNum, "not blocked"), wait)
	alice.ExpectNone(t, textFrom(blocked, "spam"), time.Second)
}

// TestSMSMessagingService: with messaging_service_sid the text goes out
// through the Messaging Service (no From), and its receipt still arrives.
func TestSMSMessagingService(t *testing.T) {
	const msid = "MG0123456789abcdef0123456789abcdef"
	s := newSMSStack(t, smsOptions{sms: map[string]any{"messaging_service_sid": msid}})
	alice := s.user(t, "alice")
	sendText(alice, smsJID(remoteNum), "ms1", "via the service", "")
	ms := s.waitCreates(t, remoteNum, 1)
	if ms[0].MessagingServiceSID != msid {
		t.Errorf("created %+v, want MessagingServiceSid %s", ms[0], msid)
	}
	for _, c := range s.tw.Calls() {
		if c.Form.Get("To") == remoteNum && c.Form.Get("From") != "" {
			t.Errorf("From was sent with a Messaging Service: %v", c.Form)
		}
	}
	alice.Expect(t, receiptFor("ms1"), wait)
}
