package component

import (
	"strconv"
	"time"

	"switchboard/bridge"
	"switchboard/mapping"
)

// handlePresence routes presence: MUC joins and leaves, presence to the
// gateway (answered by the link for subscriptions and probes), presence to
// contacts and servers (to the transport).
func (l *Link) handlePresence(s *stanza) {
	typ := bridge.PresenceType(s.typ)
	show, _ := s.t.childText(s.n, "", "show")
	status, _ := s.t.childText(s.n, "", "status")
	switch show {
	case "away", "chat", "dnd", "xa":
	default:
		show = ""
	}
	if typ == bridge.Unavailable && s.addr.Kind != mapping.KindOccupant && s.addr.Kind != mapping.KindRoom {
		// The resource went offline (leaving a room is not that): its
		// command sessions end.
		l.endCommandSessions(s.from.String())
	}
	switch s.addr.Kind {
	case mapping.KindOccupant:
		switch typ {
		case bridge.Available:
			l.join(s, show, status)
		case bridge.Unavailable:
			l.dispatch(s, bridge.LeaveRoom{From: s.from, Room: s.addr.Room(), Status: status, ID: s.id})
		default:
			l.log.Debug("ignoring presence to an occupant", "type", s.typ, "from", s.fromRaw, "to", s.toRaw)
		}
	case mapping.KindRoom:
		switch typ {
		case bridge.Available:
			l.replyErr(s, bridge.Errorf(bridge.JIDMalformed, "Add a nickname to the room address to join it (room@domain/nick)."), "")
		case bridge.Unavailable:
			l.dispatch(s, bridge.LeaveRoom{From: s.from, Room: s.addr, Status: status, ID: s.id})
		default:
			l.log.Debug("ignoring presence to a room", "type", s.typ, "from", s.fromRaw, "to", s.toRaw)
		}
	case mapping.KindGateway:
		l.gatewayPresence(s, typ, show, status)
	default:
		// Contacts and servers: the transport decides, subscriptions
		// included (it answers with ContactPresence subscribed, or not).
		l.dispatch(s, bridge.UserPresence{From: s.from, To: s.addr, Type: typ, Show: show, Status: status})
	}
}

// join parses a MUC join (XEP-0045 §7.2) or an in-room presence update.
func (l *Link) join(s *stanza, show, status string) {
	if l.refuseAlias(s) {
		return
	}
	ev := bridge.JoinRoom{From: s.from, Room: s.addr, Show: show, Status: status, ID: s.id}
	if x := s.t.child(s.n, nsMUC, "x"); x != nil {
		ev.MUC = true
		ev.Password, _ = s.t.childText(x, nsMUC, "password")
		if h := s.t.child(x, nsMUC, "history"); h != nil {
			hr, err := parseHistory(h)
			if err != nil {
				l.replyErr(s, err, "")
				return
			}
			ev.History = hr
		}
	}
	l.dispatch(s, ev)
}

func parseHistory(h *node) (*bridge.HistoryRequest, *bridge.StanzaError) {
	hr := &bridge.HistoryRequest{}
	for _, a := range []struct {
		name string
		dst  **int
	}{{"maxchars", &hr.MaxChars}, {"maxstanzas", &hr.MaxStanzas}, {"seconds", &hr.Seconds}} {
		if !h.hasAttr(a.name) {
			continue
		}
		n, err := strconv.Atoi(h.attrValue(a.name))
		if err != nil || n < 0 {
			return nil, bridge.Errorf(bridge.BadRequest, "The history attribute %s must be a non-negative integer.", a.name)
		}
		*a.dst = &n
	}
	if h.hasAttr("since") {
		t, err := time.Parse(time.RFC3339, h.attrValue("since"))
		if err != nil {
			return nil, bridge.Errorf(bridge.BadRequest, "The history attribute since must be a XEP-0082 date and time.")
		}
		hr.Since = &t
	}
	return hr, nil
}

// gatewayPresence answers presence to the domain. Subscriptions and
// probes are answered by the link; availability goes to the transport
// (the gateway tracks the user's resources from it).
func (l *Link) gatewayPresence(s *stanza, typ bridge.PresenceType, show, status string) {
	bare := s.from.Bare().String()
	var o out
	switch typ {
	case bridge.Subscribe:
		// Solicited: the user asked, and may use the gateway.
		o.presence(l.domainStr, bare, "subscribed", "", "")
		o.presence(l.domainStr, bare, "", "", "")
		l.markPresence(bare, true)
	case bridge.Subscribed, bridge.Probe:
		o.presence(l.domainStr, bare, "", "", "")
		l.markPresence(bare, true)
	case bridge.Unsubscribe:
		o.presence(l.domainStr, bare, "unsubscribed", "", "")
		o.presence(l.domainStr, bare, "unavailable", "", "")
		l.markPresence(bare, false)
	case bridge.Unsubscribed:
		o.presence(l.domainStr, bare, "unavailable", "", "")
		l.markPresence(bare, false)
	default:
		l.dispatch(s, bridge.UserPresence{From: s.from, To: s.addr, Type: typ, Show: show, Status: status})
		return
	}
	l.reply(&o)
}

// markPresence records (or forgets) that the domain told a user it is
// available, for the unavailable presence at shutdown.
func (l *Link) markPresence(bare string, on bool) {
	l.mu.Lock()
	if on {
		l.presenceSent[bare] = struct{}{}
	} else {
		delete(l.presenceSent, bare)
	}
	l.mu.Unlock()
}
