package component

import (
	"encoding/xml"
	"io"
	"testing"
	"time"

	"switchboard/bridge"
)

var benchMessage = bridge.Message{
	To:       alice,
	From:     occ("#chan", "bob"),
	Type:     bridge.Groupchat,
	ID:       "a1b2c3d4",
	StanzaID: "msgid-0123456789",
	Body:     "a typical IRC line of some sixty characters, give or take",
}

// BenchmarkRenderMessage renders one groupchat message (what Send does on
// the transport's goroutine before queueing).
func BenchmarkRenderMessage(b *testing.B) {
	h := newHarnessCodec(b, LinkConfig{}, ircCodec(b))
	var ev bridge.Outbound = benchMessage
	b.ReportAllocs()
	for b.Loop() {
		var o out
		if err := h.l.render(&o, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSendMessage is Send plus the writer's dequeue.
func BenchmarkSendMessage(b *testing.B) {
	h := newHarnessCodec(b, LinkConfig{}, ircCodec(b))
	b.ReportAllocs()
	for b.Loop() {
		if err := h.l.Send(benchMessage); err != nil {
			b.Fatal(err)
		}
		<-h.l.queue
	}
}

// BenchmarkRenderOccupantPresence renders one occupant joining a room.
func BenchmarkRenderOccupantPresence(b *testing.B) {
	h := newHarnessCodec(b, LinkConfig{}, ircCodec(b))
	var ev bridge.Outbound = bridge.OccupantChanged{To: alice, Room: room("#chan"),
		Occupant: bridge.Occupant{Nick: "bob", Role: "participant", Affiliation: "none"}}
	b.ReportAllocs()
	for b.Loop() {
		var o out
		if err := h.l.render(&o, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// cycleReader repeats a stanza forever.
type cycleReader struct {
	data []byte
	off  int
}

func (c *cycleReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.data[c.off:])
		n += k
		c.off = (c.off + k) % len(c.data)
	}
	return n, nil
}

const benchInbound = `<message type='chat' id='a1b2c3d4' from='alice@example.org/phone' to='bob%libera@irc.localhost'>` +
	`<body>a typical line of some sixty characters typed in a client</body>` +
	`<origin-id xmlns='urn:xmpp:sid:0' id='0f1e2d3c-4b5a-6978'/><request xmlns='urn:xmpp:receipts'/>` +
	`<active xmlns='http://jabber.org/protocol/chatstates'/></message>`

// BenchmarkParseMessage decodes a chat message from the stream into its
// tree, parses its JIDs, checks access, maps the recipient and reads every
// extension: the read loop's work up to gw.Dispatch.
func BenchmarkParseMessage(b *testing.B) {
	h := newHarnessCodec(b, LinkConfig{}, ircCodec(b))
	d := xml.NewDecoder(io.MultiReader(
		&onceReader{s: streamOpen},
		&cycleReader{data: []byte(benchInbound)},
	))
	if _, err := d.Token(); err != nil {
		b.Fatal(err)
	}
	var t tree
	b.SetBytes(int64(len(benchInbound)))
	b.ReportAllocs()
	for b.Loop() {
		if err := readStanza(d, &t); err != nil {
			b.Fatal(err)
		}
		var s stanza
		if !h.l.prepare(&t, &s) {
			b.Fatal("refused")
		}
		if _, ok := parseMessage(&s); !ok {
			b.Fatal("no message")
		}
	}
}

// BenchmarkHandleMessage is the whole read-loop path including the
// dispatch into the real gateway (a user goroutine whose session drops
// the events).
func BenchmarkHandleMessage(b *testing.B) {
	h := newHarnessCodec(b, LinkConfig{}, ircCodec(b))
	h.tr.events = make(chan any) // nobody reads: record drops
	d := xml.NewDecoder(io.MultiReader(
		&onceReader{s: streamOpen},
		&cycleReader{data: []byte(benchInbound)},
	))
	if _, err := d.Token(); err != nil {
		b.Fatal(err)
	}
	var t tree
	b.SetBytes(int64(len(benchInbound)))
	b.ReportAllocs()
	for b.Loop() {
		if err := readStanza(d, &t); err != nil {
			b.Fatal(err)
		}
		h.l.handle(&t)
	}
	b.StopTimer()
	refused := 0
	for {
		select {
		case <-h.l.queue:
			refused++
			continue
		case <-time.After(10 * time.Millisecond):
		}
		break
	}
	b.ReportMetric(float64(refused)/float64(b.N), "refused/op")
}

type onceReader struct {
	s    string
	done bool
}

func (o *onceReader) Read(p []byte) (int, error) {
	if o.done {
		return 0, io.EOF
	}
	o.done = true
	return copy(p, o.s), nil
}
