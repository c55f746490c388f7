package component

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"switchboard/bridge"
	"switchboard/mapping"
)

// delayThreshold is how old a message's Time must be for a XEP-0203 delay
// to be added when the event does not say Delayed.
const delayThreshold = 5 * time.Second

// out collects rendered stanzas and counts them by kind.
type out struct {
	b []byte
	n [numKinds]uint16
}

func (o *out) item() outItem { return outItem{b: o.b, n: o.n} }

func (o *out) count(kind int) {
	if o.n[kind] < 65535 {
		o.n[kind]++
	}
}

// presence appends a simple presence (no payload but show and status).
func (o *out) presence(from, to, typ, show, status string) {
	o.b = append(o.b, "<presence"...)
	o.b = attr(o.b, "from", from)
	o.b = attr(o.b, "to", to)
	o.b = attr(o.b, "type", typ)
	if show == "" && status == "" {
		o.b = append(o.b, "/>"...)
	} else {
		o.b = append(o.b, '>')
		o.showStatus(show, status)
		o.b = append(o.b, "</presence>"...)
	}
	o.count(kPresence)
}

func (o *out) showStatus(show, status string) {
	switch show {
	case "away", "chat", "dnd", "xa":
		o.b = textElem(o.b, "show", "", show)
	}
	if status != "" {
		o.b = textElem(o.b, "status", "", status)
	}
}

// errorElem appends <error type=…><condition/><text/>app</error>. Unknown
// conditions become undefined-condition, unknown types the condition's
// default.
func errorElem(b []byte, se *bridge.StanzaError, app string) []byte {
	cond := se.Condition
	if !knownCondition(cond) {
		cond = bridge.UndefinedCondition
	}
	typ := se.Type
	switch typ {
	case "cancel", "continue", "modify", "auth", "wait":
	default:
		typ = bridge.Errorf(cond, "").Type
	}
	b = append(b, "<error"...)
	b = attr(b, "type", typ)
	b = append(b, "><"...)
	b = append(b, cond...)
	b = append(b, " xmlns='"+nsStanzas+"'/>"...)
	if se.Text != "" {
		b = append(b, "<text xmlns='"+nsStanzas+"' xml:lang='en'>"...)
		b = appendText(b, se.Text)
		b = append(b, "</text>"...)
	}
	b = append(b, app...)
	return append(b, "</error>"...)
}

var conditions = []string{
	bridge.BadRequest, bridge.Conflict, bridge.FeatureNotImplemented, bridge.Forbidden, bridge.Gone,
	bridge.InternalServerError, bridge.ItemNotFound, bridge.JIDMalformed, bridge.NotAcceptable,
	bridge.NotAllowed, bridge.NotAuthorized, bridge.PolicyViolation, bridge.RecipientUnavailable,
	"redirect", bridge.RegistrationRequired, bridge.RemoteServerNotFound, bridge.RemoteServerTimeout,
	bridge.ResourceConstraint, bridge.ServiceUnavailable, "subscription-required",
	bridge.UndefinedCondition, bridge.UnexpectedRequest,
}

func knownCondition(c string) bool { return slices.Contains(conditions, c) }

// errorStanza appends an error stanza of kind ("message", "presence",
// "iq") and counts it.
func (l *Link) errorStanza(o *out, kind, id, from, to string, se *bridge.StanzaError, app string) {
	o.b = append(o.b, '<')
	o.b = append(o.b, kind...)
	o.b = append(o.b, " type='error'"...)
	o.b = attr(o.b, "id", id)
	o.b = attr(o.b, "from", from)
	o.b = attr(o.b, "to", to)
	o.b = append(o.b, '>')
	o.b = errorElem(o.b, se, app)
	o.b = endElem(o.b, kind)
	switch kind {
	case "message":
		o.count(kMessage)
	case "presence":
		o.count(kPresence)
	default:
		o.count(kIQ)
	}
	cond := se.Condition
	if !knownCondition(cond) {
		cond = bridge.UndefinedCondition
	}
	l.countError(cond)
}

// jidStrings is an address rendered as a JID, full and bare.
type jidStrings struct{ full, bare string }

// jidCacheSize bounds the address → JID cache; when full it starts over.
const jidCacheSize = 8192

// jidCache memoizes codec.JID: rooms and occupants repeat in every
// message, and building a JID runs PRECIS on each part.
type jidCache struct {
	m sync.Map // mapping.Address → jidStrings
	n atomic.Int64
}

// jidString renders an Address as a JID string through the codec (and
// the cache).
func (l *Link) jidString(a mapping.Address) (string, jidStrings, error) {
	if a.Kind == mapping.KindGateway && a.Resource == "" {
		return l.domainStr, jidStrings{l.domainStr, l.domainStr}, nil
	}
	c := l.jids.Load()
	if v, ok := c.m.Load(a); ok {
		js := v.(jidStrings)
		return js.full, js, nil
	}
	j, err := l.codec.JID(a)
	if err != nil {
		return "", jidStrings{}, fmt.Errorf("no JID for %s %q: %w", a.Kind, a.Name+"/"+a.Resource, err)
	}
	js := jidStrings{full: j.String()}
	if j.Resourcepart() == "" {
		js.bare = js.full
	} else {
		js.bare = j.Bare().String()
	}
	if c.n.Add(1) > jidCacheSize {
		l.jids.CompareAndSwap(c, new(jidCache))
	} else {
		c.m.Store(a, js)
	}
	return js.full, js, nil
}

// render turns an outbound event into stanzas. Events come as values;
// a pointer to one (they implement Outbound too) is rendered as its value.
func (l *Link) render(o *out, ev bridge.Outbound) error {
	if v := reflect.ValueOf(ev); v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		ev, _ = v.Elem().Interface().(bridge.Outbound)
	}
	switch e := ev.(type) {
	case bridge.Message:
		return l.renderMessage(o, &e, msgOpts{})
	case bridge.RoomJoined:
		return l.renderRoomJoined(o, &e)
	case bridge.OccupantChanged:
		return l.renderOccupantChanged(o, &e)
	case bridge.RoomSubject:
		return l.renderRoomSubject(o, &e)
	case bridge.ContactPresence:
		return l.renderContactPresence(o, &e)
	case bridge.Receipt:
		return l.renderReceipt(o, &e)
	case bridge.DeliveryError:
		return l.renderDeliveryError(o, &e)
	case bridge.IQResult:
		return l.renderIQResult(o, &e)
	case bridge.Ping:
		return l.renderPing(o, &e)
	case bridge.OwnMessage:
		return l.renderOwnMessage(o, &e)
	case nil:
		return nil
	}
	return fmt.Errorf("cannot render event %T", ev)
}

// msgOpts vary message rendering for history and archive results.
type msgOpts struct {
	// inner renders the message forwarded inside a MAM result: with
	// xmlns='jabber:client', no delay (the forwarded element carries it),
	// not counted as a stanza.
	inner bool
	// delayed forces the delay (room history).
	delayed bool
	// defaultTo is used when the message has no To.
	defaultTo string
	// defaultType is used when the message has no Type.
	defaultType bridge.MessageType
}

// renderMessage renders a bridge.Message.
func (l *Link) renderMessage(o *out, m *bridge.Message, opt msgOpts) error {
	from, fromJID, err := l.jidString(m.From)
	if err != nil {
		return err
	}
	to := opt.defaultTo
	if m.To.String() != "" {
		to = m.To.String()
	}
	typ := m.Type
	if typ == "" {
		typ = opt.defaultType
	}
	if typ == "" {
		if m.From.Kind == mapping.KindRoom || (m.From.Kind == mapping.KindOccupant && m.Subject != nil) {
			typ = bridge.Groupchat
		} else {
			typ = bridge.Chat
		}
	}
	id := m.ID
	if id == "" && m.ReceiptRequested && !opt.inner {
		id = l.newID()
	}

	b := o.b
	if opt.inner {
		b = append(b, "<message xmlns='jabber:client'"...)
	} else {
		b = append(b, "<message"...)
	}
	b = attr(b, "type", string(typ))
	b = attr(b, "id", id)
	b = attr(b, "from", from)
	if !(opt.inner && typ == bridge.Groupchat) {
		b = attr(b, "to", to)
	}
	b = append(b, '>')

	// Body, with the reply fallback in front (XEP-0461/0428, offsets in
	// code points of the sanitized text).
	body := m.Body
	if m.Action {
		body = "/me " + body
	}
	fallback := ""
	if m.Reply != nil && m.Reply.Fallback != "" {
		fallback = Sanitize(m.Reply.Fallback)
	}
	if body == "" && fallback == "" && len(m.Attachments) == 1 {
		body = m.Attachments[0].URL // clients show the file inline when body == URL
	}
	if body != "" || fallback != "" {
		b = append(b, "<body>"...)
		b = appendText(b, fallback)
		b = appendText(b, body)
		b = append(b, "</body>"...)
	}
	if m.Subject != nil {
		b = textElem(b, "subject", "", *m.Subject)
	}
	if m.Thread != "" {
		b = textElem(b, "thread", "", m.Thread)
	}
	if m.Nick != "" {
		b = textElem(b, "nick", "http://jabber.org/protocol/nick", m.Nick)
	}
	b = l.appendAddresses(b, m.Addresses)
	if !opt.inner && !m.Time.IsZero() && (m.Delayed || opt.delayed || l.now().Sub(m.Time) > delayThreshold) {
		b = append(b, "<delay xmlns='urn:xmpp:delay'"...)
		if typ == bridge.Groupchat {
			b = attr(b, "from", fromJID.bare)
		}
		b = append(b, " stamp='"...)
		b = appendStamp(b, m.Time)
		b = append(b, "'/>"...)
	}
	if m.StanzaID != "" && !opt.inner {
		by := l.domainStr
		if typ == bridge.Groupchat {
			by = fromJID.bare
		}
		b = append(b, "<stanza-id xmlns='urn:xmpp:sid:0'"...)
		b = attr(b, "id", m.StanzaID)
		b = attr(b, "by", by)
		b = append(b, "/>"...)
	}
	if m.OriginID != "" {
		b = append(b, "<origin-id xmlns='urn:xmpp:sid:0'"...)
		b = attr(b, "id", m.OriginID)
		b = append(b, "/>"...)
	}
	if m.ReplaceID != "" {
		b = append(b, "<replace xmlns='urn:xmpp:message-correct:0'"...)
		b = attr(b, "id", m.ReplaceID)
		b = append(b, "/>"...)
	}
	if m.Reply != nil && m.Reply.ID != "" {
		b = append(b, "<reply xmlns='urn:xmpp:reply:0'"...)
		b = attr(b, "id", m.Reply.ID)
		b = attr(b, "to", m.Reply.To.String())
		b = append(b, "/>"...)
		if fallback != "" {
			b = append(b, "<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0'"...)
			b = attrInt(b, "end", utf8.RuneCountInString(fallback))
			b = append(b, "/></fallback>"...)
		}
	}
	for _, a := range m.Attachments {
		if a.URL == "" {
			continue
		}
		b = append(b, "<x xmlns='jabber:x:oob'>"...)
		b = textElem(b, "url", "", a.URL)
		if a.Desc != "" {
			b = textElem(b, "desc", "", a.Desc)
		}
		b = append(b, "</x>"...)
	}
	if r := m.Reactions; r != nil {
		b = append(b, "<reactions xmlns='urn:xmpp:reactions:0'"...)
		b = attr(b, "id", r.ID)
		b = append(b, '>')
		for _, e := range r.Emojis {
			b = textElem(b, "reaction", "", e)
		}
		b = append(b, "</reactions><store xmlns='urn:xmpp:hints'/>"...)
	}
	if m.ReceiptRequested && !opt.inner {
		b = append(b, "<request xmlns='urn:xmpp:receipts'/>"...)
	}
	b = appendChatState(b, m.ChatState)
	if m.From.Kind == mapping.KindOccupant && typ != bridge.Groupchat {
		// XEP-0045 §7.5: a private message through the room.
		b = append(b, "<x xmlns='http://jabber.org/protocol/muc#user'/>"...)
	}
	b = append(b, "</message>"...)
	o.b = b
	if !opt.inner {
		o.count(kMessage)
	}
	return nil
}

func appendChatState(b []byte, cs bridge.ChatState) []byte {
	switch cs {
	case "active", "composing", "paused", "inactive", "gone":
		b = append(b, '<')
		b = append(b, cs...)
		b = append(b, " xmlns='http://jabber.org/protocol/chatstates'/>"...)
	}
	return b
}

// occupantPresence appends a presence from an occupant with its muc#user
// item.
type occPresence struct {
	from, to, typ string
	oc            *bridge.Occupant
	codes         []int
	newNick       string
	actor, reason string
}

func (o *out) occupantPresence(p occPresence) {
	b := o.b
	b = append(b, "<presence"...)
	b = attr(b, "from", p.from)
	b = attr(b, "to", p.to)
	b = attr(b, "type", p.typ)
	b = append(b, '>')
	if p.typ == "" {
		switch p.oc.Show {
		case "away", "chat", "dnd", "xa":
			b = textElem(b, "show", "", p.oc.Show)
		}
	}
	if p.oc.Status != "" {
		b = textElem(b, "status", "", p.oc.Status)
	}
	aff := p.oc.Affiliation
	if aff == "" {
		aff = "none"
	}
	role := p.oc.Role
	if role == "" || p.typ == "unavailable" {
		if p.typ == "unavailable" {
			role = "none"
		} else {
			role = "participant"
		}
	}
	b = append(b, "<x xmlns='http://jabber.org/protocol/muc#user'><item"...)
	b = attr(b, "affiliation", aff)
	b = attr(b, "role", role)
	b = attr(b, "jid", p.oc.RealJID)
	b = attr(b, "nick", p.newNick)
	if p.actor == "" && p.reason == "" {
		b = append(b, "/>"...)
	} else {
		b = append(b, '>')
		if p.actor != "" {
			b = append(b, "<actor"...)
			b = attr(b, "nick", p.actor)
			b = append(b, "/>"...)
		}
		if p.reason != "" {
			b = textElem(b, "reason", "", p.reason)
		}
		b = append(b, "</item>"...)
	}
	for _, c := range p.codes {
		b = append(b, "<status code='"...)
		b = strconv.AppendInt(b, int64(c), 10)
		b = append(b, "'/>"...)
	}
	b = append(b, "</x></presence>"...)
	o.b = b
	o.count(kPresence)
}

// renderRoomJoined renders the XEP-0045 §7.2 join sequence: every other
// occupant, self-presence, history, subject.
func (l *Link) renderRoomJoined(o *out, e *bridge.RoomJoined) error {
	room := e.Room.Room()
	roomStr, _, err := l.jidString(room)
	if err != nil {
		return err
	}
	selfFrom, _, err := l.jidString(room.Occupant(e.Self.Nick))
	if err != nil {
		return err
	}
	to := e.To.String()
	nonAnon := e.Self.RealJID != ""
	for i := range e.Occupants {
		oc := &e.Occupants[i]
		if oc.RealJID != "" {
			nonAnon = true
		}
		from, _, err := l.jidString(room.Occupant(oc.Nick))
		if err != nil {
			l.log.Warn("an occupant of a room has a nick that cannot be a JID resource; not shown", "room", roomStr, "nick", oc.Nick, "err", err)
			continue
		}
		o.occupantPresence(occPresence{from: from, to: to, oc: oc})
	}
	codes := []int{110}
	if nonAnon {
		codes = append(codes, 100)
	}
	if e.Created {
		codes = append(codes, 201)
	}
	if e.NickChanged {
		codes = append(codes, 210)
	}
	o.occupantPresence(occPresence{from: selfFrom, to: to, oc: &e.Self, codes: codes})
	for i := range e.History {
		if err := l.renderMessage(o, &e.History[i], msgOpts{delayed: true, defaultTo: to, defaultType: bridge.Groupchat}); err != nil {
			l.log.Warn("a history message of a room could not be rendered", "room", roomStr, "err", err)
		}
	}
	// The subject comes from the occupant who set it when known (XEP-0045
	// §7.2.15), from the room otherwise; an empty subject from the room.
	subjectFrom := roomStr
	if e.Subject != "" && e.SubjectBy != "" {
		if f, _, err := l.jidString(e.Room.Room().Occupant(e.SubjectBy)); err == nil {
			subjectFrom = f
		}
	}
	b := o.b
	b = append(b, "<message type='groupchat'"...)
	b = attr(b, "id", l.newID())
	b = attr(b, "from", subjectFrom)
	b = attr(b, "to", to)
	b = append(b, '>')
	if e.Subject == "" {
		b = append(b, "<subject/>"...)
	} else {
		b = textElem(b, "subject", "", e.Subject)
	}
	if !e.SubjectAt.IsZero() {
		b = append(b, "<delay xmlns='urn:xmpp:delay'"...)
		b = attr(b, "from", roomStr)
		b = append(b, " stamp='"...)
		b = appendStamp(b, e.SubjectAt)
		b = append(b, "'/>"...)
	}
	b = append(b, "</message>"...)
	o.b = b
	o.count(kMessage)
	return nil
}

// renderOccupantChanged renders one occupant's change (XEP-0045 §7.4,
// §7.6 nick change, §9 kick/ban).
func (l *Link) renderOccupantChanged(o *out, e *bridge.OccupantChanged) error {
	room := e.Room.Room()
	from, _, err := l.jidString(room.Occupant(e.Occupant.Nick))
	if err != nil {
		return err
	}
	to := e.To.String()
	var codes []int
	if e.NewNick != "" {
		newFrom, _, err := l.jidString(room.Occupant(e.NewNick))
		if err != nil {
			return err
		}
		codes = append(codes, 303)
		if e.Self {
			codes = append(codes, 110)
		}
		o.occupantPresence(occPresence{from: from, to: to, typ: "unavailable", oc: &e.Occupant, codes: codes, newNick: e.NewNick})
		var after []int
		if e.Self {
			after = []int{110}
		}
		renamed := e.Occupant
		renamed.Nick = e.NewNick
		o.occupantPresence(occPresence{from: newFrom, to: to, oc: &renamed, codes: after})
		return nil
	}
	gone := e.Gone || e.Kicked || e.Banned
	if e.Self {
		codes = append(codes, 110)
	}
	if e.Banned {
		codes = append(codes, 301)
	}
	if e.Kicked {
		codes = append(codes, 307)
	}
	codes = append(codes, e.Codes...)
	p := occPresence{from: from, to: to, oc: &e.Occupant, codes: codes, actor: e.Actor, reason: e.Reason}
	if gone {
		p.typ = "unavailable"
		if e.Banned {
			oc := e.Occupant
			oc.Affiliation = "outcast"
			p.oc = &oc
		}
	}
	o.occupantPresence(p)
	return nil
}

// renderRoomSubject renders a subject change, from the occupant who set it
// when known.
func (l *Link) renderRoomSubject(o *out, e *bridge.RoomSubject) error {
	room := e.Room.Room()
	from, _, err := l.jidString(room)
	if err != nil {
		return err
	}
	if e.By != "" {
		if f, _, err := l.jidString(room.Occupant(e.By)); err == nil {
			from = f
		}
	}
	b := o.b
	b = append(b, "<message type='groupchat'"...)
	b = attr(b, "id", l.newID())
	b = attr(b, "from", from)
	b = attr(b, "to", e.To.String())
	b = append(b, '>')
	b = textElem(b, "subject", "", e.Subject)
	if !e.At.IsZero() && l.now().Sub(e.At) > delayThreshold {
		b = append(b, "<delay xmlns='urn:xmpp:delay'"...)
		b = append(b, " stamp='"...)
		b = appendStamp(b, e.At)
		b = append(b, "'/>"...)
	}
	b = append(b, "</message>"...)
	o.b = b
	o.count(kMessage)
	return nil
}

func (l *Link) renderContactPresence(o *out, e *bridge.ContactPresence) error {
	from, _, err := l.jidString(e.From)
	if err != nil {
		return err
	}
	switch e.Type {
	case bridge.Available, bridge.Unavailable, bridge.Subscribe, bridge.Subscribed,
		bridge.Unsubscribe, bridge.Unsubscribed, bridge.Probe:
	default:
		return fmt.Errorf("unknown presence type %q", e.Type)
	}
	o.presence(from, e.To.String(), string(e.Type), e.Show, e.Status)
	return nil
}

func (l *Link) renderReceipt(o *out, e *bridge.Receipt) error {
	from, _, err := l.jidString(e.From)
	if err != nil {
		return err
	}
	b := o.b
	b = append(b, "<message"...)
	b = attr(b, "id", l.newID())
	b = attr(b, "from", from)
	b = attr(b, "to", e.To.String())
	b = append(b, "><received xmlns='urn:xmpp:receipts'"...)
	b = attr(b, "id", e.ID)
	b = append(b, "/></message>"...)
	o.b = b
	o.count(kMessage)
	return nil
}

func (l *Link) renderDeliveryError(o *out, e *bridge.DeliveryError) error {
	from, _, err := l.jidString(e.From)
	if err != nil {
		return err
	}
	kind := e.Kind
	switch kind {
	case "message", "presence", "iq":
	case "":
		kind = "message"
	default:
		return fmt.Errorf("unknown stanza kind %q for a delivery error", e.Kind)
	}
	se := e.Err
	if se == nil {
		se = bridge.Errorf(bridge.UndefinedCondition, "")
	}
	l.errorStanza(o, kind, e.ID, from, e.To.String(), se, "")
	return nil
}

// sizeHint guesses the rendered size of an event, to allocate the buffer
// once for the common case.
func sizeHint(ev bridge.Outbound) int {
	switch e := ev.(type) {
	case bridge.Message:
		n := 384 + len(e.Body) + len(e.ID) + len(e.StanzaID) + len(e.OriginID)
		if e.Subject != nil {
			n += len(*e.Subject)
		}
		if e.Reply != nil {
			n += len(e.Reply.Fallback) + 128
		}
		return n + 128*len(e.Attachments) + 128*len(e.Addresses)
	case bridge.RoomJoined:
		n := 512 + 256*len(e.Occupants) + len(e.Subject)
		for i := range e.History {
			n += 384 + len(e.History[i].Body)
		}
		return n
	case bridge.IQResult:
		if a, ok := e.Payload.(*bridge.ArchiveResult); ok {
			n := 512
			for i := range a.Messages {
				n += 512 + len(a.Messages[i].Body)
			}
			return n
		}
		return 1024
	}
	return 384
}
