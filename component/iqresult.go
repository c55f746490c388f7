package component

import (
	"slices"
	"strconv"

	"switchboard/bridge"
	"switchboard/mapping"
)

// renderIQResult renders a transport's asynchronous answer to a user IQ.
func (l *Link) renderIQResult(o *out, e *bridge.IQResult) error {
	from, fromJID, err := l.jidString(e.From)
	if err != nil {
		return err
	}
	to := e.To.String()
	pq, _ := l.takePending(to + "\x00" + e.ID)
	if e.Err != nil {
		l.errorStanza(o, "iq", e.ID, from, to, e.Err, "")
		return nil
	}
	open := func() {
		o.b = append(o.b, "<iq type='result'"...)
		o.b = attr(o.b, "id", e.ID)
		o.b = attr(o.b, "from", from)
		o.b = attr(o.b, "to", to)
	}
	switch p := e.Payload.(type) {
	case nil:
		open()
		o.b = append(o.b, "/>"...)
	case *bridge.DiscoInfo:
		l.discoInfoResult(o, open, p, pq, e)
	case bridge.DiscoInfo:
		l.discoInfoResult(o, open, &p, pq, e)
	case *bridge.DiscoItems:
		open()
		discoItemsResult(o, p, pq.node)
	case bridge.DiscoItems:
		open()
		discoItemsResult(o, &p, pq.node)
	case *bridge.ArchiveResult:
		l.archiveResult(o, open, p, e.From, fromJID.bare, to)
		return nil
	case bridge.ArchiveResult:
		l.archiveResult(o, open, &p, e.From, fromJID.bare, to)
		return nil
	default:
		l.log.Error("BUG: a transport answered an IQ with a payload the component cannot render", "payload", p)
		l.errorStanza(o, "iq", e.ID, from, to, bridge.Errorf(bridge.InternalServerError, "The gateway could not render the answer."), "")
		return nil
	}
	o.count(kIQ)
	return nil
}

func (l *Link) discoInfoResult(o *out, open func(), p *bridge.DiscoInfo, pq pendingQuery, e *bridge.IQResult) {
	open()
	b := append(o.b, "><query xmlns='"+nsDiscoInfo+"'"...)
	b = attr(b, "node", pq.node)
	b = append(b, '>')
	for _, id := range p.Identities {
		b = append(b, "<identity"...)
		b = attr(b, "category", id.Category)
		b = attr(b, "type", id.Type)
		b = attr(b, "name", id.Name)
		b = append(b, "/>"...)
	}
	features := p.Features
	// Addresses with ad-hoc commands say so, whatever the transport listed.
	if pq.node == "" && !slices.Contains(features, nsCommands) && e.From.Kind != mapping.KindGateway &&
		len(l.gw.Commands(l.cfg.Transport, e.To, e.From)) > 0 {
		features = append(slices.Clip(features), nsCommands)
	}
	for _, f := range features {
		b = appendFeature(b, f)
	}
	if p.Form != nil {
		f := *p.Form
		if f.Type == "" {
			f.Type = "result"
		}
		b = appendForm(b, &f, "")
	}
	o.b = append(b, "</query></iq>"...)
}

func discoItemsResult(o *out, p *bridge.DiscoItems, node string) {
	b := append(o.b, "><query xmlns='"+nsDiscoItems+"'"...)
	b = attr(b, "node", node)
	b = append(b, '>')
	for _, it := range p.Items {
		b = append(b, "<item"...)
		b = attr(b, "jid", it.JID.String())
		b = attr(b, "node", it.Node)
		b = attr(b, "name", it.Name)
		b = append(b, "/>"...)
	}
	b = appendRSM(b, p.Page)
	o.b = append(b, "</query></iq>"...)
}

// appendRSM appends a XEP-0059 result set.
func appendRSM(b []byte, p *bridge.PageResult) []byte {
	if p == nil {
		return b
	}
	b = append(b, "<set xmlns='"+nsRSM+"'>"...)
	if p.First != "" {
		b = append(b, "<first"...)
		b = attrInt(b, "index", p.FirstIndex)
		b = append(b, '>')
		b = appendText(b, p.First)
		b = append(b, "</first>"...)
	}
	if p.Last != "" {
		b = textElem(b, "last", "", p.Last)
	}
	if p.Count >= 0 {
		b = append(b, "<count>"...)
		b = strconv.AppendInt(b, int64(p.Count), 10)
		b = append(b, "</count>"...)
	}
	return append(b, "</set>"...)
}

// archiveResult renders a XEP-0313 answer: one message per archived
// message, then the IQ result with <fin/>. They are one queue item, so
// they reach the user in order.
func (l *Link) archiveResult(o *out, open func(), p *bridge.ArchiveResult, of mapping.Address, archive, to string) {
	defType := bridge.Chat
	if of.Kind == mapping.KindRoom {
		defType = bridge.Groupchat
	}
	for i := range p.Messages {
		m := &p.Messages[i]
		start := len(o.b)
		b := append(o.b, "<message"...)
		b = attr(b, "from", archive)
		b = attr(b, "to", to)
		b = append(b, "><result xmlns='urn:xmpp:mam:2'"...)
		b = attr(b, "queryid", p.QueryID)
		b = attr(b, "id", m.StanzaID)
		b = append(b, "><forwarded xmlns='urn:xmpp:forward:0'>"...)
		if !m.Time.IsZero() {
			b = append(b, "<delay xmlns='urn:xmpp:delay' stamp='"...)
			b = appendStamp(b, m.Time)
			b = append(b, "'/>"...)
		}
		o.b = b
		if err := l.renderMessage(o, m, msgOpts{inner: true, defaultTo: to, defaultType: defType}); err != nil {
			l.log.Warn("an archived message could not be rendered", "archive", archive, "id", m.StanzaID, "err", err)
			o.b = o.b[:start]
			continue
		}
		o.b = append(o.b, "</forwarded></result></message>"...)
		o.count(kMessage)
	}
	open()
	b := append(o.b, "><fin xmlns='urn:xmpp:mam:2'"...)
	if p.Complete {
		b = append(b, " complete='true'"...)
	}
	b = append(b, '>')
	b = appendRSM(b, p.Page)
	o.b = append(b, "</fin></iq>"...)
	o.count(kIQ)
}
