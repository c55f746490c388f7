package mapping

import (
	"strings"
	"testing"
)

const mailDomain = "mail.example.org"

func TestEmailParse(t *testing.T) {
	c := NewEmailCodec("Mail.Example.org.")
	if c.Domain() != mailDomain {
		t.Fatalf("Domain() = %q", c.Domain())
	}
	d := mailDomain
	for in, want := range map[string]Address{
		d:                                 {Kind: KindGateway, Domain: d},
		d + "/r":                          {Kind: KindGateway, Domain: d, Resource: "r"},
		`alice\40example.com@` + d:        {Kind: KindContact, Domain: d, Name: "alice@example.com"},
		`Alice\40Example.COM@` + d:        {Kind: KindContact, Domain: d, Name: "alice@example.com"},
		`alice%example.com@` + d:          {Kind: KindContact, Domain: d, Name: "alice@example.com"},
		`a%b\40example.com@` + d:          {Kind: KindContact, Domain: d, Name: "a%b@example.com"},
		`a%b%example.com@` + d:            {Kind: KindContact, Domain: d, Name: "a%b@example.com"},
		`d\27artagnan\40example.com@` + d: {Kind: KindContact, Domain: d, Name: "d'artagnan@example.com"},
		`here\27s_a_wild_\26_\2fcr%zy\2f_address\40example.com@` + d: {Kind: KindContact, Domain: d, Name: "here's_a_wild_&_/cr%zy/_address@example.com"},
		`first.last+tag\40sub.example.com@` + d + "/res":             {Kind: KindContact, Domain: d, Name: "first.last+tag@sub.example.com", Resource: "res"},
		"m\u00fcller\\40example.com@" + d:                            {Kind: KindContact, Domain: d, Name: "m\u00fcller@example.com"},
		`postmaster\40localhost@` + d:                                {Kind: KindContact, Domain: d, Name: "postmaster@localhost"},
	} {
		got, err := c.Parse(mustJID(t, in))
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("Parse(%q) = %+v, want %+v", in, got, want)
			continue
		}
		j, err := c.JID(got)
		if err != nil {
			t.Errorf("JID(%+v): %v", got, err)
			continue
		}
		if back, err := c.Parse(j); err != nil || back != got {
			t.Errorf("Parse(JID(%+v)) = %+v, %v", got, back, err)
		}
	}
	for in, why := range map[string]string{
		"alice@" + d:                              "not an email address",
		`alice\40@` + d:                           "nothing comes after the @",
		`\40example.com@` + d:                     "nothing comes before the @",
		`a..b\40example.com@` + d:                 "two dots",
		`.a\40example.com@` + d:                   "starts or ends with a dot",
		`a\20b\40example.com@` + d:                "contains a space",
		`a,b\40example.com@` + d:                  "contains a comma",
		`a\40b\40example.com@` + d:                "contains",
		`a\40exa_mple.com@` + d:                   "the domain",
		`a\40[192.0.2.1]@` + d:                    "IP literal",
		`a\40example..com@` + d:                   "empty label",
		`a\40-example.com@` + d:                   "hyphen",
		`a\40example.123@` + d:                    "all digits",
		`a\5cb\40example.com@` + d:                `contains '\\'`,
		strings.Repeat("a", 65) + `\40x.com@` + d: "longer than 64",
		`alice\40example.com@other.example`:       "not an address of",
	} {
		got, err := c.Parse(mustJID(t, in))
		me := AsError(err)
		if me == nil || !strings.Contains(me.Text, why) {
			t.Errorf("Parse(%q) = %+v, %v; want an *Error containing %q", in, got, err, why)
		}
	}
}

func TestEmailJID(t *testing.T) {
	c := NewEmailCodec(mailDomain)
	for _, tc := range []struct {
		a    Address
		want string
	}{
		{Address{Kind: KindGateway}, mailDomain},
		{Address{Kind: KindContact, Name: "alice@example.com"}, `alice\40example.com@` + mailDomain},
		{Address{Kind: KindContact, Name: "Alice@Example.COM"}, `alice\40example.com@` + mailDomain},
		{Address{Kind: KindContact, Domain: mailDomain, Name: "o'hara&co/x@example.com"}, `o\27hara\26co\2fx\40example.com@` + mailDomain},
	} {
		j, err := c.JID(tc.a)
		if err != nil {
			t.Errorf("JID(%+v): %v", tc.a, err)
			continue
		}
		if j.String() != tc.want {
			t.Errorf("JID(%+v) = %s, want %s", tc.a, j, tc.want)
		}
	}
	for _, a := range []Address{
		{Kind: KindRoom, Name: "alice@example.com"},
		{Kind: KindContact, Name: "alice"},
		{Kind: KindContact, Name: "a\r\nb@example.com"},
		{Kind: KindContact, Name: "alice\uff20example.com"}, // fullwidth @, no real @
		{Kind: KindContact, Name: "a\uff20b@example.com"},   // fullwidth @ becomes a second @
		{Kind: KindContact, Domain: "other.example", Name: "alice@example.com"},
	} {
		if j, err := c.JID(a); err == nil {
			t.Errorf("JID(%+v) = %s, want an error", a, j)
		}
	}
}

func TestEmailTranslate(t *testing.T) {
	c := NewEmailCodec(mailDomain)
	contact := func(mb string) Address { return Address{Kind: KindContact, Domain: mailDomain, Name: mb} }
	for in, want := range map[string]Address{
		"alice@example.com":                 contact("alice@example.com"),
		"  Alice@Example.com ":              contact("alice@example.com"),
		"Alice Liddell <alice@example.com>": contact("alice@example.com"),
		"<alice@example.com>":               contact("alice@example.com"),
		"mailto:alice@example.com":          contact("alice@example.com"),
		"MAILTO:here%27s%26co@example.com":  contact("here's&co@example.com"),
		`alice\40example.com@` + mailDomain: contact("alice@example.com"),
		"alice%example.com@" + mailDomain:   contact("alice@example.com"),
		"postmaster@" + mailDomain:          contact("postmaster@" + mailDomain),
		"d'artagnan@musketeers.lit":         contact("d'artagnan@musketeers.lit"),
	} {
		got, err := c.Translate(in)
		if err != nil {
			t.Errorf("Translate(%q): %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("Translate(%q) = %+v, want %+v", in, got, want)
		}
	}
	for _, in := range []string{"", "alice", "alice@", "@example.com", "a b@example.com", "a@b@example.com", "mailto:", "alice@exa mple.com", "alice@example.com\r\nBcc: x@y.z", `"a b"@example.com`} {
		got, err := c.Translate(in)
		if me := AsError(err); me == nil || me.Text == "" {
			t.Errorf("Translate(%q) = %+v, %v; want an *Error", in, got, err)
		}
	}
	if p, desc := c.Prompt(); p == "" || !strings.Contains(desc, `alice\40example.com@`+mailDomain) {
		t.Errorf("Prompt() = %q, %q", p, desc)
	}
}

func TestNormalizeMailbox(t *testing.T) {
	for in, want := range map[string]string{
		"Alice@Example.COM":     "Alice@example.com",
		"a.b+c@x.example":       "a.b+c@x.example",
		"!#$%&'*+-/=?^_`{|}~@x": "!#$%&'*+-/=?^_`{|}~@x",
	} {
		got, err := NormalizeMailbox(in)
		if err != nil || got != want {
			t.Errorf("NormalizeMailbox(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	long := strings.Repeat("a", 64) + "@" + strings.Repeat("b.", 94) + "com"
	if _, err := NormalizeMailbox(long); err == nil {
		t.Errorf("NormalizeMailbox accepted %d bytes", len(long))
	}
	for _, in := range []string{"", "a", "a@b@c", "a\x00@b", "a\t@b", "\xff@b", "a@b\u00e4.com", "a@\u00e4"} {
		if got, err := NormalizeMailbox(in); err == nil {
			t.Errorf("NormalizeMailbox(%q) = %q, want an error", in, got)
		}
	}
}

func TestEmailMailbox(t *testing.T) {
	c := NewEmailCodec(mailDomain)
	a, err := c.Mailbox("Alice@Example.com")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := c.Parse(mustJID(t, `alice\40example.com@`+mailDomain))
	if err != nil || a != parsed {
		t.Errorf("Mailbox() = %+v, Parse = %+v, %v", a, parsed, err)
	}
}
