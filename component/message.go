package component

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
)

// handleMessage turns a message into bridge.SendMessage.
func (l *Link) handleMessage(s *stanza) {
	ev, ok := parseMessage(s)
	if !ok {
		return // nothing to pass on: receipts, markers, invitations
	}
	if len(ev.Addresses) > 0 {
		l.resolveAddresses(ev.Addresses)
	}
	if s.addr.Kind == mapping.KindGateway {
		if ev.Body == "" && ev.Subject == nil && len(ev.Attachments) == 0 {
			return
		}
		if len(ev.Addresses) > 0 {
			if l.multicast() {
				l.dispatch(s, ev)
				return
			}
			l.replyErr(s, bridge.Errorf(bridge.FeatureNotImplemented, "This gateway does not relay multicast (XEP-0033) messages: write to each contact."), "")
			return
		}
		l.replyErr(s, bridge.Errorf(bridge.ServiceUnavailable, "The gateway itself does not take messages: write to a contact or a room, or use its ad-hoc commands."), "")
		return
	}
	if ev.Type == bridge.Groupchat && s.addr.Kind != mapping.KindRoom {
		l.replyErr(s, bridge.Errorf(bridge.BadRequest, "Groupchat messages go to the room's bare address."), "")
		return
	}
	l.dispatch(s, ev)
}

// parseMessage reads every extension the bridge knows. ok is false for a
// message without body, subject, chat state or attachment.
func parseMessage(s *stanza) (bridge.SendMessage, bool) {
	t, root := s.t, s.n
	ev := bridge.SendMessage{From: s.from, To: s.addr, ID: s.id}
	switch s.typ {
	case "chat":
		ev.Type = bridge.Chat
	case "groupchat":
		ev.Type = bridge.Groupchat
	case "headline":
		ev.Type = bridge.Headline
	default:
		ev.Type = bridge.Normal
	}
	var (
		body, bodyLang   bool
		fallbackStart    = -1
		fallbackEnd      = -1
		fallbackWhole    bool
		hasReplyFallback bool
	)
	for i := root.firstChild; i >= 0; i = t.nodes[i].next {
		c := &t.nodes[i]
		switch c.space {
		case nsAccept, nsClient, "jabber:server":
			switch c.local {
			case "body":
				// The body without xml:lang (or the first) wins.
				if !body || (bodyLang && c.lang() == "") {
					ev.Body = c.text
					bodyLang = c.lang() != ""
					body = true
				}
			case "subject":
				if ev.Type == bridge.Groupchat && ev.Subject == nil {
					subj := c.text
					ev.Subject = &subj
				} else if ev.Type != bridge.Groupchat && ev.MessageSubject == "" {
					ev.MessageSubject = c.text
				}
			case "thread":
				if ev.Thread == "" {
					ev.Thread = c.text
				}
			}
		case nsSID:
			if c.local == "origin-id" {
				ev.OriginID = c.attrValue("id")
			}
		case nsCorrect:
			if c.local == "replace" {
				ev.ReplaceID = c.attrValue("id")
			}
		case nsReceipts:
			if c.local == "request" {
				ev.ReceiptRequested = true
			}
		case nsChatStates:
			switch c.local {
			case "active", "composing", "paused", "inactive", "gone":
				ev.ChatState = bridge.ChatState(c.local)
			}
		case nsReply:
			if c.local == "reply" && c.attrValue("id") != "" {
				r := &bridge.Reply{ID: c.attrValue("id")}
				if to := c.attrValue("to"); to != "" {
					if j, err := jid.Parse(to); err == nil {
						r.To = j
					}
				}
				ev.Reply = r
			}
		case nsFallback:
			if c.local == "fallback" && c.attrValue("for") == nsReply && !hasReplyFallback {
				hasReplyFallback = true
				if b := t.child(c, nsFallback, "body"); b != nil {
					st, err1 := strconv.Atoi(b.attrValue("start"))
					en, err2 := strconv.Atoi(b.attrValue("end"))
					if err1 == nil && err2 == nil {
						fallbackStart, fallbackEnd = st, en
					}
				} else {
					fallbackWhole = true
				}
			}
		case nsReactions:
			if c.local == "reactions" && c.attrValue("id") != "" && ev.Reactions == nil {
				r := &bridge.Reactions{ID: c.attrValue("id")}
				for j := c.firstChild; j >= 0; j = t.nodes[j].next {
					if e := &t.nodes[j]; e.space == nsReactions && e.local == "reaction" && e.text != "" && len(r.Emojis) < 20 {
						r.Emojis = append(r.Emojis, e.text)
					}
				}
				ev.Reactions = r
			}
		case bridge.NSAddress:
			if c.local == "addresses" && ev.Addresses == nil {
				ev.Addresses = parseAddresses(t, c)
			}
		case nsOOB:
			if c.local == "x" {
				url, _ := t.childText(c, nsOOB, "url")
				url = strings.TrimSpace(url)
				if url != "" {
					desc, _ := t.childText(c, nsOOB, "desc")
					ev.Attachments = append(ev.Attachments, bridge.Attachment{URL: url, Desc: desc})
				}
			}
		}
	}
	if ev.Reply != nil && hasReplyFallback {
		switch {
		case fallbackWhole:
			ev.Reply.Fallback, ev.Body = ev.Body, ""
		case fallbackStart >= 0:
			if fb, rest, ok := cutRunes(ev.Body, fallbackStart, fallbackEnd); ok {
				ev.Reply.Fallback, ev.Body = fb, rest
			}
		}
	}
	if after, ok := strings.CutPrefix(ev.Body, "/me "); ok {
		ev.Action = true
		ev.Body = after
	}
	if ev.Body == "" && !ev.Action && ev.Subject == nil && ev.ChatState == "" && len(ev.Attachments) == 0 && ev.Reactions == nil {
		return ev, false
	}
	return ev, true
}

// cutRunes cuts the code points [start, end) out of s (XEP-0426 counts
// Unicode code points). ok is false for offsets outside s.
func cutRunes(s string, start, end int) (cut, rest string, ok bool) {
	if start < 0 || end < start {
		return "", s, false
	}
	bs, be := -1, -1
	n := 0
	for i := range s {
		if n == start {
			bs = i
		}
		if n == end {
			be = i
			break
		}
		n++
	}
	count := utf8.RuneCountInString(s)
	if bs < 0 && start == count {
		bs = len(s)
	}
	if be < 0 && end == count {
		be = len(s)
	}
	if bs < 0 || be < 0 {
		return "", s, false
	}
	return s[bs:be], s[:bs] + s[be:], true
}
