package irc

import (
	"time"

	"github.com/ergochat/irc-go/ircmsg"
)

// Taking the wanted nick back. A user who lands on another nick than the
// one they want (nick_ after a collision at registration, typically with
// their own ghost after a reconnect) asks for the wanted nick again every
// reclaimInterval, and at once when the holder is seen leaving it (QUIT, or
// NICK to something else, in a shared channel). On success the rooms see
// the user's nick change (status 303) like any other; a refusal is not
// shown to the user.
const (
	// DefaultReclaimInterval is how often the wanted nick is asked for.
	DefaultReclaimInterval = 60 * time.Second
	// reclaimMinGap keeps a holder who changes nick quickly from turning
	// the gateway's attempts into a NICK flood.
	reclaimMinGap = 2 * time.Second
	// reclaimAnswer is how long an attempt waits for the server's answer
	// before another may be sent.
	reclaimAnswer = 30 * time.Second
)

// needsReclaim reports whether the user is registered on another nick
// than the one they want.
func (n *network) needsReclaim() bool {
	return n.state == stRegistered && n.c != nil && n.nick != "" && n.wantNick != "" &&
		!n.is.cm.Equal(n.nick, n.wantNick)
}

// scheduleReclaim arms the periodic attempt when the user is not on the
// wanted nick, and stops it otherwise.
func (n *network) scheduleReclaim() {
	if !n.needsReclaim() {
		n.stopTimer(&n.reclaimT)
		return
	}
	if n.reclaimT == nil {
		n.setTimer(&n.reclaimT, n.s.t.reclaimEvery, tReclaim)
	}
}

// reclaimNick asks for the wanted nick. seen says the holder was just seen
// leaving it: the attempt is made at once unless one was made moments ago,
// in which case it comes when reclaimMinGap has passed.
func (n *network) reclaimNick(seen bool) {
	if !n.needsReclaim() {
		n.stopTimer(&n.reclaimT)
		return
	}
	since := time.Since(n.lastReclaim)
	switch {
	case n.nickReq != nil:
		// The user is changing nick: their choice wins.
	case n.reclaimTry != "" && since < reclaimAnswer:
		// An attempt is waiting for its answer.
	case seen && since < reclaimMinGap:
		n.setTimer(&n.reclaimT, reclaimMinGap-since, tReclaim)
		return
	default:
		if err := n.s.t.codec.ValidNick(n.wantNick); err != nil {
			n.wantNick = n.nick // nothing to take back
			n.stopTimer(&n.reclaimT)
			return
		}
		n.reclaimTry = n.wantNick
		n.lastReclaim = time.Now()
		n.s.log.Debug("asking for the wanted nick again", "network", n.name, "nick", n.wantNick, "current", n.nick)
		if err := n.send(ircmsg.MakeMessage(nil, "", "NICK", n.wantNick)); err != nil {
			n.reclaimTry = ""
		}
	}
	if seen {
		return // the periodic timer keeps running
	}
	n.setTimer(&n.reclaimT, n.s.t.reclaimEvery, tReclaim)
}

// onReclaimError swallows the refusal (432, 433, 436, 437, 438) of an
// attempt to take the wanted nick back; it reports whether m was one. A
// nick the server finds erroneous is given up.
func (n *network) onReclaimError(m *ircmsg.Message) bool {
	if n.reclaimTry == "" || !n.is.cm.Equal(param(m, 1), n.reclaimTry) {
		return false
	}
	n.reclaimTry = ""
	if m.Command == "432" {
		n.s.log.Info("the IRC server refuses the wanted nick; keeping the current one", "network", n.name, "nick", n.wantNick, "current", n.nick)
		n.wantNick = n.nick
		n.stopTimer(&n.reclaimT)
	}
	return true
}
