package sms

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

// Account fields.
const (
	fieldNumber   = "number"    // a number assigned by command or picked from the pool
	fieldSegments = "segments"  // "silent", "tell", "ask"
	fieldAskAbove = "ask_above" // with "ask": confirm texts above this many segments
	fieldReacts   = "reactions" // "1": send XEP-0444 reactions as short texts
)

// pendingTTL is how long a text waiting for "yes" (segments mode "ask")
// is kept.
const pendingTTL = 5 * time.Minute

// session is one user's SMS state, owned by the user's goroutine.
type session struct {
	t    *Transport
	u    *bridge.User
	bare string
	log  interface {
		Info(string, ...any)
		Warn(string, ...any)
	}
	// rooms are the team inbox rooms the user's resources joined, by peer
	// key ("+12025550123%sales").
	rooms map[string]*joined
	// pending are texts waiting for the user's "yes", by peer key.
	pending map[string]pendingText
	closed  bool
}

type joined struct {
	addr      mapping.Address
	resources map[string]jid.JID
}

type pendingText struct {
	ev   bridge.SendMessage
	segs Segments
	at   time.Time
}

func newSession(t *Transport, u *bridge.User) *session {
	return &session{t: t, u: u, bare: u.JID().String(), log: u.Log(), rooms: map[string]*joined{}, pending: map[string]pendingText{}}
}

func (s *session) emit(ev bridge.Outbound) { _ = s.u.Emit(ev) }

func (s *session) field(k string) string {
	if a := s.u.Account(); a != nil {
		return a.Fields[k]
	}
	return ""
}

// HandleInbound handles an event from the user's client.
func (s *session) HandleInbound(ev bridge.Inbound) {
	if s.closed {
		return
	}
	switch ev := ev.(type) {
	case bridge.SendMessage:
		s.sendMessage(ev)
	case bridge.JoinRoom:
		s.join(ev)
	case bridge.LeaveRoom:
		s.leave(ev.From, ev.Room)
	case bridge.UserPresence:
		if ev.Type == bridge.Unavailable {
			for key, r := range s.rooms {
				delete(r.resources, ev.From.String())
				if len(r.resources) == 0 {
					delete(s.rooms, key)
				}
			}
		}
	}
}

// HandleNetwork is unused: the SMS transport has no per-user connection.
func (s *session) HandleNetwork(any) {}

// Status lists the user's numbers and today's use.
func (s *session) Status() []string {
	var out []string
	if n := s.t.nums.ofUser(s.bare); n != nil {
		out = append(out, "Your number: "+n.e164+".")
	} else {
		out = append(out, "You have no number of your own on this gateway.")
	}
	for _, n := range s.t.nums.inboxesOf(s.bare) {
		out = append(out, fmt.Sprintf("Team inbox %s: %s.", n.inbox, n.e164))
	}
	ctx, cancel := context.WithTimeout(s.u.Context(), 5*time.Second)
	defer cancel()
	if d, err := s.t.usage.today(ctx, s.bare); err == nil {
		out = append(out, fmt.Sprintf("Today: %d texts, %d segments (limits: %s, %s).", d.Messages, d.Segments,
			limitText(*s.t.cfg.DailyMessages), limitText(*s.t.cfg.DailySegments)))
	}
	return out
}

func limitText(n int) string {
	if n == 0 {
		return "none"
	}
	return strconv.Itoa(n)
}

// Idle: nothing to keep once no room is joined and nothing waits for "yes".
func (s *session) Idle() bool { return len(s.rooms) == 0 && len(s.pending) == 0 }

// Close leaves every room.
func (s *session) Close(reason string) {
	if s.closed {
		return
	}
	s.closed = true
	if reason == "" {
		return
	}
	for _, r := range s.rooms {
		for _, res := range r.resources {
			s.emit(bridge.OccupantChanged{To: res, Room: r.addr, Occupant: bridge.Occupant{Nick: nickOf(s.bare), Role: "none", Affiliation: "member"},
				Self: true, Gone: true, Reason: reason, Codes: []int{332}})
		}
	}
}

// nickOf is a member's nick in team inbox rooms: the local part of their
// JID, so that everyone sees who replied.
func nickOf(bare string) string {
	if j, err := jid.Parse(bare); err == nil && j.Localpart() != "" {
		return j.Localpart()
	}
	return bare
}

// ---------------------------------------------------------------- sending

func (s *session) sendMessage(ev bridge.SendMessage) {
	fail := func(err error) {
		s.emit(bridge.DeliveryError{To: ev.From, From: ev.To, Kind: "message", ID: ev.ID, Err: bridge.AsStanzaError(err)})
	}
	if ev.Reactions != nil {
		var ok bool
		if ev, ok = s.reactionText(ev, fail); !ok {
			return
		}
	}
	if ev.Body == "" && len(ev.Attachments) == 0 {
		return // a chat state or a bare receipt: nothing to text
	}
	if ev.ReplaceID != "" {
		fail(bridge.Errorf(bridge.NotAcceptable, "A text cannot be corrected once sent; send the correction as a new message."))
		return
	}
	switch ev.To.Kind {
	case mapping.KindContact:
		n := s.t.nums.ofUser(s.bare)
		if n == nil {
			fail(bridge.Errorf(bridge.NotAllowed, "You have no phone number on this gateway: pick one when you register, or ask the administrator for one."))
			return
		}
		s.confirmOrSend(ev, n, fail)
	case mapping.KindRoom:
		n := s.t.nums.inbox(ev.To.Network)
		if n == nil {
			fail(bridge.Errorf(bridge.ItemNotFound, "There is no team inbox %q on this gateway.", ev.To.Network))
			return
		}
		if !n.hasOwner(s.bare) {
			fail(bridge.Errorf(bridge.Forbidden, "You are not a member of the team inbox %s.", n.inbox))
			return
		}
		if ev.Subject != nil {
			fail(bridge.Errorf(bridge.Forbidden, "Team inbox rooms have no subject to set."))
			return
		}
		s.confirmOrSend(ev, n, fail)
	case mapping.KindOccupant:
		fail(bridge.Errorf(bridge.FeatureNotImplemented, "Private messages in a team inbox room are not supported: write in the room, or to the member directly."))
	default:
		fail(bridge.Errorf(bridge.ServiceUnavailable, "Texts go to phone numbers, such as +12025550123@%s.", s.t.codec.Domain()))
	}
}

func (n *number) hasOwner(bare string) bool {
	for _, o := range n.owners {
		if o == bare {
			return true
		}
	}
	return false
}

// confirmOrSend applies the user's segment setting: silent, tell after
// sending, or ask before sending above N segments.
func (s *session) confirmOrSend(ev bridge.SendMessage, n *number, fail func(error)) {
	key := mapping.PeerKey(ev.To)
	if p, ok := s.pending[key]; ok {
		delete(s.pending, key)
		if answer := strings.ToLower(strings.TrimSpace(ev.Body)); time.Since(p.at) < pendingTTL && (answer == "yes" || answer == "y") {
			p.ev.From = ev.From
			s.send(p.ev, n, p.segs, func(err error) {
				s.emit(bridge.DeliveryError{To: ev.From, From: p.ev.To, Kind: "message", ID: p.ev.ID, Err: bridge.AsStanzaError(err)})
			})
			return
		}
		s.notice(ev.From, ev.To, "The long text was not sent.")
		if answer := strings.ToLower(strings.TrimSpace(ev.Body)); answer == "no" || answer == "n" {
			return
		}
	}
	segs := CountSegments(ev.Body)
	if s.field(fieldSegments) == "ask" {
		above, err := strconv.Atoi(s.field(fieldAskAbove))
		if err != nil || above < 1 {
			above = 1
		}
		if segs.Count > above && !(s.t.cfg.MaxSegments != nil && *s.t.cfg.MaxSegments > 0 && segs.Count > *s.t.cfg.MaxSegments) {
			s.pending[key] = pendingText{ev: ev, segs: segs, at: time.Now()}
			s.notice(ev.From, ev.To, fmt.Sprintf("This text would be sent as %d segments (%s, %d characters), each billed. Reply \"yes\" within 5 minutes to send it; anything else cancels it.", segs.Count, segs.Encoding, segs.Units))
			return
		}
	}
	s.send(ev, n, segs, fail)
}

// notice tells the user something from the contact or room, as a message
// that is not a text.
func (s *session) notice(to jid.JID, from mapping.Address, text string) {
	typ := bridge.Chat
	if from.Kind == mapping.KindRoom {
		typ = bridge.Groupchat
	}
	s.emit(bridge.Message{To: to, From: from, Type: typ, Body: text, Notice: true})
}

// send checks the limits, counts the text, queues it durably, and in a
// team inbox room reflects it to every member.
func (s *session) send(ev bridge.SendMessage, n *number, segs Segments, fail func(error)) {
	to := ev.To.Name
	if max := *s.t.cfg.MaxSegments; max > 0 && segs.Count > max {
		fail(bridge.Errorf(bridge.NotAcceptable, "This text would be %d segments (%s: %d characters); the limit is %d (max_segments). Shorten it or split it.", segs.Count, segs.Encoding, segs.Units, max))
		return
	}
	if len(ev.Attachments) > MaxMedia {
		fail(bridge.Errorf(bridge.NotAcceptable, "An MMS carries at most %d attachments; this message has %d.", MaxMedia, len(ev.Attachments)))
		return
	}
	var media []string
	var size int64
	for _, a := range ev.Attachments {
		if !strings.HasPrefix(a.URL, "https://") && !strings.HasPrefix(a.URL, "http://") {
			fail(bridge.Errorf(bridge.NotAcceptable, "The attachment %q is not an http(s) URL Twilio can fetch.", a.URL))
			return
		}
		media = append(media, a.URL)
		size += a.Size
	}
	if size > s.t.cfg.MaxMediaBytes {
		fail(bridge.Errorf(bridge.NotAcceptable, "The attachments are %d bytes together; an MMS carries at most %d bytes (max_media_bytes).", size, s.t.cfg.MaxMediaBytes))
		return
	}
	body := ev.Body
	if len(media) > 0 && len(ev.Attachments) == 1 && body == ev.Attachments[0].URL {
		body = "" // the client put the URL in the body as its fallback
	}
	segs = CountSegments(body)
	bill := max(1, segs.Count)
	// One write on the user's goroutine: what the gateway has read from
	// XMPP and not yet stored is lost if it is killed (the component
	// protocol has no acknowledgements), so the quotas are counted and the
	// archive written by the sender, from the stored copy.
	ctx, cancel := context.WithTimeout(s.u.Context(), 10*time.Second)
	defer cancel()
	p := outboundText{To: to, Body: body, Media: media, Segments: bill, Resource: ev.From.String()}
	if s.t.cfg.MessagingServiceSID == "" {
		p.From = n.e164
	}
	if n.team() {
		p.Inbox, p.Nick = n.inbox, nickOf(s.bare)
	}
	payload, _ := json.Marshal(p)
	it := &store.QueueItem{Transport: queueOut, User: s.bare, Peer: mapping.PeerKey(ev.To), StanzaID: ev.ID, Payload: payload}
	if err := s.t.st.Enqueue(ctx, it); err != nil {
		s.log.Warn("queueing a text failed", "err", err)
		fail(bridge.Errorf(bridge.InternalServerError, "The gateway could not store the text; it was not sent."))
		return
	}
	poke(s.t.wakeOut)
	if n.team() {
		s.t.reflect(ctx, s, n, ev, body)
	}
	if s.field(fieldSegments) == "tell" {
		s.notice(ev.From, ev.To, fmt.Sprintf("Sent as %d segment(s), %s.", bill, segs.Encoding))
	}
}
