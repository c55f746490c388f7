package sms

import (
	"context"
	"errors"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

// Team inboxes: a number with several owners is a shared inbox, and each
// conversation with a remote number is a MUC room
// "+12025550123%sales@sms.example.org" whose occupants are the members
// (nick: the local part of their JID) and the remote number (nick: the
// number). Inbound texts go to every member's joined resources, a reply
// from the room is sent from the inbox's number and shown to every member
// under the replier's nick, and each member's archive keeps the
// conversation (history on join, XEP-0313).

const roomHistory = 20

func (s *session) join(ev bridge.JoinRoom) {
	room := ev.Room.Room()
	fail := func(e *bridge.StanzaError) {
		s.emit(bridge.DeliveryError{To: ev.From, From: ev.Room, Kind: "presence", ID: ev.ID, Err: e})
	}
	n := s.t.nums.inbox(room.Network)
	switch {
	case n == nil:
		fail(bridge.Errorf(bridge.ItemNotFound, "There is no team inbox %q on this gateway.", room.Network))
		return
	case !n.hasOwner(s.bare):
		fail(bridge.Errorf(bridge.RegistrationRequired, "Only the members of the team inbox %s may join its rooms.", n.inbox))
		return
	}
	key := mapping.PeerKey(room)
	r := s.rooms[key]
	if r == nil {
		r = &joined{addr: room, resources: map[string]jid.JID{}}
		s.rooms[key] = r
	}
	if _, already := r.resources[ev.From.String()]; already && !ev.MUC {
		return // a presence update
	}
	r.resources[ev.From.String()] = ev.From
	nick := nickOf(s.bare)
	occ := []bridge.Occupant{{Nick: room.Name, Role: "participant", Affiliation: "none"}}
	for _, o := range n.owners {
		if o != s.bare {
			occ = append(occ, bridge.Occupant{Nick: nickOf(o), Role: "participant", Affiliation: "member", RealJID: o})
		}
	}
	res := bridge.RoomJoined{
		To: ev.From, Room: room, Occupants: occ,
		Self:        bridge.Occupant{Nick: nick, Role: "participant", Affiliation: "member", RealJID: s.bare},
		NickChanged: ev.Room.Resource != nick,
		Subject:     "Texts with " + room.Name + " through the team inbox " + n.inbox + " (" + n.e164 + ")",
	}
	if ev.History == nil || ev.History.MaxStanzas == nil || *ev.History.MaxStanzas > 0 {
		res.History = s.history(room)
	}
	s.emit(res)
}

func (s *session) leave(from jid.JID, room mapping.Address) {
	key := mapping.PeerKey(room.Room())
	r := s.rooms[key]
	if r == nil {
		return
	}
	delete(r.resources, from.String())
	s.emit(bridge.OccupantChanged{To: from, Room: r.addr, Occupant: bridge.Occupant{Nick: nickOf(s.bare), Role: "none", Affiliation: "member"}, Self: true, Gone: true})
	if len(r.resources) == 0 {
		delete(s.rooms, key)
	}
}

func (s *session) history(room mapping.Address) []bridge.Message {
	if *s.t.cfg.HistoryDays == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.u.Context(), 5*time.Second)
	defer cancel()
	page, err := s.t.st.QueryArchive(ctx, store.ArchiveQuery{User: s.bare, Transport: Name, Peer: mapping.PeerKey(room), Before: true, Limit: roomHistory})
	if err != nil {
		s.log.Warn("reading room history failed", "err", err)
		return nil
	}
	var out []bridge.Message
	for _, e := range page.Entries {
		out = append(out, archivedMessage(room, e))
	}
	return out
}

func archivedMessage(room mapping.Address, e store.ArchiveEntry) bridge.Message {
	m := bridge.Message{From: room.Occupant(e.Nick), Type: bridge.Groupchat, StanzaID: e.ID, Body: e.Body, Time: e.Time, Delayed: true}
	if e.Outgoing {
		m.ID = e.OriginID
	}
	return m
}

// deliverRoom shows a message in the room to the user's joined resources.
func (s *session) deliverRoom(room mapping.Address, m bridge.Message) {
	r := s.rooms[mapping.PeerKey(room)]
	if r == nil {
		return
	}
	for _, res := range r.resources {
		m.To = res
		s.emit(m)
	}
}

// deliverTeam gives one inbound text to one member of a team inbox (on the
// member's goroutine); the channel is closed once it was emitted.
func (t *Transport) deliverTeam(ctx context.Context, n *number, member jid.JID, in inboundText, msgs []bridge.Message, entries []store.ArchiveEntry) (chan struct{}, error) {
	room, err := t.codec.InboxRoom(in.From, n.inbox)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	err = t.gw.Do(ctx, Name, member, func(u *bridge.User, sess bridge.Session) {
		defer close(done)
		s, ok := sess.(*session)
		if !ok {
			return
		}
		joined := s.rooms[mapping.PeerKey(room)] != nil
		for i, m := range msgs {
			if !joined {
				// Not in the room: a normal message from the room (kept by
				// the server's offline storage), so the text is not missed;
				// joining shows it in the history.
				m.To = u.JID()
				m.From = room
				m.Type = bridge.Normal
				m.Body = "Text from " + in.From + " to " + n.inbox + ": " + m.Body + "\n(Join " + n.inbox + "'s room for " + in.From + " to answer.)"
				s.emit(m)
				continue
			}
			m.From = room.Occupant(in.From)
			m.Type = bridge.Groupchat
			if i < len(entries) {
				m.StanzaID = entries[i].ID
			}
			s.deliverRoom(room, m)
		}
	})
	if err != nil {
		return nil, err
	}
	return done, nil
}

// reflect shows a reply sent from a team inbox room to every member under
// the replier's nick (the sender's resources get it with their own id),
// and archives it for each.
func (t *Transport) reflect(ctx context.Context, s *session, n *number, ev bridge.SendMessage, body string) {
	room := ev.To.Room()
	nick := nickOf(s.bare)
	var entries []store.ArchiveEntry
	for _, o := range n.owners {
		id := store.NewArchiveID()
		entries = append(entries, store.ArchiveEntry{ID: id, User: o, Transport: Name, Peer: mapping.PeerKey(room), Nick: nick, Outgoing: true, Body: body, OriginID: ev.ID})
		m := bridge.Message{From: room.Occupant(nick), Type: bridge.Groupchat, ID: ev.ID, StanzaID: id, Body: ev.Body, OriginID: ev.OriginID, Attachments: ev.Attachments}
		if o == s.bare {
			s.deliverRoom(room, m)
			continue
		}
		oj, err := jid.Parse(o)
		if err != nil {
			continue
		}
		err = t.gw.Do(ctx, Name, oj, func(u *bridge.User, sess bridge.Session) {
			if s, ok := sess.(*session); ok {
				s.deliverRoom(room, m)
			}
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			t.log.Warn("a team inbox reply could not be shown to a member", "member", o, "err", err)
		}
	}
	if *t.cfg.HistoryDays > 0 {
		if err := t.st.AppendArchive(ctx, entries); err != nil {
			t.log.Warn("archiving a team inbox reply failed", "err", err)
		}
	}
}
