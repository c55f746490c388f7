package mailmsg

import (
	"strings"
	"testing"
)

// TestCharsets decodes bodies and RFC 2047 words in the charsets mail uses,
// from the real bytes of each charset.
func TestCharsets(t *testing.T) {
	tests := []struct {
		name, subjectRaw, charset, cte, body string
		subject, text                        string
	}{
		{"ISO-8859-2 Polish", "=?ISO-8859-2?Q?Za=BF=F3=B3=E6_g=EA=B6l=B1_ja=BC=F1?=", "iso-8859-2", "8bit",
			"Za\xbf\xf3\xb3\xe6 g\xea\xb6l\xb1 ja\xbc\xf1", "Zażółć gęślą jaźń", "Zażółć gęślą jaźń"},
		{"ISO-8859-15 euro", "=?iso-8859-15?q?Prix_=A4?=", "ISO-8859-15", "quoted-printable",
			"Prix : 10 =A4, =BD =BE", "Prix €", "Prix : 10 €, œ Ÿ"},
		{"ISO-8859-7 Greek", "=?iso-8859-7?b?1+Hf8eXy?=", "iso-8859-7", "8bit",
			"\xc3\xe5\xe9\xdc \xf3\xef\xf5", "Χαίρες", "Γειά σου"},
		{"Windows-1250", "=?windows-1250?Q?=8Akoda_=9E=EDt?=", "windows-1250", "8bit",
			"\x8akoda \x9e\xedt \x84quote\x93", "Škoda žít", "Škoda žít „quote“"},
		{"Windows-1251 Russian", "=?windows-1251?B?z/Do4uXy?=", "windows-1251", "base64",
			"z/Do4uXyLCDs6PAh", "Привет", "Привет, мир!"},
		{"KOI8-R", "=?koi8-r?B?8NLJ18XU?=", "koi8-r", "8bit",
			"\xf0\xd2\xc9\xd7\xc5\xd4", "Привет", "Привет"},
		{"ISO-2022-JP in Q words", "=?iso-2022-jp?Q?=1B$B$3$s$K$A$O=1B(B?=", "iso-2022-jp", "7bit",
			"\x1b$B$3$s$K$A$O\x1b(B", "こんにちは", "こんにちは"},
		{"Shift_JIS", "=?Shift_JIS?B?g1KDk4Nqg2CDjw==?=", "shift_jis", "8bit",
			"\x83\x52\x83\x93\x83\x6a\x83\x60\x83\x8f", "コンニチワ", "コンニチワ"},
		{"UTF-8 base64 words split inside a character", "=?UTF-8?B?5pel5pys?= =?UTF-8?B?6Kqe?=", "utf-8", "base64",
			"5pel5pys6Kqe8J+Ygg==", "日本語", "日本語😂"},
		{"UTF-8 Q word next to plain text", "Re: =?utf-8?q?caf=C3=A9?= ok", "UTF-8", "quoted-printable",
			"caf=C3=A9", "Re: café ok", "café"},
		{"raw UTF-8 header (RFC 6532)", "Grüße", "utf-8", "8bit", "Grüße", "Grüße", "Grüße"},
		{"raw Latin-1 header, no charset", "Gr\xfc\xdfe", "", "8bit", "Gr\xfc\xdfe", "Grüße", "Grüße"},
		{"us-ascii label on 8-bit text", "x", "us-ascii", "8bit", "na\xefve", "x", "naïve"},
		{"unknown charset: readable as is", "=?x-unknown?q?abc?=", "x-unknown-charset", "7bit", "plain ascii", "=?x-unknown?q?abc?=", "plain ascii"},
	}
	for _, tt := range tests {
		ct := "text/plain"
		if tt.charset != "" {
			ct += "; charset=" + tt.charset
		}
		raw := "From: a@example.com\r\nSubject: " + tt.subjectRaw + "\r\nContent-Type: " + ct +
			"\r\nContent-Transfer-Encoding: " + tt.cte + "\r\nMIME-Version: 1.0\r\n\r\n" + tt.body + "\r\n"
		m, err := Parse(strings.NewReader(raw), ParseOptions{})
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if m.Subject != tt.subject {
			t.Errorf("%s: Subject = %q, want %q", tt.name, m.Subject, tt.subject)
		}
		if m.Text != tt.text {
			t.Errorf("%s: Text = %q, want %q", tt.name, m.Text, tt.text)
		}
	}
}

func TestEncodedNames(t *testing.T) {
	raw := "From: =?iso-8859-1?q?Andr=E9?= <andre@example.fr>\r\n" +
		"To: =?utf-8?b?5bGx55Sw?= <yamada@example.jp>, \"Plain, Name\" <p@example.com>, bare@example.com\r\n" +
		"Cc: =?windows-1251?b?yOLg7Q==?= <ivan@example.ru>\r\n" +
		"Reply-To: list <list@example.org>\r\n\r\nx\r\n"
	m, err := Parse(strings.NewReader(raw), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "From", m.From, Address{Name: "André", Addr: "andre@example.fr"})
	eq(t, "To", m.To, []Address{{Name: "山田", Addr: "yamada@example.jp"}, {Name: "Plain, Name", Addr: "p@example.com"}, {Addr: "bare@example.com"}})
	eq(t, "Cc", m.Cc, []Address{{Name: "Иван", Addr: "ivan@example.ru"}})
	eq(t, "ReplyTo", m.ReplyTo, []Address{{Name: "list", Addr: "list@example.org"}})
}
