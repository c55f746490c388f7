package mailmsg

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse: no input panics; what Parse returns is valid UTF-8 without the
// control characters XML cannot carry, within the part cap, and buildable
// again (a parsed subject and text never make Build fail).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\r\n",
		"Subject: =?iso-2022-jp?B?GyRCJDMkcyRLJEEkTxsoQg==?=\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n\r\n\x1b$B$3$s\x1b(B\r\n",
	} {
		f.Add([]byte(s))
	}
	const cap = 4096
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(bytes.NewReader(data), ParseOptions{MaxPartBytes: cap})
		if m == nil {
			if err == nil {
				t.Fatal("nil message and nil error")
			}
			return
		}
		for name, s := range map[string]string{"Text": m.Text, "Quoted": m.Quoted, "Subject": m.Subject, "From.Name": m.From.Name} {
			if !utf8.ValidString(s) {
				t.Fatalf("%s is not UTF-8: %q", name, s)
			}
			if m.HTMLOnly && strings.ContainsAny(s, quoteOpen+quoteClose) {
				t.Fatalf("%s has a blockquote marker: %q", name, s)
			}
			if i := strings.IndexFunc(s, func(r rune) bool { return (r < 0x20 && r != '\t' && r != '\n') || r == 0x7f }); i >= 0 {
				t.Fatalf("%s has a control character: %q", name, s)
			}
		}
		if strings.ContainsAny(m.Subject, "\n") {
			t.Fatalf("Subject has a line break: %q", m.Subject)
		}
		for _, a := range m.Attachments {
			if len(a.Data) > cap {
				t.Fatalf("attachment of %d bytes over the cap %d", len(a.Data), cap)
			}
		}
		for _, mode := range []string{"drop", "keep"} {
			// The other modes only change Text and Quoted: same verdict.
			m2, err2 := Parse(bytes.NewReader(data), ParseOptions{MaxPartBytes: cap, FoldQuotes: mode})
			if (err2 == nil) != (err == nil) && readable(m.Subject) {
				t.Fatalf("mode %s: err %v, fold: %v", mode, err2, err)
			}
			if m2 != nil && m2.Subject != m.Subject {
				t.Fatalf("mode %s changed the subject", mode)
			}
		}
		raw, _, err := Build(Outgoing{
			From: Address{Name: m.From.Name, Addr: "alice@mail.localhost"}, To: []Address{{Addr: "bob@example.com"}},
			Subject: ReplySubject(m.Subject), Text: m.Text, Domain: "mail.localhost",
		})
		if err != nil {
			t.Fatalf("Build of the parsed subject and text: %v", err)
		}
		if _, err := Parse(bytes.NewReader(raw), ParseOptions{}); err != nil && readable(m.Text) {
			t.Fatalf("Parse of the rebuilt message: %v", err)
		}
	})
}

// FuzzBuildHeaders: whatever the caller puts in the header fields, Build
// either refuses it (always when a CR, LF or NUL is in one) or writes a
// well-formed message whose header has exactly the fields set, with the
// values coming back unchanged.
func FuzzBuildHeaders(f *testing.F) {
	f.Add("Hello", "Alice", "bob@example.com", "parent@example.com", "auto-replied", "body")
	f.Add("Ünïcödé — 日本語", "Zoë \"Z\" O'Neil, Jr.", "o'neil+tag@example.co.uk", "<a@b>", "ça", "x\r\ny\rz\n")
	f.Add("x\r\nBcc: victim@example.com", "A\nB", "bob@example.com\r\n", "a@b\x00", "v\r\n", "\x00")
	f.Add(strings.Repeat("w", 2000), strings.Repeat("n", 300), "b@example.com", "id@x", strings.Repeat("v ", 600), "")
	f.Fuzz(func(t *testing.T, subject, name, addr, inReplyTo, hdr, text string) {
		o := Outgoing{
			From: Address{Name: name, Addr: "alice@mail.localhost"}, To: []Address{{Name: name, Addr: addr}},
			Subject: subject, InReplyTo: inReplyTo, Text: text, Domain: "mail.localhost",
			Headers: map[string]string{"Auto-Submitted": hdr},
		}
		raw, id, err := Build(o)
		injected := false
		for _, s := range []string{subject, name, addr, inReplyTo, hdr} {
			if strings.ContainsAny(s, "\r\n\x00") {
				injected = true
			}
		}
		if err != nil {
			return
		}
		if injected {
			t.Fatalf("a CR, LF or NUL in a header field was accepted:\n%q", raw)
		}
		head, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
		if !ok {
			t.Fatal("no end of header")
		}
		var keys []string
		for _, l := range strings.Split(string(head), "\r\n") {
			if len(l) > 998 {
				t.Fatalf("header line of %d octets", len(l))
			}
			if strings.ContainsAny(l, "\r\n\x00") {
				t.Fatalf("bare CR/LF/NUL in %q", l)
			}
			if l == "" || l[0] == ' ' || l[0] == '\t' {
				if strings.TrimSpace(l) == "" {
					t.Fatalf("whitespace-only header line in\n%s", head)
				}
				continue
			}
			k, _, ok := strings.Cut(l, ":")
			if !ok {
				t.Fatalf("header line without a colon: %q", l)
			}
			keys = append(keys, k)
		}
		want := []string{"Date", "From", "To", "Subject", "Message-ID", "In-Reply-To", "Auto-Submitted", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"}
		if strings.TrimSpace(subject) == "" {
			want = append(want[:3], want[4:]...)
		}
		if inReplyTo == "" {
			for i, k := range want {
				if k == "In-Reply-To" {
					want = append(want[:i:i], want[i+1:]...)
					break
				}
			}
		}
		if strings.Join(keys, ",") != strings.Join(want, ",") {
			t.Fatalf("header fields %v, want %v:\n%s", keys, want, head)
		}
		m, err := Parse(bytes.NewReader(raw), ParseOptions{FoldQuotes: "keep"})
		if err != nil && readable(subject+text) {
			t.Fatalf("Parse: %v", err)
		}
		if m == nil {
			return
		}
		if m.MessageID != id {
			t.Fatalf("Message-ID %q, built %q", m.MessageID, id)
		}
		if wantSubj := strings.ToValidUTF8(stripControls(strings.TrimSpace(subject)), "\uFFFD"); m.Subject != wantSubj && utf8.ValidString(subject) {
			t.Fatalf("Subject %q came back as %q", subject, m.Subject)
		}
		if len(m.To) != 1 || !strings.EqualFold(m.To[0].Addr, strings.TrimSpace(addr)) && !strings.Contains(addr, "<") {
			t.Fatalf("To %q came back as %+v", addr, m.To)
		}
	})
}

// FuzzValidateAddress: no panic; an accepted address is within the RFC 5321
// limits, free of control characters, accepted again unchanged, and
// buildable.
func FuzzValidateAddress(f *testing.F) {
	for _, s := range []string{"bob@example.com", "Bob <bob@example.com>", `"a b"@example.com`, "a@[1.2.3.4]",
		"=?utf-8?q?Zo=C3=AB?= <z@example.org>", "bob@example.com\r\nBcc: x@y", "josé@example.es", "a@b@c", "<>", "(c) a@b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ValidateAddress(s)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error carries a line break: %q", err)
			}
			return
		}
		at := strings.LastIndexByte(a.Addr, '@')
		if at <= 0 || at > 64 || len(a.Addr)-at-1 > 255 || len(a.Addr) > 254 {
			t.Fatalf("accepted %q out of limits", a.Addr)
		}
		if strings.IndexFunc(a.Addr+a.Name, isControl) >= 0 {
			t.Fatalf("accepted control characters: %+v", a)
		}
		b, err := ValidateAddress(a.Addr)
		if err != nil || b.Addr != a.Addr {
			t.Fatalf("%q accepted as %q, which then gives %+v, %v", s, a.Addr, b, err)
		}
		if _, _, err := Build(Outgoing{From: a, To: []Address{a}, Domain: "x.example"}); err != nil {
			t.Fatalf("Build with %+v: %v", a, err)
		}
	})
}
