package component

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
)

func room(name string) mapping.Address {
	return mapping.Address{Kind: mapping.KindRoom, Domain: testDomain, Name: name, Network: "libera"}
}

func occ(roomName, nick string) mapping.Address { return room(roomName).Occupant(nick) }

func contact(nick string) mapping.Address {
	return mapping.Address{Kind: mapping.KindContact, Domain: testDomain, Name: nick, Network: "libera"}
}

var alice = jid.MustParse("alice@example.org/phone")

func strptr(s string) *string { return &s }

// render renders one event and returns the XML.
func render(t *testing.T, h *harness, ev bridge.Outbound) string {
	t.Helper()
	if err := h.l.Send(ev); err != nil {
		t.Fatalf("Send: %v", err)
	}
	s := h.out()
	parseOut(t, s) // well-formed
	return s
}

func TestRenderMessage(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	h.l.idPrefix = "gen-"
	h.l.idSeq.Store(0)
	tests := []struct {
		name string
		m    bridge.Message
		want string
	}{{
		name: "groupchat with delay and stanza-id",
		m: bridge.Message{To: alice, From: occ("#chan", "bob"), Type: bridge.Groupchat, ID: "m1",
			StanzaID: "s1", Body: "hello", Time: fixedNow.Add(-time.Hour)},
		want: `<message type='groupchat' id='m1' from='#chan%libera@irc.localhost/bob' to='alice@example.org/phone'>` +
			`<body>hello</body>` +
			`<delay xmlns='urn:xmpp:delay' from='#chan%libera@irc.localhost' stamp='2024-05-01T11:00:00.000Z'/>` +
			`<stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='#chan%libera@irc.localhost'/></message>`,
	}, {
		name: "recent time: no delay",
		m:    bridge.Message{To: alice, From: contact("bob"), Type: bridge.Chat, Body: "hi", Time: fixedNow.Add(-time.Second)},
		want: `<message type='chat' from='bob%libera@irc.localhost' to='alice@example.org/phone'><body>hi</body></message>`,
	}, {
		name: "recent time but Delayed",
		m:    bridge.Message{To: alice, From: contact("bob"), Type: bridge.Chat, Body: "hi", Time: fixedNow, Delayed: true},
		want: `<message type='chat' from='bob%libera@irc.localhost' to='alice@example.org/phone'><body>hi</body>` +
			`<delay xmlns='urn:xmpp:delay' stamp='2024-05-01T12:00:00.000Z'/></message>`,
	}, {
		name: "action, origin-id, replace, receipt request, chat state",
		m: bridge.Message{To: alice, From: contact("bob"), Type: bridge.Chat, ID: "m2", OriginID: "o2",
			Body: "waves", Action: true, ReplaceID: "m1", ReceiptRequested: true, ChatState: "active", StanzaID: "s2"},
		want: `<message type='chat' id='m2' from='bob%libera@irc.localhost' to='alice@example.org/phone'>` +
			`<body>/me waves</body>` +
			`<stanza-id xmlns='urn:xmpp:sid:0' id='s2' by='irc.localhost'/>` +
			`<origin-id xmlns='urn:xmpp:sid:0' id='o2'/>` +
			`<replace xmlns='urn:xmpp:message-correct:0' id='m1'/>` +
			`<request xmlns='urn:xmpp:receipts'/>` +
			`<active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
	}, {
		name: "receipt request without id gets one",
		m:    bridge.Message{To: alice, From: contact("bob"), Type: bridge.Chat, Body: "x", ReceiptRequested: true},
		want: `<message type='chat' id='gen-1' from='bob%libera@irc.localhost' to='alice@example.org/phone'>` +
			`<body>x</body><request xmlns='urn:xmpp:receipts'/></message>`,
	}, {
		name: "reply with fallback",
		m: bridge.Message{To: alice, From: occ("#chan", "bob"), Type: bridge.Groupchat, Body: "yes",
			Reply: &bridge.Reply{ID: "s0", To: jid.MustParse("#chan%libera@irc.localhost/carol"), Fallback: "> café?\n"}},
		want: `<message type='groupchat' from='#chan%libera@irc.localhost/bob' to='alice@example.org/phone'>` +
			`<body>&gt; café?` + "\n" + `yes</body>` +
			`<reply xmlns='urn:xmpp:reply:0' id='s0' to='#chan%libera@irc.localhost/carol'/>` +
			`<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='8'/></fallback></message>`,
	}, {
		name: "attachment only: body is the URL",
		m: bridge.Message{To: alice, From: contact("bob"), Type: bridge.Chat,
			Attachments: []bridge.Attachment{{URL: "https://x.example/a.png?a=1&b=2", Desc: "a picture"}}},
		want: `<message type='chat' from='bob%libera@irc.localhost' to='alice@example.org/phone'>` +
			`<body>https://x.example/a.png?a=1&amp;b=2</body>` +
			`<x xmlns='jabber:x:oob'><url>https://x.example/a.png?a=1&amp;b=2</url><desc>a picture</desc></x></message>`,
	}, {
		name: "private message through a room",
		m:    bridge.Message{To: alice, From: occ("#chan", "bob"), Type: bridge.Chat, Body: "psst"},
		want: `<message type='chat' from='#chan%libera@irc.localhost/bob' to='alice@example.org/phone'><body>psst</body>` +
			`<x xmlns='http://jabber.org/protocol/muc#user'/></message>`,
	}, {
		name: "subject, chat state only",
		m:    bridge.Message{To: alice, From: contact("bob"), Type: bridge.Chat, ChatState: "composing"},
		want: `<message type='chat' from='bob%libera@irc.localhost' to='alice@example.org/phone'>` +
			`<composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
	}, {
		name: "IRC control codes and markup are made safe",
		m:    bridge.Message{To: alice, From: contact("bob"), Type: bridge.Chat, Body: "\x02bold\x02 \x0304red\x03 \x01ACTION x\x01 <b>&'\"\x00\x1b\uFFFE\xff ok"},
		want: `<message type='chat' from='bob%libera@irc.localhost' to='alice@example.org/phone'>` +
			`<body>bold 04red ACTION x &lt;b&gt;&amp;'"` + "\uFFFD" + ` ok</body></message>`,
	}, {
		name: "server notice, type defaulted",
		m:    bridge.Message{To: alice, From: mapping.Address{Kind: mapping.KindServer, Domain: testDomain, Network: "irc.libera.chat"}, Body: "*** Notice", Notice: true},
		want: `<message type='chat' from='irc.libera.chat@irc.localhost' to='alice@example.org/phone'><body>*** Notice</body></message>`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := render(t, h, tt.m)
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestRenderRoomJoined(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	h.l.idPrefix = "gen-"
	ev := bridge.RoomJoined{
		To:   alice,
		Room: room("#chan"),
		Self: bridge.Occupant{Nick: "alice_", Role: "participant", Affiliation: "none"},
		Occupants: []bridge.Occupant{
			{Nick: "op", Role: "moderator", Affiliation: "admin", RealJID: "op@irc.libera.chat", Show: "away", Status: "lunch"},
			{Nick: "bob"},
		},
		NickChanged: true,
		Created:     true,
		Subject:     "Welcome <all>",
		SubjectAt:   fixedNow.Add(-24 * time.Hour),
		History: []bridge.Message{
			{From: occ("#chan", "bob"), Body: "earlier", Time: fixedNow.Add(-time.Minute), StanzaID: "h1"},
		},
	}
	got := render(t, h, ev)
	const r = "#chan%libera@irc.localhost"
	want := `<presence from='` + r + `/op' to='alice@example.org/phone'><show>away</show><status>lunch</status>` +
		`<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='admin' role='moderator' jid='op@irc.libera.chat'/></x></presence>` +
		`<presence from='` + r + `/bob' to='alice@example.org/phone'>` +
		`<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>` +
		`<presence from='` + r + `/alice_' to='alice@example.org/phone'>` +
		`<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/>` +
		`<status code='110'/><status code='100'/><status code='201'/><status code='210'/></x></presence>` +
		`<message type='groupchat' from='` + r + `/bob' to='alice@example.org/phone'><body>earlier</body>` +
		`<delay xmlns='urn:xmpp:delay' from='` + r + `' stamp='2024-05-01T11:59:00.000Z'/>` +
		`<stanza-id xmlns='urn:xmpp:sid:0' id='h1' by='` + r + `'/></message>` +
		`<message type='groupchat' id='gen-1' from='` + r + `' to='alice@example.org/phone'><subject>Welcome &lt;all&gt;</subject>` +
		`<delay xmlns='urn:xmpp:delay' from='` + r + `' stamp='2024-04-30T12:00:00.000Z'/></message>`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	// No subject: an empty <subject/> still ends the join (XEP-0045 §7.2.15).
	got = render(t, h, bridge.RoomJoined{To: alice, Room: room("#empty"), Self: bridge.Occupant{Nick: "alice"}})
	if !strings.HasSuffix(got, "<subject/></message>") || strings.Contains(got, "status code='100'") {
		t.Errorf("join without subject: %s", got)
	}
	if n := len(parseOut(t, got)); n != 2 {
		t.Errorf("join without occupants: %d stanzas, want 2", n)
	}
}

func TestRenderOccupantChanged(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	const r = "#chan%libera@irc.localhost"
	const to = "alice@example.org/phone"
	tests := []struct {
		name string
		ev   bridge.OccupantChanged
		want string
	}{{
		name: "join",
		ev:   bridge.OccupantChanged{To: alice, Room: room("#chan"), Occupant: bridge.Occupant{Nick: "bob", Role: "participant", Affiliation: "member"}},
		want: `<presence from='` + r + `/bob' to='` + to + `'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant'/></x></presence>`,
	}, {
		name: "leave with status",
		ev:   bridge.OccupantChanged{To: alice, Room: room("#chan"), Occupant: bridge.Occupant{Nick: "bob", Status: "Quit: bye"}, Gone: true},
		want: `<presence from='` + r + `/bob' to='` + to + `' type='unavailable'><status>Quit: bye</status><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/></x></presence>`,
	}, {
		name: "nick change",
		ev:   bridge.OccupantChanged{To: alice, Room: room("#chan"), Occupant: bridge.Occupant{Nick: "bob", Role: "participant"}, NewNick: "robert"},
		want: `<presence from='` + r + `/bob' to='` + to + `' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none' nick='robert'/><status code='303'/></x></presence>` +
			`<presence from='` + r + `/robert' to='` + to + `'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>`,
	}, {
		name: "own nick change",
		ev:   bridge.OccupantChanged{To: alice, Room: room("#chan"), Occupant: bridge.Occupant{Nick: "alice"}, NewNick: "alice2", Self: true},
		want: `<presence from='` + r + `/alice' to='` + to + `' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none' nick='alice2'/><status code='303'/><status code='110'/></x></presence>` +
			`<presence from='` + r + `/alice2' to='` + to + `'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/><status code='110'/></x></presence>`,
	}, {
		name: "kicked self",
		ev: bridge.OccupantChanged{To: alice, Room: room("#chan"), Occupant: bridge.Occupant{Nick: "alice"}, Self: true,
			Kicked: true, Actor: "op", Reason: "flood & spam"},
		want: `<presence from='` + r + `/alice' to='` + to + `' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'><actor nick='op'/><reason>flood &amp; spam</reason></item><status code='110'/><status code='307'/></x></presence>`,
	}, {
		name: "banned",
		ev:   bridge.OccupantChanged{To: alice, Room: room("#chan"), Occupant: bridge.Occupant{Nick: "troll"}, Banned: true, Actor: "op"},
		want: `<presence from='` + r + `/troll' to='` + to + `' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='outcast' role='none'><actor nick='op'/></item><status code='301'/></x></presence>`,
	}, {
		name: "removed at shutdown",
		ev:   bridge.OccupantChanged{To: alice, Room: room("#chan"), Occupant: bridge.Occupant{Nick: "alice"}, Self: true, Gone: true, Codes: []int{332}},
		want: `<presence from='` + r + `/alice' to='` + to + `' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><status code='110'/><status code='332'/></x></presence>`,
	}, {
		name: "role change",
		ev:   bridge.OccupantChanged{To: alice, Room: room("#chan"), Occupant: bridge.Occupant{Nick: "bob", Role: "moderator", Affiliation: "admin", Show: "dnd"}},
		want: `<presence from='` + r + `/bob' to='` + to + `'><show>dnd</show><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='admin' role='moderator'/></x></presence>`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := render(t, h, tt.ev); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestRenderOthers(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	h.l.idPrefix = "gen-"
	const to = "alice@example.org/phone"
	tests := []struct {
		name string
		ev   bridge.Outbound
		want string
	}{{
		name: "subject by an occupant",
		ev:   bridge.RoomSubject{To: alice, Room: room("#chan"), Subject: "new topic", By: "op", At: fixedNow},
		want: `<message type='groupchat' id='gen-1' from='#chan%libera@irc.localhost/op' to='` + to + `'><subject>new topic</subject></message>`,
	}, {
		name: "contact presence",
		ev:   bridge.ContactPresence{To: alice, From: contact("bob"), Show: "away", Status: "gone fishing"},
		want: `<presence from='bob%libera@irc.localhost' to='` + to + `'><show>away</show><status>gone fishing</status></presence>`,
	}, {
		name: "contact subscribed",
		ev:   bridge.ContactPresence{To: jid.MustParse("alice@example.org"), From: contact("bob"), Type: bridge.Subscribed},
		want: `<presence from='bob%libera@irc.localhost' to='alice@example.org' type='subscribed'/>`,
	}, {
		name: "receipt",
		ev:   bridge.Receipt{To: alice, From: contact("bob"), ID: "m1"},
		want: `<message id='gen-2' from='bob%libera@irc.localhost' to='` + to + `'><received xmlns='urn:xmpp:receipts' id='m1'/></message>`,
	}, {
		name: "delivery error",
		ev: bridge.DeliveryError{To: alice, From: contact("bob"), Kind: "message", ID: "m1",
			Err: bridge.Errorf(bridge.RecipientUnavailable, "bob is not on IRC.")},
		want: `<message type='error' id='m1' from='bob%libera@irc.localhost' to='` + to + `'><error type='wait'>` +
			`<recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>bob is not on IRC.</text></error></message>`,
	}, {
		name: "delivery error with an unknown condition",
		ev: bridge.DeliveryError{To: alice, From: contact("bob"), Kind: "presence", ID: "p1",
			Err: &bridge.StanzaError{Type: "bogus", Condition: "no such<thing>"}},
		want: `<presence type='error' id='p1' from='bob%libera@irc.localhost' to='` + to + `'><error type='cancel'>` +
			`<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := render(t, h, tt.ev); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestRenderIQResult(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	const to = "alice@example.org/phone"
	const r = "#chan%libera@irc.localhost"
	// A pending disco query gets its node echoed.
	h.l.addPending(to+"\x00q1", pendingQuery{node: "networks"})
	tests := []struct {
		name string
		ev   bridge.IQResult
		want string
	}{{
		name: "empty",
		ev:   bridge.IQResult{To: alice, From: room("#chan"), ID: "a1"},
		want: `<iq type='result' id='a1' from='` + r + `' to='` + to + `'/>`,
	}, {
		name: "error",
		ev:   bridge.IQResult{To: alice, From: room("#chan"), ID: "a2", Err: bridge.Errorf(bridge.NotAllowed, "You are not a channel operator.")},
		want: `<iq type='error' id='a2' from='` + r + `' to='` + to + `'><error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>You are not a channel operator.</text></error></iq>`,
	}, {
		name: "disco info with room info form",
		ev: bridge.IQResult{To: alice, From: room("#chan"), ID: "a3", Payload: &bridge.DiscoInfo{
			Identities: []bridge.Identity{{Category: "conference", Type: "irc", Name: "#chan"}},
			Features:   []string{"http://jabber.org/protocol/muc", "muc_open"},
			Form: &bridge.Form{Fields: []bridge.FormField{
				{Var: "FORM_TYPE", Type: bridge.FieldHidden, Values: []string{"http://jabber.org/protocol/muc#roominfo"}},
				{Var: "muc#roominfo_occupants", Values: []string{"42"}},
			}},
		}},
		want: `<iq type='result' id='a3' from='` + r + `' to='` + to + `'><query xmlns='http://jabber.org/protocol/disco#info'>` +
			`<identity category='conference' type='irc' name='#chan'/>` +
			`<feature var='http://jabber.org/protocol/muc'/><feature var='muc_open'/>` +
			`<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#roominfo</value></field>` +
			`<field var='muc#roominfo_occupants'><value>42</value></field></x></query></iq>`,
	}, {
		name: "disco items with node and RSM",
		ev: bridge.IQResult{To: alice, From: mapping.Address{Kind: mapping.KindGateway, Domain: testDomain}, ID: "q1", Payload: &bridge.DiscoItems{
			Items: []bridge.DiscoItem{{JID: jid.MustParse(r), Name: "#chan (42)"}},
			Page:  &bridge.PageResult{First: "a", Last: "b", FirstIndex: 0, Count: 100},
		}},
		want: `<iq type='result' id='q1' from='irc.localhost' to='` + to + `'><query xmlns='http://jabber.org/protocol/disco#items' node='networks'>` +
			`<item jid='` + r + `' name='#chan (42)'/>` +
			`<set xmlns='http://jabber.org/protocol/rsm'><first index='0'>a</first><last>b</last><count>100</count></set></query></iq>`,
	}, {
		name: "archive",
		ev: bridge.IQResult{To: alice, From: room("#chan"), ID: "a4", Payload: &bridge.ArchiveResult{
			QueryID: "qid",
			Messages: []bridge.Message{
				{From: occ("#chan", "bob"), StanzaID: "s1", Body: "one", Time: fixedNow.Add(-2 * time.Hour)},
				{From: occ("#chan", "alice"), StanzaID: "s2", Body: "two", Action: true, Time: fixedNow.Add(-time.Hour), OriginID: "o2"},
			},
			Complete: true,
			Page:     &bridge.PageResult{First: "s1", Last: "s2", Count: -1},
		}},
		want: `<message from='` + r + `' to='` + to + `'><result xmlns='urn:xmpp:mam:2' queryid='qid' id='s1'><forwarded xmlns='urn:xmpp:forward:0'>` +
			`<delay xmlns='urn:xmpp:delay' stamp='2024-05-01T10:00:00.000Z'/>` +
			`<message xmlns='jabber:client' type='groupchat' from='` + r + `/bob'><body>one</body></message></forwarded></result></message>` +
			`<message from='` + r + `' to='` + to + `'><result xmlns='urn:xmpp:mam:2' queryid='qid' id='s2'><forwarded xmlns='urn:xmpp:forward:0'>` +
			`<delay xmlns='urn:xmpp:delay' stamp='2024-05-01T11:00:00.000Z'/>` +
			`<message xmlns='jabber:client' type='groupchat' from='` + r + `/alice'><body>/me two</body><origin-id xmlns='urn:xmpp:sid:0' id='o2'/></message></forwarded></result></message>` +
			`<iq type='result' id='a4' from='` + r + `' to='` + to + `'><fin xmlns='urn:xmpp:mam:2' complete='true'>` +
			`<set xmlns='http://jabber.org/protocol/rsm'><first index='0'>s1</first><last>s2</last></set></fin></iq>`,
	}, {
		name: "unknown payload",
		ev:   bridge.IQResult{To: alice, From: room("#chan"), ID: "a5", Payload: 42},
		want: `<iq type='error' id='a5' from='` + r + `' to='` + to + `'><error type='cancel'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>The gateway could not render the answer.</text></error></iq>`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := render(t, h, tt.ev); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestRenderCodecFailure(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	// A nick PRECIS refuses as a resource cannot be a JID: Send fails
	// rather than queueing something the server would refuse.
	err := h.l.Send(bridge.Message{To: alice, From: occ("#chan", "bad\u0000nick"), Body: "x"})
	if err == nil {
		t.Fatal("Send succeeded for an address with no JID")
	}
	h.none()
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, text, attr, clean string }{
		{"plain", "plain", "plain", "plain"},
		{"\x02bold\x02\x0f", "bold", "bold", "bold"},
		{"\x0312,04colour\x03", "12,04colour", "12,04colour", "12,04colour"},
		{"\x01ACTION dances\x01", "ACTION dances", "ACTION dances", "ACTION dances"},
		{"a<b>&c", "a&lt;b&gt;&amp;c", "a&lt;b&gt;&amp;c", "a<b>&c"},
		{`'"`, `'"`, "&apos;&quot;", `'"`},
		{"tab\tnl\ncr\r", "tab\tnl\ncr&#xD;", "tab&#x9;nl&#xA;cr&#xD;", "tab\tnl\ncr\r"},
		{"bad\xffutf8", "bad\uFFFDutf8", "bad\uFFFDutf8", "bad\uFFFDutf8"},
		{"nonchar\uFFFE\uFFFF end", "nonchar end", "nonchar end", "nonchar end"},
		{"emoji 😀 ok", "emoji 😀 ok", "emoji 😀 ok", "emoji 😀 ok"},
		{"\x00\x1b\x7f", "\x7f", "\x7f", "\x7f"},
	}
	for _, tt := range tests {
		if got := string(appendText(nil, tt.in)); got != tt.text {
			t.Errorf("appendText(%q) = %q, want %q", tt.in, got, tt.text)
		}
		if got := string(appendAttrValue(nil, tt.in)); got != tt.attr {
			t.Errorf("appendAttrValue(%q) = %q, want %q", tt.in, got, tt.attr)
		}
		if got := Sanitize(tt.in); got != tt.clean {
			t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.clean)
		}
	}
}

// TestRenderPointerEvents: a pointer to an event renders as its value; a
// nil pointer renders nothing.
func TestRenderPointerEvents(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	for _, ev := range []bridge.Outbound{
		bridge.Message{To: alice, From: contact("bob"), ID: "p1", Body: "hi"},
		bridge.Receipt{To: alice, From: contact("bob"), ID: "p2"},
		bridge.DeliveryError{To: alice, From: contact("bob"), ID: "p3", Err: bridge.Errorf(bridge.ItemNotFound, "gone")},
	} {
		val, err := h.l.renderItem(ev)
		if err != nil || len(val.b) == 0 {
			t.Fatalf("%T: %v", ev, err)
		}
		var ptr outItem
		switch e := ev.(type) {
		case bridge.Message:
			ptr, err = h.l.renderItem(&e)
		case bridge.Receipt:
			ptr, err = h.l.renderItem(&e)
		case bridge.DeliveryError:
			ptr, err = h.l.renderItem(&e)
		}
		fresh := regexp.MustCompile(`id='sb[0-9a-f]+-[0-9a-z]+'`) // a new id per rendering
		same := func(b []byte) string { return fresh.ReplaceAllString(string(b), "id='fresh'") }
		if err != nil || same(ptr.b) != same(val.b) || ptr.n != val.n {
			t.Errorf("%T: pointer rendered %q, value %q (%v)", ev, ptr.b, val.b, err)
		}
	}
	var nilMsg *bridge.Message
	if it, err := h.l.renderItem(nilMsg); err != nil || len(it.b) != 0 {
		t.Errorf("nil pointer: %q %v", it.b, err)
	}
}
