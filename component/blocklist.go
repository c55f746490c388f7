package component

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
)

// XEP-0356 IQ permission: the component sends an IQ on a user's behalf
// to the user's own server, wrapped in <privileged_iq/>; the server
// answers with the user's answer wrapped in <privilege><forwarded/>. The
// one use so far is reading the user's XEP-0191 block list.

var _ bridge.BlockLister = (*Link)(nil)

// errPrivLinkDown answers the privileged IQs still waiting when a
// connection ends, and those asked while the link is down.
var errPrivLinkDown = bridge.ErrLinkDown

// privWait is one privileged IQ waiting for its answer.
type privWait struct {
	user  string // the bare JID asked about: the answer must come from it
	parse func(t *tree, inner *node) (any, error)
	ch    chan privAnswer
}

type privAnswer struct {
	v   any
	err error
}

// BlockList implements bridge.BlockLister: it asks the user's server for
// the user's XEP-0191 block list with a privileged IQ and returns the
// blocked JIDs. An item whose jid is not a valid JID is left out.
func (l *Link) BlockList(ctx context.Context, user jid.JID) ([]jid.JID, error) {
	v, err := l.privilegedIQ(ctx, user, "get", "<blocklist xmlns='"+bridge.NSBlocking+"'/>", parseBlockList)
	if err != nil {
		return nil, err
	}
	return v.([]jid.JID), nil
}

// parseBlockList reads the <blocklist/> of an answered block list get.
func parseBlockList(t *tree, inner *node) (any, error) {
	bl := t.child(inner, bridge.NSBlocking, "blocklist")
	if bl == nil {
		return nil, errors.New("the answer has no <blocklist/>")
	}
	out := []jid.JID{}
	t.children(bl, func(c *node) bool {
		if c.space != bridge.NSBlocking || c.local != "item" {
			return true
		}
		if j, err := jid.Parse(c.attrValue("jid")); err == nil {
			out = append(out, j)
		}
		return true
	})
	return out, nil
}

// privilegedIQ sends an IQ of typ with payload (one element, written as
// XML) from user to user's server through XEP-0356 and waits for the
// answer, which parse reads on the link's reading goroutine (inner is the
// forwarded result <iq/>; nothing of the tree may be kept).
func (l *Link) privilegedIQ(ctx context.Context, user jid.JID, typ, payload string, parse func(t *tree, inner *node) (any, error)) (any, error) {
	user = user.Bare()
	if user.Localpart() == "" {
		return nil, fmt.Errorf("component %s: %s is not a user's address", l.cfg.Domain, user)
	}
	u := user.String()
	id := l.newID()
	w := &privWait{user: u, parse: parse, ch: make(chan privAnswer, 1)}
	l.mu.Lock()
	if l.privIQs == nil {
		l.privIQs = make(map[string]*privWait)
	}
	l.privIQs[id] = w
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.privIQs, id)
		l.mu.Unlock()
	}()
	// Registered before this check: a connection that ends after it
	// fails the wait (failPrivIQs), one that ended before is seen here.
	if !l.Up() {
		return nil, fmt.Errorf("component %s: %w", l.cfg.Domain, errPrivLinkDown)
	}
	var o out
	o.b = append(o.b, "<iq"...)
	o.b = attr(o.b, "type", typ)
	o.b = attr(o.b, "id", id)
	o.b = attr(o.b, "from", l.domainStr)
	o.b = attr(o.b, "to", u)
	o.b = append(o.b, "><privileged_iq xmlns='"+nsPrivilege+"'><iq xmlns='jabber:client'"...)
	o.b = attr(o.b, "type", typ)
	o.b = attr(o.b, "id", id)
	o.b = attr(o.b, "from", u)
	o.b = append(o.b, '>')
	o.b = append(o.b, payload...)
	o.b = append(o.b, "</iq></privileged_iq></iq>"...)
	o.n[kIQ] = 1
	if err := l.enqueueCtx(ctx, o.item()); err != nil {
		return nil, err
	}
	select {
	case a := <-w.ch:
		if a.err != nil {
			return nil, fmt.Errorf("component %s: privileged IQ for %s: %w", l.cfg.Domain, u, a.err)
		}
		return a.v, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("component %s: waiting for %s's server to answer a privileged IQ: %w", l.cfg.Domain, user.Domainpart(), ctx.Err())
	}
}

// matchPrivIQ answers the privileged IQ waiting for the id of t, if t is
// its result or error from the user asked about; it reports whether t was
// consumed. It runs before the other handling of IQ results and errors.
func (l *Link) matchPrivIQ(t *tree) bool {
	root := t.root()
	if root.local != "iq" {
		return false
	}
	typ := root.attrValue("type")
	if typ != "result" && typ != "error" {
		return false
	}
	id := root.attrValue("id")
	l.mu.Lock()
	w, ok := l.privIQs[id]
	if ok {
		if !strings.EqualFold(root.attrValue("from"), w.user) {
			ok = false
		} else {
			delete(l.privIQs, id)
		}
	}
	l.mu.Unlock()
	if !ok {
		return false
	}
	l.mIn[kIQ].Inc()
	v, err := readPrivAnswer(t, root, typ, w.parse)
	w.ch <- privAnswer{v: v, err: err}
	return true
}

// readPrivAnswer reads a privileged IQ's answer: an outer error (the
// server refused to send it: forbidden when not granted), or the
// forwarded answer of the user's server, itself a result or an error.
func readPrivAnswer(t *tree, root *node, typ string, parse func(t *tree, inner *node) (any, error)) (any, error) {
	if typ == "error" {
		return nil, stanzaErrorOf(t, root, "the XMPP server refused the privileged IQ")
	}
	p := t.child(root, nsPrivilege, "privilege")
	if p == nil {
		return nil, errors.New("the XMPP server's answer has no <privilege/>")
	}
	f := t.child(p, nsForward, "forwarded")
	if f == nil {
		return nil, errors.New("the XMPP server's answer has no <forwarded/>")
	}
	inner := t.child(f, "", "iq")
	if inner == nil {
		return nil, errors.New("the XMPP server's answer forwards no <iq/>")
	}
	switch inner.attrValue("type") {
	case "result":
		return parse(t, inner)
	case "error":
		return nil, stanzaErrorOf(t, inner, "the user's account answered with an error")
	default:
		return nil, fmt.Errorf("the forwarded answer has type %q", inner.attrValue("type"))
	}
}

// stanzaErrorOf turns the <error/> of an error IQ into an error; a
// forbidden one wraps bridge.ErrNoBlockListPermission (the only kind of
// privileged IQ sent so far).
func stanzaErrorOf(t *tree, n *node, what string) error {
	cond, text := "undefined-condition", ""
	if e := t.child(n, "", "error"); e != nil {
		t.children(e, func(c *node) bool {
			switch {
			case c.local == "text":
				text = c.text
			case cond == "undefined-condition":
				cond = c.local
			}
			return true
		})
	}
	msg := what + ": " + cond
	if text != "" {
		msg += " (" + text + ")"
	}
	if cond == "forbidden" {
		return fmt.Errorf("%w: %s", bridge.ErrNoBlockListPermission, msg)
	}
	return errors.New(msg)
}

// failPrivIQs ends every waiting privileged IQ with err (the connection
// ended: their answers will not come on it).
func (l *Link) failPrivIQs(err error) {
	l.mu.Lock()
	for id, w := range l.privIQs {
		delete(l.privIQs, id)
		w.ch <- privAnswer{err: err}
	}
	l.mu.Unlock()
}
