package component

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
)

// multicastTransport is the fake transport with XEP-0033 multicast.
type multicastTransport struct{ *fakeTransport }

func (multicastTransport) Multicast() bool { return true }

func newMulticastHarness(t *testing.T) *harness {
	h := &harness{
		t:    t,
		st:   newMemStore(),
		auth: &fakeAuth{allowed: map[string]bool{"example.org": true}, admins: map[string]bool{}},
		tr:   newFakeTransport(),
	}
	h.gw = bridge.New(h.st, h.auth, discardLog(), nil)
	h.l = NewLink(LinkConfig{Domain: testDomain, Transport: "irc"}, h.gw, h.tr.codec, discardLog())
	h.l.now = func() time.Time { return fixedNow }
	h.gw.AddTransport(multicastTransport{h.tr}, h.l)
	stop := h.l.startWorkers(context.Background())
	t.Cleanup(func() {
		h.gw.Shutdown()
		stop()
	})
	return h
}

const multicastMsg = `<message type='chat' id='mc' from='` + user + `' to='irc.localhost'><body>to all</body>` +
	`<addresses xmlns='http://jabber.org/protocol/address'>` +
	`<address type='to' jid='bob%libera@irc.localhost' desc='Bob'/>` +
	`<address type='cc' jid='nonetwork@irc.localhost'/>` +
	`<address type='bcc' uri='mailto:x@example.org' delivered='true'/>` +
	`<ignored xmlns='urn:example'/>` +
	`</addresses></message>`

// TestMulticast: a transport that is a bridge.Multicaster advertises
// XEP-0033 on its domain and gets a message to the domain with
// <addresses/> as a SendMessage with every address (the JIDs parsed by
// its codec, or a sentence why not); one that is not answers such a
// message with feature-not-implemented and does not advertise it; a
// message to the domain without addresses is still refused.
func TestMulticast(t *testing.T) {
	h := newMulticastHarness(t)
	h.in(`<iq type='get' id='d' from='` + user + `' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if got := h.out(); !strings.Contains(got, `<feature var='http://jabber.org/protocol/address'/>`) {
		t.Errorf("disco#info of a multicast transport: %s", got)
	}
	h.in(multicastMsg)
	ev, ok := h.event().(bridge.SendMessage)
	if !ok {
		t.Fatal("no SendMessage")
	}
	want := []bridge.ExtAddress{
		{Type: "to", JID: "bob%libera@irc.localhost", Desc: "Bob", Addr: mapping.Address{Kind: mapping.KindContact, Domain: testDomain, Name: "bob", Network: "libera"}},
		{Type: "cc", JID: "nonetwork@irc.localhost", Err: `"nonetwork" names no IRC network: write name%network`},
		{Type: "bcc", URI: "mailto:x@example.org", Delivered: true},
	}
	if ev.To.Kind != mapping.KindGateway || ev.Body != "to all" || !reflect.DeepEqual(ev.Addresses, want) {
		t.Errorf("got %+v\nwant addresses %+v", ev, want)
	}
	h.none()
	h.in(`<message type='chat' id='d' from='` + user + `' to='irc.localhost'><body>help</body></message>`)
	if p := parseOut(t, h.out())[0]; p.errCond() != "service-unavailable" {
		t.Errorf("message to the domain without addresses: %s", p.errCond())
	}
	h.noEvent()

	// Not a multicaster.
	h = newHarness(t, LinkConfig{})
	h.in(multicastMsg)
	out := h.out()
	if p := parseOut(t, out)[0]; p.errCond() != "feature-not-implemented" || !strings.Contains(out, "XEP-0033") {
		t.Errorf("multicast to a transport without it: %s", out)
	}
	h.noEvent()
	h.in(`<iq type='get' id='d' from='` + user + `' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if got := h.out(); strings.Contains(got, "protocol/address") {
		t.Errorf("disco#info of a transport without multicast: %s", got)
	}
}

// TestRenderAddresses: Message.Addresses become XEP-0033 <addresses/>
// with the contacts' JIDs; an address the codec cannot render is left out.
func TestRenderAddresses(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	m := bridge.Message{To: jid.MustParse(user), From: contact("bob"), Type: bridge.Chat, Body: "hi", Addresses: []bridge.ExtAddress{
		{Type: "to", Addr: contact("carol"), Desc: "Carol <x>"},
		{Type: "cc", Addr: contact("dave")},
		{Type: "cc", Addr: mapping.Address{Kind: mapping.KindRoom}},
	}}
	got := render(t, h, m)
	want := `<message type='chat' from='bob%libera@irc.localhost' to='` + user + `'><body>hi</body>` +
		`<addresses xmlns='http://jabber.org/protocol/address'><address type='to' jid='carol%libera@irc.localhost' desc='Carol &lt;x&gt;'/>` +
		`<address type='cc' jid='dave%libera@irc.localhost'/></addresses></message>`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
