package irc

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

// Timing of connections.
const (
	// registrationTimeout is generous: at a mass connect a busy server
	// may take long to answer, and giving up early only adds load.
	registrationTimeout = 90 * time.Second
	// firstAttempts is how many times a first connection is tried before
	// the rooms waiting for it get an error.
	firstAttempts = 3
	// reconnectCap bounds the delay between reconnection attempts while the
	// outage is young, so that rooms come back within seconds of the
	// server; after slowAfter attempts come every reconnectSlow, and after
	// giveUpAfter the gateway gives up and tells the user.
	reconnectCap  = 8 * time.Second
	slowAfter     = 10 * time.Minute
	reconnectSlow = 60 * time.Second
	giveUpAfter   = 2 * time.Hour
	// pmIdle is how long a connection that has no room but was used for
	// private messages or a room list stays up.
	pmIdle = 15 * time.Minute
	// echoTimeout drops own messages whose echo never came.
	echoTimeout = 2 * time.Minute
	// adminTimeout answers a moderation request the server never answered.
	adminTimeout = 15 * time.Second
	// maxQueuedWhileConnecting bounds messages waiting for registration.
	maxQueuedWhileConnecting = 50
	// defaultHistory is how many archived messages a join without a
	// <history/> element gets.
	defaultHistory = 20
	// closeGrace is how long Close waits for QUIT lines to be written.
	closeGrace = 2 * time.Second
)

// Network states.
const (
	stDown = iota
	stConnecting
	stRegistering
	stRegistered
)

// user is what a session needs of its *bridge.User; an interface so that
// tests and benchmarks can drive a session without a gateway.
type user interface {
	JID() jid.JID
	Context() context.Context
	Log() *slog.Logger
	Account() *store.Account
	Emit(ev bridge.Outbound) error
	Post(ev any) bool
	PostOr(ev any, interval time.Duration, waiting func()) bool
	Online() bool
}

// session is one user's IRC state. Every method runs on the user's
// goroutine.
type session struct {
	t    *Transport
	u    user
	log  *slog.Logger
	bare string
	// tag was the per-user suffix of stanza-ids made from IRC msgids
	// before archive ids carried their order key (msgid~tag); msgidOf
	// still reads such ids, which clients may hold.
	tag  string
	nets map[string]*network // by lowercased canonical network name
	// closing are connections that were sent QUIT, with the own messages
	// (private ones) whose lines they have yet to write.
	closing map[*conn][]pendingWrite
	closed  bool
	// savedBouncer is the bouncer room list last written to the store.
	savedBouncer string
	// ident is the user's answer to ident queries ("" without identd).
	ident string
	// pings are the pings to occupants' resources waiting for their
	// answer (occupants.go), by id.
	pings   map[string]pingReq
	pingSeq int
	// savedOcc is the occupant record last written (occstate.go).
	savedOcc string
}

func newSession(t *Transport, u user) *session {
	bare := u.JID().Bare().String()
	sum := sha256.Sum256([]byte(bare))
	ident := ""
	if t.identKey != nil {
		ident = identOf(t.identKey, bare)
	}
	return &session{
		ident:   ident,
		t:       t,
		u:       u,
		log:     u.Log(),
		bare:    bare,
		tag:     strings.ToLower(base32.StdEncoding.EncodeToString(sum[:5])),
		nets:    make(map[string]*network),
		closing: make(map[*conn][]pendingWrite),
	}
}

func (s *session) settings() settings { return settingsOf(s.u.Account()) }

// emit sends an event to XMPP (errors are logged and counted by Emit).
func (s *session) emit(ev bridge.Outbound) { _ = s.u.Emit(ev) }

// ---------------------------------------------------------------- bridge.Session

// HandleInbound handles an event from the user's XMPP client.
func (s *session) HandleInbound(ev bridge.Inbound) {
	if s.closed {
		return
	}
	switch ev := ev.(type) {
	case bridge.JoinRoom:
		s.join(ev)
	case bridge.LeaveRoom:
		s.leave(ev)
	case bridge.SendMessage:
		s.sendMessage(ev)
	case bridge.UserPresence:
		s.presence(ev)
	case bridge.RoomAdmin:
		s.roomAdmin(ev)
	case bridge.StanzaReply:
		s.onReply(ev)
	}
	if _, msg := ev.(bridge.SendMessage); !msg {
		s.saveOccupants()
	}
}

// HandleNetwork handles what the session's goroutines posted.
func (s *session) HandleNetwork(ev any) {
	switch ev := ev.(type) {
	case connLine:
		if n := s.netOf(ev.c); n != nil {
			own := n.changesOwnRooms(&ev.msg) // before handle: a NICK changes n.nick
			n.handle(&ev.msg)
			if own {
				s.saveOccupants()
			}
		}
	case connUp:
		if n := s.netOf(ev.c); n != nil {
			n.onUp()
		} else {
			ev.c.close()
		}
	case connDown:
		s.onDown(ev.c, ev.err)
		s.saveOccupants()
	case connWritten:
		ev.c.notifying.Store(false)
		if n := s.netOf(ev.c); n != nil {
			n.onWritten(ev.c.written.Load())
		} else if pws, ok := s.closing[ev.c]; ok {
			s.closing[ev.c] = s.completeWrites(pws, ev.c.written.Load())
		}
	case timerEvent:
		if n := s.nets[ev.n.key]; n == ev.n {
			n.onTimer(ev)
		}
		s.saveOccupants()
	}
}

// Status describes the user's IRC connections, one line each.
func (s *session) Status() []string {
	keys := make([]string, 0, len(s.nets))
	for k := range s.nets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		n := s.nets[k]
		var rooms []string
		for _, r := range n.rooms {
			rooms = append(rooms, r.name)
		}
		sort.Strings(rooms)
		switch n.state {
		case stRegistered:
			line := fmt.Sprintf("%s: connected as %s", n.name, n.nick)
			if len(rooms) > 0 {
				line += ", in " + strings.Join(rooms, ", ")
			}
			out = append(out, line+".")
		case stConnecting, stRegistering:
			out = append(out, fmt.Sprintf("%s: connecting.", n.name))
		default:
			line := fmt.Sprintf("%s: disconnected", n.name)
			if n.lastErr != "" {
				line += " (" + n.lastErr + ")"
			}
			out = append(out, line+"; reconnecting.")
		}
	}
	if len(out) == 0 {
		out = append(out, "You are not connected to any IRC network.")
	}
	return out
}

// Idle reports whether the session holds nothing: no network, no
// connection still closing.
func (s *session) Idle() bool { return len(s.nets) == 0 && len(s.closing) == 0 }

// Close quits every connection with reason and stops every goroutine of
// the session. With a reason the user is told, in every room, that they
// were removed (status 332).
//
// Lines still queued get the shutdown grace to leave (within the rate
// limit): the messages whose lines left are reflected, the others get an
// error; then QUIT goes out with the reason, ahead of the rate limit.
func (s *session) Close(reason string) {
	if s.closed {
		return
	}
	s.closed = true
	quitMsg := "Switchboard XMPP gateway"
	if reason != "" {
		quitMsg = firstLine(reason)
	}
	deadline := time.Now().Add(s.t.shutdownGrace())
	for _, n := range s.nets {
		n.stopTimers()
		if n.c != nil && n.state == stRegistered && len(n.unwritten) > 0 {
			n.c.drain(deadline)
		}
	}
	for c, pws := range s.closing {
		if len(pws) > 0 {
			c.drain(deadline)
		}
	}
	notSent := "The gateway stopped before your message could be sent to IRC; it was not delivered."
	var all []*conn
	for _, n := range s.nets {
		if n.c != nil {
			n.c.abandon()
			n.onWritten(n.c.written.Load())
		}
		s.failWrites(n.unwritten, bridge.RecipientUnavailable, notSent)
		n.unwritten = nil
		if reason != "" {
			n.removeAllRooms(reason, []int{332})
		}
		n.failPending("The gateway closed your session before the IRC server confirmed your message; it may not have been delivered.")
		for _, q := range n.queued {
			s.emit(bridge.DeliveryError{To: q.ev.From, From: q.ev.To, Kind: "message", ID: q.ev.ID,
				Err: bridge.Errorf(bridge.ServiceUnavailable, "The gateway closed your session before your message could be sent.")})
		}
		switch {
		case n.c == nil:
		case n.state == stConnecting: // nothing to say QUIT to yet
			n.c.close()
		default:
			n.c.quit(quitMsg)
			all = append(all, n.c)
		}
		n.release()
	}
	for c, pws := range s.closing {
		c.abandon()
		s.failWrites(s.completeWrites(pws, c.written.Load()), bridge.RecipientUnavailable, notSent)
		all = append(all, c)
	}
	quitBy := time.After(closeGrace)
	for _, c := range all {
		c.waitFlushed(quitBy)
		c.close()
	}
	clear(s.nets)
	clear(s.closing)
	s.saveOccupants() // told (or not in a room): nothing for a restart to tell
}

// completeWrites completes the messages of a closing connection written
// up to seq and returns the others.
func (s *session) completeWrites(pws []pendingWrite, seq uint64) []pendingWrite {
	i := 0
	for i < len(pws) && pws[i].seq <= seq {
		s.completeWrite(nil, pws[i])
		i++
	}
	return pws[i:]
}

// firstLine returns s up to its first line break, cleaned for IRC.
func firstLine(s string) string {
	if l := cleanText(s); len(l) > 0 {
		return l[0]
	}
	return ""
}

// netOf returns the network whose current connection is c.
func (s *session) netOf(c *conn) *network {
	for _, n := range s.nets {
		if n.c == c {
			return n
		}
	}
	return nil
}

// disconnect quits a network on the user's request; it reports whether
// there was a connection.
func (s *session) disconnect(network, reason string) bool {
	n := s.nets[strings.ToLower(network)]
	if n == nil {
		return false
	}
	n.removeAllRooms(reason, []int{332})
	s.removeNetwork(n, reason)
	s.saveBouncerRooms()
	return true
}

// onDown handles the end of a connection.
func (s *session) onDown(c *conn, err error) {
	if pws, ok := s.closing[c]; ok {
		delete(s.closing, c)
		s.failWrites(s.completeWrites(pws, c.written.Load()), bridge.RemoteServerTimeout,
			"The IRC connection closed before your message could be sent; it was not delivered.")
		return
	}
	if n := s.netOf(c); n != nil {
		n.onDown(c, err)
	}
}

// removeNetwork quits n (if connected) and forgets it.
func (s *session) removeNetwork(n *network, reason string) {
	n.stopTimers()
	n.failPending("The connection to " + n.name + " closed before the IRC server confirmed your message; it may not have been delivered.")
	for _, q := range n.queued {
		s.emit(bridge.DeliveryError{To: q.ev.From, From: q.ev.To, Kind: "message", ID: q.ev.ID,
			Err: bridge.Errorf(bridge.RemoteServerNotFound, "The connection to %s closed before your message could be sent.", n.name)})
	}
	n.queued = nil
	if n.c == nil {
		s.failWrites(n.unwritten, bridge.RemoteServerTimeout, "The connection to "+n.name+" closed before your message could be sent; it was not delivered.")
		n.unwritten = nil
	}
	if n.c != nil {
		if reason == "" {
			reason = "Switchboard XMPP gateway"
		}
		if n.state == stConnecting {
			n.c.close()
		} else {
			n.c.quit(firstLine(reason))
		}
		// Lines queued before QUIT still leave: the private messages among
		// them are receipted or errored as the connection ends (rooms are
		// gone, nothing is reflected).
		s.closing[n.c] = n.unwritten
		n.unwritten = nil
		n.c = nil
	}
	n.release()
	if s.nets[n.key] == n {
		delete(s.nets, n.key)
	}
}

// ---------------------------------------------------------------- networks

// network resolves (and with create, opens) the user's connection state
// for the network of addr. It returns a *bridge.StanzaError for the user.
func (s *session) network(addr mapping.Address, create bool, nick string) (*network, error) {
	key := strings.ToLower(addr.Network)
	if n := s.nets[key]; n != nil {
		return n, nil
	}
	if !create {
		return nil, nil
	}
	set := s.settings()
	ni, err := s.t.networkInfo(addr.Network, set)
	if err != nil {
		return nil, err
	}
	if max := s.t.cfg.MaxConnectionsPerUser; max > 0 && len(s.nets) >= max {
		return nil, bridge.Errorf(bridge.ResourceConstraint, "You already have %d IRC connections open, the most this gateway allows; leave the rooms of another network first.", len(s.nets))
	}
	if !s.t.takeConnection() {
		return nil, bridge.Errorf(bridge.ResourceConstraint, "The gateway has reached its limit of IRC connections; try again later.")
	}
	n := &network{
		s:       s,
		key:     key,
		name:    addr.Network,
		info:    ni,
		counted: true,
		is:      defaultISupport(),
		rooms:   make(map[string]*room),
		lastPM:  make(map[string]sentPM),
		pmVia:   make(map[string]mapping.Address),
	}
	n.wantNick = set.netOr(key, keyNick)
	if n.wantNick == "" {
		n.wantNick = nick
	}
	if n.wantNick == "" {
		n.wantNick = defaultNick(s.u.JID().Localpart())
	}
	s.nets[key] = n
	return n, nil
}

// defaultNick makes a nick out of a JID local part.
func defaultNick(local string) string {
	var b strings.Builder
	for _, r := range local {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_', r == '[', r == ']', r == '\\', r == '`', r == '^', r == '{', r == '}', r == '|':
			b.WriteRune(r)
		case (r >= '0' && r <= '9' || r == '-') && b.Len() > 0:
			b.WriteRune(r)
		}
		if b.Len() >= 16 {
			break
		}
	}
	if b.Len() == 0 {
		return "xmppuser"
	}
	return b.String()
}

// defaultUsername makes an ident out of a JID local part.
func defaultUsername(local string) string {
	var b strings.Builder
	for i := 0; i < len(local) && b.Len() < 10; i++ {
		c := local[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "xmpp"
	}
	return b.String()
}

// webircIP derives a stable IPv6 address (fd00::/8, unique local) from the
// user's JID, so that a network using WEBIRC sees one host per XMPP user
// and can ban one without banning the gateway.
func webircIP(bare string) string {
	sum := sha256.Sum256([]byte("switchboard webirc " + bare))
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:], sum[:15])
	return netip.AddrFrom16(a).String()
}

// ---------------------------------------------------------------- XMPP → IRC

// join handles a join (or a presence update to a room the user is in).
func (s *session) join(ev bridge.JoinRoom) {
	addr := ev.Room
	fail := func(err error) {
		s.emit(bridge.DeliveryError{To: ev.From, From: addr, Kind: "presence", ID: ev.ID, Err: bridge.AsStanzaError(err)})
	}
	if addr.Kind != mapping.KindOccupant {
		fail(bridge.Errorf(bridge.BadRequest, "Join a room with a nick: %s/yournick.", addr.Name))
		return
	}
	if err := s.t.codec.ValidChannel(addr.Name); err != nil {
		fail(err)
		return
	}
	if err := s.t.codec.ValidNick(addr.Resource); err != nil {
		fail(err)
		return
	}
	if ev.Password != "" && (!validTarget(ev.Password) || len(ev.Password) > 64) {
		fail(bridge.Errorf(bridge.NotAcceptable, "A channel password cannot contain spaces, commas or control characters."))
		return
	}
	n, err := s.network(addr, true, addr.Resource)
	if err != nil {
		fail(err)
		return
	}
	roomAddr := addr.Room()
	key := n.fold(addr.Name)
	r := n.rooms[key]
	if r != nil && r.has(ev.From) {
		if addr.Resource != n.nick && n.state == stRegistered {
			n.changeNick(addr.Resource, ev.From, roomAddr, ev.ID)
			return
		}
		if ev.MUC && r.state == rsJoined && r.hasResource(ev.From) { // the client thinks it is not in: tell it again
			n.sendRoomJoined(r, waiter{jid: ev.From, nick: addr.Resource, history: ev.History})
			return
		}
		n.setAway(ev.Show, ev.Status)
		return
	}
	if r == nil {
		r = &room{addr: roomAddr, name: addr.Name, key: key, password: ev.Password}
		r.bouncer = s.settings().bouncerChannel(n.key, mapping.RFC1459.Fold(addr.Name))
		n.rooms[key] = r
		if n.state == stRegistered {
			n.sendJoins([]*room{r})
		}
		if n.keepRoom(r) {
			s.saveBouncerRooms()
		}
	}
	w := waiter{jid: ev.From, nick: addr.Resource, id: ev.ID, history: ev.History, fresh: true}
	if r.state == rsJoined {
		r.resources = append(r.resources, ev.From)
		n.sendRoomJoined(r, w)
	} else {
		r.waiting = append(r.waiting, w)
	}
	n.ensureConnected()
}

// leave handles unavailable presence to a room.
func (s *session) leave(ev bridge.LeaveRoom) {
	room := ev.Room.Room()
	self := bridge.OccupantChanged{To: ev.From, Room: room, Self: true, Gone: true,
		Occupant: bridge.Occupant{Nick: ev.Room.Resource, Role: "none", Affiliation: "none"}}
	// A leave of a room the resource is not in (any client can send one,
	// and servers send them for rooms a resource left long ago) is
	// ignored quietly, as MUC services do: nothing to undo, nothing to
	// answer.
	n := s.nets[strings.ToLower(room.Network)]
	if n == nil {
		return
	}
	r := n.rooms[n.fold(room.Name)]
	if r == nil || !r.has(ev.From) {
		return
	}
	self.Occupant = n.occupant(r, n.nick)
	self.Occupant.Role = "none"
	r.remove(ev.From)
	s.emit(self)
	if len(r.resources) == 0 && len(r.waiting) == 0 && !n.keepRoom(r) {
		if n.state == stRegistered {
			params := []string{r.name}
			if reason := firstLine(ev.Status); reason != "" {
				params = append(params, reason)
			}
			if n.send(ircmsg.MakeMessage(nil, "", "PART", params...)) == nil {
				if n.parting == nil {
					n.parting = map[string]int{}
				}
				n.parting[r.key]++
			}
		}
		delete(n.rooms, r.key)
	}
	if len(n.rooms) == 0 {
		// Leaving the last room quits, even if private messages were
		// exchanged (a new one reconnects).
		n.lastActivity = time.Time{}
	}
	n.maybeQuit()
}

// presence handles presence to the gateway, a server or a contact.
func (s *session) presence(ev bridge.UserPresence) {
	if ev.Type == bridge.Unavailable {
		// A resource went offline: it is in no room any more (the XMPP
		// server usually says so per room too).
		for _, n := range s.nets {
			for _, r := range n.rooms {
				r.remove(ev.From)
				if len(r.resources) == 0 && len(r.waiting) == 0 && !n.keepRoom(r) {
					if n.state == stRegistered {
						n.send(ircmsg.MakeMessage(nil, "", "PART", r.name))
					}
					delete(n.rooms, r.key)
				}
			}
			if !s.u.Online() {
				n.lastActivity = time.Time{}
			}
			n.maybeQuit()
		}
		return
	}
	to := ev.To
	if ev.Type == bridge.Available && (to.Kind == mapping.KindGateway || to.Kind == mapping.KindServer) {
		for _, n := range s.nets {
			if to.Kind == mapping.KindGateway || strings.EqualFold(n.name, to.Network) {
				n.setAway(ev.Show, ev.Status)
			}
		}
	}
	switch ev.Type {
	case bridge.Subscribe:
		s.emit(bridge.ContactPresence{To: ev.From.Bare(), From: to.Bare(), Type: bridge.Subscribed})
		fallthrough
	case bridge.Probe, bridge.Available:
		if to.Kind != mapping.KindContact && to.Kind != mapping.KindServer {
			return
		}
		n := s.nets[strings.ToLower(to.Network)]
		avail := false
		if n != nil && n.state == stRegistered {
			avail = to.Kind == mapping.KindServer || n.sharesRoom(to.Name)
		}
		p := bridge.ContactPresence{To: ev.From.Bare(), From: to.Bare()}
		if !avail {
			p.Type = bridge.Unavailable
		}
		if ev.Type != bridge.Available {
			s.emit(p)
		}
	}
}

// ---------------------------------------------------------------- queries

// HandleQuery answers disco and archive queries about IRC addresses.
func (s *session) HandleQuery(q bridge.Query) {
	reply := func(payload any, err error) {
		res := bridge.IQResult{To: q.From, From: q.To, ID: q.ID}
		if err != nil {
			res.Err = bridge.AsStanzaError(err)
		} else {
			res.Payload = payload
		}
		s.emit(res)
	}
	switch req := q.Request.(type) {
	case *bridge.DiscoInfoQuery:
		reply(s.discoInfo(q.To), nil)
	case *bridge.DiscoItemsQuery:
		switch q.To.Kind {
		case mapping.KindServer:
			s.listRooms(q, req, reply)
		default:
			reply(&bridge.DiscoItems{}, nil)
		}
	case *bridge.ArchiveQuery:
		if q.To.Kind != mapping.KindRoom {
			reply(nil, bridge.Errorf(bridge.ServiceUnavailable, "Only rooms have an archive on this gateway."))
			return
		}
		res, err := s.queryArchive(q.To, req)
		reply(res, err)
	case *bridge.PingQuery:
		reply(nil, s.ping(q.From, q.To))
	default:
		reply(nil, bridge.Errorf(bridge.ServiceUnavailable, "This query is not supported here."))
	}
}

// ping answers a XEP-0199 ping to a room, an occupant or a contact. A ping
// to the user's own occupant JID is XEP-0410 MUC self-ping: it succeeds
// only while this resource is joined under that nick, and not-acceptable
// tells the client to join again (after a restart or a lost connection).
func (s *session) ping(from jid.JID, to mapping.Address) error {
	if to.Kind != mapping.KindRoom && to.Kind != mapping.KindOccupant {
		return nil // contacts and servers: the gateway answers for them
	}
	notJoined := bridge.Errorf(bridge.NotAcceptable, "You are not in %s; join it again.", to.Name)
	n := s.nets[strings.ToLower(to.Network)]
	if n == nil {
		return notJoined
	}
	r := n.rooms[n.fold(to.Name)]
	if r == nil || r.state != rsJoined || !slices.ContainsFunc(r.resources, func(j jid.JID) bool { return j.Equal(from) }) {
		return notJoined
	}
	if to.Kind == mapping.KindRoom || n.fold(to.Resource) == n.fold(r.selfNick) {
		return nil
	}
	if r.members[n.fold(to.Resource)] == nil {
		return bridge.Errorf(bridge.ItemNotFound, "%s is not in %s.", to.Resource, to.Name)
	}
	return nil
}

// discoInfo describes a room, a contact or a server.
func (s *session) discoInfo(to mapping.Address) *bridge.DiscoInfo {
	info := &bridge.DiscoInfo{Features: []string{"http://jabber.org/protocol/disco#info"}}
	switch to.Kind {
	case mapping.KindRoom:
		info.Identities = []bridge.Identity{{Category: "conference", Type: "irc", Name: to.Name}}
		info.Features = append(info.Features,
			"http://jabber.org/protocol/muc",
			"http://jabber.org/protocol/muc#stable_id",
			"muc_open", "muc_public", "muc_persistent", "muc_nonanonymous", "muc_unsecured",
			"urn:xmpp:sid:0", "http://jabber.org/protocol/commands")
		moderated := "muc_unmoderated"
		if n := s.nets[strings.ToLower(to.Network)]; n != nil {
			if r := n.rooms[n.fold(to.Name)]; r != nil && r.moderated {
				moderated = "muc_moderated"
			}
		}
		info.Features = append(info.Features, moderated)
		if s.historyDays(to.Network) > 0 {
			info.Features = append(info.Features, "urn:xmpp:mam:2")
		}
		form := &bridge.Form{Type: "result", Fields: []bridge.FormField{
			{Var: "FORM_TYPE", Type: bridge.FieldHidden, Values: []string{"http://jabber.org/protocol/muc#roominfo"}},
			{Var: "muc#roomconfig_roomname", Label: "Name", Values: []string{to.Name}},
		}}
		if n := s.nets[strings.ToLower(to.Network)]; n != nil {
			if r := n.rooms[n.fold(to.Name)]; r != nil && r.state == rsJoined {
				form.Fields = append(form.Fields,
					bridge.FormField{Var: "muc#roominfo_occupants", Label: "Number of occupants", Values: []string{fmt.Sprint(len(r.members))}},
					bridge.FormField{Var: "muc#roominfo_subject", Label: "Subject", Values: []string{toXMPPText(r.topic)}},
					bridge.FormField{Var: "muc#roominfo_description", Label: "Description", Values: []string{toXMPPText(r.topic)}},
				)
			}
		}
		info.Form = form
	case mapping.KindServer:
		info.Identities = []bridge.Identity{{Category: "conference", Type: "irc", Name: to.Network}}
		info.Features = append(info.Features, "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc",
			"http://jabber.org/protocol/commands", "http://jabber.org/protocol/rsm")
	default:
		info.Identities = []bridge.Identity{{Category: "client", Type: "irc", Name: to.Name}}
	}
	return info
}

// historyDays is the archive retention of a network.
func (s *session) historyDays(network string) int {
	if ni := s.t.networks[strings.ToLower(network)]; ni != nil {
		return ni.limits.historyDays
	}
	return *s.t.cfg.HistoryDays
}

// ---------------------------------------------------------------- helpers

// stanzaID returns the XEP-0359 stanza-id (and archive id) of a message.
// With the archive on: store.NewArchiveID()+"~"+msgid when the server gave
// a msgid, the same for every user of the transport and every later call
// with that msgid while it is recent (so that a +draft/reply reference
// maps to the stanza-id the message had; see msgidIDs), or a new archive
// id without a msgid. With the archive off: the msgid itself, or "".
func (s *session) stanzaID(msgid string, archived bool) string {
	switch {
	case msgid != "" && archived:
		return s.t.archive.ids.id(msgid)
	case msgid != "":
		return msgid
	case archived:
		return store.NewArchiveID()
	}
	return ""
}

// msgidOf undoes stanzaID: the IRC msgid behind a stanza-id the user
// replies to. It also reads the ids handed out before archive ids carried
// a seq (msgid+"~"+tag).
func (s *session) msgidOf(stanzaID string) string {
	if old, ok := strings.CutSuffix(stanzaID, "~"+s.tag); ok {
		return old
	}
	if len(stanzaID) > store.ArchiveIDLen+1 && stanzaID[store.ArchiveIDLen] == '~' {
		if _, ok := store.ArchiveSeq(stanzaID); ok {
			return stanzaID[store.ArchiveIDLen+1:]
		}
	}
	return stanzaID
}

// jitter spreads d by ±20 %.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// timerKind says what a timer is for.
type timerKind int

const (
	tReconnect timerKind = iota
	tRegistration
	tIdle
	tAdmin
	tList
	tReclaim
	tModes
	tRaw
)

// timerEvent is posted by a network's timers.
type timerEvent struct {
	n    *network
	kind timerKind
	gen  int
}

// anyJID is the first of a room's resources, or the bare JID.
func (s *session) anyJID(r *room) jid.JID {
	if r != nil && len(r.resources) > 0 {
		return r.resources[0]
	}
	return s.u.JID().Bare()
}

// queryArchive answers a XEP-0313 query on a room from the store.
func (s *session) queryArchive(room mapping.Address, q *bridge.ArchiveQuery) (*bridge.ArchiveResult, error) {
	days := s.historyDays(room.Network)
	if days == 0 {
		return nil, bridge.Errorf(bridge.FeatureNotImplemented, "This gateway keeps no history of %s.", room.Network)
	}
	room = room.Room()
	sq, firstIndex, err := q.StoreQuery(s.bare, "irc", mapping.PeerKey(room))
	if err != nil {
		return nil, err
	}
	if q.With != "" {
		j, err := jid.Parse(q.With)
		if err != nil {
			return nil, bridge.Errorf(bridge.BadRequest, "%q is not a JID.", q.With)
		}
		sq.With = j.Resourcepart()
	}
	if oldest := time.Now().AddDate(0, 0, -days); sq.Start.Before(oldest) {
		sq.Start = oldest
	}
	ctx, cancel := context.WithTimeout(s.u.Context(), 10*time.Second)
	defer cancel()
	s.t.archive.sync(ctx) // what waits in the batch belongs in the answer
	page, err := s.t.st.QueryArchive(ctx, sq)
	if errors.Is(err, store.ErrNotFound) {
		return nil, bridge.Errorf(bridge.ItemNotFound, "That message is not in the archive of %s.", room.Name)
	}
	if err != nil {
		s.log.Warn("querying the room archive failed", "room", room.Name, "err", err)
		return nil, bridge.Errorf(bridge.InternalServerError, "The archive could not be read; the administrator can find the reason in the log.")
	}
	return bridge.ArchiveResultOf(q, page, firstIndex, func(e store.ArchiveEntry) bridge.Message { return archivedMessage(room, e) }), nil
}
