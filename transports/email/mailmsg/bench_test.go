package mailmsg

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// sampleMail returns a realistic reply of about size bytes: headers, a
// quoted-printable text part with quoted history, and (above 4 KiB) a
// base64 attachment making up the rest.
func sampleMail(size int) []byte {
	var b bytes.Buffer
	b.WriteString("Return-Path: <bob@example.com>\r\nReceived: from mx.example.com (mx.example.com [192.0.2.1])\r\n\tby mail.localhost (Postfix) with ESMTPS id 4AB1C2D3E4\r\n\tfor <alice@mail.localhost>; Sun, 6 Dec 2026 21:00:00 +0000 (UTC)\r\n")
	b.WriteString("From: Bob Example <bob@example.com>\r\nTo: Alice <alice@mail.localhost>\r\nSubject: =?utf-8?q?Re:_Caf=C3=A9_plans?=\r\n")
	b.WriteString("Date: Sun, 6 Dec 2026 21:00:00 +0000\r\nMessage-ID: <reply-2@example.com>\r\nIn-Reply-To: <root-1@mail.localhost>\r\nReferences: <root-1@mail.localhost>\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	b.WriteString("Sounds good, see you at the caf=C3=A9 at noon.\r\n\r\nOn Sat, Dec 5, 2026 at 9:00 AM Alice <alice@mail.localhost> wrote:\r\n")
	for i := 0; b.Len() < min(size, 4096)-90; i++ {
		fmt.Fprintf(&b, "> Line %d of the earlier message, quoted back as mail clients do.\r\n", i)
	}
	b.WriteString("\r\n")
	if size > 4096 {
		b.WriteString("--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		n := (size - b.Len() - 20) * 3 / 4
		enc := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA5, 0x5A, 0x00}, n/3+1)[:n])
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--b1--\r\n")
	return b.Bytes()
}

func benchParse(b *testing.B, size int) {
	raw := sampleMail(size)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := Parse(bytes.NewReader(raw), ParseOptions{})
		if err != nil || m.Text == "" {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse1KiB(b *testing.B)   { benchParse(b, 1024) }
func BenchmarkParse100KiB(b *testing.B) { benchParse(b, 100*1024) }

func BenchmarkBuild(b *testing.B) {
	o := Outgoing{
		From:       Address{Name: "Alice Example", Addr: "alice@mail.localhost"},
		To:         []Address{{Name: "Bob", Addr: "bob@example.com"}},
		Subject:    "Re: Café plans",
		InReplyTo:  "reply-2@example.com",
		References: []string{"root-1@mail.localhost", "reply-2@example.com"},
		Text:       strings.Repeat("A line of a chat message turned into mail, with a café or two.\n", 12),
		Domain:     "mail.localhost",
		Date:       time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC),
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Build(o); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSampleMailSizes(t *testing.T) {
	for _, size := range []int{1024, 100 * 1024} {
		raw := sampleMail(size)
		if len(raw) < size*9/10 || len(raw) > size*11/10 {
			t.Errorf("sampleMail(%d) is %d bytes", size, len(raw))
		}
		m, err := Parse(bytes.NewReader(raw), ParseOptions{})
		if err != nil || m.Text != "Sounds good, see you at the café at noon.\n\n"+strings.SplitN(m.Text, "\n\n", 2)[1] || m.Quoted == "" {
			t.Errorf("sampleMail(%d): %v %q", size, err, m.Text)
		}
	}
}
