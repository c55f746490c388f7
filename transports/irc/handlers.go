package irc

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"github.com/ergochat/irc-go/ircutils"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
)

// capsWanted are the IRCv3 capabilities the gateway uses when the server
// offers them (sasl is added when the user configured a login).
var capsWanted = []string{
	"server-time", "echo-message", "message-tags", "multi-prefix", "away-notify",
	"account-notify", "extended-join", "chghost", "batch", "labeled-response",
	"userhost-in-names", "invite-notify", "cap-notify",
}

// param returns the i-th parameter or "".
func param(m *ircmsg.Message, i int) string {
	if i < len(m.Params) {
		return m.Params[i]
	}
	return ""
}

// last returns the last parameter or "".
func last(m *ircmsg.Message) string {
	if len(m.Params) == 0 {
		return ""
	}
	return m.Params[len(m.Params)-1]
}

// sourceNick returns the nick of a message's source.
func sourceNick(m *ircmsg.Message) string {
	if i := strings.IndexAny(m.Source, "!@"); i >= 0 {
		return m.Source[:i]
	}
	return m.Source
}

// serverTime returns the server-time tag, or the zero time.
func serverTime(m *ircmsg.Message) time.Time {
	if ok, v := m.GetTag("time"); ok {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t
		}
	}
	return time.Time{}
}

// tag returns a tag's value or "".
func tag(m *ircmsg.Message, name string) string {
	_, v := m.GetTag(name)
	return v
}

// handle dispatches one line from the server.
func (n *network) handle(m *ircmsg.Message) {
	switch m.Command {
	case "PING":
		// The connection's reader answers PINGs itself (conn.readLoop);
		// one only gets here from a scripted test.
		if n.c != nil {
			n.c.pong(m)
		}
	case "PONG", "BATCH", "ACK", "TAGMSG", "900", "901", "329", "321":
	case "375", "372", "376", "422", "002", "003", "004", "250", "251", "252", "253", "254", "255", "265", "266":
		// The MOTD and LUSERS come at registration (noise) and as the
		// answers to raw commands (shown).
		if n.rawWindow() {
			n.rawReply(m)
		}
	case "CAP":
		n.onCap(m)
	case "AUTHENTICATE":
		n.onAuthenticate(m)
	case "903", "907":
		n.capEnd()
	case "902", "904", "905", "906", "908":
		if m.Command != "908" {
			n.serverNotice(fmt.Sprintf("Logging in to %s with SASL failed: %s. Connecting without logging in; %s", n.name, strings.TrimSuffix(last(m), "."), n.saslSettingsHint()))
			n.capEnd()
		}
	case "001":
		if !n.capEnded {
			n.saslNotTried() // the server ignored CAP LS
		}
		n.capEnded = true
		if words := strings.Fields(last(m)); len(words) > 0 {
			if nuh, err := ircmsg.ParseNUH(words[len(words)-1]); err == nil && nuh.User != "" && nuh.Host != "" {
				n.user, n.host = strings.Clone(nuh.User), strings.Clone(nuh.Host)
			}
		}
		n.onRegistered(param(m, 0))
	case "005":
		if len(m.Params) > 2 {
			old := n.is.cm
			n.is.apply(m.Params[1 : len(m.Params)-1])
			if n.is.cm != old {
				n.rekey()
			}
		}
	case "396": // RPL_VISIBLEHOST / RPL_HOSTHIDDEN
		n.host = strings.Clone(param(m, 1))
	case "432", "433", "436", "437", "438":
		n.onNickError(m)
	case "JOIN":
		n.onJoin(m)
	case "PART":
		n.onPart(m)
	case "KICK":
		n.onKick(m)
	case "QUIT":
		n.onQuit(m)
	case "NICK":
		n.onNick(m)
	case "MODE":
		n.onMode(m)
	case "TOPIC":
		n.onTopic(m)
	case "PRIVMSG":
		n.onMessage(m, false)
	case "NOTICE":
		n.onMessage(m, true)
	case "AWAY":
		n.onAway(m)
	case "ACCOUNT":
		n.eachMember(sourceNick(m), func(_ *room, mem *member) { mem.setAccount(param(m, 0)) })
	case "CHGHOST":
		nick := sourceNick(m)
		if n.isMe(nick) {
			n.user, n.host = strings.Clone(param(m, 0)), strings.Clone(param(m, 1))
		}
		n.eachMember(nick, func(_ *room, mem *member) {
			mem.user, mem.host = intern(param(m, 0)), intern(param(m, 1))
		})
	case "INVITE":
		n.serverNotice(fmt.Sprintf("%s invites you to %s; join %s%%%s@%s to accept.", sourceNick(m), param(m, 1), param(m, 1), n.name, n.s.t.codec.Domain()))
	case "ERROR":
		n.connErr = strings.Clone(last(m))
	case "353":
		n.onNames(m)
	case "366":
		n.onEndOfNames(m)
	case "324":
		n.onChannelModes(m)
	case "331":
		if r := n.rooms[n.fold(param(m, 1))]; r != nil {
			r.topic, r.topicBy, r.topicAt = "", "", time.Time{}
		}
	case "332":
		if r := n.rooms[n.fold(param(m, 1))]; r != nil {
			r.topic = strings.Clone(param(m, 2))
		}
	case "333":
		if r := n.rooms[n.fold(param(m, 1))]; r != nil {
			r.topicBy = strings.Clone(nickOf(param(m, 2)))
			if sec, err := strconv.ParseInt(param(m, 3), 10, 64); err == nil {
				r.topicAt = time.Unix(sec, 0).UTC()
			}
		}
	case "322":
		if n.listing && len(n.listBuf) < 50000 {
			users, _ := strconv.Atoi(param(m, 2))
			n.listBuf = append(n.listBuf, listEntry{name: strings.Clone(param(m, 1)), users: users, topic: strings.Clone(stripFormatting(param(m, 3)))})
		}
	case "323":
		if n.listing {
			n.finishList()
		}
	case "401", "404":
		n.onSendError(m)
	case "403", "405", "471", "473", "474", "475", "476", "477":
		n.onJoinError(m)
	case "482", "441", "442", "472", "501", "478":
		n.onAdminError(m)
	default:
		switch {
		case len(m.Command) != 3 || m.Command[0] < '0' || m.Command[0] > '9' || n.state != stRegistered:
		case n.rawWindow():
			n.rawReply(m) // the answer to a raw command: every reply is shown
		case m.Command[0] == '4' || m.Command[0] == '5':
			n.serverNotice(strings.Join(m.Params[min(1, len(m.Params)):], " "))
		}
	}
}

// nickOf returns the nick of "nick!user@host".
func nickOf(s string) string {
	if i := strings.IndexAny(s, "!@"); i >= 0 {
		return s[:i]
	}
	return s
}

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

// ---------------------------------------------------------------- CAP and SASL

func (n *network) onCap(m *ircmsg.Message) {
	switch strings.ToUpper(param(m, 1)) {
	case "LS":
		more := len(m.Params) >= 4 && m.Params[2] == "*"
		if n.capLS == nil {
			n.capLS = map[string]string{}
		}
		for _, tok := range strings.Fields(last(m)) {
			k, v, _ := strings.Cut(strings.Clone(tok), "=")
			n.capLS[k] = v
		}
		if more || n.capEnded {
			return
		}
		n.requestCaps(n.capLS)
	case "ACK":
		for _, tok := range strings.Fields(last(m)) {
			if strings.HasPrefix(tok, "-") {
				delete(n.caps, tok[1:])
			} else {
				n.caps[strings.Clone(tok)] = true
			}
		}
		n.capReplied()
	case "NAK":
		n.capReplied()
	case "NEW":
		offered := map[string]string{}
		for _, tok := range strings.Fields(last(m)) {
			k, v, _ := strings.Cut(tok, "=")
			offered[k] = v
		}
		if n.capEnded {
			delete(offered, "sasl")
			n.requestCaps(offered)
		}
	case "DEL":
		for _, tok := range strings.Fields(last(m)) {
			delete(n.caps, tok)
		}
	}
}

// requestCaps asks for the wanted capabilities among offered; it ends
// negotiation when there are none (during registration).
func (n *network) requestCaps(offered map[string]string) {
	var want []string
	for _, c := range capsWanted {
		if _, ok := offered[c]; ok && !n.caps[c] {
			want = append(want, c)
		}
	}
	if v, ok := offered["sasl"]; ok && !n.capEnded {
		if mech := n.saslMechanism(); mech != "" && (v == "" || containsWord(v, mech)) {
			want = append(want, "sasl")
		}
	}
	if len(want) == 0 {
		if !n.capEnded {
			n.capEnd()
		}
		return
	}
	var line []string
	size := 0
	for _, c := range want {
		if size+len(c)+1 > 400 {
			n.send(ircmsg.MakeMessage(nil, "", "CAP", "REQ", strings.Join(line, " ")))
			n.capPending++
			line, size = nil, 0
		}
		line = append(line, c)
		size += len(c) + 1
	}
	n.send(ircmsg.MakeMessage(nil, "", "CAP", "REQ", strings.Join(line, " ")))
	n.capPending++
}

func containsWord(list, w string) bool {
	for _, x := range strings.Split(list, ",") {
		if strings.EqualFold(x, w) {
			return true
		}
	}
	return false
}

// capReplied counts an ACK or NAK; when all are in, SASL runs or
// negotiation ends.
func (n *network) capReplied() {
	n.capPending--
	if n.capPending > 0 || n.capEnded {
		return
	}
	if n.caps["sasl"] && n.sasl == "" {
		if mech := n.saslMechanism(); mech != "" {
			n.sasl = mech
			n.send(ircmsg.MakeMessage(nil, "", "AUTHENTICATE", mech))
			return
		}
	}
	n.capEnd()
}

// capEnd ends capability negotiation once.
func (n *network) capEnd() {
	if !n.capEnded {
		n.saslNotTried()
		n.capEnded = true
		n.capLS = nil // only needed during negotiation (CAP NEW refills it)
		n.send(ircmsg.MakeMessage(nil, "", "CAP", "END"))
	}
}

// saslMechanism is the configured SASL mechanism if it can be used.
func (n *network) saslMechanism() string {
	set := n.settings()
	switch strings.ToUpper(set.net(n.key, keySASLMechanism)) {
	case "PLAIN":
		if set.secret(n.key, secretSASLPassword) != "" {
			return "PLAIN"
		}
	case "EXTERNAL":
		if set.secret(n.key, secretClientCert) != "" && n.info.tls {
			return "EXTERNAL"
		}
	}
	return ""
}

// saslNotTried tells the user why they are not logged in when a SASL
// login is configured but negotiation ends without trying it (a failed
// try has told them already). It runs before capLS is cleared: what the
// server offered is the reason.
func (n *network) saslNotTried() {
	set := n.settings()
	want := strings.ToUpper(set.net(n.key, keySASLMechanism))
	if n.sasl != "" || want == "" {
		return
	}
	offer, offered := n.capLS["sasl"]
	var why string
	switch {
	case want == "PLAIN" && set.secret(n.key, secretSASLPassword) == "":
		why = "no SASL password is saved"
	case want == "EXTERNAL" && set.secret(n.key, secretClientCert) == "":
		why = "no client certificate is saved"
	case want == "EXTERNAL" && (n.info == nil || !n.info.tls):
		why = "a client certificate needs TLS and this network is reached without it"
	case n.capLS == nil:
		why = "the server does not support IRCv3 capability negotiation"
	case !offered:
		why = "the server does not offer SASL"
	case offer != "" && !containsWord(offer, want):
		why = "the server offers SASL with " + strings.ReplaceAll(offer, ",", ", ") + " only"
	default:
		why = "the server refused the sasl capability"
	}
	n.serverNotice(fmt.Sprintf("Not logging in to %s with SASL %s: %s. Connecting without logging in; %s", n.name, want, why, n.saslSettingsHint()))
}

// saslSettingsHint says where the SASL settings are changed.
func (n *network) saslSettingsHint() string {
	return fmt.Sprintf("the SASL settings are in the configure command of %s@%s.", n.name, n.s.t.codec.Domain())
}

func (n *network) onAuthenticate(m *ircmsg.Message) {
	if param(m, 0) != "+" || n.sasl == "" {
		return
	}
	switch n.sasl {
	case "EXTERNAL":
		n.send(ircmsg.MakeMessage(nil, "", "AUTHENTICATE", "+"))
	case "PLAIN":
		set := n.settings()
		user := set.net(n.key, keySASLUsername)
		if user == "" {
			user = n.wantNick
		}
		pass := set.secret(n.key, secretSASLPassword)
		if strings.ContainsRune(user+pass, 0) {
			n.send(ircmsg.MakeMessage(nil, "", "AUTHENTICATE", "*"))
			return
		}
		for _, chunk := range ircutils.EncodeSASLResponse([]byte(user + "\x00" + user + "\x00" + pass)) {
			n.send(ircmsg.MakeMessage(nil, "", "AUTHENTICATE", chunk))
		}
	}
}

// ---------------------------------------------------------------- nicks

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

// ---------------------------------------------------------------- channels

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
	r := n.rooms[n.fold(param(m, 0))]
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

// ---------------------------------------------------------------- errors

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

// ---------------------------------------------------------------- messages

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

// ---------------------------------------------------------------- room list

// listRooms answers a disco#items query on a server JID with the
// network's channels (LIST), paged with RSM.
func (s *session) listRooms(q bridge.Query, req *bridge.DiscoItemsQuery, reply func(any, error)) {
	n, err := s.network(q.To, true, "")
	if err != nil {
		reply(nil, err)
		return
	}
	n.lastActivity = time.Now()
	if n.listCache != nil && time.Since(n.listAt) < time.Minute {
		reply(n.pageList(req.Page))
		return
	}
	n.listWait = append(n.listWait, listWaiter{q: q, page: req.Page, reply: reply})
	if n.state == stRegistered {
		if !n.listing {
			n.startList()
		}
		return
	}
	if n.state == stDown && n.registered {
		n.listWait = n.listWait[:len(n.listWait)-1]
		reply(nil, n.downError())
		return
	}
	n.ensureConnected()
}

// startList sends LIST.
func (n *network) startList() {
	n.listing = true
	n.listBuf = nil
	n.send(ircmsg.MakeMessage(nil, "", "LIST"))
	n.setTimer(&n.listT, 90*time.Second, tList)
}

// finishList answers every waiting query.
func (n *network) finishList() {
	n.listing = false
	n.stopTimer(&n.listT)
	sort.Slice(n.listBuf, func(i, j int) bool { return n.fold(n.listBuf[i].name) < n.fold(n.listBuf[j].name) })
	n.listCache, n.listBuf, n.listAt = n.listBuf, nil, time.Now()
	waiting := n.listWait
	n.listWait = nil
	for _, w := range waiting {
		w.reply(n.pageList(w.page))
	}
	n.scheduleIdle()
}

// pageList cuts a page out of the cached list. Items are keyed for RSM by
// channel name.
func (n *network) pageList(p *bridge.PageRequest) (*bridge.DiscoItems, error) {
	all := n.listCache
	size := 100
	if p != nil && p.Max != nil {
		size = max(0, min(*p.Max, 1000))
	}
	start := 0
	find := func(name string) int {
		k := n.fold(name)
		i := sort.Search(len(all), func(i int) bool { return n.fold(all[i].name) >= k })
		if i < len(all) && n.fold(all[i].name) == k {
			return i
		}
		return -1
	}
	if p != nil {
		switch {
		case p.After != nil:
			i := find(*p.After)
			if i < 0 {
				return nil, bridge.Errorf(bridge.ItemNotFound, "%s is not in the channel list any more; start from the first page.", *p.After)
			}
			start = i + 1
		case p.Before != nil && *p.Before == "":
			start = max(0, len(all)-size)
		case p.Before != nil:
			i := find(*p.Before)
			if i < 0 {
				return nil, bridge.Errorf(bridge.ItemNotFound, "%s is not in the channel list any more; start from the last page.", *p.Before)
			}
			start = max(0, i-size)
			size = min(size, i)
		case p.Index != nil:
			start = max(0, min(*p.Index, len(all)))
		}
	}
	end := min(len(all), start+size)
	res := &bridge.DiscoItems{Page: &bridge.PageResult{Count: len(all), FirstIndex: start}}
	domain := n.s.t.codec.Domain()
	for _, e := range all[start:end] {
		j, err := n.s.t.codec.JID(mapping.Address{Kind: mapping.KindRoom, Domain: domain, Network: n.name, Name: e.name})
		if err != nil {
			continue
		}
		name := fmt.Sprintf("%s (%d)", e.name, e.users)
		if e.topic != "" {
			name += ": " + toXMPPText(e.topic)
		}
		res.Items = append(res.Items, bridge.DiscoItem{JID: j, Name: name})
	}
	if start < end {
		res.Page.First, res.Page.Last = all[start].name, all[end-1].name
	}
	return res, nil
}
