package email

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
	"switchboard/transports/email/mailmsg"
)

// outLease is how long the sender holds an outbound mail: longer than one
// SMTP transaction can take.
const outLease = time.Minute

// sendTimeout bounds one SMTP transaction.
const sendTimeout = 45 * time.Second

// outItem is the payload of an outbound queue item.
type outItem struct {
	BYO       bool     `json:"byo,omitempty"`
	From      string   `json:"from"`
	To        []string `json:"to"`
	Raw       []byte   `json:"raw"`
	MessageID string   `json:"message_id"`
	Receipt   bool     `json:"receipt,omitempty"`
	// Sender is the full JID that sent the message: an error must go to
	// it (a server drops an error message sent to a bare JID).
	Sender string `json:"sender,omitempty"`
	// Multicast is true for a XEP-0033 message to the gateway domain:
	// receipts and errors then come from the domain (the queue item's
	// Peer is empty).
	Multicast bool `json:"multicast,omitempty"`
}

// session is one user's state; everything happens in the queue workers,
// so it keeps nothing.
type session struct {
	t *Transport
	u *bridge.User
}

func (s *session) HandleNetwork(any) {}
func (s *session) Idle() bool        { return true }
func (s *session) Close(string)      {}

func (s *session) HandleQuery(q bridge.Query) {
	ev := bridge.IQResult{To: q.From, From: q.To, ID: q.ID}
	switch q.Request.(type) {
	case *bridge.PingQuery:
	case *bridge.DiscoInfoQuery:
		if q.To.Kind == mapping.KindContact {
			ev.Payload = &bridge.DiscoInfo{Identities: []bridge.Identity{{Category: "client", Type: "pc", Name: q.To.Name}},
				Features: []string{"urn:xmpp:receipts", "http://jabber.org/protocol/disco#info"}}
		} else {
			ev.Err = bridge.Errorf(bridge.ServiceUnavailable, "Nothing to see here.")
		}
	default:
		ev.Err = bridge.Errorf(bridge.ServiceUnavailable, "Email contacts do not answer that.")
	}
	_ = s.u.Emit(ev)
}

// Status lists the user's mode, address and mailbox watcher.
func (s *session) Status() []string {
	t := s.t
	a := s.u.Account()
	var out []string
	switch {
	case a == nil:
		out = append(out, "Not registered.")
	case isBYO(a):
		out = append(out, "Own mailbox: "+a.Fields["email"]+" (IMAP "+a.Fields["imap_server"]+", SMTP "+a.Fields["smtp_server"]+")")
		out = append(out, "Mailbox watcher: "+t.imap.status(a.User))
		if t.gw.Privilege("email", s.u.JID().Domainpart(), "message") == "outgoing" {
			out = append(out, "Mail you send from other mail clients (found in Sent) is shown here as your own messages (XEP-0356).")
		} else {
			out = append(out, "Mail you send from other mail clients is not shown here: your XMPP server has not granted this gateway the outgoing message permission (XEP-0356).")
		}
	default:
		out = append(out, fmt.Sprintf("Address: %s", t.ownAddress(a)))
	}
	if a != nil {
		ctx, cancel := context.WithTimeout(context.Background(), blockFetchTimeout+time.Second)
		out = append(out, t.blockStatus(ctx, a.User, blockedList(a))...)
		cancel()
	}
	if t.cfg.SendPerHour > 0 {
		n, reset, err := t.rateState(s.u.Context(), s.u.JID().String())
		if err != nil {
			t.log.Warn("reading the send log failed", "err", err)
		}
		line := fmt.Sprintf("Sent in the last hour: %d of %d", n, t.cfg.SendPerHour)
		if n > 0 {
			line += fmt.Sprintf(" (the oldest leaves the window at %s)", reset.UTC().Format("15:04:05 UTC"))
		}
		out = append(out, line)
	}
	return out
}

func (s *session) HandleInbound(ev bridge.Inbound) {
	m, ok := ev.(bridge.SendMessage)
	if !ok {
		return
	}
	if m.Body == "" && len(m.Attachments) == 0 {
		return // a chat state alone
	}
	if strings.HasPrefix(m.ID, ownIDPrefix) && m.From.Resourcepart() == "" {
		return // our own XEP-0356 message coming back: it was mailed already
	}
	if err := s.t.send(s.u, m); err != nil {
		se := bridge.AsStanzaError(err)
		_ = s.u.Emit(bridge.DeliveryError{To: m.From, From: m.To, Kind: "message", ID: m.ID, Err: se})
	}
}

// send builds the mail for an XMPP message and queues it: a message to a
// contact (one-to-one, or reply-all in a group thread), or a XEP-0033
// multicast message to the gateway domain (group.go).
func (t *Transport) send(u *bridge.User, m bridge.SendMessage) error {
	ctx, cancel := context.WithTimeout(u.Context(), 30*time.Second)
	defer cancel()
	acct := u.Account()
	own := t.ownAddress(acct)
	if own == "" {
		return bridge.Errorf(bridge.RegistrationRequired, "Register with the email gateway first (an address or your own mailbox).")
	}
	multicast := m.To.Kind == mapping.KindGateway && len(m.Addresses) > 0
	var rcpts recipients
	peer := "" // the contact (state and error key); "" for multicast
	switch {
	case multicast:
		r, err := t.multicastRecipients(m.Addresses)
		if err != nil {
			return err
		}
		rcpts = r
	case m.To.Kind == mapping.KindContact:
		rcpt, err := mailmsg.ValidateAddress(m.To.Name)
		if err != nil {
			return bridge.Errorf(bridge.JIDMalformed, "%v", err)
		}
		rcpts = recipients{To: []mailmsg.Address{{Addr: rcpt.Addr}}}
		peer = strings.ToLower(rcpt.Addr)
	default:
		return bridge.Errorf(bridge.FeatureNotImplemented, `Write to an email address: alice@example.com is alice\40example.com@%s (or send one message to several with XEP-0033 addresses to %s).`, t.codec.Domain(), t.codec.Domain())
	}
	if int64(len(m.Body)) > t.cfg.MaxMessageBytes {
		return bridge.Errorf(bridge.PolicyViolation, "The message is %d bytes; max_message_bytes is %d.", len(m.Body), t.cfg.MaxMessageBytes)
	}
	user := u.JID().String()

	// Threading: an explicit reply, else the thread, else the conversation.
	var c conv
	if m.Thread != "" {
		c = t.getConv(ctx, user, "thread:"+m.Thread)
	}
	if c.Last == "" && m.Thread == "" && peer != "" {
		c = t.getConv(ctx, user, "conv:"+peer)
	}
	inReplyTo, refs := c.Last, append([]string{}, c.Refs...)
	replyMID := ""
	if m.Reply != nil && m.Reply.ID != "" && peer != "" {
		if mid, err := t.st.FindByStanzaID(ctx, user, "email", peer, m.Reply.ID); err == nil {
			inReplyTo, replyMID = mid.RemoteID, mid.RemoteID
			if len(refs) == 0 || refs[len(refs)-1] != inReplyTo {
				refs = append(refs, inReplyTo)
			}
		}
	}
	// Reply-all: a message in a group thread (or a reply to a group mail)
	// goes to everyone in it; a plain message outside a thread stays
	// one-to-one (c then came from "conv:", whose People are not used).
	grouped := false
	if peer != "" && (m.Thread != "" || replyMID != "") {
		if ps := t.groupPeople(ctx, user, replyMID, c); len(ps) > 0 {
			rcpts = t.replyAll(acct, rcpts.To[0].Addr, ps)
			grouped = true
		}
	}
	// A reply to a contact whose last mail asked for replies elsewhere
	// (Reply-To) goes there, as a mail client's would.
	viaReplyTo := false
	if peer != "" && !grouped && len(c.ReplyTo) > 0 {
		viaReplyTo = true
		rcpts = recipients{}
		for _, p := range c.ReplyTo {
			if !t.isOwn(acct, p.Addr) {
				rcpts.To = append(rcpts.To, mailmsg.Address{Name: p.Name, Addr: p.Addr})
			}
		}
		if len(rcpts.To) == 0 {
			rcpts.To = []mailmsg.Address{{Addr: peer}}
		}
	}
	if err := t.checkRecipients(rcpts); err != nil {
		return err
	}
	// A subject is one line: line breaks become spaces (Build encodes the
	// rest, and refuses any CR/LF that would still reach a header).
	subject := strings.TrimSpace(oneLine(m.MessageSubject))
	if subject == "" && c.Subject != "" {
		subject = mailmsg.ReplySubject(c.Subject)
	}
	if subject == "" {
		subject = t.cfg.DefaultSubject
	}
	if subject == "" {
		subject = firstLine(m.Body, 60)
	}
	body := m.Body
	if m.Reply != nil && m.Reply.Fallback != "" && !strings.HasPrefix(body, m.Reply.Fallback) {
		body = m.Reply.Fallback + body
	}
	parts, notes, err := t.fetchAttachments(ctx, m.Attachments)
	if err != nil {
		return err
	}
	for _, a := range m.Attachments {
		// A client sends the upload URL as the body too: drop it once
		// the file is attached.
		if len(parts) > 0 && strings.TrimSpace(body) == a.URL {
			body = ""
		}
	}
	if len(notes) > 0 {
		body = strings.TrimRight(body, "\n") + "\n\n" + strings.Join(notes, "\n")
	}
	raw, msgID, err := mailmsg.Build(mailmsg.Outgoing{
		From:        mailmsg.Address{Name: displayName(acct), Addr: own},
		To:          rcpts.To,
		Cc:          rcpts.Cc, // Bcc: envelope only, never a header
		Undisclosed: len(rcpts.To)+len(rcpts.Cc) == 0,
		Subject:     subject,
		InReplyTo:   inReplyTo,
		References:  refs,
		Text:        body,
		Attachments: parts,
		Domain:      own[strings.LastIndexByte(own, '@')+1:],
		Date:        t.now(),
	})
	if err != nil {
		var ae *mailmsg.AddressError
		if errors.As(err, &ae) {
			return bridge.Errorf(bridge.JIDMalformed, "The recipient %s is refused: %v", ae.Input, ae)
		}
		return bridge.Errorf(bridge.NotAcceptable, "The mail could not be built: %v", err)
	}
	if int64(len(raw)) > t.cfg.MaxMessageBytes {
		return bridge.Errorf(bridge.PolicyViolation, "The mail would be %d bytes; max_message_bytes is %d.", len(raw), t.cfg.MaxMessageBytes)
	}
	payload, err := json.Marshal(outItem{BYO: isBYO(acct), From: own, To: rcpts.envelope(), Raw: raw, MessageID: msgID,
		Receipt: m.ReceiptRequested, Sender: m.From.String(), Multicast: multicast})
	if err != nil {
		return fmt.Errorf("encoding the mail: %w", err)
	}
	ok, reset, err := t.takeSend(ctx, user)
	if err != nil {
		t.log.Error("the send log cannot be read or written", "user", user, "err", err)
		return bridge.Errorf(bridge.InternalServerError, "The mail could not be queued; try again.")
	}
	if !ok {
		return bridge.Errorf(bridge.PolicyViolation, "send_per_hour: you may send %d mails an hour; the next can go at %s.",
			t.cfg.SendPerHour, reset.UTC().Format("15:04:05 UTC"))
	}
	ids := []string{m.ID}
	if m.OriginID != "" && m.OriginID != m.ID {
		ids = append(ids, m.OriginID)
	}
	for _, id := range ids {
		if id == "" {
			continue
		}
		pairs := []store.MessageID{
			// For DSNs: "peer sender-full-jid stanza-id" ("-" is the gateway domain).
			{User: user, Transport: "email", Peer: "", StanzaID: dsnPeer(peer) + " " + m.From.String() + " " + id, RemoteID: msgID},
		}
		if peer != "" {
			pairs = append(pairs, store.MessageID{User: user, Transport: "email", Peer: peer, StanzaID: id, RemoteID: msgID})
		}
		if peer == "" || viaReplyTo {
			// Multicast, or a reply to a Reply-To: an answer from any
			// recipient finds the message.
			for _, r := range rcpts.envelope() {
				if strings.EqualFold(r, peer) {
					continue
				}
				pairs = append(pairs, store.MessageID{User: user, Transport: "email", Peer: strings.ToLower(r), StanzaID: id, RemoteID: msgID})
			}
		}
		for _, p := range pairs {
			if err := t.st.PutMessageID(ctx, p); err != nil {
				t.log.Warn("saving a Message-ID failed", "err", err)
			}
		}
	}
	base := c.Subject
	if base == "" {
		base = subject
	}
	people := rcpts.people()
	if len(people) < 2 {
		people = nil // one-to-one
	}
	t.putGroup(ctx, user, msgID, people)
	nc := conv{Last: msgID, Refs: append(refs, msgID), Subject: base, Thread: m.Thread, People: people}
	if viaReplyTo {
		nc.ReplyTo = c.ReplyTo // the next message of the conversation goes there too
	}
	if peer != "" {
		t.putConv(ctx, user, "conv:"+peer, nc)
	}
	if m.Thread != "" {
		t.putConv(ctx, user, "thread:"+m.Thread, nc)
		root := msgID
		if len(refs) > 0 {
			root = refs[0]
		}
		if err := t.st.PutState(ctx, user, "email", "threadmap:"+root, []byte(m.Thread)); err != nil {
			t.log.Warn("saving a thread failed", "err", err)
		}
	}
	it := &store.QueueItem{Transport: queueOut, User: user, Peer: peer, StanzaID: m.ID, Payload: payload}
	if err := t.st.Enqueue(ctx, it); err != nil {
		t.log.Error("queueing a mail failed", "user", user, "err", err)
		t.giveBackSend(ctx, user)
		return bridge.Errorf(bridge.InternalServerError, "The mail could not be queued; try again.")
	}
	wake(t.wakeOut)
	return nil
}

// dsnPeer is the peer field of a DSN record: the contact, or "-" for a
// multicast mail (its errors come from the gateway domain).
func dsnPeer(peer string) string {
	if peer == "" {
		return "-"
	}
	return peer
}

// errorFrom is the address receipts and errors about a mail come from:
// the contact, or the gateway domain for a multicast mail.
func (t *Transport) errorFrom(peer string) (mapping.Address, error) {
	if peer == "" || peer == "-" {
		return mapping.Address{Kind: mapping.KindGateway, Domain: t.codec.Domain()}, nil
	}
	return t.codec.Mailbox(peer)
}

// oneLine replaces CR, LF and other control characters with spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func firstLine(s string, n int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	if s == "" {
		s = "Message from XMPP"
	}
	return s
}

// outWorkers is how many queued mails are sent at once.
const outWorkers = 4

// runOutbound sends queued mail until ctx is done.
func (t *Transport) runOutbound(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < outWorkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.outWorker(ctx)
		}()
	}
	wg.Wait()
}

// sender is one outbound worker's reusable smarthost connection.
type sender struct {
	c *smtp.Client
}

func (s *sender) close() {
	if s.c != nil {
		_ = s.c.Quit()
		s.c.Close()
		s.c = nil
	}
}

func (t *Transport) outWorker(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var snd sender
	defer snd.close()
	for {
		items, err := t.st.Claim(ctx, queueOut, t.now(), outLease, 8)
		if err != nil && ctx.Err() == nil {
			t.log.Error("reading the outbound queue failed", "err", err)
		}
		for _, it := range items {
			if ctx.Err() != nil {
				return
			}
			t.sendItem(ctx, it, &snd)
		}
		if len(items) == 8 {
			continue
		}
		snd.close()
		select {
		case <-ctx.Done():
			return
		case <-t.wakeOut:
			wake(t.wakeOut) // let the other workers look too
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Millisecond):
			}
		case <-tick.C:
		}
	}
}

// sendItem makes one attempt at one queued mail.
func (t *Transport) sendItem(ctx context.Context, it store.QueueItem, snd *sender) {
	var p outItem
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		t.log.Error("dropping an unreadable queued mail", "id", it.ID, "err", err)
		_ = t.st.Dequeue(ctx, it.ID, it.Lease)
		return
	}
	to, err := userJID(it.User)
	if err != nil {
		_ = t.st.Dequeue(ctx, it.ID, it.Lease)
		return
	}
	if p.Sender != "" {
		if full, err := jid.Parse(p.Sender); err == nil && full.Bare().Equal(to) {
			to = full
		}
	}
	peer, err := t.errorFrom(it.Peer)
	if err != nil {
		_ = t.st.Dequeue(ctx, it.ID, it.Lease)
		return
	}
	who := it.Peer
	if who == "" {
		who = recipientList(p.To)
	}
	// What earlier attempts finished (a mail to several recipients where
	// some were deferred).
	done, err := t.getOutDone(ctx, it.User, it.ID)
	if err != nil {
		t.log.Warn("the progress of a queued mail is unreadable; sending to every recipient", "id", it.ID, "err", err)
	}
	hadProgress := len(done.Sent)+len(done.Refused) > 0
	fail := func(text string, cond string) {
		if err := t.st.Dequeue(ctx, it.ID, it.Lease); err != nil {
			t.log.Warn("finishing a failed mail: lease lost", "id", it.ID, "err", err)
			return
		}
		if hadProgress {
			t.clearOutDone(ctx, it.User, it.ID)
		}
		t.log.Info("mail not delivered", "user", it.User, "to", who, "why", text)
		_ = t.gw.Emit(ctx, "email", bridge.DeliveryError{To: to, From: peer, Kind: "message", ID: it.StanzaID, Err: bridge.Errorf(cond, "%s", text)})
	}
	// Expired, after at least one attempt that failed: an item that was
	// claimed by a gateway that died may already be at the smarthost
	// (see doc/email.md), so it gets one more try rather than an error.
	if it.Attempts > 0 && t.now().After(it.CreatedAt.Add(t.cfg.QueueLifetime.Duration)) {
		why := "no reason given"
		if it.LastError != "" {
			why = it.LastError
		}
		pending := recipientList(done.remaining(p.To))
		text := fmt.Sprintf("The mail to %s could not be delivered within %s (queue_lifetime); last error: %s", pending, t.cfg.QueueLifetime.Duration, why)
		if len(done.Sent) > 0 {
			text += fmt.Sprintf(". It went to %s.", recipientList(done.Sent))
		}
		if len(done.Refused) > 0 {
			text += " Refused: " + describeRefusals(done.Refused) + "."
		}
		fail(text, bridge.RemoteServerTimeout)
		return
	}
	var mb *mailbox
	if p.BYO {
		acct, err := t.st.GetAccount(ctx, it.User, "email")
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				_ = t.st.Dequeue(ctx, it.ID, it.Lease)
				return
			}
			t.retry(ctx, it, err.Error())
			return
		}
		m := mailboxOf(acct)
		mb = &m
	}
	rcpts := done.remaining(p.To)
	var res rcptResult
	if len(rcpts) > 0 {
		sctx, cancel := context.WithTimeout(ctx, sendTimeout)
		res, err = t.deliverSMTP(sctx, mb, p.From, rcpts, p.Raw, snd)
		cancel()
		if err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) && se.Code >= 500 {
				fail(fmt.Sprintf("The mail server refused the mail to %s: %s", recipientList(rcpts), smtpReply(se)), bridge.RecipientUnavailable)
				return
			}
			t.retry(ctx, it, err.Error())
			return
		}
	}
	if len(res.Accepted) > 0 {
		t.msgsOut.Inc()
		t.log.Debug("mail sent", "user", it.User, "to", strings.Join(res.Accepted, ","), "message_id", p.MessageID)
	}
	done.Sent = append(done.Sent, res.Accepted...)
	done.Refused = append(done.Refused, res.Refused...)
	if len(res.Deferred) > 0 {
		// Some recipients said "later": keep what is finished, durably,
		// before the retry is scheduled, so that nobody gets it twice.
		if len(res.Accepted)+len(res.Refused) > 0 {
			if err := t.putOutDone(ctx, it.User, it.ID, done); err != nil {
				t.log.Warn("saving the progress of a mail failed; its accepted recipients may get it again", "id", it.ID, "err", err)
			}
		}
		t.retry(ctx, it, fmt.Sprintf("%s deferred: %s", recipientList(res.Deferred), res.Why))
		return
	}
	if len(done.Sent) == 0 {
		fail(fmt.Sprintf("The mail server refused the mail to %s", describeRefusals(done.Refused)), bridge.RecipientUnavailable)
		return
	}
	// The next hop has it: forget it before anything else (see the crash
	// window in doc/email.md).
	if err := t.st.Dequeue(ctx, it.ID, it.Lease); err != nil {
		t.log.Warn("a sent mail's lease was lost; it may be sent again", "id", it.ID, "err", err)
		return
	}
	if hadProgress {
		t.clearOutDone(ctx, it.User, it.ID)
	}
	if mb != nil && len(res.Accepted) > 0 {
		t.imap.appendSent(it.User, *mb, p.Raw)
	}
	if len(done.Refused) > 0 {
		// Sent, but not to everyone: the error names who did not get it
		// (and who did), so the user can fix the address.
		text := fmt.Sprintf("The mail server refused %s. The mail went to %s.", describeRefusals(done.Refused), recipientList(done.Sent))
		t.log.Info("mail partly delivered", "user", it.User, "refused", describeRefusals(done.Refused))
		_ = t.gw.Emit(ctx, "email", bridge.DeliveryError{To: to, From: peer, Kind: "message", ID: it.StanzaID, Err: bridge.Errorf(bridge.RecipientUnavailable, "%s", text)})
		return
	}
	if p.Receipt {
		_ = t.gw.Emit(ctx, "email", bridge.Receipt{To: to, From: peer, ID: it.StanzaID})
	}
}

// retry reschedules a mail after a temporary failure.
func (t *Transport) retry(ctx context.Context, it store.QueueItem, why string) {
	d := t.cfg.RetryInitial.Duration << min(it.Attempts, 12)
	if d > time.Hour || d <= 0 {
		d = time.Hour
	}
	next := t.now().Add(d)
	if end := it.CreatedAt.Add(t.cfg.QueueLifetime.Duration); next.After(end) {
		next = end.Add(time.Millisecond)
	}
	t.log.Info("mail deferred", "user", it.User, "to", it.Peer, "attempt", it.Attempts+1, "retry_in", next.Sub(t.now()).Round(time.Millisecond), "err", why)
	if err := t.st.Reschedule(ctx, it.ID, it.Lease, next, why); err != nil && ctx.Err() == nil {
		t.log.Warn("rescheduling a mail failed", "id", it.ID, "err", err)
	}
}

// deliverSMTP sends one mail to rcpts through the smarthost (mb nil; the
// worker's connection is reused) or the user's server; see transact.
func (t *Transport) deliverSMTP(ctx context.Context, mb *mailbox, from string, rcpts []string, raw []byte, snd *sender) (rcptResult, error) {
	if mb != nil {
		c, err := mb.dialSMTP(ctx)
		if err != nil {
			return rcptResult{}, err
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		res, err := transact(c, from, rcpts, raw)
		if err != nil {
			return res, err
		}
		_ = c.Quit()
		return res, nil
	}
	if snd.c == nil {
		c, err := dialSMTP(ctx, t.cfg.Smarthost, t.cfg.SmarthostSecurity, *t.cfg.SmarthostTLSVerify)
		if err != nil {
			return rcptResult{}, err
		}
		if t.cfg.SmarthostUsername != "" {
			if err := c.Auth(sasl.NewPlainClient("", t.cfg.SmarthostUsername, t.cfg.SmarthostPassword)); err != nil {
				c.Close()
				return rcptResult{}, fmt.Errorf("smarthost AUTH: %w", err)
			}
		}
		snd.c = c
	}
	stop := context.AfterFunc(ctx, func() { snd.c.Close() })
	res, err := transact(snd.c, from, rcpts, raw)
	if !stop() || err != nil {
		// After a failed command the transaction state is unknown: a
		// fresh connection is simpler than tracking it.
		snd.c.Close()
		snd.c = nil
	}
	return res, err
}

// dialSMTP connects and greets (EHLO), with TLS per security.
func dialSMTP(ctx context.Context, addr, security string, verify bool) (*smtp.Client, error) {
	host, _, _ := net.SplitHostPort(addr)
	d := net.Dialer{Timeout: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// ctx bounds the greeting and EHLO (and TLS); later commands are
	// bounded by their callers.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	tc := &tls.Config{ServerName: host, InsecureSkipVerify: !verify} //nolint:gosec // verify is on unless the admin turned it off
	var c *smtp.Client
	switch security {
	case "tls":
		c = smtp.NewClient(tls.Client(conn, tc))
	case "starttls":
		c, err = smtp.NewClientStartTLS(conn, tc)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("STARTTLS: %w", err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	if err := c.Hello(helloName()); err != nil {
		c.Close()
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	return c, nil
}

func helloName() string {
	if h, err := os.Hostname(); err == nil && strings.Contains(h, ".") {
		return h
	}
	return "localhost"
}

// mailbox is a bring-your-own account's servers and login.
type mailbox struct {
	Email, IMAPServer, IMAPSecurity, SMTPServer, SMTPSecurity, Username, Password string
}

func (m mailbox) dialSMTP(ctx context.Context) (*smtp.Client, error) {
	c, err := dialSMTP(ctx, m.SMTPServer, m.SMTPSecurity, true)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err = c.Auth(sasl.NewPlainClient("", m.Username, m.Password))
	stop()
	if err != nil {
		c.Close()
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code == 535 {
			return nil, fmt.Errorf("the login name or password is wrong (%s)", se.Message)
		}
		return nil, fmt.Errorf("AUTH failed: %w", err)
	}
	return c, nil
}

// checkSMTP logs in to the submission server.
func (m mailbox) checkSMTP(ctx context.Context) error {
	c, err := m.dialSMTP(ctx)
	if err != nil {
		return err
	}
	_ = c.Quit()
	c.Close()
	return nil
}
