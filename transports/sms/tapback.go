package sms

import (
	"context"
	"strings"
	"time"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

// tapbacks are the verbs iPhones text for a reaction to a message they
// cannot send as one: `Loved “the text”`.
var tapbacks = []struct{ verb, emoji string }{
	{"Loved", "❤️"},
	{"Liked", "👍"},
	{"Disliked", "👎"},
	{"Laughed at", "😂"},
	{"Emphasized", "‼️"},
	{"Questioned", "❓"},
}

// tapbackLookback is how many of the last messages of a conversation a
// tapback's quote is matched against.
const tapbackLookback = 20

// parseTapback takes apart `Verb “quote”` (curly or straight quotes). It
// returns ok false for anything else, "Liked an image" included.
func parseTapback(body string) (emoji, quote string, ok bool) {
	for _, tb := range tapbacks {
		rest, found := strings.CutPrefix(body, tb.verb+" ")
		if !found {
			continue
		}
		for _, q := range [][2]string{{"“", "”"}, {`"`, `"`}} {
			if strings.HasPrefix(rest, q[0]) && strings.HasSuffix(rest, q[1]) && len(rest) >= len(q[0])+len(q[1]) {
				inner := rest[len(q[0]) : len(rest)-len(q[1])]
				if inner != "" {
					return tb.emoji, inner, true
				}
			}
		}
	}
	return "", "", false
}

// tapback turns an inbound tapback into a XEP-0444 reaction when its quote
// is exactly one of the last messages of that conversation (of the first
// owner's archive: the ids are the same for every owner); nil otherwise.
func (t *Transport) tapback(ctx context.Context, in inboundText) *bridge.Reactions {
	emoji, quote, ok := parseTapback(in.Body)
	if !ok || *t.cfg.HistoryDays == 0 {
		return nil
	}
	n := t.nums.lookup(in.To)
	if n == nil || len(n.owners) == 0 {
		return nil
	}
	peer := in.From
	if n.team() {
		peer = mapping.PeerKey(mapping.Address{Kind: mapping.KindRoom, Name: in.From, Network: n.inbox})
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	page, err := t.st.QueryArchive(qctx, store.ArchiveQuery{User: n.owners[0], Transport: Name, Peer: peer, Before: true, Limit: tapbackLookback})
	if err != nil {
		return nil
	}
	for i := len(page.Entries) - 1; i >= 0; i-- {
		e := page.Entries[i]
		if e.Body == quote && e.OriginID != "" {
			id := e.OriginID
			if n.team() {
				id = e.ID // in a room, reactions name the stanza-id
			}
			return &bridge.Reactions{ID: id, Emojis: []string{emoji}}
		}
	}
	return nil
}

// reactionText turns a XEP-0444 reaction the user sent into a short text
// (`❤️ to “the message”`) when the user turned that on; otherwise the
// user is told that reactions are not texted. ok is false when there is
// nothing to send (or the user was told why).
func (s *session) reactionText(ev bridge.SendMessage, fail func(error)) (bridge.SendMessage, bool) {
	r := ev.Reactions
	if len(r.Emojis) == 0 {
		return ev, false // a reaction taken back: a text cannot be
	}
	if s.field(fieldReacts) != "1" {
		fail(bridge.Errorf(bridge.FeatureNotImplemented, "Reactions are not sent as texts unless you turn on \"Send my reactions as short texts\" (configure command or registration)."))
		return ev, false
	}
	ctx, cancel := context.WithTimeout(s.u.Context(), 5*time.Second)
	defer cancel()
	page, err := s.t.st.QueryArchive(ctx, store.ArchiveQuery{User: s.bare, Transport: Name, Peer: mapping.PeerKey(ev.To.Bare()), Before: true, Limit: 50})
	quote := ""
	if err == nil {
		for i := len(page.Entries) - 1; i >= 0; i-- {
			if e := page.Entries[i]; e.ID == r.ID || (e.OriginID != "" && e.OriginID == r.ID) {
				quote = e.Body
				break
			}
		}
	}
	if quote == "" {
		fail(bridge.Errorf(bridge.ItemNotFound, "The message you reacted to is not among the last texts of this conversation, so the reaction was not texted."))
		return ev, false
	}
	if q := []rune(quote); len(q) > 40 {
		quote = string(q[:40]) + "…"
	}
	ev.Body = strings.Join(r.Emojis, "") + " to “" + quote + "”"
	ev.Reactions, ev.Attachments, ev.Reply = nil, nil, nil
	return ev, true
}
