package email

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
	"switchboard/transports/email/mailmsg"
)

// inLease is how long the delivery worker holds an inbound mail; one
// that is not confirmed by then is delivered again (with the same id).
const inLease = 30 * time.Second

// inBatch is how many accepted mails one Sync confirms.
const inBatch = 64

// maxRcpts bounds the recipients of one inbound message.
const maxRcpts = 100

// inMeta is what the listener knew about an accepted mail, stored in
// front of the raw message.
type inMeta struct {
	From     string    `json:"from"`           // envelope sender ("" for bounces)
	Rcpt     string    `json:"rcpt"`           // envelope recipient
	IP       string    `json:"ip"`             // client address
	Trusted  bool      `json:"trusted"`        // from a trusted relay
	Auth     string    `json:"auth,omitempty"` // "fail" when authentication failed
	AuthWhy  string    `json:"auth_why,omitempty"`
	Received time.Time `json:"received"`
	User     string    `json:"user,omitempty"` // bare JID (spool files)
}

func encodeIn(m inMeta, raw []byte) ([]byte, error) {
	h, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding the envelope: %w", err)
	}
	out := make([]byte, 0, len(h)+1+len(raw))
	out = append(out, h...)
	out = append(out, '\n')
	return append(out, raw...), nil
}

func decodeIn(p []byte) (inMeta, []byte, error) {
	var m inMeta
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		return m, nil, errors.New("stored mail has no envelope line")
	}
	if err := json.Unmarshal(p[:i], &m); err != nil {
		return m, nil, fmt.Errorf("stored mail envelope: %w", err)
	}
	return m, p[i+1:], nil
}

// listen opens the SMTP (or LMTP) listener.
func (t *Transport) listen(ctx context.Context) (*smtp.Server, net.Listener, error) {
	srv := smtp.NewServer(&backend{t: t})
	srv.Domain = t.cfg.HostedDomain
	srv.LMTP = t.cfg.LMTP
	srv.MaxMessageBytes = t.cfg.MaxMessageBytes
	srv.MaxRecipients = maxRcpts
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = time.Minute
	srv.AllowInsecureAuth = false
	srv.ErrorLog = smtpLogger{t}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", t.cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("email.listen: cannot listen on %s: %w", t.cfg.Listen, err)
	}
	ln = limitListener{Listener: ln, t: t}
	t.listenMu.Lock()
	t.listenAddr = ln.Addr().String()
	t.listenMu.Unlock()
	proto := "SMTP"
	if t.cfg.LMTP {
		proto = "LMTP"
	}
	t.log.Info("mail listener up", "addr", ln.Addr().String(), "protocol", proto, "domain", t.cfg.HostedDomain)
	return srv, ln, nil
}

type smtpLogger struct{ t *Transport }

func (l smtpLogger) Printf(format string, v ...any) {
	l.t.log.Debug("smtp server", "msg", fmt.Sprintf(format, v...))
}
func (l smtpLogger) Println(v ...any) { l.t.log.Debug("smtp server", "msg", fmt.Sprint(v...)) }

type backend struct{ t *Transport }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	t := b.t
	var ip netip.Addr
	if ta, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(ta.IP)
		ip = ip.Unmap()
	}
	return &inSession{t: t, conn: c, ip: ip, trusted: t.cfg.trustedAddr(ip)}, nil
}

// limitListener refuses (421, then close) a connection from an address
// that already has listen_per_ip open, before any SMTP is spoken;
// trusted relays are not counted.
type limitListener struct {
	net.Listener
	t *Transport
}

func (l limitListener) Accept() (net.Conn, error) {
	t := l.t
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var ip netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			ip, _ = netip.AddrFromSlice(ta.IP)
			ip = ip.Unmap()
		}
		if t.cfg.ListenPerIP <= 0 || t.cfg.trustedAddr(ip) {
			return c, nil
		}
		key := ip.String()
		t.ipMu.Lock()
		n := t.perIP[key]
		if n >= t.cfg.ListenPerIP {
			t.ipMu.Unlock()
			t.log.Info("refused a connection: too many from one address", "ip", key, "limit", t.cfg.ListenPerIP)
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = fmt.Fprintf(c, "421 4.7.0 Too many connections from %s (limit %d); try again later\r\n", key, t.cfg.ListenPerIP)
			c.Close()
			continue
		}
		t.perIP[key] = n + 1
		t.ipMu.Unlock()
		return &countedConn{Conn: c, t: t, key: key}, nil
	}
}

// countedConn gives its slot back when closed.
type countedConn struct {
	net.Conn
	t    *Transport
	key  string
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.t.ipMu.Lock()
		if c.t.perIP[c.key]--; c.t.perIP[c.key] <= 0 {
			delete(c.t.perIP, c.key)
		}
		c.t.ipMu.Unlock()
	})
	return c.Conn.Close()
}

type inRcpt struct {
	addr string // as given
	user string // bare JID
}

type inSession struct {
	t       *Transport
	conn    *smtp.Conn // nil in unit tests
	ip      netip.Addr
	trusted bool
	from    string
	rcpts   []inRcpt
}

func (s *inSession) Reset() { s.from, s.rcpts = "", nil }

func (s *inSession) Logout() error { return nil }

func (s *inSession) Mail(from string, opts *smtp.MailOptions) error {
	if opts != nil && opts.Size > s.t.cfg.MaxMessageBytes {
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
			Message: fmt.Sprintf("Message too big: the limit is %d bytes", s.t.cfg.MaxMessageBytes)}
	}
	if from != "" {
		if _, err := mapping.NormalizeMailbox(from); err != nil {
			return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address syntax"}
		}
	}
	s.from = from
	return nil
}

func (s *inSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	t := s.t
	at := strings.LastIndexByte(to, '@')
	if at < 0 || !strings.EqualFold(to[at+1:], t.cfg.HostedDomain) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: fmt.Sprintf("<%s>: relay access denied; this server only takes mail for @%s", to, t.cfg.HostedDomain)}
	}
	local := strings.ToLower(to[:at])
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	owner, err := t.lookupAddress(ctx, local, false)
	if err != nil {
		t.log.Error("looking up a hosted address failed", "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary lookup failure; try again later"}
	}
	if owner == "" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: fmt.Sprintf("<%s>: no such user here", to)}
	}
	if _, rule := t.refusedBy(ctx, owner, func(a string) bool { return t.blocks(owner, a) }, s.from); rule != "" {
		t.log.Info("refused mail from a blocked sender", "user", owner, "from", s.from, "rule", rule)
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: fmt.Sprintf("<%s> does not accept mail from <%s>", to, s.from)}
	}
	s.rcpts = append(s.rcpts, inRcpt{addr: to, user: owner})
	return nil
}

// hasBlocks reports whether a hosted user blocks anyone (cached index).
func (t *Transport) hasBlocks(user string) bool {
	t.addrMu.Lock()
	defer t.addrMu.Unlock()
	return t.blocked[user] != ""
}

// blocks reports whether a hosted user blocks a sender (cached index).
func (t *Transport) blocks(user, addr string) bool {
	t.addrMu.Lock()
	list := t.blocked[user]
	t.addrMu.Unlock()
	return isBlocked(&store.Account{Fields: map[string]string{"blocked": list}}, addr)
}

// isBlocked reports whether the account blocks a sender address.
func isBlocked(a *store.Account, addr string) bool {
	if a == nil || a.Fields["blocked"] == "" || addr == "" {
		return false
	}
	addr = strings.ToLower(addr)
	for _, b := range strings.Split(a.Fields["blocked"], "\n") {
		if b == addr {
			return true
		}
	}
	return false
}

func (s *inSession) Data(r io.Reader) error {
	outcomes, err := s.store(r)
	if err != nil {
		return err
	}
	// SMTP has one answer for all recipients: a storage failure for any
	// of them asks for the whole mail again (the copies already stored
	// are delivered again with the same stanza id), and a mail refused
	// for every recipient is refused.
	var refused error
	stored := false
	for _, e := range outcomes {
		switch {
		case e == nil:
			stored = true
		case isTemporary(e):
			return e
		default:
			refused = e
		}
	}
	if !stored {
		return refused
	}
	return nil
}

// LMTPData is Data for LMTP (lmtp = true): each recipient gets its own
// answer, so a sender blocked by one recipient is refused for that one
// only, and a storage failure asks again only for the recipients it hit.
func (s *inSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	outcomes, err := s.store(r)
	if err != nil {
		return err
	}
	for i, rc := range s.rcpts {
		status.SetStatus(rc.addr, outcomes[i])
	}
	return nil
}

var _ smtp.LMTPSession = (*inSession)(nil)

func isTemporary(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Temporary()
}

// store reads the mail and stores one copy per recipient: outcomes[i] is
// nil when the copy for s.rcpts[i] is durably stored, else the SMTP
// error for that recipient. An error is for the whole mail.
func (s *inSession) store(r io.Reader) ([]error, error) {
	t := s.t
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, err // go-smtp answers 552 for ErrDataTooLarge
	}
	if len(s.rcpts) == 0 {
		return nil, &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := authClient{ip: s.ip, mailFrom: s.from}
	if s.conn != nil {
		client.helo = s.conn.Hostname()
	}
	verdict := t.checkAuth(ctx, raw, s.trusted, client)
	if verdict.result == "fail" && t.cfg.AuthPolicy == "reject" {
		t.log.Info("refused unauthenticated mail", "from", s.from, "ip", s.ip.String(), "why", verdict.why)
		return nil, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: "Message refused: the sender could not be authenticated (" + verdict.why + ")"}
	}
	now := t.now().UTC()
	outcomes := make([]error, len(s.rcpts))
	hdrFrom, listAddr, hdrRead := "", "", false
	stored := false
	for i, rc := range s.rcpts {
		// The From header and a list's posting address (the list is
		// the contact) against the blocked field and the XEP-0191 list.
		if t.hasBlocks(rc.user) || !t.xmppBlockList(ctx, rc.user, false).empty() {
			if !hdrRead {
				hdrFrom, listAddr = senderAddrs(raw)
				hdrRead = true
			}
			user := rc.user
			if a, rule := t.refusedBy(ctx, user, func(a string) bool { return t.blocks(user, a) }, hdrFrom, listAddr); rule != "" {
				t.log.Info("refused mail from a blocked sender", "user", user, "from", a, "rule", rule)
				outcomes[i] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
					Message: fmt.Sprintf("<%s> does not accept mail from <%s>", rc.addr, a)}
				continue
			}
		}
		p, err := encodeIn(inMeta{From: s.from, Rcpt: rc.addr, IP: s.ip.String(), Trusted: s.trusted,
			Auth: verdict.result, AuthWhy: verdict.why, Received: now, User: rc.user}, raw)
		if err != nil {
			return nil, err
		}
		if t.spool != nil {
			err = t.spool.put(p)
		} else {
			err = t.st.Enqueue(ctx, &store.QueueItem{Transport: queueIn, User: rc.user, Peer: strings.ToLower(s.from), Payload: p})
		}
		if err != nil {
			t.log.Error("storing an inbound mail failed", "err", err)
			outcomes[i] = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Could not store the message; try again later"}
			continue
		}
		stored = true
	}
	if stored {
		wake(t.wakeIn)
	}
	return outcomes, nil
}

// headerFrom returns the lowercased address of the From header, or "".
func headerFrom(raw []byte) string {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		end = bytes.Index(raw, []byte("\n\n"))
	}
	if end < 0 {
		end = len(raw)
	}
	for _, line := range strings.Split(string(raw[:end]), "\n") {
		if len(line) > 5 && strings.EqualFold(line[:5], "from:") {
			if a, err := mailmsg.ValidateAddress(strings.TrimSpace(line[5:])); err == nil {
				return strings.ToLower(a.Addr)
			}
		}
	}
	return ""
}

// runInbound delivers accepted mail to XMPP: claim a batch, emit each,
// one Sync, then remove them from the store.
func (t *Transport) runInbound(ctx context.Context) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		n := t.deliverBatch(ctx)
		if n == inBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.wakeIn:
			// Mail comes in bursts: a moment's wait lets the DATA
			// commands being stored now join this batch, which then
			// shares one transaction and one Sync (a few milliseconds
			// more on a mail's way, far less work per mail under load).
			linger := time.NewTimer(inLinger)
			select {
			case <-ctx.Done():
				linger.Stop()
				return
			case <-linger.C:
			}
		case <-tick.C:
		}
	}
}

// inLinger is how long the delivery worker waits after a new mail before
// it takes a batch.
const inLinger = 3 * time.Millisecond

// inItem is one accepted mail waiting for delivery to XMPP: a store
// queue item or a spool file.
type inItem struct {
	q        *store.QueueItem
	key      spoolKey // spool record (q nil)
	user     string
	payload  []byte
	attempts int
}

// claimIn returns the next batch of accepted mail.
func (t *Transport) claimIn(ctx context.Context) ([]inItem, error) {
	if t.spool == nil {
		items, err := t.st.Claim(ctx, queueIn, t.now(), inLease, inBatch)
		if err != nil {
			return nil, err
		}
		out := make([]inItem, len(items))
		for i := range items {
			out[i] = inItem{q: &items[i], user: items[i].User, payload: items[i].Payload, attempts: items[i].Attempts}
		}
		return out, nil
	}
	var out []inItem
	now := t.now()
	for _, k := range t.spool.list(inBatch * 4) {
		if r, ok := t.spoolRetry[k]; ok && now.Before(r.next) {
			continue
		}
		p, err := t.spool.read(k)
		if err != nil {
			// Kept: a file that cannot be read now (no descriptors left,
			// an I/O error) may be readable later.
			t.log.Error("a spooled mail cannot be read; will try again", "key", k.String(), "err", err)
			t.spoolRetry[k] = spoolRetry{attempts: t.spoolRetry[k].attempts + 1, next: now.Add(time.Minute)}
			continue
		}
		meta, _, err := decodeIn(p)
		if err != nil {
			t.log.Error("dropping an unreadable spooled mail", "key", k.String(), "err", err)
			_ = t.spool.remove(k)
			continue
		}
		out = append(out, inItem{key: k, user: meta.User, payload: p, attempts: t.spoolRetry[k].attempts})
		if len(out) == inBatch {
			break
		}
	}
	return out, nil
}

func (t *Transport) finishIn(ctx context.Context, it inItem) {
	if it.q == nil {
		if err := t.spool.remove(it.key); err != nil {
			t.log.Warn("removing a delivered mail from the spool failed", "key", it.key.String(), "err", err)
		}
		delete(t.spoolRetry, it.key)
		return
	}
	if err := t.st.Dequeue(ctx, it.q.ID, it.q.Lease); err != nil && ctx.Err() == nil {
		t.log.Warn("removing a delivered mail from the store failed", "id", it.q.ID, "err", err)
	}
}

func (t *Transport) retryIn(ctx context.Context, it inItem) {
	delay := time.Duration(1<<min(it.attempts, 6)) * time.Second
	if it.q == nil {
		t.spoolRetry[it.key] = spoolRetry{attempts: it.attempts + 1, next: t.now().Add(delay)}
		return
	}
	if err := t.st.Reschedule(ctx, it.q.ID, it.q.Lease, t.now().Add(delay), "delivery to XMPP failed"); err != nil && ctx.Err() == nil {
		t.log.Warn("rescheduling an inbound mail failed", "id", it.q.ID, "err", err)
	}
}

type spoolRetry struct {
	attempts int
	next     time.Time
}

func (t *Transport) deliverBatch(ctx context.Context) int {
	items, err := t.claimIn(ctx)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Error("reading the inbound queue failed", "err", err)
		}
		return 0
	}
	if len(items) == 0 {
		return 0
	}
	var done, retry []inItem
	emitted := false
	b := &batchState{accounts: map[string]*store.Account{}, convs: map[[2]string]conv{}}
	for _, it := range items {
		ok, sent, err := t.deliverOne(ctx, it, b)
		switch {
		case err != nil:
			t.log.Warn("delivering a mail to XMPP failed; will retry", "user", it.user, "err", err)
			retry = append(retry, it)
		case ok && !sent:
			done = append(done, it)
		}
	}
	// Thread state first: a reply the user sends the moment a mail
	// arrives must find it.
	b.flush(ctx, t)
	for _, pe := range b.events {
		it := b.items[pe.item]
		var err error
		for _, ev := range pe.evs {
			if err = t.gw.Emit(ctx, "email", ev); err != nil {
				break
			}
		}
		if err != nil {
			t.log.Warn("delivering a mail to XMPP failed; will retry", "user", it.user, "err", err)
			retry = append(retry, it)
			continue
		}
		t.msgsIn.Inc()
		done = append(done, it)
		emitted = true
	}
	if emitted {
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := t.gw.Sync(sctx, "email")
		cancel()
		if err != nil {
			t.log.Warn("the XMPP server did not confirm delivered mail; will deliver again", "err", err)
			retry = append(retry, done...)
			done = nil
		}
	}
	var spooled []spoolKey
	for _, it := range done {
		if it.q == nil {
			spooled = append(spooled, it.key)
			delete(t.spoolRetry, it.key)
			continue
		}
		t.finishIn(ctx, it)
	}
	if err := t.spool.remove(spooled...); err != nil {
		t.log.Warn("removing delivered mail from the spool failed", "mails", len(spooled), "err", err)
	}
	for _, it := range retry {
		t.retryIn(ctx, it)
	}
	return len(items)
}

// batchState caches accounts and coalesces thread-state writes within one
// delivery batch (only the last mail of a conversation decides it).
type batchState struct {
	accounts map[string]*store.Account
	convs    map[[2]string]conv // (user, key) → state
	order    [][2]string
	// Message-ID ↔ stanza id pairs to write with the thread state, and
	// the same by (user, peer, Message-ID) for replies within the batch.
	pairs   []store.MessageID
	pairIdx map[[3]string]string
	// extra is other state to write with it (a group mail's participants).
	extra []store.StateValue
	// events to emit once the thread state is saved, per item.
	items  []inItem
	events []pendingEvents
}

type pendingEvents struct {
	item int
	evs  []bridge.Outbound
}

func (b *batchState) putConv(user, key string, c conv) {
	k := [2]string{user, key}
	if _, ok := b.convs[k]; !ok {
		b.order = append(b.order, k)
	}
	b.convs[k] = c
}

func (b *batchState) putPair(m store.MessageID) {
	if b.pairIdx == nil {
		b.pairIdx = map[[3]string]string{}
	}
	b.pairs = append(b.pairs, m)
	b.pairIdx[[3]string{m.User, m.Peer, m.RemoteID}] = m.StanzaID
}

// findPair returns the stanza id of a Message-ID delivered earlier in
// the batch.
func (b *batchState) findPair(user, peer, remoteID string) (string, bool) {
	if b == nil {
		return "", false
	}
	id, ok := b.pairIdx[[3]string{user, peer, remoteID}]
	return id, ok
}

// flush writes the batch's Message-ID pairs and thread state: in one
// transaction when the store can (one commit for the whole batch instead
// of two or three per mail), else one write each.
func (b *batchState) flush(ctx context.Context, t *Transport) {
	defer func() { b.convs, b.order, b.pairs, b.pairIdx, b.extra = map[[2]string]conv{}, nil, nil, nil, nil }()
	if bs, ok := t.st.(store.Batcher); ok {
		states := make([]store.StateValue, 0, len(b.order)+len(b.extra))
		for _, k := range b.order {
			states = append(states, store.StateValue{User: k[0], Transport: "email", Key: k[1], Value: encodeConv(b.convs[k])})
		}
		states = append(states, b.extra...)
		if err := bs.WriteBatch(ctx, b.pairs, states); err != nil {
			t.log.Warn("saving the thread state of delivered mail failed", "mails", len(b.items), "err", err)
		}
		return
	}
	for _, m := range b.pairs {
		if err := t.st.PutMessageID(ctx, m); err != nil {
			t.log.Warn("saving a Message-ID failed", "err", err)
		}
	}
	for _, k := range b.order {
		t.putConv(ctx, k[0], k[1], b.convs[k])
	}
	for _, v := range b.extra {
		if err := t.st.PutState(ctx, v.User, v.Transport, v.Key, v.Value); err != nil {
			t.log.Warn("saving the participants of a mail failed", "user", v.User, "err", err)
		}
	}
}

// deliverOne turns one stored mail into XMPP events. ok means the item is
// finished (delivered or dropped for good); sent that something was
// emitted (so a Sync must confirm it).
func (t *Transport) deliverOne(ctx context.Context, it inItem, b *batchState) (ok, sent bool, err error) {
	meta, raw, err := decodeIn(it.payload)
	if err != nil {
		t.log.Error("dropping an unreadable stored mail", "err", err)
		return true, false, nil
	}
	acct := b.accounts[it.user]
	if acct == nil {
		acct, err = t.st.GetAccount(ctx, it.user, "email")
		if errors.Is(err, store.ErrNotFound) {
			t.log.Info("dropping mail for a user who unregistered", "user", it.user)
			return true, false, nil
		}
		if err != nil {
			return false, false, err
		}
		b.accounts[it.user] = acct
	}
	evs := t.convert(ctx, acct, raw, meta.Auth, meta.AuthWhy, meta.From, b)
	b.events = append(b.events, pendingEvents{item: len(b.items), evs: evs})
	b.items = append(b.items, it)
	return true, len(evs) > 0, nil
}

// conv is what the gateway remembers about a conversation (per contact)
// or a thread, to thread replies.
type conv struct {
	Last    string   `json:"last"`    // last Message-ID seen or sent
	Refs    []string `json:"refs"`    // References of the last message
	Subject string   `json:"subject"` // subject of the thread
	Thread  string   `json:"thread"`  // XMPP <thread>
	// People are the participants of a group conversation (group.go):
	// a reply in the thread goes to all of them. Empty: one-to-one.
	People []person `json:"people,omitempty"`
	// ReplyTo is the Reply-To of the contact's last mail when it names
	// someone else: a reply goes there, as a mail client's would.
	ReplyTo []person `json:"reply_to,omitempty"`
}

const maxRefs = 20

func (t *Transport) getConv(ctx context.Context, user, key string) conv {
	var c conv
	if b, err := t.st.GetState(ctx, user, "email", key); err == nil {
		_ = json.Unmarshal(b, &c)
	}
	return c
}

// encodeConv is the stored form of a conversation's state (References
// cut to the root and the last maxRefs-1).
func encodeConv(c conv) []byte {
	if len(c.Refs) > maxRefs {
		c.Refs = append(c.Refs[:1:1], c.Refs[len(c.Refs)-maxRefs+1:]...)
	}
	b, _ := json.Marshal(c)
	return b
}

func (t *Transport) putConv(ctx context.Context, user, key string, c conv) {
	if err := t.st.PutState(ctx, user, "email", key, encodeConv(c)); err != nil {
		t.log.Warn("saving thread state failed", "user", user, "err", err)
	}
}

// convert parses a mail for acct and returns the events to emit.
func (t *Transport) convert(ctx context.Context, acct *store.Account, raw []byte, auth, authWhy, envFrom string, b *batchState) []bridge.Outbound {
	to, err := userJID(acct.User)
	if err != nil {
		t.log.Error("bad stored user", "err", err)
		return nil
	}
	fold := acct.Fields["fold_quotes"]
	if fold == "" {
		fold = t.cfg.FoldQuotes
	}
	m, perr := mailmsg.Parse(bytes.NewReader(raw), mailmsg.ParseOptions{FoldQuotes: fold, MaxPartBytes: t.cfg.MaxMessageBytes})
	if perr != nil || m == nil {
		from := envFrom
		if from == "" {
			from = "mailer-daemon@" + t.cfg.HostedDomain
		}
		addr, err := t.codec.Mailbox(from)
		if err != nil {
			t.log.Warn("dropping an unreadable mail from an unusable sender", "user", acct.User, "err", perr)
			return nil
		}
		return []bridge.Outbound{bridge.Message{To: to, From: addr, Type: bridge.Chat, ID: deriveID("mail-", string(raw)),
			Body: fmt.Sprintf("A mail from %s could not be read: %v", from, perr)}}
	}
	// A delivery status notification about a mail we sent.
	if m.DSN != nil {
		if ev, ok := t.dsnEvent(ctx, acct, to, m); ok {
			return []bridge.Outbound{ev}
		}
	}
	// Who the contact is: the list for list mail, else the author.
	author := m.From
	if author.Addr == "" {
		author.Addr = envFrom
	}
	contact := author.Addr
	isList := false
	if m.ListID != "" && m.ListPost != "" {
		if lp := listPostAddress(m.ListPost); lp != "" {
			contact, isList = lp, true
		}
	}
	addr, err := t.codec.Mailbox(contact)
	if err != nil {
		if addr, err = t.codec.Mailbox(envFrom); err != nil {
			t.log.Warn("dropping mail whose sender cannot be a contact", "user", acct.User, "from", contact, "err", err)
			return nil
		}
	}
	peer := addr.Name
	// Group mail: who else got it (never for list mail, which is answered
	// on the list). The author is one of the people a reply-all goes to.
	var others, people []person
	if !isList {
		others = t.others(acct, m, author.Addr)
	}
	if len(others) > 0 {
		people = append([]person{{Name: author.Name, Addr: author.Addr}}, others...)
	}
	var replyTo []person
	if !isList {
		replyTo = replyToOthers(m, author.Addr)
	}
	key := m.MessageID
	if key == "" {
		key = string(raw)
	}
	id := deriveID("mail-", acct.User+"\x00"+key)

	// Threading.
	thread := mailmsg.ThreadID(m)
	// Only a reply can belong to a thread an XMPP client named (the
	// threadmap is keyed by the root the user's mail replied to); a mail
	// that starts a conversation saves the lookup.
	if thread != "" && (m.InReplyTo != "" || len(m.References) > 0) {
		if b, err := t.st.GetState(ctx, acct.User, "email", "threadmap:"+thread); err == nil && len(b) > 0 {
			thread = string(b)
		}
	}
	var reply *bridge.Reply
	if m.InReplyTo != "" {
		if sid, ok := b.findPair(acct.User, peer, m.InReplyTo); ok {
			reply = &bridge.Reply{ID: sid}
		} else if mid, err := t.st.FindByRemoteID(ctx, acct.User, "email", peer, m.InReplyTo); err == nil {
			reply = &bridge.Reply{ID: mid.StanzaID}
		}
	}
	if m.MessageID != "" {
		pair := store.MessageID{User: acct.User, Transport: "email", Peer: peer, StanzaID: id, RemoteID: m.MessageID}
		if b != nil {
			b.putPair(pair)
		} else if err := t.st.PutMessageID(ctx, pair); err != nil {
			t.log.Warn("saving a Message-ID failed", "err", err)
		}
		refs := append(append([]string{}, m.References...), m.MessageID)
		c := conv{Last: m.MessageID, Refs: refs, Subject: m.Subject, Thread: thread, People: people, ReplyTo: replyTo}
		if v, ok := groupState(acct.User, m.MessageID, people); ok {
			if b != nil {
				b.extra = append(b.extra, v)
			} else if err := t.st.PutState(ctx, v.User, v.Transport, v.Key, v.Value); err != nil {
				t.log.Warn("saving the participants of a mail failed", "user", v.User, "err", err)
			}
		}
		put := func(key string) {
			if b != nil {
				b.putConv(acct.User, key, c)
			} else {
				t.putConv(ctx, acct.User, key, c)
			}
		}
		put("conv:" + peer)
		if thread != "" {
			put("thread:" + thread)
		}
	}

	var body strings.Builder
	if auth == "fail" {
		fmt.Fprintf(&body, "⚠ Unverified sender: this mail failed authentication (%s); the From address may be forged.\n", authWhy)
	}
	if len(others) > 0 {
		body.WriteString(participantsLine(others) + "\n")
	}
	if len(replyTo) > 0 {
		body.WriteString("Replies go to " + replyToLine(replyTo) + "\n")
	}
	nick := author.Name
	if isList {
		who := author.Name
		if who == "" {
			who = author.Addr
		}
		fmt.Fprintf(&body, "%s:\n", who)
		nick = m.ListID
	}
	body.WriteString(strings.TrimRight(m.Text, "\r\n"))
	var atts []bridge.Attachment
	for _, p := range m.Attachments {
		a, note := t.storeAttachment(ctx, p)
		if a != nil {
			atts = append(atts, *a)
		}
		if note != "" {
			fmt.Fprintf(&body, "\n%s", note)
		}
	}
	msg := bridge.Message{To: to, From: addr, Type: bridge.Chat, ID: id, Body: body.String(), Thread: thread, Nick: nick, Reply: reply,
		Time: m.Date, Attachments: atts, Addresses: append(t.extAddresses(others), t.replyToAddresses(replyTo)...)}
	if m.Subject != "" {
		s := m.Subject
		msg.Subject = &s
	}
	if len(atts) > 0 && strings.TrimSpace(msg.Body) == "" && len(atts) > 1 {
		msg.Body = fmt.Sprintf("(%d attachments)", len(atts))
	}
	return []bridge.Outbound{msg}
}

// indexFoldASCII is strings.Index with ASCII case folding; sub must be
// lowercase ASCII.
func indexFoldASCII(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		match := true
		for j := 0; j < len(sub); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

// listPostAddress extracts the address of a List-Post header
// ("<mailto:list@example.org>").
func listPostAddress(s string) string {
	s = strings.TrimSpace(s)
	// mailmsg gives the bare address; a raw header has <mailto:…>.
	// ASCII-only folding: strings.ToLower changes the length of invalid
	// UTF-8, and an index into it would not fit s (found by fuzzing).
	if i := indexFoldASCII(s, "mailto:"); i >= 0 {
		s = s[i+7:]
	} else if strings.ContainsAny(s, "<>( ") {
		return ""
	}
	if j := strings.IndexAny(s, ">?, "); j >= 0 {
		s = s[:j]
	}
	if _, err := mapping.NormalizeMailbox(s); err != nil {
		return ""
	}
	return s
}

// dsnEvent turns a DSN about one of our mails into an error stanza on the
// original message id.
func (t *Transport) dsnEvent(ctx context.Context, acct *store.Account, to jid.JID, m *mailmsg.Message) (bridge.Outbound, bool) {
	d := m.DSN
	orig := strings.Trim(d.OriginalMessageID, "<> ")
	if orig == "" {
		return nil, false
	}
	if d.Action != "" && !strings.EqualFold(d.Action, "failed") && !strings.EqualFold(d.Action, "delayed") {
		return nil, false
	}
	mid, err := t.st.FindByRemoteID(ctx, acct.User, "email", "", orig)
	if err != nil {
		return nil, false
	}
	// "peer sender-full-jid stanza-id" (the id may hold spaces).
	f := strings.SplitN(mid.StanzaID, " ", 3)
	if len(f) < 3 {
		return nil, false
	}
	peer, stanzaID := f[0], f[2]
	if full, err := jid.Parse(f[1]); err == nil && full.Bare().Equal(to.Bare()) {
		to = full
	}
	addr, err := t.errorFrom(peer)
	if err != nil {
		return nil, false
	}
	// A mail to several people: the DSN names the one it is about.
	who := peer
	if d.Recipient != "" && !strings.ContainsAny(d.Recipient, "\r\n") {
		who = d.Recipient
	}
	text := fmt.Sprintf("The mail to %s was not delivered", who)
	if strings.EqualFold(d.Action, "delayed") {
		text = fmt.Sprintf("The mail to %s is delayed", who)
	}
	if d.Status != "" {
		text += " (" + d.Status + ")"
	}
	if d.Diagnostic != "" {
		text += ": " + d.Diagnostic
	}
	cond := bridge.RecipientUnavailable
	if strings.HasPrefix(d.Status, "5.1.") {
		cond = bridge.ItemNotFound
	}
	return bridge.DeliveryError{To: to, From: addr, Kind: "message", ID: stanzaID, Err: bridge.Errorf(cond, "%s", text)}, true
}
