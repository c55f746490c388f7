package component

import (
	"strings"
	"testing"

	"switchboard/bridge"
	"switchboard/mapping"
)

// ircCodec is the real IRC codec with one network, "libera".
func ircCodec(t testing.TB) mapping.Codec {
	c, err := mapping.NewIRCCodec(testDomain, []mapping.IRCNetwork{{Name: "libera", Host: "irc.libera.chat"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWithIRCCodec runs the paths that meet the codec with the real one.
func TestWithIRCCodec(t *testing.T) {
	h := newHarnessCodec(t, LinkConfig{}, ircCodec(t))

	// XEP-0106 escaped channel in, the same spelling out.
	h.in(`<message type='groupchat' id='g' from='` + user + `' to='\26chan%libera@irc.localhost'><body>hi</body></message>`)
	ev, ok := h.event().(bridge.SendMessage)
	if !ok || ev.To.Kind != mapping.KindRoom || ev.To.Name != "&chan" || ev.To.Network != "libera" {
		t.Fatalf("to an escaped channel: %#v", ev.To)
	}
	got := render(t, h, bridge.Message{To: alice, From: ev.To.Occupant("Bob"), Type: bridge.Groupchat, Body: "hello"})
	if want := `<message type='groupchat' from='\26chan%libera@irc.localhost/Bob' to='alice@example.org/phone'><body>hello</body></message>`; got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	// A network host in the address maps to its alias; a join by that
	// spelling is refused with <gone/> naming the room's address (the
	// gateway answers from that one, which the client would not know).
	h.in(`<presence id='j1' from='` + user + `' to='#go-nuts%irc.libera.chat@irc.localhost/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	if p := parseOut(t, h.out())[0]; p.errCond() != "gone" || !strings.Contains(p.text("error/text"), "#go-nuts%libera@irc.localhost") ||
		p.attr("from") != "#go-nuts%irc.libera.chat@irc.localhost/alice" {
		t.Errorf("join by the host: %s from %s: %q", p.errCond(), p.attr("from"), p.text("error/text"))
	}
	h.in(`<presence from='` + user + `' to='#go-nuts%libera@irc.localhost/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	if j, ok := h.event().(bridge.JoinRoom); !ok || j.Room.Network != "libera" || j.Room.Name != "#go-nuts" || j.Room.Resource != "alice" {
		t.Errorf("join: %#v", j.Room)
	}

	// XEP-0100 with the real prompt and translation.
	h.in(`<iq type='set' id='t' from='` + user + `' to='irc.localhost'><query xmlns='jabber:iq:gateway'><prompt>#go-nuts</prompt></query></iq>`)
	if p := parseOut(t, h.out())[0]; p.text("query/jid") != "#go-nuts%libera@irc.localhost" {
		t.Errorf("gateway translation: %q %s", p.text("query/jid"), p.errCond())
	}

	// An unknown network is refused with the codec's condition and text.
	h.in(`<message type='chat' id='u' from='` + user + `' to='bob%efnet@irc.localhost'><body>hi</body></message>`)
	p := parseOut(t, h.out())[0]
	if p.errCond() == "" || p.text("error/text") == "" || p.attr("id") != "u" {
		t.Errorf("unknown network: %s %q", p.errCond(), p.text("error/text"))
	}
	h.noEvent()
}
