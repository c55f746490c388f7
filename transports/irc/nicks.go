package irc

// This file is about nicks: registration collisions and alternatives,
// NICK changes both ways, and the network's casemapping.

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"switchboard/bridge"
	"switchboard/mapping"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"
)

// rekey re-folds every map key after the casemapping changed.
func (n *network) rekey() {
	rooms := make(map[string]*room, len(n.rooms))
	for _, r := range n.rooms {
		r.key = n.fold(r.name)
		members := make(map[string]*member, len(r.members))
		for _, m := range r.members {
			members[n.fold(m.nick.String())] = m
		}
		r.members = members
		rooms[r.key] = r
	}
	n.rooms = rooms
}

// onNickError handles a refused nick: during registration another one is
// tried (nick_, nick__, …), afterwards the user's nick change is refused.
func (n *network) onNickError(m *ircmsg.Message) {
	if n.state != stRegistered {
		n.nickTries++
		next := alternativeNick(n.wantNick, m.Command, n.nickTries, n.is.nickLen)
		n.send(ircmsg.MakeMessage(nil, "", "NICK", next))
		return
	}
	text := last(m)
	if n.onReclaimError(m) {
		return
	}
	if req := n.nickReq; req != nil {
		n.nickReq = nil
		cond := bridge.Conflict
		sentence := fmt.Sprintf("The nick %s is already in use on %s.", req.nick, n.name)
		switch m.Command {
		case "432":
			cond = bridge.NotAcceptable
			sentence = fmt.Sprintf("%s does not accept the nick %s: %s", n.name, req.nick, text)
		case "438":
			cond = bridge.ResourceConstraint
			sentence = fmt.Sprintf("%s refused the nick change for now: %s", n.name, text)
		}
		n.s.emit(bridge.DeliveryError{To: req.from, From: req.room.Occupant(req.nick), Kind: "presence", ID: req.id, Err: bridge.Errorf(cond, "%s", sentence)})
		return
	}
	n.serverNotice(strings.Join(m.Params[min(1, len(m.Params)):], " "))
}

// alternativeNick is the nick to try after a refusal: for a nick in use,
// nick_, nick__ and so on (cut to the server's NICKLEN), then random
// digits; for an erroneous nick, the nick with every unusual character
// removed, then "xmpp" and digits.
func alternativeNick(nick, code string, try, nickLen int) string {
	if nickLen <= 0 {
		nickLen = 30
		if code == "432" && len(nick) > 9 && try == 1 {
			// Before ISUPPORT, a too-long nick is the usual 432 cause;
			// RFC 1459 allows 9 characters.
			return nick[:9]
		}
	}
	base := nick
	if code == "432" {
		base = defaultNick(nick)
		if try > 1 {
			base = "xmpp" + strconv.Itoa(1000+rand.IntN(9000))
		}
		if len(base) > nickLen {
			base = base[:nickLen]
		}
		if try <= 2 {
			return base
		}
	}
	if try > 5 {
		suffix := strconv.Itoa(100 + rand.IntN(900))
		if len(base)+len(suffix) > nickLen {
			base = base[:max(1, nickLen-len(suffix))]
		}
		return base + suffix
	}
	suffix := strings.Repeat("_", try)
	if len(base)+len(suffix) > nickLen {
		base = base[:max(1, nickLen-len(suffix))]
	}
	return base + suffix
}

func (n *network) onNick(m *ircmsg.Message) {
	old, nu := sourceNick(m), strings.Clone(param(m, 0))
	if nu == "" {
		return
	}
	self := n.isMe(old)
	ok := n.fold(old)
	for _, r := range n.rooms {
		mem := r.members[ok]
		if mem == nil {
			continue
		}
		occ := n.occupant(r, mem.nick.String())
		delete(r.members, ok)
		mem.nick = intern(nu)
		r.members[n.fold(mem.nick.String())] = mem
		n.emitOccupant(r, bridge.OccupantChanged{Occupant: occ, NewNick: nu, Self: self})
		if self && r.state == rsJoined {
			r.selfNick = nu
		}
	}
	if self {
		n.nick = nu
		n.wantNick = nu // a reconnection asks for the nick in use
		n.nickReq = nil
		n.reclaimTry = ""
		n.scheduleReclaim()
	} else if n.is.cm.Equal(old, n.wantNick) {
		n.reclaimNick(true) // the holder of the wanted nick moved away from it
	}
	if via, ok2 := n.pmVia[ok]; ok2 {
		delete(n.pmVia, ok)
		n.pmVia[n.fold(nu)] = via
	}
}

// nickRequest is a nick change asked from XMPP.
type nickRequest struct {
	nick string
	from jid.JID
	room mapping.Address
	id   string // of the presence, echoed on an error
}

// fold folds a nick or channel with the server's casemapping.
func (n *network) fold(name string) string { return n.is.cm.Fold(name) }

// isMe reports whether nick is ours.
func (n *network) isMe(nick string) bool { return n.nick != "" && n.is.cm.Equal(nick, n.nick) }

// changeNick asks the server for a new nick; id is the presence's id,
// echoed on an error.
func (n *network) changeNick(nick string, from jid.JID, room mapping.Address, id string) {
	n.nickReq = &nickRequest{nick: nick, from: from, room: room, id: id}
	n.reclaimTry = "" // the user's own choice wins over taking the old nick back
	if err := n.send(ircmsg.MakeMessage(nil, "", "NICK", nick)); err != nil {
		n.s.emit(bridge.DeliveryError{To: from, From: room.Occupant(nick), Kind: "presence", ID: id, Err: bridge.AsStanzaError(err)})
		n.nickReq = nil
	}
}
