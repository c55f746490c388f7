package component

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// This file is the hot-path XML writer: stanzas are appended to a []byte
// by hand rather than through encoding/xml reflection. Every string that
// goes into the output passes through appendText or appendAttrValue, which
// escape markup characters AND drop every character XML 1.0 forbids (C0
// controls other than tab, LF and CR, lone surrogates, U+FFFE, U+FFFF) and
// replace invalid UTF-8 with U+FFFD. IRC colour codes (\x03), bold (\x02)
// and CTCP (\x01) would otherwise make the XMPP server kill the stream.

// Namespaces used when rendering.
const (
	nsAccept     = "jabber:component:accept"
	nsClient     = "jabber:client"
	nsStanzas    = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsCommands   = "http://jabber.org/protocol/commands"
	nsRegister   = "jabber:iq:register"
	nsGateway    = "jabber:iq:gateway"
	nsPing       = "urn:xmpp:ping"
	nsVersion    = "jabber:iq:version"
	nsTime       = "urn:xmpp:time"
	nsData       = "jabber:x:data"
	nsMUC        = "http://jabber.org/protocol/muc"
	nsMUCUser    = "http://jabber.org/protocol/muc#user"
	nsMUCAdmin   = "http://jabber.org/protocol/muc#admin"
	nsMAM        = "urn:xmpp:mam:2"
	nsRSM        = "http://jabber.org/protocol/rsm"
	nsForward    = "urn:xmpp:forward:0"
	nsDelay      = "urn:xmpp:delay"
	nsSID        = "urn:xmpp:sid:0"
	nsReceipts   = "urn:xmpp:receipts"
	nsReactions  = "urn:xmpp:reactions:0"
	nsCorrect    = "urn:xmpp:message-correct:0"
	nsReply      = "urn:xmpp:reply:0"
	nsFallback   = "urn:xmpp:fallback:0"
	nsOOB        = "jabber:x:oob"
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsJIDEscape  = "jid\\20escaping"
	nsVCard      = "vcard-temp"
	nsXML        = "http://www.w3.org/XML/1998/namespace"
)

// isXMLChar reports whether r may appear in an XML 1.0 document.
func isXMLChar(r rune) bool {
	switch {
	case r == 0x09 || r == 0x0A || r == 0x0D:
		return true
	case r >= 0x20 && r <= 0xD7FF:
		return true
	case r >= 0xE000 && r <= 0xFFFD:
		return true
	case r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// needsWork reports whether s holds any byte that appendText or
// appendAttrValue must change (markup, controls, non-ASCII that may be
// invalid). Pure printable ASCII without markup, the common case, is
// appended as it is.
func needsWork(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7F || c == '&' || c == '<' || c == '>' || c == '\'' || c == '"' {
			return true
		}
	}
	return false
}

// appendText appends s as XML character data.
func appendText(b []byte, s string) []byte {
	if !needsWork(s) {
		return append(b, s...)
	}
	return appendEscaped(b, s, false)
}

// appendAttrValue appends s escaped for a single-quoted attribute value.
func appendAttrValue(b []byte, s string) []byte {
	if !needsWork(s) {
		return append(b, s...)
	}
	return appendEscaped(b, s, true)
}

func appendEscaped(b []byte, s string, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		var repl string
		width := 1
		if c < utf8.RuneSelf {
			switch c {
			case '&':
				repl = "&amp;"
			case '<':
				repl = "&lt;"
			case '>':
				repl = "&gt;"
			case '\'':
				if attr {
					repl = "&apos;"
				}
			case '"':
				if attr {
					repl = "&quot;"
				}
			case '\r':
				repl = "&#xD;"
			case '\n':
				if attr {
					repl = "&#xA;"
				}
			case '\t':
				if attr {
					repl = "&#x9;"
				}
			default:
				if c < 0x20 { // a control XML forbids: dropped
					b = append(b, s[last:i]...)
					i++
					last = i
					continue
				}
			}
		} else {
			r, w := utf8.DecodeRuneInString(s[i:])
			width = w
			switch {
			case r == utf8.RuneError && w == 1:
				repl = "\uFFFD"
			case !isXMLChar(r):
				b = append(b, s[last:i]...)
				i += w
				last = i
				continue
			}
		}
		if repl != "" {
			b = append(b, s[last:i]...)
			b = append(b, repl...)
			i += width
			last = i
			continue
		}
		i += width
	}
	return append(b, s[last:]...)
}

// Sanitize returns s with every character XML 1.0 forbids removed and
// invalid UTF-8 replaced by U+FFFD; markup characters are kept (the
// writer escapes them). Transports may use it to see what a user will
// receive.
func Sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				clean = false
				break
			}
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && w == 1) || !isXMLChar(r) {
			clean = false
			break
		}
		i += w
	}
	if clean {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 || c == '\t' || c == '\n' || c == '\r' {
				out = append(out, c)
			}
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && w == 1:
			out = append(out, "\uFFFD"...)
		case isXMLChar(r):
			out = append(out, s[i:i+w]...)
		}
		i += w
	}
	return string(out)
}

// attr appends ` name='value'` when value is not empty.
func attr(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	return attrAlways(b, name, value)
}

// attrAlways appends ` name='value'` even for an empty value.
func attrAlways(b []byte, name, value string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, '=', '\'')
	b = appendAttrValue(b, value)
	return append(b, '\'')
}

// attrInt appends ` name='n'`.
func attrInt(b []byte, name string, n int) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, '=', '\'')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\'')
}

// textElem appends <name>text</name> (with xmlns when ns is set).
func textElem(b []byte, name, ns, text string) []byte {
	b = append(b, '<')
	b = append(b, name...)
	b = attr(b, "xmlns", ns)
	b = append(b, '>')
	b = appendText(b, text)
	b = append(b, '<', '/')
	b = append(b, name...)
	return append(b, '>')
}

// endElem appends </name>.
func endElem(b []byte, name string) []byte {
	b = append(b, '<', '/')
	b = append(b, name...)
	return append(b, '>')
}

// stampFormat is the XEP-0082 DateTime profile with milliseconds.
const stampFormat = "2006-01-02T15:04:05.000Z"

// appendStamp appends t in UTC as a XEP-0082 DateTime.
func appendStamp(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, stampFormat)
}
