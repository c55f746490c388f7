package mailmsg

import (
	"strings"
	"testing"
)

func TestValidateAddress(t *testing.T) {
	good := []struct{ in, name, addr string }{
		{"bob@example.com", "", "bob@example.com"},
		{"  bob@Example.COM ", "", "bob@example.com"},
		{"Bob Smith <bob@example.com>", "Bob Smith", "bob@example.com"},
		{`"Smith, Bob" <bob.smith+tag@mail.example.co.uk>`, "Smith, Bob", "bob.smith+tag@mail.example.co.uk"},
		{"=?utf-8?q?Zo=C3=AB?= <zoe@example.org>", "Zoë", "zoe@example.org"},
		{"josé@example.es", "", "josé@example.es"},
		{"o'neil!#$%&*+/=?^_`{|}~-@example.com", "", "o'neil!#$%&*+/=?^_`{|}~-@example.com"},
		{"alice@mail.localhost", "", "alice@mail.localhost"},
		{strings.Repeat("a", 64) + "@example.com", "", strings.Repeat("a", 64) + "@example.com"},
	}
	for _, g := range good {
		a, err := ValidateAddress(g.in)
		if err != nil {
			t.Errorf("ValidateAddress(%q): %v", g.in, err)
			continue
		}
		if a.Name != g.name || a.Addr != g.addr {
			t.Errorf("ValidateAddress(%q) = %+v, want {%q %q}", g.in, a, g.name, g.addr)
		}
	}
	long63 := strings.Repeat("d", 63)
	bad := []struct{ in, want string }{
		{"", "cannot be empty"},
		{"bob", `"bob" is not a valid email address: it has no @`},
		{"@example.com", "nothing comes before the @"},
		{"bob@", "nothing comes after the @"},
		{"bob@exa mple.com", `the domain "exa mple.com" is not a valid host name (it contains a space)`},
		{"bob@example..com", "empty label"},
		{"bob@-example.com", "starts or ends with a hyphen"},
		{"bob@example.com.", "ends with a dot"},
		{"bob@127.0.0.1", "all digits"},
		{"bob@[192.0.2.1]", "IP address literal"},
		{"bob@exämple.com", "xn-- form"},
		{".bob@example.com", "starts or ends with a dot"},
		{"bo..b@example.com", "two dots in a row"},
		{`"john doe"@example.com`, "quoted local parts"},
		{`John <"john doe"@example.com>`, "quoted local parts"},
		{"bob smith@example.com", "quoted local parts"},
		{"bo(b@example.com", "cannot be read"},
		{"bob@example.com\r\nBcc: x@example.com", "a carriage return (CR)"},
		{"bob@example.com\nBcc: x@example.com", "a line feed (LF)"},
		{"bob\x00@example.com", "a NUL byte"},
		{"bob\x7f@example.com", "control character U+007F"},
		{"Bob\r\n <bob@example.com>", "carriage return"},
		{"\xff@example.com", "not valid UTF-8"},
		{strings.Repeat("a", 65) + "@example.com", "65 bytes long, more than the 64 allowed"},
		{"a@" + long63 + "." + long63 + "." + long63 + "." + long63 + ".com", "more than the 255 allowed"},
		{strings.Repeat("a", 64) + "@" + long63 + "." + long63 + "." + long63 + ".com", "more than the 254 allowed"},
		{"bob@" + strings.Repeat("x", 64) + ".com", "longer than 63"},
		{"a@b@example.com", "quoted local parts"},
	}
	for _, b := range bad {
		a, err := ValidateAddress(b.in)
		if err == nil {
			t.Errorf("ValidateAddress(%q) = %+v, want an error saying %q", b.in, a, b.want)
			continue
		}
		if !strings.Contains(err.Error(), b.want) {
			t.Errorf("ValidateAddress(%q): %q, want it to say %q", b.in, err, b.want)
		}
	}
}

func TestReplySubject(t *testing.T) {
	for in, want := range map[string]string{
		"Hello":              "Re: Hello",
		"Re: Hello":          "Re: Hello",
		"RE: re: Re:Hello":   "Re: Hello",
		"Re[2]: Hello":       "Re: Hello",
		"AW: Sv: Hello":      "Re: Hello",
		"  Re:  Hello  ":     "Re: Hello",
		"":                   "",
		"Re:":                "",
		"Fwd: Hello":         "Re: Fwd: Hello",
		"Regarding: the bug": "Re: Regarding: the bug",
		"Re：日本語":             "Re: 日本語",
		"Ticket: 42":         "Re: Ticket: 42",
	} {
		if got := ReplySubject(in); got != want {
			t.Errorf("ReplySubject(%q) = %q, want %q", in, got, want)
		}
		if got := ReplySubject(ReplySubject(in)); got != want {
			t.Errorf("ReplySubject twice on %q = %q, want %q", in, got, want)
		}
	}
}

func TestThreadID(t *testing.T) {
	tests := []struct {
		m    Message
		want string
	}{
		{Message{MessageID: "a@x"}, "a@x"},
		{Message{MessageID: "b@x", InReplyTo: "a@x"}, "a@x"},
		{Message{MessageID: "c@x", InReplyTo: "b@x", References: []string{"a@x", "b@x"}}, "a@x"},
		{Message{}, ""},
	}
	for _, tt := range tests {
		if got := ThreadID(&tt.m); got != tt.want {
			t.Errorf("ThreadID(%+v) = %q, want %q", tt.m, got, tt.want)
		}
	}
	if ThreadID(nil) != "" {
		t.Error("ThreadID(nil) is not empty")
	}
}
