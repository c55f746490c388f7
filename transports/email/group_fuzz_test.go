package email

import (
	"bytes"
	"strings"
	"testing"

	"switchboard/bridge"
	"switchboard/store/memstore"
	"switchboard/transports/email/mailmsg"
)

// FuzzMulticastAddress: a XEP-0033 address (type, uri, desc) from a
// client becomes a recipient or a clear error, never a panic; what is
// accepted builds a mail whose header carries no injected field and no
// Bcc, and the Bcc address appears nowhere in the header.
func FuzzMulticastAddress(f *testing.F) {
	f.Add("to", "mailto:bob@example.test", "Bob")
	f.Add("cc", "mailto:carol@example.test?subject=x", "Carol\r\nBcc: dave@example.test")
	f.Add("bcc", "mailto:dave@example.test", "")
	f.Add("to", "mailto:a\r\nBcc: x@y.z", "")
	f.Add("TO", "MAILTO:\"quoted\"@example.test", "=?utf-8?q?x?=")
	tr, err := New(testConfig(), memstore.New(), nil, quietLog())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, typ, uri, desc string) {
		in := []bridge.ExtAddress{{Type: "to", URI: "mailto:first@example.test"}, {Type: typ, URI: uri, Desc: desc},
			{Type: "bcc", URI: "mailto:hidden-bcc@example.test"}}
		r, err := tr.multicastRecipients(in)
		if err != nil {
			if se := bridge.AsStanzaError(err); se == nil || se.Text == "" {
				t.Fatalf("error without a sentence: %v", err)
			}
			return
		}
		raw, _, err := mailmsg.Build(mailmsg.Outgoing{From: mailmsg.Address{Addr: "alice@mail.localhost"}, To: r.To, Cc: r.Cc, Subject: "s", Text: "x"})
		if err != nil {
			return // refused with a *HeaderError or *AddressError
		}
		hdr := raw
		if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
			hdr = raw[:i]
		}
		fields := map[string]int{}
		for _, line := range strings.Split(string(hdr), "\r\n") {
			if line == "" || line[0] == ' ' || line[0] == '\t' {
				continue
			}
			k, _, _ := strings.Cut(line, ":")
			fields[strings.ToLower(k)]++
		}
		for k, n := range fields {
			switch k {
			case "date", "from", "to", "cc", "subject", "message-id", "mime-version", "content-type", "content-transfer-encoding":
				if n != 1 {
					t.Fatalf("%d %s fields:\n%s", n, k, hdr)
				}
			default:
				t.Fatalf("unexpected header field %q:\n%s", k, hdr)
			}
		}
		if bytes.Contains(bytes.ToLower(hdr), []byte("hidden-bcc")) {
			t.Fatalf("the Bcc address is in the header:\n%s", hdr)
		}
	})
}

// FuzzParticipants: the To and Cc of any mail give a participants line of
// one line (no CR, LF or NUL) and participants that are valid addresses.
func FuzzParticipants(f *testing.F) {
	f.Add("Bob <bob@example.test>", "alice@mail.localhost, Carol <carol@example.test>", "dave@example.test")
	f.Add("bob@example.test", "\"x\r\n y\" <x@example.test>", "=?utf-8?b?Q2Fyb2wNCkJjYzo=?= <c@example.test>")
	f.Add("", "undisclosed-recipients:;", "")
	tr, err := New(testConfig(), memstore.New(), nil, quietLog())
	if err != nil {
		f.Fatal(err)
	}
	acct := hostedAccount()
	f.Fuzz(func(t *testing.T, from, to, cc string) {
		raw := "From: " + from + "\r\nTo: " + to + "\r\nCc: " + cc + "\r\nSubject: s\r\n\r\nbody\r\n"
		m, err := mailmsg.Parse(strings.NewReader(raw), mailmsg.ParseOptions{})
		if err != nil || m == nil {
			return
		}
		ps := tr.others(acct, m, m.From.Addr)
		if line := participantsLine(ps); strings.ContainsAny(line, "\r\n\x00") {
			t.Fatalf("participants line %q", line)
		}
		for _, p := range ps {
			if _, err := mailmsg.ValidateAddress(p.Addr); err != nil || tr.isOwn(acct, p.Addr) {
				t.Fatalf("participant %q (own %v): %v", p.Addr, tr.isOwn(acct, p.Addr), err)
			}
		}
	})
}
