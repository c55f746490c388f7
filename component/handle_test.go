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
	"switchboard/store"
)

const user = "alice@example.org/phone"

func TestMalformedStanzas(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	tests := []struct {
		name, in string
		want     string // exact answer, "" for none
	}{{
		name: "unparseable from: echoed back escaped",
		in:   `<message from='a@b@c&apos;&lt;x' to='bob%libera@irc.localhost' id='m1'><body>x</body></message>`,
		want: `<message type='error' id='m1' from='bob%libera@irc.localhost' to='a@b@c&apos;&lt;x'><error type='modify'><jid-malformed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>The sender address "a@b@c'&lt;x" is not a valid JID.</text></error></message>`,
	}, {
		name: "unparseable to: answered from the domain",
		in:   `<iq type='get' id='i1' from='` + user + `' to='@@irc.localhost'><ping xmlns='urn:xmpp:ping'/></iq>`,
		want: `<iq type='error' id='i1' from='irc.localhost' to='` + user + `'><error type='modify'><jid-malformed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>The address "@@irc.localhost" is not a valid JID.</text></error></iq>`,
	}, {
		name: "error stanzas are never answered",
		in:   `<message type='error' from='a@b@c' to='@@' id='e1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
	}, {
		name: "iq result to the gateway is ignored",
		in:   `<iq type='result' id='x' from='` + user + `' to='irc.localhost'/>`,
	}, {
		name: "no from: dropped",
		in:   `<message to='irc.localhost'><body>x</body></message>`,
	}, {
		name: "bad iq type",
		in:   `<iq type='fetch' id='i2' from='` + user + `' to='irc.localhost'><ping xmlns='urn:xmpp:ping'/></iq>`,
		want: `<iq type='error' id='i2' from='irc.localhost' to='` + user + `'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>"fetch" is not a valid iq type.</text></error></iq>`,
	}, {
		name: "iq with two children",
		in:   `<iq type='get' id='i3' from='` + user + `' to='irc.localhost'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>`,
		want: `<iq type='error' id='i3' from='irc.localhost' to='` + user + `'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>An IQ get has exactly one child element.</text></error></iq>`,
	}, {
		name: "iq without id",
		in:   `<iq type='get' from='` + user + `' to='irc.localhost'><ping xmlns='urn:xmpp:ping'/></iq>`,
		want: `<iq type='error' from='irc.localhost' to='` + user + `'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>An IQ needs an id.</text></error></iq>`,
	}, {
		name: "bad presence type",
		in:   `<presence type='bogus' id='p1' from='` + user + `' to='irc.localhost'/>`,
		want: `<presence type='error' id='p1' from='irc.localhost' to='` + user + `'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>"bogus" is not a valid presence type.</text></error></presence>`,
	}, {
		name: "another domain",
		in:   `<iq type='get' id='i4' from='` + user + `' to='mail.localhost'><ping xmlns='urn:xmpp:ping'/></iq>`,
		want: `<iq type='error' id='i4' from='irc.localhost' to='` + user + `'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>This gateway serves irc.localhost only.</text></error></iq>`,
	}, {
		name: "address the codec refuses",
		in:   `<message type='chat' id='m2' from='` + user + `' to='justanick@irc.localhost'><body>hi</body></message>`,
		want: `<message type='error' id='m2' from='justanick@irc.localhost' to='` + user + `'><error type='modify'><jid-malformed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>"justanick" names no IRC network: write name%network</text></error></message>`,
	}, {
		name: "malformed history in a join",
		in:   `<presence id='j1' from='` + user + `' to='#chan%libera@irc.localhost/alice'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='many'/></x></presence>`,
		want: `<presence type='error' id='j1' from='#chan%libera@irc.localhost/alice' to='` + user + `'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>The history attribute maxstanzas must be a non-negative integer.</text></error></presence>`,
	}, {
		name: "not a stanza",
		in:   `<handshake/>`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.in(tt.in)
			if tt.want == "" {
				h.none()
				return
			}
			if got := h.out(); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestStreamSurvivesBadStanzas(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	// One stream with bad stanzas between good ones: each is answered in
	// turn and reading goes on.
	stream := `<iq type='get' id='1' from='` + user + `' to='irc.localhost'><ping xmlns='urn:xmpp:ping'/></iq>` +
		`<message from='not a jid@@' to='irc.localhost' id='2'><body>x</body></message>` +
		`<iq type='get' id='3' from='` + user + `' to='irc.localhost'><unknown xmlns='urn:example'/></iq>` +
		"\n  \n" +
		`<presence from='` + user + `' to='#chan%libera@irc.localhost' id='4'/>` +
		`<iq type='get' id='5' from='` + user + `' to='irc.localhost'><ping xmlns='urn:xmpp:ping'/></iq>`
	if err := feed(h.l, stream); err != nil {
		t.Fatalf("stream ended: %v", err)
	}
	want := []struct{ id, typ, cond string }{
		{"1", "result", ""}, {"2", "error", "jid-malformed"}, {"3", "error", "service-unavailable"},
		{"4", "error", "jid-malformed"}, {"5", "result", ""},
	}
	for _, w := range want {
		p := parseOut(t, h.out())[0]
		if p.attr("id") != w.id || p.attr("type") != w.typ || p.errCond() != w.cond {
			t.Errorf("answer %s: got id=%s type=%s cond=%s", w.id, p.attr("id"), p.attr("type"), p.errCond())
		}
	}
	// A stanza too deep is refused, and the stream goes on.
	deep := strings.Repeat("<a>", maxDepth+5) + strings.Repeat("</a>", maxDepth+5)
	h.in(`<message type='chat' id='d' from='` + user + `' to='bob%libera@irc.localhost'><body>x</body>` + deep + `</message>` +
		`<iq type='get' id='after' from='` + user + `' to='irc.localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if p := parseOut(t, h.out())[0]; p.errCond() != "policy-violation" {
		t.Errorf("deep stanza: %s", p.errCond())
	}
	if p := parseOut(t, h.out())[0]; p.attr("id") != "after" || p.attr("type") != "result" {
		t.Errorf("after the deep stanza: %v", p.attr("type"))
	}
	h.noEvent()
}

func TestAccess(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	const stranger = "eve@evil.example/x"
	// disco#info on the domain is answered for everyone.
	h.in(`<iq type='get' id='d1' from='` + stranger + `' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if p := parseOut(t, h.out())[0]; p.attr("type") != "result" || p.find("query/identity") == nil {
		t.Errorf("disco#info for a stranger: %v", p.attr("type"))
	}
	for _, in := range []string{
		`<iq type='get' id='d2' from='` + stranger + `' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`,
		`<iq type='get' id='d3' from='` + stranger + `' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='http://jabber.org/protocol/commands'/></iq>`,
		`<iq type='get' id='d4' from='` + stranger + `' to='irc.localhost'><query xmlns='jabber:iq:register'/></iq>`,
		`<message type='chat' id='d5' from='` + stranger + `' to='bob%libera@irc.localhost'><body>spam</body></message>`,
		`<presence id='d6' from='` + stranger + `' to='#chan%libera@irc.localhost/eve'><x xmlns='http://jabber.org/protocol/muc'/></presence>`,
		`<presence type='subscribe' id='d7' from='` + stranger + `' to='irc.localhost'/>`,
	} {
		h.in(in)
		p := parseOut(t, h.out())[0]
		if p.errCond() != "forbidden" {
			t.Errorf("%s: got %s, want forbidden", in, p.errCond())
		}
	}
	// No answer to unavailable presence; nothing reached the transport.
	h.in(`<presence type='unavailable' from='` + stranger + `' to='irc.localhost'/>`)
	h.none()
	h.noEvent()
}

func TestGatewayIQs(t *testing.T) {
	h := newHarness(t, LinkConfig{Version: "1.2.3"})

	h.in(`<iq type='get' id='1' from='` + user + `' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	want := `<iq type='result' id='1' from='irc.localhost' to='` + user + `'><query xmlns='http://jabber.org/protocol/disco#info'>` +
		`<identity category='gateway' type='irc' name='IRC gateway'/>` +
		`<feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/>` +
		`<feature var='http://jabber.org/protocol/commands'/><feature var='jabber:iq:register'/><feature var='jabber:iq:gateway'/>` +
		`<feature var='urn:xmpp:ping'/><feature var='jabber:iq:version'/><feature var='urn:xmpp:time'/><feature var='jid\20escaping'/></query></iq>`
	if got := h.out(); got != want {
		t.Errorf("disco#info:\n%s\nwant\n%s", got, want)
	}

	h.in(`<iq type='get' id='2' from='` + user + `' to='irc.localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if got, want := h.out(), `<iq type='result' id='2' from='irc.localhost' to='`+user+`'/>`; got != want {
		t.Errorf("ping: %s", got)
	}

	h.in(`<iq type='get' id='3' from='` + user + `' to='irc.localhost'><query xmlns='jabber:iq:version'/></iq>`)
	p := parseOut(t, h.out())[0]
	if p.text("query/name") != "Switchboard" || p.text("query/version") != "1.2.3" || p.text("query/os") == "" {
		t.Errorf("version: %q %q %q", p.text("query/name"), p.text("query/version"), p.text("query/os"))
	}

	h.in(`<iq type='get' id='4' from='` + user + `' to='irc.localhost'><time xmlns='urn:xmpp:time'/></iq>`)
	p = parseOut(t, h.out())[0]
	if p.text("time/utc") != "2024-05-01T12:00:00.000Z" || p.text("time/tzo") == "" {
		t.Errorf("time: %q %q", p.text("time/utc"), p.text("time/tzo"))
	}

	// XEP-0100.
	h.in(`<iq type='get' id='5' from='` + user + `' to='irc.localhost'><query xmlns='jabber:iq:gateway'/></iq>`)
	want = `<iq type='result' id='5' from='irc.localhost' to='` + user + `'><query xmlns='jabber:iq:gateway'>` +
		`<desc>Enter nick%network, e.g. alice%irc.libera.chat</desc><prompt>IRC nick or channel</prompt></query></iq>`
	if got := h.out(); got != want {
		t.Errorf("gateway get:\n%s\nwant\n%s", got, want)
	}
	h.in(`<iq type='set' id='6' from='` + user + `' to='irc.localhost'><query xmlns='jabber:iq:gateway'><prompt> bob%libera </prompt></query></iq>`)
	want = `<iq type='result' id='6' from='irc.localhost' to='` + user + `'><query xmlns='jabber:iq:gateway'><jid>bob%libera@irc.localhost</jid></query></iq>`
	if got := h.out(); got != want {
		t.Errorf("gateway set:\n%s\nwant\n%s", got, want)
	}
	h.in(`<iq type='set' id='7' from='` + user + `' to='irc.localhost'><query xmlns='jabber:iq:gateway'><prompt>nonsense</prompt></query></iq>`)
	if p := parseOut(t, h.out())[0]; p.errCond() != "bad-request" || p.text("error/text") != "type nick%network" {
		t.Errorf("gateway set refused: %s %q", p.errCond(), p.text("error/text"))
	}

	// Unknown payloads.
	h.in(`<iq type='get' id='8' from='` + user + `' to='irc.localhost'><vCard xmlns='vcard-temp'/></iq>`)
	if p := parseOut(t, h.out())[0]; p.errCond() != "service-unavailable" {
		t.Errorf("vcard: %s", p.errCond())
	}
	h.in(`<iq type='set' id='9' from='` + user + `' to='irc.localhost'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	if p := parseOut(t, h.out())[0]; p.errCond() != "service-unavailable" {
		t.Errorf("mam on the domain: %s", p.errCond())
	}
	h.noEvent()
}

func TestRegistration(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	h.in(`<iq type='get' id='r1' from='` + user + `' to='irc.localhost'><query xmlns='jabber:iq:register'/></iq>`)
	want := `<iq type='result' id='r1' from='irc.localhost' to='` + user + `'><query xmlns='jabber:iq:register'>` +
		`<instructions>Choose your IRC nick.</instructions>` +
		`<x xmlns='jabber:x:data' type='form'><title>IRC registration</title><instructions>Choose your IRC nick.</instructions>` +
		`<field var='FORM_TYPE' type='hidden'><value>jabber:iq:register</value></field>` +
		`<field var='nick' type='text-single' label='Nick'><required/><value></value></field>` +
		`<field var='password' type='text-private' label='NickServ password'></field></x></query></iq>`
	if got := h.out(); got != want {
		t.Errorf("register get:\n%s\nwant\n%s", got, want)
	}

	// A submit that fails validation.
	h.in(`<iq type='set' id='r2' from='` + user + `' to='irc.localhost'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>` +
		`<field var='FORM_TYPE'><value>jabber:iq:register</value></field><field var='nick'><value>bad nick</value></field></x></query></iq>`)
	want = `<iq type='error' id='r2' from='irc.localhost' to='` + user + `'><error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
		`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>"bad nick" is not a valid IRC nick.</text></error></iq>`
	if got := h.out(); got != want {
		t.Errorf("register invalid:\n%s\nwant\n%s", got, want)
	}

	// A good submit: result, then the gateway asks for the user's presence.
	h.in(`<iq type='set' id='r3' from='` + user + `' to='irc.localhost'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>` +
		`<field var='nick'><value>alice</value></field><field var='password'><value>s3cret</value></field></x></query></iq>`)
	if got, want := h.out(), `<iq type='result' id='r3' from='irc.localhost' to='`+user+`'/>`; got != want {
		t.Errorf("register: %s", got)
	}
	if got, want := h.out(), `<presence from='irc.localhost' to='alice@example.org' type='subscribe'/>`; got != want {
		t.Errorf("after register: %s", got)
	}
	acct, err := h.st.GetAccount(context.Background(), "alice@example.org", "irc")
	if err != nil || acct.Fields["nick"] != "alice" || acct.Secrets["password"] != "s3cret" {
		t.Fatalf("account: %+v %v", acct, err)
	}

	// Now registered: <registered/> and the current values.
	h.in(`<iq type='get' id='r4' from='` + user + `' to='irc.localhost'><query xmlns='jabber:iq:register'/></iq>`)
	p := parseOut(t, h.out())[0]
	if p.find("query/registered") == nil || !strings.Contains(h.lastValues(p), "alice") {
		t.Errorf("registered form: registered=%v", p.find("query/registered") != nil)
	}

	// Legacy fields (no data form).
	h.in(`<iq type='set' id='r5' from='bob@example.org/x' to='irc.localhost'><query xmlns='jabber:iq:register'><nick>bobby</nick></query></iq>`)
	if p := parseOut(t, h.out())[0]; p.attr("type") != "result" {
		t.Errorf("legacy register: %s", p.errCond())
	}
	h.out() // subscribe
	if a, err := h.st.GetAccount(context.Background(), "bob@example.org", "irc"); err != nil || a.Fields["nick"] != "bobby" {
		t.Errorf("legacy account: %+v %v", a, err)
	}

	// Remove: result, then the subscription ends.
	h.in(`<iq type='set' id='r6' from='` + user + `' to='irc.localhost'><query xmlns='jabber:iq:register'><remove/></query></iq>`)
	if got, want := h.out(), `<iq type='result' id='r6' from='irc.localhost' to='`+user+`'/>`; got != want {
		t.Errorf("remove: %s", got)
	}
	want = `<presence from='irc.localhost' to='alice@example.org' type='unsubscribe'/>` +
		`<presence from='irc.localhost' to='alice@example.org' type='unsubscribed'/>` +
		`<presence from='irc.localhost' to='alice@example.org' type='unavailable'/>`
	if got := h.out(); got != want {
		t.Errorf("after remove:\n%s\nwant\n%s", got, want)
	}
	if _, err := h.st.GetAccount(context.Background(), "alice@example.org", "irc"); err != store.ErrNotFound {
		t.Errorf("account after remove: %v", err)
	}
}

// lastValues joins every <value/> of the form in a register answer.
func (h *harness) lastValues(p *parsed) string {
	var vals []string
	x := p.find("query/x")
	if x == nil {
		return ""
	}
	p.t.children(x, func(f *node) bool {
		p.t.children(f, func(v *node) bool {
			if v.local == "value" {
				vals = append(vals, v.text)
			}
			return true
		})
		return true
	})
	return strings.Join(vals, ",")
}

func TestPresence(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	// Subscription to the domain: subscribed and the domain's presence.
	h.in(`<presence type='subscribe' from='alice@example.org' to='irc.localhost'/>`)
	want := `<presence from='irc.localhost' to='alice@example.org' type='subscribed'/><presence from='irc.localhost' to='alice@example.org'/>`
	if got := h.out(); got != want {
		t.Errorf("subscribe:\n%s\nwant\n%s", got, want)
	}
	h.in(`<presence type='probe' from='bob@example.org' to='irc.localhost'/>`)
	if got, want := h.out(), `<presence from='irc.localhost' to='bob@example.org'/>`; got != want {
		t.Errorf("probe: %s", got)
	}
	h.noEvent()

	// Available presence to the domain goes to the transport.
	h.in(`<presence from='` + user + `' to='irc.localhost'><show>away</show><status>out</status></presence>`)
	if ev, ok := h.event().(bridge.UserPresence); !ok || ev.Show != "away" || ev.Status != "out" || ev.To.Kind != mapping.KindGateway {
		t.Errorf("presence to the domain: %#v", ev)
	}

	// Subscription to a contact: the transport decides.
	h.in(`<presence type='subscribe' from='alice@example.org' to='bob%libera@irc.localhost'/>`)
	if ev, ok := h.event().(bridge.UserPresence); !ok || ev.Type != bridge.Subscribe || ev.To.Name != "bob" {
		t.Errorf("subscribe to a contact: %#v", ev)
	}
	h.none()

	// MUC join with history and password.
	h.in(`<presence id='j' from='` + user + `' to='#chan%libera@irc.localhost/alice'><show>dnd</show>` +
		`<x xmlns='http://jabber.org/protocol/muc'><history maxchars='0' maxstanzas='20' seconds='3600' since='2024-04-30T10:00:00Z'/><password>k3y</password></x></presence>`)
	ev := h.event()
	join, ok := ev.(bridge.JoinRoom)
	if !ok {
		t.Fatalf("join: %#v", ev)
	}
	since := time.Date(2024, 4, 30, 10, 0, 0, 0, time.UTC)
	if !join.MUC || join.ID != "j" || join.Password != "k3y" || join.Show != "dnd" || join.Room.Kind != mapping.KindOccupant || join.Room.Resource != "alice" ||
		join.History == nil || *join.History.MaxChars != 0 || *join.History.MaxStanzas != 20 || *join.History.Seconds != 3600 || !join.History.Since.Equal(since) {
		t.Errorf("join: %+v history %+v", join, join.History)
	}
	// Presence update in the room (no MUC element).
	h.in(`<presence from='` + user + `' to='#chan%libera@irc.localhost/alice'/>`)
	if j, ok := h.event().(bridge.JoinRoom); !ok || j.MUC || j.History != nil {
		t.Errorf("presence update: %#v", j)
	}
	// Leave.
	h.in(`<presence type='unavailable' id='l' from='` + user + `' to='#chan%libera@irc.localhost/alice'><status>bye</status></presence>`)
	if l, ok := h.event().(bridge.LeaveRoom); !ok || l.ID != "l" || l.Room.Kind != mapping.KindRoom || l.Room.Name != "#chan" || l.Status != "bye" {
		t.Errorf("leave: %#v", l)
	}
	// A join without a nick.
	h.in(`<presence id='nn' from='` + user + `' to='#chan%libera@irc.localhost'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	p := parseOut(t, h.out())[0]
	if p.errCond() != "jid-malformed" || p.attr("from") != "#chan%libera@irc.localhost" || p.attr("id") != "nn" {
		t.Errorf("join without nick: %s", p.errCond())
	}
	h.none()
	h.noEvent()
}

func TestRegistrationRequiredRefusal(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	h.tr.regReq = true
	// A transport refusal becomes the error of the same kind, from/to swapped.
	h.in(`<presence id='j' from='` + user + `' to='#chan%libera@irc.localhost/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	want := `<presence type='error' id='j' from='#chan%libera@irc.localhost/alice' to='` + user + `'><error type='auth'><registration-required xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
		`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>Register with irc.localhost first (XEP-0077 in-band registration in your client's service discovery).</text></error></presence>`
	if got := h.out(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	h.in(`<message type='chat' id='m' from='` + user + `' to='bob%libera@irc.localhost'><body>hi</body></message>`)
	if p := parseOut(t, h.out())[0]; p.name() != "message" || p.errCond() != "registration-required" || p.attr("id") != "m" {
		t.Errorf("message refused: %s", p.errCond())
	}
	// No error for unavailable presence.
	h.in(`<presence type='unavailable' from='` + user + `' to='#chan%libera@irc.localhost/alice'/>`)
	h.none()
}

func TestMessageParsing(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	from := jid.MustParse(user)
	tests := []struct {
		name string
		in   string
		want bridge.SendMessage
	}{{
		name: "everything",
		in: `<message type='chat' id='m1' from='` + user + `' to='bob%libera@irc.localhost'>` +
			`<body xml:lang='de'>hallo</body><body>&gt; Bob wrote:` + "\n" + `&gt; héllo` + "\n" + `/me agrees</body>` +
			`<origin-id xmlns='urn:xmpp:sid:0' id='o1'/>` +
			`<replace xmlns='urn:xmpp:message-correct:0' id='m0'/>` +
			`<request xmlns='urn:xmpp:receipts'/>` +
			`<active xmlns='http://jabber.org/protocol/chatstates'/>` +
			`<reply xmlns='urn:xmpp:reply:0' to='bob%libera@irc.localhost' id='s9'/>` +
			`<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='21'/></fallback>` +
			`<x xmlns='jabber:x:oob'><url>https://up.example/f.jpg</url><desc>photo</desc></x>` +
			`</message>`,
		want: bridge.SendMessage{
			From: from, To: contact("bob"), Type: bridge.Chat, ID: "m1", OriginID: "o1",
			Body: "agrees", Action: true, ReplaceID: "m0", ReceiptRequested: true, ChatState: "active",
			Reply:       &bridge.Reply{ID: "s9", To: jid.MustParse("bob%libera@irc.localhost"), Fallback: "> Bob wrote:\n> héllo\n"},
			Attachments: []bridge.Attachment{{URL: "https://up.example/f.jpg", Desc: "photo"}},
		},
	}, {
		name: "groupchat subject",
		in:   `<message type='groupchat' id='s' from='` + user + `' to='#chan%libera@irc.localhost'><subject>new topic</subject></message>`,
		want: bridge.SendMessage{From: from, To: room("#chan"), Type: bridge.Groupchat, ID: "s", Subject: strptr("new topic")},
	}, {
		name: "private message through a room, no type",
		in:   `<message id='p' from='` + user + `' to='#chan%libera@irc.localhost/bob'><body>psst</body></message>`,
		want: bridge.SendMessage{From: from, To: occ("#chan", "bob"), Type: bridge.Normal, ID: "p", Body: "psst"},
	}, {
		name: "chat state only",
		in:   `<message type='chat' from='` + user + `' to='bob%libera@irc.localhost'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		want: bridge.SendMessage{From: from, To: contact("bob"), Type: bridge.Chat, ChatState: "composing"},
	}, {
		name: "fallback offsets out of range are ignored",
		in: `<message type='chat' from='` + user + `' to='bob%libera@irc.localhost'><body>short</body>` +
			`<reply xmlns='urn:xmpp:reply:0' id='x'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='2' end='99'/></fallback></message>`,
		want: bridge.SendMessage{From: from, To: contact("bob"), Type: bridge.Chat, Body: "short", Reply: &bridge.Reply{ID: "x"}},
	}, {
		name: "to a server",
		in:   `<message type='chat' from='` + user + `' to='irc.libera.chat@irc.localhost'><body>/msg NickServ help</body></message>`,
		want: bridge.SendMessage{From: from, To: mapping.Address{Kind: mapping.KindServer, Domain: testDomain, Network: "irc.libera.chat"}, Type: bridge.Chat, Body: "/msg NickServ help"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.in(tt.in)
			got, ok := h.event().(bridge.SendMessage)
			if !ok || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%#v\nwant\n%#v", got, tt.want)
				if got.Reply != nil && tt.want.Reply != nil {
					t.Errorf("reply got %#v want %#v", *got.Reply, *tt.want.Reply)
				}
			}
			h.none()
		})
	}

	// Ignored silently: receipts, markers, empty messages, errors.
	for _, in := range []string{
		`<message from='` + user + `' to='bob%libera@irc.localhost'><received xmlns='urn:xmpp:receipts' id='x'/></message>`,
		`<message from='` + user + `' to='bob%libera@irc.localhost'/>`,
		`<message type='error' from='` + user + `' to='bob%libera@irc.localhost'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
		`<message type='chat' from='` + user + `' to='irc.localhost'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
	} {
		h.in(in)
		h.none()
	}
	h.noEvent()

	// Refused: groupchat to a contact, text to the domain.
	h.in(`<message type='groupchat' id='g' from='` + user + `' to='bob%libera@irc.localhost'><body>x</body></message>`)
	if p := parseOut(t, h.out())[0]; p.errCond() != "bad-request" {
		t.Errorf("groupchat to a contact: %s", p.errCond())
	}
	h.in(`<message type='chat' id='d' from='` + user + `' to='irc.localhost'><body>help</body></message>`)
	if p := parseOut(t, h.out())[0]; p.errCond() != "service-unavailable" {
		t.Errorf("message to the domain: %s", p.errCond())
	}
}

func TestQueries(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	h.tr.answer = func(q bridge.Query) bridge.IQResult {
		res := bridge.IQResult{To: q.From, From: q.To, ID: q.ID}
		switch r := q.Request.(type) {
		case *bridge.DiscoItemsQuery:
			res.Payload = &bridge.DiscoItems{Items: []bridge.DiscoItem{{JID: jid.MustParse("#chan%libera@irc.localhost"), Name: "#chan"}}}
		case *bridge.DiscoInfoQuery:
			res.Payload = &bridge.DiscoInfo{Identities: []bridge.Identity{{Category: "conference", Type: "irc", Name: "#chan"}}}
		case *bridge.ArchiveQuery:
			res.Payload = &bridge.ArchiveResult{QueryID: r.QueryID, Complete: true}
		}
		return res
	}
	// Room list on the domain, with RSM.
	h.in(`<iq type='get' id='q1' from='` + user + `' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='libera'>` +
		`<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>abc</after></set></query></iq>`)
	q := h.event().(bridge.Query)
	dq := q.Request.(*bridge.DiscoItemsQuery)
	if dq.Node != "libera" || dq.Page == nil || *dq.Page.Max != 10 || *dq.Page.After != "abc" || dq.Page.Before != nil || q.ID != "q1" || q.To.Kind != mapping.KindGateway {
		t.Errorf("disco items query: %+v %+v", q, dq.Page)
	}
	want := `<iq type='result' id='q1' from='irc.localhost' to='` + user + `'><query xmlns='http://jabber.org/protocol/disco#items' node='libera'>` +
		`<item jid='#chan%libera@irc.localhost' name='#chan'/></query></iq>`
	if got := h.out(); got != want {
		t.Errorf("items answer:\n%s\nwant\n%s", got, want)
	}

	// disco#info on a room.
	h.in(`<iq type='get' id='q2' from='` + user + `' to='#chan%libera@irc.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if q := h.event().(bridge.Query); q.To.Kind != mapping.KindRoom {
		t.Errorf("info query: %+v", q)
	}
	if p := parseOut(t, h.out())[0]; p.find("query/identity") == nil || p.attr("from") != "#chan%libera@irc.localhost" {
		t.Errorf("info answer: %+v", p.attr("from"))
	}

	// MAM.
	h.in(`<iq type='set' id='q3' from='` + user + `' to='#chan%libera@irc.localhost'><query xmlns='urn:xmpp:mam:2' queryid='f27'>` +
		`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>` +
		`<field var='with'><value>bob</value></field><field var='start'><value>2024-04-01T00:00:00Z</value></field>` +
		`<field var='end'><value>2024-05-01T00:00:00Z</value></field></x>` +
		`<set xmlns='http://jabber.org/protocol/rsm'><max>50</max><before/></set></query></iq>`)
	q = h.event().(bridge.Query)
	aq := q.Request.(*bridge.ArchiveQuery)
	if aq.QueryID != "f27" || aq.With != "bob" || aq.Start != "2024-04-01T00:00:00Z" || aq.End != "2024-05-01T00:00:00Z" ||
		aq.Page == nil || *aq.Page.Max != 50 || aq.Page.Before == nil || *aq.Page.Before != "" {
		t.Errorf("archive query: %+v %+v", aq, aq.Page)
	}
	if got := h.out(); !strings.Contains(got, `<fin xmlns='urn:xmpp:mam:2' complete='true'></fin>`) {
		t.Errorf("archive answer: %s", got)
	}
	h.in(`<iq type='set' id='q4' from='` + user + `' to='#chan%libera@irc.localhost'><query xmlns='urn:xmpp:mam:2'>` +
		`<x xmlns='jabber:x:data' type='submit'><field var='start'><value>yesterday</value></field></x></query></iq>`)
	if p := parseOut(t, h.out())[0]; p.errCond() != "bad-request" {
		t.Errorf("bad start: %s", p.errCond())
	}
	h.in(`<iq type='get' id='q5' from='` + user + `' to='#chan%libera@irc.localhost'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	if p := parseOut(t, h.out())[0]; p.find("query/x") == nil {
		t.Errorf("mam form: %v", p.attr("type"))
	}

	// muc#admin kick.
	h.in(`<iq type='set' id='k1' from='` + user + `' to='#chan%libera@irc.localhost'><query xmlns='http://jabber.org/protocol/muc#admin'>` +
		`<item nick='troll' role='none'><reason>spam</reason></item></query></iq>`)
	ra, ok := h.event().(bridge.RoomAdmin)
	if !ok || ra.Nick != "troll" || ra.Role != "none" || ra.Reason != "spam" || ra.IQID != "k1" || ra.Room.Kind != mapping.KindRoom {
		t.Errorf("room admin: %#v", ra)
	}
	h.none()
}

func TestCommands(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	h.tr.commands = []bridge.Command{{
		Node: "join", Name: "Join a channel", On: []mapping.Kind{mapping.KindGateway, mapping.KindServer},
		Run: func(_ context.Context, req *bridge.CommandRequest) (*bridge.CommandResponse, error) {
			switch req.Step {
			case 0:
				return &bridge.CommandResponse{Form: &bridge.Form{Title: "Join", Fields: []bridge.FormField{{Var: "channel", Type: bridge.FieldTextSingle}}}}, nil
			case 1:
				if req.Action == "prev" {
					return nil, bridge.Errorf(bridge.BadRequest, "no")
				}
				req.State["channel"] = req.Values.Get("channel")
				return &bridge.CommandResponse{Form: &bridge.Form{Title: "Confirm", Fields: []bridge.FormField{{Var: "ok", Type: bridge.FieldBoolean}}}}, nil
			default:
				return &bridge.CommandResponse{
					Notes: []bridge.Note{{Type: "info", Text: "Joined " + req.State["channel"]}},
					Result: &bridge.Form{Reported: []bridge.FormField{{Var: "c", Label: "Channel"}},
						Items: [][]bridge.FormField{{{Var: "c", Values: []string{req.State["channel"]}}}}},
				}, nil
			}
		},
	}}
	// The list: built-ins a user may run, then the transport's.
	h.in(`<iq type='get' id='c1' from='` + user + `' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>`)
	want := `<iq type='result' id='c1' from='irc.localhost' to='` + user + `'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'>` +
		`<item jid='irc.localhost' node='status' name='Status: what the gateway knows about me'/>` +
		`<item jid='irc.localhost' node='unregister' name='Unregister: delete my account and data'/>` +
		`<item jid='irc.localhost' node='join' name='Join a channel'/></query></iq>`
	if got := h.out(); got != want {
		t.Errorf("command list:\n%s\nwant\n%s", got, want)
	}
	h.in(`<iq type='get' id='c1b' from='admin@example.org/x' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>`)
	if got := h.out(); !strings.Contains(got, "node='users'") {
		t.Errorf("admin command list lacks admin commands: %s", got)
	}
	h.in(`<iq type='get' id='c1c' from='` + user + `' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='join'/></iq>`)
	if got := h.out(); !strings.Contains(got, "type='command-node' name='Join a channel'") {
		t.Errorf("command node info: %s", got)
	}

	// A one-step command that needs the session.
	h.in(`<iq type='set' id='c2' from='` + user + `' to='irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='status' action='execute'/></iq>`)
	p := parseOut(t, h.out())[0]
	cmd := p.find("command")
	if cmd == nil || cmd.attrValue("status") != "completed" || !strings.Contains(p.text("command/note"), "fake session") {
		t.Errorf("status command: %v %q", cmd, p.text("command/note"))
	}

	// A non-admin running an admin node.
	h.in(`<iq type='set' id='c3' from='` + user + `' to='irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='users'/></iq>`)
	if p := parseOut(t, h.out())[0]; p.errCond() != "forbidden" {
		t.Errorf("admin node: %s", p.errCond())
	}
	h.in(`<iq type='set' id='c3b' from='admin@example.org/x' to='irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='users'/></iq>`)
	if p := parseOut(t, h.out())[0]; p.find("command/x/reported") == nil {
		t.Errorf("admin users command has no table")
	}

	// Multi-step with a session.
	h.in(`<iq type='set' id='c4' from='` + user + `' to='irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='join' action='execute'/></iq>`)
	p = parseOut(t, h.out())[0]
	cmd = p.find("command")
	sid := cmd.attrValue("sessionid")
	if cmd.attrValue("status") != "executing" || sid == "" || p.find("command/actions/next") == nil || p.find("command/actions/prev") != nil || p.text("command/x/title") != "Join" {
		t.Fatalf("step 0: status=%s sid=%s", cmd.attrValue("status"), sid)
	}
	// Someone else cannot continue it.
	h.in(`<iq type='set' id='c5' from='bob@example.org/x' to='irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='join' sessionid='` + sid + `'/></iq>`)
	if p := parseOut(t, h.out())[0]; p.errCond() != "bad-request" || p.find("error/bad-sessionid") == nil {
		t.Errorf("foreign session: %s", p.errCond())
	}
	h.in(`<iq type='set' id='c6' from='` + user + `' to='irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='join' sessionid='` + sid + `' action='next'>` +
		`<x xmlns='jabber:x:data' type='submit'><field var='channel'><value>#go</value></field></x></command></iq>`)
	p = parseOut(t, h.out())[0]
	if p.find("command").attrValue("status") != "executing" || p.find("command/actions/prev") == nil || p.text("command/x/title") != "Confirm" {
		t.Fatalf("step 1: %v", p.find("command").attrValue("status"))
	}
	h.in(`<iq type='set' id='c7' from='` + user + `' to='irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='join' sessionid='` + sid + `' action='complete'>` +
		`<x xmlns='jabber:x:data' type='submit'><field var='ok'><value>1</value></field></x></command></iq>`)
	got := h.out()
	want = `<iq type='result' id='c7' from='irc.localhost' to='` + user + `'><command xmlns='http://jabber.org/protocol/commands' node='join' sessionid='` + sid + `' status='completed'>` +
		`<note type='info'>Joined #go</note><x xmlns='jabber:x:data' type='result'><reported><field var='c' label='Channel'></field></reported>` +
		`<item><field var='c'><value>#go</value></field></item></x></command></iq>`
	if got != want {
		t.Errorf("completion:\n%s\nwant\n%s", got, want)
	}
	// The session is gone.
	h.in(`<iq type='set' id='c8' from='` + user + `' to='irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='join' sessionid='` + sid + `'/></iq>`)
	if p := parseOut(t, h.out())[0]; p.find("error/bad-sessionid") == nil {
		t.Errorf("completed session reused: %s", p.errCond())
	}

	// Cancel.
	h.in(`<iq type='set' id='c9' from='` + user + `' to='irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='join'/></iq>`)
	sid = parseOut(t, h.out())[0].find("command").attrValue("sessionid")
	h.in(`<iq type='set' id='c10' from='` + user + `' to='irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='join' sessionid='` + sid + `' action='cancel'/></iq>`)
	if got, want := h.out(), `<iq type='result' id='c10' from='irc.localhost' to='`+user+`'><command xmlns='http://jabber.org/protocol/commands' node='join' sessionid='`+sid+`' status='canceled'/></iq>`; got != want {
		t.Errorf("cancel: %s", got)
	}

	// Expiry.
	h.in(`<iq type='set' id='c11' from='` + user + `' to='irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='join'/></iq>`)
	sid = parseOut(t, h.out())[0].find("command").attrValue("sessionid")
	h.l.now = func() time.Time { return fixedNow.Add(time.Hour) }
	h.in(`<iq type='set' id='c12' from='` + user + `' to='irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='join' sessionid='` + sid + `'/></iq>`)
	if p := parseOut(t, h.out())[0]; p.errCond() != "not-allowed" || p.find("error/session-expired") == nil {
		t.Errorf("expired: %s", p.errCond())
	}
	h.l.now = func() time.Time { return fixedNow }

	// Commands on other addresses, and unknown nodes.
	h.in(`<iq type='set' id='c13' from='` + user + `' to='irc.libera.chat@irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='join'/></iq>`)
	if p := parseOut(t, h.out())[0]; p.find("command").attrValue("status") != "executing" || p.attr("from") != "irc.libera.chat@irc.localhost" {
		t.Errorf("command on a server: %s", p.errCond())
	}
	h.in(`<iq type='set' id='c14' from='` + user + `' to='bob%libera@irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='join'/></iq>`)
	if p := parseOut(t, h.out())[0]; p.errCond() != "item-not-found" {
		t.Errorf("command not on contacts: %s", p.errCond())
	}
	h.in(`<iq type='set' id='c15' from='` + user + `' to='irc.localhost'><command xmlns='http://jabber.org/protocol/commands' node='join' action='dance'/></iq>`)
	if p := parseOut(t, h.out())[0]; p.find("error/malformed-action") == nil {
		t.Errorf("bad action: %s", p.errCond())
	}
}
