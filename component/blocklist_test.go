package component

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
)

const advertBlocking = `<message from='example.org' to='irc.localhost'><privilege xmlns='urn:xmpp:privilege:2'>` +
	`<perm access='message' type='outgoing'/><perm access='iq'><namespace ns='urn:xmpp:blocking' type='get'/>` +
	`<namespace ns='jabber:iq:roster' type='both'/></perm></privilege></message>`

// TestPrivilegeAdvertIQ: the namespaces of an IQ permission are recorded
// beside the message permission, and a new advertisement replaces the old.
func TestPrivilegeAdvertIQ(t *testing.T) {
	h := newHarness(t, LinkConfig{})
	user := jid.MustParse("alice@example.org")
	if h.gw.CanReadBlockList("irc", user) {
		t.Fatal("block lists readable before any advertisement")
	}
	h.in(advertBlocking)
	h.none() // consumed, not answered
	if got := h.gw.Privilege("irc", "example.org", "message"); got != "outgoing" {
		t.Errorf("message permission %q, want outgoing", got)
	}
	if got := h.gw.Privilege("irc", "example.org", bridge.PrivilegeIQ("jabber:iq:roster")); got != "both" {
		t.Errorf("roster IQ permission %q, want both", got)
	}
	if !h.gw.CanReadBlockList("irc", user) {
		t.Error("the blocking get permission was not recorded")
	}
	if h.gw.CanReadBlockList("irc", jid.MustParse("bob@other.org")) {
		t.Error("a permission of example.org applies to other.org")
	}
	// "set" alone does not allow reading.
	h.in(`<message from='example.org' to='irc.localhost'><privilege xmlns='urn:xmpp:privilege:2'><perm access='iq'>` +
		`<namespace ns='urn:xmpp:blocking' type='set'/></perm></privilege></message>`)
	if h.gw.CanReadBlockList("irc", user) {
		t.Error("a set permission allows reading block lists")
	}
	// Without the permission the gateway never asks.
	_, err := h.gw.BlockList(context.Background(), "irc", user)
	if !errors.Is(err, bridge.ErrNoBlockListPermission) {
		t.Fatalf("BlockList without permission: %v, want ErrNoBlockListPermission", err)
	}
	h.none()
}

// TestLinkBlockList: the privileged IQ on the wire, the answer matched by
// id and sender before the other IQ-result handling, the server's
// refusals, and failure when the link is down or the connection ends.
func TestLinkBlockList(t *testing.T) {
	srv := newFakeServer(t, "s")
	h := newHarness(t, LinkConfig{Server: srv.addr(), Secret: "s"})
	runLink(t, h.l)
	c1 := srv.accept()
	waitFor(t, "link up", h.l.Up)
	user := jid.MustParse("alice@example.org/phone")
	c1.send(advertBlocking)
	waitFor(t, "permission recorded", func() bool { return h.gw.CanReadBlockList("irc", user) })

	type res struct {
		jids []jid.JID
		err  error
	}
	ask := func() chan res {
		ch := make(chan res, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			j, err := h.gw.BlockList(ctx, "irc", user)
			ch <- res{j, err}
		}()
		return ch
	}
	wait := func(ch chan res) res {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(6 * time.Second):
			t.Fatal("BlockList did not return")
			return res{}
		}
	}

	// 1. The request, and a list.
	ch := ask()
	p := c1.readNonPing(t)
	if p.name() != "iq" || p.attr("type") != "get" || p.attr("to") != "alice@example.org" || p.attr("from") != testDomain {
		t.Fatalf("request: <%s type=%q to=%q from=%q>, want a get from the domain to the bare JID", p.name(), p.attr("type"), p.attr("to"), p.attr("from"))
	}
	inner := p.find("privileged_iq/iq")
	if inner == nil || inner.space != "jabber:client" || inner.attrValue("type") != "get" || inner.attrValue("id") == "" ||
		inner.attrValue("from") != "alice@example.org" || p.find("privileged_iq/iq/blocklist") == nil ||
		p.find("privileged_iq/iq/blocklist").space != bridge.NSBlocking {
		t.Fatalf("the wrapped IQ is not a client blocklist get from alice")
	}
	id := p.attr("id")
	// A result with the same id from someone else is not the answer.
	c1.send(`<iq type='result' id='` + id + `' from='mallory@example.org' to='irc.localhost'><privilege xmlns='urn:xmpp:privilege:2'>` +
		`<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='w'><blocklist xmlns='urn:xmpp:blocking'/></iq></forwarded></privilege></iq>`)
	select {
	case r := <-ch:
		t.Fatalf("BlockList took an answer from another JID: %v %v", r.jids, r.err)
	case <-time.After(150 * time.Millisecond):
	}
	c1.send(`<iq type='result' id='` + id + `' from='alice@example.org' to='irc.localhost'><privilege xmlns='urn:xmpp:privilege:2'>` +
		`<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='w' to='alice@example.org'>` +
		`<blocklist xmlns='urn:xmpp:blocking'><item jid='bob\40example.com@irc.localhost'/><item jid='spam.example'/>` +
		`<item jid='not a@valid@jid'/></blocklist></iq></forwarded></privilege></iq>`)
	r := wait(ch)
	if r.err != nil {
		t.Fatalf("BlockList: %v", r.err)
	}
	var got []string
	for _, j := range r.jids {
		got = append(got, j.String())
	}
	if strings.Join(got, " ") != `bob\40example.com@irc.localhost spam.example` {
		t.Fatalf("block list %q, want bob's contact JID and the domain (the invalid item left out)", got)
	}

	// 2. An empty list is an empty list, not an error.
	ch = ask()
	p = c1.readNonPing(t)
	c1.send(`<iq type='result' id='` + p.attr("id") + `' from='alice@example.org' to='irc.localhost'><privilege xmlns='urn:xmpp:privilege:2'>` +
		`<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='w'><blocklist xmlns='urn:xmpp:blocking'/></iq></forwarded></privilege></iq>`)
	if r = wait(ch); r.err != nil || len(r.jids) != 0 {
		t.Fatalf("empty list: %v %v", r.jids, r.err)
	}

	// 3. The server refuses: forbidden is the sentinel.
	ch = ask()
	p = c1.readNonPing(t)
	c1.send(`<iq type='error' id='` + p.attr("id") + `' from='alice@example.org' to='irc.localhost'><error type='auth'>` +
		`<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no privilege granted</text></error></iq>`)
	r = wait(ch)
	if !errors.Is(r.err, bridge.ErrNoBlockListPermission) || !strings.Contains(r.err.Error(), "no privilege granted") {
		t.Fatalf("forbidden: %v, want ErrNoBlockListPermission with the server's text", r.err)
	}

	// 4. The account answers with an error inside: an error, not the sentinel.
	ch = ask()
	p = c1.readNonPing(t)
	c1.send(`<iq type='result' id='` + p.attr("id") + `' from='alice@example.org' to='irc.localhost'><privilege xmlns='urn:xmpp:privilege:2'>` +
		`<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='error' id='w'><error type='cancel'>` +
		`<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq></forwarded></privilege></iq>`)
	r = wait(ch)
	if r.err == nil || errors.Is(r.err, bridge.ErrNoBlockListPermission) || !strings.Contains(r.err.Error(), "service-unavailable") {
		t.Fatalf("inner error: %v, want an error naming service-unavailable", r.err)
	}

	// 5. A malformed answer is an error.
	ch = ask()
	p = c1.readNonPing(t)
	c1.send(`<iq type='result' id='` + p.attr("id") + `' from='alice@example.org' to='irc.localhost'/>`)
	if r = wait(ch); r.err == nil {
		t.Fatal("an answer without <privilege/> was taken as a list")
	}

	// 6. The connection ends before the answer: an error at once.
	ch = ask()
	if p = c1.readNonPing(t); p.find("privileged_iq") == nil {
		t.Fatalf("got %s, want the privileged IQ", p.name())
	}
	_ = c1.Close()
	start := time.Now()
	if r = wait(ch); r.err == nil {
		t.Fatal("BlockList succeeded although the connection ended unanswered")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("BlockList took %s to fail after the connection ended", d)
	}
	waitFor(t, "link down", func() bool { return !h.l.Up() })

	// 7. While the link is down: an error at once, nothing queued for later.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.gw.BlockList(ctx, "irc", user); err == nil || ctx.Err() != nil {
		t.Fatalf("BlockList with the link down: %v (ctx %v), want an immediate error", err, ctx.Err())
	}
	c2 := srv.accept()
	waitFor(t, "link up again", h.l.Up)
	// The next stanza on the new connection is not a left-over request.
	ch = ask()
	p = c2.readNonPing(t)
	if p.find("privileged_iq") == nil {
		t.Fatalf("got %s, want the new request", p.name())
	}
	c2.send(`<iq type='result' id='` + p.attr("id") + `' from='alice@example.org' to='irc.localhost'><privilege xmlns='urn:xmpp:privilege:2'>` +
		`<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='w'><blocklist xmlns='urn:xmpp:blocking'><item jid='x@y'/></blocklist></iq></forwarded></privilege></iq>`)
	if r = wait(ch); r.err != nil || len(r.jids) != 1 {
		t.Fatalf("after reconnecting: %v %v", r.jids, r.err)
	}
}

// FuzzPrivilegedAnswer feeds random stanzas to the link while a block
// list request (id p1, for alice@example.org) waits: never a panic, an
// answer is taken only from alice with the request's id, and what it
// yields is either an error or a list of valid JIDs.
func FuzzPrivilegedAnswer(f *testing.F) {
	f.Add(`<iq type='result' id='p1' from='alice@example.org' to='irc.localhost'><privilege xmlns='urn:xmpp:privilege:2'><forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='w'><blocklist xmlns='urn:xmpp:blocking'><item jid='bob\40example.com@irc.localhost'/></blocklist></iq></forwarded></privilege></iq>`)
	f.Add(`<iq type='error' id='p1' from='alice@example.org'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
	f.Add(`<iq type='result' id='p1' from='ALICE@example.org'><privilege xmlns='urn:xmpp:privilege:2'><forwarded xmlns='urn:xmpp:forward:0'><iq type='error'><error/></iq></forwarded></privilege></iq>`)
	f.Add(`<iq type='result' id='p1' from='mallory@example.org'/>`)
	h := newHarness(f, LinkConfig{})
	h.l.repanic = true
	f.Fuzz(func(t *testing.T, data string) {
		w := &privWait{user: "alice@example.org", parse: parseBlockList, ch: make(chan privAnswer, 1)}
		h.l.mu.Lock()
		if h.l.privIQs == nil {
			h.l.privIQs = map[string]*privWait{}
		}
		h.l.privIQs["p1"] = w
		h.l.mu.Unlock()
		_ = feed(h.l, data)
		h.l.mu.Lock()
		_, waiting := h.l.privIQs["p1"]
		delete(h.l.privIQs, "p1")
		h.l.mu.Unlock()
		for {
			select {
			case <-h.l.queue: // answers to other stanzas
				continue
			default:
			}
			break
		}
		select {
		case a := <-w.ch:
			if waiting {
				t.Fatal("answered but still waiting")
			}
			if a.err == nil {
				for _, j := range a.v.([]jid.JID) {
					if _, err := jid.Parse(j.String()); err != nil {
						t.Fatalf("an invalid JID in the list: %q", j)
					}
				}
			}
		default:
			if !waiting {
				t.Fatal("the waiter was removed without an answer")
			}
		}
	})
}
