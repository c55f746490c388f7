package irc

// This file reads IRC lines: the dispatch of every command and numeric
// the transport handles, and small helpers to read a message.

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
)

// param returns the i-th parameter or "".
func param(m *ircmsg.Message, i int) string {
	if i < len(m.Params) {
		return m.Params[i]
	}
	return ""
}

// last returns the last parameter or "".
func last(m *ircmsg.Message) string {
	if len(m.Params) == 0 {
		return ""
	}
	return m.Params[len(m.Params)-1]
}

// sourceNick returns the nick of a message's source.
func sourceNick(m *ircmsg.Message) string {
	if i := strings.IndexAny(m.Source, "!@"); i >= 0 {
		return m.Source[:i]
	}
	return m.Source
}

// serverTime returns the server-time tag, or the zero time.
func serverTime(m *ircmsg.Message) time.Time {
	if ok, v := m.GetTag("time"); ok {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t
		}
	}
	return time.Time{}
}

// tag returns a tag's value or "".
func tag(m *ircmsg.Message, name string) string {
	_, v := m.GetTag(name)
	return v
}

// handle dispatches one line from the server.
func (n *network) handle(m *ircmsg.Message) {
	switch m.Command {
	case "PING":
		// The connection's reader answers PINGs itself (conn.readLoop);
		// one only gets here from a scripted test.
		if n.c != nil {
			n.c.pong(m)
		}
	case "PONG", "BATCH", "ACK", "TAGMSG", "900", "901", "329", "321":
	case "375", "372", "376", "422", "002", "003", "004", "250", "251", "252", "253", "254", "255", "265", "266":
		// The MOTD and LUSERS come at registration (noise) and as the
		// answers to raw commands (shown).
		if n.rawWindow() {
			n.rawReply(m)
		}
	case "CAP":
		n.onCap(m)
	case "AUTHENTICATE":
		n.onAuthenticate(m)
	case "903", "907":
		n.capEnd()
	case "902", "904", "905", "906", "908":
		if m.Command != "908" {
			n.serverNotice(fmt.Sprintf("Logging in to %s with SASL failed: %s. Connecting without logging in; %s", n.name, strings.TrimSuffix(last(m), "."), n.saslSettingsHint()))
			n.capEnd()
		}
	case "001":
		if !n.capEnded {
			n.saslNotTried() // the server ignored CAP LS
		}
		n.capEnded = true
		if words := strings.Fields(last(m)); len(words) > 0 {
			if nuh, err := ircmsg.ParseNUH(words[len(words)-1]); err == nil && nuh.User != "" && nuh.Host != "" {
				n.user, n.host = strings.Clone(nuh.User), strings.Clone(nuh.Host)
			}
		}
		n.onRegistered(param(m, 0))
	case "005":
		if len(m.Params) > 2 {
			old := n.is.cm
			n.is.apply(m.Params[1 : len(m.Params)-1])
			if n.is.cm != old {
				n.rekey()
			}
		}
	case "396": // RPL_VISIBLEHOST / RPL_HOSTHIDDEN
		n.host = strings.Clone(param(m, 1))
	case "432", "433", "436", "437", "438":
		n.onNickError(m)
	case "JOIN":
		n.onJoin(m)
	case "PART":
		n.onPart(m)
	case "KICK":
		n.onKick(m)
	case "QUIT":
		n.onQuit(m)
	case "NICK":
		n.onNick(m)
	case "MODE":
		n.onMode(m)
	case "TOPIC":
		n.onTopic(m)
	case "PRIVMSG":
		n.onMessage(m, false)
	case "NOTICE":
		n.onMessage(m, true)
	case "AWAY":
		n.onAway(m)
	case "ACCOUNT":
		n.eachMember(sourceNick(m), func(_ *room, mem *member) { mem.setAccount(param(m, 0)) })
	case "CHGHOST":
		nick := sourceNick(m)
		if n.isMe(nick) {
			n.user, n.host = strings.Clone(param(m, 0)), strings.Clone(param(m, 1))
		}
		n.eachMember(nick, func(_ *room, mem *member) {
			mem.user, mem.host = intern(param(m, 0)), intern(param(m, 1))
		})
	case "INVITE":
		n.serverNotice(fmt.Sprintf("%s invites you to %s; join %s%%%s@%s to accept.", sourceNick(m), param(m, 1), param(m, 1), n.name, n.s.t.codec.Domain()))
	case "ERROR":
		n.connErr = strings.Clone(last(m))
	case "353":
		n.onNames(m)
	case "366":
		n.onEndOfNames(m)
	case "324":
		n.onChannelModes(m)
	case "331":
		if r := n.rooms[n.fold(param(m, 1))]; r != nil {
			r.topic, r.topicBy, r.topicAt = "", "", time.Time{}
		}
	case "332":
		if r := n.rooms[n.fold(param(m, 1))]; r != nil {
			r.topic = strings.Clone(param(m, 2))
		}
	case "333":
		if r := n.rooms[n.fold(param(m, 1))]; r != nil {
			r.topicBy = strings.Clone(nickOf(param(m, 2)))
			if sec, err := strconv.ParseInt(param(m, 3), 10, 64); err == nil {
				r.topicAt = time.Unix(sec, 0).UTC()
			}
		}
	case "322":
		if n.listing && len(n.listBuf) < 50000 {
			users, _ := strconv.Atoi(param(m, 2))
			n.listBuf = append(n.listBuf, listEntry{name: strings.Clone(param(m, 1)), users: users, topic: strings.Clone(stripFormatting(param(m, 3)))})
		}
	case "323":
		if n.listing {
			n.finishList()
		}
	case "401", "404":
		n.onSendError(m)
	case "403", "405", "471", "473", "474", "475", "476", "477":
		n.onJoinError(m)
	case "482", "441", "442", "472", "501", "478":
		n.onAdminError(m)
	default:
		switch {
		case len(m.Command) != 3 || m.Command[0] < '0' || m.Command[0] > '9' || n.state != stRegistered:
		case n.rawWindow():
			n.rawReply(m) // the answer to a raw command: every reply is shown
		case m.Command[0] == '4' || m.Command[0] == '5':
			n.serverNotice(strings.Join(m.Params[min(1, len(m.Params)):], " "))
		}
	}
}

// nickOf returns the nick of "nick!user@host".
func nickOf(s string) string {
	if i := strings.IndexAny(s, "!@"); i >= 0 {
		return s[:i]
	}
	return s
}
