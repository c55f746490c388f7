package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"switchboard/mapping"
	"switchboard/store"
)

// maxWebhookBytes bounds a webhook body (Twilio's are a few KiB; 10 media
// URLs and a 1,600-character body fit well under it).
const maxWebhookBytes = 64 << 10

// twiml is the answer to "A message comes in": no reply text.
const twiml = `<?xml version="1.0" encoding="UTF-8"?><Response/>`

// inboundText is one accepted inbound text, as stored in the inbound
// queue until it is delivered.
type inboundText struct {
	SID   string    `json:"sid"`
	From  string    `json:"from"`
	To    string    `json:"to"`
	Body  string    `json:"body"`
	Media []medium  `json:"media,omitempty"`
	At    time.Time `json:"at"`
}

type medium struct {
	URL  string `json:"url"`
	Type string `json:"type"`
}

// webhookURL is the URL Twilio called, as the signature covers it: the
// public URL of the gateway followed by the request's path and query.
func (t *Transport) webhookURL(r *http.Request) string {
	return t.publicURL + r.URL.RequestURI()
}

// readSigned reads a webhook body and checks its X-Twilio-Signature. It
// answers the request itself (and returns ok false) when the body is too
// big or the signature is missing or wrong.
func (t *Transport) readSigned(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "Twilio webhooks are POSTed", http.StatusMethodNotAllowed)
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhookBytes+1))
	if err != nil {
		http.Error(w, "reading the body failed", http.StatusBadRequest)
		return nil, false
	}
	if len(body) > maxWebhookBytes {
		http.Error(w, "the body is too large for a Twilio webhook", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	if !t.verify(t.webhookURL(r), body, r.Header.Get("X-Twilio-Signature")) {
		t.mForged.Inc()
		t.log.Warn("a webhook with a bad or missing X-Twilio-Signature was refused", "path", r.URL.Path, "remote", r.RemoteAddr,
			"checked_url", t.webhookURL(r))
		http.Error(w, "bad or missing X-Twilio-Signature", http.StatusForbidden)
		return nil, false
	}
	form, err := parseWebhookBody(r.Header.Get("Content-Type"), r.URL.RawQuery, body)
	if err != nil {
		t.log.Warn("a signed webhook could not be parsed", "path", r.URL.Path, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	if sid := form.Get("AccountSid"); sid != t.cfg.AccountSID {
		t.log.Warn("a signed webhook names another account", "account_sid", sid)
		http.Error(w, "the AccountSid is not this gateway's", http.StatusForbidden)
		return nil, false
	}
	return form, true
}

// verify checks X-Twilio-Signature over url and body: for a form body
// the URL followed by the sorted parameters; for a JSON body (its URL
// carries bodySHA256) the URL alone, plus the body's SHA-256. It uses
// twilio-go's validator, which also tries the URL with and without the
// default port.
func (t *Transport) verify(u string, body []byte, sig string) bool {
	if sig == "" {
		return false
	}
	return t.validator.ValidateBody(u, body, sig)
}

// parseWebhookBody returns a webhook's parameters: a form body, or a JSON
// object of strings (the bodySHA256 variant).
func parseWebhookBody(contentType, rawQuery string, body []byte) (url.Values, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/json" {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("the JSON body is not an object: %w", err)
		}
		v := url.Values{}
		for k, x := range m {
			switch x := x.(type) {
			case string:
				v.Set(k, x)
			case float64:
				v.Set(k, strconv.FormatFloat(x, 'f', -1, 64))
			case bool:
				v.Set(k, strconv.FormatBool(x))
			case nil:
			default:
				return nil, fmt.Errorf("the JSON field %q is not a string or number", k)
			}
		}
		return v, nil
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("the body is not a form: %w", err)
	}
	if q, err := url.ParseQuery(rawQuery); err == nil {
		for k, vs := range q {
			if _, ok := v[k]; !ok && k != "bodySHA256" {
				v[k] = vs
			}
		}
	}
	return v, nil
}

// validSID reports whether s is a Twilio SID with the prefix: two
// letters and 32 hex digits.
func validSID(s string, prefixes ...string) bool {
	if len(s) != 34 {
		return false
	}
	ok := false
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			ok = true
		}
	}
	if !ok {
		return false
	}
	for i := 2; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// errUnroutable marks an inbound text that is well formed but cannot be
// given to anybody (its sender cannot be addressed in a JID).
var errUnroutable = errors.New("unroutable")

// parseInbound checks the fields of "A message comes in".
func parseInbound(f url.Values, maxMedia int) (inboundText, error) {
	in := inboundText{SID: f.Get("MessageSid"), From: f.Get("From"), To: f.Get("To"), Body: f.Get("Body")}
	if !validSID(in.SID, "SM", "MM") {
		return in, fmt.Errorf("the MessageSid %q is not a message SID", in.SID)
	}
	if err := mapping.ValidE164(in.To); err != nil {
		return in, fmt.Errorf("the To number %q is not a number of this gateway: %v", in.To, err)
	}
	if !utf8.ValidString(in.Body) {
		in.Body = strings.ToValidUTF8(in.Body, "\uFFFD")
	}
	if len(in.Body) > 16<<10 {
		return in, fmt.Errorf("the Body is %d bytes long", len(in.Body))
	}
	n := 0
	if s := f.Get("NumMedia"); s != "" {
		var err error
		n, err = strconv.Atoi(s)
		if err != nil || n < 0 || n > maxMedia {
			return in, fmt.Errorf("NumMedia %q is not 0 to %d", s, maxMedia)
		}
	}
	for i := 0; i < n; i++ {
		u := f.Get("MediaUrl" + strconv.Itoa(i))
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return in, fmt.Errorf("MediaUrl%d %q is not an http(s) URL", i, u)
		}
		in.Media = append(in.Media, medium{URL: u, Type: f.Get("MediaContentType" + strconv.Itoa(i))})
	}
	if mapping.ValidRemote(in.From) != nil {
		return in, fmt.Errorf("%w: From %q is neither a phone number nor a short code", errUnroutable, in.From)
	}
	return in, nil
}

// handleIncoming is "A message comes in": check the signature, store the
// text durably (once per MessageSid), then answer 200 with empty TwiML.
func (t *Transport) handleIncoming(w http.ResponseWriter, r *http.Request) {
	form, ok := t.readSigned(w, r)
	if !ok {
		return
	}
	in, err := parseInbound(form, MaxMedia)
	if errors.Is(err, errUnroutable) {
		t.mUnrouted.Inc()
		t.log.Warn("an inbound text cannot be delivered: its sender cannot be addressed", "sid", in.SID, "to", in.To, "err", err)
		writeTwiML(w)
		return
	}
	if err != nil {
		t.log.Warn("a signed inbound webhook is malformed", "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if t.nums.lookup(in.To) == nil {
		t.mUnrouted.Inc()
		t.log.Warn("an inbound text to a number nobody owns was not delivered", "sid", in.SID, "to", in.To, "from", in.From)
		writeTwiML(w)
		return
	}
	in.At = time.Now().UTC()
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	dup, err := t.accept(ctx, in)
	if err != nil {
		t.log.Error("an inbound text could not be stored; Twilio will retry", "sid", in.SID, "err", err)
		http.Error(w, "the text could not be stored", http.StatusServiceUnavailable)
		return
	}
	if dup {
		t.mDuplicate.Inc()
	}
	writeTwiML(w)
}

func writeTwiML(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, twiml)
}

// Dedup records: a MessageID pair per accepted MessageSid (peer "in") and
// per delivered one (peer "in-done"), under a user key of their own. They
// are pruned with the archive (PruneArchive), after history_days but at
// least a week: Twilio's retries come within hours.
const (
	dedupUser = "sms-webhook"
	peerIn    = "in"
	peerDone  = "in-done"
)

// accept stores an inbound text once per MessageSid. It reports dup when
// the SID was accepted before.
func (t *Transport) accept(ctx context.Context, in inboundText) (dup bool, err error) {
	l := t.sidLock(in.SID)
	l.Lock()
	defer l.Unlock()
	if seen, err := t.seen(ctx, peerIn, in.SID); err != nil || seen {
		return seen, err
	}
	payload, err := json.Marshal(in)
	if err != nil {
		return false, err
	}
	it := &store.QueueItem{Transport: queueIn, User: in.To, Peer: in.From, StanzaID: in.SID, Payload: payload}
	pair := store.MessageID{User: dedupUser, Transport: Name, Peer: peerIn, StanzaID: in.SID, RemoteID: in.SID}
	if _, ok := t.st.(store.Batcher); ok && t.accepts != nil {
		// Group commit: the writer stores every request waiting meanwhile
		// in one transaction.
		req := acceptReq{it: it, pair: pair, done: make(chan error, 1)}
		select {
		case t.accepts <- req:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		select {
		case err := <-req.done:
			if err != nil {
				return false, err
			}
		case <-ctx.Done():
			return false, ctx.Err()
		}
		poke(t.wakeIn)
		return false, nil
	}
	if err := t.st.Enqueue(ctx, it); err != nil {
		return false, err
	}
	// A crash here leaves the text queued without its record: a retry of
	// the webhook queues it again, and the delivery of the second copy
	// finds the first's "in-done" record (or both go out with the same
	// stanza id).
	if err := t.st.PutMessageID(ctx, pair); err != nil {
		return false, err
	}
	poke(t.wakeIn)
	return false, nil
}

// acceptReq is one webhook's text waiting for the group commit.
type acceptReq struct {
	it   *store.QueueItem
	pair store.MessageID
	done chan error
}

// acceptBatch bounds one group commit.
const acceptBatch = 512

// acceptLoop writes the accepted texts: it takes the first request, then
// every other already waiting (up to acceptBatch), and stores them all in
// one transaction; the webhooks are answered when it committed. While one
// batch commits, the next gathers.
func (t *Transport) acceptLoop(ctx context.Context) {
	b := t.st.(store.Batcher)
	for {
		var reqs []acceptReq
		select {
		case <-ctx.Done():
			return
		case r := <-t.accepts:
			reqs = append(reqs, r)
		}
	gather:
		for len(reqs) < acceptBatch {
			select {
			case r := <-t.accepts:
				reqs = append(reqs, r)
			default:
				break gather
			}
		}
		items := make([]*store.QueueItem, len(reqs))
		pairs := make([]store.MessageID, len(reqs))
		for i, r := range reqs {
			items[i], pairs[i] = r.it, r.pair
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := b.EnqueueBatch(wctx, items, pairs)
		cancel()
		for _, r := range reqs {
			r.done <- err
		}
	}
}

// handleStatus is a status callback of an outbound text.
func (t *Transport) handleStatus(w http.ResponseWriter, r *http.Request) {
	form, ok := t.readSigned(w, r)
	if !ok {
		return
	}
	ref := form.Get("ref")
	sid, status := form.Get("MessageSid"), form.Get("MessageStatus")
	if status == "" {
		status = form.Get("SmsStatus")
	}
	code, _ := strconv.Atoi(form.Get("ErrorCode"))
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := t.statusCallback(ctx, ref, sid, status, code); err != nil {
		t.log.Error("a status callback could not be handled; Twilio will retry", "sid", sid, "status", status, "err", err)
		http.Error(w, "the status could not be recorded", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func parseBase(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("sms: api_url %q: %w", s, err)
	}
	return u, nil
}

// seen reports whether a dedup record of sid exists under peer.
func (t *Transport) seen(ctx context.Context, peer, sid string) (bool, error) {
	if b, ok := t.st.(store.Batcher); ok {
		return b.HasStanzaID(ctx, dedupUser, Name, peer, sid)
	}
	_, err := t.st.FindByStanzaID(ctx, dedupUser, Name, peer, sid)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
