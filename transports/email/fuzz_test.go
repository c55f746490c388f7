package email

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzInboundHeaders feeds raw mail headers to what the listener reads
// itself (From, Authentication-Results, List-Post): no panic, and what
// comes out is an address without CR/LF or nothing.
func FuzzInboundHeaders(f *testing.F) {
	f.Add("From: Bob <bob@example.com>\r\nAuthentication-Results: mx.localhost; dmarc=fail header.from=example.com\r\n\r\nbody")
	f.Add("From: =?utf-8?q?B=C3=B6b?= <bob@example.com>\nList-Post: <mailto:list@example.org>\n\n")
	f.Add("Authentication-Results: mx.localhost;\r\n dkim=fail; spf=fail smtp.mailfrom=x@y\r\n\r\n")
	f.Add("From: \"a\r\nBcc: x@y\" <a@b.c>\r\n\r\n")
	f.Add("From: a@example.net\r\nList-Id: Talk <talk.lists.example.org>\r\nList-Post: <mailto:talk@lists.example.org>,\r\n <mailto:x@y>\r\n\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		if a := headerFrom([]byte(raw)); strings.ContainsAny(a, "\r\n\x00") {
			t.Fatalf("headerFrom returned %q", a)
		}
		if from, list := senderAddrs([]byte(raw)); strings.ContainsAny(from+list, "\r\n\x00<> ") {
			t.Fatalf("senderAddrs returned %q, %q", from, list)
		}
		v := verdictFromAR(headerBlock([]byte(raw)), "mx.localhost")
		if v.result != "" && v.result != "fail" {
			t.Fatalf("verdict %q", v.result)
		}
		for _, h := range headerValues([]byte(raw), "list-post") {
			if a := listPostAddress(h); strings.ContainsAny(a, "\r\n\x00<> ") {
				t.Fatalf("listPostAddress returned %q", a)
			}
		}
	})
}

// FuzzSpoolPayload: a stored payload that is not what encodeIn wrote is
// refused with an error, never a panic; what encodeIn writes reads back.
func FuzzSpoolPayload(f *testing.F) {
	p, _ := encodeIn(inMeta{From: "a@b.c", Rcpt: "u@mail.localhost", User: "u@localhost"}, []byte("Subject: x\r\n\r\nhi"))
	f.Add(string(p))
	f.Add("{}\n")
	f.Add("not json\nraw")
	f.Fuzz(func(t *testing.T, s string) {
		m, raw, err := decodeIn([]byte(s))
		if err != nil {
			return
		}
		again, err := encodeIn(m, raw)
		if err != nil {
			t.Fatal(err)
		}
		m2, raw2, err := decodeIn(again)
		if err != nil || m2 != m || string(raw2) != string(raw) {
			t.Fatalf("round trip changed the payload: %v", err)
		}
	})
}

// FuzzOutgoingSubject: whatever an XMPP client puts in a subject, the
// subject the gateway hands to Build is one line of valid UTF-8.
func FuzzOutgoingSubject(f *testing.F) {
	f.Add("Hello\r\nBcc: x@y")
	f.Add("\x00\x7f\u2028")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		o := oneLine(s)
		if strings.ContainsAny(o, "\r\n\x00") {
			t.Fatalf("oneLine(%q) = %q", s, o)
		}
		if fl := firstLine(s, 60); strings.ContainsAny(fl, "\r\n") || !utf8.ValidString(fl) {
			t.Fatalf("firstLine(%q) = %q", s, fl)
		}
	})
}
