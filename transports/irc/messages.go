package irc

// This file is messages and text both ways: PRIVMSG/NOTICE/CTCP from
// IRC to XMPP, XMPP messages split into IRC lines, echoes, reflections,
// receipts and send errors.

import (
	"fmt"
	"strconv"
	"strings"
	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"
)

// onSendError handles 401 (no such nick) and 404 (cannot send to channel).
func (n *network) onSendError(m *ircmsg.Message) {
	target := param(m, 1)
	text := last(m)
	if a := n.takeAdmin(func(a *adminReq) bool { return a.nick != "" && n.is.cm.Equal(a.nick, target) }); a != nil && m.Command == "401" {
		n.answerAdmin(a, bridge.Errorf(bridge.ItemNotFound, "%s is not on %s.", target, n.name))
		return
	}
	var pe *pendingEcho
	if l := tag(m, "label"); l != "" {
		pe = n.labels[l]
	} else {
		k := n.fold(target)
		for _, e := range n.echoes {
			if e.target == k && !e.failed {
				pe = e
				break
			}
		}
	}
	cond, sentence := bridge.ItemNotFound, fmt.Sprintf("%s is not on %s.", target, n.name)
	if m.Command == "404" {
		cond, sentence = bridge.Forbidden, fmt.Sprintf("You cannot send to %s: %s", target, text)
	}
	if pe != nil {
		pe.failed = true
		n.dropEcho(pe)
		n.s.emit(bridge.DeliveryError{To: pe.ev.From, From: pe.ev.To, Kind: "message", ID: pe.ev.ID, Err: bridge.Errorf(cond, "%s", sentence)})
		return
	}
	k := n.fold(target)
	if r := n.rooms[k]; r != nil {
		n.s.emit(bridge.DeliveryError{To: n.s.anyJID(r), From: r.addr, Kind: "message", ID: r.lastID, Err: bridge.Errorf(cond, "%s", sentence)})
		return
	}
	if pm, ok := n.lastPM[k]; ok {
		delete(n.lastPM, k)
		n.s.emit(bridge.DeliveryError{To: pm.from, From: pm.to, Kind: "message", ID: pm.id, Err: bridge.Errorf(cond, "%s", sentence)})
		return
	}
	n.serverNotice(strings.Join(m.Params[min(1, len(m.Params)):], " "))
}

// contact is the address of a nick on this network.
func (n *network) contact(nick string) mapping.Address {
	return mapping.Address{Kind: mapping.KindContact, Domain: n.s.t.codec.Domain(), Network: n.name, Name: nick}
}

// onMessage handles PRIVMSG and NOTICE.
func (n *network) onMessage(m *ircmsg.Message, notice bool) {
	if len(m.Params) < 2 {
		return
	}
	target, text := m.Params[0], m.Params[1]
	from := sourceNick(m)
	if from == "" || !strings.ContainsRune(m.Source, '!') && strings.ContainsRune(from, '.') {
		// From the server.
		if n.state == stRegistered {
			n.serverNotice(toXMPPText(text))
		}
		return
	}
	action := false
	if c, ok := parseCTCP(text); ok {
		if c.Command != "ACTION" {
			if !notice && !n.isMe(from) {
				n.answerCTCP(from, c)
			}
			return
		}
		action, text = true, c.Args
	}
	self := n.isMe(from)
	chTarget := target
	if prefixes := n.is.statusmsg + n.is.prefixChars; !n.is.isChannel(target) {
		if t := strings.TrimLeft(target, prefixes); n.is.isChannel(t) {
			chTarget = t // STATUSMSG: "@#chan" reaches the channel's ops
		}
	}
	if n.is.isChannel(chTarget) {
		r := n.rooms[n.fold(chTarget)]
		if r == nil {
			return
		}
		if self {
			n.onEcho(m, r, chTarget, text, action)
			return
		}
		n.roomMessage(r, from, text, action, notice, m)
		return
	}
	if self {
		if !notice {
			n.onEcho(m, nil, target, text, action)
		}
		return
	}
	n.privateMessage(from, text, action, notice, m)
}

// roomMessage relays a channel message to the room's resources and
// archives it.
func (n *network) roomMessage(r *room, from, text string, action, notice bool, m *ircmsg.Message) {
	body := toXMPPText(text)
	if body == "" {
		return
	}
	msgid := tag(m, "msgid")
	when := serverTime(m)
	archived := n.archiving()
	sid := n.s.stanzaID(msgid, archived)
	out := bridge.Message{From: r.addr.Occupant(from), Type: bridge.Groupchat, StanzaID: sid, Body: body,
		Action: action, Notice: notice, Time: when, Reply: n.replyOf(m)}
	if r.state != rsJoined && len(r.waiting) > 0 && len(r.held) < maxHeld {
		// The join is not complete (NAMES or the channel modes are still
		// coming): keep the line for the joining resources, after their
		// history. It is archived then, so that the history cannot hold
		// it too.
		if when.IsZero() {
			out.Time = time.Now()
		}
		r.held = append(r.held, heldMsg{msg: out, nick: from, msgid: msgid, archive: archived && !notice})
		n.s.t.msgsIn.Inc()
		return
	}
	for _, to := range r.resources {
		out.To = to
		n.s.emit(out)
	}
	n.s.t.msgsIn.Inc()
	if archived && !notice {
		n.archive(r, sid, from, false, body, action, msgid, "", when)
	}
}

// replyOf reads the +draft/reply tag.
func (n *network) replyOf(m *ircmsg.Message) *bridge.Reply {
	id := tag(m, "+draft/reply")
	if id == "" {
		return nil
	}
	return &bridge.Reply{ID: n.s.stanzaID(id, n.archiving())}
}

// privateMessage relays a message to the user from a nick.
func (n *network) privateMessage(from, text string, action, notice bool, m *ircmsg.Message) {
	body := toXMPPText(text)
	if body == "" {
		return
	}
	k := n.fold(from)
	out := bridge.Message{To: n.s.u.JID().Bare(), From: n.contact(from), Type: bridge.Chat, Body: body,
		Action: action, Notice: notice, Time: serverTime(m), StanzaID: tag(m, "msgid"), Reply: n.replyOf(m)}
	if via, ok := n.pmVia[k]; ok {
		if r := n.rooms[n.fold(via.Name)]; r != nil && len(r.resources) > 0 {
			out.From = via.Room().Occupant(from)
			for _, to := range r.resources {
				out.To = to
				n.s.emit(out)
			}
			n.s.t.msgsIn.Inc()
			return
		}
	}
	n.lastActivity = time.Now()
	n.s.emit(out)
	n.s.t.msgsIn.Inc()
}

// onEcho handles the echo of the user's own message (echo-message).
func (n *network) onEcho(m *ircmsg.Message, r *room, target, text string, action bool) {
	msgid := tag(m, "msgid")
	var pe *pendingEcho
	if l := tag(m, "label"); l != "" {
		pe = n.labels[l]
		delete(n.labels, l)
	} else {
		k := n.fold(target)
		for _, e := range n.echoes {
			if e.target == k && e.lines > 0 {
				pe = e
				break
			}
		}
	}
	if pe == nil {
		// Sent by a raw command: show it in the room as the user's own.
		if r != nil {
			n.reflect(r, bridge.SendMessage{Action: action}, toXMPPText(text), msgid, serverTime(m))
		}
		return
	}
	if pe.msgid == "" {
		pe.msgid = strings.Clone(msgid)
	}
	pe.lines--
	if pe.lines > 0 {
		return
	}
	n.dropEcho(pe)
	if pe.room != nil {
		if n.rooms[pe.room.key] == pe.room {
			n.reflect(pe.room, pe.ev, pe.body, pe.msgid, serverTime(m))
		}
	} else if pe.receipts {
		n.s.emit(bridge.Receipt{To: pe.ev.From, From: pe.ev.To, ID: pe.ev.ID})
	}
}

// answerCTCP answers VERSION, PING, TIME and CLIENTINFO (at most one
// answer every two seconds, so that a CTCP flood cannot fill the queue).
func (n *network) answerCTCP(to string, c ctcp) {
	if time.Since(n.lastCTCP) < 2*time.Second || !validTarget(to) {
		return
	}
	var reply string
	switch c.Command {
	case "VERSION":
		reply = "Switchboard XMPP gateway"
	case "PING":
		reply = stripFormatting(c.Args)
		if len(reply) > 64 {
			reply = reply[:64]
		}
	case "TIME":
		reply = time.Now().UTC().Format(time.RFC1123Z)
	case "CLIENTINFO":
		reply = "ACTION CLIENTINFO PING TIME VERSION"
	default:
		return
	}
	n.lastCTCP = time.Now()
	n.send(ircmsg.MakeMessage(nil, "", "NOTICE", to, ctcpText(c.Command, reply)))
}

// sentPM is the last private message sent to a nick, so that a server
// refusal (401 no such nick) reaches the resource that sent it, from the
// address it wrote to (an error to a bare JID is dropped by the server).
type sentPM struct {
	id   string
	from jid.JID
	to   mapping.Address
}

// queuedMsg waits for registration.
type queuedMsg struct {
	ev     bridge.SendMessage
	target string
	raw    ircmsg.Message // Command set: a raw command
}

// pendingEcho is an own message waiting for its echo (echo-message).
type pendingEcho struct {
	target   string // folded
	room     *room  // nil for private messages
	lines    int    // echoes still expected
	ev       bridge.SendMessage
	body     string // what was sent, lines joined with \n
	msgid    string // of the first echo
	at       time.Time
	failed   bool
	receipts bool
}

// failPending answers every own message still waiting for its echo, and
// every moderation request, with an error.
func (n *network) failPending(text string) {
	for _, pe := range n.echoes {
		if !pe.failed {
			n.s.emit(bridge.DeliveryError{To: pe.ev.From, From: pe.ev.To, Kind: "message", ID: pe.ev.ID,
				Err: bridge.Errorf(bridge.RemoteServerTimeout, "%s", text)})
		}
	}
	n.echoes = nil
	clear(n.labels)
	for _, a := range n.admin {
		n.answerAdmin(a, bridge.Errorf(bridge.RemoteServerTimeout, "%s", text))
	}
	n.admin = nil
	n.nickReq = nil
	for _, w := range n.listWait {
		w.reply(nil, bridge.Errorf(bridge.RemoteServerTimeout, "%s", text))
	}
	n.listWait = nil
	n.listing = false
	n.listBuf = nil
}

// overhead is how many bytes of a relayed PRIVMSG line are not text:
// ":nick!user@host PRIVMSG target :" and CR LF, as other clients receive
// it. Unknown parts count at their usual maximum.
func (n *network) overhead(target string) int {
	user, host := len(n.user), len(n.host)
	if user == 0 {
		user = 10
	}
	if host == 0 {
		host = 63
	}
	nick := max(len(n.nick), len(n.wantNick))
	return 1 + nick + 1 + user + 1 + host + len(" PRIVMSG ") + len(target) + len(" :") + 2
}

// sendText sends a message body to a channel or nick, one PRIVMSG per line
// and per piece of an over-long line, and reflects it into the room.
func (n *network) sendText(ev bridge.SendMessage, target string, r *room, fail func(error)) {
	if !validTarget(target) {
		fail(bridge.Errorf(bridge.JIDMalformed, "%q cannot be an IRC target.", target))
		return
	}
	maxText := maxLine - n.overhead(target)
	if ev.Action {
		maxText -= len("\x01ACTION \x01")
	}
	parts := splitText(ev.Body, maxText)
	if len(parts) == 0 {
		return
	}
	if limit := n.info.limits.maxLines; len(parts) > limit {
		fail(bridge.Errorf(bridge.PolicyViolation, "Your message would take %d IRC lines; this gateway sends at most %d per message. Share long texts as a link instead.", len(parts), limit))
		return
	}
	var tags map[string]string
	if ev.Reply != nil && ev.Reply.ID != "" && n.caps["message-tags"] {
		if id := n.s.msgidOf(ev.Reply.ID); id != "" && safeParam(id) {
			tags = map[string]string{"+draft/reply": id}
		}
	}
	echo := n.caps["echo-message"]
	if lim := n.backlogLimit(); lim > 0 && n.c != nil {
		if b := n.c.backlog(); b+len(parts) > lim {
			fail(bridge.Errorf(bridge.ResourceConstraint, "%d lines are already waiting to be sent to %s (about %s at the %g lines per second this gateway keeps to); your message was not sent. Wait a moment and send it again.",
				b, n.name, backlogTime(b, n.info.limits.rate), n.info.limits.rate))
			return
		}
	}
	var pe *pendingEcho
	if echo {
		pe = &pendingEcho{target: n.fold(target), room: r, ev: ev, at: time.Now(),
			body: strings.Join(cleanText(ev.Body), "\n"), receipts: ev.ReceiptRequested && r == nil}
		n.echoes = append(n.echoes, pe)
		n.expireEchoes()
	}
	var last uint64
	for i, p := range parts {
		text := p
		if ev.Action {
			text = ctcpText("ACTION", p)
		}
		msg := ircmsg.MakeMessage(tags, "", "PRIVMSG", target, text)
		tags = nil
		if echo && n.caps["labeled-response"] {
			n.labelSeq++
			label := "sb" + strconv.Itoa(n.labelSeq)
			msg.SetTag("label", label)
			if n.labels == nil {
				n.labels = map[string]*pendingEcho{}
			}
			n.labels[label] = pe
		}
		seq, err := n.sendSeq(msg)
		if err != nil {
			if i == 0 {
				if pe != nil {
					pe.failed = true
					n.dropEcho(pe)
				}
				fail(err)
				return
			}
			fail(bridge.Errorf(bridge.ResourceConstraint, "Only %d of the %d lines of your message were sent: %v", i, len(parts), err))
			if pe == nil {
				return // not reflected: the error stands for the message
			}
			parts = parts[:i]
			break
		}
		last = seq
	}
	if pe != nil {
		pe.lines = len(parts)
	}
	n.s.t.msgsOut.Inc()
	if r != nil {
		r.lastID = ev.ID
	} else {
		if len(n.lastPM) > 1000 { // bounded: only recent ones matter
			clear(n.lastPM)
		}
		n.lastPM[n.fold(target)] = sentPM{id: ev.ID, from: ev.From, to: ev.To}
	}
	if echo {
		return // reflected (or receipted) when the echo comes back
	}
	// Reflected (or receipted) only once the last line was written to
	// the connection: a line still queued may never leave (a crash, a
	// dropped connection), and the user must not see it as sent.
	pw := pendingWrite{seq: last, ev: ev, room: r}
	if r != nil {
		pw.body = strings.Join(cleanText(ev.Body), "\n")
	}
	n.unwritten = append(n.unwritten, pw)
	if n.c != nil {
		n.onWritten(n.c.written.Load())
	}
}

// reflect shows the user's own message in the room, with its id (and the
// IRC msgid of its echo when there is one), and archives it. A correction
// (XEP-0308) keeps its <replace/>, so that clients correct the message they
// show; IRC, which has no corrections, got the corrected text.
func (n *network) reflect(r *room, ev bridge.SendMessage, body, msgid string, when time.Time) {
	archived := n.archiving()
	sid := n.s.stanzaID(msgid, archived)
	m := bridge.Message{From: r.addr.Occupant(n.nick), Type: bridge.Groupchat, ID: ev.ID, StanzaID: sid,
		OriginID: ev.OriginID, Body: body, Action: ev.Action, Time: when, Reply: ev.Reply, ReplaceID: ev.ReplaceID}
	for _, to := range r.resources {
		m.To = to
		n.s.emit(m)
	}
	if archived {
		n.archive(r, sid, n.nick, true, body, ev.Action, msgid, ev.OriginID, when)
	}
}

// archive queues an archive entry for a room.
func (n *network) archive(r *room, id, nick string, outgoing bool, body string, action bool, msgid, originID string, when time.Time) {
	if when.IsZero() {
		when = time.Now()
	}
	n.s.t.archive.add(store.ArchiveEntry{
		ID: id, User: n.s.bare, Transport: "irc", Peer: mapping.PeerKey(r.addr), Nick: nick,
		Outgoing: outgoing, Body: body, Action: action, RemoteID: msgid, OriginID: originID, Time: when,
	})
}

// expireEchoes drops own messages whose echo never came.
func (n *network) expireEchoes() {
	i := 0
	for i < len(n.echoes) && time.Since(n.echoes[i].at) > echoTimeout {
		pe := n.echoes[i]
		if !pe.failed {
			n.s.emit(bridge.DeliveryError{To: pe.ev.From, From: pe.ev.To, Kind: "message", ID: pe.ev.ID,
				Err: bridge.Errorf(bridge.RemoteServerTimeout, "The IRC server never confirmed your message; it may not have been delivered.")})
		}
		i++
	}
	if i > 0 {
		for _, pe := range n.echoes[:i] {
			n.forgetLabels(pe)
		}
		n.echoes = append(n.echoes[:0], n.echoes[i:]...)
	}
}

// dropEcho removes one pending echo.
func (n *network) dropEcho(pe *pendingEcho) {
	for i, e := range n.echoes {
		if e == pe {
			n.echoes = append(n.echoes[:i], n.echoes[i+1:]...)
			break
		}
	}
	n.forgetLabels(pe)
}

func (n *network) forgetLabels(pe *pendingEcho) {
	for l, e := range n.labels {
		if e == pe {
			delete(n.labels, l)
		}
	}
}

// sendMessage handles a message to a room, a nick or a server.
func (s *session) sendMessage(ev bridge.SendMessage) {
	fail := func(err error) {
		s.emit(bridge.DeliveryError{To: ev.From, From: ev.To, Kind: "message", ID: ev.ID, Err: bridge.AsStanzaError(err)})
	}
	to := ev.To
	if to.Kind == mapping.KindGateway {
		fail(bridge.Errorf(bridge.ServiceUnavailable, "Write to a channel (#chan%%network@%s), a nick (nick%%network@%s) or a network (network@%s).", to.Domain, to.Domain, to.Domain))
		return
	}
	if ev.Body == "" && ev.Subject == nil {
		return // chat states, receipts, markers: nothing for IRC
	}
	switch to.Kind {
	case mapping.KindRoom:
		if ev.Type != bridge.Groupchat && ev.Subject == nil {
			fail(bridge.Errorf(bridge.BadRequest, "Messages to a room must be of type groupchat."))
			return
		}
		s.sendToRoom(ev, fail)
	case mapping.KindOccupant, mapping.KindContact:
		s.sendPrivate(ev, fail)
	case mapping.KindServer:
		s.sendToServer(ev, fail)
	}
}

// sendToRoom relays a groupchat message or a subject change.
func (s *session) sendToRoom(ev bridge.SendMessage, fail func(error)) {
	n := s.nets[strings.ToLower(ev.To.Network)]
	var r *room
	if n != nil {
		r = n.rooms[n.fold(ev.To.Name)]
	}
	if r == nil || !r.has(ev.From) {
		fail(bridge.Errorf(bridge.NotAcceptable, "You are not in %s; join it first.", ev.To.Name))
		return
	}
	if n.state != stRegistered || r.state != rsJoined {
		fail(n.downError())
		return
	}
	if ev.Subject != nil {
		topic := strings.Join(cleanText(*ev.Subject), " ")
		if n.is.topicLen > 0 && len(topic) > n.is.topicLen {
			fail(bridge.Errorf(bridge.NotAcceptable, "The subject is longer than the %d bytes this IRC network allows.", n.is.topicLen))
			return
		}
		if err := n.send(ircmsg.MakeMessage(nil, "", "TOPIC", r.name, topic)); err != nil {
			fail(err)
			return
		}
		n.admin = append(n.admin, &adminReq{kind: "topic", room: r, msgID: ev.ID, from: ev.From, at: time.Now()})
		if ev.Body == "" {
			return
		}
	}
	n.sendText(ev, r.name, r, fail)
}

// sendPrivate relays a private message to a nick (from a contact JID or an
// occupant JID).
func (s *session) sendPrivate(ev bridge.SendMessage, fail func(error)) {
	nick := ev.To.Name
	if ev.To.Kind == mapping.KindOccupant {
		nick = ev.To.Resource
		if err := s.t.codec.ValidChannel(ev.To.Name); err != nil {
			fail(err)
			return
		}
	}
	if err := s.t.codec.ValidNick(nick); err != nil {
		fail(err)
		return
	}
	n, err := s.network(ev.To, true, "")
	if err != nil {
		fail(err)
		return
	}
	n.lastActivity = time.Now()
	folded := n.fold(nick)
	if ev.To.Kind == mapping.KindOccupant {
		n.pmVia[folded] = ev.To
	} else {
		delete(n.pmVia, folded)
	}
	if n.state != stRegistered {
		if n.state == stDown && n.registered {
			fail(n.downError())
			return
		}
		if len(n.queued) >= maxQueuedWhileConnecting {
			fail(bridge.Errorf(bridge.ResourceConstraint, "Too many messages are waiting for the connection to %s.", n.name))
			return
		}
		n.queued = append(n.queued, queuedMsg{ev: ev, target: nick})
		n.ensureConnected()
		return
	}
	n.sendText(ev, nick, nil, fail)
}
