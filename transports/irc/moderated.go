package irc

import (
	"sort"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"switchboard/bridge"
)

// Moderated channels. In a channel with mode +m only members with voice
// or more may speak, which is XEP-0045's moderated room: members without
// voice are visitors. The gateway asks for the channel modes (MODE #chan)
// as soon as the server confirms a JOIN, and completes the join (the
// occupant list, self-presence) only with the answer (324), so that the
// roles the user first sees hold. MODE +m / -m changes the role of every
// occupant without voice, the user included.

// modesTimeout completes a join whose MODE query the server never
// answered, with the modes as they were.
const modesTimeout = 10 * time.Second

// onChannelModes handles RPL_CHANNELMODEIS (324): "me #chan +modes args".
func (n *network) onChannelModes(m *ircmsg.Message) {
	r := n.rooms[n.fold(param(m, 1))]
	if r == nil {
		return
	}
	moderated, adding := false, true
	for _, c := range param(m, 2) {
		switch c {
		case '+':
			adding = true
		case '-':
			adding = false
		case 'm':
			moderated = adding
		}
	}
	flipped := moderated != r.moderated
	r.moderated = moderated
	if r.modesPending {
		r.modesPending = false
		if r.namesDone {
			n.completeJoin(r, r.prevMembers, flipped)
		}
		return
	}
	if flipped {
		n.emitRoleFlip(r, "", nil)
	}
}

// emitRoleFlip tells the room's resources the new role of every member
// without voice after +m or -m (members in skip were told already).
func (n *network) emitRoleFlip(r *room, actor string, skip map[*member]bool) {
	if r.state != rsJoined {
		return
	}
	keys := make([]string, 0, len(r.members))
	for k, mem := range r.members {
		if mem.modes == (istr{}) && !skip[mem] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		mem := r.members[k]
		n.emitOccupant(r, bridge.OccupantChanged{Occupant: n.occupant(r, mem.nick.String()), Self: n.isMe(mem.nick.String()), Actor: actor})
	}
}

// expireModeQueries completes the joins whose MODE query went unanswered
// for modesTimeout.
func (n *network) expireModeQueries() {
	var wait time.Duration
	for _, r := range n.rooms {
		if !r.modesPending || !r.namesDone {
			continue
		}
		if left := modesTimeout - time.Since(r.modesAsked); left > 0 {
			if wait == 0 || left < wait {
				wait = left
			}
			continue
		}
		n.s.log.Debug("the IRC server did not tell the channel modes; completing the join without them", "network", n.name, "channel", r.name)
		r.modesPending = false
		n.completeJoin(r, r.prevMembers, false)
	}
	if wait > 0 {
		n.setTimer(&n.modesT, wait, tModes)
	}
}
