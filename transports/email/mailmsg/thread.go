package mailmsg

import "strings"

// threadID: the root of the conversation, as the raw message id (without
// angle brackets), so that it is both stable and reversible: the first
// entry of References (RFC 5322 keeps the root first), else In-Reply-To,
// else the message's own Message-ID. "" when the message has none of them.
func threadID(m *Message) string {
	if m == nil {
		return ""
	}
	for _, id := range m.References {
		if id = strings.TrimSpace(id); id != "" {
			return id
		}
	}
	if m.InReplyTo != "" {
		return m.InReplyTo
	}
	return m.MessageID
}

// replyPrefixes are the reply markers mail clients put in front of a
// subject, in lower case, without the colon.
var replyPrefixes = []string{"re", "aw", "sv", "antw", "vs", "odp", "ref", "réf", "rif", "r", "atb", "wg", "回复", "答复"}

// replySubject strips every reply marker ("Re:", "RE:", "Re[2]:", "Re: Re:",
// "AW:", "Sv:", …) from the front of s and puts one "Re: " there. A blank
// subject stays "".
func replySubject(s string) string {
	s = strings.TrimSpace(s)
	for {
		rest, ok := stripReplyPrefix(s)
		if !ok {
			break
		}
		s = rest
	}
	if s == "" {
		return ""
	}
	return "Re: " + s
}

func stripReplyPrefix(s string) (string, bool) {
	colon := strings.IndexAny(s, ":：")
	if colon <= 0 || colon > 12 {
		return s, false
	}
	word := strings.ToLower(strings.TrimSpace(s[:colon]))
	// "Re[2]" and "Re(2)" count replies.
	if i := strings.IndexAny(word, "[("); i > 0 && strings.HasSuffix(word, "]") || i > 0 && strings.HasSuffix(word, ")") {
		word = word[:i]
	}
	for _, p := range replyPrefixes {
		if word == p {
			_, size := firstRuneAt(s, colon)
			return strings.TrimSpace(s[colon+size:]), true
		}
	}
	return s, false
}

func firstRuneAt(s string, i int) (rune, int) {
	for j, r := range s[i:] {
		if j == 0 {
			return r, len(string(r))
		}
	}
	return 0, 1
}
