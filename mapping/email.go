package mapping

import (
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// Email JIDs (local parts shown as sent):
//
//	mail.example.org                          the gateway (KindGateway)
//	alice\40example.com@mail.example.org      a mailbox (KindContact)
//	alice%example.com@mail.example.org        the same mailbox; accepted, never produced
//
// Mailboxes are RFC 5321 dot-strings: quoted local parts ("a b"@example.com)
// and address literals (alice@[192.0.2.1]) are refused. Non-ASCII local
// parts (RFC 6531) are accepted; the transport must check that the server
// offers SMTPUTF8 before sending to one. Domains must be ASCII (the xn--
// form of an internationalised domain).
//
// Case: the JID package lowercases the whole local part (PRECIS), so the
// mailbox taken from a JID is lowercase, local part included, and so is
// every Address this codec builds. Mail systems virtually all treat local
// parts case-insensitively; a mailbox that really needs uppercase cannot be
// reached through the gateway.

// Limits of RFC 5321 §4.5.3.1 (path as amended by erratum 1690).
const (
	mailMaxLocal = 64
	mailMaxPath  = 254
)

// EmailCodec maps JIDs of the email component domain to Addresses and back.
// It is safe for concurrent use.
type EmailCodec struct {
	domain string
}

var _ Codec = (*EmailCodec)(nil)

// NewEmailCodec returns the codec for the email component domain. The
// domain is normalised as the JID package does (lowercase, no trailing dot);
// a domain that is not valid is kept lowercased and simply never matches.
func NewEmailCodec(domain string) *EmailCodec {
	d, err := normalizeDomain(domain)
	if err != nil {
		d = strings.TrimSuffix(strings.ToLower(domain), ".")
	}
	return &EmailCodec{domain: d}
}

// Domain returns the component domain.
func (c *EmailCodec) Domain() string { return c.domain }

// isAtext reports whether an ASCII byte may appear in a dot-atom (RFC 5322
// atext), the dot excepted.
func isAtext(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", b) >= 0
}

// NormalizeMailbox checks that s is an RFC 5321 mailbox (local@domain, a
// dot-string local part of at most 64 bytes, a host name domain, at most 254
// bytes in all) and returns it with its domain lowercased. The local part is
// kept as it is. Errors are jid-malformed *Error with a sentence.
func NormalizeMailbox(s string) (string, error) {
	bad := func(why string) error {
		return ErrMalformed("%q is not a valid email address: %s", s, why)
	}
	if s == "" {
		return "", ErrMalformed("an email address cannot be empty")
	}
	if !utf8.ValidString(s) {
		return "", bad("it is not valid UTF-8")
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", bad("it has no @")
	}
	local, domain := s[:at], s[at+1:]
	switch {
	case len(s) > mailMaxPath:
		return "", bad(fmt.Sprintf("it is longer than %d bytes", mailMaxPath))
	case local == "":
		return "", bad("nothing comes before the @")
	case domain == "":
		return "", bad("nothing comes after the @")
	case len(local) > mailMaxLocal:
		return "", bad(fmt.Sprintf("the part before the @ is longer than %d bytes", mailMaxLocal))
	case local[0] == '.' || local[len(local)-1] == '.':
		return "", bad("the part before the @ starts or ends with a dot")
	case strings.Contains(local, ".."):
		return "", bad("the part before the @ has two dots in a row")
	case domain[0] == '[':
		return "", bad("addresses at an IP literal are not accepted")
	}
	for _, r := range local {
		switch {
		case r == '.':
		case r < utf8.RuneSelf && isAtext(byte(r)):
		case r == ' ' || r == ',' || r == '\t' || isControl(r):
			return "", bad("it contains " + describeRune(r))
		case r >= utf8.RuneSelf && !unicode.IsSpace(r) && unicode.IsPrint(r):
			// RFC 6531 UTF8-non-ascii.
		default:
			return "", bad("the part before the @ contains " + describeRune(r))
		}
	}
	if p := HostNameProblem(domain); p != "" {
		return "", bad("the domain " + p)
	}
	lower := strings.ToLower(domain)
	if lower == domain {
		return s, nil
	}
	return local + "@" + lower, nil
}

// Parse takes apart a JID of the email domain. Errors are *Error:
// item-not-found for another domain, jid-malformed for anything else.
func (c *EmailCodec) Parse(j jid.JID) (Address, error) {
	if j.Domainpart() != c.domain {
		return Address{}, errNotOurs(j, c.domain)
	}
	res := j.Resourcepart()
	local := j.Localpart()
	if local == "" {
		return Address{Kind: KindGateway, Domain: c.domain, Resource: res}, nil
	}
	s, err := unescapeName(local)
	if err != nil {
		return Address{}, err
	}
	if strings.IndexByte(s, '@') < 0 {
		i := strings.LastIndexByte(s, '%')
		if i < 0 {
			return Address{}, ErrMalformed(`%q is not an email address: write alice@example.com as alice\40example.com@%s`, s, c.domain)
		}
		s = s[:i] + "@" + s[i+1:]
	}
	mb, err := NormalizeMailbox(s)
	if err != nil {
		return Address{}, err
	}
	return Address{Kind: KindContact, Domain: c.domain, Name: mb, Resource: res}, nil
}

// JID builds the gateway JID of a mailbox (`alice\40example.com@domain`)
// or of the gateway itself. Domain may be empty (the codec's is used).
func (c *EmailCodec) JID(a Address) (jid.JID, error) {
	if a.Domain != "" && a.Domain != c.domain {
		return jid.JID{}, &Error{Condition: "item-not-found", Text: fmt.Sprintf("%s is not the email gateway %s", a.Domain, c.domain)}
	}
	switch a.Kind {
	case KindGateway:
		j, err := jid.New("", c.domain, a.Resource)
		if err != nil {
			return jid.JID{}, ErrMalformed("the resource %q cannot be part of an XMPP address: %v", a.Resource, err)
		}
		return j, nil
	case KindContact:
	default:
		return jid.JID{}, ErrMalformed("the email gateway has no %s addresses, only mailboxes", a.Kind)
	}
	mb, err := NormalizeMailbox(a.Name)
	if err != nil {
		return jid.JID{}, err
	}
	// Map as PRECIS will, then check again: a fullwidth '@' becomes '@'.
	if mapped, err := precisLocal(mb); err != nil {
		return jid.JID{}, ErrMalformed("the email address %q cannot be written as an XMPP address: %v", mb, err)
	} else if mapped != mb {
		if mb, err = NormalizeMailbox(mapped); err != nil {
			return jid.JID{}, err
		}
	}
	local := EscapeLocal(mb)
	j, err := jid.New(local, c.domain, a.Resource)
	if err != nil {
		return jid.JID{}, ErrMalformed("the email address %q cannot be written as an XMPP address: %v", mb, err)
	}
	if j.Localpart() != local {
		return jid.JID{}, ErrMalformed("the email address %q cannot be written as an XMPP address: PRECIS changes its escaped form", mb)
	}
	return j, nil
}

// Mailbox returns the canonical contact Address for an email address that
// comes from the mail side (a From header, say): validated, and lowercased
// as Parse would return it, so that it compares equal (==) to the Address
// of the same mailbox parsed from a JID.
func (c *EmailCodec) Mailbox(addr string) (Address, error) {
	j, err := c.JID(Address{Kind: KindContact, Domain: c.domain, Name: addr})
	if err != nil {
		return Address{}, err
	}
	return c.Parse(j)
}

// Translate turns what a user typed into a mailbox Address:
// "alice@example.com", "Alice <alice@example.com>", "mailto:alice@example.com",
// or a JID of this gateway pasted as is. Surrounding space is ignored.
func (c *EmailCodec) Translate(typed string) (Address, error) {
	s := strings.TrimSpace(typed)
	if s == "" {
		return Address{}, &Error{Condition: "bad-request", Text: "type an email address, such as alice@example.com"}
	}
	if len(s) >= 7 && strings.EqualFold(s[:7], "mailto:") {
		u, err := url.Parse(s)
		if err != nil || u.Opaque == "" {
			return Address{}, ErrMalformed("%q is not a valid mailto: link", s)
		}
		s, err = url.PathUnescape(u.Opaque)
		if err != nil {
			return Address{}, ErrMalformed("%q is not a valid mailto: link", typed)
		}
	}
	if strings.ContainsAny(s, "<>\"() ") {
		if a, err := mail.ParseAddress(s); err == nil {
			s = a.Address
		}
	}
	if at := strings.LastIndexByte(s, '@'); at >= 0 && strings.EqualFold(s[at+1:], c.domain) {
		// A pasted gateway JID; an address at the gateway's own domain
		// ("postmaster@mail.example.org") falls through to a mailbox.
		if j, err := jid.Parse(s); err == nil {
			if a, err := c.Parse(j); err == nil {
				return a, nil
			}
		}
	}
	return c.Mailbox(s)
}

// Prompt returns the XEP-0100 prompt and description.
func (c *EmailCodec) Prompt() (prompt, desc string) {
	return "Email address", "Type the email address of the person to write to, such as alice@example.com. " +
		`It becomes a contact like alice\40example.com@` + c.domain + "."
}
