package irc

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unique"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

// network is a user's state on one IRC network: the connection (or the
// plan to reconnect), the channels, the nick. It lives on the user's
// goroutine.
type network struct {
	s       *session
	key     string // lowercased canonical name
	name    string // canonical name, as in Addresses
	info    *netInfo
	counted bool // holds one of the transport's connection slots

	c     *conn
	state int
	gen   int // connection attempts, to ignore stale timers

	nick      string // our nick as the server knows it ("" before 001)
	wantNick  string // the nick registration asks for, and the one taken back
	nickTries int
	user      string // our ident and host as others see them (for line lengths)
	host      string
	is        isupport

	// reclaimTry is the nick a NICK sent to take wantNick back asked for
	// ("" when none is waiting for an answer); lastReclaim when it was sent.
	reclaimTry  string
	lastReclaim time.Time

	capLS      map[string]string
	caps       map[string]bool
	capPending int
	capEnded   bool
	sasl       string // mechanism being tried

	rooms map[string]*room // by folded channel name

	queued     []queuedMsg             // waiting for registration
	unwritten  []pendingWrite          // own messages whose last line is not written yet
	echoes     []*pendingEcho          // own messages waiting for their echo
	labels     map[string]*pendingEcho // by label (labeled-response)
	labelSeq   int
	lastPM     map[string]sentPM          // folded nick → the last private message sent
	pmVia      map[string]mapping.Address // folded nick → occupant JID the user wrote to
	nickReq    *nickRequest
	admin      []*adminReq
	listing    bool
	listBuf    []listEntry
	listCache  []listEntry
	listAt     time.Time
	listWait   []listWaiter
	lastCTCP   time.Time
	motdSeen   bool
	lastErr    string // why the last connection ended
	connErr    string // why the current connection is ending (ERROR, timeout)
	downSince  time.Time
	attempts   int
	announced  bool // the user was told that the connection is down
	registered bool // registered at least once: a drop is an outage, not a failure to connect

	lastActivity time.Time // private messages, room lists
	away         string    // the away message set on IRC ("" when present)

	// rawUntil ends the window in which numeric replies to a raw command
	// are shown; rawBuf gathers them (rawreplies.go).
	rawUntil time.Time
	rawBuf   []string

	reconnectT, regT, idleT, adminT, listT, reclaimT, modesT, rawT *timerRef
}

// timerRef is a timer with the generation it belongs to.
type timerRef struct {
	t   *time.Timer
	gen int
}

// sentPM is the last private message sent to a nick, so that a server
// refusal (401 no such nick) reaches the resource that sent it, from the
// address it wrote to (an error to a bare JID is dropped by the server).
type sentPM struct {
	id   string
	from jid.JID
	to   mapping.Address
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

// nickRequest is a nick change asked from XMPP.
type nickRequest struct {
	nick string
	from jid.JID
	room mapping.Address
	id   string // of the presence, echoed on an error
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

// listEntry is one channel of a LIST.
type listEntry struct {
	name  string
	users int
	topic string
}

// listWaiter is a room list query waiting for LIST.
type listWaiter struct {
	q     bridge.Query
	page  *bridge.PageRequest
	reply func(any, error)
}

// fold folds a nick or channel with the server's casemapping.
func (n *network) fold(name string) string { return n.is.cm.Fold(name) }

// isMe reports whether nick is ours.
func (n *network) isMe(nick string) bool { return n.nick != "" && n.is.cm.Equal(nick, n.nick) }

// settings are the user's current settings.
func (n *network) settings() settings { return n.s.settings() }

// send queues a message on the connection.
func (n *network) send(msg ircmsg.Message) error {
	_, err := n.sendSeq(msg)
	return err
}

// sendSeq is send; it returns the line's number on the connection (see
// conn.written).
func (n *network) sendSeq(msg ircmsg.Message) (uint64, error) {
	if n.c == nil {
		return 0, n.downError()
	}
	seq, err := n.c.send(&msg)
	if err != nil {
		switch {
		case errors.Is(err, errQueueFull):
			return 0, bridge.Errorf(bridge.ResourceConstraint, "Too much is waiting to be sent to %s; wait a moment.", n.name)
		case errors.Is(err, errClosed):
			return 0, n.downError()
		}
		n.s.log.Warn("a line for IRC was refused", "network", n.name, "err", err)
		return 0, bridge.Errorf(bridge.BadRequest, "The gateway cannot send this to IRC: %v.", err)
	}
	return seq, nil
}

// downError is the error for a message sent while not connected.
func (n *network) downError() error {
	if n.lastErr != "" {
		return bridge.Errorf(bridge.RemoteServerTimeout, "The connection to %s is down (%s); the gateway is reconnecting. Your message was not sent.", n.name, n.lastErr)
	}
	return bridge.Errorf(bridge.RemoteServerTimeout, "The gateway is not connected to %s yet. Your message was not sent.", n.name)
}

// archiving reports whether this network's rooms are archived.
func (n *network) archiving() bool { return n.info.limits.historyDays > 0 }

// ---------------------------------------------------------------- connection

// ensureConnected starts a connection unless one is up or planned.
func (n *network) ensureConnected() {
	if n.c == nil && n.reconnectT == nil {
		n.connect()
	}
}

// connect starts a connection attempt.
func (n *network) connect() {
	s := n.s
	set := n.settings()
	ni, err := s.t.networkInfo(n.name, set)
	if err != nil {
		n.giveUp(err.Error())
		return
	}
	n.info = ni
	cert, err := set.clientCert(n.key)
	if err != nil {
		n.serverNotice(err.Error())
	}
	n.gen++
	n.connErr = ""
	n.state = stConnecting
	n.capLS, n.caps, n.capPending, n.capEnded, n.sasl = nil, map[string]bool{}, 0, false, ""
	n.is = defaultISupport()
	n.nick = ""
	n.nickTries = 0
	n.motdSeen = false
	spec := s.t.dialSpec(ni, cert)
	spec.ident = s.ident
	c := newConn(spec, s.u, s.log.With("network", n.name), ni.charset, ni.limits.rate, ni.limits.burst)
	n.c = c
	c.start()
	n.setTimer(&n.regT, registrationTimeout, tRegistration)
}

// onUp registers once the TCP/TLS connection is up.
func (n *network) onUp() {
	n.state = stRegistering
	set := n.settings()
	if ni := n.info.cfg; ni != nil && ni.WebIRCPassword != "" {
		ip := webircIP(n.s.bare)
		n.send(ircmsg.MakeMessage(nil, "", "WEBIRC", ni.WebIRCPassword, "switchboard", ip, ip))
	}
	n.send(ircmsg.MakeMessage(nil, "", "CAP", "LS", "302"))
	pass := set.secret(n.key, secretPassword)
	if pass == "" && n.info.cfg != nil {
		pass = n.info.cfg.Password
	}
	if pass != "" {
		n.send(ircmsg.MakeMessage(nil, "", "PASS", pass))
	}
	n.send(ircmsg.MakeMessage(nil, "", "NICK", n.wantNick))
	user := set.netOr(n.key, keyUsername)
	if user == "" {
		user = defaultUsername(n.s.u.JID().Localpart())
	}
	real := set.netOr(n.key, keyRealname)
	if real == "" {
		real = n.s.t.cfg.Realname
	}
	n.send(ircmsg.MakeMessage(nil, "", "USER", user, "0", "*", real))
}

// onRegistered runs on RPL_WELCOME.
func (n *network) onRegistered(nick string) {
	n.state = stRegistered
	n.nick = strings.Clone(nick)
	n.c.releaseSlot()
	n.stopTimer(&n.regT)
	n.attempts = 0
	n.announced = false
	n.registered = true
	n.downSince = time.Time{}
	set := n.settings()
	window := n.rawUntil
	for _, l := range lines(set.afterConnect(n.key)) {
		if m, err := parseRaw(l); err == nil && m.Command != "QUIT" {
			n.sendRawCommand(m)
		}
	}
	n.rawUntil = window // the after-connect commands' replies are not the user's questions
	for _, ch := range strings.Fields(set.net(n.key, keyAutojoin)) {
		k := n.fold(ch)
		if n.rooms[k] == nil && n.s.t.codec.ValidChannel(ch) == nil {
			addr, err := n.s.t.codec.Room(n.name, ch)
			if err != nil {
				continue
			}
			n.rooms[k] = &room{addr: addr, name: ch, key: k, bouncer: true}
		}
	}
	var rooms []*room
	for _, r := range n.rooms {
		rooms = append(rooms, r)
	}
	n.sendJoins(rooms)
	queued := n.queued
	n.queued = nil
	for _, q := range queued {
		fail := func(err error) {
			n.s.emit(bridge.DeliveryError{To: q.ev.From, From: q.ev.To, Kind: "message", ID: q.ev.ID, Err: bridge.AsStanzaError(err)})
		}
		if q.raw.Command != "" {
			if err := n.sendRawCommand(q.raw); err != nil {
				fail(err)
			}
			continue
		}
		n.sendText(q.ev, q.target, nil, fail)
	}
	if len(n.listWait) > 0 && !n.listing {
		n.startList()
	}
	n.scheduleIdle()
	n.reclaimTry = ""
	n.scheduleReclaim()
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

// onDown handles the loss of the current connection.
func (n *network) onDown(c *conn, err error) {
	s := n.s
	n.c = nil
	// The writer has ended: written is final.
	n.onWritten(c.written.Load())
	n.stopTimer(&n.regT)
	n.state = stDown
	n.lastErr = n.connErr
	if n.lastErr == "" {
		n.lastErr = describeConnError(err)
	}
	s.log.Info("IRC connection closed", "network", n.name, "reason", n.lastErr)
	s.failWrites(n.unwritten, bridge.RemoteServerTimeout, "The connection to "+n.name+" was lost ("+n.lastErr+") before your message could be sent; it was not delivered.")
	n.unwritten = nil
	n.failPending("The connection to " + n.name + " was lost before the IRC server confirmed your message; it may not have been delivered.")
	if !n.wantsConnection() {
		s.removeNetwork(n, "")
		return
	}
	if !n.registered {
		n.attempts++
		if n.attempts >= firstAttempts {
			n.giveUp(fmt.Sprintf("The gateway could not connect to %s: %s.", n.name, n.lastErr))
			return
		}
		n.setTimer(&n.reconnectT, jitter(time.Duration(n.attempts)*time.Second), tReconnect)
		return
	}
	if n.downSince.IsZero() {
		n.downSince = time.Now()
	}
	if !n.announced {
		// Never silence: every resource in a room is told, with a room
		// message and an unavailable self-presence (status 333, technical
		// reasons), and gets a full join again once the room is back.
		n.announced = true
		reason := "The connection to " + n.name + " was lost (" + n.lastErr + "); the gateway is reconnecting and will bring you back."
		for _, r := range n.rooms {
			if r.state == rsJoined {
				r.state = rsRejoining
			}
			n.roomNotice(r, reason)
			self := n.occupant(r, r.selfNick)
			self.Role, self.Show, self.Status = "none", "", reason
			for _, to := range r.resources {
				s.emit(bridge.OccupantChanged{To: to, Room: r.addr, Occupant: self, Self: true, Gone: true, Reason: reason, Codes: []int{333}})
				r.waiting = append(r.waiting, waiter{jid: to, nick: r.selfNick})
			}
			r.resources = nil
		}
	}
	down := time.Since(n.downSince)
	if down > giveUpAfter {
		n.giveUp(fmt.Sprintf("The gateway gave up reconnecting to %s after %s: %s.", n.name, giveUpAfter, n.lastErr))
		return
	}
	delay := min(time.Duration(1<<min(n.attempts, 4))*500*time.Millisecond, reconnectCap)
	if down > slowAfter {
		delay = reconnectSlow
	}
	n.attempts++
	n.setTimer(&n.reconnectT, jitter(delay), tReconnect)
}

// describeConnError words why a connection ended.
func describeConnError(err error) string {
	switch {
	case err == nil:
		return "the server closed the connection"
	case errors.Is(err, context.Canceled):
		return "the connection was closed"
	}
	return err.Error()
}

// giveUp removes every room with an error and forgets the network.
func (n *network) giveUp(reason string) {
	for _, q := range n.queued {
		n.s.emit(bridge.DeliveryError{To: q.ev.From, From: q.ev.To, Kind: "message", ID: q.ev.ID, Err: bridge.Errorf(bridge.RemoteServerNotFound, "%s", reason)})
	}
	n.queued = nil
	for _, r := range n.rooms {
		for _, w := range r.waiting {
			n.s.emit(bridge.DeliveryError{To: w.jid, From: r.addr.Occupant(w.nick), Kind: "presence", ID: w.id,
				Err: bridge.Errorf(bridge.RemoteServerNotFound, "%s", reason)})
		}
		r.waiting = nil
	}
	n.removeAllRooms(reason, []int{333})
	for _, w := range n.listWait {
		w.reply(nil, bridge.Errorf(bridge.RemoteServerNotFound, "%s", reason))
	}
	n.listWait = nil
	n.s.removeNetwork(n, "")
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

// wantsConnection reports whether anything needs the connection: a room
// with XMPP resources (or waiting for a join), bouncer mode, a room list
// being fetched, private messages recently.
func (n *network) wantsConnection() bool {
	if n.s.closed {
		return false
	}
	for _, r := range n.rooms {
		if len(r.resources) > 0 || len(r.waiting) > 0 || n.keepRoom(r) {
			return true
		}
	}
	if len(n.listWait) > 0 || len(n.queued) > 0 {
		return true
	}
	if n.settings().bouncer(n.key) {
		return true
	}
	return !n.lastActivity.IsZero() && time.Since(n.lastActivity) < pmIdle
}

// keepRoom reports whether a room stays joined without XMPP resources.
func (n *network) keepRoom(r *room) bool {
	return r.bouncer || n.settings().bouncer(n.key)
}

// maybeQuit quits when nothing needs the connection any more.
func (n *network) maybeQuit() {
	if n.s.savedBouncer != "" {
		n.s.saveBouncerRooms() // a kept room may have gone (kick, part)
	}
	if n.s.nets[n.key] != n {
		return
	}
	if !n.wantsConnection() {
		n.s.removeNetwork(n, "")
		return
	}
	n.scheduleIdle()
}

// scheduleIdle arms the idle check of a connection kept for private
// messages.
func (n *network) scheduleIdle() {
	if !n.lastActivity.IsZero() {
		n.setTimer(&n.idleT, time.Until(n.lastActivity.Add(pmIdle))+time.Second, tIdle)
	}
}

// release gives the transport's connection slot back.
func (n *network) release() {
	if n.counted {
		n.counted = false
		n.s.t.releaseConnection()
	}
}

// setTimer (re)arms a timer that posts a timerEvent.
func (n *network) setTimer(ref **timerRef, d time.Duration, kind timerKind) {
	n.stopTimer(ref)
	ev := timerEvent{n: n, kind: kind, gen: n.gen}
	u := n.s.u
	*ref = &timerRef{t: time.AfterFunc(d, func() { u.Post(ev) }), gen: n.gen}
}

func (n *network) stopTimer(ref **timerRef) {
	if *ref != nil {
		(*ref).t.Stop()
		*ref = nil
	}
}

func (n *network) stopTimers() {
	for _, ref := range []**timerRef{&n.reconnectT, &n.regT, &n.idleT, &n.adminT, &n.listT, &n.reclaimT, &n.modesT, &n.rawT} {
		n.stopTimer(ref)
	}
}

// onTimer handles a network's timer.
func (n *network) onTimer(ev timerEvent) {
	switch ev.kind {
	case tReconnect:
		n.reconnectT = nil
		if n.c == nil {
			if !n.wantsConnection() {
				n.s.removeNetwork(n, "")
				return
			}
			n.connect()
		}
	case tRegistration:
		n.regT = nil
		if ev.gen == n.gen && n.c != nil && n.state != stRegistered {
			n.connErr = "the server did not complete the registration in time"
			n.c.close()
		}
	case tIdle:
		n.idleT = nil
		n.maybeQuit()
	case tAdmin:
		n.adminT = nil
		n.expireAdmin()
	case tList:
		n.listT = nil
		if n.listing {
			n.finishList()
		}
	case tReclaim:
		n.reclaimT = nil
		if ev.gen == n.gen {
			n.reclaimNick(false)
		}
	case tRaw:
		n.rawT = nil
		n.flushRaw()
	case tModes:
		n.modesT = nil
		if ev.gen == n.gen {
			n.expireModeQueries()
		}
	}
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

// ---------------------------------------------------------------- sending text

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

// backlogLimit is how many lines may wait on the connection (0: no limit
// but the byte bound of the queue).
func (n *network) backlogLimit() int {
	rate, secs := n.info.limits.rate, n.s.t.cfg.MaxBacklog
	if rate <= 0 || secs == nil || *secs <= 0 {
		return 0
	}
	return max(int(rate*float64(*secs)), n.info.limits.burst, 1)
}

// backlogTime words how long lines take to leave at rate.
func backlogTime(lines int, rate float64) string {
	if rate <= 0 {
		return "no time"
	}
	return (time.Duration(float64(lines) / rate * float64(time.Second))).Round(time.Second).String()
}

// pendingWrite is an own message whose last line is not written yet
// (without echo-message): it is reflected (a room message) or receipted
// (a private message that asked for it) once it is, and gets an error if
// it never is.
type pendingWrite struct {
	seq  uint64 // of its last line
	ev   bridge.SendMessage
	room *room // nil for a private message
	body string
}

// onWritten completes the own messages whose last line is written (the
// connection wrote every line up to seq).
func (n *network) onWritten(seq uint64) {
	i := 0
	for i < len(n.unwritten) && n.unwritten[i].seq <= seq {
		n.s.completeWrite(n, n.unwritten[i])
		i++
	}
	if i > 0 {
		clear(n.unwritten[:i])
		n.unwritten = n.unwritten[i:]
		if len(n.unwritten) == 0 {
			n.unwritten = nil
		}
	}
}

// completeWrite reflects or receipts a message whose lines are written.
// n is nil for a network already removed (its rooms are gone).
func (s *session) completeWrite(n *network, pw pendingWrite) {
	switch {
	case pw.room != nil:
		if n != nil && n.rooms[pw.room.key] == pw.room {
			n.reflect(pw.room, pw.ev, pw.body, "", time.Time{})
		}
	case pw.ev.ReceiptRequested:
		s.emit(bridge.Receipt{To: pw.ev.From, From: pw.ev.To, ID: pw.ev.ID})
	}
}

// failWrites answers own messages whose lines never left with an error.
func (s *session) failWrites(pws []pendingWrite, cond, text string) {
	for _, pw := range pws {
		s.emit(bridge.DeliveryError{To: pw.ev.From, From: pw.ev.To, Kind: "message", ID: pw.ev.ID, Err: bridge.Errorf(cond, "%s", text)})
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

// sendRawCommand sends a command the user typed to the server JID.
func (n *network) sendRawCommand(m ircmsg.Message) error {
	if m.Command == "QUIT" {
		reason := ""
		if len(m.Params) > 0 {
			reason = m.Params[0]
		}
		n.removeAllRooms("You quit "+n.name+".", []int{332})
		n.s.removeNetwork(n, reason)
		return nil
	}
	if m.Command == "NICK" && len(m.Params) > 0 {
		if err := n.s.t.codec.ValidNick(m.Params[0]); err != nil {
			return err
		}
	}
	if err := n.send(m); err != nil {
		return err
	}
	n.openRawWindow()
	return nil
}

// ---------------------------------------------------------------- rooms

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

// serverNotice shows a line from the network's server JID.
func (n *network) serverNotice(text string) {
	text = toXMPPText(text)
	if text == "" {
		return
	}
	n.s.emit(bridge.Message{To: n.s.u.JID().Bare(), From: mapping.Address{Kind: mapping.KindServer, Domain: n.s.t.codec.Domain(), Network: n.name},
		Type: bridge.Chat, Body: text, Notice: true})
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
