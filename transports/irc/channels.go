package irc

// This file is about channels and their members: the room and member
// state, JOIN/PART/KICK/QUIT/TOPIC/AWAY/NAMES from IRC, join completion
// and self-presence, history on join.

import (
	"context"
	"sort"
	"strings"
	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
	"time"
	"unique"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"
)

// eachMember calls fn for nick in every room where it is a member.
func (n *network) eachMember(nick string, fn func(*room, *member)) {
	k := n.fold(nick)
	for _, r := range n.rooms {
		if m := r.members[k]; m != nil {
			fn(r, m)
		}
	}
}

// emitOccupant sends an occupant change to every resource of a room.
func (n *network) emitOccupant(r *room, ev bridge.OccupantChanged) {
	if r.state != rsJoined {
		return
	}
	ev.Room = r.addr
	for _, to := range r.resources {
		ev.To = to
		n.s.emit(ev)
	}
}

func (n *network) onJoin(m *ircmsg.Message) {
	nuh, _ := m.NUH()
	ch := param(m, 0)
	k := n.fold(ch)
	r := n.rooms[k]
	if n.isMe(nuh.Name) {
		if nuh.User != "" {
			n.user, n.host = strings.Clone(nuh.User), strings.Clone(nuh.Host)
		}
		if r == nil { // joined by a raw command or by the server
			addr, err := n.s.t.codec.Room(n.name, ch)
			if err != nil {
				n.send(ircmsg.MakeMessage(nil, "", "PART", ch))
				return
			}
			r = &room{addr: addr, key: k}
			n.rooms[k] = r
		}
		r.name = strings.Clone(ch)
		r.names = nil
		if r.state != rsRejoining {
			r.state = rsJoining
		}
		// Ask for the channel modes (+m turns members without voice
		// into visitors); the join completes with the answer.
		// (prevMembers survives a join that a lost connection cut short:
		// it still is what the room's resources know.)
		r.modesPending, r.namesDone = true, false
		r.modesAsked = time.Now()
		if err := n.send(ircmsg.MakeMessage(nil, "", "MODE", r.name)); err != nil {
			r.modesPending = false
		}
		return
	}
	if r == nil {
		return
	}
	mem := &member{nick: intern(nuh.Name), user: intern(nuh.User), host: intern(nuh.Host)}
	if n.caps["extended-join"] {
		if a := param(m, 1); a != "*" {
			mem.setAccount(a)
		}
	}
	if r.names != nil {
		r.names[n.fold(mem.nick.String())] = mem
	}
	if r.members == nil {
		r.members = map[string]*member{}
	}
	r.members[n.fold(mem.nick.String())] = mem
	n.emitOccupant(r, bridge.OccupantChanged{Occupant: n.occupant(r, mem.nick.String())})
}

func (n *network) onPart(m *ircmsg.Message) {
	nick := sourceNick(m)
	key := n.fold(param(m, 0))
	if n.isMe(nick) && n.parting[key] > 0 {
		// The echo of a PART the user asked for: the room is gone
		// already, and one in n.rooms now is a new join (the user left
		// and came back before the echo), which this must not end.
		if n.parting[key]--; n.parting[key] == 0 {
			delete(n.parting, key)
		}
		return
	}
	r := n.rooms[key]
	if r == nil {
		return
	}
	reason := toXMPPText(param(m, 1))
	if n.isMe(nick) {
		// A part the user did not ask for (their own PART removed the
		// room already).
		self := n.occupant(r, n.nick)
		self.Role, self.Show, self.Status = "none", "", reason
		for _, to := range r.resources {
			n.s.emit(bridge.OccupantChanged{To: to, Room: r.addr, Occupant: self, Self: true, Gone: true, Reason: reason})
		}
		delete(n.rooms, r.key)
		n.maybeQuit()
		return
	}
	k := n.fold(nick)
	if r.members[k] == nil {
		return
	}
	occ := n.occupant(r, nick)
	occ.Role, occ.Show, occ.Status = "none", "", reason
	delete(r.members, k)
	n.emitOccupant(r, bridge.OccupantChanged{Occupant: occ, Gone: true, Reason: reason})
}

func (n *network) onKick(m *ircmsg.Message) {
	actor := sourceNick(m)
	r := n.rooms[n.fold(param(m, 0))]
	victim := param(m, 1)
	if r == nil || victim == "" {
		return
	}
	reason := toXMPPText(param(m, 2))
	if reason == victim || reason == actor {
		reason = "" // servers fill in a nick when no reason was given
	}
	k := n.fold(victim)
	banned := n.bannedRecently(r, r.members[k], actor)
	if n.isMe(actor) {
		if a := n.takeAdmin(func(a *adminReq) bool { return a.kind == "kick" && a.room == r && n.is.cm.Equal(a.nick, victim) }); a != nil {
			n.answerAdmin(a, nil)
		}
	}
	occ := n.occupant(r, victim)
	occ.Role, occ.Show, occ.Status = "none", "", reason
	if banned {
		occ.Affiliation = "outcast"
	}
	ev := bridge.OccupantChanged{Occupant: occ, Gone: true, Kicked: !banned, Banned: banned, Actor: actor, Reason: reason}
	if n.isMe(victim) {
		ev.Self = true
		for _, to := range r.resources {
			ev.To, ev.Room = to, r.addr
			n.s.emit(ev)
		}
		delete(n.rooms, r.key)
		n.maybeQuit()
		return
	}
	delete(r.members, k)
	n.emitOccupant(r, ev)
}

// bannedRecently reports whether a ban set in the last seconds matches mem
// (or, when mem's host is unknown, whether the kicker set one).
func (n *network) bannedRecently(r *room, mem *member, actor string) bool {
	if mem == nil {
		return false
	}
	full := mem.nick.String() + "!" + mem.user.String() + "@" + mem.host.String()
	for i, b := range r.bans {
		if time.Since(b.at) > 10*time.Second {
			continue
		}
		if mem.host != (istr{}) && wildcardMatch(b.mask, full, n.is.cm) || mem.host == (istr{}) && n.is.cm.Equal(b.by, actor) {
			r.bans = append(r.bans[:i], r.bans[i+1:]...) // one ban, one kick
			return true
		}
	}
	return false
}

func (n *network) onQuit(m *ircmsg.Message) {
	nick := sourceNick(m)
	if n.isMe(nick) {
		return
	}
	if n.is.cm.Equal(nick, n.wantNick) {
		defer n.reclaimNick(true) // the holder of the wanted nick is gone
	}
	reason := toXMPPText(param(m, 0))
	k := n.fold(nick)
	for _, r := range n.rooms {
		if r.members[k] == nil {
			continue
		}
		occ := n.occupant(r, nick)
		occ.Role, occ.Show, occ.Status = "none", "", reason
		delete(r.members, k)
		n.emitOccupant(r, bridge.OccupantChanged{Occupant: occ, Gone: true, Reason: reason})
	}
}

func (n *network) onTopic(m *ircmsg.Message) {
	r := n.rooms[n.fold(param(m, 0))]
	if r == nil {
		return
	}
	actor := sourceNick(m)
	r.topic = strings.Clone(param(m, 1))
	r.topicBy = strings.Clone(actor)
	r.topicAt = serverTime(m)
	if r.topicAt.IsZero() {
		r.topicAt = time.Now().UTC()
	}
	if n.isMe(actor) {
		n.takeAdmin(func(a *adminReq) bool { return a.kind == "topic" && a.room == r })
	}
	if r.state != rsJoined {
		return
	}
	for _, to := range r.resources {
		n.s.emit(bridge.RoomSubject{To: to, Room: r.addr, Subject: toXMPPText(r.topic), By: r.topicBy, At: r.topicAt})
	}
}

func (n *network) onAway(m *ircmsg.Message) {
	msg := param(m, 0)
	away := msg != ""
	n.eachMember(sourceNick(m), func(r *room, mem *member) {
		if mem.away == away && mem.awayText() == msg {
			return
		}
		mem.setAway(away, msg)
		n.emitOccupant(r, bridge.OccupantChanged{Occupant: n.occupant(r, mem.nick.String()), Self: n.isMe(mem.nick.String())})
	})
}

func (n *network) onNames(m *ircmsg.Message) {
	r := n.rooms[n.fold(param(m, 2))]
	if r == nil {
		return
	}
	if r.names == nil {
		r.names = make(map[string]*member)
	}
	for _, f := range strings.Fields(last(m)) {
		e := n.is.parseNamesEntry(f)
		if e.nick == "" {
			continue
		}
		mem := &member{nick: intern(e.nick), modes: intern(e.modes), user: intern(e.user), host: intern(e.host)}
		// The key from the interned nick: folding a nick that is already
		// folded returns it, so the key shares its bytes.
		r.names[n.fold(mem.nick.String())] = mem
	}
}

func (n *network) onEndOfNames(m *ircmsg.Message) {
	r := n.rooms[n.fold(param(m, 1))]
	if r == nil {
		return
	}
	fresh := r.names
	r.names = nil
	if fresh == nil {
		fresh = map[string]*member{}
	}
	selfKey := n.fold(n.nick)
	if fresh[selfKey] == nil {
		fresh[selfKey] = &member{nick: intern(n.nick)}
	}
	old := r.members
	for k, mem := range fresh { // NAMES does not say who is away
		if o := old[k]; o != nil {
			mem.away, mem.more = o.away, o.more
			if mem.user == (istr{}) {
				mem.user, mem.host = o.user, o.host
			}
		}
	}
	r.members = fresh
	if r.modesPending {
		// The join completes when the channel modes are known (324), so
		// that the roles it announces hold (+m makes visitors).
		if !r.namesDone && r.prevMembers == nil {
			r.prevMembers = old
		}
		r.namesDone = true
		if n.modesT == nil {
			n.setTimer(&n.modesT, modesTimeout, tModes)
		}
		return
	}
	n.completeJoin(r, old, false)
}

// completeJoin finishes a join (or a rejoin, or a NAMES the user asked
// for) once the member list is complete: the room's resources learn what
// changed and the waiting ones get the full join.
// flipped says that +m changed meanwhile, so that every member without
// voice changed role.
func (n *network) completeJoin(r *room, old map[string]*member, flipped bool) {
	fresh := r.members
	r.namesDone, r.prevMembers = false, nil
	switch r.state {
	case rsJoining:
		r.state = rsJoined
		r.created = len(fresh) == 1
	case rsRejoining, rsJoined:
		wasRejoin := r.state == rsRejoining
		r.state = rsJoined
		n.diffMembers(r, old, fresh, flipped)
		if wasRejoin && len(r.resources) > 0 {
			self := n.occupant(r, n.nick)
			if r.selfNick != "" && r.selfNick != n.nick {
				// The nick was taken meanwhile (often by our own ghost).
				old := self
				old.Nick = r.selfNick
				n.emitOccupant(r, bridge.OccupantChanged{Occupant: old, Self: true, NewNick: n.nick})
				r.selfNick = n.nick
			}
			n.emitOccupant(r, bridge.OccupantChanged{Occupant: self, Self: true})
		}
	}
	waiting := r.waiting
	r.waiting = nil
	for _, w := range waiting {
		if !r.hasResource(w.jid) {
			r.resources = append(r.resources, w.jid)
		}
		n.sendRoomJoined(r, w)
		if !w.fresh {
			n.s.emit(bridge.Message{To: w.jid, From: r.addr, Type: bridge.Groupchat, Notice: true,
				Body: "The gateway is connected to " + n.name + " again; you are back in " + r.name + "."})
		}
	}
	r.created = false
	held := r.held
	r.held = nil
	for _, h := range held {
		for _, to := range r.resources {
			h.msg.To = to
			n.s.emit(h.msg)
		}
		if h.archive {
			n.archive(r, h.msg.StanzaID, h.nick, false, h.msg.Body, h.msg.Action, h.msgid, "", h.msg.Time)
		}
	}
}

// hasResource reports whether a resource already is in the room.
func (r *room) hasResource(j jid.JID) bool {
	for _, x := range r.resources {
		if x.Equal(j) {
			return true
		}
	}
	return false
}

// diffMembers tells the room's resources what changed between two member
// lists (after a rejoin, or a NAMES the user asked for); flipped says that
// the room became moderated or unmoderated meanwhile.
func (n *network) diffMembers(r *room, old, fresh map[string]*member, flipped bool) {
	selfKey := n.fold(n.nick)
	keys := make([]string, 0, len(old))
	for k := range old {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == selfKey || fresh[k] != nil {
			continue
		}
		o := old[k]
		_, affil := n.is.roleAffiliation(o.modes.String())
		n.emitOccupant(r, bridge.OccupantChanged{Occupant: bridge.Occupant{Nick: o.nick.String(), Role: "none", Affiliation: affil}, Gone: true})
	}
	keys = keys[:0]
	for k := range fresh {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == selfKey {
			continue
		}
		if o := old[k]; o != nil && o.modes == fresh[k].modes && !(flipped && o.modes == (istr{})) {
			continue
		}
		n.emitOccupant(r, bridge.OccupantChanged{Occupant: n.occupant(r, fresh[k].nick.String())})
	}
}

// onJoinError handles a refused JOIN.
func (n *network) onJoinError(m *ircmsg.Message) {
	r := n.rooms[n.fold(param(m, 1))]
	if r == nil || r.state == rsJoined {
		if n.state == stRegistered {
			n.serverNotice(strings.Join(m.Params[min(1, len(m.Params)):], " "))
		}
		return
	}
	text := last(m)
	var err *bridge.StanzaError
	switch m.Command {
	case "403":
		err = bridge.Errorf(bridge.ItemNotFound, "%s does not exist on %s: %s", r.name, n.name, text)
	case "405":
		err = bridge.Errorf(bridge.ResourceConstraint, "You are in too many channels on %s: %s", n.name, text)
	case "471":
		err = bridge.Errorf(bridge.ServiceUnavailable, "%s is full: %s", r.name, text)
	case "473":
		err = bridge.Errorf(bridge.RegistrationRequired, "%s is invite-only: %s", r.name, text)
	case "474":
		err = bridge.Errorf(bridge.Forbidden, "You are banned from %s: %s", r.name, text)
	case "475":
		err = bridge.Errorf(bridge.NotAuthorized, "%s needs a password (the room password of your client): %s", r.name, text)
	case "476":
		err = bridge.Errorf(bridge.JIDMalformed, "%s is not a valid channel on %s: %s", r.name, n.name, text)
	default:
		err = bridge.Errorf(bridge.RegistrationRequired, "You cannot join %s: %s", r.name, text)
	}
	for _, w := range r.waiting {
		n.s.emit(bridge.DeliveryError{To: w.jid, From: r.addr.Occupant(w.nick), Kind: "presence", ID: w.id, Err: err})
	}
	self := n.occupant(r, n.nick)
	self.Role, self.Show, self.Status = "none", "", err.Text
	for _, to := range r.resources {
		n.s.emit(bridge.OccupantChanged{To: to, Room: r.addr, Occupant: self, Self: true, Gone: true, Reason: err.Text, Codes: []int{333}})
	}
	delete(n.rooms, r.key)
	n.maybeQuit()
}

// room is one channel the user is in (or joining).
type room struct {
	addr      mapping.Address // canonical room address (KindRoom)
	name      string          // channel as the user named it, then as the server spells it
	key       string          // folded
	state     int
	resources []jid.JID // XMPP resources in the room
	waiting   []waiter  // resources waiting for the join to complete
	members   map[string]*member
	names     map[string]*member // being filled by RPL_NAMREPLY
	topic     string
	topicBy   string
	topicAt   time.Time
	password  string
	bouncer   bool
	created   bool
	bans      []banRecord
	lastID    string // id of the last message the user sent (for errors without labels)
	selfNick  string // the nick the room's XMPP resources know the user by

	// moderated is channel mode +m: members without voice are visitors.
	moderated bool
	// modesPending: the channel modes were asked for (MODE #chan) after
	// the JOIN, and the join completes with the answer (324); namesDone:
	// NAMES is complete meanwhile, prevMembers being the member list the
	// room's resources knew before it.
	modesPending bool
	namesDone    bool
	modesAsked   time.Time
	prevMembers  map[string]*member
	// held are channel messages that came while the join was not complete
	// (after NAMES, before the modes: a server's history replay), for the
	// joining resources.
	held []heldMsg
}

// maxHeld bounds the messages held for a join that is not complete.
const maxHeld = 200

// heldMsg is a channel message held until the join completes.
type heldMsg struct {
	msg     bridge.Message
	nick    string
	msgid   string
	archive bool
}

// Room states.
const (
	rsJoining   = iota // JOIN sent or to be sent
	rsJoined           // NAMES complete
	rsRejoining        // joined before the connection dropped; JOIN again
)

// waiter is a resource waiting for RoomJoined.
type waiter struct {
	jid     jid.JID
	nick    string // the nick it asked for
	id      string // of the join presence, echoed on an error ("" for rejoins)
	history *bridge.HistoryRequest
	fresh   bool // a join by the user (history is sent), not a rejoin
}

// member is one nick in a channel.
//
// A room of N gateway users holds N member lists of N members (each user
// has their own IRC connection and view), so members are kept small: the
// strings are interned (istr), which also makes the N copies of one nick,
// user and host share their bytes.
type member struct {
	nick  istr
	user  istr
	host  istr
	modes istr        // membership modes, highest first
	more  *memberMore // nil for a member without account or away message
	away  bool
}

// memberMore is what few members have.
type memberMore struct {
	account istr
	awayMsg istr
}

// account is the member's services account ("" when not logged in).
func (m *member) account() string {
	if m.more == nil {
		return ""
	}
	return m.more.account.String()
}

// setAccount records the account ("*" or "" when logged out).
func (m *member) setAccount(a string) {
	if a == "*" {
		a = ""
	}
	m.setMore(intern(a), m.awayIstr())
}

// awayText is the away message.
func (m *member) awayText() string { return m.awayIstr().String() }

func (m *member) awayIstr() istr {
	if m.more == nil {
		return istr{}
	}
	return m.more.awayMsg
}

// setAway records the away state and message.
func (m *member) setAway(away bool, msg string) {
	m.away = away
	acct := istr{}
	if m.more != nil {
		acct = m.more.account
	}
	m.setMore(acct, intern(msg))
}

func (m *member) setMore(account, awayMsg istr) {
	if account == (istr{}) && awayMsg == (istr{}) {
		m.more = nil
		return
	}
	m.more = &memberMore{account: account, awayMsg: awayMsg}
}

// istr is an interned string (unique.Handle): 8 bytes, and one copy of the
// bytes however many members hold it. The zero istr is "".
type istr struct{ h unique.Handle[string] }

// intern returns the istr of s.
func intern(s string) istr {
	if s == "" {
		return istr{}
	}
	return istr{unique.Make(s)}
}

// String returns the string.
func (s istr) String() string {
	if s.h == (unique.Handle[string]{}) {
		return ""
	}
	return s.h.Value()
}

// banRecord is a ban seen shortly before a kick (to flag the kick as a ban).
type banRecord struct {
	mask string
	by   string
	at   time.Time
}

// sendJoins joins rooms, several channels per JOIN line.
func (n *network) sendJoins(rooms []*room) {
	sort.Slice(rooms, func(i, j int) bool { return rooms[i].key < rooms[j].key })
	var names []string
	size := 0
	flush := func() {
		if len(names) > 0 {
			n.send(ircmsg.MakeMessage(nil, "", "JOIN", strings.Join(names, ",")))
			names, size = nil, 0
		}
	}
	for _, r := range rooms {
		if r.state == rsJoined {
			r.state = rsRejoining
		}
		if r.password != "" {
			n.send(ircmsg.MakeMessage(nil, "", "JOIN", r.name, r.password))
			continue
		}
		if size+len(r.name)+1 > 400 {
			flush()
		}
		names = append(names, r.name)
		size += len(r.name) + 1
	}
	flush()
}

// removeAllRooms tells every resource in every room that it is out, with
// status codes (332 shutdown, 333 technical reasons) and forgets the rooms.
func (n *network) removeAllRooms(reason string, codes []int) {
	for _, r := range n.rooms {
		self := n.occupant(r, n.nick)
		self.Role, self.Show, self.Status = "none", "", reason
		for _, to := range r.resources {
			n.s.emit(bridge.OccupantChanged{To: to, Room: r.addr, Occupant: self, Self: true, Gone: true, Reason: reason, Codes: codes})
		}
		for _, w := range r.waiting {
			n.s.emit(bridge.DeliveryError{To: w.jid, From: r.addr.Occupant(w.nick), Kind: "presence", ID: w.id,
				Err: bridge.Errorf(bridge.ServiceUnavailable, "%s", reason)})
		}
	}
	clear(n.rooms)
}

// keepRoom reports whether a room stays joined without XMPP resources.
func (n *network) keepRoom(r *room) bool {
	return r.bouncer || n.settings().bouncer(n.key)
}

// has reports whether a resource is in (or joining) the room.
func (r *room) has(j jid.JID) bool {
	for _, x := range r.resources {
		if x.Equal(j) {
			return true
		}
	}
	for _, w := range r.waiting {
		if w.jid.Equal(j) {
			return true
		}
	}
	return false
}

// remove takes a resource out of the room.
func (r *room) remove(j jid.JID) {
	for i, x := range r.resources {
		if x.Equal(j) {
			r.resources = append(r.resources[:i], r.resources[i+1:]...)
			break
		}
	}
	for i, w := range r.waiting {
		if w.jid.Equal(j) {
			r.waiting = append(r.waiting[:i], r.waiting[i+1:]...)
			break
		}
	}
}

// sharesRoom reports whether nick is in one of the user's channels.
func (n *network) sharesRoom(nick string) bool {
	k := n.fold(nick)
	for _, r := range n.rooms {
		if r.members[k] != nil {
			return true
		}
	}
	return false
}

// occupant describes a member as a MUC occupant.
func (n *network) occupant(r *room, nick string) bridge.Occupant {
	o := bridge.Occupant{Nick: nick, Role: "participant", Affiliation: "none"}
	if m := r.members[n.fold(nick)]; m != nil {
		o.Nick = m.nick.String()
		o.Role, o.Affiliation = n.is.roleAffiliation(m.modes.String())
		if r.moderated && m.modes == (istr{}) {
			o.Role = "visitor" // XEP-0045: no voice in a moderated room
		}
		if m.away {
			o.Show, o.Status = "away", toXMPPText(m.awayText())
		}
	}
	if o.Nick != "" {
		if j, err := n.s.t.codec.JID(mapping.Address{Kind: mapping.KindContact, Domain: n.s.t.codec.Domain(), Network: n.name, Name: o.Nick}); err == nil {
			o.RealJID = j.String()
		}
	}
	return o
}

// sendRoomJoined tells a resource that it is in the room.
func (n *network) sendRoomJoined(r *room, w waiter) {
	r.selfNick = n.nick
	// Recorded before the client hears it is in: a crash right after
	// must still find it to tell (occstate.go).
	n.s.saveOccupants()
	rj := bridge.RoomJoined{
		To: w.jid, Room: r.addr, Self: n.occupant(r, n.nick),
		NickChanged: w.nick != n.nick, Created: r.created,
		Subject: toXMPPText(r.topic), SubjectBy: r.topicBy, SubjectAt: r.topicAt,
	}
	keys := make([]string, 0, len(r.members))
	for k := range r.members {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	self := n.fold(n.nick)
	for _, k := range keys {
		if k != self {
			rj.Occupants = append(rj.Occupants, n.occupant(r, r.members[k].nick.String()))
		}
	}
	if w.fresh {
		rj.History = n.history(r, w.history)
	}
	n.s.emit(rj)
}

// history reads a join's MUC history from the archive.
func (n *network) history(r *room, h *bridge.HistoryRequest) []bridge.Message {
	if !n.archiving() {
		return nil
	}
	q := store.ArchiveQuery{User: n.s.bare, Transport: "irc", Peer: mapping.PeerKey(r.addr), Before: true, Limit: defaultHistory}
	if h != nil {
		if h.MaxStanzas != nil {
			q.Limit = min(*h.MaxStanzas, 200)
		}
		if h.MaxChars != nil && *h.MaxChars == 0 {
			return nil
		}
		if h.Seconds != nil {
			q.Start = time.Now().Add(-time.Duration(*h.Seconds) * time.Second)
			if h.MaxStanzas == nil {
				q.Limit = 200
			}
		}
		if h.Since != nil {
			q.Start = *h.Since
			if h.MaxStanzas == nil {
				q.Limit = 200
			}
		}
	}
	if q.Limit <= 0 {
		return nil
	}
	if oldest := time.Now().AddDate(0, 0, -n.info.limits.historyDays); q.Start.Before(oldest) {
		q.Start = oldest
	}
	ctx, cancel := context.WithTimeout(n.s.u.Context(), 5*time.Second)
	defer cancel()
	n.s.t.archive.sync(ctx) // what waits in the batch belongs in the history
	page, err := n.s.t.st.QueryArchive(ctx, q)
	if err != nil {
		n.s.log.Warn("reading the room history failed", "room", r.name, "err", err)
		return nil
	}
	out := make([]bridge.Message, 0, len(page.Entries))
	for _, e := range page.Entries {
		m := archivedMessage(r.addr, e)
		m.Delayed = true
		out = append(out, m)
	}
	return out
}

// archivedMessage turns an archive entry into a message.
func archivedMessage(room mapping.Address, e store.ArchiveEntry) bridge.Message {
	m := bridge.Message{From: room.Occupant(e.Nick), Type: bridge.Groupchat, StanzaID: e.ID, Body: e.Body,
		Action: e.Action, Time: e.Time, OriginID: e.OriginID}
	if e.Outgoing {
		m.ID = e.OriginID
	}
	return m
}

// roomNotice shows a line from the room itself (not from an occupant).
func (n *network) roomNotice(r *room, text string) {
	text = toXMPPText(text)
	for _, to := range r.resources {
		n.s.emit(bridge.Message{To: to, From: r.addr, Type: bridge.Groupchat, Body: text, Notice: true})
	}
}

// setAway mirrors the user's XMPP availability as IRC AWAY: away, xa and
// dnd set it (with the status text, or the show), anything else clears it.
func (n *network) setAway(show, status string) {
	msg := ""
	switch show {
	case "away", "xa", "dnd":
		msg = firstLine(status)
		if msg == "" {
			msg = map[string]string{"away": "Away", "xa": "Away", "dnd": "Busy"}[show]
		}
	}
	if msg == n.away || n.state != stRegistered {
		n.away = msg
		return
	}
	n.away = msg
	if msg == "" {
		n.send(ircmsg.MakeMessage(nil, "", "AWAY"))
		return
	}
	n.send(ircmsg.MakeMessage(nil, "", "AWAY", msg))
}
