package irc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

// stateBouncerRooms is the store.State key under which a user's bouncer
// rooms are kept, so that they are joined again after a gateway restart.
const stateBouncerRooms = "bouncer_rooms"

// bouncerRoom is one channel kept joined for a user.
type bouncerRoom struct {
	Network string `json:"network"`
	Channel string `json:"channel"`
}

// saveBouncerRooms records the rooms kept joined without XMPP resources
// (bouncer mode), when they changed.
func (s *session) saveBouncerRooms() {
	var rooms []bouncerRoom
	for _, n := range s.nets {
		for _, r := range n.rooms {
			if n.keepRoom(r) {
				rooms = append(rooms, bouncerRoom{Network: n.name, Channel: r.name})
			}
		}
	}
	sort.Slice(rooms, func(i, j int) bool {
		if rooms[i].Network != rooms[j].Network {
			return rooms[i].Network < rooms[j].Network
		}
		return rooms[i].Channel < rooms[j].Channel
	})
	b, _ := json.Marshal(rooms)
	if string(b) == s.savedBouncer || s.savedBouncer == "" && len(rooms) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.t.st.PutState(ctx, s.bare, "irc", stateBouncerRooms, b); err != nil {
		s.log.Warn("saving the bouncer rooms failed", "err", err)
		return
	}
	s.savedBouncer = string(b)
}

// restore joins the saved bouncer rooms (after a gateway restart).
func (s *session) restore(rooms []bouncerRoom) {
	for _, br := range rooms {
		addr, err := s.t.codec.Room(br.Network, br.Channel)
		if err != nil {
			continue
		}
		n, err := s.network(addr, true, "")
		if err != nil {
			s.log.Warn("restoring a bouncer room failed", "room", br.Channel, "network", br.Network, "err", err)
			continue
		}
		k := n.fold(br.Channel)
		if n.rooms[k] != nil {
			continue
		}
		r := &room{addr: addr, name: br.Channel, key: k, bouncer: s.settings().bouncerChannel(n.key, mapping.RFC1459.Fold(br.Channel))}
		n.rooms[k] = r
		if n.state == stRegistered {
			n.sendJoins([]*room{r})
		}
		n.ensureConnected()
	}
	s.savedBouncer = ""
	s.saveBouncerRooms()
}

// RestoreBouncers reconnects, after the gateway started, every user who
// kept channels in bouncer mode, so that they are joined (and archived)
// before the user comes back. Run calls it at start when the transport
// was built with a gateway (Plugin); connects are paced per server like
// any others.
func (t *Transport) RestoreBouncers(ctx context.Context, gw *bridge.Gateway) error {
	accts, err := t.st.ListAccounts(ctx, "irc")
	if err != nil {
		return fmt.Errorf("listing the IRC accounts: %w", err)
	}
	restored := 0
	for _, a := range accts {
		b, err := t.st.GetState(ctx, a.User, "irc", stateBouncerRooms)
		if errors.Is(err, store.ErrNotFound) || err == nil && len(b) == 0 {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading the bouncer rooms of %s: %w", a.User, err)
		}
		var rooms []bouncerRoom
		if err := json.Unmarshal(b, &rooms); err != nil || len(rooms) == 0 {
			continue
		}
		from, err := jid.Parse(a.User)
		if err != nil {
			continue
		}
		err = gw.Do(ctx, "irc", from, func(_ *bridge.User, s bridge.Session) {
			if s, ok := s.(*session); ok {
				s.restore(rooms)
			}
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t.log.Warn("could not restore a user's bouncer connections", "user", a.User, "err", err)
			continue
		}
		restored++
	}
	if restored > 0 {
		t.log.Info("restored bouncer connections", "users", restored)
	}
	return nil
}
