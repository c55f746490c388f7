package irc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"switchboard/bridge"
	"switchboard/mapping"
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

	// parting counts, per room key, the PARTs we sent whose echo has not
	// come back: that echo must not end a room the user joined again
	// meanwhile.
	parting map[string]int

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

// onDown handles the loss of the current connection.
func (n *network) onDown(c *conn, err error) {
	s := n.s
	n.c = nil
	n.parting = nil // no echo comes on a dead connection
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

// ---------------------------------------------------------------- sending text

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
