package email

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/transports/email/mailmsg"
)

// XEP-0191 blocking. A user blocks an email contact on their own XMPP
// server (the contact's JID, bob\40example.com@mail.example.org, or the
// gateway's domain for all mail); where that server grants the component
// IQ "get" permission on urn:xmpp:blocking (XEP-0356), the gateway reads
// the list and refuses the blocked senders' mail at SMTP time, as it does
// for the registration field "blocked". The server does not tell the
// component when the list changes: a list is kept for block_list_cache
// and read again after.

// blockingKey is the Privilege key of the IQ permission on XEP-0191.
var blockingKey = bridge.PrivilegeIQ(bridge.NSBlocking)

// blockFetchTimeout bounds one read of a block list (an SMTP client is
// waiting at RCPT).
const blockFetchTimeout = 5 * time.Second

// xmppBlocks is what a user's XEP-0191 list says about mail.
type xmppBlocks struct {
	addrs map[string]bool // blocked mailboxes, as the codec writes them
	all   bool            // the gateway's domain is blocked: all mail
	// err is why the list could not be read (nil when it was, or when
	// the server grants no permission).
	err error
}

// blocks reports whether the list blocks mail from addr.
func (b *xmppBlocks) blocks(addr string) bool {
	if b == nil {
		return false
	}
	return b.all || (addr != "" && b.addrs[addr])
}

func (b *xmppBlocks) empty() bool { return b == nil || (!b.all && len(b.addrs) == 0) }

// blockEntry is one user's cached list; fetching is closed when a fetch
// in flight ends.
type blockEntry struct {
	at       time.Time
	list     *xmppBlocks
	fetching chan struct{}
}

// blockCache holds the users' lists and the failures already warned
// about.
type blockCache struct {
	mu     sync.Mutex
	m      map[string]*blockEntry
	warned map[string]bool // "server condition" → warned (cleared by a success on that server)
}

// xmppBlockList returns the user's XEP-0191 list as it applies to mail:
// nil without the permission (no IQ is sent then), the cached list while
// it is younger than block_list_cache, else a fresh one. A failure to read
// it gives a list with err set and nothing blocked (the "blocked" field
// still applies), logged once per condition, and kept as long as a list.
// refresh reads a fresh list whatever the cache holds.
func (t *Transport) xmppBlockList(ctx context.Context, user string, refresh bool) *xmppBlocks {
	if t.gw == nil {
		return nil
	}
	// The common case, no permission, costs a map lookup: no JID
	// parsing, no allocation, no IQ.
	if i := strings.LastIndexByte(user, '@'); i < 0 {
		return nil
	} else if p := t.gw.Privilege("email", user[i+1:], blockingKey); p != "get" && p != "both" {
		return nil
	}
	uj, err := userJID(user)
	if err != nil {
		return nil
	}
	c := &t.blockCache
	for {
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]*blockEntry{}
		}
		e := c.m[user]
		if e != nil && e.fetching != nil {
			ch := e.fetching
			c.mu.Unlock()
			select {
			case <-ch:
				if refresh {
					refresh = false // the fetch that just ended is fresh
				}
				continue
			case <-ctx.Done():
				return &xmppBlocks{err: ctx.Err()}
			}
		}
		if e != nil && !refresh && t.now().Sub(e.at) < t.cfg.BlockListCache.Duration {
			c.mu.Unlock()
			return e.list
		}
		if e == nil {
			e = &blockEntry{}
			c.m[user] = e
		}
		e.fetching = make(chan struct{})
		c.mu.Unlock()

		list := t.fetchBlockList(ctx, uj)

		c.mu.Lock()
		e.at, e.list = t.now(), list
		close(e.fetching)
		e.fetching = nil
		c.mu.Unlock()
		return list
	}
}

// fetchBlockList asks the user's server for the list and keeps the items
// that name this gateway.
func (t *Transport) fetchBlockList(ctx context.Context, user jid.JID) *xmppBlocks {
	fctx, cancel := context.WithTimeout(ctx, blockFetchTimeout)
	defer cancel()
	jids, err := t.gw.BlockList(fctx, "email", user)
	if err != nil {
		cond := "failed"
		switch {
		case errors.Is(err, bridge.ErrNoBlockListPermission):
			cond = "forbidden"
		case errors.Is(err, context.DeadlineExceeded):
			cond = "timeout"
		case errors.Is(err, bridge.ErrLinkDown):
			cond = "link down"
		}
		t.warnBlockOnce(user.Domainpart()+" "+cond, "the user's XEP-0191 block list could not be read; until it can, only the \"blocked\" registration field applies",
			"user", user.String(), "server", user.Domainpart(), "condition", cond, "err", err)
		return &xmppBlocks{err: err}
	}
	// Working again for this server: its next failure is news.
	t.blockCache.mu.Lock()
	for k := range t.blockCache.warned {
		if strings.HasPrefix(k, user.Domainpart()+" ") {
			delete(t.blockCache.warned, k)
		}
	}
	t.blockCache.mu.Unlock()
	return t.mailBlocks(jids)
}

// mailBlocks keeps the items of a block list that name this gateway, by
// XEP-0016's JID rules as XEP-0191 says: the bare domain blocks every
// JID of the gateway, a bare contact JID blocks that mailbox; an item
// with a resource matches only that full JID, and mail comes from bare
// contact JIDs, so it blocks no mail.
func (t *Transport) mailBlocks(jids []jid.JID) *xmppBlocks {
	b := &xmppBlocks{addrs: map[string]bool{}}
	for _, j := range jids {
		if j.Domainpart() != t.codec.Domain() || j.Resourcepart() != "" {
			continue
		}
		a, err := t.codec.Parse(j)
		if err != nil {
			continue
		}
		switch a.Kind {
		case mapping.KindGateway:
			b.all = true
		case mapping.KindContact:
			b.addrs[a.Name] = true
		}
	}
	return b
}

// warnBlockOnce logs a failure to read block lists once per condition
// until a read succeeds again.
func (t *Transport) warnBlockOnce(cond, msg string, args ...any) {
	c := &t.blockCache
	c.mu.Lock()
	if c.warned == nil {
		c.warned = map[string]bool{}
	}
	seen := c.warned[cond]
	c.warned[cond] = true
	c.mu.Unlock()
	if !seen {
		t.log.Warn(msg, args...)
	}
}

// canonicalMailbox writes a sender's address as the codec does (so that
// it compares with the block list's), or "" when it cannot be a contact.
func (t *Transport) canonicalMailbox(addr string) string {
	if addr == "" {
		return ""
	}
	a, err := t.codec.Mailbox(addr)
	if err != nil {
		return ""
	}
	return a.Name
}

// refusedBy reports whether user refuses mail whose sender addresses are
// addrs (the envelope sender, the From header, a list's posting address),
// by the "blocked" field (hosted users' cached index, or acct's field when
// acct is given) or by the XEP-0191 list; it returns the address blocked
// and the rule ("blocked field" or "XEP-0191 block list").
func (t *Transport) refusedBy(ctx context.Context, user string, field func(addr string) bool, addrs ...string) (addr, rule string) {
	for _, a := range addrs {
		if a != "" && field(a) {
			return a, "the blocked field"
		}
	}
	list := t.xmppBlockList(ctx, user, false)
	if list.empty() {
		return "", ""
	}
	if list.all {
		a := ""
		for _, x := range addrs {
			if x != "" {
				a = x
				break
			}
		}
		return a, "the XEP-0191 block list (the whole gateway)"
	}
	for _, a := range addrs {
		if list.blocks(t.canonicalMailbox(a)) {
			return a, "the XEP-0191 block list"
		}
	}
	return "", ""
}

// senderAddrs returns the lowercased From address of a mail and, for list
// mail (List-Id and List-Post), the list's posting address: the addresses
// a block applies to at DATA time.
func senderAddrs(raw []byte) (from, list string) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return headerFrom(raw), ""
	}
	if a, err := mailmsg.ValidateAddress(strings.TrimSpace(m.Header.Get("From"))); err == nil {
		from = strings.ToLower(a.Addr)
	}
	if strings.TrimSpace(m.Header.Get("List-Id")) != "" {
		list = strings.ToLower(listPostAddress(m.Header.Get("List-Post")))
	}
	return from, list
}

// blockStatus is the status command's account of the user's blocks.
func (t *Transport) blockStatus(ctx context.Context, user string, field []string) []string {
	var out []string
	if len(field) > 0 {
		out = append(out, "Blocked senders (registration field): "+strings.Join(field, ", "))
	}
	uj, err := userJID(user)
	if err != nil || t.gw == nil {
		return out
	}
	if !t.gw.CanReadBlockList("email", uj) {
		return append(out, fmt.Sprintf("Senders you block in your XMPP client (XEP-0191) are not refused by the gateway: your server %s has not granted it the permission to read block lists. "+
			"The admin of %s can grant it (Prosody: privileged_entities = { [%q] = { iq = { [%q] = \"get\" } } } with mod_privilege; ejabberd: the iq option of mod_privilege, get on %s); "+
			"meanwhile your server still drops their messages, and the registration field \"blocked\" refuses their mail.",
			uj.Domainpart(), uj.Domainpart(), t.cfg.Domain, bridge.NSBlocking, bridge.NSBlocking))
	}
	list := t.xmppBlockList(ctx, user, true)
	switch {
	case list == nil:
		// The permission went away meanwhile.
	case list.err != nil:
		out = append(out, "Your XEP-0191 block list could not be read just now ("+list.err.Error()+"); until it can, only the registration field applies.")
	case list.all:
		out = append(out, fmt.Sprintf("You block the whole gateway %s (XEP-0191): all mail to you is refused.", t.cfg.Domain))
	case len(list.addrs) == 0:
		out = append(out, "Blocked in your XMPP client (XEP-0191): nobody.")
	default:
		addrs := make([]string, 0, len(list.addrs))
		for a := range list.addrs {
			addrs = append(addrs, a)
		}
		sort.Strings(addrs)
		out = append(out, "Blocked in your XMPP client (XEP-0191), their mail is refused: "+strings.Join(addrs, ", "))
	}
	if list != nil {
		out = append(out, fmt.Sprintf("A block or unblock takes up to %s to apply to incoming mail.", t.cfg.BlockListCache.Duration))
	}
	return out
}
