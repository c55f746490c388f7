package mapping

import (
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
)

// The examples of XEP-0106 §5.1 (version 1.1.1), sans "@example.com", and
// of its business rules.
var xep0106Examples = []struct{ plain, escaped string }{
	{"space cadet", `space\20cadet`},
	{`call me "ishmael"`, `call\20me\20\22ishmael\22`},
	{"at&t guy", `at\26t\20guy`},
	{"d'artagnan", `d\27artagnan`},
	{"/.fanboy", `\2f.fanboy`},
	{"::foo::", `\3a\3afoo\3a\3a`},
	{"<foo>", `\3cfoo\3e`},
	{"user@host", `user\40host`},
	{`c:\net`, `c\3a\net`},
	{`c:\\net`, `c\3a\\net`},
	{`c:\cool stuff`, `c\3a\cool\20stuff`},
	{`c:\5commas`, `c\3a\5c5commas`},
	// §4.2 step three.
	{`\3and\2is\5cool`, `\5c3and\2is\5c5cool`},
	// §4.3: partial and unknown sequences are left alone both ways.
	{`\2plus\2is\4`, `\2plus\2is\4`},
	{`foo\bar`, `foo\bar`},
	{`foob\41r`, `foob\41r`},
	// Email example of §5.2.
	{"here's_a_wild_&_/cr%zy/_address", `here\27s_a_wild_\26_\2fcr%zy\2f_address`},
	// Gateway names.
	{"#ergo@irc", `#ergo\40irc`},
	{"alice@example.com", `alice\40example.com`},
	{"&chan%libera", `\26chan%libera`},
	{`\`, `\`},
	{`\5c`, `\5c5c`},
	{`\5C`, `\5C`},
	{`\\5c`, `\\5c5c`},
	{`a\`, `a\`},
	{`a\5`, `a\5`},
	{`call me\20`, `call\20me\5c20`},
	{"", ""},
	{"plain", "plain"},
	{"Ünïcode", "Ünïcode"},
}

func TestEscapeLocal(t *testing.T) {
	for _, tc := range xep0106Examples {
		if got := EscapeLocal(tc.plain); got != tc.escaped {
			t.Errorf("EscapeLocal(%q) = %q, want %q", tc.plain, got, tc.escaped)
		}
		got, err := UnescapeLocal(tc.escaped)
		if err != nil {
			t.Errorf("UnescapeLocal(%q): %v", tc.escaped, err)
			continue
		}
		if got != tc.plain {
			t.Errorf("UnescapeLocal(%q) = %q, want %q", tc.escaped, got, tc.plain)
		}
	}
}

func TestUnescapeLocal(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// Not produced by EscapeLocal, but valid escaped forms.
		{`foo\5cbar`, `foo\bar`},
		{`\5c`, `\`},
		{`\5c\5c`, `\\`},
		{`\5c40`, `\40`},
		{`\40\40`, "@@"},
		{`a\20b`, "a b"},
		{`\2F`, `\2F`}, // case is significant
		{`\3A`, `\3A`},
		{`\`, `\`},
		{`\4`, `\4`},
		{`x\4`, `x\4`},
		{`\\40`, `\@`},
		{`#ergo\40irc%libera`, "#ergo@irc%libera"},
	} {
		got, err := UnescapeLocal(tc.in)
		if err != nil {
			t.Errorf("UnescapeLocal(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("UnescapeLocal(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestUnescapeLocalErrors(t *testing.T) {
	for _, in := range []string{
		`\20cadet`,
		`cadet\20`,
		`\20`,
		"a b",
		"a@b",
		"a/b",
		"a:b",
		"a'b",
		`a"b`,
		"a&b",
		"a<b",
		"a>b",
		"\xff",
	} {
		got, err := UnescapeLocal(in)
		if err == nil {
			t.Errorf("UnescapeLocal(%q) = %q, want an error", in, got)
			continue
		}
		if me := AsError(err); me == nil || me.Condition != "jid-malformed" || me.Text == "" {
			t.Errorf("UnescapeLocal(%q) error %v is not a jid-malformed *Error", in, err)
		}
	}
}

func TestEscapeLocalStrict(t *testing.T) {
	for _, in := range []string{"", " cadet", "cadet ", " ", "\xff"} {
		if got, err := EscapeLocalStrict(in); err == nil {
			t.Errorf("EscapeLocalStrict(%q) = %q, want an error", in, got)
		}
	}
	got, err := EscapeLocalStrict("space cadet")
	if err != nil || got != `space\20cadet` {
		t.Errorf("EscapeLocalStrict(space cadet) = %q, %v", got, err)
	}
}

// The escaped examples are valid JID localparts that PRECIS keeps as they
// are (the ones with an uppercase letter excepted), and unescape to the
// plain form.
func TestEscapedExamplesAreLocalparts(t *testing.T) {
	for _, tc := range xep0106Examples {
		if tc.escaped == "" || strings.ToLower(tc.escaped) != tc.escaped {
			continue
		}
		j, err := jid.New(tc.escaped, "example.com", "")
		if err != nil {
			t.Errorf("jid.New(%q): %v", tc.escaped, err)
			continue
		}
		if j.Localpart() != tc.escaped {
			t.Errorf("PRECIS changed %q to %q", tc.escaped, j.Localpart())
		}
		if got, err := unescapeName(j.Localpart()); err != nil || got != tc.plain {
			t.Errorf("unescapeName(%q) = %q, %v; want %q", j.Localpart(), got, err, tc.plain)
		}
	}
}

func TestUnescapeNameCanonical(t *testing.T) {
	// ">" followed by U+0338 is not NFC (it composes to U+226F), so the
	// escaped form, which PRECIS accepts, is refused once unescaped.
	j, err := jid.New("a\\3e\u0338b", "example.com", "")
	if err != nil {
		t.Fatalf("PRECIS refused the test localpart: %v", err)
	}
	if got, err := unescapeName(j.Localpart()); err == nil {
		t.Errorf("unescapeName accepted a non-canonical name: %q", got)
	}
	for in, want := range map[string]string{
		`\26chan`:                    "&chan",
		"m\u00fcller\\40example.com": "m\u00fcller@example.com",
		"plain":                      "plain",
	} {
		if got, err := unescapeName(in); err != nil || got != want {
			t.Errorf("unescapeName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func BenchmarkUnescapeLocal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = UnescapeLocal(`#ergo\40irc%libera`)
	}
}
