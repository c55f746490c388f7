package irc

import (
	"fmt"
	"unicode/utf8"

	"github.com/ergochat/irc-go/ircmsg"

	"switchboard/bridge"
)

// Settings that travel to IRC (nick, username, realname, passwords,
// after-connect commands) are checked when they are saved, against what
// an IRC line can carry, so that a bad one is refused with a sentence
// instead of making every later connection fail. Error texts quote at
// most a short prefix of the bad input.

const (
	// maxRealname leaves room in "USER <32-byte username> 0 * :<realname>"
	// under 512 bytes; servers cut realnames shorter themselves.
	maxRealname = 200
	// maxNickSetting bounds a nick before the codec looks at it (servers
	// allow 9 to 30 bytes; NICKLEN is only known once connected).
	maxNickSetting = 64
	// maxSecret bounds a password (PASS, AUTHENTICATE) and maxAccount a
	// SASL account name.
	maxSecret  = 300
	maxAccount = 100
	// quotePrefix is how much of a bad value an error text quotes.
	quotePrefix = 24
)

// quote quotes at most quotePrefix characters of s, with "…" when cut.
func quote(s string) string {
	if utf8.RuneCountInString(s) <= quotePrefix {
		return fmt.Sprintf("%q", s)
	}
	n := 0
	for i := range s {
		if n == quotePrefix {
			return fmt.Sprintf("%q…", s[:i])
		}
		n++
	}
	return fmt.Sprintf("%q", s)
}

// badRune returns the first character of s that no IRC setting may hold:
// C0 controls (TAB included), DEL, C1 controls (U+0085 NEXT LINE
// included), the Unicode line and paragraph separators, and invalid
// UTF-8; ok is false when there is none.
func badRune(s string) (r rune, ok bool) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f || r == 0x2028 || r == 0x2029 || r == utf8.RuneError {
			return r, true
		}
	}
	return 0, false
}

// checkText validates a free-text setting of at most max bytes.
func checkText(what, s string, max int) error {
	if r, bad := badRune(s); bad {
		return bridge.Errorf(bridge.NotAcceptable, "The %s may not contain control characters or line breaks (it holds U+%04X).", what, r)
	}
	if len(s) > max {
		return bridge.Errorf(bridge.NotAcceptable, "The %s is %d bytes long; IRC takes at most %d here (it starts %s).", what, len(s), max, quote(s))
	}
	return nil
}

// checkNickSetting refuses a nick that is far too long or holds control
// characters before the codec's own checks (whose errors quote it whole).
func checkNickSetting(nick string) error {
	if nick == "" {
		return nil
	}
	if err := checkText("nick", nick, maxNickSetting); err != nil {
		return err
	}
	return nil
}

// checkCommandLine refuses an after-connect or raw command that does not
// fit one IRC line.
func checkCommandLine(m *ircmsg.Message, raw string) error {
	if _, err := encodeLine(m); err != nil {
		return bridge.Errorf(bridge.NotAcceptable, "The command %s does not fit one IRC line (at most 512 bytes).", quote(raw))
	}
	return nil
}
