package mapping

import (
	"strings"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// forbidden are the bytes no IRC name, network or occupant nick may hold.
const forbidden = "\r\n\x00 ,"

// checkIRCAddress checks the invariants of an Address an IRC codec built.
func checkIRCAddress(t *testing.T, c *IRCCodec, a Address) {
	t.Helper()
	if a.Domain != c.Domain() {
		t.Fatalf("%+v: domain %q", a, a.Domain)
	}
	if strings.ContainsAny(a.Name, forbidden) || strings.ContainsAny(a.Network, forbidden+"%@/") {
		t.Fatalf("%+v: a name or network holds a forbidden character", a)
	}
	switch a.Kind {
	case KindGateway:
		if a.Name != "" || a.Network != "" {
			t.Fatalf("%+v: gateway with a name", a)
		}
	case KindServer:
		if a.Name != "" || a.Network == "" {
			t.Fatalf("%+v: server without a network", a)
		}
	case KindRoom, KindOccupant:
		if err := validChannel(a.Name); err != nil {
			t.Fatalf("%+v: %v", a, err)
		}
		if a.Kind == KindOccupant {
			if err := validNick(a.Resource); err != nil || strings.ContainsAny(a.Resource, forbidden) {
				t.Fatalf("%+v: occupant nick: %v", a, err)
			}
		} else if a.Resource != "" {
			t.Fatalf("%+v: room with a resource", a)
		}
	case KindContact:
		if err := validNick(a.Name); err != nil {
			t.Fatalf("%+v: %v", a, err)
		}
	default:
		t.Fatalf("%+v: unknown kind", a)
	}
}

// roundTrip checks that the JID of a parses back to a.
func roundTrip(t *testing.T, c Codec, a Address) {
	t.Helper()
	j, err := c.JID(a)
	if err != nil {
		t.Fatalf("JID(%+v): %v", a, err)
	}
	back, err := c.Parse(j)
	if err != nil {
		t.Fatalf("Parse(JID(%+v) = %s): %v", a, j, err)
	}
	if back != a {
		t.Fatalf("Parse(JID(%+v)) = %+v (JID %s)", a, back, j)
	}
}

// mustBeError checks that err is an *Error with a sentence.
func mustBeError(t *testing.T, what string, err error) {
	t.Helper()
	if me := AsError(err); me == nil || me.Text == "" || me.Condition == "" {
		t.Fatalf("%s: error %v is not an *Error with a condition and a sentence", what, err)
	}
}

func FuzzIRCParse(f *testing.F) {
	for _, s := range [][2]string{
		{"#chan%libera", ""},
		{"#chan%libera", "Nick"},
		{"#Chan%irc.libera.chat", "nick"},
		{`\26chan%oftc`, ""},
		{`#ergo\40irc%libera`, ""},
		{"nick%libera", ""},
		{"nobody,victim%libera", ""},
		{"#a,b%libera", "x"},
		{"libera", ""},
		{"irc.example.net", ""},
		{`#chan%\3a\3a1`, ""},
		{"#chan%127.0.0.1", ""},
		{`\5c5c%libera`, ""},
		{`a\5c%libera`, ""},
		{`#a\3e` + "\u0338%libera", ""},
		{"#100%%libera", ""},
		{"", "res"},
		{"#chan", ""},
		{"%", ""},
		{"#chan%libera", "a\u00a0b"},
	} {
		f.Add(s[0], s[1])
	}
	closed, err := NewIRCCodec(ircDomain, testNetworks, false)
	if err != nil {
		f.Fatal(err)
	}
	open, err := NewIRCCodec(ircDomain, testNetworks, true)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, local, resource string) {
		j, err := jid.New(local, ircDomain, resource)
		if err != nil {
			return
		}
		for _, c := range []*IRCCodec{closed, open} {
			a, err := c.Parse(j)
			if err != nil {
				mustBeError(t, "Parse("+j.String()+")", err)
				continue
			}
			checkIRCAddress(t, c, a)
			roundTrip(t, c, a)
			if k, p := c.Key(a.Bare(), RFC1459), PeerKeyFolded(a, RFC1459); k != p {
				t.Fatalf("%+v: Key %q and PeerKeyFolded %q differ", a, k, p)
			}
		}
	})
}

func FuzzEscapeRoundTrip(f *testing.F) {
	for _, tc := range xep0106Examples {
		f.Add(tc.plain)
		f.Add(tc.escaped)
	}
	f.Add(" leading")
	f.Add("trailing ")
	f.Add(`\20`)
	f.Add("\xff\\40")
	f.Fuzz(func(t *testing.T, s string) {
		e := EscapeLocal(s)
		if strings.ContainsAny(e, " \"&'/:<>@") {
			t.Fatalf("EscapeLocal(%q) = %q holds a raw escapable character", s, e)
		}
		u, err := UnescapeLocal(e)
		plain := utf8.ValidString(s) && !strings.HasPrefix(s, " ") && !strings.HasSuffix(s, " ")
		if plain {
			if err != nil {
				t.Fatalf("UnescapeLocal(EscapeLocal(%q) = %q): %v", s, e, err)
			}
			if u != s {
				t.Fatalf("UnescapeLocal(EscapeLocal(%q) = %q) = %q", s, e, u)
			}
			if _, err := EscapeLocalStrict(s); (err == nil) != (s != "") {
				t.Fatalf("EscapeLocalStrict(%q): %v", s, err)
			}
		} else if err == nil && s != "" {
			if _, err := EscapeLocalStrict(s); err == nil {
				t.Fatalf("EscapeLocalStrict(%q) accepted a name it cannot escape", s)
			}
		}
		// Unescaping anything never panics, and what it gives escapes to
		// something that unescapes to it again.
		if u, err := UnescapeLocal(s); err == nil {
			if u2, err := UnescapeLocal(EscapeLocal(u)); err != nil || u2 != u {
				t.Fatalf("UnescapeLocal(EscapeLocal(%q)) = %q, %v", u, u2, err)
			}
		} else {
			mustBeError(t, "UnescapeLocal", err)
		}
	})
}

func FuzzEmailParse(f *testing.F) {
	for _, s := range [][2]string{
		{`alice\40example.com`, ""},
		{`alice%example.com`, "res"},
		{`a%b\40example.com`, ""},
		{`here\27s_a_wild_\26_\2fcr%zy\2f_address\40example.com`, ""},
		{"m\u00fcller\\40example.com", ""},
		{`a\20b\40example.com`, ""},
		{`\40example.com`, ""},
		{`a\40[192.0.2.1]`, ""},
		{"alice", ""},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	c := NewEmailCodec(mailDomain)
	f.Fuzz(func(t *testing.T, local, resource string) {
		j, err := jid.New(local, mailDomain, resource)
		if err != nil {
			return
		}
		a, err := c.Parse(j)
		if err != nil {
			mustBeError(t, "Parse("+j.String()+")", err)
			return
		}
		switch a.Kind {
		case KindGateway:
		case KindContact:
			if strings.ContainsAny(a.Name, "\r\n\x00 ,\t") || strings.Count(a.Name, "@") != 1 {
				t.Fatalf("%+v: bad mailbox", a)
			}
			if mb, err := NormalizeMailbox(a.Name); err != nil || mb != a.Name {
				t.Fatalf("%+v: mailbox not normalised: %q, %v", a, mb, err)
			}
		default:
			t.Fatalf("%+v: unexpected kind", a)
		}
		roundTrip(t, c, a)
	})
}

func FuzzSMSTranslate(f *testing.F) {
	for _, s := range []string{
		"+12025550123", "(202) 555-0123", "202.555.0123", "+44 7911 123456",
		"011 44 7911 123456", "12", "(555) 123-4567", "+15551234567",
		"tel:+1-202-555-0123", "sms:+12025550123?body=x", "1-800-FLOWERS",
		"+12025550123@" + smsDomain, "+", "", "+1 (202) 555-0123 x12",
	} {
		f.Add(s)
	}
	c, err := NewSMSCodec(smsDomain, "US")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := c.Translate(s)
		if err != nil {
			mustBeError(t, "Translate", err)
			return
		}
		if a.Kind == KindContact {
			if !isE164Syntax(a.Name) {
				t.Fatalf("Translate(%q) = %+v: not E.164", s, a)
			}
			if err := ValidE164(a.Name); err != nil {
				t.Fatalf("Translate(%q) = %+v: %v", s, a, err)
			}
		}
		roundTrip(t, c, a)
	})
}

func FuzzTranslate(f *testing.F) {
	for _, s := range []string{
		"#bars", " #Bars%OFTC ", "#bars%irc.oftc.net", "nick", "nick%libera",
		"#chan%libera@" + ircDomain + "/Nick", "nobody,victim%libera", "#a,b",
		"#chan\r\nJOIN #x", "alice@example.com", "Alice <alice@example.com>",
		"mailto:alice@example.com", `alice\40example.com@` + mailDomain,
		"#bars%", "%", "@", "#chan%[::1]", "nick%10.0.0.1",
	} {
		f.Add(s)
	}
	closed, err := NewIRCCodec(ircDomain, testNetworks, false)
	if err != nil {
		f.Fatal(err)
	}
	open, err := NewIRCCodec(ircDomain, testNetworks, true)
	if err != nil {
		f.Fatal(err)
	}
	mail := NewEmailCodec(mailDomain)
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range []*IRCCodec{closed, open} {
			a, err := c.Translate(s)
			if err != nil {
				mustBeError(t, "IRC Translate", err)
				continue
			}
			checkIRCAddress(t, c, a)
			roundTrip(t, c, a)
		}
		a, err := mail.Translate(s)
		if err != nil {
			mustBeError(t, "email Translate", err)
			return
		}
		if a.Kind == KindContact && strings.ContainsAny(a.Name, "\r\n\x00 ,") {
			t.Fatalf("email Translate(%q) = %+v", s, a)
		}
		roundTrip(t, mail, a)
	})
}
