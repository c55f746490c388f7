package component

import "switchboard/bridge"

// A room can be named by more than one JID: by a configured network's host
// instead of its name (#t%127.0.0.1@… for #t%local@… on an open gateway),
// or with the backslash escaped where it need not be (#a\5c\5cb%local for
// #a\\b%local). The gateway answers from one JID per room, so a client
// that joined by another spelling would never see its join complete (the
// answer comes from a JID it does not know). Such joins are refused with
// <gone/> and the room's address in the text.

// roomAlias returns the JID the gateway answers from for the room s
// addresses, when s names it by another spelling ("" when it does not).
func (l *Link) roomAlias(s *stanza) string {
	j, err := l.codec.JID(s.addr.Room())
	if err != nil {
		return ""
	}
	if canon := j.String(); canon != s.to.Bare().String() {
		return canon
	}
	return ""
}

// refuseAlias answers a join by another spelling; it reports whether it
// did.
func (l *Link) refuseAlias(s *stanza) bool {
	canon := l.roomAlias(s)
	if canon == "" {
		return false
	}
	l.replyErr(s, bridge.Errorf(bridge.Gone, "This room's address is %s (%s is another spelling of it); join it there.", canon, s.to.Bare()), "")
	return true
}
