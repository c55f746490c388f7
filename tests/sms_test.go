package tests

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"switchboard/tests/testbed"
	"switchboard/tests/twilio"
)

// TestSMS runs the SMS transport against real Prosody, mellium users and
// the Twilio stand-in, through the real gateway binary: texts both ways,
// receipts, Twilio's errors, forged and replayed webhooks, out-of-order
// callbacks, MMS, invalid numbers.
func TestSMS(t *testing.T) {
	s := newSMSStack(t, smsOptions{})
	alice := s.user(t, "alice")

	t.Run("inbound text", func(t *testing.T) {
		code, body, sid := s.inbound(t, twilio.Inbound{To: aliceNum, Body: "hello alice"})
		if code != 200 || !strings.Contains(body, "<Response/>") {
			t.Fatalf("webhook answer %d %q, want 200 with empty TwiML", code, body)
		}
		m := alice.Expect(t, textFrom(remoteNum, "hello alice"), wait)
		if m.ID != "sms-"+sid {
			t.Errorf("stanza id %q, want sms-%s (derived from the MessageSid)", m.ID, sid)
		}
	})

	t.Run("twiml content type", func(t *testing.T) {
		form := twilio.Inbound{MessageSID: twilio.NewSID("SM"), From: remoteNum, To: aliceNum, Body: "ct"}.Form(smsAccount)
		resp, err := twilio.PostSigned(t.Context(), http.DefaultClient, smsToken, s.gw.URL("/sms/incoming"), s.public+"/sms/incoming", form)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") || resp.StatusCode != 200 || !strings.Contains(string(b), "<Response/>") {
			t.Errorf("answer %d %q %q", resp.StatusCode, ct, b)
		}
		alice.Expect(t, textFrom(remoteNum, "ct"), wait)
	})

	t.Run("replayed webhook delivered once", func(t *testing.T) {
		sid := twilio.NewSID("SM")
		for i := 0; i < 3; i++ {
			if code, _, _ := s.inbound(t, twilio.Inbound{MessageSID: sid, To: aliceNum, Body: "only once"}); code != 200 {
				t.Fatalf("replay %d answered %d", i, code)
			}
		}
		alice.Expect(t, textFrom(remoteNum, "only once"), wait)
		alice.ExpectNone(t, textFrom(remoteNum, "only once"), 2*time.Second)
	})

	t.Run("forged webhooks refused", func(t *testing.T) {
		form := twilio.Inbound{From: remoteNum, To: aliceNum, Body: "forged"}.Form(smsAccount)
		good := twilio.Sign(smsToken, s.public+"/sms/incoming", form)
		cases := map[string]struct {
			form url.Values
			sig  string
		}{
			"no signature":      {form, ""},
			"wrong token":       {form, twilio.Sign("ffffffffffffffffffffffffffffffff", s.public+"/sms/incoming", form)},
			"signed other URL":  {form, twilio.Sign(smsToken, "https://evil.example/sms/incoming", form)},
			"garbage signature": {form, "AAAA"},
		}
		tampered := url.Values{}
		for k, v := range form {
			tampered[k] = v
		}
		tampered.Set("Body", "forged, changed")
		cases["body changed after signing"] = struct {
			form url.Values
			sig  string
		}{tampered, good}
		for name, c := range cases {
			if code := s.post(t, c.form, c.sig); code != http.StatusForbidden {
				t.Errorf("%s: answered %d, want 403", name, code)
			}
		}
		alice.ExpectNone(t, func(st testbed.Stanza) bool { return strings.Contains(st.Body(), "forged") }, time.Second)
	})

	t.Run("outbound text and receipt", func(t *testing.T) {
		sendText(alice, smsJID(remoteNum), "out1", "hi from alice", "")
		ms := s.waitCreates(t, remoteNum, 1)
		m := ms[len(ms)-1]
		if m.From != aliceNum || m.Body != "hi from alice" || !strings.HasPrefix(m.StatusCallback, s.public+"/sms/status?ref=") {
			t.Errorf("created %+v", m)
		}
		alice.Expect(t, receiptFor("out1"), wait)
	})

	t.Run("tapback and reactions", func(t *testing.T) {
		// A tapback quoting alice's text becomes a reaction to it.
		s.inbound(t, twilio.Inbound{To: aliceNum, Body: "Liked “hi from alice”"})
		r := alice.Expect(t, func(st testbed.Stanza) bool {
			return st.From == smsJID(remoteNum) && st.Find("{urn:xmpp:reactions:0}reactions") != nil
		}, wait)
		if r.Find("{urn:xmpp:reactions:0}reactions").AttrValue("id") != "out1" || r.Text("{urn:xmpp:reactions:0}reactions/{urn:xmpp:reactions:0}reaction") != "👍" {
			t.Errorf("tapback: %s", r.XML)
		}
		// alice's reaction is refused until she turns it on, then texted.
		_, _, sid := s.inbound(t, twilio.Inbound{To: aliceNum, Body: "react to me"})
		alice.Expect(t, textFrom(remoteNum, "react to me"), wait)
		react := `<message type='chat' to='` + smsJID(remoteNum) + `' id='%s'><reactions xmlns='urn:xmpp:reactions:0' id='sms-` + sid + `'><reaction>👍</reaction></reactions></message>`
		alice.SendRaw(fmt.Sprintf(react, "re1"))
		if e := alice.Expect(t, errorOn("re1"), wait); e.ErrorCondition() != "feature-not-implemented" {
			t.Errorf("a reaction with texting off: %s", e.XML)
		}
		res := alice.IQ(t, fmt.Sprintf(`<iq type='set' to='%s'><query xmlns='jabber:iq:register'>%s</query></iq>`, smsDomain,
			submitForm("jabber:iq:register", map[string][]string{"reactions": {"1"}})), wait)
		if res.Type != "result" {
			t.Fatalf("turning reactions on: %s", res.XML)
		}
		before := len(s.tw.MessagesTo(remoteNum))
		alice.SendRaw(fmt.Sprintf(react, "re2"))
		ms := s.waitCreates(t, remoteNum, before+1)
		if got := ms[len(ms)-1].Body; got != "👍 to “react to me”" {
			t.Errorf("reaction texted as %q", got)
		}
	})

	t.Run("json webhook", func(t *testing.T) {
		sid := twilio.NewSID("SM")
		body := fmt.Sprintf(`{"MessageSid":%q,"AccountSid":%q,"From":%q,"To":%q,"Body":"json body","NumMedia":"0"}`, sid, smsAccount, remoteNum, aliceNum)
		resp, err := twilio.PostSignedJSON(t.Context(), http.DefaultClient, smsToken, s.gw.URL("/sms/incoming"), s.public+"/sms/incoming", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("JSON webhook answered %d", resp.StatusCode)
		}
		if m := alice.Expect(t, textFrom(remoteNum, "json body"), wait); m.ID != "sms-"+sid {
			t.Errorf("id %q", m.ID)
		}
		// The same body with another signature is refused.
		resp, err = twilio.PostSignedJSON(t.Context(), http.DefaultClient, "ffffffffffffffffffffffffffffffff", s.gw.URL("/sms/incoming"), s.public+"/sms/incoming", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("a JSON webhook signed with another token answered %d", resp.StatusCode)
		}
	})

	t.Run("ask before long texts", func(t *testing.T) {
		res := alice.IQ(t, fmt.Sprintf(`<iq type='set' to='%s'><query xmlns='jabber:iq:register'>%s</query></iq>`, smsDomain,
			submitForm("jabber:iq:register", map[string][]string{"segments": {"ask"}, "ask_above": {"1"}, "reactions": {"1"}})), wait)
		if res.Type != "result" {
			t.Fatalf("setting ask: %s", res.XML)
		}
		to := "+12025550165"
		sendText(alice, smsJID(to), "long1", strings.Repeat("z", 200), "")
		n := alice.Expect(t, func(st testbed.Stanza) bool {
			return st.From == smsJID(to) && strings.Contains(st.Body(), "2 segments")
		}, wait)
		t.Logf("asked: %s", n.Body())
		if c := s.tw.Creates(to); c != 0 {
			t.Fatalf("sent before the user said yes")
		}
		sendText(alice, smsJID(to), "yes1", "yes", "")
		ms := s.waitCreates(t, to, 1)
		if ms[0].Body != strings.Repeat("z", 200) {
			t.Errorf("sent %q", ms[0].Body)
		}
		alice.Expect(t, receiptFor("long1"), wait)
		alice.IQ(t, fmt.Sprintf(`<iq type='set' to='%s'><query xmlns='jabber:iq:register'>%s</query></iq>`, smsDomain,
			submitForm("jabber:iq:register", map[string][]string{"segments": {"silent"}, "reactions": {"1"}})), wait)
	})

	t.Run("national number typed", func(t *testing.T) {
		r := alice.IQ(t, `<iq type='set' to='`+smsDomain+`'><query xmlns='jabber:iq:gateway'><prompt>(202) 555-0199</prompt></query></iq>`, wait)
		if r.Type != "result" || r.Text("{jabber:iq:gateway}query/{jabber:iq:gateway}jid") != smsJID("+12025550199") {
			t.Fatalf("jabber:iq:gateway: %s", r.XML)
		}
	})

	t.Run("invalid numbers", func(t *testing.T) {
		for i, to := range []string{"+15551234567@" + smsDomain, "+1202@" + smsDomain, "alice@" + smsDomain} {
			id := fmt.Sprintf("bad%d", i)
			sendText(alice, to, id, "x", "")
			e := alice.Expect(t, errorOn(id), wait)
			if e.ErrorCondition() != "jid-malformed" || e.ErrorText() == "" {
				t.Errorf("%s: %s", to, e.XML)
			}
		}
	})

	t.Run("twilio errors", func(t *testing.T) {
		for i, c := range []struct {
			code int
			cond string
		}{{21211, "jid-malformed"}, {21610, "forbidden"}, {21614, "not-acceptable"}, {21408, "not-allowed"}} {
			to := fmt.Sprintf("+1202555011%d", i)
			s.tw.SetCreateError(to, c.code)
			id := fmt.Sprintf("err%d", c.code)
			sendText(alice, smsJID(to), id, "will fail", "")
			e := alice.Expect(t, errorOn(id), wait)
			if e.ErrorCondition() != c.cond || !strings.Contains(e.ErrorText(), fmt.Sprint(c.code)) {
				t.Errorf("error %d: want %s with the code in words, got %s", c.code, c.cond, e.XML)
			}
			t.Logf("%d → %s: %s", c.code, e.ErrorCondition(), e.ErrorText())
		}
	})

	t.Run("undelivered and failed callbacks", func(t *testing.T) {
		for i, c := range []struct {
			status string
			code   int
			cond   string
		}{{"undelivered", 30003, "recipient-unavailable"}, {"failed", 30005, "item-not-found"}, {"undelivered", 30007, "policy-violation"}} {
			to := fmt.Sprintf("+1202555012%d", i)
			s.tw.SetOutcome(to, twilio.Outcome{Status: c.status, ErrorCode: c.code})
			id := fmt.Sprintf("cb%d", c.code)
			sendText(alice, smsJID(to), id, "will not arrive", "")
			e := alice.Expect(t, errorOn(id), wait)
			if e.ErrorCondition() != c.cond || !strings.Contains(e.ErrorText(), fmt.Sprint(c.code)) {
				t.Errorf("%s %d: want %s, got %s", c.status, c.code, c.cond, e.XML)
			}
			alice.ExpectNone(t, receiptFor(id), 300*time.Millisecond)
		}
	})

	t.Run("transient errors retried", func(t *testing.T) {
		to := "+12025550140"
		s.tw.SetTransient(500, 429)
		sendText(alice, smsJID(to), "retry1", "after retries", "")
		alice.Expect(t, receiptFor("retry1"), 40*time.Second)
		if n := s.tw.Creates(to); n != 3 {
			t.Errorf("%d create calls, want 3 (500, 429, success)", n)
		}
		if n := len(s.tw.MessagesTo(to)); n != 1 {
			t.Errorf("%d messages created, want 1", n)
		}
	})

	t.Run("callbacks out of order and repeated", func(t *testing.T) {
		to := "+12025550150"
		s.tw.HoldCallbacks()
		sendText(alice, smsJID(to), "ooo", "out of order", "")
		s.waitCreates(t, to, 1)
		time.Sleep(200 * time.Millisecond) // the stand-in queues its callbacks
		s.tw.ReleaseCallbacks(true, true)
		alice.Expect(t, receiptFor("ooo"), wait)
		alice.ExpectNone(t, receiptFor("ooo"), time.Second)
		if errs := s.tw.CallbackErrors(); len(errs) > 0 {
			t.Errorf("callbacks refused: %v", errs)
		}
	})

	t.Run("mms inbound", func(t *testing.T) {
		img := []byte("\x89PNG\r\n\x1a\nfake image bytes")
		u1 := s.tw.AddMedia("image/png", img)
		u2 := s.tw.AddMedia("text/plain", []byte("a second medium"))
		_, _, sid := s.inbound(t, twilio.Inbound{To: aliceNum, Body: "look", Media: []twilio.InboundMedia{{URL: u1, ContentType: "image/png"}, {URL: u2, ContentType: "text/plain"}}})
		first := alice.Expect(t, byID("sms-"+sid), wait)
		second := alice.Expect(t, byID("sms-"+sid+"-1"), wait)
		if !strings.HasPrefix(first.Body(), "look") {
			t.Errorf("the text is not in the first message: %s", first.XML)
		}
		for i, m := range []testbed.Stanza{first, second} {
			oob := m.Text("{jabber:x:oob}x/{jabber:x:oob}url")
			if !strings.HasPrefix(oob, s.public+"/files/") {
				t.Fatalf("medium %d: no OOB URL of the attachment service: %s", i, m.XML)
			}
			code, body := httpGet(t, oob)
			want := []string{string(img), "a second medium"}[i]
			if code != 200 || body != want {
				t.Errorf("medium %d at %s: %d %q", i, oob, code, body)
			}
		}
	})

	t.Run("mms with media gone", func(t *testing.T) {
		gone := s.tw.URL + "/2010-04-01/Accounts/" + smsAccount + "/Messages/MM00/Media/MEgone"
		_, _, sid := s.inbound(t, twilio.Inbound{To: aliceNum, Body: "media gone", Media: []twilio.InboundMedia{{URL: gone, ContentType: "image/jpeg"}}})
		m := alice.Expect(t, byID("sms-"+sid), 40*time.Second)
		if !strings.HasPrefix(m.Body(), "media gone") || !strings.Contains(m.Body(), "could not be fetched") {
			t.Errorf("a text whose medium is gone: %s", m.XML)
		}
	})

	t.Run("mms outbound", func(t *testing.T) {
		to := "+12025550160"
		u := "https://files.example.org/cat.jpg"
		sendText(alice, smsJID(to), "mms1", u, `<x xmlns='jabber:x:oob'><url>`+u+`</url></x>`)
		ms := s.waitCreates(t, to, 1)
		if len(ms[0].MediaURLs) != 1 || ms[0].MediaURLs[0] != u || ms[0].Body != "" {
			t.Errorf("created %+v, want MediaUrl %s and no body", ms[0], u)
		}
		alice.Expect(t, receiptFor("mms1"), wait)
		var oob strings.Builder
		for i := 0; i < 11; i++ {
			fmt.Fprintf(&oob, `<x xmlns='jabber:x:oob'><url>https://files.example.org/%d.jpg</url></x>`, i)
		}
		sendText(alice, smsJID(to), "mms11", "eleven", oob.String())
		if e := alice.Expect(t, errorOn("mms11"), wait); e.ErrorCondition() != "not-acceptable" || !strings.Contains(e.ErrorText(), "10") {
			t.Errorf("11 media: %s", e.XML)
		}
	})

	t.Run("STOP told in words", func(t *testing.T) {
		s.inbound(t, twilio.Inbound{From: "+12025550191", To: aliceNum, Body: "STOP"})
		m := alice.Expect(t, func(st testbed.Stanza) bool { return st.From == smsJID("+12025550191") }, wait)
		if !strings.HasPrefix(m.Body(), "STOP") || !strings.Contains(m.Body(), "unsubscribed") {
			t.Errorf("STOP: %s", m.XML)
		}
	})

	t.Run("no number", func(t *testing.T) {
		dave := s.user(t, "dave")
		sendText(dave, smsJID(remoteNum), "nonum", "hi", "")
		if e := dave.Expect(t, errorOn("nonum"), wait); e.ErrorCondition() != "not-allowed" {
			t.Errorf("a user without a number: %s", e.XML)
		}
	})

	t.Run("max segments", func(t *testing.T) {
		sendText(alice, smsJID(remoteNum), "long", strings.Repeat("€", 900), "")
		e := alice.Expect(t, errorOn("long"), wait)
		if e.ErrorCondition() != "not-acceptable" || !strings.Contains(e.ErrorText(), "max_segments") {
			t.Errorf("a text over max_segments: %s", e.XML)
		}
	})
}
