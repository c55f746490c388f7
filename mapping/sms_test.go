package mapping

import (
	"strings"
	"testing"
)

const smsDomain = "sms.example.org"

func newSMS(t testing.TB, region string) *SMSCodec {
	t.Helper()
	c, err := NewSMSCodec(smsDomain, region)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSMSParse(t *testing.T) {
	c := newSMS(t, "US")
	for in, want := range map[string]Address{
		smsDomain:                           {Kind: KindGateway, Domain: smsDomain},
		"+12025550123@" + smsDomain:         {Kind: KindContact, Domain: smsDomain, Name: "+12025550123"},
		"+447911123456@" + smsDomain + "/x": {Kind: KindContact, Domain: smsDomain, Name: "+447911123456", Resource: "x"},
		"+33612345678@SMS.example.org":      {Kind: KindContact, Domain: smsDomain, Name: "+33612345678"},
	} {
		got, err := c.Parse(mustJID(t, in))
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
			continue
		}
		j, err := c.JID(got)
		if err != nil {
			t.Errorf("JID(%+v): %v", got, err)
			continue
		}
		if j.String() != strings.Replace(in, "SMS.example.org", smsDomain, 1) {
			t.Errorf("JID(%+v) = %s", got, j)
		}
	}
	for _, in := range []string{
		"+15551234567@" + smsDomain, // fictional 555 number: not valid
		"+112@" + smsDomain,
		"12025550123@" + smsDomain,
		"+1%20202@" + smsDomain,
		`+1\20202555012@` + smsDomain,
		"+012025550123@" + smsDomain,
		"+1202555012a@" + smsDomain,
		"+1234567890123456@" + smsDomain,
		"alice@" + smsDomain,
		"+12025550123@other.example",
	} {
		got, err := c.Parse(mustJID(t, in))
		if me := AsError(err); me == nil || me.Text == "" {
			t.Errorf("Parse(%q) = %+v, %v; want an *Error", in, got, err)
		}
	}
}

func TestSMSTranslate(t *testing.T) {
	us := newSMS(t, "us")
	if us.Region() != "US" {
		t.Errorf("Region() = %q", us.Region())
	}
	num := func(e string) Address { return Address{Kind: KindContact, Domain: smsDomain, Name: e} }
	for in, want := range map[string]Address{
		"+12025550123":              num("+12025550123"),
		"+1 (202) 555-0123":         num("+12025550123"),
		"(202) 555-0123":            num("+12025550123"),
		"202.555.0123":              num("+12025550123"),
		" 202 555 0123 ":            num("+12025550123"),
		"+1 202 555 0123\n":         num("+12025550123"),
		"1-202-555-0123":            num("+12025550123"),
		"+44 7911 123456":           num("+447911123456"),
		"011 44 7911 123456":        num("+447911123456"),
		"tel:+1-202-555-0123":       num("+12025550123"),
		"sms:+12025550123?body=hi":  num("+12025550123"),
		"+12025550123@" + smsDomain: num("+12025550123"),
	} {
		got, err := us.Translate(in)
		if err != nil || got != want {
			t.Errorf("Translate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"":                      "type a phone number",
		"12":                    "not a valid phone number in US",
		"(555) 123-4567":        "not a valid phone number in US",
		"+15551234567":          "not a valid phone number",
		"1-800-FLOWERS":         "only digits",
		"202-555-0123 x12":      "only digits",
		"call 2025550123":       "only digits",
		"+":                     "no digits",
		"()":                    "no digits",
		"alice@example.com":     "another service",
		"2025550123;ext=1":      "only digits",
		strings.Repeat("1", 80): "too long",
	} {
		got, err := us.Translate(in)
		me := AsError(err)
		if me == nil || !strings.Contains(me.Text, why) {
			t.Errorf("Translate(%q) = %+v, %v; want an *Error containing %q", in, got, err, why)
		}
	}

	intl := newSMS(t, "")
	if _, err := intl.Translate("(202) 555-0123"); err == nil || !strings.Contains(err.Error(), "international form") {
		t.Errorf("Translate of a national number without a region: %v", err)
	}
	if a, err := intl.Translate("+44 7911 123456"); err != nil || a.Name != "+447911123456" {
		t.Errorf("Translate(+44 7911 123456) = %+v, %v", a, err)
	}
	gb := newSMS(t, "GB")
	if a, err := gb.Translate("07911 123456"); err != nil || a.Name != "+447911123456" {
		t.Errorf("GB Translate(07911 123456) = %+v, %v", a, err)
	}
	for _, c := range []*SMSCodec{us, intl} {
		if p, desc := c.Prompt(); p != "Phone number" || desc == "" {
			t.Errorf("Prompt() = %q, %q", p, desc)
		}
	}
}

func TestNewSMSCodecErrors(t *testing.T) {
	if _, err := NewSMSCodec("a b", "US"); err == nil {
		t.Error("bad domain accepted")
	}
	if _, err := NewSMSCodec(smsDomain, "XX"); err == nil {
		t.Error("unknown region accepted")
	}
}

func TestSMSJIDErrors(t *testing.T) {
	c := newSMS(t, "US")
	for _, a := range []Address{
		{Kind: KindContact, Name: "2025550123"},
		{Kind: KindContact, Name: "+15551234567"},
		{Kind: KindRoom, Name: "+12025550123"},
		{Kind: KindContact, Domain: "other.example", Name: "+12025550123"},
	} {
		if j, err := c.JID(a); err == nil {
			t.Errorf("JID(%+v) = %s, want an error", a, j)
		}
	}
	if a, err := c.Number("+12025550123"); err != nil || a.Domain != smsDomain {
		t.Errorf("Number() = %+v, %v", a, err)
	}
	if _, err := c.Number("+1 202 555 0123"); err == nil {
		t.Error("Number accepted a non-E.164 form")
	}
}

func TestSMSShortCodesAndRooms(t *testing.T) {
	c := newSMS(t, "US")
	for in, want := range map[string]Address{
		"12345@" + smsDomain:                     {Kind: KindContact, Domain: smsDomain, Name: "12345"},
		"+12025550123%sales@" + smsDomain:        {Kind: KindRoom, Domain: smsDomain, Name: "+12025550123", Network: "sales"},
		"+12025550123%sales@" + smsDomain + "/b": {Kind: KindOccupant, Domain: smsDomain, Name: "+12025550123", Network: "sales", Resource: "b"},
		"12345%sales@" + smsDomain:               {Kind: KindRoom, Domain: smsDomain, Name: "12345", Network: "sales"},
	} {
		got, err := c.Parse(mustJID(t, in))
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"1234@", "1234567@", "012345@", "+12025550123%@", "%sales@", "+12025550123%1sales@", "+15551234567%sales@", "+12025550123%sa.les@"} {
		if got, err := c.Parse(mustJID(t, in+smsDomain)); AsError(err) == nil {
			t.Errorf("Parse(%q) = %+v, %v; want an *Error", in, got, err)
		}
	}
	if a, err := c.Translate("12345"); err != nil || a.Name != "12345" {
		t.Errorf("Translate(short code) = %+v, %v", a, err)
	}
}
