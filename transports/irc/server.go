package irc

// This file is the server JID: server notices, raw commands typed to it
// (parseRaw), and the room list (LIST).

import (
	"fmt"
	"sort"
	"strings"
	"switchboard/bridge"
	"switchboard/mapping"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
)

// listRooms answers a disco#items query on a server JID with the
// network's channels (LIST), paged with RSM.
func (s *session) listRooms(q bridge.Query, req *bridge.DiscoItemsQuery, reply func(any, error)) {
	n, err := s.network(q.To, true, "")
	if err != nil {
		reply(nil, err)
		return
	}
	n.lastActivity = time.Now()
	if n.listCache != nil && time.Since(n.listAt) < time.Minute {
		reply(n.pageList(req.Page))
		return
	}
	n.listWait = append(n.listWait, listWaiter{q: q, page: req.Page, reply: reply})
	if n.state == stRegistered {
		if !n.listing {
			n.startList()
		}
		return
	}
	if n.state == stDown && n.registered {
		n.listWait = n.listWait[:len(n.listWait)-1]
		reply(nil, n.downError())
		return
	}
	n.ensureConnected()
}

// startList sends LIST.
func (n *network) startList() {
	n.listing = true
	n.listBuf = nil
	n.send(ircmsg.MakeMessage(nil, "", "LIST"))
	n.setTimer(&n.listT, 90*time.Second, tList)
}

// finishList answers every waiting query.
func (n *network) finishList() {
	n.listing = false
	n.stopTimer(&n.listT)
	sort.Slice(n.listBuf, func(i, j int) bool { return n.fold(n.listBuf[i].name) < n.fold(n.listBuf[j].name) })
	n.listCache, n.listBuf, n.listAt = n.listBuf, nil, time.Now()
	waiting := n.listWait
	n.listWait = nil
	for _, w := range waiting {
		w.reply(n.pageList(w.page))
	}
	n.scheduleIdle()
}

// pageList cuts a page out of the cached list. Items are keyed for RSM by
// channel name.
func (n *network) pageList(p *bridge.PageRequest) (*bridge.DiscoItems, error) {
	all := n.listCache
	size := 100
	if p != nil && p.Max != nil {
		size = max(0, min(*p.Max, 1000))
	}
	start := 0
	find := func(name string) int {
		k := n.fold(name)
		i := sort.Search(len(all), func(i int) bool { return n.fold(all[i].name) >= k })
		if i < len(all) && n.fold(all[i].name) == k {
			return i
		}
		return -1
	}
	if p != nil {
		switch {
		case p.After != nil:
			i := find(*p.After)
			if i < 0 {
				return nil, bridge.Errorf(bridge.ItemNotFound, "%s is not in the channel list any more; start from the first page.", *p.After)
			}
			start = i + 1
		case p.Before != nil && *p.Before == "":
			start = max(0, len(all)-size)
		case p.Before != nil:
			i := find(*p.Before)
			if i < 0 {
				return nil, bridge.Errorf(bridge.ItemNotFound, "%s is not in the channel list any more; start from the last page.", *p.Before)
			}
			start = max(0, i-size)
			size = min(size, i)
		case p.Index != nil:
			start = max(0, min(*p.Index, len(all)))
		}
	}
	end := min(len(all), start+size)
	res := &bridge.DiscoItems{Page: &bridge.PageResult{Count: len(all), FirstIndex: start}}
	domain := n.s.t.codec.Domain()
	for _, e := range all[start:end] {
		j, err := n.s.t.codec.JID(mapping.Address{Kind: mapping.KindRoom, Domain: domain, Network: n.name, Name: e.name})
		if err != nil {
			continue
		}
		name := fmt.Sprintf("%s (%d)", e.name, e.users)
		if e.topic != "" {
			name += ": " + toXMPPText(e.topic)
		}
		res.Items = append(res.Items, bridge.DiscoItem{JID: j, Name: name})
	}
	if start < end {
		res.Page.First, res.Page.Last = all[start].name, all[end-1].name
	}
	return res, nil
}

// listEntry is one channel of a LIST.
type listEntry struct {
	name  string
	users int
	topic string
}

// listWaiter is a room list query waiting for LIST.
type listWaiter struct {
	q     bridge.Query
	page  *bridge.PageRequest
	reply func(any, error)
}

// sendRawCommand sends a command the user typed to the server JID.
func (n *network) sendRawCommand(m ircmsg.Message) error {
	if m.Command == "QUIT" {
		reason := ""
		if len(m.Params) > 0 {
			reason = m.Params[0]
		}
		n.removeAllRooms("You quit "+n.name+".", []int{332})
		n.s.removeNetwork(n, reason)
		return nil
	}
	if m.Command == "NICK" && len(m.Params) > 0 {
		if err := n.s.t.codec.ValidNick(m.Params[0]); err != nil {
			return err
		}
	}
	if err := n.send(m); err != nil {
		return err
	}
	n.openRawWindow()
	return nil
}

// serverNotice shows a line from the network's server JID.
func (n *network) serverNotice(text string) {
	text = toXMPPText(text)
	if text == "" {
		return
	}
	n.s.emit(bridge.Message{To: n.s.u.JID().Bare(), From: mapping.Address{Kind: mapping.KindServer, Domain: n.s.t.codec.Domain(), Network: n.name},
		Type: bridge.Chat, Body: text, Notice: true})
}

// sendToServer sends the lines of the message as raw IRC commands.
func (s *session) sendToServer(ev bridge.SendMessage, fail func(error)) {
	n, err := s.network(ev.To, true, "")
	if err != nil {
		fail(err)
		return
	}
	n.lastActivity = time.Now()
	var msgs []ircmsg.Message
	for _, l := range cleanText(ev.Body) {
		m, err := parseRaw(l)
		if err != nil {
			fail(err)
			return
		}
		msgs = append(msgs, m)
	}
	if n.state != stRegistered {
		if n.state == stDown && n.registered {
			fail(n.downError())
			return
		}
		for _, m := range msgs {
			n.queued = append(n.queued, queuedMsg{raw: m, ev: ev})
		}
		n.ensureConnected()
		return
	}
	for _, m := range msgs {
		if err := n.sendRawCommand(m); err != nil {
			fail(err)
			return
		}
	}
}

// parseRaw turns a line the user typed to a server JID (or saved as an
// after-connect command) into an IRC message. It accepts "COMMAND args",
// the same with a leading '/', "/msg target text" and "/quote …"/"/raw …".
// A line with NUL, CR or LF is refused (ircmsg refuses it too), as are
// tags, a source, and commands that would break the connection's state.
func parseRaw(line string) (ircmsg.Message, error) {
	line = strings.TrimSpace(line)
	if !safeParam(line) {
		return ircmsg.Message{}, bridge.Errorf(bridge.BadRequest, "A command cannot contain a line break or NUL.")
	}
	if strings.HasPrefix(line, "/") {
		line = line[1:]
		word, rest, _ := strings.Cut(line, " ")
		switch strings.ToLower(word) {
		case "quote", "raw":
			line = strings.TrimSpace(rest)
		case "msg", "privmsg":
			target, text, _ := strings.Cut(strings.TrimSpace(rest), " ")
			if !validTarget(target) || text == "" {
				return ircmsg.Message{}, bridge.Errorf(bridge.BadRequest, "Write /msg nick text.")
			}
			return ircmsg.MakeMessage(nil, "", "PRIVMSG", target, text), nil
		}
	}
	if line == "" {
		return ircmsg.Message{}, bridge.Errorf(bridge.BadRequest, "The command is empty.")
	}
	if line[0] == '@' || line[0] == ':' {
		return ircmsg.Message{}, bridge.Errorf(bridge.BadRequest, "A command cannot start with tags or a source.")
	}
	msg, err := ircmsg.ParseLine(line)
	if err != nil {
		return ircmsg.Message{}, bridge.Errorf(bridge.BadRequest, "%s is not an IRC command: %v.", quote(line), err)
	}
	for i := 0; i < len(msg.Command); i++ {
		if c := msg.Command[i]; !(c >= 'A' && c <= 'Z') {
			return ircmsg.Message{}, bridge.Errorf(bridge.BadRequest, "%s is not an IRC command name.", quote(msg.Command))
		}
	}
	if forbiddenRaw[msg.Command] {
		return ircmsg.Message{}, bridge.Errorf(bridge.NotAllowed, "The gateway handles %s itself; it cannot be sent by hand.", msg.Command)
	}
	return msg, nil
}
