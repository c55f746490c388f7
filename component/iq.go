package component

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"time"

	"switchboard/bridge"
	"switchboard/mapping"
)

// pendingQuery remembers what a user asked the transport, to echo the
// disco node in the answer.
type pendingQuery struct {
	node    string
	addr    mapping.Address
	expires time.Time
}

const (
	pendingTTL = 10 * time.Minute
	maxPending = 20000
)

// handleIQ routes an IQ get or set.
func (l *Link) handleIQ(s *stanza) {
	if s.id == "" {
		l.replyErr(s, bridge.Errorf(bridge.BadRequest, "An IQ needs an id."), "")
		return
	}
	if s.t.childCount(s.n) != 1 {
		l.replyErr(s, bridge.Errorf(bridge.BadRequest, "An IQ %s has exactly one child element.", s.typ), "")
		return
	}
	p := s.t.firstElem(s.n)
	get := s.typ == "get"
	if s.addr.Kind == mapping.KindGateway && l.gatewayIQ(s, p, get) {
		return
	}
	switch {
	case p.space == nsCommands && p.local == "command":
		if get {
			l.replyErr(s, bridge.Errorf(bridge.BadRequest, "Ad-hoc commands are executed with an IQ set."), "")
			return
		}
		l.handleCommand(s, p)
	case p.space == nsDiscoInfo && p.local == "query" && get:
		l.discoInfo(s, p)
	case p.space == nsDiscoItems && p.local == "query" && get:
		l.discoItems(s, p)
	case p.space == nsMAM && p.local == "query" && s.addr.Kind != mapping.KindGateway:
		l.archiveQuery(s, p, get)
	case p.space == nsMUCAdmin && p.local == "query" && s.addr.Kind == mapping.KindRoom:
		l.roomAdmin(s, p, get)
	case p.space == nsPing && p.local == "ping" && get:
		// XEP-0410 MUC self-ping and pings to contacts: the transport
		// knows whether the user is still joined.
		l.query(s, &bridge.PingQuery{}, "")
	default:
		l.replyErr(s, bridge.Errorf(bridge.ServiceUnavailable, "This address does not answer %s %s requests.", p.space, s.typ), "")
	}
}

// gatewayIQ answers the IQs of the domain itself; it reports false for
// the ones handled like any other address.
func (l *Link) gatewayIQ(s *stanza, p *node, get bool) bool {
	switch {
	case p.space == nsPing && p.local == "ping" && get:
		l.result(s, nil)
	case p.space == nsVersion && p.local == "query" && get:
		l.result(s, func(b []byte) []byte {
			b = append(b, "<query xmlns='jabber:iq:version'>"...)
			b = textElem(b, "name", "", "Switchboard")
			b = textElem(b, "version", "", l.cfg.Version)
			b = textElem(b, "os", "", runtime.GOOS)
			return append(b, "</query>"...)
		})
	case p.space == nsTime && p.local == "time" && get:
		now := l.now()
		l.result(s, func(b []byte) []byte {
			b = append(b, "<time xmlns='urn:xmpp:time'><tzo>"...)
			b = now.AppendFormat(b, "-07:00")
			b = append(b, "</tzo><utc>"...)
			b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
			return append(b, "</utc></time>"...)
		})
	case p.space == nsRegister && p.local == "query":
		l.register(s, p, get)
	case p.space == nsGateway && p.local == "query":
		l.gatewayPrompt(s, p, get)
	default:
		return false
	}
	return true
}

// ---------------------------------------------------------------- disco

// gatewayFeatures are the features of the component domain.
var gatewayFeatures = []string{
	nsDiscoInfo, nsDiscoItems, nsCommands, nsRegister, nsGateway,
	nsPing, nsVersion, nsTime, nsJIDEscape,
}

func (l *Link) discoInfo(s *stanza, p *node) {
	node := p.attrValue("node")
	switch {
	case s.addr.Kind == mapping.KindGateway && node == "":
		tr := l.gw.Transport(l.cfg.Transport)
		if tr == nil {
			l.replyErr(s, bridge.Errorf(bridge.ServiceUnavailable, "The %s transport is not enabled.", l.cfg.Transport), "")
			return
		}
		cat, typ, name := tr.Identity()
		l.result(s, func(b []byte) []byte {
			b = append(b, "<query xmlns='"+nsDiscoInfo+"'><identity"...)
			b = attr(b, "category", cat)
			b = attr(b, "type", typ)
			b = attr(b, "name", name)
			b = append(b, "/>"...)
			for _, f := range gatewayFeatures {
				b = appendFeature(b, f)
			}
			if l.multicast() {
				b = appendFeature(b, bridge.NSAddress)
			}
			return append(b, "</query>"...)
		})
	case node == nsCommands:
		l.result(s, func(b []byte) []byte {
			b = append(b, "<query xmlns='"+nsDiscoInfo+"' node='"+nsCommands+"'><identity category='automation' type='command-list' name='Commands'/>"...)
			b = appendFeature(b, nsCommands)
			return append(b, "</query>"...)
		})
	default:
		if node != "" {
			for _, c := range l.gw.Commands(l.cfg.Transport, s.from, s.addr) {
				if c.Node != node {
					continue
				}
				l.result(s, func(b []byte) []byte {
					b = append(b, "<query xmlns='"+nsDiscoInfo+"'"...)
					b = attr(b, "node", node)
					b = append(b, "><identity category='automation' type='command-node'"...)
					b = attr(b, "name", c.Name)
					b = append(b, "/>"...)
					b = appendFeature(b, nsCommands)
					b = appendFeature(b, nsData)
					return append(b, "</query>"...)
				})
				return
			}
		}
		l.query(s, &bridge.DiscoInfoQuery{Node: node}, node)
	}
}

func appendFeature(b []byte, f string) []byte {
	b = append(b, "<feature"...)
	b = attr(b, "var", f)
	return append(b, "/>"...)
}

func (l *Link) discoItems(s *stanza, p *node) {
	node := p.attrValue("node")
	if node == nsCommands {
		cmds := l.gw.Commands(l.cfg.Transport, s.from, s.addr)
		self := s.replyFrom(l)
		l.result(s, func(b []byte) []byte {
			b = append(b, "<query xmlns='"+nsDiscoItems+"' node='"+nsCommands+"'>"...)
			for _, c := range cmds {
				b = append(b, "<item"...)
				b = attr(b, "jid", self)
				b = attr(b, "node", c.Node)
				b = attr(b, "name", c.Name)
				b = append(b, "/>"...)
			}
			return append(b, "</query>"...)
		})
		return
	}
	page, err := parseRSM(s.t, p)
	if err != nil {
		l.replyErr(s, err, "")
		return
	}
	l.query(s, &bridge.DiscoItemsQuery{Node: node, Page: page}, node)
}

// parseRSM reads a XEP-0059 <set/> under parent (nil when absent).
func parseRSM(t *tree, parent *node) (*bridge.PageRequest, *bridge.StanzaError) {
	set := t.child(parent, nsRSM, "set")
	if set == nil {
		return nil, nil
	}
	pr := &bridge.PageRequest{}
	var bad *bridge.StanzaError
	t.children(set, func(c *node) bool {
		if c.space != nsRSM {
			return true
		}
		switch c.local {
		case "max", "index":
			n, err := strconv.Atoi(strings.TrimSpace(c.text))
			if err != nil || n < 0 {
				bad = bridge.Errorf(bridge.BadRequest, "The result set <%s/> must be a non-negative integer.", c.local)
				return false
			}
			if c.local == "max" {
				pr.Max = &n
			} else {
				pr.Index = &n
			}
		case "after":
			v := c.text
			pr.After = &v
		case "before":
			v := c.text
			pr.Before = &v
		}
		return true
	})
	if bad != nil {
		return nil, bad
	}
	return pr, nil
}

// query hands a request to the transport; its answer comes back as an
// IQResult through Send.
func (l *Link) query(s *stanza, req any, node string) {
	key := s.from.String() + "\x00" + s.id
	l.addPending(key, pendingQuery{node: node, addr: s.addr})
	q := bridge.Query{From: s.from, To: s.addr, ID: s.id, Request: req}
	if err := l.gw.Query(l.cfg.Transport, q); err != nil {
		l.takePending(key)
		l.refuse(s, err)
	}
}

func (l *Link) addPending(key string, pq pendingQuery) {
	now := l.now()
	pq.expires = now.Add(pendingTTL)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pendingAdds++
	if l.pendingAdds%1024 == 0 || len(l.pending) >= maxPending {
		for k, v := range l.pending {
			if now.After(v.expires) {
				delete(l.pending, k)
			}
		}
		if len(l.pending) >= maxPending {
			return // answers will lack the node echo; nothing breaks
		}
	}
	l.pending[key] = pq
}

func (l *Link) takePending(key string) (pendingQuery, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	pq, ok := l.pending[key]
	if ok {
		delete(l.pending, key)
	}
	return pq, ok
}

// ---------------------------------------------------------------- MAM

// archiveQuery handles a XEP-0313 query: a get returns the search form, a
// set goes to the transport as an ArchiveQuery.
func (l *Link) archiveQuery(s *stanza, p *node, get bool) {
	if get {
		l.result(s, func(b []byte) []byte {
			b = append(b, "<query xmlns='urn:xmpp:mam:2'>"...)
			b = appendForm(b, &bridge.Form{Type: "form", Fields: []bridge.FormField{
				{Var: "with", Type: bridge.FieldJIDSingle},
				{Var: "start", Type: bridge.FieldTextSingle},
				{Var: "end", Type: bridge.FieldTextSingle},
			}}, nsMAM)
			return append(b, "</query>"...)
		})
		return
	}
	q := &bridge.ArchiveQuery{QueryID: p.attrValue("queryid")}
	if _, values, ok := parseForm(s.t, s.t.child(p, nsData, "x")); ok {
		for name := range values {
			v := values.Get(name)
			switch name {
			case "FORM_TYPE":
				if v != nsMAM {
					l.replyErr(s, bridge.Errorf(bridge.BadRequest, "The archive query form must have FORM_TYPE %s.", nsMAM), "")
					return
				}
			case "with":
				q.With = v
			case "start", "end":
				if _, err := time.Parse(time.RFC3339, v); err != nil {
					l.replyErr(s, bridge.Errorf(bridge.BadRequest, "The %s field must be a XEP-0082 date and time.", name), "")
					return
				}
				if name == "start" {
					q.Start = v
				} else {
					q.End = v
				}
			default:
				l.replyErr(s, bridge.Errorf(bridge.FeatureNotImplemented, "The archive does not support searching by %q.", name), "")
				return
			}
		}
	}
	page, err := parseRSM(s.t, p)
	if err != nil {
		l.replyErr(s, err, "")
		return
	}
	q.Page = page
	l.query(s, q, "")
}

// roomAdmin turns a muc#admin set with one item into bridge.RoomAdmin.
func (l *Link) roomAdmin(s *stanza, p *node, get bool) {
	if get {
		l.replyErr(s, bridge.Errorf(bridge.FeatureNotImplemented, "This room does not list affiliations."), "")
		return
	}
	var items []*node
	s.t.children(p, func(c *node) bool {
		if c.space == nsMUCAdmin && c.local == "item" {
			items = append(items, c)
		}
		return true
	})
	if len(items) != 1 {
		l.replyErr(s, bridge.Errorf(bridge.FeatureNotImplemented, "Change one occupant at a time."), "")
		return
	}
	it := items[0]
	ev := bridge.RoomAdmin{
		From:        s.from,
		Room:        s.addr,
		IQID:        s.id,
		Nick:        it.attrValue("nick"),
		Role:        it.attrValue("role"),
		Affiliation: it.attrValue("affiliation"),
	}
	ev.Reason, _ = s.t.childText(it, nsMUCAdmin, "reason")
	if ev.Nick == "" {
		l.replyErr(s, bridge.Errorf(bridge.BadRequest, "Name the occupant by nick."), "")
		return
	}
	if ev.Role == "" && ev.Affiliation == "" {
		l.replyErr(s, bridge.Errorf(bridge.BadRequest, "Give a role or an affiliation."), "")
		return
	}
	l.dispatch(s, ev)
}

// ---------------------------------------------------------------- XEP-0077

// register answers in-band registration. It runs on the worker pool: it
// reads and writes the store.
func (l *Link) register(s *stanza, p *node, get bool) {
	from, reply := s.from, l.detach(s)
	if get {
		l.slow(s, func(ctx context.Context) {
			form, registered, err := l.gw.RegistrationForm(ctx, l.cfg.Transport, from)
			if err != nil {
				reply.refuse(l, err)
				return
			}
			reply.result(l, func(b []byte) []byte {
				b = append(b, "<query xmlns='jabber:iq:register'>"...)
				if registered {
					b = append(b, "<registered/>"...)
				}
				instr := "Fill in the form to register with this gateway."
				if form != nil && form.Instructions != "" {
					instr = form.Instructions
				}
				b = textElem(b, "instructions", "", instr)
				if form != nil {
					f := *form
					if f.Type == "" {
						f.Type = "form"
					}
					b = appendForm(b, &f, nsRegister)
				}
				return append(b, "</query>"...)
			})
		})
		return
	}
	if s.t.child(p, nsRegister, "remove") != nil {
		l.slow(s, func(ctx context.Context) {
			if err := l.gw.Unregister(ctx, l.cfg.Transport, from); err != nil {
				reply.refuse(l, err)
				return
			}
			reply.result(l, nil)
			// XEP-0100 §6.3: the gateway ends the subscription.
			bare := from.Bare().String()
			var o out
			o.presence(l.domainStr, bare, "unsubscribe", "", "")
			o.presence(l.domainStr, bare, "unsubscribed", "", "")
			o.presence(l.domainStr, bare, "unavailable", "", "")
			l.markPresence(bare, false)
			l.reply(&o)
		})
		return
	}
	typ, values, ok := parseForm(s.t, s.t.child(p, nsData, "x"))
	if ok && typ == "cancel" {
		l.result(s, nil)
		return
	}
	if !ok {
		// Legacy fields (XEP-0077 §3): <username/>, <password/>, …
		values = bridge.FormValues{}
		s.t.children(p, func(c *node) bool {
			if c.space == nsRegister && c.local != "instructions" && c.local != "registered" {
				values[c.local] = []string{c.text}
			}
			return true
		})
	}
	delete(values, "FORM_TYPE")
	l.slow(s, func(ctx context.Context) {
		if err := l.gw.Register(ctx, l.cfg.Transport, from, values); err != nil {
			reply.refuse(l, err)
			return
		}
		reply.result(l, nil)
		// XEP-0100 §6.1: the gateway asks to see the user's presence.
		var o out
		o.presence(l.domainStr, from.Bare().String(), "subscribe", "", "")
		l.reply(&o)
	})
}

// ---------------------------------------------------------------- XEP-0100

func (l *Link) gatewayPrompt(s *stanza, p *node, get bool) {
	if get {
		prompt, desc := l.codec.Prompt()
		l.result(s, func(b []byte) []byte {
			b = append(b, "<query xmlns='jabber:iq:gateway'>"...)
			b = textElem(b, "desc", "", desc)
			b = textElem(b, "prompt", "", prompt)
			return append(b, "</query>"...)
		})
		return
	}
	typed, _ := s.t.childText(p, nsGateway, "prompt")
	addr, err := l.codec.Translate(strings.TrimSpace(typed))
	if err != nil {
		l.refuse(s, err)
		return
	}
	j, err := l.codec.JID(addr)
	if err != nil {
		l.refuse(s, err)
		return
	}
	l.result(s, func(b []byte) []byte {
		b = append(b, "<query xmlns='jabber:iq:gateway'>"...)
		b = textElem(b, "jid", "", j.String())
		return append(b, "</query>"...)
	})
}

// ---------------------------------------------------------------- async answers

// replyTo is what an answer needs of a stanza after the read loop moved
// on (the tree is reused for the next stanza).
type replyTo struct {
	name, id string
	from     string // the answer's from: the address the stanza went to
	to       string // the answer's to: the sender, as it wrote itself
}

// detach copies what an answer needs out of s.
func (l *Link) detach(s *stanza) replyTo {
	return replyTo{name: s.name, id: s.id, from: s.replyFrom(l), to: s.fromRaw}
}

// refuse answers with the stanza error err stands for, logging errors
// that are not stanza errors (their detail is not shown to the user).
func (r replyTo) refuse(l *Link, err error) {
	var se *bridge.StanzaError
	if !errors.As(err, &se) && mapping.AsError(err) == nil {
		l.log.Error("handling a request failed", "stanza", r.name, "from", r.to, "err", err)
	}
	r.error(l, bridge.AsStanzaError(err), "")
}

// error answers with an error stanza of the same kind.
func (r replyTo) error(l *Link, se *bridge.StanzaError, app string) {
	var o out
	l.errorStanza(&o, r.name, r.id, r.from, r.to, se, app)
	l.reply(&o)
}

// result answers an IQ with a result; payload appends the child element
// (nil for an empty result).
func (r replyTo) result(l *Link, payload func(b []byte) []byte) {
	var o out
	o.b = append(o.b, "<iq type='result'"...)
	o.b = attr(o.b, "id", r.id)
	o.b = attr(o.b, "from", r.from)
	o.b = attr(o.b, "to", r.to)
	if payload == nil {
		o.b = append(o.b, "/>"...)
	} else {
		o.b = append(o.b, '>')
		o.b = payload(o.b)
		o.b = append(o.b, "</iq>"...)
	}
	o.count(kIQ)
	l.reply(&o)
}

// slow runs fn on the worker pool, or answers resource-constraint when
// the pool is saturated.
func (l *Link) slow(s *stanza, fn func(ctx context.Context)) bool {
	if !l.spawn(fn) {
		l.replyErr(s, bridge.Errorf(bridge.ResourceConstraint, "The gateway is busy; try again in a moment."), "")
		return false
	}
	return true
}
