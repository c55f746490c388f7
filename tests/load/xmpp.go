package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// xmppClient is a lean c2s client for the load: plain TCP, SASL PLAIN,
// resource binding, then one reading goroutine that splits the stream into
// top-level stanzas without a general XML parser. It relies on Prosody's
// serializer, which escapes '<' and '>' in text and attribute values, so
// every '>' on the wire ends a tag. A thousand of these cost the tool far
// less than mellium sessions (which parse and re-serialise every stanza),
// and the tool shares the machine's two cores with the servers it measures.
type xmppClient struct {
	user string
	jid  string // full JID bound by the server
	conn net.Conn

	wmu sync.Mutex
	bw  *bufio.Writer

	onStanza func(c *xmppClient, s *rawStanza)

	imu   sync.Mutex
	iqs   map[string]chan *rawStanza
	ids   atomic.Uint64
	done  chan struct{}
	err   error
	close sync.Once
}

// rawStanza is one top-level element as received.
type rawStanza struct {
	name, from, to, typ, id string
	raw                     []byte // the whole element
}

// body returns the unescaped text of the first <body> child, if any.
func (s *rawStanza) body() (string, bool) {
	i := bytes.Index(s.raw, []byte("<body"))
	if i < 0 {
		return "", false
	}
	j := bytes.IndexByte(s.raw[i:], '>')
	if j < 0 {
		return "", false
	}
	start := i + j + 1
	if s.raw[start-2] == '/' {
		return "", true
	}
	end := bytes.Index(s.raw[start:], []byte("</body>"))
	if end < 0 {
		return "", false
	}
	return xmlUnescape(string(s.raw[start : start+end])), true
}

// hasStatus reports whether the stanza carries a MUC status code.
func (s *rawStanza) hasStatus(code string) bool {
	return bytes.Contains(s.raw, []byte("code='"+code+"'")) || bytes.Contains(s.raw, []byte(`code="`+code+`"`))
}

// dialXMPP logs user@domain/resource in on addr and sends initial presence.
func dialXMPP(ctx context.Context, addr, domain, user, password, resource string, onStanza func(*xmppClient, *rawStanza)) (*xmppClient, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c := &xmppClient{user: user, conn: conn, bw: bufio.NewWriterSize(conn, 4096), onStanza: onStanza,
		iqs: map[string]chan *rawStanza{}, done: make(chan struct{})}
	r := newStanzaReader(conn)
	fail := func(step string, err error) (*xmppClient, error) {
		conn.Close()
		return nil, fmt.Errorf("%s@%s: %s: %w", user, domain, step, err)
	}
	header := "<?xml version='1.0'?><stream:stream to='" + domain + "' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	if _, err := io.WriteString(conn, header); err != nil {
		return fail("stream header", err)
	}
	if _, err := r.expect("stream:features"); err != nil {
		return fail("features", err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	if _, err := io.WriteString(conn, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+auth+"</auth>"); err != nil {
		return fail("auth", err)
	}
	s, err := r.next()
	if err != nil {
		return fail("auth", err)
	}
	if s.name != "success" {
		return fail("auth", fmt.Errorf("server answered %s", s.raw))
	}
	r.restart()
	if _, err := io.WriteString(conn, header); err != nil {
		return fail("stream restart", err)
	}
	if _, err := r.expect("stream:features"); err != nil {
		return fail("features after auth", err)
	}
	if _, err := io.WriteString(conn, "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"+resource+"</resource></bind></iq>"); err != nil {
		return fail("bind", err)
	}
	s, err = r.expect("iq")
	if err != nil {
		return fail("bind", err)
	}
	if s.typ != "result" {
		return fail("bind", fmt.Errorf("server answered %s", s.raw))
	}
	if i := bytes.Index(s.raw, []byte("<jid>")); i >= 0 {
		if j := bytes.Index(s.raw[i:], []byte("</jid>")); j > 0 {
			c.jid = string(s.raw[i+5 : i+j])
		}
	}
	if c.jid == "" {
		c.jid = user + "@" + domain + "/" + resource
	}
	// Initial presence, and a ping whose answer says the server processed it.
	if _, err := io.WriteString(conn, "<presence/><iq type='get' id='ready' to='"+domain+"'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
		return fail("presence", err)
	}
	for {
		s, err := r.next()
		if err != nil {
			return fail("presence", err)
		}
		if s.name == "iq" && s.id == "ready" {
			break
		}
	}
	_ = conn.SetDeadline(time.Time{})
	go c.readLoop(r)
	return c, nil
}

func (c *xmppClient) readLoop(r *stanzaReader) {
	defer close(c.done)
	for {
		s, err := r.next()
		if err != nil {
			c.imu.Lock()
			c.err = err
			c.imu.Unlock()
			return
		}
		if s.name == "iq" && (s.typ == "result" || s.typ == "error") {
			c.imu.Lock()
			ch := c.iqs[s.id]
			delete(c.iqs, s.id)
			c.imu.Unlock()
			if ch != nil {
				ch <- s
				continue
			}
		}
		if s.name == "iq" && (s.typ == "get" || s.typ == "set") {
			// Nobody here serves IQs: answer as a client without the feature.
			_ = c.send("<iq type='error' id='" + xmlEscape(s.id) + "' to='" + xmlEscape(s.from) + "'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
			continue
		}
		if c.onStanza != nil {
			c.onStanza(c, s)
		}
	}
}

// send writes raw XML (one or more stanzas) and flushes.
func (c *xmppClient) send(raw string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.bw.WriteString(raw); err != nil {
		return err
	}
	return c.bw.Flush()
}

// iq sends an <iq> whose id attribute is the placeholder ID and waits for
// the reply.
func (c *xmppClient) iq(raw string, timeout time.Duration) (*rawStanza, error) {
	id := "q" + strconv.FormatUint(c.ids.Add(1), 10)
	ch := make(chan *rawStanza, 1)
	c.imu.Lock()
	c.iqs[id] = ch
	c.imu.Unlock()
	if err := c.send(strings.Replace(raw, "id='ID'", "id='"+id+"'", 1)); err != nil {
		return nil, err
	}
	select {
	case s := <-ch:
		return s, nil
	case <-c.done:
		return nil, fmt.Errorf("%s: stream closed: %v", c.jid, c.err)
	case <-time.After(timeout):
		c.imu.Lock()
		delete(c.iqs, id)
		c.imu.Unlock()
		return nil, fmt.Errorf("%s: no answer to %.200s within %s", c.jid, raw, timeout)
	}
}

// closed reports whether the stream has ended, and why.
func (c *xmppClient) closed() (bool, error) {
	select {
	case <-c.done:
		c.imu.Lock()
		defer c.imu.Unlock()
		return true, c.err
	default:
		return false, nil
	}
}

// shutdown ends the stream and closes the connection.
func (c *xmppClient) shutdown() {
	c.close.Do(func() {
		_ = c.send("</stream:stream>")
		_ = c.conn.SetReadDeadline(time.Now().Add(time.Second))
		select {
		case <-c.done:
		case <-time.After(1500 * time.Millisecond):
		}
		c.conn.Close()
		<-c.done
	})
}

// stanzaReader splits an XMPP stream into top-level elements.
type stanzaReader struct {
	r     *bufio.Reader
	depth int // 0 before the stream header, 1 inside the stream
	buf   []byte
}

func newStanzaReader(r io.Reader) *stanzaReader {
	return &stanzaReader{r: bufio.NewReaderSize(r, 16384)}
}

// restart forgets the stream header (after SASL success).
func (sr *stanzaReader) restart() { sr.depth = 0 }

// expect returns the next element, which must be called name.
func (sr *stanzaReader) expect(name string) (*rawStanza, error) {
	s, err := sr.next()
	if err != nil {
		return nil, err
	}
	if s.name != name {
		return nil, fmt.Errorf("expected <%s>, got %.300s", name, s.raw)
	}
	return s, nil
}

var errStreamEnd = errors.New("the server ended the stream")

// next returns the next top-level element (a child of <stream:stream>).
func (sr *stanzaReader) next() (*rawStanza, error) {
	sr.buf = sr.buf[:0]
	level := 0 // depth inside the current element
	for {
		chunk, err := sr.r.ReadSlice('>')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				sr.buf = append(sr.buf, chunk...)
				continue
			}
			return nil, err
		}
		start := len(sr.buf)
		sr.buf = append(sr.buf, chunk...)
		lt := bytes.LastIndexByte(sr.buf[start:], '<')
		if lt < 0 {
			// A '>' in text: Prosody escapes it, so this is another peer.
			continue
		}
		tag := sr.buf[start+lt:]
		switch {
		case bytes.HasPrefix(tag, []byte("<?")):
			sr.buf = sr.buf[:start+lt]
			continue
		case bytes.HasPrefix(tag, []byte("</")):
			if level == 0 {
				if bytes.HasPrefix(tag, []byte("</stream:stream")) {
					return nil, errStreamEnd
				}
				return nil, fmt.Errorf("unexpected %s", tag)
			}
			level--
		case bytes.HasSuffix(tag, []byte("/>")):
			// empty element: level unchanged
		default:
			if sr.depth == 0 && bytes.HasPrefix(tag, []byte("<stream:stream")) {
				sr.depth = 1
				sr.buf = sr.buf[:0]
				continue
			}
			level++
		}
		if level == 0 {
			elem := bytes.TrimLeft(sr.buf, " \t\r\n")
			return parseRawStanza(append([]byte(nil), elem...)), nil
		}
	}
}

func parseRawStanza(raw []byte) *rawStanza {
	s := &rawStanza{raw: raw}
	end := bytes.IndexByte(raw, '>')
	if end < 0 {
		return s
	}
	head := raw[1:end]
	head = bytes.TrimSuffix(head, []byte("/"))
	sp := bytes.IndexAny(head, " \t\r\n")
	if sp < 0 {
		s.name = string(head)
		return s
	}
	s.name = string(head[:sp])
	rest := head[sp:]
	for len(rest) > 0 {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		eq := bytes.IndexByte(rest, '=')
		if eq < 0 || eq+1 >= len(rest) {
			break
		}
		key := string(bytes.TrimSpace(rest[:eq]))
		q := rest[eq+1]
		closeQ := bytes.IndexByte(rest[eq+2:], q)
		if closeQ < 0 {
			break
		}
		val := xmlUnescape(string(rest[eq+2 : eq+2+closeQ]))
		rest = rest[eq+2+closeQ+1:]
		switch key {
		case "from":
			s.from = val
		case "to":
			s.to = val
		case "type":
			s.typ = val
		case "id":
			s.id = val
		}
	}
	return s
}

var unescaper = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&quot;", `"`, "&apos;", "'", "&#39;", "'", "&amp;", "&")

func xmlUnescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return unescaper.Replace(s)
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;")

func xmlEscape(s string) string { return escaper.Replace(s) }
