package mapping

import (
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
)

const ircDomain = "irc.example.org"

var testNetworks = []IRCNetwork{
	{Name: "libera", Host: "irc.libera.chat"},
	{Name: "OFTC", Host: "IRC.OFTC.net"},
}

func newIRC(t testing.TB, open bool) *IRCCodec {
	t.Helper()
	c, err := NewIRCCodec(ircDomain, testNetworks, open)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustJID(t testing.TB, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatalf("jid.Parse(%q): %v", s, err)
	}
	return j
}

func TestIRCParse(t *testing.T) {
	closed, open := newIRC(t, false), newIRC(t, true)
	d := ircDomain
	for _, tc := range []struct {
		in     string
		open   bool // use the open codec
		want   Address
		errCnd string // expected *Error condition; "" for success
		errHas string // a piece of the sentence
	}{
		{in: d, want: Address{Kind: KindGateway, Domain: d}},
		{in: d + "/res", want: Address{Kind: KindGateway, Domain: d, Resource: "res"}},
		{in: "#chan%libera@" + d, want: Address{Kind: KindRoom, Domain: d, Network: "libera", Name: "#chan"}},
		{in: "#Chan%LIBERA@IRC.Example.org", want: Address{Kind: KindRoom, Domain: d, Network: "libera", Name: "#chan"}},
		{in: "#chan%irc.libera.chat@" + d, want: Address{Kind: KindRoom, Domain: d, Network: "libera", Name: "#chan"}},
		{in: "#chan%oftc@" + d, want: Address{Kind: KindRoom, Domain: d, Network: "OFTC", Name: "#chan"}},
		{in: "#chan%irc.oftc.net@" + d, want: Address{Kind: KindRoom, Domain: d, Network: "OFTC", Name: "#chan"}},
		{in: "#chan%libera@" + d + "/NiCk", want: Address{Kind: KindOccupant, Domain: d, Network: "libera", Name: "#chan", Resource: "NiCk"}},
		{in: `\26chan%libera@` + d, want: Address{Kind: KindRoom, Domain: d, Network: "libera", Name: "&chan"}},
		{in: "+chan%libera@" + d, want: Address{Kind: KindRoom, Domain: d, Network: "libera", Name: "+chan"}},
		{in: "!12345chan%libera@" + d, want: Address{Kind: KindRoom, Domain: d, Network: "libera", Name: "!12345chan"}},
		{in: "##c++%libera@" + d, want: Address{Kind: KindRoom, Domain: d, Network: "libera", Name: "##c++"}},
		{in: "#100%%libera@" + d, want: Address{Kind: KindRoom, Domain: d, Network: "libera", Name: "#100%"}},
		{in: `#ergo\40irc%libera@` + d, want: Address{Kind: KindRoom, Domain: d, Network: "libera", Name: "#ergo@irc"}},
		{in: `#a\5cb%libera@` + d, want: Address{Kind: KindRoom, Domain: d, Network: "libera", Name: `#a\b`}},
		{in: `#a\b%libera@` + d, want: Address{Kind: KindRoom, Domain: d, Network: "libera", Name: `#a\b`}},
		{in: "nick%libera@" + d, want: Address{Kind: KindContact, Domain: d, Network: "libera", Name: "nick"}},
		{in: "Nick[m]%Libera@" + d, want: Address{Kind: KindContact, Domain: d, Network: "libera", Name: "nick[m]"}},
		{in: "nick%libera@" + d + "/x", want: Address{Kind: KindContact, Domain: d, Network: "libera", Name: "nick", Resource: "x"}},
		{in: "libera@" + d, want: Address{Kind: KindServer, Domain: d, Network: "libera"}},
		{in: "irc.libera.chat@" + d, want: Address{Kind: KindServer, Domain: d, Network: "libera"}},
		{in: "irc.example.net@" + d, open: true, want: Address{Kind: KindServer, Domain: d, Network: "irc.example.net"}},
		{in: "#chan%irc.example.net@" + d, open: true, want: Address{Kind: KindRoom, Domain: d, Network: "irc.example.net", Name: "#chan"}},
		{in: "#chan%127.0.0.1@" + d, open: true, want: Address{Kind: KindRoom, Domain: d, Network: "127.0.0.1", Name: "#chan"}},
		{in: `#chan%\3a\3a1@` + d, open: true, want: Address{Kind: KindRoom, Domain: d, Network: "::1", Name: "#chan"}},
		{in: `nick%libera@` + d, open: true, want: Address{Kind: KindContact, Domain: d, Network: "libera", Name: "nick"}},

		{in: "irc.example.net@" + d, errCnd: "item-not-found", errHas: "libera (irc.libera.chat), OFTC (irc.oftc.net)"},
		{in: "#chan%unknown@" + d, errCnd: "item-not-found", errHas: `no IRC network "unknown"`},
		{in: "#chan%a_b@" + d, open: true, errCnd: "jid-malformed", errHas: "neither a known IRC network"},
		{in: "#chan%1.2.3.999@" + d, open: true, errCnd: "jid-malformed", errHas: "all digits"},
		{in: "#chan%libera@other.example", errCnd: "item-not-found", errHas: "not an address of irc.example.org"},
		{in: "#a,b%libera@" + d, errCnd: "jid-malformed", errHas: `"#a,b" is not a valid IRC channel name: it contains a comma`},
		{in: "nobody,victim%libera@" + d, errCnd: "jid-malformed", errHas: "contains a comma"},
		{in: "nobody\uff0cvictim%libera@" + d, errCnd: "jid-malformed", errHas: "contains a comma"},
		{in: "#chan@" + d, errCnd: "jid-malformed", errHas: "has no network"},
		{in: "#%libera@" + d, errCnd: "jid-malformed", errHas: "nothing after"},
		{in: "%libera@" + d, errCnd: "jid-malformed", errHas: "cannot be empty"},
		{in: "nick%@" + d, errCnd: "jid-malformed", errHas: "network is missing"},
		{in: `#a\3ab%libera@` + d, errCnd: "jid-malformed", errHas: `contains ':'`},
		{in: `#a\20b%libera@` + d, errCnd: "jid-malformed", errHas: "contains a space"},
		{in: `\20#a%libera@` + d, errCnd: "jid-malformed", errHas: `starts with an escaped space`},
		{in: "#chan%libera@" + d + "/ bad", errCnd: "jid-malformed", errHas: "contains a space"},
		{in: "#chan%libera@" + d + "/a,b", errCnd: "jid-malformed", errHas: "contains a comma"},
		{in: "#chan%libera@" + d + "/#other", errCnd: "jid-malformed", errHas: "starts with"},
		{in: "1nick%libera@" + d, errCnd: "jid-malformed", errHas: "starts with a digit"},
		{in: "-nick%libera@" + d, errCnd: "jid-malformed", errHas: "starts with a hyphen"},
		{in: "nick*%libera@" + d, errCnd: "jid-malformed", errHas: `contains "*"`},
		{in: "nick!u%libera@" + d, errCnd: "jid-malformed", errHas: `contains "!"`},
		{in: "~#chan%libera@" + d, errCnd: "jid-malformed", errHas: "starts with"},
		{in: `\40#chan%libera@` + d, errCnd: "jid-malformed", errHas: `contains "@"`},
		{in: "$*.net%libera@" + d, errCnd: "jid-malformed", errHas: "starts with"},
		{in: "#" + strings.Repeat("x", 200) + "%libera@" + d, errCnd: "jid-malformed", errHas: "longer than 200 bytes"},
		{in: strings.Repeat("n", 65) + "%libera@" + d, errCnd: "jid-malformed", errHas: "longer than 64 bytes"},
	} {
		c := closed
		if tc.open {
			c = open
		}
		got, err := c.Parse(mustJID(t, tc.in))
		if tc.errCnd != "" {
			me := AsError(err)
			if me == nil {
				t.Errorf("Parse(%q) = %+v, %v; want a %s error", tc.in, got, err, tc.errCnd)
				continue
			}
			if me.Condition != tc.errCnd || !strings.Contains(me.Text, tc.errHas) {
				t.Errorf("Parse(%q) error = %s %q; want %s containing %q", tc.in, me.Condition, me.Text, tc.errCnd, tc.errHas)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
			continue
		}
		j, err := c.JID(got)
		if err != nil {
			t.Errorf("JID(%+v): %v", got, err)
			continue
		}
		back, err := c.Parse(j)
		if err != nil || back != got {
			t.Errorf("Parse(JID(%+v)) = %+v, %v (JID %s)", got, back, err, j)
		}
	}
}

func TestIRCJID(t *testing.T) {
	c := newIRC(t, true)
	d := ircDomain
	for _, tc := range []struct {
		a    Address
		want string
	}{
		{Address{Kind: KindGateway}, d},
		{Address{Kind: KindServer, Network: "irc.libera.chat"}, "libera@" + d},
		{Address{Kind: KindServer, Network: "OFTC"}, "oftc@" + d},
		{Address{Kind: KindRoom, Domain: d, Network: "libera", Name: "#Chan"}, "#chan%libera@" + d},
		{Address{Kind: KindRoom, Network: "libera", Name: "&chan"}, `\26chan%libera@` + d},
		{Address{Kind: KindRoom, Network: "libera", Name: "#ergo@irc"}, `#ergo\40irc%libera@` + d},
		{Address{Kind: KindRoom, Network: "libera", Name: `#a\b`}, `#a\b%libera@` + d},
		{Address{Kind: KindRoom, Network: "libera", Name: `#a\40`}, `#a\5c40%libera@` + d},
		// PRECIS lowercases before escaping: "\5C" is not an escape, and
		// must not become one.
		{Address{Kind: KindContact, Network: "libera", Name: `a\5C`}, `a\5c5c%libera@` + d},
		{Address{Kind: KindOccupant, Network: "irc.oftc.net", Name: "#chan", Resource: "Nick"}, "#chan%oftc@" + d + "/Nick"},
		{Address{Kind: KindContact, Network: "::1", Name: "nick"}, `nick%\3a\3a1@` + d},
		{Address{Kind: KindContact, Network: "[::1]", Name: "nick"}, `nick%\3a\3a1@` + d},
	} {
		j, err := c.JID(tc.a)
		if err != nil {
			t.Errorf("JID(%+v): %v", tc.a, err)
			continue
		}
		if j.String() != tc.want {
			t.Errorf("JID(%+v) = %s, want %s", tc.a, j, tc.want)
		}
		if _, err := c.Parse(j); err != nil {
			t.Errorf("Parse(JID(%+v)): %v", tc.a, err)
		}
	}
	for _, a := range []Address{
		{Kind: KindRoom, Network: "libera", Name: "#a b"},
		{Kind: KindRoom, Network: "libera", Name: "#a,b"},
		{Kind: KindRoom, Network: "libera", Name: "#chän"}, // refused by mellium's PRECIS (Bidi Rule)
		{Kind: KindRoom, Network: "libera", Name: "#chan", Resource: "x"},
		{Kind: KindContact, Network: "libera", Name: "nobody\uff0cvictim"},
		{Kind: KindOccupant, Network: "libera", Name: "#chan", Resource: "a\u00a0b"},
		{Kind: KindOccupant, Network: "libera", Name: "#chan", Resource: ""},
		{Kind: KindContact, Network: "bad host", Name: "nick"},
		{Kind: KindContact, Domain: "other.example", Network: "libera", Name: "nick"},
		{Kind: Kind(99), Network: "libera", Name: "nick"},
	} {
		if j, err := c.JID(a); err == nil {
			t.Errorf("JID(%+v) = %s, want an error", a, j)
		} else if AsError(err) == nil {
			t.Errorf("JID(%+v) error %v is not an *Error", a, err)
		}
	}
}

func TestIRCTranslate(t *testing.T) {
	c := newIRC(t, false)
	d := ircDomain
	for in, want := range map[string]Address{
		"#bars":                         {Kind: KindRoom, Domain: d, Network: "libera", Name: "#bars"},
		"  #Bars \t":                    {Kind: KindRoom, Domain: d, Network: "libera", Name: "#bars"},
		"#bars%OFTC":                    {Kind: KindRoom, Domain: d, Network: "OFTC", Name: "#bars"},
		"#bars%irc.oftc.net":            {Kind: KindRoom, Domain: d, Network: "OFTC", Name: "#bars"},
		"&local%libera":                 {Kind: KindRoom, Domain: d, Network: "libera", Name: "&local"},
		"Alice":                         {Kind: KindContact, Domain: d, Network: "libera", Name: "alice"},
		"alice%oftc":                    {Kind: KindContact, Domain: d, Network: "OFTC", Name: "alice"},
		"#chan%libera@" + d:             {Kind: KindRoom, Domain: d, Network: "libera", Name: "#chan"},
		"#chan%libera@" + d + "/Nick":   {Kind: KindOccupant, Domain: d, Network: "libera", Name: "#chan", Resource: "Nick"},
		`\26chan%libera@` + d:           {Kind: KindRoom, Domain: d, Network: "libera", Name: "&chan"},
		"nick%irc.libera.chat@" + d:     {Kind: KindContact, Domain: d, Network: "libera", Name: "nick"},
		"irc.libera.chat@" + d + "/x y": {Kind: KindServer, Domain: d, Network: "libera", Resource: "x y"},
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
	for in, cond := range map[string]string{
		"":                     "bad-request",
		"   ":                  "bad-request",
		"#a,b":                 "jid-malformed",
		"nobody,victim%libera": "jid-malformed",
		"a b":                  "jid-malformed",
		"#bars%":               "jid-malformed",
		"#bars%nowhere":        "item-not-found",
		"alice@example.com":    "jid-malformed",
		"#chan\r\nJOIN #x":     "jid-malformed",
		"nick\x00":             "jid-malformed",
		"#chän":                "jid-malformed",
	} {
		got, err := c.Translate(in)
		me := AsError(err)
		if me == nil || me.Condition != cond || me.Text == "" {
			t.Errorf("Translate(%q) = %+v, %v; want a %s *Error", in, got, err, cond)
		}
	}

	// No configured network: the network must be typed.
	bare, err := NewIRCCodec(ircDomain, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := bare.Translate("#bars"); err == nil {
		t.Errorf("Translate(#bars) without networks = %+v", a)
	}
	a, err := bare.Translate("#bars%IRC.Example.NET")
	if err != nil || a != (Address{Kind: KindRoom, Domain: d, Network: "irc.example.net", Name: "#bars"}) {
		t.Errorf("Translate(#bars%%IRC.Example.NET) = %+v, %v", a, err)
	}
}

func TestIRCPrompt(t *testing.T) {
	p, desc := newIRC(t, true).Prompt()
	if p != "IRC channel or nick" {
		t.Errorf("prompt %q", p)
	}
	for _, want := range []string{"#chan%libera", "nick%libera", "libera (irc.libera.chat)", "OFTC (irc.oftc.net)", "host name"} {
		if !strings.Contains(desc, want) {
			t.Errorf("description %q lacks %q", desc, want)
		}
	}
}

func TestNewIRCCodecErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		domain string
		nets   []IRCNetwork
		open   bool
	}{
		"bad domain":      {"a b", testNetworks, false},
		"domain with @":   {"x@irc.example.org", testNetworks, false},
		"closed and none": {ircDomain, nil, false},
		"empty name":      {ircDomain, []IRCNetwork{{Name: "", Host: "irc.example.net"}}, false},
		"name with %":     {ircDomain, []IRCNetwork{{Name: "a%b", Host: "irc.example.net"}}, false},
		"host with port":  {ircDomain, []IRCNetwork{{Name: "x", Host: "irc.example.net:6697"}}, false},
		"empty host":      {ircDomain, []IRCNetwork{{Name: "x", Host: ""}}, false},
		"duplicate name":  {ircDomain, []IRCNetwork{{Name: "x", Host: "a.example"}, {Name: "X", Host: "b.example"}}, false},
		"duplicate host":  {ircDomain, []IRCNetwork{{Name: "x", Host: "a.example"}, {Name: "y", Host: "A.example"}}, false},
		"name is a host":  {ircDomain, []IRCNetwork{{Name: "x", Host: "a.example"}, {Name: "a.example", Host: "b.example"}}, false},
	} {
		if _, err := NewIRCCodec(tc.domain, tc.nets, tc.open); err == nil {
			t.Errorf("%s: NewIRCCodec succeeded", name)
		}
	}
	c, err := NewIRCCodec("IRC.Example.Org.", []IRCNetwork{{Name: "ipv6", Host: "[2001:DB8::1]"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Domain() != ircDomain {
		t.Errorf("Domain() = %q", c.Domain())
	}
	if n := c.Networks(); len(n) != 1 || n[0].Host != "2001:db8::1" {
		t.Errorf("Networks() = %+v", n)
	}
	if h, ok := c.Host("2001:db8::1"); !ok || h != "2001:db8::1" {
		t.Errorf("Host(2001:db8::1) = %q, %v", h, ok)
	}
}

func TestIRCAccessors(t *testing.T) {
	c := newIRC(t, true)
	if c.DefaultNetwork() != "libera" {
		t.Errorf("DefaultNetwork() = %q", c.DefaultNetwork())
	}
	nets := c.Networks()
	nets[0].Name = "changed"
	if c.Networks()[0].Name != "libera" {
		t.Error("Networks() shares the codec's slice")
	}
	if !c.Open() {
		t.Error("Open() = false")
	}
	for in, want := range map[string]string{"libera": "irc.libera.chat", "irc.oftc.net": "irc.oftc.net", "OFTC": "irc.oftc.net", "irc.example.net": "irc.example.net"} {
		if h, ok := c.Host(in); !ok || h != want {
			t.Errorf("Host(%q) = %q, %v; want %q", in, h, ok, want)
		}
	}
	if _, ok := newIRC(t, false).Host("irc.example.net"); ok {
		t.Error("a closed codec knows a host it was not given")
	}
	for name, want := range map[string]bool{"#a": true, "&a": true, "+a": true, "!a": true, "a": false, "": false, "~a": false} {
		if c.IsChannel(name) != want {
			t.Errorf("IsChannel(%q) = %v", name, !want)
		}
	}
	if err := c.ValidChannel("#ok"); err != nil {
		t.Error(err)
	}
	if err := c.ValidNick("ok[m]"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "#", "#a b", "#a,b", "#a\x07", "#a:b", "#a\r", "#a\n", "#a\x00", "#a\x02bold", "#a\u0085", "nochan", "#\xff"} {
		if err := c.ValidChannel(bad); err == nil {
			t.Errorf("ValidChannel(%q) = nil", bad)
		}
	}
	for _, bad := range []string{"", "a b", "a,b", "a!b", "a@b", "a*", "a?", "a:b", "a%b", "a\r", "0a", "-a", "#a", "&a", "+a", "!a", "~a", "$a", ":a", "\xff", strings.Repeat("a", 65)} {
		if err := c.ValidNick(bad); err == nil {
			t.Errorf("ValidNick(%q) = nil", bad)
		}
	}
}

func TestIRCKey(t *testing.T) {
	c := newIRC(t, true)
	for _, tc := range []struct {
		a    Address
		cm   Casemapping
		want string
	}{
		{Address{Kind: KindRoom, Network: "libera", Name: "#Chan[1]"}, RFC1459, "#chan{1}%libera"},
		{Address{Kind: KindRoom, Network: "libera", Name: "#Chan[1]"}, ASCII, "#chan[1]%libera"},
		{Address{Kind: KindRoom, Network: "irc.libera.chat", Name: "#chan"}, RFC1459, "#chan%libera"},
		{Address{Kind: KindRoom, Network: "OFTC", Name: "#chan~"}, RFC1459Strict, "#chan~%oftc"},
		{Address{Kind: KindOccupant, Network: "libera", Name: "#chan", Resource: "Nick~"}, RFC1459, "#chan%libera/nick^"},
		{Address{Kind: KindContact, Network: "OFTC", Name: "Nick"}, RFC1459, "nick%oftc"},
		{Address{Kind: KindServer, Network: "irc.oftc.net"}, RFC1459, "oftc"},
		{Address{Kind: KindServer, Network: "IRC.Example.NET"}, RFC1459, "irc.example.net"},
		{Address{Kind: KindGateway}, RFC1459, ""},
	} {
		if got := c.Key(tc.a, tc.cm); got != tc.want {
			t.Errorf("Key(%+v, %v) = %q, want %q", tc.a, tc.cm, got, tc.want)
		}
	}
}

func TestIRCConstructors(t *testing.T) {
	c := newIRC(t, true)
	room, err := c.Room("irc.libera.chat", "#Chan")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := c.Parse(mustJID(t, "#chan%libera@"+ircDomain))
	if err != nil {
		t.Fatal(err)
	}
	if room != parsed {
		t.Errorf("Room() = %+v, Parse = %+v", room, parsed)
	}
	occ, err := c.Occupant("libera", "#Chan", "Nick")
	if err != nil || occ != parsed.Occupant("Nick") {
		t.Errorf("Occupant() = %+v, %v", occ, err)
	}
	if occ.Room() != room {
		t.Errorf("Occupant().Room() = %+v", occ.Room())
	}
	contact, err := c.Contact("OFTC", "Alice")
	if err != nil || contact != (Address{Kind: KindContact, Domain: ircDomain, Network: "OFTC", Name: "alice"}) {
		t.Errorf("Contact() = %+v, %v", contact, err)
	}
	srv, err := c.Server("irc.oftc.net")
	if err != nil || srv != contact.Server() {
		t.Errorf("Server() = %+v, %v; want %+v", srv, err, contact.Server())
	}
	if _, err := c.Contact("libera", "a,b"); err == nil {
		t.Error("Contact(a,b) succeeded")
	}
	if _, err := c.Occupant("libera", "#chan", "a b"); err == nil {
		t.Error("Occupant with a space succeeded")
	}
}

func BenchmarkIRCParse(b *testing.B) {
	c := newIRC(b, false)
	room := mustJID(b, "#switchboard%libera@"+ircDomain+"/SomeNick")
	escaped := mustJID(b, `\26local%irc.libera.chat@`+ircDomain)
	b.Run("occupant", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Parse(room); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("escaped", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Parse(escaped); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkIRCJID(b *testing.B) {
	c := newIRC(b, false)
	occ := Address{Kind: KindOccupant, Domain: ircDomain, Network: "libera", Name: "#switchboard", Resource: "SomeNick"}
	mixed := Address{Kind: KindRoom, Domain: ircDomain, Network: "libera", Name: "&Switchboard"}
	b.Run("occupant", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.JID(occ); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uppercase-escaped", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.JID(mixed); err != nil {
				b.Fatal(err)
			}
		}
	})
}
