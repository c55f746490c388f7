package mailmsg

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"mime"
	netmail "net/mail"
	"sort"
	"strings"
	"switchboard/mapping"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
)

// HeaderError is Build's error for a header value it refuses: a CR, LF or
// NUL (which could start a new header), or a malformed field.
type HeaderError struct {
	Field string // the header or Outgoing field
	Why   string
}

// maxNameBytes is the longest display name Build writes.
const maxNameBytes = 200

func (e *HeaderError) Error() string { return fmt.Sprintf("mailmsg: %s: %s", e.Field, e.Why) }

// reservedHeaders are set by Build itself; Outgoing.Headers cannot set them.
var reservedHeaders = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "subject": true, "date": true, "message-id": true,
	"in-reply-to": true, "references": true, "mime-version": true, "content-type": true,
	"content-transfer-encoding": true, "content-disposition": true, "content-id": true, "sender": true,
	"return-path": true, "received": true,
}

// checkValue refuses a value that could break out of its header field.
func checkValue(field, v string) error {
	if i := strings.IndexAny(v, "\r\n\x00"); i >= 0 {
		r, _ := utf8.DecodeRuneInString(v[i:])
		return &HeaderError{Field: field, Why: "it contains " + describeRune(r) + ", which a mail header cannot carry"}
	}
	if !utf8.ValidString(v) {
		return &HeaderError{Field: field, Why: "it is not valid UTF-8"}
	}
	return nil
}

// encodeText returns v as an unstructured header value, RFC 2047-encoded
// (UTF-8, Q or B, whichever is shorter per word) when it is not plain
// ASCII. Other control characters than CR, LF and NUL are encoded too.
func encodeText(v string) string {
	out := mime.QEncoding.Encode("utf-8", v)
	if out != v {
		if b := mime.BEncoding.Encode("utf-8", v); len(b) < len(out) {
			out = b
		}
	}
	for _, f := range strings.Fields(out) {
		if len(f) > 76 {
			// A word too long to fold: encode the whole value as words
			// of at most 75 characters.
			return forceBWords(v)
		}
	}
	return out
}

// forceBWords encodes v as RFC 2047 B words of at most 45 bytes of text
// each (60 of base64), cut on rune boundaries.
func forceBWords(v string) string {
	var words []string
	for len(v) > 0 {
		n := min(45, len(v))
		for n < len(v) && n > 0 && !utf8.RuneStart(v[n]) {
			n--
		}
		if n == 0 {
			n = min(45, len(v))
		}
		words = append(words, "=?utf-8?b?"+base64.StdEncoding.EncodeToString([]byte(v[:n]))+"?=")
		v = v[n:]
	}
	return strings.Join(words, " ")
}

// foldField returns "Key: value\r\n", folded at spaces so that lines stay
// under 78 characters where the words allow (no word is longer than 900
// bytes here, so no line reaches the 998 limit).
func foldField(k, v string) string {
	var b strings.Builder
	b.WriteString(k)
	b.WriteString(":")
	n := len(k) + 1
	for i, w := range strings.Split(v, " ") {
		if w == "" && i > 0 {
			// Keep the spaces of the value (inside a quoted name, say).
			b.WriteByte(' ')
			n++
			continue
		}
		if n+1+len(w) > 78 && n > len(k)+1 {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteByte(' ')
		b.WriteString(w)
		n += 1 + len(w)
	}
	b.WriteString("\r\n")
	return b.String()
}

// checkMsgID accepts "id@host" or "<id@host>" and returns it without
// brackets.
func checkMsgID(field, id string) (string, error) {
	if err := checkValue(field, id); err != nil {
		return "", err
	}
	id = strings.TrimSpace(id)
	if strings.HasPrefix(id, "<") && strings.HasSuffix(id, ">") {
		id = id[1 : len(id)-1]
	}
	switch {
	case id == "":
		return "", &HeaderError{Field: field, Why: "a message id cannot be empty"}
	case len(id) > 900:
		return "", &HeaderError{Field: field, Why: "the message id is longer than 900 bytes"}
	}
	for _, r := range id {
		if r <= ' ' || r >= 0x7f || r == '<' || r == '>' {
			return "", &HeaderError{Field: field, Why: fmt.Sprintf("the message id %q contains %s", id, describeRune(r))}
		}
	}
	return id, nil
}

func formatAddress(field string, a Address) (string, error) {
	if err := checkValue(field+" name", a.Name); err != nil {
		return "", err
	}
	if err := checkValue(field, a.Addr); err != nil {
		return "", err
	}
	v, err := validateAddress(a.Addr)
	if err != nil {
		return "", fmt.Errorf("mailmsg: %s: %w", field, err)
	}
	if v.Name != "" && a.Name == "" {
		a.Name = v.Name
	}
	// A display name is cosmetic: a very long one is cut rather than the
	// message refused. net/mail quotes or RFC 2047-encodes it as needed.
	name := truncateUTF8(stripControls(a.Name), maxNameBytes)
	return (&netmail.Address{Name: name, Address: v.Addr}).String(), nil
}

func formatAddressList(field string, l []Address) (string, error) {
	out := make([]string, 0, len(l))
	for _, a := range l {
		s, err := formatAddress(field, a)
		if err != nil {
			return "", err
		}
		out = append(out, s)
	}
	return strings.Join(out, ", "), nil
}

// newMessageID returns 26 random base32 characters @ domain.
func newMessageID(domain string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("mailmsg: generating a Message-ID: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])) + "@" + domain, nil
}

func build(o Outgoing) ([]byte, string, error) {
	var h message.Header
	from, err := formatAddress("From", o.From)
	if err != nil {
		return nil, "", err
	}
	if len(o.To) == 0 && len(o.Cc) == 0 && !o.Undisclosed {
		return nil, "", &HeaderError{Field: "To", Why: "a message needs at least one recipient"}
	}
	to, err := formatAddressList("To", o.To)
	if err != nil {
		return nil, "", err
	}
	cc, err := formatAddressList("Cc", o.Cc)
	if err != nil {
		return nil, "", err
	}
	if err := checkValue("Subject", o.Subject); err != nil {
		return nil, "", err
	}
	id := o.MessageID
	if id != "" {
		if id, err = checkMsgID("Message-ID", id); err != nil {
			return nil, "", err
		}
	} else {
		domain := o.Domain
		if domain == "" {
			domain = o.From.Addr[strings.LastIndexByte(o.From.Addr, '@')+1:]
		}
		if why := mapping.HostNameProblem(domain); why != "" {
			return nil, "", &HeaderError{Field: "Domain", Why: fmt.Sprintf("%q is not a valid host name (%s)", domain, why)}
		}
		if id, err = newMessageID(strings.ToLower(domain)); err != nil {
			return nil, "", err
		}
	}
	var inReplyTo string
	if o.InReplyTo != "" {
		if inReplyTo, err = checkMsgID("In-Reply-To", o.InReplyTo); err != nil {
			return nil, "", err
		}
	}
	refs := make([]string, 0, len(o.References))
	for _, r := range o.References {
		r, err := checkMsgID("References", r)
		if err != nil {
			return nil, "", err
		}
		refs = append(refs, r)
	}
	date := o.Date
	if date.IsZero() {
		date = time.Now()
	}

	// Header fields, in the order they are written.
	var fields [][2]string
	add := func(k, v string) { fields = append(fields, [2]string{k, v}) }
	add("Date", date.Format(time.RFC1123Z))
	add("From", from)
	if to != "" {
		add("To", to)
	} else if cc == "" {
		add("To", "undisclosed-recipients:;")
	}
	if cc != "" {
		add("Cc", cc)
	}
	// Leading and trailing white space does not survive header unfolding.
	if subject := strings.TrimSpace(o.Subject); subject != "" {
		add("Subject", encodeText(subject))
	}
	add("Message-ID", "<"+id+">")
	if inReplyTo != "" {
		add("In-Reply-To", "<"+inReplyTo+">")
	}
	if len(refs) > 0 {
		add("References", "<"+strings.Join(refs, "> <")+">")
	}
	keys := make([]string, 0, len(o.Headers))
	for k := range o.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := checkFieldName(k); err != nil {
			return nil, "", err
		}
		if reservedHeaders[strings.ToLower(k)] {
			return nil, "", &HeaderError{Field: k, Why: "this header is set by Build from the Outgoing fields and cannot be given in Headers"}
		}
		v := o.Headers[k]
		if err := checkValue(k, v); err != nil {
			return nil, "", err
		}
		add(k, encodeText(v))
	}
	add("MIME-Version", "1.0")
	multipart := len(o.Attachments) > 0
	if multipart {
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, "", fmt.Errorf("mailmsg: generating a boundary: %w", err)
		}
		add("Content-Type", `multipart/mixed; boundary="=_`+base64.RawURLEncoding.EncodeToString(b[:])+`"`)
	} else {
		add("Content-Type", "text/plain; charset=utf-8")
		add("Content-Transfer-Encoding", "quoted-printable")
	}
	// go-message writes the fields of a header last added first.
	for i := len(fields) - 1; i >= 0; i-- {
		h.AddRaw([]byte(foldField(fields[i][0], fields[i][1])))
	}

	text := normalizeBody(o.Text)
	var buf bytes.Buffer
	buf.Grow(len(text) + 1024)
	if !multipart {
		w, err := message.CreateWriter(&buf, h)
		if err != nil {
			return nil, "", fmt.Errorf("mailmsg: writing the header: %w", err)
		}
		if _, err := w.Write([]byte(text)); err != nil {
			return nil, "", fmt.Errorf("mailmsg: writing the text: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, "", fmt.Errorf("mailmsg: writing the text: %w", err)
		}
		return buf.Bytes(), id, nil
	}

	mw, err := message.CreateWriter(&buf, h)
	if err != nil {
		return nil, "", fmt.Errorf("mailmsg: writing the header: %w", err)
	}
	var th message.Header
	setTextPart(&th)
	tw, err := mw.CreatePart(th)
	if err != nil {
		return nil, "", fmt.Errorf("mailmsg: writing the text part: %w", err)
	}
	if _, err := tw.Write([]byte(text)); err != nil {
		return nil, "", fmt.Errorf("mailmsg: writing the text part: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, "", fmt.Errorf("mailmsg: writing the text part: %w", err)
	}
	for i, a := range o.Attachments {
		ah, err := attachmentHeader(i, a)
		if err != nil {
			return nil, "", err
		}
		aw, err := mw.CreatePart(ah)
		if err != nil {
			return nil, "", fmt.Errorf("mailmsg: writing attachment %d: %w", i+1, err)
		}
		if _, err := aw.Write(a.Data); err != nil {
			return nil, "", fmt.Errorf("mailmsg: writing attachment %d: %w", i+1, err)
		}
		if err := aw.Close(); err != nil {
			return nil, "", fmt.Errorf("mailmsg: writing attachment %d: %w", i+1, err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", fmt.Errorf("mailmsg: closing the multipart: %w", err)
	}
	return buf.Bytes(), id, nil
}

func setTextPart(h *message.Header) {
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Transfer-Encoding", "quoted-printable")
}

// checkFieldName accepts an RFC 5322 field name: printable ASCII without
// a colon or space.
func checkFieldName(k string) error {
	if k == "" {
		return &HeaderError{Field: "Headers", Why: "a header name cannot be empty"}
	}
	for _, r := range k {
		if r <= ' ' || r >= 0x7f || r == ':' {
			return &HeaderError{Field: fmt.Sprintf("%q", k), Why: fmt.Sprintf("a header name cannot contain %s", describeRune(r))}
		}
	}
	return nil
}

// attachmentHeader builds the header of attachment i (numbered from 1 in
// errors): its type, its name RFC 2231-encoded when it is not ASCII, base64.
func attachmentHeader(i int, a Part) (message.Header, error) {
	field := fmt.Sprintf("attachment %d", i+1)
	for _, f := range []struct{ name, v string }{{"file name", a.Filename}, {"content type", a.ContentType}, {"content id", a.ContentID}} {
		if err := checkValue(field+" "+f.name, f.v); err != nil {
			return message.Header{}, err
		}
	}
	var h message.Header
	ct := "application/octet-stream"
	var params map[string]string
	if a.ContentType != "" {
		t, p, err := mime.ParseMediaType(a.ContentType)
		if err != nil || !strings.Contains(t, "/") || strings.HasPrefix(t, "multipart/") {
			return h, &HeaderError{Field: field, Why: fmt.Sprintf("the content type %q is not a valid MIME type", a.ContentType)}
		}
		ct, params = t, p
	}
	if params == nil {
		params = map[string]string{}
	}
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || isControl(r) {
			return '_'
		}
		return r
	}, a.Filename)
	disp := "attachment"
	if a.Inline {
		disp = "inline"
	}
	dparams := map[string]string{}
	if name != "" {
		params["name"] = name
		dparams["filename"] = name
	}
	// mime.FormatMediaType writes non-ASCII values as RFC 2231
	// (name*=utf-8''…).
	ctv := mime.FormatMediaType(ct, params)
	if ctv == "" {
		return h, &HeaderError{Field: field, Why: fmt.Sprintf("the content type %q cannot be written", a.ContentType)}
	}
	h.Set("Content-Type", ctv)
	h.Set("Content-Disposition", mime.FormatMediaType(disp, dparams))
	if a.ContentID != "" {
		cid, err := checkMsgID(field+" content id", a.ContentID)
		if err != nil {
			return h, err
		}
		h.Set("Content-ID", "<"+cid+">")
	}
	h.Set("Content-Transfer-Encoding", "base64")
	return h, nil
}

// normalizeBody makes every line end CRLF-ready: lone CR and LF become
// line breaks (the quoted-printable writer writes them as CRLF and encodes
// everything else, NUL included, so no line exceeds 76 octets).
func normalizeBody(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}
