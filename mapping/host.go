package mapping

import (
	"fmt"
	"net/netip"
	"strings"

	"mellium.im/xmpp/jid"
)

// HostNameProblem says why s is not a DNS host name (RFC 1123 labels of
// ASCII letters, digits and hyphens), or returns "" when it is one. s may
// have uppercase letters; the caller lowercases. The email transport's
// address checks use it too.
func HostNameProblem(s string) string {
	switch {
	case s == "":
		return "it is empty"
	case len(s) > 253:
		return "it is longer than 253 characters"
	case s[len(s)-1] == '.':
		return "it ends with a dot"
	}
	labelStart := 0
	lastAllDigits := true
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
				lastAllDigits = false
			case c == '-':
				lastAllDigits = false
			default:
				if c >= 0x80 {
					return "it has non-ASCII characters (write an internationalised name in its xn-- form)"
				}
				return "it contains " + describeRune(rune(c))
			}
			continue
		}
		label := s[labelStart:i]
		switch {
		case label == "":
			return "it has an empty label (two dots in a row, or a leading dot)"
		case len(label) > 63:
			return "one of its labels is longer than 63 characters"
		case label[0] == '-' || label[len(label)-1] == '-':
			return "a label starts or ends with a hyphen"
		}
		if i < len(s) {
			labelStart = i + 1
			lastAllDigits = true
		}
	}
	if lastAllDigits {
		return "its last label is all digits, which no host name has"
	}
	return ""
}

// normalizeHost returns the canonical spelling of a host name (lowercased)
// or IP literal (IPv4 dotted quad, IPv6 compressed, without brackets). When
// s is neither, it returns a reason ("it contains a space") instead.
func normalizeHost(s string) (host, problem string) {
	inner := s
	bracketed := len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']'
	if bracketed {
		inner = s[1 : len(s)-1]
	}
	if ip, err := netip.ParseAddr(inner); err == nil {
		if ip.Zone() != "" {
			return "", "it is an IP address with a zone"
		}
		if bracketed && !ip.Is6() {
			return "", "only IPv6 addresses go in brackets"
		}
		return ip.String(), ""
	}
	if bracketed {
		return "", "it is not a valid IPv6 address"
	}
	if p := HostNameProblem(s); p != "" {
		return "", p
	}
	return strings.ToLower(s), ""
}

// normalizeDomain checks a component domain and returns it as the JID
// package spells it (lowercase, no trailing dot).
func normalizeDomain(domain string) (string, error) {
	j, err := jid.Parse(domain)
	if err != nil || j.Localpart() != "" || j.Resourcepart() != "" || domain == "" {
		return "", fmt.Errorf("%q is not a valid component domain", domain)
	}
	return j.Domainpart(), nil
}

// errNotOurs is the error for a JID addressed to another domain.
func errNotOurs(j jid.JID, domain string) error {
	return &Error{
		Condition: "item-not-found",
		Text:      fmt.Sprintf("%s is not an address of %s", j.String(), domain),
	}
}
