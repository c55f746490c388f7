package email

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"switchboard/bridge"
	"switchboard/store"
	"switchboard/transports/email/mailmsg"
)

// idleRestart is how often IDLE is restarted (RFC 2177: before 29 min).
const idleRestart = 25 * time.Minute

// reconcileEvery is how often the watchers are matched against the
// registered accounts (registrations also wake it).
const reconcileEvery = 10 * time.Second

// watchers runs one IMAP watcher per bring-your-own account, and the
// appends to the users' Sent folders.
type watchers struct {
	t    *Transport
	wake chan struct{}

	mu      sync.Mutex
	ws      map[string]*watcher
	appends chan appendJob
}

type watcher struct {
	mb     mailbox
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	status string
}

type appendJob struct {
	user string
	mb   mailbox
	raw  []byte
}

func newWatchers(t *Transport) *watchers {
	return &watchers{t: t, wake: make(chan struct{}, 1), ws: map[string]*watcher{}, appends: make(chan appendJob, 256)}
}

// changed asks for a reconcile soon (an account was registered).
func (w *watchers) changed() { wake(w.wake) }

// status describes a user's watcher for the status command.
func (w *watchers) status(user string) string {
	w.mu.Lock()
	x := w.ws[user]
	w.mu.Unlock()
	if x == nil {
		return "not running yet"
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.status
}

func (x *watcher) setStatus(s string) {
	x.mu.Lock()
	x.status = s
	x.mu.Unlock()
}

// run reconciles watchers with accounts and serves appends until ctx is
// done, then stops every watcher and waits for them.
func (w *watchers) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.appendLoop(ctx) }()
	tick := time.NewTicker(reconcileEvery)
	defer tick.Stop()
	for {
		w.reconcile(ctx)
		select {
		case <-ctx.Done():
			w.mu.Lock()
			for _, x := range w.ws {
				x.cancel()
			}
			ws := w.ws
			w.ws = map[string]*watcher{}
			w.mu.Unlock()
			for _, x := range ws {
				<-x.done
			}
			wg.Wait()
			return
		case <-tick.C:
		case <-w.wake:
			// The account is saved right after the registration returns.
			select {
			case <-time.After(300 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
}

func (w *watchers) reconcile(ctx context.Context) {
	accts, err := w.t.st.ListAccounts(ctx, "email")
	if err != nil {
		if ctx.Err() == nil {
			w.t.log.Warn("listing accounts for the IMAP watchers failed", "err", err)
		}
		return
	}
	want := map[string]mailbox{}
	for i := range accts {
		if isBYO(&accts[i]) {
			want[accts[i].User] = mailboxOf(&accts[i])
			want[accts[i].User+sentSuffix] = mailboxOf(&accts[i])
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for user, x := range w.ws {
		if mb, ok := want[user]; !ok || mb != x.mb {
			x.cancel()
			<-x.done
			delete(w.ws, user)
		}
	}
	for user, mb := range want {
		if w.ws[user] != nil || ctx.Err() != nil {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		x := &watcher{mb: mb, cancel: cancel, done: make(chan struct{}), status: "connecting"}
		w.ws[user] = x
		go func(key string) {
			defer close(x.done)
			user, sent := strings.CutSuffix(key, sentSuffix)
			w.watch(wctx, user, x, sent)
		}(user)
	}
}

// imapState is the saved position in a mailbox.
type imapState struct {
	UIDValidity uint32 `json:"uidvalidity"`
	LastUID     uint32 `json:"last_uid"`
}

const (
	inboxStateKey = "imap:INBOX"
	sentStateKey  = "imap:Sent"
	// sentSuffix marks the watcher of a user's \Sent folder.
	sentSuffix = "\x00sent"
)

// watch keeps one user's INBOX watched, reconnecting with backoff.
func (w *watchers) watch(ctx context.Context, user string, x *watcher, sent bool) {
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		err := w.session(ctx, user, x, sent)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		w.t.log.Info("IMAP watcher disconnected; reconnecting", "user", user, "server", x.mb.IMAPServer, "in", backoff, "err", err)
		x.setStatus(fmt.Sprintf("disconnected (%v); reconnecting in %s", err, backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff *= 2
		if backoff > w.t.cfg.IMAPRetryMax.Duration {
			backoff = w.t.cfg.IMAPRetryMax.Duration
		}
	}
}

func (m mailbox) dialIMAP(opts *imapclient.Options) (*imapclient.Client, error) {
	host, _, _ := net.SplitHostPort(m.IMAPServer)
	opts.TLSConfig = &tls.Config{ServerName: host}
	opts.Dialer = &net.Dialer{Timeout: 30 * time.Second}
	var c *imapclient.Client
	var err error
	switch m.IMAPSecurity {
	case "tls":
		c, err = imapclient.DialTLS(m.IMAPServer, opts)
	case "starttls":
		c, err = imapclient.DialStartTLS(m.IMAPServer, opts)
	default:
		c, err = imapclient.DialInsecure(m.IMAPServer, opts)
	}
	if err != nil {
		return nil, err
	}
	if err := c.Login(m.Username, m.Password).Wait(); err != nil {
		c.Close()
		var ie *imap.Error
		if errors.As(err, &ie) && (ie.Code == imap.ResponseCodeAuthenticationFailed || ie.Type == imap.StatusResponseTypeNo) {
			return nil, fmt.Errorf("the login name or password is wrong (%s)", ie.Text)
		}
		return nil, fmt.Errorf("login: %w", err)
	}
	return c, nil
}

// checkIMAP logs in and selects INBOX.
func (m mailbox) checkIMAP(ctx context.Context) error {
	type res struct{ err error }
	ch := make(chan res, 1)
	go func() {
		c, err := m.dialIMAP(&imapclient.Options{})
		if err != nil {
			ch <- res{err}
			return
		}
		defer c.Close()
		if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			ch <- res{fmt.Errorf("selecting INBOX: %w", err)}
			return
		}
		_ = c.Logout().Wait()
		ch <- res{nil}
	}()
	select {
	case r := <-ch:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("no answer in time: %w", ctx.Err())
	}
}

// session is one IMAP connection: catch up, then IDLE until new mail.
func (w *watchers) session(ctx context.Context, user string, x *watcher, sent bool) error {
	t := w.t
	news := make(chan struct{}, 1)
	c, err := x.mb.dialIMAP(&imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				wake(news)
			}
		},
	}})
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	box, key := "INBOX", inboxStateKey
	if sent {
		if box, err = sentFolder(c); err != nil {
			return err
		}
		key = sentStateKey
	}
	sel, err := c.Select(box, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return fmt.Errorf("selecting %s: %w", box, err)
	}
	st := w.loadState(ctx, user, key)
	if st.UIDValidity != sel.UIDValidity {
		if st.UIDValidity != 0 {
			t.log.Warn("UIDVALIDITY changed; starting after the folder's current last message", "user", user, "folder", box, "old", st.UIDValidity, "new", sel.UIDValidity)
		}
		st = imapState{UIDValidity: sel.UIDValidity, LastUID: uint32(sel.UIDNext) - 1}
		if sel.UIDNext == 0 {
			st.LastUID = 0
		}
		if err := w.saveState(ctx, user, key, st); err != nil {
			return err
		}
	}
	x.setStatus(fmt.Sprintf("watching %s of %s (IDLE)", box, x.mb.Email))
	for ctx.Err() == nil {
		if st, err = w.catchUp(ctx, c, user, st, key, sent); err != nil {
			return err
		}
		idle, err := c.Idle()
		if err != nil {
			return fmt.Errorf("IDLE: %w", err)
		}
		timer := time.NewTimer(idleRestart)
		select {
		case <-news:
		case <-timer.C:
		case <-ctx.Done():
		case <-c.Closed():
		}
		timer.Stop()
		if err := idle.Close(); err != nil {
			return fmt.Errorf("ending IDLE: %w", err)
		}
		if err := idle.Wait(); err != nil {
			return fmt.Errorf("IDLE: %w", err)
		}
	}
	return ctx.Err()
}

// catchUp fetches every message after the last UID, delivers them, waits
// for the XMPP server to have them and only then saves the new last UID.
func (w *watchers) catchUp(ctx context.Context, c *imapclient.Client, user string, st imapState, key string, sent bool) (imapState, error) {
	t := w.t
	var set imap.UIDSet
	set.AddRange(imap.UID(st.LastUID+1), 0)
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return st, fmt.Errorf("fetching new mail: %w", err)
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].UID < msgs[j].UID })
	acct, err := t.st.GetAccount(ctx, user, "email")
	if err != nil {
		return st, fmt.Errorf("reading the account: %w", err)
	}
	last := st.LastUID
	emitted := false
	for _, m := range msgs {
		if uint32(m.UID) <= st.LastUID {
			continue // the server returns the last message for "n:*" when nothing is newer
		}
		raw := m.FindBodySection(section)
		if !sent {
			from, list := senderAddrs(raw)
			if a, rule := t.refusedBy(ctx, user, func(a string) bool { return isBlocked(acct, a) }, from, list); rule != "" {
				t.log.Info("not forwarding mail from a blocked sender", "user", user, "from", a, "rule", rule, "uid", uint32(m.UID))
				last = uint32(m.UID)
				continue
			}
		}
		var evs []bridge.Outbound
		if sent {
			evs = t.ownMessages(ctx, acct, raw)
		} else {
			evs = t.convert(ctx, acct, raw, "", "", "", nil)
		}
		for _, ev := range evs {
			if err := t.gw.Emit(ctx, "email", ev); err != nil {
				return st, fmt.Errorf("emitting: %w", err)
			}
			emitted = true
		}
		t.msgsIn.Inc()
		last = uint32(m.UID)
	}
	if last == st.LastUID {
		return st, nil
	}
	if emitted {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := t.gw.Sync(sctx, "email")
		cancel()
		if err != nil {
			return st, fmt.Errorf("the XMPP server did not confirm: %w", err)
		}
	}
	st.LastUID = last
	if err := w.saveState(ctx, user, key, st); err != nil {
		return st, err
	}
	return st, nil
}

// ownMessages turns a mail found in the user's Sent folder into their own
// outgoing XMPP message (XEP-0356), unless the gateway sent it itself or
// the user's server granted no outgoing message permission.
func (t *Transport) ownMessages(ctx context.Context, acct *store.Account, raw []byte) []bridge.Outbound {
	user, err := userJID(acct.User)
	if err != nil {
		return nil
	}
	m, err := mailmsg.Parse(bytes.NewReader(raw), mailmsg.ParseOptions{FoldQuotes: "drop", MaxPartBytes: t.cfg.MaxMessageBytes})
	if err != nil || m == nil || len(m.To) == 0 {
		return nil
	}
	if m.MessageID != "" {
		if _, err := t.st.FindByRemoteID(ctx, acct.User, "email", "", m.MessageID); err == nil {
			return nil // sent by the gateway: the user saw it already
		}
	}
	to, err := t.codec.Mailbox(m.To[0].Addr)
	if err != nil {
		return nil
	}
	key := m.MessageID
	if key == "" {
		key = string(raw)
	}
	thread := mailmsg.ThreadID(m)
	if thread != "" {
		if b, err := t.st.GetState(ctx, acct.User, "email", "threadmap:"+thread); err == nil && len(b) > 0 {
			thread = string(b)
		}
	}
	id := ownIDPrefix + deriveID("", acct.User+"\x00"+key)
	peer := to.Name
	if m.MessageID != "" {
		// The conversation goes on from this mail: the user's next
		// message from XMPP replies to it, and the contact's answer to it
		// is a XEP-0461 reply to the message shown below.
		refs := append(append([]string{}, m.References...), m.MessageID)
		keys := []string{"conv:" + peer}
		if thread != "" {
			keys = append(keys, "thread:"+thread)
		}
		for _, k := range keys {
			c := t.getConv(ctx, acct.User, k)
			c.Last, c.Refs, c.Thread = m.MessageID, refs, thread
			if c.Subject == "" {
				c.Subject = m.Subject
			}
			t.putConv(ctx, acct.User, k, c)
		}
	}
	if t.gw.Privilege("email", user.Domainpart(), "message") != "outgoing" {
		return nil
	}
	if m.MessageID != "" {
		if err := t.st.PutMessageID(ctx, store.MessageID{User: acct.User, Transport: "email", Peer: peer, StanzaID: id, RemoteID: m.MessageID}); err != nil {
			t.log.Warn("saving a Message-ID failed", "err", err)
		}
	}
	return []bridge.Outbound{bridge.OwnMessage{User: user, To: to, ID: id,
		Body: strings.TrimRight(m.Text, "\r\n"), Subject: m.Subject, Thread: thread, Time: m.Date}}
}

// ownIDPrefix starts the ids of OwnMessages: the user's server routes
// them to the contact, i.e. back to this gateway, which must not mail
// them again.
const ownIDPrefix = "mailsent-"

func (w *watchers) loadState(ctx context.Context, user, key string) imapState {
	var st imapState
	if b, err := w.t.st.GetState(ctx, user, "email", key); err == nil {
		_ = json.Unmarshal(b, &st)
	}
	return st
}

func (w *watchers) saveState(ctx context.Context, user, key string, st imapState) error {
	b, _ := json.Marshal(st)
	if err := w.t.st.PutState(ctx, user, "email", key, b); err != nil {
		return fmt.Errorf("saving the folder position: %w", err)
	}
	return nil
}

// sentFolder finds the folder marked \Sent (SPECIAL-USE), else "Sent".
func sentFolder(c *imapclient.Client) (string, error) {
	boxes, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		return "", fmt.Errorf("listing folders: %w", err)
	}
	for _, b := range boxes {
		for _, a := range b.Attrs {
			if a == imap.MailboxAttrSent {
				return b.Mailbox, nil
			}
		}
	}
	for _, b := range boxes {
		if b.Mailbox == "Sent" {
			return b.Mailbox, nil
		}
	}
	return "", errors.New("the mailbox has no folder marked \\Sent")
}

// appendSent queues a copy of a sent mail for the user's \Sent folder.
func (w *watchers) appendSent(user string, mb mailbox, raw []byte) {
	select {
	case w.appends <- appendJob{user: user, mb: mb, raw: raw}:
	default:
		w.t.log.Warn("the Sent copy queue is full; a sent mail is not copied to Sent", "user", user)
	}
}

func (w *watchers) appendLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-w.appends:
			if err := appendToSent(ctx, j.mb, j.raw); err != nil {
				w.t.log.Warn("copying a sent mail to the Sent folder failed", "user", j.user, "err", err)
			}
		}
	}
}

// appendToSent finds the \Sent folder (SPECIAL-USE) and appends raw, \Seen.
func appendToSent(ctx context.Context, mb mailbox, raw []byte) error {
	c, err := mb.dialIMAP(&imapclient.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	sent, err := sentFolder(c)
	if err != nil {
		return err
	}
	cmd := c.Append(sent, int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: time.Now()})
	if _, err := cmd.Write(raw); err != nil {
		return fmt.Errorf("APPEND: %w", err)
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("APPEND: %w", err)
	}
	if _, err := cmd.Wait(); err != nil {
		return fmt.Errorf("APPEND: %w", err)
	}
	_ = c.Logout().Wait()
	return nil
}
