package irc

import (
	"testing"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/tests/testbed"
)

// TestJoinErrorsEchoID: every error answering a join or a nick change
// carries the id of the presence that asked, whether the gateway or the
// IRC server refuses.
func TestJoinErrorsEchoID(t *testing.T) {
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	h := newHarness(t, testConfig(ng.Addr()))
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Join("#inv")
	bob.Send("MODE #inv +i")
	bob.Join("#key")
	bob.Send("MODE #key +k sesame")
	bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "MODE" && m.Params[0] == "#key" }, wait)
	alice := jid.MustParse("alice@localhost/pc")

	joinErr := func(occupant, password, id string) bridge.DeliveryError {
		t.Helper()
		h.dispatch(alice, bridge.JoinRoom{From: alice, Room: h.addr(occupant), MUC: true, Password: password, ID: id})
		e := expectEv(h, func(e bridge.DeliveryError) bool { return e.Kind == "presence" }, wait)
		if e.ID != id || !e.To.Equal(alice) {
			t.Fatalf("error for %s = %+v, want id %q", occupant, e, id)
		}
		return e
	}
	// Refused by the gateway.
	if e := joinErr("#inv%local@irc.localhost/alice", "open sesame", "bad-password"); e.Err.Condition != bridge.NotAcceptable {
		t.Fatalf("error = %+v", e)
	}
	// Refused by the server.
	if e := joinErr("#inv%local@irc.localhost/alice", "", "j1"); e.Err.Condition != bridge.RegistrationRequired {
		t.Fatalf("invite-only: %+v", e.Err)
	}
	if e := joinErr("#key%local@irc.localhost/alice", "", "j2"); e.Err.Condition != bridge.NotAuthorized {
		t.Fatalf("keyed: %+v", e.Err)
	}
	// A nick change refused by the server.
	rj := h.join(alice, "#open%local@irc.localhost/alice")
	h.dispatch(alice, bridge.JoinRoom{From: alice, Room: rj.Room.Occupant("bob"), ID: "n1"})
	if e := expectEv(h, func(e bridge.DeliveryError) bool { return e.Kind == "presence" }, wait); e.ID != "n1" || e.Err.Condition != bridge.Conflict {
		t.Fatalf("nick change refusal = %+v", e)
	}
}
