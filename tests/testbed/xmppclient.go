package testbed

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// XMPPOptions configures DialXMPPOpts.
type XMPPOptions struct {
	// NoInitialPresence skips the initial <presence/> that DialXMPP sends
	// (without it the server delivers nothing addressed to the bare JID).
	NoInitialPresence bool
	// Timeout bounds connecting and logging in; default 10 s.
	Timeout time.Duration
	// OnStanza, if set, sees every received stanza (on the reading
	// goroutine, so keep it short); returning true consumes it, so Expect
	// never sees it. For load tests that count traffic instead of buffering.
	OnStanza func(Stanza) bool
}

// XMPPClient is a real XMPP client (mellium, c2s, SASL PLAIN without TLS,
// resource binding) for tests. It buffers every received stanza until a
// test takes it with Expect or IQ; stanzas are taken out of order: Expect
// returns the oldest buffered stanza that matches and leaves the others.
//
// Incoming IQ get/set requests are answered service-unavailable by mellium
// unless SetIQResponder supplies an answer.
type XMPPClient struct {
	// JID is the full JID the server bound.
	JID jid.JID

	tb       testing.TB
	conn     net.Conn
	session  *xmpp.Session
	onStanza func(Stanza) bool
	ids      atomic.Uint64

	buf *expectBuffer[Stanza]

	mu        sync.Mutex
	responder func(Stanza) string

	done      chan struct{}
	closeOnce sync.Once
}

// xmppHistory is how many received stanzas a client keeps for failure
// messages.
const xmppHistory = 200

// DialXMPP logs in to the c2s port at c2sAddr as j (bare, or full to ask
// for that resource) with password, sends initial presence and waits until
// the server has processed it. The session is closed in tb.Cleanup.
//
// Prosody from StartProsody offers no TLS; mellium only offers SASL on a
// secure stream, so the client marks the plain TCP stream secure itself.
// That is for loopback tests only.
func DialXMPP(tb testing.TB, c2sAddr string, j jid.JID, password string) *XMPPClient {
	tb.Helper()
	return DialXMPPOpts(tb, c2sAddr, j, password, XMPPOptions{})
}

// DialXMPPOpts is DialXMPP with options.
func DialXMPPOpts(tb testing.TB, c2sAddr string, j jid.JID, password string, opts XMPPOptions) *XMPPClient {
	tb.Helper()
	c, err := dialXMPP(c2sAddr, j, password, opts)
	if err != nil {
		tb.Fatalf("xmpp %s: %v", j, err)
	}
	c.tb = tb
	tb.Cleanup(c.Close)
	go c.serve()
	if !opts.NoInitialPresence {
		c.SendRaw("<presence/>")
		// The server handles one session's stanzas in order: once a ping
		// is answered, the presence has been processed.
		c.IQ(tb, fmt.Sprintf("<iq type='get' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", j.Domain()), opts.timeout())
		c.buf.drop(func(s Stanza) bool {
			return s.Name == "presence" && s.From == c.JID.String() // our own presence, reflected
		})
	}
	return c
}

func (o XMPPOptions) timeout() time.Duration {
	if o.Timeout == 0 {
		return 10 * time.Second
	}
	return o.Timeout
}

func dialXMPP(addr string, j jid.JID, password string, opts XMPPOptions) (*XMPPClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout())
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	// The login is bounded by a deadline on the connection, not by a
	// context given to mellium (see sendCtx).
	_ = conn.SetDeadline(time.Now().Add(opts.timeout()))
	features := []xmpp.StreamFeature{xmpp.SASL("", password, sasl.Plain), bindResource(j.Resourcepart())}
	// xmpp.Secure: mellium negotiates SASL only on a secure stream.
	session, err := xmpp.NewSession(sendCtx, j.Domain(), j, conn, xmpp.Secure,
		xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
			return xmpp.StreamConfig{Features: features}
		}))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("logging in on %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return &XMPPClient{
		JID:      session.LocalAddr(),
		conn:     conn,
		session:  session,
		onStanza: opts.OnStanza,
		buf:      newExpectBuffer[Stanza](xmppHistory),
		done:     make(chan struct{}),
	}, nil
}

// sendCtx is the context given to mellium's NewSession and Send; time
// limits are deadlines set on the connection instead. mellium (v0.22.0)
// watches the context of each call in a goroutine that also waits for the
// call's end; when the caller cancels its context right after the call
// returns, that goroutine may see both at once, pick the context, and set
// the connection's deadline to the past: the next write (or the reading
// goroutine) then fails with "i/o timeout". A context that is never
// cancelled cannot trigger it.
var sendCtx = context.Background()

// send writes one element, bounded by timeout (a write deadline, see
// sendCtx).
func (c *XMPPClient) send(toks []xml.Token, timeout time.Duration) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
	return c.session.Send(sendCtx, &tokenSlice{toks: toks})
}

func (c *XMPPClient) serve() {
	defer close(c.done)
	err := c.session.Serve(xmpp.HandlerFunc(c.handle))
	c.buf.end(err)
}

// handle runs on mellium's reading goroutine. It never returns an error:
// that would close the stream.
func (c *XMPPClient) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	root, err := readTree(start.Copy(), t)
	if err != nil {
		c.buf.note(fmt.Sprintf("<!-- unreadable <%s>: %v -->", start.Name.Local, err))
		return nil
	}
	s := newStanza(root)
	if s.Name == "iq" && (s.Type == "get" || s.Type == "set") {
		c.mu.Lock()
		respond := c.responder
		c.mu.Unlock()
		if respond != nil {
			if resp := respond(s); resp != "" {
				if err := encodeRaw(t, resp); err != nil {
					c.buf.note(fmt.Sprintf("<!-- IQ responder wrote bad XML: %v -->", err))
				}
			}
		}
	}
	c.buf.add(s, s.XML, c.onStanza != nil && c.onStanza(s))
	return nil
}

// SetIQResponder installs f to answer incoming IQ get/set requests: f gets
// the request and returns the raw reply (an <iq type='result'/'error'> with
// the request's id, to its from), or "" to let mellium answer
// service-unavailable. f runs on the reading goroutine: it must not wait
// for other stanzas. The request is buffered for Expect either way.
func (c *XMPPClient) SetIQResponder(f func(req Stanza) (reply string)) {
	c.mu.Lock()
	c.responder = f
	c.mu.Unlock()
}

// rawElements splits raw XML into its top-level elements as token lists,
// failing if it is not well-formed. Namespace declarations are dropped
// (the encoder writes xmlns from each element's resolved namespace).
func rawElements(raw string) ([][]xml.Token, error) {
	d := xml.NewDecoder(strings.NewReader(raw))
	var elems [][]xml.Token
	var cur []xml.Token
	depth := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("raw XML %q: %w", raw, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			t = t.Copy()
			attrs := t.Attr[:0]
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				attrs = append(attrs, a)
			}
			t.Attr = attrs
			depth++
			cur = append(cur, t)
		case xml.EndElement:
			depth--
			cur = append(cur, t)
			if depth == 0 {
				elems = append(elems, cur)
				cur = nil
			}
		case xml.CharData:
			if depth > 0 {
				cur = append(cur, t.Copy())
			}
		}
	}
	if len(elems) == 0 {
		return nil, fmt.Errorf("raw XML %q: no element", raw)
	}
	return elems, nil
}

type tokenSlice struct{ toks []xml.Token }

// Token returns the next token, then io.EOF.
func (s *tokenSlice) Token() (xml.Token, error) {
	if len(s.toks) == 0 {
		return nil, io.EOF
	}
	t := s.toks[0]
	s.toks = s.toks[1:]
	return t, nil
}

func encodeRaw(w xmlstream.TokenWriter, raw string) error {
	elems, err := rawElements(raw)
	if err != nil {
		return err
	}
	for _, e := range elems {
		for _, t := range e {
			if err := w.EncodeToken(t); err != nil {
				return err
			}
		}
	}
	return nil
}

// SendRaw sends raw XML: one or more well-formed stanzas, such as
// `<message to='#a%local@irc.localhost' type='groupchat'><body>hi</body></message>`.
// Elements without a namespace are sent in jabber:client; mellium adds an
// id when there is none. Not well-formed XML fails the test (it would
// only end the stream: Prosody checks the XML before anything else does).
func (c *XMPPClient) SendRaw(raw string) {
	c.tb.Helper()
	elems, err := rawElements(raw)
	if err != nil {
		c.tb.Fatalf("xmpp %s: %v", c.JID, err)
	}
	for _, e := range elems {
		if err := c.send(e, 10*time.Second); err != nil {
			c.tb.Fatalf("xmpp %s: sending %s: %v", c.JID, raw, err)
		}
	}
}

// SendMessage sends a chat message with body (XML-escaped) to to.
func (c *XMPPClient) SendMessage(to, body string) {
	c.tb.Helper()
	c.SendRaw(fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", xmlEscape(to), xmlEscape(body)))
}

// xmlEscape escapes s for XML text and single- or double-quoted attributes.
func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&#39;")
}

// NextID returns a fresh stanza id.
func (c *XMPPClient) NextID() string {
	return fmt.Sprintf("tb%d", c.ids.Add(1))
}

// IQ sends an <iq/> (raw XML, type get or set) with a fresh id replacing
// any id it has, and waits up to timeout for the reply with that id
// (type result or error), which it returns. Do not call it from an
// SetIQResponder function.
func (c *XMPPClient) IQ(tb testing.TB, raw string, timeout time.Duration) Stanza {
	tb.Helper()
	elems, err := rawElements(raw)
	if err != nil || len(elems) != 1 {
		tb.Fatalf("xmpp %s: IQ wants exactly one <iq/> element, got %q (%v)", c.JID, raw, err)
	}
	start, ok := elems[0][0].(xml.StartElement)
	if !ok || start.Name.Local != "iq" {
		tb.Fatalf("xmpp %s: IQ wants an <iq/> element, got %q", c.JID, raw)
	}
	id := c.NextID()
	attrs := []xml.Attr{{Name: xml.Name{Local: "id"}, Value: id}}
	for _, a := range start.Attr {
		if a.Name.Local != "id" {
			attrs = append(attrs, a)
		}
	}
	start.Attr = attrs
	elems[0][0] = start
	if err := c.send(elems[0], timeout); err != nil {
		tb.Fatalf("xmpp %s: sending %s: %v", c.JID, raw, err)
	}
	s, err := c.take(func(s Stanza) bool {
		return s.Name == "iq" && s.ID == id && (s.Type == "result" || s.Type == "error")
	}, timeout)
	if err != nil {
		tb.Fatalf("xmpp %s: no reply to %s: %v\n%s", c.JID, raw, err, c.recent(20))
	}
	return s
}

// take removes and returns the oldest buffered stanza matching pred,
// waiting up to timeout for one to arrive.
func (c *XMPPClient) take(pred func(Stanza) bool, timeout time.Duration) (Stanza, error) {
	return c.buf.take(pred, timeout)
}

// Expect returns the oldest buffered stanza matching pred, waiting up to
// timeout for one to arrive, and removes it from the buffer. It fails the
// test (tb) on timeout or when the stream ends.
func (c *XMPPClient) Expect(tb testing.TB, pred func(Stanza) bool, timeout time.Duration) Stanza {
	tb.Helper()
	s, err := c.take(pred, timeout)
	if err != nil {
		tb.Fatalf("xmpp %s: expected stanza not received: %v\n%s", c.JID, err, c.recent(20))
	}
	return s
}

// ExpectNone fails the test if a stanza matching pred is buffered or
// arrives within d. It consumes nothing.
func (c *XMPPClient) ExpectNone(tb testing.TB, pred func(Stanza) bool, d time.Duration) {
	tb.Helper()
	if s, ok := c.buf.find(pred, d); ok {
		tb.Fatalf("xmpp %s: unexpected stanza: %s", c.JID, s.XML)
	}
}

// Received returns the XML of the stanzas received so far (the most recent
// ones when there were very many), including those already taken.
func (c *XMPPClient) Received() []string { return c.buf.all() }

func (c *XMPPClient) recent(n int) string { return c.buf.recent(n, "stanzas", c.JID.String()) }

// Done is closed when the stream has ended (Close, or the server closed it).
func (c *XMPPClient) Done() <-chan struct{} { return c.done }

// Err returns why the stream ended (nil while it runs or after a clean end).
func (c *XMPPClient) Err() error { return c.buf.err() }

// Close ends the stream (</stream:stream>), waits up to 2 s for the server
// to end its own, closes the connection and waits for the reading
// goroutine. It is safe to call more than once.
func (c *XMPPClient) Close() {
	c.closeOnce.Do(func() {
		_ = c.session.Close()
		_ = c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		select {
		case <-c.done:
		case <-time.After(3 * time.Second):
		}
		_ = c.conn.Close()
		<-c.done
	})
}

const nsBind = "urn:ietf:params:xml:ns:xmpp-bind"

// bindResource is the client side of resource binding. mellium's
// xmpp.BindResource (v0.22.0) always sends an empty <resource/>, so the
// server picks a random resource even when the JID asks for one.
func bindResource(resource string) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		List: func(context.Context, xmlstream.TokenWriter, xml.StartElement) (bool, error) {
			return true, errors.New("testbed: bindResource is client-side only")
		},
		Parse: func(_ context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(_ context.Context, session *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			w := session.TokenWriter()
			defer w.Close()
			r := session.TokenReader()
			defer r.Close()
			id := fmt.Sprintf("bind-%d", time.Now().UnixNano())
			iq := xml.StartElement{Name: xml.Name{Space: "jabber:client", Local: "iq"}, Attr: []xml.Attr{
				{Name: xml.Name{Local: "type"}, Value: "set"},
				{Name: xml.Name{Local: "id"}, Value: id},
			}}
			bind := xml.StartElement{Name: xml.Name{Space: nsBind, Local: "bind"}}
			toks := []xml.Token{iq, bind}
			if resource != "" {
				res := xml.StartElement{Name: xml.Name{Local: "resource"}}
				toks = append(toks, res, xml.CharData(resource), res.End())
			}
			toks = append(toks, bind.End(), iq.End())
			for _, t := range toks {
				if err := w.EncodeToken(t); err != nil {
					return 0, nil, fmt.Errorf("requesting resource binding: %w", err)
				}
			}
			if err := w.Flush(); err != nil {
				return 0, nil, fmt.Errorf("requesting resource binding: %w", err)
			}
			d := xml.NewTokenDecoder(r)
			for {
				tok, err := d.Token()
				if err != nil {
					return 0, nil, fmt.Errorf("reading the bind reply: %w", err)
				}
				start, ok := tok.(xml.StartElement)
				if !ok {
					continue // whitespace keepalive
				}
				var reply struct {
					ID    string `xml:"id,attr"`
					Type  string `xml:"type,attr"`
					JID   string `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>jid"`
					Error struct {
						Inner string `xml:",innerxml"`
					} `xml:"error"`
				}
				if err := d.DecodeElement(&reply, &start); err != nil {
					return 0, nil, fmt.Errorf("reading the bind reply: %w", err)
				}
				if start.Name.Local != "iq" || reply.ID != id {
					continue
				}
				if reply.Type != "result" {
					return 0, nil, fmt.Errorf("binding resource %q: %s %s", resource, reply.Type, reply.Error.Inner)
				}
				j, err := jid.Parse(reply.JID)
				if err != nil {
					return 0, nil, fmt.Errorf("bound JID %q: %w", reply.JID, err)
				}
				session.UpdateAddr(j)
				return xmpp.Ready, nil, nil
			}
		},
	}
}
