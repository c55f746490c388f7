// Package twilio is a local stand-in for Twilio's Programmable Messaging
// API, for the end-to-end tests, the demo and the load tool. It follows the
// documented Messages resource closely enough that the real twilio-go
// client talks to it:
//
//   - POST /2010-04-01/Accounts/{AccountSid}/Messages.json with HTTP Basic
//     auth (account SID and auth token) and the form fields To, From,
//     MessagingServiceSid, Body, MediaUrl (repeated), StatusCallback; the
//     reply is the message resource as JSON (status "queued", or
//     "accepted" with a Messaging Service), or Twilio's error JSON
//     ({"code","message","more_info","status"}).
//   - GET  …/Messages.json lists messages (filters To, From, DateSent,
//     DateSent>, DateSent<; newest first), as the idempotency check uses it.
//   - Status callbacks (sent, then delivered / undelivered / failed with
//     ErrorCode) are POSTed to the StatusCallback URL, signed the way Twilio
//     signs webhooks (X-Twilio-Signature: base64 HMAC-SHA1 with the auth
//     token over the URL followed by the sorted form keys and values).
//   - Media: GET …/Messages/{MM}/Media/{ME} needs Basic auth and answers a
//     307 redirect to /cdn/{token} (the "media host"), which serves the bytes.
//   - SendInbound posts a signed "A message comes in" webhook.
//
// Error codes are triggered by the To number (SetCreateError), transient
// failures (5xx, 429) by SetTransient, and the final status of each
// recipient by SetOutcome. Every API call is logged (Calls).
package twilio

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Call is one API request the stand-in answered.
type Call struct {
	Time   time.Time
	Method string
	Path   string
	Form   url.Values
	Status int // HTTP status answered
	SID    string
}

// Message is one message created through the API.
type Message struct {
	SID                 string
	To, From            string
	MessagingServiceSID string
	Body                string
	MediaURLs           []string
	StatusCallback      string
	Status              string
	ErrorCode           int
	Created             time.Time
	Segments            int
}

// Outcome is the final status given to messages to one number.
type Outcome struct {
	Status    string // "delivered", "undelivered", "failed"
	ErrorCode int    // for undelivered/failed, e.g. 30003
}

// Server is the stand-in. Its methods are safe for concurrent use.
type Server struct {
	AccountSID string
	AuthToken  string
	// URL is the base URL ("http://127.0.0.1:port"), the api_url to give
	// the gateway.
	URL string

	srv    *http.Server
	ln     net.Listener
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	calls       []Call
	messages    []*Message
	createErr   map[string]int     // To → Twilio error code
	outcomes    map[string]Outcome // To → final status
	transient   []int              // HTTP statuses for the next creates
	media       map[string]media   // token → media
	hold        bool
	stall       chan struct{} // non-nil: creates block after recording
	held        []callback
	callbackErr []error
	// Logf, when set, is told of every API call and callback (the demo
	// prints them).
	Logf func(format string, args ...any)
}

type media struct {
	contentType string
	data        []byte
}

type callback struct {
	url  string
	form url.Values
}

// Start listens on 127.0.0.1 on a free port and serves until Close.
func Start(accountSID, authToken string) (*Server, error) {
	return StartOn("127.0.0.1:0", accountSID, authToken)
}

// StartOn is Start on a given address.
func StartOn(addr, accountSID, authToken string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("twilio stand-in: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		AccountSID: accountSID,
		AuthToken:  authToken,
		URL:        "http://" + ln.Addr().String(),
		ln:         ln,
		client:     &http.Client{Timeout: 10 * time.Second},
		ctx:        ctx,
		cancel:     cancel,
		createErr:  map[string]int{},
		outcomes:   map[string]Outcome{},
		media:      map[string]media{},
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Close stops serving and waits for pending callbacks.
func (s *Server) Close() {
	s.cancel()
	_ = s.srv.Close()
	s.wg.Wait()
	s.client.CloseIdleConnections()
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// SetCreateError makes every create to the number fail with the Twilio
// error code (21211, 21610, 21614, 21408, …); 0 clears it.
func (s *Server) SetCreateError(to string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		delete(s.createErr, to)
	} else {
		s.createErr[to] = code
	}
}

// SetOutcome sets the final status of messages to the number (default
// "delivered").
func (s *Server) SetOutcome(to string, o Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes[to] = o
}

// SetTransient makes the next creates answer these HTTP statuses (500, 503,
// 429), one each, before creates succeed again.
func (s *Server) SetTransient(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.transient = append(s.transient, statuses...)
}

// StallCreates makes every create record the message (it is sent, as far
// as Twilio is concerned) and then hold its answer until ReleaseCreates:
// the client's crash between Twilio's accepting a text and its reading
// the answer.
func (s *Server) StallCreates() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stall == nil {
		s.stall = make(chan struct{})
	}
}

// ReleaseCreates lets stalled creates answer and stops stalling.
func (s *Server) ReleaseCreates() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stall != nil {
		close(s.stall)
		s.stall = nil
	}
}

// HoldCallbacks keeps status callbacks instead of sending them, until
// ReleaseCallbacks.
func (s *Server) HoldCallbacks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = true
}

// ReleaseCallbacks sends the held callbacks, in reverse order when
// reverse is true (the final status before "sent"), each twice when
// twice is true (Twilio may repeat a callback), and stops holding.
func (s *Server) ReleaseCallbacks(reverse, twice bool) {
	s.mu.Lock()
	held := s.held
	s.held, s.hold = nil, false
	s.mu.Unlock()
	if reverse {
		for i, j := 0, len(held)-1; i < j; i, j = i+1, j-1 {
			held[i], held[j] = held[j], held[i]
		}
	}
	for _, cb := range held {
		s.post(cb)
		if twice {
			s.post(cb)
		}
	}
}

// CallbackErrors returns the callbacks the gateway did not answer 2xx.
func (s *Server) CallbackErrors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.callbackErr...)
}

// Calls returns the log of API calls.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Creates counts the create calls (successful or not) to a number.
func (s *Server) Creates(to string) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Method == http.MethodPost && c.Form.Get("To") == to {
			n++
		}
	}
	return n
}

// Messages returns the messages created so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = *m
	}
	return out
}

// MessagesTo returns the messages created to a number.
func (s *Server) MessagesTo(to string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		if m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// AddMedia stores a medium and returns its API URL (the MediaUrlN of an
// inbound webhook), which needs Basic auth and redirects to the media host.
func (s *Server) AddMedia(contentType string, data []byte) string {
	token := randHex(16)
	s.mu.Lock()
	s.media[token] = media{contentType: contentType, data: data}
	s.mu.Unlock()
	return fmt.Sprintf("%s/2010-04-01/Accounts/%s/Messages/MM%s/Media/ME%s", s.URL, s.AccountSID, randHex(16), token)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewSID returns a fresh SID with the prefix ("SM", "MM").
func NewSID(prefix string) string { return prefix + randHex(16) }

func (s *Server) record(r *http.Request, form url.Values, status int, sid string) {
	s.mu.Lock()
	s.calls = append(s.calls, Call{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Form: form, Status: status, SID: sid})
	s.mu.Unlock()
	if r.Method == http.MethodPost {
		s.logf("twilio API: %s %s To=%s From=%s Body=%q media=%d → %d %s", r.Method, r.URL.Path, form.Get("To"),
			firstNonEmpty(form.Get("From"), form.Get("MessagingServiceSid")), form.Get("Body"), len(form["MediaUrl"]), status, sid)
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// ServeHTTP routes the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/cdn/") {
		s.serveCDN(w, r)
		return
	}
	prefix := "/2010-04-01/Accounts/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, prefix)
	sid, rest, _ := strings.Cut(rest, "/")
	user, pass, ok := r.BasicAuth()
	if !ok || user != s.AccountSID || pass != s.AuthToken || sid != s.AccountSID {
		s.record(r, nil, http.StatusUnauthorized, "")
		writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	switch {
	case rest == "Messages.json" && r.Method == http.MethodPost:
		s.create(w, r)
	case rest == "Messages.json" && r.Method == http.MethodGet:
		s.list(w, r)
	case strings.HasPrefix(rest, "Messages/") && strings.Contains(rest, "/Media/") && r.Method == http.MethodGet:
		token := strings.TrimPrefix(rest[strings.LastIndex(rest, "/")+1:], "ME")
		s.mu.Lock()
		_, ok := s.media[token]
		s.mu.Unlock()
		s.record(r, nil, http.StatusTemporaryRedirect, "")
		if !ok {
			writeError(w, http.StatusNotFound, 20404, "The requested resource was not found")
			return
		}
		http.Redirect(w, r, s.URL+"/cdn/"+token, http.StatusTemporaryRedirect)
	default:
		s.record(r, nil, http.StatusNotFound, "")
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
	}
}

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimPrefix(r.URL.Path, "/cdn/")
	s.mu.Lock()
	m, ok := s.media[token]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "" {
		// The media host is another host at Twilio: credentials must not
		// follow the redirect there (Go drops them across hosts; here the
		// host is the same, so this checks nothing was added by hand).
		w.Header().Set("X-Stand-In-Note", "credentials were sent to the media host")
	}
	w.Header().Set("Content-Type", m.contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(m.data)))
	_, _ = w.Write(m.data)
}

// errorText is what Twilio says for the codes the stand-in produces.
var errorText = map[int]string{
	21211: "The 'To' number %s is not a valid phone number.",
	21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: %s.",
	21610: "Attempt to send to unsubscribed recipient",
	21614: "'To' number %s is not a valid mobile number",
	21602: "Message body is required.",
	21604: "A 'To' phone number is required.",
	21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination/account.",
	21617: "The concatenated message body exceeds the 1600 character limit.",
	21623: "Number of media files exceeds allowed limit.",
	20429: "Too Many Requests",
	20500: "Internal Server Error",
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"code": code, "message": msg, "more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status,
	})
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, 20001, "Invalid form")
		return
	}
	form := r.PostForm
	to, from, msid, body := form.Get("To"), form.Get("From"), form.Get("MessagingServiceSid"), form.Get("Body")
	fail := func(status, code int, args ...any) {
		s.record(r, form, status, "")
		msg := errorText[code]
		if strings.Contains(msg, "%s") {
			msg = fmt.Sprintf(msg, args...)
		}
		writeError(w, status, code, msg)
	}
	s.mu.Lock()
	var transient int
	if len(s.transient) > 0 {
		transient, s.transient = s.transient[0], s.transient[1:]
	}
	code := s.createErr[to]
	s.mu.Unlock()
	switch {
	case transient == http.StatusTooManyRequests:
		fail(transient, 20429)
		return
	case transient != 0:
		fail(transient, 20500)
		return
	case to == "":
		fail(http.StatusBadRequest, 21604)
		return
	case from == "" && msid == "":
		fail(http.StatusBadRequest, 21606)
		return
	case body == "" && len(form["MediaUrl"]) == 0:
		fail(http.StatusBadRequest, 21602)
		return
	case len(form["MediaUrl"]) > 10:
		fail(http.StatusBadRequest, 21623)
		return
	case len([]rune(body)) > 1600:
		fail(http.StatusBadRequest, 21617)
		return
	case code != 0:
		fail(http.StatusBadRequest, code, to)
		return
	case !validE164(to):
		fail(http.StatusBadRequest, 21211, to)
		return
	}
	m := &Message{
		SID: NewSID("SM"), To: to, From: from, MessagingServiceSID: msid, Body: body,
		MediaURLs: form["MediaUrl"], StatusCallback: form.Get("StatusCallback"),
		Status: "queued", Created: time.Now().UTC(), Segments: segments(body),
	}
	if len(m.MediaURLs) > 0 {
		m.SID = NewSID("MM")
	}
	if msid != "" {
		m.Status = "accepted"
		if from == "" {
			m.From = "+15005550000"
		}
	}
	s.mu.Lock()
	s.messages = append(s.messages, m)
	out := m.json(s.AccountSID)
	stall := s.stall
	s.mu.Unlock()
	s.record(r, form, http.StatusCreated, m.SID)
	if stall != nil {
		select {
		case <-stall:
		case <-r.Context().Done():
		case <-s.ctx.Done():
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(out)
	if m.StatusCallback != "" {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.progress(m)
		}()
	}
}

// progress sends the status callbacks of one message: sent, then the
// outcome configured for its number.
func (s *Server) progress(m *Message) {
	select {
	case <-time.After(20 * time.Millisecond):
	case <-s.ctx.Done():
		return
	}
	s.mu.Lock()
	o, ok := s.outcomes[m.To]
	if !ok {
		o = Outcome{Status: "delivered"}
	}
	m.Status = "sent"
	sent := m.callbackForm(s.AccountSID)
	m.Status, m.ErrorCode = o.Status, o.ErrorCode
	final := m.callbackForm(s.AccountSID)
	cbs := []callback{{m.StatusCallback, sent}, {m.StatusCallback, final}}
	if s.hold {
		s.held = append(s.held, cbs...)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	for _, cb := range cbs {
		s.post(cb)
	}
}

func (m *Message) callbackForm(account string) url.Values {
	f := url.Values{
		"MessageSid": {m.SID}, "SmsSid": {m.SID}, "AccountSid": {account}, "From": {m.From}, "To": {m.To},
		"MessageStatus": {m.Status}, "SmsStatus": {m.Status}, "ApiVersion": {"2010-04-01"},
	}
	if m.MessagingServiceSID != "" {
		f.Set("MessagingServiceSid", m.MessagingServiceSID)
	}
	if m.ErrorCode != 0 {
		f.Set("ErrorCode", strconv.Itoa(m.ErrorCode))
	}
	return f
}

func (s *Server) post(cb callback) {
	if s.ctx.Err() != nil {
		return
	}
	resp, err := PostSigned(s.ctx, s.client, s.AuthToken, cb.url, cb.url, cb.form)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			err = fmt.Errorf("status callback %s %s: HTTP %d", cb.form.Get("MessageSid"), cb.form.Get("MessageStatus"), resp.StatusCode)
		}
	}
	s.logf("twilio callback: %s %s → %v", cb.form.Get("MessageSid"), cb.form.Get("MessageStatus"), errOr(err, "200"))
	if err != nil {
		s.mu.Lock()
		s.callbackErr = append(s.callbackErr, err)
		s.mu.Unlock()
	}
}

func errOr(err error, ok string) any {
	if err != nil {
		return err
	}
	return ok
}

type messageJSON struct {
	AccountSid          string            `json:"account_sid"`
	APIVersion          string            `json:"api_version"`
	Body                string            `json:"body"`
	DateCreated         string            `json:"date_created"`
	DateSent            *string           `json:"date_sent"`
	DateUpdated         string            `json:"date_updated"`
	Direction           string            `json:"direction"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	From                string            `json:"from"`
	MessagingServiceSid *string           `json:"messaging_service_sid"`
	NumMedia            string            `json:"num_media"`
	NumSegments         string            `json:"num_segments"`
	Price               *string           `json:"price"`
	PriceUnit           string            `json:"price_unit"`
	Sid                 string            `json:"sid"`
	Status              string            `json:"status"`
	SubresourceUris     map[string]string `json:"subresource_uris"`
	To                  string            `json:"to"`
	URI                 string            `json:"uri"`
}

const rfc2822 = "Mon, 02 Jan 2006 15:04:05 -0700"

func (m *Message) json(account string) messageJSON {
	created := m.Created.Format(rfc2822)
	j := messageJSON{
		AccountSid: account, APIVersion: "2010-04-01", Body: m.Body, DateCreated: created, DateSent: &created,
		DateUpdated: created, Direction: "outbound-api", From: m.From, NumMedia: strconv.Itoa(len(m.MediaURLs)),
		NumSegments: strconv.Itoa(m.Segments), PriceUnit: "USD", Sid: m.SID, Status: m.Status, To: m.To,
		URI:             fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s.json", account, m.SID),
		SubresourceUris: map[string]string{"media": fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s/Media.json", account, m.SID)},
	}
	if m.MessagingServiceSID != "" {
		j.MessagingServiceSid = &m.MessagingServiceSID
	}
	if m.ErrorCode != 0 {
		j.ErrorCode = &m.ErrorCode
	}
	return j
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	dayFilter := func(key string) (time.Time, bool) {
		v := q.Get(key)
		if v == "" {
			return time.Time{}, false
		}
		for _, layout := range []string{time.RFC3339, "2006-01-02"} {
			if t, err := time.Parse(layout, v); err == nil {
				return t.UTC().Truncate(24 * time.Hour), true
			}
		}
		return time.Time{}, false
	}
	on, hasOn := dayFilter("DateSent")
	after, hasAfter := dayFilter("DateSent>")
	before, hasBefore := dayFilter("DateSent<")
	s.mu.Lock()
	var out []messageJSON
	for i := len(s.messages) - 1; i >= 0; i-- {
		m := s.messages[i]
		day := m.Created.Truncate(24 * time.Hour)
		if (q.Get("To") != "" && m.To != q.Get("To")) || (q.Get("From") != "" && m.From != q.Get("From")) ||
			(hasOn && !day.Equal(on)) || (hasAfter && day.Before(after)) || (hasBefore && day.After(before)) {
			continue
		}
		out = append(out, m.json(s.AccountSID))
	}
	s.mu.Unlock()
	s.record(r, q, http.StatusOK, "")
	pageSize := 50
	if v, err := strconv.Atoi(q.Get("PageSize")); err == nil && v > 0 && v <= 1000 {
		pageSize = v
	}
	if len(out) > pageSize {
		out = out[:pageSize]
	}
	if out == nil {
		out = []messageJSON{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"messages": out, "first_page_uri": r.URL.RequestURI(), "next_page_uri": nil, "page": 0, "page_size": pageSize,
		"previous_page_uri": nil, "uri": r.URL.RequestURI(), "end": len(out), "start": 0,
	})
}

// Inbound is an "A message comes in" webhook.
type Inbound struct {
	MessageSID string // a fresh SM… when empty
	From, To   string
	Body       string
	// Media are media URLs (from AddMedia) with their content types.
	Media []InboundMedia
}

// InboundMedia is one MediaUrlN/MediaContentTypeN pair.
type InboundMedia struct{ URL, ContentType string }

// Form returns the webhook's form as Twilio sends it.
func (in Inbound) Form(accountSID string) url.Values {
	sid := in.MessageSID
	if sid == "" {
		sid = NewSID("SM")
		if len(in.Media) > 0 {
			sid = NewSID("MM")
		}
	}
	f := url.Values{
		"MessageSid": {sid}, "SmsMessageSid": {sid}, "SmsSid": {sid}, "AccountSid": {accountSID},
		"From": {in.From}, "To": {in.To}, "Body": {in.Body}, "NumMedia": {strconv.Itoa(len(in.Media))},
		"NumSegments": {strconv.Itoa(max(1, segments(in.Body)))}, "SmsStatus": {"received"}, "ApiVersion": {"2010-04-01"},
	}
	for i, m := range in.Media {
		f.Set(fmt.Sprintf("MediaUrl%d", i), m.URL)
		f.Set(fmt.Sprintf("MediaContentType%d", i), m.ContentType)
	}
	return f
}

// SendInbound posts the webhook to postURL, signed for signURL (the
// public URL the gateway checks against: its public_url + "/sms/incoming").
// It returns the HTTP status and body.
func (s *Server) SendInbound(ctx context.Context, postURL, signURL string, in Inbound) (int, string, error) {
	return SendForm(ctx, s.client, s.AuthToken, postURL, signURL, in.Form(s.AccountSID))
}

// SendForm posts a signed form and returns the status and body.
func SendForm(ctx context.Context, c *http.Client, token, postURL, signURL string, form url.Values) (int, string, error) {
	resp, err := PostSigned(ctx, c, token, postURL, signURL, form)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// PostSigned posts form to postURL with X-Twilio-Signature computed over
// signURL.
func PostSigned(ctx context.Context, c *http.Client, token, postURL, signURL string, form url.Values) (*http.Response, error) {
	body := form.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, postURL, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", Sign(token, signURL, form))
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	req.Header.Set("I-Twilio-Idempotency-Token", randHex(8))
	return c.Do(req)
}

// PostSignedJSON posts a JSON body the way Twilio signs JSON webhooks: the
// URL gets a bodySHA256 query parameter (hex SHA-256 of the body), and the
// signature covers that URL with no parameters.
func PostSignedJSON(ctx context.Context, c *http.Client, token, postURL, signURL string, body []byte) (*http.Response, error) {
	sum := sha256.Sum256(body)
	q := "bodySHA256=" + hex.EncodeToString(sum[:])
	join := func(u string) string {
		if strings.Contains(u, "?") {
			return u + "&" + q
		}
		return u + "?" + q
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, join(postURL), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Twilio-Signature", Sign(token, join(signURL), nil))
	return c.Do(req)
}

// Sign computes X-Twilio-Signature: base64(HMAC-SHA1(token, url + the form
// keys sorted, each followed by its value)).
func Sign(token, u string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(u)
	for _, k := range keys {
		for _, v := range form[k] {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	h := hmac.New(sha1.New, []byte(token))
	h.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func validE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		// short codes are valid destinations too
		if len(s) >= 5 && len(s) <= 6 {
			for _, c := range s {
				if c < '0' || c > '9' {
					return false
				}
			}
			return true
		}
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// segments is a rough segment count (GSM-7 assumed for ASCII, UCS-2
// otherwise), only for the num_segments field.
func segments(body string) int {
	n := len([]rune(body))
	ascii := true
	for _, r := range body {
		if r > 0x7e {
			ascii = false
			break
		}
	}
	single, multi := 160, 153
	if !ascii {
		single, multi = 70, 67
	}
	switch {
	case n == 0:
		return 0
	case n <= single:
		return 1
	default:
		return (n + multi - 1) / multi
	}
}
