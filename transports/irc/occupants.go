package irc

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
)

// After the XMPP server restarted (killed, crashed), every user session it
// had is gone, but nobody told the gateway: without a check, the user's
// IRC connection would stay in its channels for ever (a ghost), and a
// later leave from a new resource would not PART because the old one
// still counts. So when the component link comes up, each occupant's
// resource is pinged (XEP-0199); a resource that answers with an error,
// or whose messages or presence bounce (XEP-0045: a delivery error from
// an occupant's full JID is that occupant leaving), is taken out of its
// rooms, and a room without resources is left on IRC (unless it is kept
// in bouncer mode).

// occupantCheckDelay is how long after the link came up the resources are
// pinged: clients that reconnect to the restarted server with the same
// resource and join again are seen as present by then.
const occupantCheckDelay = 3 * time.Second

// pingTimeoutOccupant bounds how long a ping answer is waited for; a ping
// without answer leaves the resource where it is.
const pingTimeoutOccupant = 60 * time.Second

// pingReq is a ping sent to an occupant's resource.
type pingReq struct {
	to   jid.JID
	sent time.Time
}

// LinkUp implements bridge.LinkObserver: the occupants are checked a
// moment later, on Run's goroutine.
func (t *Transport) LinkUp() {
	select {
	case t.linkUp <- struct{}{}:
	default:
	}
}

// checkOccupantsLoop tells, at the first link-up, the occupants the
// previous run left (occstate.go), and pings, after each later link-up
// (the XMPP server may have restarted), the occupants of every running
// session.
func (t *Transport) checkOccupantsLoop(ctx context.Context) {
	ups := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.linkUp:
		}
		if t.stale != nil && len(t.stale.users) > 0 {
			t.tellStaleOccupants(ctx, t.stale)
		}
		ups++
		if ups == 1 {
			continue // the first link of this run: nobody joined before it
		}
		timer := time.NewTimer(occupantCheckDelay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		for _, u := range t.gw.Users("irc") {
			j, err := jid.Parse(u.JID)
			if err != nil {
				continue
			}
			err = t.gw.Do(ctx, "irc", j, func(_ *bridge.User, s bridge.Session) {
				if s, ok := s.(*session); ok {
					s.pingOccupants()
				}
			})
			if err != nil && ctx.Err() != nil {
				return
			}
		}
	}
}

// pingOccupants pings every resource the session has in a room.
func (s *session) pingOccupants() {
	if s.closed {
		return
	}
	now := time.Now()
	for id, p := range s.pings {
		if now.Sub(p.sent) > pingTimeoutOccupant {
			delete(s.pings, id)
		}
	}
	seen := map[string]bool{}
	for _, n := range s.nets {
		for _, r := range n.rooms {
			for _, res := range r.resources {
				if seen[res.String()] {
					continue
				}
				seen[res.String()] = true
				if s.pings == nil {
					s.pings = map[string]pingReq{}
				}
				s.pingSeq++
				id := "sb-occ-" + strconv.Itoa(s.pingSeq)
				s.pings[id] = pingReq{to: res, sent: now}
				s.emit(bridge.Ping{To: res, From: r.addr.Occupant(r.selfNick), ID: id})
			}
		}
	}
	if len(seen) > 0 {
		s.log.Info("the XMPP server link came up: checking that the users' resources in rooms are still there", "resources", len(seen))
	}
}

// onReply handles the answer to a ping, or an error stanza a resource
// sent to a room or occupant.
func (s *session) onReply(ev bridge.StanzaReply) {
	if ev.Kind == "iq" {
		p, ok := s.pings[ev.ID]
		if !ok || !p.to.Equal(ev.From) {
			return // not ours: an IQ error to a room answers nothing here
		}
		delete(s.pings, ev.ID)
		if ev.Type != "error" || !goneCondition(ev.Condition) {
			return // there (a client that does not answer pings says so itself)
		}
		s.log.Info("a resource in rooms no longer answers; taking it out of them", "resource", ev.From.String(), "condition", ev.Condition)
		s.dropResource(ev.From, nil, "Your client did not answer the gateway after the XMPP server restarted ("+ev.Condition+"); join the room again.")
		return
	}
	if ev.Type != "error" {
		return
	}
	// A message or presence to the resource bounced: it left the room.
	s.log.Info("a stanza to a resource in a room bounced; taking it out of the room", "resource", ev.From.String(), "room", ev.To.Name, "network", ev.To.Network, "condition", ev.Condition)
	room := ev.To.Room()
	s.dropResource(ev.From, &room, "A message to your client bounced ("+ev.Condition+"); join the room again.")
}

// goneCondition reports whether an error answering a ping to a full JID
// says the resource is not there (the server answers for a resource that
// is gone; a client that is there answers a ping with a result, or with
// feature-not-implemented when it does not do XEP-0199).
func goneCondition(cond string) bool {
	switch cond {
	case "feature-not-implemented", "not-allowed", "forbidden", "bad-request", "resource-constraint", "policy-violation":
		return false
	}
	return true
}

// dropResource takes res out of every room (of the room only, when only
// is not nil), telling it why (it may still be there, with a client that
// has forgotten the room), and leaves on IRC the rooms left without
// resources, unless they are kept (bouncer).
func (s *session) dropResource(res jid.JID, only *mapping.Address, reason string) {
	for _, n := range s.nets {
		changed := false
		for _, r := range n.rooms {
			if only != nil && (!strings.EqualFold(only.Network, n.name) || n.fold(only.Name) != r.key) {
				continue
			}
			if !r.has(res) {
				continue
			}
			changed = true
			r.remove(res)
			self := n.occupant(r, r.selfNick)
			self.Role, self.Show, self.Status = "none", "", reason
			s.emit(bridge.OccupantChanged{To: res, Room: r.addr, Occupant: self, Self: true, Gone: true, Reason: reason, Codes: []int{333}})
			if len(r.resources) == 0 && len(r.waiting) == 0 && !n.keepRoom(r) {
				if n.state == stRegistered {
					n.send(ircmsg.MakeMessage(nil, "", "PART", r.name))
				}
				delete(n.rooms, r.key)
			}
		}
		if !changed {
			continue
		}
		if len(n.rooms) == 0 {
			n.lastActivity = time.Time{}
		}
		n.maybeQuit()
	}
}
