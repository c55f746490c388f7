package irc

import (
	"math/rand/v2"
	"strings"
	"testing"
	"testing/quick"
	"unicode/utf8"

	"github.com/ergochat/irc-go/ircmsg"
)

func TestCleanText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"hello", []string{"hello"}},
		{"a\r\nb", []string{"a", "b"}},
		{"a\rb\nc", []string{"a", "b", "c"}},
		{"a\n\n\nb", []string{"a", "b"}},
		{"\n\r\n", nil},
		{"nul\x00here", []string{"nulhere"}},
		{"ctcp\x01forge\x01", []string{"ctcpforge"}},
		{"tab\there", []string{"tab\there"}},
		{"\x02bold\x02 kept", []string{"\x02bold\x02 kept"}},
		{"bad \xff utf8", []string{"bad \uFFFD utf8"}},
		{"é ✓ 🎉", []string{"é ✓ 🎉"}},
	} {
		got := cleanText(tc.in)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("cleanText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSplitLineExamples(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want []string
	}{
		{"short", 10, []string{"short"}},
		{"hello world foo", 11, []string{"hello world", " foo"}},
		{"aaaaaaaaaaaa", 5, []string{"aaaaa", "aaaaa", "aa"}},
		{"ééééé", 5, []string{"éé", "éé", "é"}},                 // never inside a character
		{"ab cdefghijkl", 6, []string{"ab cde", "fghijk", "l"}}, // a space too early is not used
		{"e\u0301e\u0301e\u0301", 6, []string{"e\u0301e\u0301", "e\u0301"}},
		{"abce\u0301x", 5, []string{"abc", "e\u0301x"}}, // not before a combining mark
	} {
		got := splitLine(tc.in, tc.max)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("splitLine(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

// TestSplitLineProperties checks, on random text, that no piece is longer
// than allowed, every piece is valid UTF-8 when the input is, nothing is
// lost, and pieces are not needlessly short.
func TestSplitLineProperties(t *testing.T) {
	alphabet := []string{"a", "b", "c", " ", "  ", "é", "ß", "✓", "日本", "🎉", "👍🏽", "e\u0301", "\u200d", "\t", "x"}
	f := func(seed uint64, maxRaw uint16) bool {
		r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		var b strings.Builder
		n := r.IntN(3000)
		for b.Len() < n {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		s := b.String()
		max := 4 + int(maxRaw)%600
		pieces := splitLine(s, max)
		if strings.Join(pieces, "") != s {
			t.Logf("lost characters: %q → %q", s, pieces)
			return false
		}
		for i, p := range pieces {
			if len(p) > max || p == "" && s != "" {
				t.Logf("piece %d has %d bytes (max %d)", i, len(p), max)
				return false
			}
			if !utf8.ValidString(p) {
				t.Logf("piece %d is not UTF-8: %q", i, p)
				return false
			}
			// Every piece but the last fills at least half the window.
			if i < len(pieces)-1 && len(p) < max/2-utf8.UTFMax {
				t.Logf("piece %d is short: %d of %d", i, len(p), max)
				return false
			}
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 3000}); err != nil {
		t.Fatal(err)
	}
}

func TestSplitTextWordBoundaries(t *testing.T) {
	words := strings.Repeat("lorem ipsum dolor sit amet ", 100)
	pieces := splitText(words, 100)
	for i, p := range pieces[:len(pieces)-1] {
		next := pieces[i+1]
		if !strings.HasPrefix(next, " ") {
			t.Fatalf("cut inside a word: %q | %q", p, next)
		}
	}
	if strings.Join(pieces, "") != strings.TrimRight(words, "\n") {
		t.Fatal("lost characters")
	}
}

func TestFormatToStyling(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"\x02bold\x02 text", "*bold* text"},
		{"\x1ditalic\x1d", "_italic_"},
		{"\x1estrike\x1e", "~strike~"},
		{"\x11mono\x11", "`mono`"},
		{"\x02\x1dboth\x0f after", "*_both_* after"},
		{"\x02 spaced \x02x", " *spaced* x"},
		{"\x02   \x02x", "   x"},
		{"\x0304,12red on blue\x03 normal", "red on blue normal"},
		{"\x0399,99x", "x"},
		{"\x03,5comma", ",5comma"},
		{"\x04FF00AAhex\x04", "hex"},
		{"\x16reverse\x16 \x1funder\x1f", "reverse under"},
		{"\x02unterminated", "*unterminated*"},
		{"bell\x07", "bell"},
	} {
		if got := formatToStyling(tc.in); got != tc.want {
			t.Errorf("formatToStyling(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestStripFormatting(t *testing.T) {
	if got := stripFormatting("\x02\x0312topic\x0f \x1dhere\x1d"); got != "topic here" {
		t.Errorf("got %q", got)
	}
}

func TestCTCP(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ctcp
		ok   bool
	}{
		{"\x01ACTION waves\x01", ctcp{"ACTION", "waves"}, true},
		{"\x01action waves", ctcp{"ACTION", "waves"}, true},
		{"\x01VERSION\x01", ctcp{"VERSION", ""}, true},
		{"\x01PING 12345\x01", ctcp{"PING", "12345"}, true},
		{"\x01\x01", ctcp{}, false},
		{"hello", ctcp{}, false},
	} {
		got, ok := parseCTCP(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseCTCP(%q) = %+v %v", tc.in, got, ok)
		}
	}
	if got := ctcpText("ACTION", "waves"); got != "\x01ACTION waves\x01" {
		t.Errorf("ctcpText = %q", got)
	}
}

func TestValidTarget(t *testing.T) {
	for s, want := range map[string]bool{
		"#chan": true, "nick": true, "": false, "a b": false, "a,b": false,
		"a\x00": false, "a\r": false, ":x": false, "a\x7f": false, "ünï": true,
	} {
		if validTarget(s) != want {
			t.Errorf("validTarget(%q) != %v", s, want)
		}
	}
}

func TestEncodeLineRefusesLineBreaks(t *testing.T) {
	for _, p := range []string{"a\r\nQUIT", "a\nb", "a\rb", "a\x00b"} {
		m := ircmsg.MakeMessage(nil, "", "PRIVMSG", "#chan", p)
		if _, err := encodeLine(&m); err == nil {
			t.Errorf("encodeLine accepted %q", p)
		}
		m = ircmsg.MakeMessage(nil, "", "PRIVMSG", p, "x")
		if _, err := encodeLine(&m); err == nil {
			t.Errorf("encodeLine accepted target %q", p)
		}
	}
	long := ircmsg.MakeMessage(nil, "", "PRIVMSG", "#chan", strings.Repeat("x", 600))
	if _, err := encodeLine(&long); err == nil {
		t.Error("encodeLine accepted a line over 512 bytes")
	}
}

func BenchmarkSplitLines(b *testing.B) {
	text := strings.Repeat("The quick brown fox jumps over the lazy dog; ünïcødé 🎉 ", 200) // ~11 KB
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		splitText(text, 420)
	}
}
