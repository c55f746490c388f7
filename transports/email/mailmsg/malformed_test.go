package mailmsg

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestMalformed feeds broken MIME: each degrades to the readable text, with
// an error only when nothing is usable.
func TestMalformed(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		text     string // want Text to contain this ("" = don't check)
		wantErr  bool
		attCount int
	}{
		{"no final boundary",
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello there\r\n",
			"hello there", false, 0},
		{"boundary never appears",
			"Content-Type: multipart/alternative; boundary=nothere\r\n\r\nsome text without parts\r\n",
			"", false, 0},
		{"multipart without boundary",
			"Content-Type: multipart/mixed\r\n\r\ntext of a broken multipart\r\n",
			"text of a broken multipart", false, 0},
		{"broken base64 keeps what decodes",
			"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n!!!not base64!!!\r\n",
			"hello world", false, 0},
		{"broken quoted-printable",
			"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nbad =ZZ escape and =\r\nsoft break\r\n",
			"bad", false, 0},
		{"unknown transfer encoding",
			"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode-ish\r\n\r\nreadable anyway\r\n",
			"readable anyway", false, 0},
		{"garbage content type",
			"Content-Type: ;;;\r\n\r\nbody under a garbage type\r\n",
			"body under a garbage type", false, 0},
		{"content type with a bad parameter",
			"Content-Type: text/plain; charset=\"utf-8; format=flowed\r\n\r\nstill text\r\n",
			"still text", false, 0},
		{"header line without colon",
			"From: a@example.com\r\nthis is not a header\r\nSubject: hi\r\n\r\nbody after a broken header\r\n",
			"body after a broken header", false, 0},
		{"bare LF line ends",
			"From: a@example.com\nSubject: lf\nContent-Type: text/plain\n\nline one\nline two\n",
			"line one\nline two", false, 0},
		{"broken addresses and dates",
			"From: <<<@@@>>>\r\nTo: ,,,\r\nDate: yesterday-ish\r\nMessage-ID: no brackets@here\r\n\r\nok\r\n",
			"ok", false, 0},
		{"empty message", "", "", true, 0},
		{"only a blank line", "\r\n", "", true, 0},
		{"control bytes only", "\x00\x01\x02\x03\x1b\x7f", "", true, 0},
		{"control bytes after a header", "X-A: b\r\n\r\n\x00\x01\r\n\x02", "", true, 0},
		{"attachment only, no text",
			"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=a.bin\r\n\r\nxyz",
			"", false, 1},
		{"deep nesting is cut, not a stack overflow",
			strings.Repeat("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n", 200) + "Content-Type: text/plain\r\n\r\ndeep\r\n",
			"", false, 0},
	}
	for _, tt := range tests {
		m, err := Parse(strings.NewReader(tt.raw), ParseOptions{})
		if tt.wantErr {
			if err == nil || !errors.Is(err, ErrUnreadable) {
				t.Errorf("%s: err = %v, want ErrUnreadable", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !strings.Contains(m.Text, tt.text) {
			t.Errorf("%s: Text = %q, want it to contain %q", tt.name, m.Text, tt.text)
		}
		if len(m.Attachments) != tt.attCount {
			t.Errorf("%s: %d attachments, want %d", tt.name, len(m.Attachments), tt.attCount)
		}
	}
}

func TestMalformedHeaderFields(t *testing.T) {
	raw := "From: <<<@@@>>>, Real Name <real@example.com\r\nTo: bob@example.com (Bob), ,\r\nMessage-ID: no-brackets@here\r\n" +
		"References: <a@x> garbage <b@y>\r\nIn-Reply-To: <p1@x> <p2@x>\r\nList-Post: NO (posting not allowed)\r\n\r\nok\r\n"
	m, err := Parse(strings.NewReader(raw), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "MessageID", m.MessageID, "no-brackets@here")
	eq(t, "References", m.References, []string{"a@x", "b@y"})
	eq(t, "InReplyTo", m.InReplyTo, "p2@x")
	eq(t, "ListPost", m.ListPost, "")
	eq(t, "To", m.To, []Address{{Name: "Bob", Addr: "bob@example.com"}})
	if len(m.Problems) == 0 {
		t.Error("no Problems recorded for the broken From")
	}
}

func TestPartSizeCap(t *testing.T) {
	big := strings.Repeat("A", 4000)
	raw := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("t", 3000) +
		"\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=big.bin\r\n\r\n" + big +
		"\r\n--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=small.png\r\n\r\nsmall\r\n--b--\r\n"
	m, err := Parse(strings.NewReader(raw), ParseOptions{MaxPartBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Text) != 1000 {
		t.Errorf("text is %d bytes, want it cut at 1000", len(m.Text))
	}
	if len(m.Attachments) != 2 {
		t.Fatalf("%d attachments", len(m.Attachments))
	}
	a := m.Attachments[0]
	if !a.Truncated || a.Data != nil || a.Size != 4000 || a.Filename != "big.bin" {
		t.Errorf("big attachment: Truncated %v, %d bytes of data, Size %d", a.Truncated, len(a.Data), a.Size)
	}
	if b := m.Attachments[1]; b.Truncated || string(b.Data) != "small" {
		t.Errorf("small attachment: %+v", b)
	}
	if len(m.Problems) != 2 {
		t.Errorf("Problems = %q, want the cut text and the left-out attachment", m.Problems)
	}
}

func TestNestedMultipart(t *testing.T) {
	// mixed{ alternative{ plain, related{ html, img } }, pdf, rfc822{ mixed{ text, zip } } }
	raw := strings.Join([]string{
		"From: a@example.com",
		"Content-Type: multipart/mixed; boundary=L1",
		"",
		"--L1",
		"Content-Type: multipart/alternative; boundary=L2",
		"",
		"--L2",
		"Content-Type: text/plain; charset=utf-8",
		"",
		"The plain version.",
		"--L2",
		"Content-Type: multipart/related; boundary=L3",
		"",
		"--L3",
		"Content-Type: text/html",
		"",
		"<p>The HTML version.</p><img src=cid:i1>",
		"--L3",
		"Content-Type: image/gif",
		"Content-ID: <i1>",
		"Content-Transfer-Encoding: base64",
		"",
		"R0lGODlhAQABAAAAACw=",
		"--L3--",
		"--L2--",
		"--L1",
		"Content-Type: application/pdf; name=a.pdf",
		"",
		"%PDF",
		"--L1",
		"Content-Type: message/rfc822",
		"",
		"From: inner@example.com",
		"Subject: inner",
		"Content-Type: multipart/mixed; boundary=L4",
		"",
		"--L4",
		"Content-Type: text/plain",
		"",
		"inner text",
		"--L4--",
		"--L1",
		"Content-Type: text/plain; charset=utf-8",
		"Content-Disposition: inline",
		"",
		"-- ",
		"Mailing list footer",
		"--L1--",
		"",
	}, "\r\n")
	m, err := Parse(strings.NewReader(raw), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Text", m.Text, "The plain version.\n\n-- \nMailing list footer")
	var got []string
	for _, a := range m.Attachments {
		got = append(got, a.ContentType+" "+a.Filename+" "+a.ContentID)
		if a.ContentType == "message/rfc822" && !bytes.Contains(a.Data, []byte("inner text")) {
			t.Errorf("rfc822 attachment data = %q", a.Data)
		}
	}
	eq(t, "attachments", got, []string{"image/gif  i1", "application/pdf a.pdf ", "message/rfc822 message.eml "})
	if !m.Attachments[0].Inline || m.Attachments[1].Inline {
		t.Errorf("Inline flags: %+v", m.Attachments)
	}
}

func TestHTMLAlternativeOnly(t *testing.T) {
	raw := "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\r\n--b\r\n" +
		"Content-Type: text/html; charset=iso-8859-1\r\n\r\n<div>Caf\xe9 <a href=\"https://x.example/\">menu</a></div>\r\n--b--\r\n"
	m, err := Parse(strings.NewReader(raw), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Text", m.Text, "Café menu <https://x.example/>")
	eq(t, "HTMLOnly", m.HTMLOnly, true)
}

func TestDSNVariants(t *testing.T) {
	// Exim-style headers-only return, two recipients (the first delivered),
	// a delayed one, and the Original-Message-ID field some MTAs add.
	raw := strings.Join([]string{
		"From: Mail Delivery System <Mailer-Daemon@mx.example.org>",
		"Subject: Warning: message delayed",
		"Content-Type: multipart/report; report-type=delivery-status; boundary=r",
		"",
		"--r",
		"Content-Type: text/plain",
		"",
		"Your message has been delayed.",
		"--r",
		"Content-Type: message/delivery-status",
		"",
		"Reporting-MTA: dns; mx.example.org",
		"Original-Message-ID: <orig-1@mail.localhost>",
		"",
		"Final-Recipient: rfc822;ok@example.net",
		"Action: delivered",
		"Status: 2.0.0",
		"",
		"Final-Recipient: RFC822; slow@example.net",
		"Action: delayed",
		"Status: 4.4.7",
		"Diagnostic-Code: X-Postfix; connect to mx.example.net[192.0.2.1]:25:",
		"    Connection timed out",
		"",
		"--r",
		"Content-Type: text/rfc822-headers",
		"",
		"Message-ID: <other@mail.localhost>",
		"Subject: Hello",
		"",
		"--r--",
		"",
	}, "\r\n")
	m, err := Parse(strings.NewReader(raw), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.DSN == nil {
		t.Fatal("no DSN")
	}
	eq(t, "DSN", *m.DSN, DSN{OriginalMessageID: "orig-1@mail.localhost", Action: "delayed", Status: "4.4.7",
		Diagnostic: "connect to mx.example.net[192.0.2.1]:25: Connection timed out", Recipient: "slow@example.net"})
	eq(t, "Text", m.Text, "Your message has been delayed.")

	// A plain mail that merely mentions delivery status has no DSN.
	m, err = Parse(strings.NewReader("Content-Type: text/plain\r\n\r\nAction: failed\r\n"), ParseOptions{})
	if err != nil || m.DSN != nil {
		t.Errorf("DSN %+v, err %v", m.DSN, err)
	}
}

func TestFlowedAndFilenames(t *testing.T) {
	raw := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8; format=flowed; delsp=no\r\n\r\n" +
		"This is a long paragraph that Thunderbird \r\nwrapped at seventy-two \r\ncolumns.\r\n \r\n From the stuffed line.\r\n" +
		"\r\nOn Mon, Bob wrote:\r\n> quoted and \r\n> flowed\r\n-- \r\nsig\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"../../etc/passwd\"\r\n\r\nx\r\n" +
		"--b\r\nContent-Type: application/octet-stream; name=\"C:\\\\Users\\\\x\\\\report.doc\"\r\n\r\ny\r\n--b--\r\n"
	m, err := Parse(strings.NewReader(raw), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Text", m.Text, "This is a long paragraph that Thunderbird wrapped at seventy-two columns.\n\nFrom the stuffed line.\n\nOn Mon, Bob wrote:\n> quoted and flowed\n\n-- \nsig")
	eq(t, "names", []string{m.Attachments[0].Filename, m.Attachments[1].Filename}, []string{"passwd", "report.doc"})

	if got := unflow("a \nb", true); got != "ab" {
		t.Errorf("delsp=yes: %q", got)
	}
}

// TestReportsThatAreNotDSNs: a read receipt (RFC 8098) and an abuse report
// (RFC 5965) return the original message too, but are no delivery failure.
func TestReportsThatAreNotDSNs(t *testing.T) {
	for _, kind := range []struct{ reportType, part, fields string }{
		{"disposition-notification", "message/disposition-notification", "Reporting-UA: mail.example.com; Thunderbird\r\nOriginal-Message-ID: <sent-1@mail.localhost>\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n"},
		{"feedback-report", "message/feedback-report", "Feedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n"},
	} {
		raw := "From: postmaster@example.com\r\nContent-Type: multipart/report; report-type=" + kind.reportType + "; boundary=r\r\n\r\n" +
			"--r\r\nContent-Type: text/plain\r\n\r\nThe message was displayed.\r\n" +
			"--r\r\nContent-Type: " + kind.part + "\r\n\r\n" + kind.fields + "\r\n" +
			"--r\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <sent-1@mail.localhost>\r\nSubject: Hello\r\n\r\nHello.\r\n--r--\r\n"
		m, err := Parse(strings.NewReader(raw), ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if m.DSN != nil {
			t.Errorf("%s: DSN = %+v, want nil", kind.reportType, *m.DSN)
		}
		if !strings.HasPrefix(m.Text, "The message was displayed.") {
			t.Errorf("%s: Text = %q", kind.reportType, m.Text)
		}
	}
}

// TestBrokenContentTypeParams: mime.ParseMediaType refuses a duplicate or
// broken parameter; the boundary and charset are still used.
func TestBrokenContentTypeParams(t *testing.T) {
	raw := "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=\"b1\"; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=iso-8859-2; charset=iso-8859-2\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nZa=BF=F3=B3=E6 ready\r\n" +
		"--b1\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b1--\r\n"
	m, err := Parse(strings.NewReader(raw), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Windows-1252 (the fallback) would read "Za¿ó³æ".
	eq(t, "Text", m.Text, "Zażółć ready")
	if len(m.Attachments) != 1 || m.Attachments[0].Filename != "r.pdf" || string(m.Attachments[0].Data) != "%PDF" {
		t.Errorf("attachments: %+v", m.Attachments)
	}
}
