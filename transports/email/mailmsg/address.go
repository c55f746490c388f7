package mailmsg

import (
	"errors"
	"fmt"
	"strings"
	"switchboard/mapping"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/mail"
)

// RFC 5321 §4.5.3.1 limits, in octets.
const (
	maxLocalPart = 64
	maxDomain    = 255
	maxPath      = 254 // 256 for the path, brackets included
)

// AddressError is the error of ValidateAddress and Build for a bad
// address: a sentence a user can act on.
type AddressError struct {
	Input string // the address as given
	Why   string // what is wrong, a sentence fragment
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("%q is not a valid email address: %s", e.Input, e.Why)
}

func validateAddress(s string) (Address, error) {
	bad := func(format string, args ...any) (Address, error) {
		return Address{}, &AddressError{Input: s, Why: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(s) == "" {
		return Address{}, errors.New("an email address cannot be empty")
	}
	if !utf8.ValidString(s) {
		return bad("it is not valid UTF-8")
	}
	if i := strings.IndexFunc(s, isControl); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return bad("it contains %s", describeRune(r))
	}
	in := strings.TrimSpace(s)
	var a Address
	if strings.ContainsAny(in, "<\"(") || strings.HasPrefix(in, "=?") {
		// A display name, a comment or a quoted local part: RFC 5322 syntax.
		pa, err := mail.ParseAddress(in)
		if err != nil {
			if strings.HasPrefix(in, `"`) && strings.Contains(in, `"@`) {
				return bad(`quoted local parts (like "john doe"@example.com) are not supported; use an address without quotes or spaces`)
			}
			return bad("it cannot be read as Name <address> (%v)", strings.TrimPrefix(err.Error(), "mail: "))
		}
		a = Address{Name: strings.ToValidUTF8(pa.Name, "\uFFFD"), Addr: pa.Address}
		if i := strings.IndexFunc(a.Name, isControl); i >= 0 {
			return bad("its display name contains a control character")
		}
	} else {
		a = Address{Addr: in}
	}
	addr := a.Addr
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return bad("it has no @")
	}
	local, domain := addr[:at], addr[at+1:]
	switch {
	case local == "":
		return bad("nothing comes before the @")
	case domain == "":
		return bad("nothing comes after the @")
	case strings.ContainsAny(local, `"\ `) || strings.Contains(local, "@"):
		return bad(`quoted local parts (like "john doe"@example.com) are not supported; use an address without quotes or spaces`)
	case len(local) > maxLocalPart:
		return bad("the part before the @ is %d bytes long, more than the %d allowed", len(local), maxLocalPart)
	case len(domain) > maxDomain:
		return bad("the domain is %d bytes long, more than the %d allowed", len(domain), maxDomain)
	case len(addr) > maxPath:
		return bad("it is %d bytes long, more than the %d allowed", len(addr), maxPath)
	case local[0] == '.' || local[len(local)-1] == '.':
		return bad("the part before the @ starts or ends with a dot")
	case strings.Contains(local, ".."):
		return bad("the part before the @ has two dots in a row")
	case domain[0] == '[':
		return bad("addresses at an IP address literal (%s) are not accepted; use a domain name", domain)
	}
	for _, r := range local {
		switch {
		case r == '.':
		case r < utf8.RuneSelf && isAtext(byte(r)):
		case r >= utf8.RuneSelf && !unicode.IsSpace(r) && unicode.IsPrint(r):
			// RFC 6531 UTF8-non-ascii (needs SMTPUTF8 to be sent).
		default:
			return bad("the part before the @ contains %s, which needs quoting and is not supported", describeRune(r))
		}
	}
	if why := mapping.HostNameProblem(domain); why != "" {
		return bad("the domain %q is not a valid host name (%s)", domain, why)
	}
	a.Addr = local + "@" + strings.ToLower(domain)
	return a, nil
}

// isAtext reports whether an ASCII byte may appear in a dot-atom (RFC 5322
// atext), the dot excepted.
func isAtext(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", b) >= 0
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

func describeRune(r rune) string {
	switch r {
	case '\r':
		return "a carriage return (CR)"
	case '\n':
		return "a line feed (LF)"
	case 0:
		return "a NUL byte"
	case '\t':
		return "a tab"
	case ' ':
		return "a space"
	}
	if isControl(r) {
		return fmt.Sprintf("the control character U+%04X", r)
	}
	return fmt.Sprintf("%q", r)
}
