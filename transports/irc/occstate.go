package irc

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/store"
)

// A gateway killed (-9) or crashed leaves its users' clients believing
// they are still in their rooms: nobody tells them otherwise until a
// XEP-0410 self-ping happens to fail. So every session records, in the
// store, which of the user's full JIDs are in which rooms (state key
// "occupants", with an index of the users that have some under the
// component domain), and after a restart, once the component link is up,
// each of them gets an unavailable self-presence with status 332 and a
// sentence, so that clients join again at once. A clean stop tells them
// itself (Close) and leaves nothing recorded.

const (
	stateOccupants     = "occupants"
	stateOccupantUsers = "occupant_users" // stored under the component domain
)

// savedOccupant is one full JID in one room.
type savedOccupant struct {
	Network string `json:"network"`
	Channel string `json:"channel"`
	Nick    string `json:"nick"`
	JID     string `json:"jid"`
}

// changesOwnRooms reports whether an IRC line may change the session's
// occupants: our own PART or NICK, a KICK of us, ERROR. (A join's
// completion records itself in sendRoomJoined; the JOINs, PARTs and
// QUITs of other members, which a big channel brings by the thousand,
// change nothing here.)
func (n *network) changesOwnRooms(m *ircmsg.Message) bool {
	switch m.Command {
	case "PART", "NICK":
		return n.isMe(sourceNick(m))
	case "KICK":
		return len(m.Params) > 1 && n.isMe(m.Params[1])
	case "ERROR":
		return true
	}
	return false
}

// saveOccupants records the session's occupants when they changed.
func (s *session) saveOccupants() {
	var occ []savedOccupant
	for _, n := range s.nets {
		for _, r := range n.rooms {
			for _, res := range r.resources {
				occ = append(occ, savedOccupant{Network: n.name, Channel: r.name, Nick: r.selfNick, JID: res.String()})
			}
		}
	}
	sort.Slice(occ, func(i, j int) bool {
		a, b := occ[i], occ[j]
		if a.Network != b.Network {
			return a.Network < b.Network
		}
		if a.Channel != b.Channel {
			return a.Channel < b.Channel
		}
		return a.JID < b.JID
	})
	var b []byte
	if len(occ) > 0 {
		b, _ = json.Marshal(occ)
	}
	if string(b) == s.savedOcc {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.t.st.PutState(ctx, s.bare, "irc", stateOccupants, b); err != nil {
		s.log.Warn("saving the user's occupants failed", "err", err)
		return
	}
	if (s.savedOcc == "") != (len(b) == 0) {
		s.t.indexOccupants(ctx, s.bare, len(b) > 0)
	}
	s.savedOcc = string(b)
}

// indexOccupants adds the user to (or removes them from) the list of
// users with recorded occupants.
func (t *Transport) indexOccupants(ctx context.Context, bare string, has bool) {
	t.occMu.Lock()
	defer t.occMu.Unlock()
	users, err := t.occupantUsers(ctx)
	if err != nil {
		t.log.Warn("reading the list of users in rooms failed", "err", err)
		return
	}
	if users[bare] == has {
		return
	}
	if has {
		users[bare] = true
	} else {
		delete(users, bare)
	}
	if err := t.putOccupantUsers(ctx, users); err != nil {
		t.log.Warn("saving the list of users in rooms failed", "err", err)
	}
}

// occupantUsers returns the index (t.occMu held), read from the store
// once and then kept in memory.
func (t *Transport) occupantUsers(ctx context.Context) (map[string]bool, error) {
	if t.occUsers != nil {
		return t.occUsers, nil
	}
	users, err := t.readOccupantUsers(ctx)
	if err == nil {
		t.occUsers = users
	}
	return users, err
}

// readOccupantUsers reads the index from the store.
func (t *Transport) readOccupantUsers(ctx context.Context) (map[string]bool, error) {
	users := map[string]bool{}
	b, err := t.st.GetState(ctx, t.codec.Domain(), "irc", stateOccupantUsers)
	if errors.Is(err, store.ErrNotFound) || err == nil && len(b) == 0 {
		return users, nil
	}
	if err != nil {
		return nil, err
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return users, nil // unreadable: start over
	}
	for _, u := range list {
		users[u] = true
	}
	return users, nil
}

// putOccupantUsers writes the index (t.occMu held).
func (t *Transport) putOccupantUsers(ctx context.Context, users map[string]bool) error {
	list := make([]string, 0, len(users))
	for u := range users {
		list = append(list, u)
	}
	sort.Strings(list)
	var b []byte
	if len(list) > 0 {
		b, _ = json.Marshal(list)
	}
	return t.st.PutState(ctx, t.codec.Domain(), "irc", stateOccupantUsers, b)
}

// staleOccupants is what the store held at start: the occupants of the
// previous run, which ended without telling them (a clean stop leaves
// none).
type staleOccupants struct {
	users map[string][]byte // bare JID → the state as read
}

// loadStaleOccupants reads the previous run's occupants (at start, before
// any session runs).
func (t *Transport) loadStaleOccupants(ctx context.Context) (*staleOccupants, error) {
	t.occMu.Lock()
	users, err := t.occupantUsers(ctx)
	t.occMu.Unlock()
	if err != nil {
		return nil, err
	}
	st := &staleOccupants{users: map[string][]byte{}}
	for u := range users {
		b, err := t.st.GetState(ctx, u, "irc", stateOccupants)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		st.users[u] = b
	}
	return st, nil
}

// tellStaleOccupants sends each recorded full JID an unavailable
// self-presence (332, with a sentence), waits until the XMPP server has
// them, and forgets the records that no new session rewrote meanwhile.
func (t *Transport) tellStaleOccupants(ctx context.Context, st *staleOccupants) {
	const reason = "The gateway restarted after an interruption; you are no longer in this room. Join it again."
	told := 0
	for _, b := range st.users {
		var occ []savedOccupant
		if len(b) == 0 || json.Unmarshal(b, &occ) != nil {
			continue
		}
		for _, o := range occ {
			to, err := jid.Parse(o.JID)
			if err != nil {
				continue
			}
			addr, err := t.codec.Room(o.Network, o.Channel)
			if err != nil {
				continue
			}
			nick := o.Nick
			if nick == "" {
				nick = defaultNick(to.Localpart())
			}
			ev := bridge.OccupantChanged{To: to, Room: addr, Self: true, Gone: true, Reason: reason, Codes: []int{332},
				Occupant: bridge.Occupant{Nick: nick, Role: "none", Affiliation: "none", Status: reason}}
			if err := t.gw.Emit(ctx, "irc", ev); err != nil {
				t.log.Warn("telling a user of the restart failed", "to", o.JID, "err", err)
				return // kept for the next link-up
			}
			told++
		}
	}
	if err := t.gw.Sync(ctx, "irc"); err != nil && !errors.Is(err, bridge.ErrNoSync) {
		t.log.Warn("the XMPP server did not confirm the restart notices; they will be sent again", "err", err)
		return
	}
	t.occMu.Lock()
	defer t.occMu.Unlock()
	users, err := t.occupantUsers(ctx)
	if err != nil {
		t.log.Warn("reading the list of users in rooms failed", "err", err)
		return
	}
	for u, old := range st.users {
		cur, err := t.st.GetState(ctx, u, "irc", stateOccupants)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			continue
		}
		if string(cur) != string(old) {
			continue // a new session of this user recorded its own
		}
		if len(cur) > 0 {
			if err := t.st.PutState(ctx, u, "irc", stateOccupants, nil); err != nil {
				continue
			}
		}
		delete(users, u)
	}
	if err := t.putOccupantUsers(ctx, users); err != nil {
		t.log.Warn("saving the list of users in rooms failed", "err", err)
	}
	st.users = nil
	if told > 0 {
		t.log.Info("told the users' clients that they are out of their rooms after the restart", "resources", told)
	}
}
