package irc

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file holds the text rules between XMPP and IRC: what may reach an
// IRC line, how long text is cut into lines, CTCP framing, and IRC
// formatting codes.

// maxLine is the IRC line limit without tags, "\r\n" included (RFC 1459).
const maxLine = 512

// cleanText prepares text that came from XMPP for IRC: it turns CR LF, a
// lone CR and a lone LF into line breaks and returns the lines. NUL and
// every other C0 control character except TAB (and the IRC formatting codes
// a user may have typed) are removed, so that nothing the user sent can end
// an IRC line, start another command, or forge a CTCP (\x01). Empty lines
// are dropped: IRC cannot carry them.
func cleanText(s string) []string {
	if s == "" {
		return nil
	}
	lines := make([]string, 0, 1+strings.Count(s, "\n"))
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '\n' && s[i] != '\r' {
			continue
		}
		if l := cleanLine(s[start:i]); l != "" {
			lines = append(lines, l)
		}
		if i < len(s) && s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		start = i + 1
	}
	return lines
}

// cleanLine removes the control characters cleanText refuses from one line
// (which holds no CR or LF) and replaces invalid UTF-8 with U+FFFD. It
// returns s itself when nothing needs to change.
func cleanLine(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && !keptControl(c) {
			ok = false
			break
		}
	}
	if ok && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s { // ranging replaces invalid UTF-8 with U+FFFD
		if r < 0x20 && !keptControl(byte(r)) {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// keptControl reports the C0 characters an XMPP user may send to IRC: TAB
// and the IRC formatting codes (bold, colour, hex colour, reset, reverse,
// italic, strikethrough, underline, monospace).
func keptControl(c byte) bool {
	switch c {
	case '\t', 0x02, 0x03, 0x04, 0x0f, 0x11, 0x16, 0x1d, 0x1e, 0x1f:
		return true
	}
	return false
}

// safeParam reports whether s may be sent as an IRC parameter at all: no
// NUL, CR or LF. It is the last check before a line is written (see
// conn.send), independent of the cleaning above.
func safeParam(s string) bool {
	return strings.IndexByte(s, 0) < 0 && strings.IndexByte(s, '\r') < 0 && strings.IndexByte(s, '\n') < 0
}

// validTarget reports whether s can be a middle parameter naming a target
// (channel, nick, mode argument): not empty, no space, comma or control
// character, not starting with ':'.
func validTarget(s string) bool {
	if s == "" || s[0] == ':' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == ',' || c == 0x7f {
			return false
		}
	}
	return true
}

// splitLine cuts one line (no CR or LF) into pieces of at most max bytes.
// Cuts fall before a space when one is in the second half of the window,
// otherwise between two characters (never inside a UTF-8 sequence, and not
// before a combining mark or joiner when that can be avoided). No
// character is lost: the pieces joined give s back, spaces included.
func splitLine(s string, max int) []string {
	if max < utf8.UTFMax {
		max = utf8.UTFMax
	}
	if len(s) <= max {
		return []string{s}
	}
	out := make([]string, 0, len(s)/max+1)
	for len(s) > max {
		cut := cutPoint(s, max)
		out = append(out, s[:cut])
		s = s[cut:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

// cutPoint returns where to cut s (len(s) > max) so that s[:cut] has at most
// max bytes and cut > 0.
func cutPoint(s string, max int) int {
	// The longest prefix that ends on a character boundary.
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if cut == 0 { // not UTF-8 at all; cut bytes
		return max
	}
	// A word boundary: cut before the last space, if it is not too early.
	// The space starts the next piece rather than ending this one: some
	// servers (ngircd) strip trailing spaces from every line they read, but
	// none strips the start of a trailing parameter.
	if sp := strings.LastIndexByte(s[:cut+1], ' '); sp > 0 && sp >= max/2 {
		return sp
	}
	// Keep a character and the marks that combine with it together, as
	// long as that leaves a reasonable piece.
	c := cut
	for c > max/2 {
		r, _ := utf8.DecodeRuneInString(s[c:])
		if !joinsPrevious(r) {
			break
		}
		_, n := utf8.DecodeLastRuneInString(s[:c])
		c -= n
	}
	if c > max/2 {
		return c
	}
	return cut
}

// joinsPrevious reports runes that belong to the character before them:
// combining marks, variation selectors, zero-width joiners, emoji
// modifiers.
func joinsPrevious(r rune) bool {
	switch {
	case r == 0x200d, r == 0x200c: // ZWJ, ZWNJ
		return true
	case r >= 0xfe00 && r <= 0xfe0f, r >= 0xe0100 && r <= 0xe01ef: // variation selectors
		return true
	case r >= 0x1f3fb && r <= 0x1f3ff: // skin tone modifiers
		return true
	case r >= 0xe0020 && r <= 0xe007f: // tag characters (flags)
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Mc)
}

// splitText turns a message body into IRC payloads: one per line, each cut
// to at most max bytes.
func splitText(body string, max int) []string {
	lines := cleanText(body)
	if len(lines) == 1 && len(lines[0]) <= max {
		return lines
	}
	var out []string
	for _, l := range lines {
		out = append(out, splitLine(l, max)...)
	}
	return out
}

// ---------------------------------------------------------------- CTCP

// ctcp is a parsed CTCP message (\x01COMMAND args\x01).
type ctcp struct {
	Command string // upper case
	Args    string
}

// parseCTCP reads a CTCP message from a PRIVMSG or NOTICE text.
func parseCTCP(text string) (ctcp, bool) {
	if len(text) < 2 || text[0] != 0x01 {
		return ctcp{}, false
	}
	text = strings.TrimSuffix(text[1:], "\x01")
	cmd, args, _ := strings.Cut(text, " ")
	if cmd == "" {
		return ctcp{}, false
	}
	return ctcp{Command: strings.ToUpper(cmd), Args: args}, true
}

// ctcpText frames a CTCP message.
func ctcpText(cmd, args string) string {
	if args == "" {
		return "\x01" + cmd + "\x01"
	}
	return "\x01" + cmd + " " + args + "\x01"
}

// ---------------------------------------------------------------- formatting

// IRC formatting codes (https://modern.ircdocs.horse/formatting).
const (
	fmtBold          = 0x02
	fmtColor         = 0x03
	fmtHexColor      = 0x04
	fmtReset         = 0x0f
	fmtMonospace     = 0x11
	fmtReverse       = 0x16
	fmtItalic        = 0x1d
	fmtStrikethrough = 0x1e
	fmtUnderline     = 0x1f
)

// style bits that XEP-0393 can show.
const (
	styleBold = 1 << iota
	styleItalic
	styleStrike
	styleMono
)

// hasFormatting reports whether s holds any IRC formatting code.
func hasFormatting(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case fmtBold, fmtColor, fmtHexColor, fmtReset, fmtMonospace, fmtReverse, fmtItalic, fmtStrikethrough, fmtUnderline:
			return true
		}
	}
	return false
}

// formatToStyling turns IRC formatting into XEP-0393 message styling: bold
// becomes *bold*, italic _italic_, strikethrough ~strike~, monospace
// `mono`; colours, reverse and underline (which XEP-0393 lacks) are
// dropped. Other C0 control characters are dropped too (XML cannot carry
// them). Markers are put around the non-space core of each span, as
// XEP-0393 requires, and left out for spans of only spaces.
func formatToStyling(s string) string {
	if !hasFormatting(s) && !hasControl(s) {
		return s
	}
	var out strings.Builder
	out.Grow(len(s) + 8)
	var seg strings.Builder
	cur := 0 // style of seg
	flush := func() {
		writeStyled(&out, seg.String(), cur)
		seg.Reset()
	}
	style := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		next := style
		switch c {
		case fmtBold:
			next ^= styleBold
		case fmtItalic:
			next ^= styleItalic
		case fmtStrikethrough:
			next ^= styleStrike
		case fmtMonospace:
			next ^= styleMono
		case fmtReset:
			next = 0
		case fmtColor:
			i += colorArgLen(s[i+1:], false)
			continue
		case fmtHexColor:
			i += colorArgLen(s[i+1:], true)
			continue
		case fmtReverse, fmtUnderline:
			continue
		default:
			if c < 0x20 && c != '\t' || c == 0x7f {
				continue
			}
			if style != cur {
				flush()
				cur = style
			}
			seg.WriteByte(c)
			continue
		}
		style = next
	}
	flush()
	return out.String()
}

// writeStyled writes text with the XEP-0393 markers of style around its
// non-space core.
func writeStyled(out *strings.Builder, text string, style int) {
	if style == 0 || strings.TrimSpace(text) == "" {
		out.WriteString(text)
		return
	}
	core := strings.TrimSpace(text)
	lead := text[:strings.Index(text, core)]
	trail := text[len(lead)+len(core):]
	out.WriteString(lead)
	open, closing := styleMarkers(style)
	out.WriteString(open)
	out.WriteString(core)
	out.WriteString(closing)
	out.WriteString(trail)
}

// styleMarkers returns the opening and closing markers of style, nested
// bold, italic, strikethrough, monospace from the outside in.
func styleMarkers(style int) (string, string) {
	var open, closing string
	for _, m := range []struct {
		bit    int
		marker string
	}{{styleBold, "*"}, {styleItalic, "_"}, {styleStrike, "~"}, {styleMono, "`"}} {
		if style&m.bit != 0 {
			open += m.marker
			closing = m.marker + closing
		}
	}
	return open, closing
}

// colorArgLen returns how many bytes of s (the text after a colour code)
// are the colour's arguments: "NN[,NN]" with 1–2 digits for \x03, "RRGGBB[,RRGGBB]"
// for \x04.
func colorArgLen(s string, hex bool) int {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	isHex := func(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
	one := func(s string) int {
		if hex {
			if len(s) >= 6 {
				for i := 0; i < 6; i++ {
					if !isHex(s[i]) {
						return 0
					}
				}
				return 6
			}
			return 0
		}
		n := 0
		for n < 2 && n < len(s) && isDigit(s[n]) {
			n++
		}
		return n
	}
	n := one(s)
	if n == 0 {
		return 0
	}
	if n < len(s) && s[n] == ',' {
		if m := one(s[n+1:]); m > 0 {
			return n + 1 + m
		}
	}
	return n
}

// hasControl reports whether s holds a C0 control character other than
// TAB, or DEL.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// stripFormatting removes every IRC formatting code and control character
// (for topics, reasons and nick lists, where styling markers would only be
// noise).
func stripFormatting(s string) string {
	if !hasFormatting(s) && !hasControl(s) {
		return s
	}
	var out strings.Builder
	out.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == fmtColor:
			i += colorArgLen(s[i+1:], false)
		case c == fmtHexColor:
			i += colorArgLen(s[i+1:], true)
		case c < 0x20 && c != '\t' || c == 0x7f:
		default:
			out.WriteByte(c)
		}
	}
	return out.String()
}

// toXMPPText prepares IRC text for an XMPP body: formatting mapped to
// XEP-0393, control characters dropped. Characters XML 1.0 cannot carry
// otherwise (U+FFFE, invalid UTF-8) are the component's to remove: it
// cleans every string it writes (component/xmlwrite.go).
func toXMPPText(s string) string {
	return formatToStyling(s)
}
