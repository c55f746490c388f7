package mailmsg

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBuildRoundTrip(t *testing.T) {
	date := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	long := strings.Repeat("a very long line without any break ", 100) // 3500 bytes
	text := "Héllo Bob,\r\nline two\rline three\nnul:\x00 tab:\t end\n" + long + "\n> not a header\nFrom: not a header either\n.\n"
	o := Outgoing{
		From:       Address{Name: "Zoë Ñandú", Addr: "alice@mail.localhost"},
		To:         []Address{{Name: "Bob, the \"Builder\"", Addr: "bob@example.com"}, {Addr: "carol@example.org"}},
		Cc:         []Address{{Addr: "dan@example.net"}},
		Subject:    "Ünïcödé subject — with an em dash and 日本語 " + strings.Repeat("x", 100),
		InReplyTo:  "<parent@example.com>",
		References: []string{"root@example.com", "<parent@example.com>"},
		Text:       text,
		Attachments: []Part{
			{Filename: "Grüße aus Köln.pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.4\x00\xff binary")},
			{Filename: "logo.png", ContentType: "image/png", ContentID: "logo@mail.localhost", Inline: true, Data: []byte("\x89PNG\r\n\x1a\n")},
			{Filename: "", Data: []byte("no name, no type")},
		},
		Domain:  "mail.localhost",
		Date:    date,
		Headers: map[string]string{"Auto-Submitted": "auto-replied", "X-Switchboard-Note": "ça va"},
	}
	raw, id, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(id, "@mail.localhost") || len(id) < 20 || strings.ContainsAny(id, "<>") {
		t.Errorf("messageID = %q", id)
	}
	checkWellFormed(t, raw)
	for _, want := range []string{
		"Date: Sun, 06 Dec 2026 21:00:00 +0000\r\n",
		"\r\nMessage-ID: <" + id + ">\r\n",
		"\r\nIn-Reply-To: <parent@example.com>\r\n",
		"\r\nReferences: <root@example.com> <parent@example.com>\r\n",
		"filename*=utf-8''Gr%C3%BC%C3%9Fe%20aus%20K%C3%B6ln.pdf",
		"Content-Type: text/plain; charset=utf-8\r\n",
		"Content-Transfer-Encoding: quoted-printable\r\n",
		"Content-Transfer-Encoding: base64",
		"Content-Id: <logo@mail.localhost>",
		"Auto-Submitted: auto-replied\r\n",
		"MIME-Version: 1.0",
		"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_",
	} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("raw lacks %q:\n%s", want, raw)
		}
	}
	hdr, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for _, bad := range []string{"Zoë", "Ünïcödé", "ça", "not a header", "\r\nBcc:"} {
		if bytes.Contains(hdr, []byte(bad)) {
			t.Errorf("the header has %q unencoded:\n%s", bad, hdr)
		}
	}

	m, err := Parse(bytes.NewReader(raw), ParseOptions{FoldQuotes: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "From", m.From, o.From)
	eq(t, "To", m.To, o.To)
	eq(t, "Cc", m.Cc, o.Cc)
	eq(t, "Subject", m.Subject, o.Subject)
	eq(t, "MessageID", m.MessageID, id)
	eq(t, "InReplyTo", m.InReplyTo, "parent@example.com")
	eq(t, "References", m.References, []string{"root@example.com", "parent@example.com"})
	eq(t, "Date", m.Date.UTC(), date)
	eq(t, "AutoSubmitted", m.AutoSubmitted, true)
	// Parse drops the NUL (XML cannot carry it); the rest comes back.
	wantText := strings.TrimRight(strings.NewReplacer("\r\n", "\n", "\r", "\n", "\x00", "").Replace(text), "\n")
	eq(t, "Text", m.Text, wantText)
	if len(m.Attachments) != 3 {
		t.Fatalf("%d attachments: %+v", len(m.Attachments), m.Attachments)
	}
	for i, a := range o.Attachments {
		got := m.Attachments[i]
		wantType := a.ContentType
		if wantType == "" {
			wantType = "application/octet-stream"
		}
		eq(t, "Filename", got.Filename, a.Filename)
		eq(t, "ContentType", got.ContentType, wantType)
		eq(t, "ContentID", got.ContentID, a.ContentID)
		eq(t, "Inline", got.Inline, a.Inline)
		eq(t, "Data", got.Data, a.Data)
	}
	eq(t, "ThreadID", ThreadID(m), "root@example.com")
}

// checkWellFormed asserts CRLF line ends only, no line over 998 octets, no
// NUL, and a header block of well-formed fields.
func checkWellFormed(t *testing.T, raw []byte) {
	t.Helper()
	if bytes.IndexByte(raw, 0) >= 0 {
		t.Error("raw message has a NUL byte")
	}
	lines := bytes.Split(raw, []byte("\r\n"))
	inHeader := true
	for i, l := range lines {
		if bytes.ContainsAny(l, "\r\n") {
			t.Errorf("line %d has a lone CR or LF: %q", i+1, l)
		}
		if len(l) > 998 {
			t.Errorf("line %d is %d octets long", i+1, len(l))
		}
		if inHeader {
			if len(l) == 0 {
				inHeader = false
				continue
			}
			if l[0] != ' ' && l[0] != '\t' && bytes.IndexByte(l, ':') <= 0 {
				t.Errorf("header line %d is not a field: %q", i+1, l)
			}
		}
	}
	if inHeader {
		t.Error("no blank line after the header")
	}
}

func TestBuildMinimal(t *testing.T) {
	raw, id, err := Build(Outgoing{From: Address{Addr: "alice@mail.localhost"}, To: []Address{{Addr: "bob@example.com"}}, Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	checkWellFormed(t, raw)
	// Domain defaults to the From domain; Date to now.
	if !strings.HasSuffix(id, "@mail.localhost") {
		t.Errorf("id = %q", id)
	}
	m, err := Parse(bytes.NewReader(raw), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(m.Date) > time.Minute || m.Text != "hi" || m.Subject != "" || len(m.Attachments) != 0 {
		t.Errorf("parsed %+v", m)
	}
	if bytes.Contains(raw, []byte("multipart")) {
		t.Errorf("a message without attachments is multipart:\n%s", raw)
	}
}

// TestBuildUndisclosed: a mail to Bcc recipients only gets the empty
// group "undisclosed-recipients:;" as its To, which parses as no address;
// without Undisclosed no recipient is still an error (TestBuildErrors).
func TestBuildUndisclosed(t *testing.T) {
	raw, _, err := Build(Outgoing{From: Address{Addr: "alice@mail.localhost"}, Undisclosed: true, Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	checkWellFormed(t, raw)
	if !bytes.Contains(raw, []byte("\r\nTo: undisclosed-recipients:;\r\n")) {
		t.Errorf("no undisclosed-recipients To:\n%s", raw)
	}
	m, err := Parse(bytes.NewReader(raw), ParseOptions{})
	if err != nil || len(m.To) != 0 || m.Text != "hi" {
		t.Errorf("parsed To %+v, text %q, err %v", m.To, m.Text, err)
	}
	// With a Cc, no To is written at all.
	raw, _, err = Build(Outgoing{From: Address{Addr: "alice@mail.localhost"}, Cc: []Address{{Addr: "bob@example.com"}}, Undisclosed: true})
	if err != nil || bytes.Contains(raw, []byte("undisclosed")) {
		t.Errorf("with a Cc: err %v\n%s", err, raw)
	}
}

func TestBuildMessageIDUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		_, id, err := Build(Outgoing{From: Address{Addr: "a@mail.localhost"}, To: []Address{{Addr: "b@example.com"}}, Domain: "mail.localhost"})
		if err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("Message-ID %q generated twice", id)
		}
		seen[id] = true
	}
	_, id, err := Build(Outgoing{From: Address{Addr: "a@mail.localhost"}, To: []Address{{Addr: "b@example.com"}}, MessageID: "<given@x.example>"})
	if err != nil || id != "given@x.example" {
		t.Errorf("given MessageID: %q, %v", id, err)
	}
}

// TestBuildInjection feeds CR, LF and NUL into every header the caller
// controls: each is refused with an error, never written.
func TestBuildInjection(t *testing.T) {
	base := func() Outgoing {
		return Outgoing{From: Address{Name: "Alice", Addr: "alice@mail.localhost"}, To: []Address{{Addr: "bob@example.com"}}, Subject: "s", Text: "t"}
	}
	payloads := []string{"\r\nBcc: victim@example.com", "\nBcc: victim@example.com", "\rBcc: x", "a\x00b", "x\r\n\r\nbody"}
	fields := map[string]func(o *Outgoing, p string){
		"Subject":      func(o *Outgoing, p string) { o.Subject = "hello" + p },
		"From.Name":    func(o *Outgoing, p string) { o.From.Name = "Alice" + p },
		"From.Addr":    func(o *Outgoing, p string) { o.From.Addr = "alice@mail.localhost" + p },
		"To.Name":      func(o *Outgoing, p string) { o.To[0].Name = "Bob" + p },
		"To.Addr":      func(o *Outgoing, p string) { o.To[0].Addr = "bob@example.com" + p },
		"To.AddrFirst": func(o *Outgoing, p string) { o.To[0].Addr = "bob" + p + "@example.com" },
		"InReplyTo":    func(o *Outgoing, p string) { o.InReplyTo = "<a@b>" + p },
		"References":   func(o *Outgoing, p string) { o.References = []string{"a@b", "c@d" + p} },
		"MessageID":    func(o *Outgoing, p string) { o.MessageID = "m@d" + p },
		"Domain":       func(o *Outgoing, p string) { o.Domain = "mail.localhost" + p },
		"Header value": func(o *Outgoing, p string) { o.Headers = map[string]string{"Auto-Submitted": "auto-replied" + p} },
		"Header name":  func(o *Outgoing, p string) { o.Headers = map[string]string{"X-A" + p: "v"} },
		"Filename":     func(o *Outgoing, p string) { o.Attachments = []Part{{Filename: "a.txt" + p, Data: []byte("x")}} },
		"ContentType": func(o *Outgoing, p string) {
			o.Attachments = []Part{{ContentType: "text/plain" + p, Data: []byte("x")}}
		},
		"ContentID":     func(o *Outgoing, p string) { o.Attachments = []Part{{ContentID: "c@d" + p, Data: []byte("x")}} },
		"Cc.Addr":       func(o *Outgoing, p string) { o.Cc = []Address{{Addr: "c@example.com" + p}} },
		"Cc.Name":       func(o *Outgoing, p string) { o.Cc = []Address{{Name: p, Addr: "c@example.com"}} },
		"reserved name": func(o *Outgoing, p string) { o.Headers = map[string]string{"bcc": "victim@example.com"} },
	}
	for name, set := range fields {
		for _, p := range payloads {
			o := base()
			set(&o, p)
			raw, _, err := Build(o)
			if err == nil {
				t.Errorf("%s with %q: accepted:\n%s", name, p, raw)
				continue
			}
			if raw != nil {
				t.Errorf("%s: raw returned with the error", name)
			}
			if strings.ContainsAny(err.Error(), "\r\n\x00") {
				t.Errorf("%s: the error message carries the raw payload: %q", name, err)
			}
		}
	}
	// The body may contain anything: it is never a header.
	o := base()
	o.Text = "line\r\nBcc: victim@example.com\r\n\r\n\x00\rmore"
	raw, _, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	checkWellFormed(t, raw)
	m, err := Parse(bytes.NewReader(raw), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.To) != 1 || m.To[0].Addr != "bob@example.com" || !strings.Contains(m.Text, "Bcc: victim@example.com") {
		t.Errorf("parsed %+v", m)
	}
	hdr, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	if bytes.Contains(bytes.ToLower(hdr), []byte("\nbcc:")) || bytes.Contains(bytes.ToLower(hdr), []byte("victim")) {
		t.Errorf("Bcc in the header:\n%s", hdr)
	}
}

func TestBuildErrors(t *testing.T) {
	ok := func() Outgoing {
		return Outgoing{From: Address{Addr: "alice@mail.localhost"}, To: []Address{{Addr: "bob@example.com"}}}
	}
	tests := []struct {
		name string
		mod  func(o *Outgoing)
		want string
	}{
		{"no recipient", func(o *Outgoing) { o.To = nil }, "at least one recipient"},
		{"bad From", func(o *Outgoing) { o.From.Addr = "alice" }, "has no @"},
		{"bad To", func(o *Outgoing) { o.To[0].Addr = "bob@exa mple.com" }, `the domain "exa mple.com" is not a valid host name`},
		{"bad type", func(o *Outgoing) { o.Attachments = []Part{{ContentType: "no slash"}} }, "not a valid MIME type"},
		{"multipart type", func(o *Outgoing) { o.Attachments = []Part{{ContentType: "multipart/mixed; boundary=x"}} }, "not a valid MIME type"},
		{"bad domain", func(o *Outgoing) { o.Domain = "-x-" }, "not a valid host name"},
		{"bad reference", func(o *Outgoing) { o.References = []string{"a b@c"} }, "contains a space"},
		{"reserved header", func(o *Outgoing) { o.Headers = map[string]string{"Subject": "x"} }, "set by Build"},
		{"header name with colon", func(o *Outgoing) { o.Headers = map[string]string{"X-A:": "x"} }, "cannot contain ':'"},
	}
	for _, tt := range tests {
		o := ok()
		tt.mod(&o)
		_, _, err := Build(o)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to say %q", tt.name, err, tt.want)
		}
		var he *HeaderError
		var ae *AddressError
		if err != nil && !errors.As(err, &he) && !errors.As(err, &ae) {
			t.Errorf("%s: err %T is neither a HeaderError nor an AddressError", tt.name, err)
		}
	}
}
