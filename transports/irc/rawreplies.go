package irc

import (
	"fmt"
	"strings"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"switchboard/bridge"
	"switchboard/mapping"
)

// The server JID takes raw IRC commands (WHOIS nick, MOTD, TIME, VERSION,
// LUSERS, INFO, …). Their replies are numerics the session otherwise
// keeps to itself (the MOTD and LUSERS at registration are noise): for a
// while after a raw command, every numeric reply the session does not
// handle itself is shown, as readable text, gathered into one message per
// reply (flushed at the reply's end numeric, or when the server goes
// quiet).

const (
	// rawReplyWindow is how long after a raw command numerics are shown.
	rawReplyWindow = 20 * time.Second
	// rawReplyQuiet flushes gathered replies when no more come.
	rawReplyQuiet = 500 * time.Millisecond
	// rawReplyMax bounds the lines of one gathered reply.
	rawReplyMax = 300
)

// rawEnds are the numerics that end a reply.
var rawEnds = map[string]bool{
	"318": true, // end of WHOIS
	"369": true, // end of WHOWAS
	"315": true, // end of WHO
	"376": true, // end of MOTD
	"422": true, // no MOTD
	"266": true, // LUSERS (global users: the last line)
	"391": true, // TIME
	"351": true, // VERSION
	"374": true, // end of INFO
	"219": true, // end of STATS
	"368": true, // end of ban list
	"347": true, // end of invite list
	"349": true, // end of exception list
	"365": true, // end of LINKS
	"394": true, // end of USERS
	"704": true, // HELP start… (705 body, 706 end)
	"706": true,
}

// rawWindow reports whether numerics are shown now.
func (n *network) rawWindow() bool {
	return !n.rawUntil.IsZero() && time.Now().Before(n.rawUntil)
}

// openRawWindow is called when a raw command went out.
func (n *network) openRawWindow() { n.rawUntil = time.Now().Add(rawReplyWindow) }

// rawReply gathers one numeric reply for the user.
func (n *network) rawReply(m *ircmsg.Message) {
	text := numericText(m)
	if text == "" {
		return
	}
	n.rawBuf = append(n.rawBuf, text)
	if rawEnds[m.Command] || len(n.rawBuf) >= rawReplyMax {
		n.flushRaw()
		return
	}
	n.setTimer(&n.rawT, rawReplyQuiet, tRaw)
}

// flushRaw sends the gathered replies as one server message.
func (n *network) flushRaw() {
	n.stopTimer(&n.rawT)
	if len(n.rawBuf) == 0 {
		return
	}
	lines := make([]string, 0, len(n.rawBuf))
	for _, l := range n.rawBuf {
		if l = toXMPPText(l); l != "" {
			lines = append(lines, l)
		}
	}
	n.rawBuf = nil
	if len(lines) == 0 {
		return
	}
	n.s.emit(bridge.Message{To: n.s.u.JID().Bare(), From: mapping.Address{Kind: mapping.KindServer, Domain: n.s.t.codec.Domain(), Network: n.name},
		Type: bridge.Chat, Body: strings.Join(lines, "\n"), Notice: true})
}

// numericText words a numeric reply: the first parameter (our nick) is
// left out, the common replies are phrased, the rest are their
// parameters in order.
func numericText(m *ircmsg.Message) string {
	p := func(i int) string { return param(m, i) }
	switch m.Command {
	case "311": // RPL_WHOISUSER nick user host * :realname
		return fmt.Sprintf("%s is %s@%s (%s)", p(1), p(2), p(3), p(5))
	case "314": // RPL_WHOWASUSER
		return fmt.Sprintf("%s was %s@%s (%s)", p(1), p(2), p(3), p(5))
	case "312": // RPL_WHOISSERVER nick server :info
		return fmt.Sprintf("%s is connected to %s (%s)", p(1), p(2), p(3))
	case "313":
		return fmt.Sprintf("%s %s", p(1), p(2))
	case "317": // RPL_WHOISIDLE nick idle signon :text
		s := fmt.Sprintf("%s has been idle %s seconds", p(1), p(2))
		if on := p(3); on != "" && len(m.Params) > 4 {
			var sec int64
			if _, err := fmt.Sscan(on, &sec); err == nil && sec > 0 {
				s += ", signed on " + time.Unix(sec, 0).UTC().Format(time.RFC1123)
			}
		}
		return s
	case "319": // RPL_WHOISCHANNELS
		return fmt.Sprintf("%s is in %s", p(1), p(2))
	case "330": // RPL_WHOISACCOUNT nick account :is logged in as
		return fmt.Sprintf("%s %s %s", p(1), p(3), p(2))
	case "318", "369":
		return fmt.Sprintf("%s: %s", p(1), p(2))
	case "391": // RPL_TIME server :time
		return fmt.Sprintf("Time on %s: %s", p(1), last(m))
	case "351": // RPL_VERSION version server :comments
		return fmt.Sprintf("%s runs %s %s", p(2), p(1), strings.Join(m.Params[min(3, len(m.Params)):], " "))
	case "372", "375", "376", "371", "374", "705", "704", "706", "265", "266", "250":
		return last(m)
	}
	if len(m.Params) <= 1 {
		return last(m)
	}
	return strings.Join(m.Params[1:], " ")
}
