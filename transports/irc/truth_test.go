package irc

import (
	"strings"
	"testing"

	"github.com/ergochat/irc-go/ircmsg"

	"switchboard/bridge"
)

func TestQuoteCutsLongInput(t *testing.T) {
	if got := quote("short"); got != `"short"` {
		t.Errorf("quote(short) = %s", got)
	}
	long := strings.Repeat("é", 1000)
	got := quote(long)
	if len(got) > 80 || !strings.HasSuffix(got, "…") {
		t.Errorf("quote(1000 runes) = %s (%d bytes)", got, len(got))
	}
}

func TestBadRune(t *testing.T) {
	for _, s := range []string{"a\tb", "a\u0085b", "a\x00", "a\x7f", "a\u2028b", "a\rb", "a\xffb"} {
		if _, bad := badRune(s); !bad {
			t.Errorf("%q passed", s)
		}
	}
	for _, s := range []string{"Bob Real Name", "Ünïcödé ☃", ""} {
		if r, bad := badRune(s); bad {
			t.Errorf("%q refused (U+%04X)", s, r)
		}
	}
}

func TestNumericText(t *testing.T) {
	for line, want := range map[string]string{
		":srv 311 me bob ~b host * :Bob Real":        "bob is ~b@host (Bob Real)",
		":srv 312 me bob irc.test :Test server":      "bob is connected to irc.test (Test server)",
		":srv 391 me irc.test :Sunday -- 12:00 UTC":  "Time on irc.test: Sunday -- 12:00 UTC",
		":srv 372 me :- hello":                       "- hello",
		":srv 266 me 2 2 :Current global users: 2":   "Current global users: 2",
		":srv 999 me some thing :with trailing text": "some thing with trailing text",
	} {
		m, err := ircmsg.ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		if got := numericText(&m); got != want {
			t.Errorf("%s: got %q, want %q", line, got, want)
		}
	}
}

// TestReflectAfterWrite: without echo-message a room message is reflected
// only once its line was written; a line dropped at shutdown gets an
// error instead.
func TestReflectAfterWrite(t *testing.T) {
	s, n, u := newTestNetwork(t, nil)
	joinRoom(t, s, n, u)
	_ = take[bridge.Message](u)
	s.sendMessage(bridge.SendMessage{From: phone, To: roomAddr("#chan"), Type: bridge.Groupchat, ID: "w1", Body: "queued"})
	if refl := take[bridge.Message](u); len(refl) != 0 {
		t.Fatalf("reflected before the line was written: %+v", refl)
	}
	if got := sent(n); len(got) != 1 {
		t.Fatalf("sent %q", got)
	}
	if refl := take[bridge.Message](u); len(refl) != 1 || refl[0].ID != "w1" {
		t.Fatalf("after the write: %+v", refl)
	}
	s.sendMessage(bridge.SendMessage{From: phone, To: roomAddr("#chan"), Type: bridge.Groupchat, ID: "w2", Body: "never leaves"})
	n.c.abandon()
	s.failWrites(n.unwritten, "recipient-unavailable", "not sent")
	n.unwritten = nil
	if errs := take[bridge.DeliveryError](u); len(errs) != 1 || errs[0].ID != "w2" {
		t.Fatalf("errors = %+v", errs)
	}
	if refl := take[bridge.Message](u); len(refl) != 0 {
		t.Fatalf("a dropped line was reflected: %+v", refl)
	}
}
