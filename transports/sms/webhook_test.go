package sms

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"

	twclient "github.com/twilio/twilio-go/client"

	"switchboard/tests/twilio"
)

const testToken = "12345"

func testTransport() *Transport {
	return &Transport{validator: twclient.NewRequestValidator(testToken), cfg: Config{AccountSID: "AC" + strings.Repeat("0", 32)}}
}

// The vector of twilio-go's own validator tests.
func TestVerifyTwilioVector(t *testing.T) {
	tr := testTransport()
	u := "https://mycompany.com/myapp.php?foo=1&bar=2"
	form := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+12349013030"}, "Digits": {"1234"}, "From": {"+12349013030"}, "To": {"+18005551212"}}
	const sig = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
	if got := twilio.Sign(testToken, u, form); got != sig {
		t.Fatalf("the stand-in signs %q, Twilio %q", got, sig)
	}
	body := []byte(form.Encode())
	if !tr.verify(u, body, sig) {
		t.Fatal("a good signature was refused")
	}
	if !tr.verify("https://mycompany.com:443/myapp.php?foo=1&bar=2", body, sig) {
		t.Error("the URL with its default port was refused")
	}
	for name, c := range map[string]struct {
		u, sig string
		body   []byte
	}{
		"empty signature": {u, "", body},
		"other URL":       {"https://mycompany.com/other.php?foo=1&bar=2", sig, body},
		"changed body":    {u, sig, []byte(strings.Replace(string(body), "1234", "1235", 1))},
		"added field":     {u, sig, append(append([]byte{}, body...), "&Extra=1"...)},
		"garbage":         {u, "!!!", body},
	} {
		if tr.verify(c.u, c.body, c.sig) {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The JSON variant: the URL carries bodySHA256 and the signature covers
// the URL alone.
func TestVerifyJSONBody(t *testing.T) {
	tr := testTransport()
	body := []byte(`{"MessageSid":"SM0123456789abcdef0123456789abcdef","Body":"hi"}`)
	u := "https://gw.example.org/sms/incoming?bodySHA256=" + sha256hex(body)
	sig := twilio.Sign(testToken, u, nil)
	if !tr.verify(u, body, sig) {
		t.Fatal("a good JSON signature was refused")
	}
	if tr.verify(u, []byte(`{"MessageSid":"SM0123456789abcdef0123456789abcdef","Body":"ho"}`), sig) {
		t.Fatal("a changed JSON body was accepted")
	}
	f, err := parseWebhookBody("application/json", "bodySHA256=x", body)
	if err != nil || f.Get("Body") != "hi" || f.Has("bodySHA256") {
		t.Fatalf("parsed %v, %v", f, err)
	}
}

func TestParseInbound(t *testing.T) {
	sid := "SM" + strings.Repeat("a", 32)
	good := url.Values{"MessageSid": {sid}, "From": {"+12025550123"}, "To": {"+15005550006"}, "Body": {"hi"}, "NumMedia": {"1"},
		"MediaUrl0": {"https://api.twilio.com/x"}, "MediaContentType0": {"image/png"}}
	in, err := parseInbound(good, MaxMedia)
	if err != nil || in.SID != sid || len(in.Media) != 1 || in.Media[0].Type != "image/png" {
		t.Fatalf("%+v, %v", in, err)
	}
	short := url.Values{"MessageSid": {sid}, "From": {"12345"}, "To": {"+15005550006"}}
	if _, err := parseInbound(short, MaxMedia); err != nil {
		t.Errorf("a short code sender: %v", err)
	}
	for name, f := range map[string]url.Values{
		"bad sid":       {"MessageSid": {"XX" + strings.Repeat("a", 32)}, "From": {"+12025550123"}, "To": {"+15005550006"}},
		"bad to":        {"MessageSid": {sid}, "From": {"+12025550123"}, "To": {"12"}},
		"num media":     {"MessageSid": {sid}, "From": {"+12025550123"}, "To": {"+15005550006"}, "NumMedia": {"11"}},
		"media url":     {"MessageSid": {sid}, "From": {"+12025550123"}, "To": {"+15005550006"}, "NumMedia": {"1"}, "MediaUrl0": {"file:///etc/passwd"}},
		"missing media": {"MessageSid": {sid}, "From": {"+12025550123"}, "To": {"+15005550006"}, "NumMedia": {"1"}},
		"alpha sender":  {"MessageSid": {sid}, "From": {"ACME"}, "To": {"+15005550006"}},
	} {
		if _, err := parseInbound(f, MaxMedia); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseTapback(t *testing.T) {
	for in, want := range map[string][2]string{
		"Loved “see you at 6”":      {"❤️", "see you at 6"},
		"Laughed at “lol”":          {"😂", "lol"},
		`Liked "ok"`:                {"👍", "ok"},
		"Emphasized “a “b” c”":      {"‼️", "a “b” c"},
		"Liked an image":            {"", ""},
		"Loved “”":                  {"", ""},
		"loved “x”":                 {"", ""},
		"Loved “unterminated":       {"", ""},
		"I Loved “this” very much”": {"", ""},
	} {
		e, q, ok := parseTapback(in)
		if ok != (want[0] != "") || e != want[0] || q != want[1] {
			t.Errorf("parseTapback(%q) = %q %q %v, want %q %q", in, e, q, ok, want[0], want[1])
		}
	}
}

func FuzzWebhookForm(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", "", "MessageSid=SM0123456789abcdef0123456789abcdef&From=%2B12025550123&To=%2B15005550006&Body=hi&NumMedia=0")
	f.Add("application/x-www-form-urlencoded", "ref=12", "MessageSid=MM0123456789abcdef0123456789abcdef&From=12345&To=%2B15005550006&NumMedia=1&MediaUrl0=https%3A%2F%2Fx%2Fy")
	f.Add("application/json", "bodySHA256=00", `{"MessageSid":"SM0123456789abcdef0123456789abcdef","Body":"x","NumMedia":2}`)
	f.Add("application/x-www-form-urlencoded", "", "a=%zz&&&=")
	f.Add("application/json", "", `[1,2]`)
	f.Fuzz(func(t *testing.T, ct, query, body string) {
		v, err := parseWebhookBody(ct, query, []byte(body))
		if err != nil {
			return
		}
		in, err := parseInbound(v, MaxMedia)
		if err != nil {
			return
		}
		if !validSID(in.SID, "SM", "MM") || len(in.Media) > MaxMedia {
			t.Fatalf("accepted %+v", in)
		}
		for _, m := range in.Media {
			if u, err := url.Parse(m.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
				t.Fatalf("accepted media URL %q", m.URL)
			}
		}
	})
}

func FuzzSignature(f *testing.F) {
	f.Add("https://gw.example.org/sms/incoming", "From=%2B1202&Body=hi", "")
	f.Add("https://gw.example.org:443/sms/incoming", "Body=x", "AAAA")
	f.Add("https://gw.example.org/sms/status?ref=1&bodySHA256=abc", "{}", "x")
	f.Add("://bad", "%%", "====")
	f.Fuzz(func(t *testing.T, u, body, sig string) {
		tr := testTransport()
		if tr.verify(u, []byte(body), sig) {
			// Only a signature made with the token may pass.
			form, err := url.ParseQuery(body)
			if err != nil {
				return
			}
			if p, err := url.Parse(u); err == nil && p.Query().Get("bodySHA256") == "" {
				first := url.Values{}
				for k, vs := range form {
					first[k] = vs[:1]
				}
				if twilio.Sign(testToken, u, first) != sig && twilio.Sign(testToken, strings.Replace(u, ":443", "", 1), first) != sig {
					t.Fatalf("accepted a signature the token did not make: %q %q %q", u, body, sig)
				}
			}
		}
	})
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestOptOutNote(t *testing.T) {
	for in, want := range map[string]string{" stop ": "unsubscribed", "START": "subscribed again", "help": "help", "stop it": "", "": ""} {
		if got := optOutNote(in, "+12025550123"); (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("optOutNote(%q) = %q", in, got)
		}
	}
}
