package irc

// This file is moderation: MODE from IRC as roles, and muc#admin
// requests (kick, role, ban) sent to IRC and answered.

import (
	"strings"
	"switchboard/bridge"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"
)

func (n *network) onMode(m *ircmsg.Message) {
	target := param(m, 0)
	if !n.is.isChannel(target) || len(m.Params) < 2 {
		return
	}
	r := n.rooms[n.fold(target)]
	if r == nil {
		return
	}
	actor := sourceNick(m)
	changes := n.is.parseModes(m.Params[1], m.Params[2:])
	var touched []*member
	moderated := r.moderated
	for _, ch := range changes {
		switch {
		case n.is.isPrefixMode(ch.mode):
			mem := r.members[n.fold(ch.param)]
			if mem == nil {
				continue
			}
			if ch.adding {
				mem.modes = intern(n.is.addMode(mem.modes.String(), ch.mode))
			} else {
				mem.modes = intern(removeMode(mem.modes.String(), ch.mode))
			}
			touched = append(touched, mem)
		case ch.mode == 'm':
			moderated = ch.adding
		case ch.mode == 'b' && ch.adding && ch.param != "":
			r.bans = append(r.bans, banRecord{mask: strings.Clone(ch.param), by: strings.Clone(actor), at: time.Now()})
			if len(r.bans) > 8 {
				r.bans = r.bans[len(r.bans)-8:]
			}
		}
	}
	flipped := moderated != r.moderated
	r.moderated = moderated
	seen := map[*member]bool{}
	for _, mem := range touched {
		if seen[mem] {
			continue
		}
		seen[mem] = true
		n.emitOccupant(r, bridge.OccupantChanged{Occupant: n.occupant(r, mem.nick.String()), Self: n.isMe(mem.nick.String()), Actor: actor})
	}
	if flipped {
		n.emitRoleFlip(r, actor, seen)
	}
	if n.isMe(actor) {
		if a := n.takeAdmin(func(a *adminReq) bool { return a.kind == "mode" && a.room == r }); a != nil {
			n.answerAdmin(a, nil)
		}
	}
}

// onAdminError answers the moderation request a numeric refuses.
func (n *network) onAdminError(m *ircmsg.Message) {
	text := last(m)
	var a *adminReq
	switch m.Command {
	case "441": // nick channel
		a = n.takeAdmin(func(a *adminReq) bool { return n.is.cm.Equal(a.nick, param(m, 1)) })
	case "472", "501":
		a = n.takeAdmin(func(a *adminReq) bool { return a.kind == "mode" })
	default: // channel first
		r := n.rooms[n.fold(param(m, 1))]
		a = n.takeAdmin(func(a *adminReq) bool { return a.room == r })
	}
	if a == nil {
		n.serverNotice(strings.Join(m.Params[min(1, len(m.Params)):], " "))
		return
	}
	cond := bridge.Forbidden
	switch m.Command {
	case "441":
		cond = bridge.ItemNotFound
	case "472", "501":
		cond = bridge.NotAcceptable
	}
	n.answerAdmin(a, bridge.Errorf(cond, "%s", text))
}

// adminReq is a moderation request (or topic change) waiting for the
// server's answer.
type adminReq struct {
	kind  string // "kick", "mode", "topic"
	room  *room
	nick  string
	iqID  string
	msgID string
	from  jid.JID
	at    time.Time
}

// modesFor returns the MODE change that gives m the role or affiliation
// asked for ("" when nothing changes, "!" when IRC cannot express it).
func (n *network) modesFor(m *member, role, affiliation string) string {
	modes := m.modes.String()
	has := func(c byte) bool { return strings.IndexByte(modes, c) >= 0 }
	supported := func(c byte) bool { return n.is.isPrefixMode(c) }
	var plus, minus []byte
	add := func(c byte) {
		if !has(c) {
			plus = append(plus, c)
		}
	}
	del := func(cs ...byte) {
		for _, c := range cs {
			if has(c) {
				minus = append(minus, c)
			}
		}
	}
	switch affiliation {
	case "owner":
		if !supported('q') {
			return "!"
		}
		add('q')
	case "admin":
		add('o')
		del('q')
	case "member":
		if !supported('v') {
			return "!"
		}
		add('v')
		del('q', 'a', 'o', 'h')
	case "none":
		del('q', 'a', 'o', 'h', 'v')
	case "":
		switch role {
		case "moderator":
			if !has('q') && !has('a') && !has('o') && !has('h') {
				add('o')
			}
		case "participant":
			if has('o') || has('h') {
				del('o', 'h')
			} else if supported('v') {
				add('v')
			}
		case "visitor":
			del('q', 'a', 'o', 'h', 'v')
		default:
			return "!"
		}
	default:
		return "!"
	}
	if len(minus)+len(plus) > 3 {
		minus = minus[:3-min(len(plus), 3)]
	}
	var b strings.Builder
	if len(minus) > 0 {
		b.WriteByte('-')
		b.Write(minus)
	}
	if len(plus) > 0 {
		b.WriteByte('+')
		b.Write(plus)
	}
	return b.String()
}

// answerAdmin answers a moderation request.
func (n *network) answerAdmin(a *adminReq, err error) {
	switch a.kind {
	case "topic":
		if err != nil {
			n.s.emit(bridge.DeliveryError{To: a.from, From: a.room.addr, Kind: "message", ID: a.msgID, Err: bridge.AsStanzaError(err)})
		}
	default:
		res := bridge.IQResult{To: a.from, From: a.room.addr, ID: a.iqID}
		if err != nil {
			res.Err = bridge.AsStanzaError(err)
		} else {
			res.Payload = nil // an empty result
		}
		n.s.emit(res)
	}
}

// takeAdmin removes and returns the oldest request matching.
func (n *network) takeAdmin(match func(*adminReq) bool) *adminReq {
	for i, a := range n.admin {
		if match(a) {
			n.admin = append(n.admin[:i], n.admin[i+1:]...)
			return a
		}
	}
	return nil
}

// expireAdmin answers requests the server never answered.
func (n *network) expireAdmin() {
	keep := n.admin[:0]
	for _, a := range n.admin {
		if time.Since(a.at) >= adminTimeout {
			if a.kind != "topic" {
				n.answerAdmin(a, bridge.Errorf(bridge.RemoteServerTimeout, "%s did not answer.", n.name))
			}
			continue
		}
		keep = append(keep, a)
	}
	clear(n.admin[len(keep):])
	n.admin = keep
	if len(n.admin) > 0 {
		n.setTimer(&n.adminT, adminTimeout, tAdmin)
	}
}

// roomAdmin turns a muc#admin request into KICK or MODE.
func (s *session) roomAdmin(ev bridge.RoomAdmin) {
	reply := func(err error) {
		res := bridge.IQResult{To: ev.From, From: ev.Room.Bare(), ID: ev.IQID}
		if err != nil {
			res.Err = bridge.AsStanzaError(err)
		} else {
			res.Payload = nil // an empty result
		}
		s.emit(res)
	}
	n := s.nets[strings.ToLower(ev.Room.Network)]
	var r *room
	if n != nil {
		r = n.rooms[n.fold(ev.Room.Name)]
	}
	if r == nil || !r.has(ev.From) {
		reply(bridge.Errorf(bridge.NotAcceptable, "You are not in %s.", ev.Room.Name))
		return
	}
	if n.state != stRegistered {
		reply(n.downError())
		return
	}
	if err := s.t.codec.ValidNick(ev.Nick); err != nil {
		reply(err)
		return
	}
	m := r.members[n.fold(ev.Nick)]
	if m == nil {
		reply(bridge.Errorf(bridge.ItemNotFound, "%s is not in %s.", ev.Nick, r.name))
		return
	}
	reason := firstLine(ev.Reason)
	req := &adminReq{room: r, nick: m.nick.String(), iqID: ev.IQID, from: ev.From, at: time.Now()}
	var msgs []ircmsg.Message
	switch {
	case ev.Affiliation == "outcast":
		mask := m.nick.String() + "!*@*"
		if m.host != (istr{}) {
			mask = "*!*@" + m.host.String()
		}
		msgs = append(msgs, ircmsg.MakeMessage(nil, "", "MODE", r.name, "+b", mask))
		msgs = append(msgs, kickMessage(r.name, m.nick.String(), reason))
		req.kind = "kick"
	case ev.Role == "none":
		msgs = append(msgs, kickMessage(r.name, m.nick.String(), reason))
		req.kind = "kick"
	default:
		modes := n.modesFor(m, ev.Role, ev.Affiliation)
		if modes == "" {
			reply(nil) // nothing to change
			return
		}
		if modes == "!" {
			reply(bridge.Errorf(bridge.FeatureNotImplemented, "IRC has no mode for that on %s.", n.name))
			return
		}
		params := []string{r.name, modes}
		for range strings.Trim(modes, "+-") {
			params = append(params, m.nick.String())
		}
		// MODE takes at most a few targets per line; modesFor keeps to 3.
		msgs = append(msgs, ircmsg.MakeMessage(nil, "", "MODE", params...))
		req.kind = "mode"
	}
	for _, msg := range msgs {
		if err := n.send(msg); err != nil {
			reply(err)
			return
		}
	}
	n.admin = append(n.admin, req)
	n.setTimer(&n.adminT, adminTimeout, tAdmin)
}

func kickMessage(channel, nick, reason string) ircmsg.Message {
	if reason == "" {
		return ircmsg.MakeMessage(nil, "", "KICK", channel, nick)
	}
	return ircmsg.MakeMessage(nil, "", "KICK", channel, nick, reason)
}
