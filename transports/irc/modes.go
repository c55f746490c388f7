package irc

import (
	"strconv"
	"strings"

	"switchboard/mapping"
)

// isupport is what the server announced in RPL_ISUPPORT (005), with the
// IRC defaults until it does.
type isupport struct {
	cm          mapping.Casemapping
	prefixModes string // "qaohv", highest first
	prefixChars string // "~&@%+", same order
	chantypes   string
	statusmsg   string
	chanModesA  string // list modes (always a parameter)
	chanModesB  string // always a parameter
	chanModesC  string // a parameter when set
	nickLen     int
	topicLen    int
	network     string
}

func defaultISupport() isupport {
	return isupport{
		cm:          mapping.RFC1459,
		prefixModes: "ov",
		prefixChars: "@+",
		chantypes:   "#&",
		chanModesA:  "beI",
		chanModesB:  "k",
		chanModesC:  "l",
	}
}

// apply reads the tokens of one 005 line (params between the nick and the
// trailing text).
func (is *isupport) apply(tokens []string) {
	for _, tok := range tokens {
		tok = strings.Clone(tok) // do not keep the whole 005 line alive
		neg := strings.HasPrefix(tok, "-")
		tok = strings.TrimPrefix(tok, "-")
		k, v, _ := strings.Cut(tok, "=")
		switch strings.ToUpper(k) {
		case "CASEMAPPING":
			is.cm = mapping.ParseCasemapping(v)
			if neg {
				is.cm = mapping.RFC1459
			}
		case "PREFIX":
			modes, chars, ok := parsePrefix(v)
			if ok && !neg {
				is.prefixModes, is.prefixChars = modes, chars
			} else if neg {
				is.prefixModes, is.prefixChars = "ov", "@+"
			}
		case "CHANTYPES":
			if !neg {
				is.chantypes = v
			} else {
				is.chantypes = "#&"
			}
		case "STATUSMSG":
			is.statusmsg = v
		case "CHANMODES":
			parts := strings.Split(v, ",")
			for len(parts) < 4 {
				parts = append(parts, "")
			}
			is.chanModesA, is.chanModesB, is.chanModesC = parts[0], parts[1], parts[2]
		case "NICKLEN", "MAXNICKLEN":
			if n, err := strconv.Atoi(v); err == nil && n > 0 && (is.nickLen == 0 || strings.EqualFold(k, "NICKLEN")) {
				is.nickLen = n
			}
		case "TOPICLEN":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				is.topicLen = n
			}
		case "NETWORK":
			is.network = v
		}
	}
}

// parsePrefix reads "(qaohv)~&@%+".
func parsePrefix(v string) (modes, chars string, ok bool) {
	if v == "" {
		return "", "", true
	}
	if v[0] != '(' {
		return "", "", false
	}
	end := strings.IndexByte(v, ')')
	if end < 0 {
		return "", "", false
	}
	modes, chars = v[1:end], v[end+1:]
	if len(modes) != len(chars) {
		return "", "", false
	}
	return modes, chars, true
}

// isChannel reports whether name is a channel on this server.
func (is *isupport) isChannel(name string) bool {
	return name != "" && strings.IndexByte(is.chantypes, name[0]) >= 0
}

// modeForPrefix returns the mode letter of a prefix character, or 0.
func (is *isupport) modeForPrefix(c byte) byte {
	if i := strings.IndexByte(is.prefixChars, c); i >= 0 {
		return is.prefixModes[i]
	}
	return 0
}

// isPrefixMode reports whether m is a membership mode (q a o h v).
func (is *isupport) isPrefixMode(m byte) bool {
	return strings.IndexByte(is.prefixModes, m) >= 0
}

// modeTakesParam reports whether a channel mode letter takes a parameter
// when set (adding) or unset.
func (is *isupport) modeTakesParam(m byte, adding bool) bool {
	switch {
	case is.isPrefixMode(m), strings.IndexByte(is.chanModesA, m) >= 0, strings.IndexByte(is.chanModesB, m) >= 0:
		return true
	case strings.IndexByte(is.chanModesC, m) >= 0:
		return adding
	}
	return false
}

// namesEntry is one member of a RPL_NAMREPLY.
type namesEntry struct {
	nick, user, host string
	modes            string // membership mode letters, in the server's order
}

// parseNamesEntry reads "@+nick" (multi-prefix) or "@nick!user@host"
// (userhost-in-names).
func (is *isupport) parseNamesEntry(s string) namesEntry {
	var e namesEntry
	i := 0
	for i < len(s) {
		m := is.modeForPrefix(s[i])
		if m == 0 {
			break
		}
		if strings.IndexByte(e.modes, m) < 0 {
			e.modes += string(m)
		}
		i++
	}
	rest := s[i:]
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		e.host = rest[at+1:]
		rest = rest[:at]
	}
	if bang := strings.IndexByte(rest, '!'); bang >= 0 {
		e.user = rest[bang+1:]
		rest = rest[:bang]
	}
	e.nick = rest
	e.modes = is.sortModes(e.modes)
	return e
}

// sortModes orders membership mode letters highest first.
func (is *isupport) sortModes(modes string) string {
	if len(modes) < 2 {
		return modes
	}
	var b strings.Builder
	for i := 0; i < len(is.prefixModes); i++ {
		if strings.IndexByte(modes, is.prefixModes[i]) >= 0 {
			b.WriteByte(is.prefixModes[i])
		}
	}
	return b.String()
}

// addMode and removeMode change a member's membership modes.
func (is *isupport) addMode(modes string, m byte) string {
	if strings.IndexByte(modes, m) >= 0 {
		return modes
	}
	return is.sortModes(modes + string(m))
}

func removeMode(modes string, m byte) string {
	return strings.ReplaceAll(modes, string(m), "")
}

// roleAffiliation maps the highest membership mode to a MUC role and
// affiliation, as Biboumi does:
//
//	~ q  owner        moderator
//	& a  owner        moderator
//	@ o  admin        moderator
//	% h  member       moderator
//	+ v  member       participant
//	(none) none       participant
//
// A mode letter this table does not know is placed by its rank in the
// server's PREFIX: above o it counts as owner, below as member/moderator.
func (is *isupport) roleAffiliation(modes string) (role, affiliation string) {
	if modes == "" {
		return "participant", "none"
	}
	switch m := modes[0]; m {
	case 'q', 'a':
		return "moderator", "owner"
	case 'o':
		return "moderator", "admin"
	case 'h':
		return "moderator", "member"
	case 'v':
		return "participant", "member"
	default:
		rank := strings.IndexByte(is.prefixModes, m)
		op := strings.IndexByte(is.prefixModes, 'o')
		if op >= 0 && rank < op {
			return "moderator", "owner"
		}
		return "moderator", "member"
	}
}

// modeChange is one membership or channel mode change of a MODE line.
type modeChange struct {
	adding bool
	mode   byte
	param  string
}

// parseModes splits "+o-v+b nick1 nick2 mask" into changes.
func (is *isupport) parseModes(modes string, params []string) []modeChange {
	var out []modeChange
	adding := true
	for i := 0; i < len(modes); i++ {
		switch c := modes[i]; c {
		case '+':
			adding = true
		case '-':
			adding = false
		default:
			ch := modeChange{adding: adding, mode: c}
			if is.modeTakesParam(c, adding) && len(params) > 0 {
				ch.param = params[0]
				params = params[1:]
			}
			out = append(out, ch)
		}
	}
	return out
}

// wildcardMatch matches an IRC mask (* and ?) against s, case-insensitively
// under cm.
func wildcardMatch(mask, s string, cm mapping.Casemapping) bool {
	mask, s = cm.Fold(mask), cm.Fold(s)
	// Iterative glob with backtracking on the last '*'.
	mi, si := 0, 0
	star, match := -1, 0
	for si < len(s) {
		switch {
		case mi < len(mask) && (mask[mi] == '?' || mask[mi] == s[si]):
			mi++
			si++
		case mi < len(mask) && mask[mi] == '*':
			star, match = mi, si
			mi++
		case star >= 0:
			mi = star + 1
			match++
			si = match
		default:
			return false
		}
	}
	for mi < len(mask) && mask[mi] == '*' {
		mi++
	}
	return mi == len(mask)
}
