package component

import (
	"context"
	"errors"
	"fmt"
)

// errSyncLinkDown answers the Syncs still waiting when a connection ends.
var errSyncLinkDown = errors.New("the component link went down before the XMPP server confirmed")

// Sync implements bridge.Syncer: it queues a XEP-0199 ping to the server
// behind everything already queued and returns nil once the server
// answered it (with a result or an error: either way it has read every
// stanza before it, as a server handles a stream in order). It returns an
// error when the connection ends first or ctx is done; what was queued
// then goes out again on the next connection.
func (l *Link) Sync(ctx context.Context) error {
	id := l.newID()
	ch := make(chan error, 1)
	l.mu.Lock()
	if l.syncs == nil {
		l.syncs = make(map[string]chan error)
	}
	l.syncs[id] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.syncs, id)
		l.mu.Unlock()
	}()
	if err := l.enqueueCtx(ctx, l.pingItem(id)); err != nil {
		return err
	}
	select {
	case err := <-ch:
		if err != nil {
			return fmt.Errorf("component %s: %w", l.cfg.Domain, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("component %s: waiting for the XMPP server to confirm: %w", l.cfg.Domain, ctx.Err())
	}
}

// matchSync answers the Sync waiting for id; it reports whether one was.
func (l *Link) matchSync(id string) bool {
	l.mu.Lock()
	ch, ok := l.syncs[id]
	if ok {
		delete(l.syncs, id)
	}
	l.mu.Unlock()
	if ok {
		ch <- nil
	}
	return ok
}

// failSyncs ends every waiting Sync with err (the connection ended: their
// pings' answers will not come on it).
func (l *Link) failSyncs(err error) {
	l.mu.Lock()
	for id, ch := range l.syncs {
		delete(l.syncs, id)
		ch <- err
	}
	l.mu.Unlock()
}

// pingItem is a XEP-0199 ping from the domain to the server with id.
func (l *Link) pingItem(id string) outItem {
	var o out
	o.b = append(o.b, "<iq type='get'"...)
	o.b = attr(o.b, "id", id)
	o.b = attr(o.b, "from", l.domainStr)
	o.b = attr(o.b, "to", l.pingTo)
	o.b = append(o.b, "><ping xmlns='urn:xmpp:ping'/></iq>"...)
	o.n[kIQ] = 1
	return o.item()
}
