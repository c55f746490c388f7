package mailmsg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // ISO-8859-x, Windows-125x, ISO-2022-JP, … for bodies and RFC 2047 words
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"golang.org/x/text/encoding/charmap"
)

const (
	defaultMaxPartBytes = 25 << 20
	maxDepth            = 32   // nesting of multiparts and message/rfc822 followed
	maxParts            = 1000 // parts looked at in one message
)

// parser holds the state of one Parse call.
type parser struct {
	opt        ParseOptions
	msg        *Message
	parts      int
	reportedID string // Message-ID of the message returned in a report
}

// body is the readable text found in a subtree.
type body struct {
	text   string
	isHTML bool // text came from HTML only
}

func (b body) empty() bool { return strings.TrimSpace(b.text) == "" }

func parse(r io.Reader, opt ParseOptions) (*Message, error) {
	if opt.MaxPartBytes <= 0 {
		opt.MaxPartBytes = defaultMaxPartBytes
	}
	switch opt.FoldQuotes {
	case "":
		opt.FoldQuotes = "fold"
	case "fold", "drop", "keep":
	default:
		return nil, fmt.Errorf("mailmsg: FoldQuotes is %q, want \"fold\", \"drop\" or \"keep\"", opt.FoldQuotes)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("mailmsg: reading the message: %w", err)
	}
	p := &parser{opt: opt, msg: &Message{}}
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		// The header itself is broken (a line that is not a field, or an
		// enormous header). Keep what follows the first blank line as text.
		return p.rescue(raw, err)
	}
	if err != nil {
		p.problem("top-level: %v", err)
	}
	p.headers(e.Header)
	b := p.walk(e, 0, "")
	if p.msg.DSN != nil && p.msg.DSN.OriginalMessageID == "" {
		p.msg.DSN.OriginalMessageID = p.reportedID
	}
	text := normalizeNewlines(b.text)
	if b.isHTML {
		p.msg.HTMLOnly = true
	}
	p.msg.Text, p.msg.Quoted = foldQuotes(cleanText(text), opt.FoldQuotes)
	if !readable(p.msg.Text) && !readable(p.msg.Quoted) && !readable(p.msg.Subject) &&
		len(p.msg.Attachments) == 0 && p.msg.DSN == nil {
		return p.msg, p.unreadable()
	}
	return p.msg, nil
}

func (p *parser) unreadable() error {
	if len(p.msg.Problems) == 0 {
		return fmt.Errorf("mailmsg: %w: the message has no text, subject or attachment", ErrUnreadable)
	}
	return fmt.Errorf("mailmsg: %w: %s", ErrUnreadable, strings.Join(p.msg.Problems, "; "))
}

// readable reports whether s has a letter, digit, symbol or punctuation.
func readable(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsGraphic(r) && !unicode.IsSpace(r) && r != utf8.RuneError
	}) >= 0
}

// cleanText drops the control characters XML cannot carry (all of C0 but
// tab and line feed, and DEL) and invalid UTF-8.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexFunc(s, func(r rune) bool { return (r < 0x20 && r != '\t' && r != '\n') || r == 0x7f }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t' && r != '\n') || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// rescue handles a message whose header block cannot be read.
func (p *parser) rescue(raw []byte, herr error) (*Message, error) {
	p.problem("header: %v", herr)
	rest := raw
	for _, sep := range []string{"\r\n\r\n", "\n\n"} {
		if i := bytes.Index(raw, []byte(sep)); i >= 0 {
			rest = raw[i+len(sep):]
			break
		}
	}
	// Salvage the fields that can be read, one line at a time.
	hdr := raw[:len(raw)-len(rest)]
	var h textproto.Header
	for _, line := range strings.Split(normalizeNewlines(string(hdr)), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			continue
		}
		h.Add(k, strings.TrimSpace(v))
	}
	p.headers(message.Header{Header: h})
	text := decodeUnlabelled(rest)
	if int64(len(text)) > p.opt.MaxPartBytes {
		text = truncateUTF8(text, int(p.opt.MaxPartBytes))
	}
	p.msg.Text, p.msg.Quoted = foldQuotes(cleanText(normalizeNewlines(text)), p.opt.FoldQuotes)
	if !readable(p.msg.Text) && !readable(p.msg.Quoted) && !readable(p.msg.Subject) {
		return p.msg, p.unreadable()
	}
	return p.msg, nil
}

func (p *parser) problem(format string, args ...any) {
	if len(p.msg.Problems) < 20 {
		p.msg.Problems = append(p.msg.Problems, fmt.Sprintf(format, args...))
	}
}

// headers fills the header fields of p.msg. Nothing here fails: a field
// that cannot be parsed is read leniently or left empty.
func (p *parser) headers(mh message.Header) {
	h := mail.Header{Header: mh}
	m := p.msg
	m.From = firstAddress(p, h, "From")
	if m.From.Addr == "" {
		m.From = firstAddress(p, h, "Sender")
	}
	m.To = addressList(p, h, "To")
	m.Cc = addressList(p, h, "Cc")
	m.ReplyTo = addressList(p, h, "Reply-To")
	m.Subject = headerText(h.Get("Subject"))
	if ids := msgIDs(h.Get("Message-Id")); len(ids) > 0 {
		m.MessageID = ids[0]
	}
	if ids := msgIDs(h.Get("In-Reply-To")); len(ids) > 0 {
		// Some clients list the whole chain: the parent is the last one.
		m.InReplyTo = ids[len(ids)-1]
	}
	m.References = msgIDs(h.Get("References"))
	if d, err := h.Date(); err == nil {
		m.Date = d
	} else {
		p.problem("Date: %v", err)
	}
	if v := h.Get("List-Id"); v != "" {
		m.ListID = listID(v)
	}
	m.ListPost = listPost(h.Get("List-Post"))
	m.AuthResults = h.Get("Authentication-Results") // the topmost one: added by the nearest MTA
	if v := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); v != "" && !strings.HasPrefix(v, "no") {
		m.AutoSubmitted = true
	}
}

// headerText decodes RFC 2047 words; undecodable words and raw 8-bit
// bytes that are not UTF-8 are still made readable.
func headerText(v string) string {
	if v == "" {
		return ""
	}
	if !utf8.ValidString(v) {
		v = decodeUnlabelled([]byte(v))
	}
	dec := mime.WordDecoder{CharsetReader: message.CharsetReader}
	s, err := dec.DecodeHeader(v)
	if err != nil {
		s = v
	}
	return strings.ToValidUTF8(stripControls(s), "\uFFFD")
}

// stripControls removes C0 controls (tab becomes a space) and DEL: a decoded
// header value is one line of text.
func stripControls(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\r' || r == '\n':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, s)
}

func addressList(p *parser, h mail.Header, key string) []Address {
	v := h.Get(key)
	if strings.TrimSpace(v) == "" {
		return nil
	}
	if !utf8.ValidString(v) {
		v = decodeUnlabelled([]byte(v))
	}
	list, err := mail.ParseAddressList(v)
	if err == nil {
		out := make([]Address, 0, len(list))
		for _, a := range list {
			out = append(out, Address{Name: strings.ToValidUTF8(stripControls(a.Name), "\uFFFD"), Addr: strings.ToValidUTF8(a.Address, "\uFFFD")})
		}
		return out
	}
	p.problem("%s: %v", key, err)
	// Lenient: one address per comma-separated item, taken from <…> or
	// the first token with an @.
	var out []Address
	for _, item := range strings.Split(v, ",") {
		if a, ok := lenientAddress(item); ok {
			out = append(out, a)
		}
	}
	return out
}

func firstAddress(p *parser, h mail.Header, key string) Address {
	l := addressList(p, h, key)
	if len(l) == 0 {
		return Address{}
	}
	return l[0]
}

func lenientAddress(s string) (Address, bool) {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			addr := strings.TrimSpace(s[i+1 : i+j])
			name := strings.Trim(strings.TrimSpace(s[:i]), `"`)
			if strings.Contains(addr, "@") {
				return Address{Name: headerText(name), Addr: addr}, true
			}
		}
	}
	for _, f := range strings.Fields(s) {
		f = strings.Trim(f, `<>"(),;`)
		if strings.Contains(f, "@") {
			return Address{Addr: f}, true
		}
	}
	return Address{}, false
}

// msgIDs extracts message identifiers, without angle brackets, from a
// Message-ID, In-Reply-To or References value. It is lenient: ids without
// brackets or with odd characters are kept, comments and phrases dropped.
func msgIDs(v string) []string {
	var ids []string
	rest := v
	for {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '>')
		if j < 0 {
			break
		}
		id := strings.Join(strings.Fields(rest[i+1:i+j]), "")
		if id != "" && utf8.ValidString(id) && !strings.ContainsAny(id, "<>\x00") {
			ids = append(ids, id)
		}
		rest = rest[i+j+1:]
	}
	if ids == nil && !strings.ContainsAny(v, "<>") {
		for _, f := range strings.Fields(v) {
			if strings.Contains(f, "@") && utf8.ValidString(f) {
				ids = append(ids, f)
			}
		}
	}
	return ids
}

// listID returns the identifier of a List-Id value ("Name <id>" → "id").
func listID(v string) string {
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return strings.TrimSpace(v[i+1 : i+j])
		}
	}
	return strings.TrimSpace(stripControls(v))
}

// listPost returns the address of the first mailto: URL of a List-Post
// value ("<mailto:list@example.org?subject=x>" → "list@example.org"), or ""
// (also for "NO", a list that does not take posts).
func listPost(v string) string {
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return ""
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return ""
		}
		u := strings.TrimSpace(v[i+1 : i+j])
		v = v[i+j+1:]
		if len(u) < 7 || !strings.EqualFold(u[:7], "mailto:") {
			continue
		}
		addr, _, _ := strings.Cut(u[7:], "?")
		if dec, err := urlUnescape(addr); err == nil {
			addr = dec
		}
		if strings.Contains(addr, "@") {
			return addr
		}
	}
}

// urlUnescape decodes %XX escapes.
func urlUnescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("short escape")
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", errors.New("bad escape")
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// mediaType returns the lowercased media type of a part and its
// parameters, reading a malformed Content-Type (a duplicate or broken
// parameter, say) as well as it can; salvaged is true then, and go-message
// has not decoded the part's charset.
func mediaType(h message.Header) (t string, params map[string]string, salvaged bool) {
	t, params, err := h.ContentType()
	if err == nil {
		return strings.ToLower(t), params, false
	}
	salvaged = true
	raw := h.Get("Content-Type")
	t, _, _ = strings.Cut(raw, ";")
	t = strings.ToLower(strings.TrimSpace(t))
	if params == nil {
		params = map[string]string{}
	}
	// Keep the parameters that can be read one by one (a boundary or a
	// charset next to a broken parameter).
	for _, kv := range strings.Split(raw, ";")[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		params[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	if typ, sub, ok := strings.Cut(t, "/"); !ok || typ == "" || sub == "" || strings.ContainsAny(t, " \t\"") {
		return "text/plain", params, salvaged
	}
	return t, params, salvaged
}

// walk collects the readable text of e and appends its attachments.
func (p *parser) walk(e *message.Entity, depth int, parent string) body {
	p.parts++
	if depth > maxDepth || p.parts > maxParts {
		p.problem("too many nested or sibling parts; the rest is skipped")
		return body{}
	}
	t, params, salvaged := mediaType(e.Header)
	if salvaged && strings.HasPrefix(t, "text/") {
		// go-message could not read the charset parameter: decode it here.
		if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" && message.CharsetReader != nil {
			if r, err := message.CharsetReader(cs, e.Body); err == nil && r != nil {
				e.Body = r
			}
		}
	}
	disp, dparams, _ := e.Header.ContentDisposition()
	disp = strings.ToLower(disp)
	filename := dparams["filename"]
	if filename == "" {
		filename = params["name"]
	}
	filename = safeFilename(headerText(filename))
	switch {
	case strings.HasPrefix(t, "multipart/"):
		return p.multipart(e, t, params["boundary"], depth)
	case t == "message/rfc822" || t == "message/global":
		p.attach(e, t, params, filename, disp, parent)
		return body{}
	case (t == "text/plain" || t == "text/html" || t == "text/enriched" || t == "text/markdown") &&
		disp != "attachment" && (filename == "" || disp == "inline"):
		s := p.readText(e, t)
		if t == "text/html" {
			return body{text: htmlToText(s), isHTML: true}
		}
		if strings.EqualFold(params["format"], "flowed") {
			s = unflow(s, strings.EqualFold(params["delsp"], "yes"))
		}
		return body{text: s}
	case t == "application/pgp-signature" || t == "application/pkcs7-signature" || t == "application/x-pkcs7-signature":
		// A signature of the part next to it, of no use to the reader.
		return body{}
	default:
		p.attach(e, t, params, filename, disp, parent)
		return body{}
	}
}

func (p *parser) multipart(e *message.Entity, t, boundary string, depth int) body {
	// Keep the bytes: a multipart whose boundary never shows is read as
	// text instead.
	data, err := io.ReadAll(e.Body)
	if err != nil {
		p.problem("%s: %v", t, err)
	}
	if boundary == "" {
		return p.multipartAsText(t, data)
	}
	// go-message's own multipart reader, with the boundary mediaType found
	// (also in a Content-Type go-message cannot parse).
	mr := textproto.NewMultipartReader(bytes.NewReader(data), boundary)
	var kids []body
	for {
		var part *message.Entity
		tp, err := mr.NextPart()
		if err == nil {
			part, err = message.New(message.Header{Header: tp.Header}, tp)
		}
		if err == io.EOF {
			break
		}
		if part == nil {
			if len(kids) == 0 {
				return p.multipartAsText(t, data)
			}
			if err != nil {
				p.problem("%s: %v", t, err)
			}
			break
		}
		if err != nil {
			p.problem("%s: %v", t, err) // unknown charset or encoding: the part is read as it is
		}
		pt, _, _ := mediaType(part.Header)
		if t == "multipart/report" && (pt == "message/delivery-status" || pt == "message/global-delivery-status") {
			p.deliveryStatus(part)
			kids = append(kids, body{})
			continue
		}
		if t == "multipart/report" && p.msg.DSN != nil && (pt == "message/rfc822" || pt == "text/rfc822-headers" ||
			pt == "message/global" || pt == "message/global-headers") {
			p.reportedMessage(part)
			kids = append(kids, body{})
			continue
		}
		kids = append(kids, p.walk(part, depth+1, t))
		if p.parts > maxParts {
			break
		}
	}
	switch t {
	case "multipart/alternative":
		// Plain text first, then anything else readable that is not HTML,
		// then HTML (the last alternative is the richest).
		best := -1
		for i, k := range kids {
			if k.empty() {
				continue
			}
			switch {
			case !k.isHTML && (best < 0 || kids[best].isHTML):
				best = i
			case best < 0:
				best = i
			}
		}
		if best < 0 {
			return body{}
		}
		return kids[best]
	case "multipart/related":
		// The root (the first part, in practice) is the text; the other
		// parts are its resources, already attached.
		for _, k := range kids {
			if !k.empty() {
				return k
			}
		}
		return body{}
	}
	// mixed, report, signed, digest and anything unknown: the readable parts
	// in order.
	var out body
	html := true
	any := false
	for _, k := range kids {
		if k.empty() {
			continue
		}
		if out.text != "" {
			out.text = strings.TrimRight(out.text, "\n") + "\n\n"
		}
		out.text += k.text
		html = html && k.isHTML
		any = true
	}
	out.isHTML = any && html
	return out
}

// multipartAsText reads the body of a multipart that has no parts (no
// boundary, or one that never appears) as plain text.
func (p *parser) multipartAsText(t string, data []byte) body {
	p.problem("%s has no readable parts; its body is shown as text", t)
	if int64(len(data)) > p.opt.MaxPartBytes {
		data = data[:p.opt.MaxPartBytes]
	}
	return body{text: normalizeNewlines(decodeUnlabelled(data))}
}

// readText reads a text part, capped, as UTF-8 with "\n" line ends.
func (p *parser) readText(e *message.Entity, t string) string {
	data, err := io.ReadAll(io.LimitReader(e.Body, p.opt.MaxPartBytes+1))
	if err != nil {
		p.problem("%s part: %v", t, err)
	}
	if int64(len(data)) > p.opt.MaxPartBytes {
		p.problem("a %s part is bigger than %d bytes; it was cut", t, p.opt.MaxPartBytes)
		data = data[:p.opt.MaxPartBytes]
	}
	var s string
	if utf8.Valid(data) {
		s = string(data)
	} else {
		// No charset, a wrong one, or one go-message does not know: read
		// the bytes as Windows-1252, what such mail almost always is.
		s = decodeUnlabelled(data)
	}
	return normalizeNewlines(s)
}

// attach stores a non-text part as an attachment.
func (p *parser) attach(e *message.Entity, t string, params map[string]string, filename, disp, parent string) {
	cid := strings.TrimSpace(e.Header.Get("Content-Id"))
	if ids := msgIDs(cid); len(ids) > 0 {
		cid = ids[0]
	} else {
		cid = strings.Trim(cid, "<>")
	}
	part := Part{
		Filename:    filename,
		ContentType: t,
		ContentID:   stripControls(cid),
		Inline:      disp == "inline" || (disp == "" && cid != "" && parent == "multipart/related"),
	}
	if part.Filename == "" && (t == "message/rfc822" || t == "message/global") {
		part.Filename = "message.eml"
	}
	data, err := io.ReadAll(io.LimitReader(e.Body, p.opt.MaxPartBytes+1))
	if err != nil {
		p.problem("attachment %q: %v", filename, err)
	}
	part.Size = int64(len(data))
	if part.Size > p.opt.MaxPartBytes {
		n, _ := io.Copy(io.Discard, e.Body)
		part.Size += n
		part.Truncated = true
		data = nil
		p.problem("attachment %q is bigger than %d bytes; it was left out", filename, p.opt.MaxPartBytes)
	}
	part.Data = data
	p.msg.Attachments = append(p.msg.Attachments, part)
}

// deliveryStatus reads a message/delivery-status part (RFC 3464 §2.1).
func (p *parser) deliveryStatus(e *message.Entity) {
	data, err := io.ReadAll(io.LimitReader(e.Body, 1<<20))
	if err != nil {
		p.problem("delivery-status: %v", err)
	}
	if p.msg.DSN == nil {
		p.msg.DSN = &DSN{}
	}
	d := p.msg.DSN
	br := bufio.NewReader(bytes.NewReader(bytes.TrimLeft(data, "\r\n")))
	var best, first *DSN
	for i := 0; i < 1000; i++ {
		h, err := textproto.ReadHeader(br)
		if h.Len() > 0 || err == nil {
			if i == 0 {
				// Per-message fields.
				for _, k := range []string{"Original-Message-Id", "X-Original-Message-Id"} {
					if ids := msgIDs(h.Get(k)); len(ids) > 0 && d.OriginalMessageID == "" {
						d.OriginalMessageID = ids[0]
					}
				}
			} else {
				r := &DSN{
					Action:     strings.ToLower(strings.TrimSpace(h.Get("Action"))),
					Status:     strings.TrimSpace(h.Get("Status")),
					Diagnostic: typedValue(h.Get("Diagnostic-Code")),
					Recipient:  typedValue(h.Get("Final-Recipient")),
				}
				if r.Recipient == "" {
					r.Recipient = typedValue(h.Get("Original-Recipient"))
				}
				if first == nil {
					first = r
				}
				if best == nil && (r.Action == "failed" || r.Action == "delayed") {
					best = r
				}
			}
		}
		if err != nil {
			break
		}
		// Skip the blank lines between blocks; stop at the end.
		for {
			b, err := br.Peek(1)
			if err != nil || (b[0] != '\r' && b[0] != '\n') {
				break
			}
			_, _ = br.ReadByte()
		}
		if _, err := br.Peek(1); err != nil {
			break
		}
	}
	if best == nil {
		best = first
	}
	if best != nil {
		d.Action, d.Status, d.Diagnostic, d.Recipient = best.Action, best.Status, best.Diagnostic, best.Recipient
	}
}

// typedValue returns the value of an "rfc822; bob@example.com" or
// "smtp; 550 5.1.1 …" field without its type, on one line.
func typedValue(v string) string {
	if _, after, ok := strings.Cut(v, ";"); ok {
		v = after
	}
	return strings.Join(strings.Fields(stripControls(v)), " ")
}

// reportedMessage reads the Message-ID of the original message returned in
// a report (message/rfc822 or text/rfc822-headers).
// It counts only when the report is a delivery status notification (a
// read receipt or an abuse report returns a message too).
func (p *parser) reportedMessage(e *message.Entity) {
	data, _ := io.ReadAll(io.LimitReader(e.Body, 1<<20))
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(data)))
	if ids := msgIDs(h.Get("Message-Id")); len(ids) > 0 && p.reportedID == "" {
		p.reportedID = ids[0]
	}
}

// decodeUnlabelled makes text of bytes in an unknown charset: UTF-8 when
// they are UTF-8, Windows-1252 otherwise.
func decodeUnlabelled(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	s, err := charmap.Windows1252.NewDecoder().Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(s)
}

func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// dedupeLinks turns "https://x <https://x>" into "https://x" and
// "a@x <mailto:a@x>" into "a@x".
func dedupeLinks(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, " <")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		url := s[i+2 : i+j]
		if url != "" && (strings.HasSuffix(s[:i], url) || strings.HasPrefix(url, "mailto:") && strings.HasSuffix(s[:i], url[7:])) {
			b.WriteString(s[:i])
			s = s[i+j+1:]
			continue
		}
		b.WriteString(s[:i+2])
		s = s[i+2:]
	}
}

// safeFilename keeps the last path element of a file name (no "../", no
// directory) and drops what a file name should not carry.
func safeFilename(s string) string {
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSpace(s)
	if s == "." || s == ".." {
		return ""
	}
	return s
}

// unflow undoes RFC 3676 format=flowed: a line ending in a space is joined
// to the next one of the same quote depth (the space removed too with
// delsp=yes), space-stuffing is removed, the "-- " separator is left alone.
func unflow(s string, delsp bool) string {
	lines := strings.Split(s, "\n")
	var out []string
	cur, curDepth, open := "", 0, false
	for _, l := range lines {
		depth := 0
		for depth < len(l) && l[depth] == '>' {
			depth++
		}
		content := l[depth:]
		content = strings.TrimPrefix(content, " ") // space-stuffing
		flowed := strings.HasSuffix(content, " ") && content != "-- "
		if flowed && delsp {
			content = content[:len(content)-1]
		}
		if open && depth == curDepth {
			cur += content
		} else {
			if open {
				out = append(out, requote(cur, curDepth))
			}
			cur, curDepth = content, depth
		}
		open = flowed
		if !flowed {
			out = append(out, requote(cur, curDepth))
			cur = ""
		}
	}
	if open {
		out = append(out, requote(cur, curDepth))
	}
	return strings.Join(out, "\n")
}

func requote(s string, depth int) string {
	if depth == 0 {
		return s
	}
	return strings.Repeat(">", depth) + " " + s
}
