package mapping

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// XEP-0106 (JID Escaping, version 1.1.1) in short:
//
//   - The ten characters space " & ' / : < > @ \ are written as a backslash
//     and two lowercase hex digits: \20 \22 \26 \27 \2f \3a \3c \3e \40 \5c.
//   - The backslash itself is escaped (as \5c) only when the two characters
//     after it would otherwise read as one of those ten sequences; any other
//     backslash is left alone ("c:\net" escapes to "c\3a\net").
//   - Only those exact sequences are unescaped. Case is significant: "\5C",
//     "\41", "\2" and "\bar" are left as they are.
//   - \20 must never be the first or the last thing in an escaped localpart,
//     so a name that starts or ends with a space cannot be escaped.
//
// mellium.im/xmpp/jid has a Transformer for this, but its unescaping is
// wrong on some inputs, so the gateway uses these functions instead.

// escapeHex maps a character that XEP-0106 escapes to its two hex digits.
func escapeHex(c byte) (string, bool) {
	switch c {
	case ' ':
		return "20", true
	case '"':
		return "22", true
	case '&':
		return "26", true
	case '\'':
		return "27", true
	case '/':
		return "2f", true
	case ':':
		return "3a", true
	case '<':
		return "3c", true
	case '>':
		return "3e", true
	case '@':
		return "40", true
	case '\\':
		return "5c", true
	}
	return "", false
}

// unescapeHex returns the character that the escape sequence "\" a b stands
// for. Only the ten sequences of XEP-0106, in lowercase, are recognised.
func unescapeHex(a, b byte) (byte, bool) {
	switch a {
	case '2':
		switch b {
		case '0':
			return ' ', true
		case '2':
			return '"', true
		case '6':
			return '&', true
		case '7':
			return '\'', true
		case 'f':
			return '/', true
		}
	case '3':
		switch b {
		case 'a':
			return ':', true
		case 'c':
			return '<', true
		case 'e':
			return '>', true
		}
	case '4':
		if b == '0' {
			return '@', true
		}
	case '5':
		if b == 'c' {
			return '\\', true
		}
	}
	return 0, false
}

// sequenceAt reports whether s[i:] starts with the two hex digits of a valid
// escape sequence (the part after the backslash).
func sequenceAt(s string, i int) bool {
	if i+1 >= len(s) {
		return false
	}
	_, ok := unescapeHex(s[i], s[i+1])
	return ok
}

// needsEscape reports whether byte i of s must be escaped.
func needsEscape(s string, i int) bool {
	c := s[i]
	if c == '\\' {
		return sequenceAt(s, i+1)
	}
	_, ok := escapeHex(c)
	return ok
}

// EscapeLocal applies the XEP-0106 escaping transformation to s, a name from
// outside XMPP (an email address, an IRC channel), so that it can be the
// localpart of a JID: "alice@example.com" becomes `alice\40example.com`,
// "&chan" becomes `\26chan`, `c:\net` becomes `c\3a\net`.
//
// It does not check the XEP's rule that an escaped localpart may not start
// or end with \20; use EscapeLocalStrict where s comes from outside.
// It returns s itself (no allocation) when nothing needs escaping.
func EscapeLocal(s string) string {
	first := -1
	for i := 0; i < len(s); i++ {
		if needsEscape(s, i) {
			first = i
			break
		}
	}
	if first < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:first])
	for i := first; i < len(s); i++ {
		if needsEscape(s, i) {
			hex, _ := escapeHex(s[i])
			b.WriteByte('\\')
			b.WriteString(hex)
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// EscapeLocalStrict is EscapeLocal for names that must become a valid
// localpart: it fails for an empty name, for invalid UTF-8 and for a name
// that starts or ends with a space (XEP-0106 forbids \20 there).
func EscapeLocalStrict(s string) (string, error) {
	switch {
	case s == "":
		return "", ErrMalformed("an empty name cannot be the local part of an address")
	case !utf8.ValidString(s):
		return "", ErrMalformed("%q cannot be the local part of an address: it is not valid UTF-8", s)
	case s[0] == ' ':
		return "", ErrMalformed("%q cannot be the local part of an address: it starts with a space", s)
	case s[len(s)-1] == ' ':
		return "", ErrMalformed("%q cannot be the local part of an address: it ends with a space", s)
	}
	return EscapeLocal(s), nil
}

// UnescapeLocal undoes XEP-0106 escaping on a JID localpart (as the JID
// package returns it, that is after PRECIS): `#ergo\40irc` becomes
// "#ergo@irc", `alice\40example.com` becomes "alice@example.com",
// `\5c5c` becomes `\5c`. Sequences that are not one of the ten escape
// sequences are left as they are (`\41`, `\2`, `\5C`).
//
// It fails, with a jid-malformed *Error, for a localpart that no valid JID
// can have: invalid UTF-8, \20 at the start or end, or a raw character that
// XEP-0106 escapes (space " & ' / : < > @).
func UnescapeLocal(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", ErrMalformed("the address %q is not valid UTF-8", s)
	}
	if strings.HasPrefix(s, `\20`) {
		return "", ErrMalformed(`the address %q is malformed: it starts with an escaped space (\20)`, s)
	}
	if strings.HasSuffix(s, `\20`) {
		return "", ErrMalformed(`the address %q is malformed: it ends with an escaped space (\20)`, s)
	}
	if i := strings.IndexAny(s, " \"&'/:<>@"); i >= 0 {
		return "", ErrMalformed("the address %q is malformed: it contains %q, which must be escaped in a JID", s, s[i:i+1])
	}
	first := strings.IndexByte(s, '\\')
	if first < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:first])
	for i := first; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+2 < len(s) {
			if d, ok := unescapeHex(s[i+1], s[i+2]); ok {
				b.WriteByte(d)
				i += 2
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// precisLocal maps s as the JID package maps a localpart (PRECIS
// UsernameCaseMapped: width mapping, Unicode lowercase, NFC), without the
// JID package's check for the characters XEP-0106 escapes. Printable ASCII
// without uppercase letters is returned as it is, without work.
func precisLocal(s string) (string, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || (c >= 'A' && c <= 'Z') {
			return precis.UsernameCaseMapped.String(s)
		}
	}
	return s, nil
}

// isASCII reports whether s is all ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// unescapeName unescapes a JID localpart (UnescapeLocal) and checks that
// the name is canonical: that mapping and escaping it again, as the codecs'
// JID methods do, gives a localpart that unescapes to the same name. PRECIS
// can break that only where an escape sequence meets a non-ASCII combining
// character (`\3e` then U+0338 unescapes to ">" U+0338, which NFC turns
// into U+226F), so only such names are checked. Names with a space are
// returned unchecked: no codec accepts them, and its validator says why.
func unescapeName(local string) (string, error) {
	s, err := UnescapeLocal(local)
	if err != nil || s == local || isASCII(s) || strings.IndexByte(s, ' ') >= 0 {
		return s, err
	}
	if m, err := precisLocal(s); err == nil && m == s {
		l := EscapeLocal(s)
		if p, err := precis.UsernameCaseMapped.String(l); err == nil && p == l {
			return s, nil
		}
	}
	return "", ErrMalformed("the address %q is not in canonical form: once unescaped, it changes under PRECIS normalisation", local)
}

// describeRune names a character for an error sentence.
func describeRune(r rune) string {
	switch r {
	case ' ':
		return "a space"
	case ',':
		return "a comma"
	case '\r':
		return "a carriage return"
	case '\n':
		return "a line feed"
	case 0:
		return "a NUL byte"
	case 7:
		return "a BEL character"
	case '\t':
		return "a tab"
	}
	if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
		return fmt.Sprintf("the control character U+%04X", r)
	}
	return fmt.Sprintf("%q", r)
}
