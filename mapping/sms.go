package mapping

import (
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
	"mellium.im/xmpp/jid"
)

// SMS JIDs:
//
//	sms.example.org                  the gateway (KindGateway)
//	+12025550123@sms.example.org     a phone number (KindContact)
//
// The local part is always E.164 ('+', country code, national number, no
// spaces) and must be a valid number for its country according to
// libphonenumber (github.com/nyaruka/phonenumbers): a number is refused
// when its country plan has no such numbers, which also refuses the
// fictional US 555 exchange numbers except 555-0100 to 555-0199 (so
// "+15551234567" is refused, "+12025550123" is accepted). Short codes and
// alphanumeric sender IDs are not phone numbers here.

// SMSCodec maps JIDs of the SMS component domain to Addresses and back. It
// is safe for concurrent use.
type SMSCodec struct {
	domain string
	region string
}

var _ Codec = (*SMSCodec)(nil)

// NewSMSCodec returns the codec for the SMS component domain.
// defaultRegion is the ISO 3166 country code ("US", "GB") used to read
// numbers typed in national form; "" means numbers must be typed in
// international form, starting with +. It fails for an invalid domain or
// a region libphonenumber does not know.
func NewSMSCodec(domain, defaultRegion string) (*SMSCodec, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("sms gateway: %w", err)
	}
	region := strings.ToUpper(strings.TrimSpace(defaultRegion))
	if region != "" && !phonenumbers.GetSupportedRegions()[region] {
		return nil, fmt.Errorf("sms gateway %s: %q is not a region phone numbers are known for: use a two-letter ISO 3166 country code such as US or GB", d, defaultRegion)
	}
	return &SMSCodec{domain: d, region: region}, nil
}

// Domain returns the component domain.
func (c *SMSCodec) Domain() string { return c.domain }

// Region returns the default region ("" when none).
func (c *SMSCodec) Region() string { return c.region }

// isE164Syntax reports whether s is '+' and 2 to 15 digits, the first not 0.
func isE164Syntax(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidE164 checks that s is a phone number in canonical E.164 form
// ("+12025550123") and valid for its country. Errors are jid-malformed
// *Error with a sentence.
func ValidE164(s string) error {
	if !isE164Syntax(s) {
		return ErrMalformed("%q is not a phone number in international form: write + and the country code, then the number, with no spaces (e.g. +12025550123)", s)
	}
	n, err := phonenumbers.Parse(s, "")
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return ErrMalformed("%q is not a valid phone number", s)
	}
	if e := phonenumbers.Format(n, phonenumbers.E164); e != s {
		return ErrMalformed("%q is not written in E.164 form; write %s", s, e)
	}
	return nil
}

// Parse takes apart a JID of the SMS domain. Errors are *Error:
// item-not-found for another domain, jid-malformed for anything else.
func (c *SMSCodec) Parse(j jid.JID) (Address, error) {
	if j.Domainpart() != c.domain {
		return Address{}, errNotOurs(j, c.domain)
	}
	res := j.Resourcepart()
	local := j.Localpart()
	if local == "" {
		return Address{Kind: KindGateway, Domain: c.domain, Resource: res}, nil
	}
	if num, inbox, ok := strings.Cut(local, "%"); ok {
		// A team inbox conversation: "+12025550123%sales".
		if err := ValidInboxName(inbox); err != nil {
			return Address{}, err
		}
		if err := validRemote(num); err != nil {
			return Address{}, err
		}
		if res != "" {
			return Address{Kind: KindOccupant, Domain: c.domain, Network: inbox, Name: num, Resource: res}, nil
		}
		return Address{Kind: KindRoom, Domain: c.domain, Network: inbox, Name: num}, nil
	}
	if err := validRemote(local); err != nil {
		return Address{}, err
	}
	return Address{Kind: KindContact, Domain: c.domain, Name: local, Resource: res}, nil
}

// JID builds the gateway JID of a phone number ("+12025550123@domain") or
// of the gateway itself. Domain may be empty (the codec's is used).
func (c *SMSCodec) JID(a Address) (jid.JID, error) {
	if a.Domain != "" && a.Domain != c.domain {
		return jid.JID{}, &Error{Condition: "item-not-found", Text: fmt.Sprintf("%s is not the SMS gateway %s", a.Domain, c.domain)}
	}
	var local string
	switch a.Kind {
	case KindGateway:
	case KindContact:
		if err := validRemote(a.Name); err != nil {
			return jid.JID{}, err
		}
		local = a.Name
	case KindRoom, KindOccupant:
		if err := validRemote(a.Name); err != nil {
			return jid.JID{}, err
		}
		if err := ValidInboxName(a.Network); err != nil {
			return jid.JID{}, err
		}
		local = a.Name + "%" + a.Network
		if a.Kind == KindRoom {
			a.Resource = ""
		}
	default:
		return jid.JID{}, ErrMalformed("the SMS gateway has no %s addresses, only phone numbers", a.Kind)
	}
	j, err := jid.New(local, c.domain, a.Resource)
	if err != nil {
		return jid.JID{}, ErrMalformed("the resource %q cannot be part of an XMPP address: %v", a.Resource, err)
	}
	return j, nil
}

// Number returns the contact Address of a phone number that comes from the
// SMS side (a webhook's From), which must already be in E.164 form.
func (c *SMSCodec) Number(e164 string) (Address, error) {
	if err := validRemote(e164); err != nil {
		return Address{}, err
	}
	return Address{Kind: KindContact, Domain: c.domain, Name: e164}, nil
}

// Translate turns what a user typed into a phone number Address: an
// international number ("+1 202 555 0123", "+44 7911 123456"), a national
// one read with the default region ("(202) 555-0123" in region US), a
// "tel:" or "sms:" link, or a JID of this gateway. Only digits, spaces and
// + - ( ) . / may appear in a number; letters (vanity numbers, extensions)
// are refused. The number must be valid (phonenumbers.IsValidNumber).
func (c *SMSCodec) Translate(typed string) (Address, error) {
	s := strings.TrimSpace(typed)
	if s == "" {
		return Address{}, &Error{Condition: "bad-request", Text: "type a phone number, such as +12025550123"}
	}
	if strings.IndexByte(s, '@') >= 0 {
		j, err := jid.Parse(s)
		if err != nil {
			return Address{}, ErrMalformed("%q is not a phone number", s)
		}
		if j.Domainpart() != c.domain {
			return Address{}, ErrMalformed("%q is an address of another service, not a phone number", s)
		}
		return c.Parse(j)
	}
	for _, p := range []string{"tel:", "sms:"} {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			s = strings.TrimSpace(s[len(p):])
			if i := strings.IndexAny(s, ";?"); i >= 0 {
				s = s[:i]
			}
			break
		}
	}
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == ' ' || r == '+' || r == '-' || r == '(' || r == ')' || r == '.' || r == '/':
		default:
			return Address{}, ErrMalformed("%q is not a phone number: it may contain only digits, spaces and + - ( ) . /", s)
		}
	}
	if IsShortCode(s) {
		return c.Number(s)
	}
	if digits == 0 {
		return Address{}, ErrMalformed("%q is not a phone number: it has no digits", s)
	}
	if len(s) > 64 {
		return Address{}, ErrMalformed("%q is too long to be a phone number", s)
	}
	international := strings.HasPrefix(s, "+")
	if !international && c.region == "" {
		return Address{}, ErrMalformed("%q is not in international form: start with + and the country code (e.g. +12025550123)", s)
	}
	n, err := phonenumbers.Parse(s, c.region)
	if err != nil {
		return Address{}, ErrMalformed("%q is not a phone number: %v", s, err)
	}
	if !phonenumbers.IsValidNumber(n) {
		if international {
			return Address{}, ErrMalformed("%q is not a valid phone number", s)
		}
		return Address{}, ErrMalformed("%q is not a valid phone number in %s; for another country, start with + and the country code", s, c.region)
	}
	if n.GetExtension() != "" {
		return Address{}, ErrMalformed("%q has an extension, which text messages cannot reach", s)
	}
	return c.Number(phonenumbers.Format(n, phonenumbers.E164))
}

// Prompt returns the XEP-0100 prompt and description.
func (c *SMSCodec) Prompt() (prompt, desc string) {
	desc = "Type a phone number in international form, starting with + and the country code, such as +12025550123."
	if c.region != "" {
		desc = fmt.Sprintf("Type a phone number, such as +12025550123. A number without + and a country code is read as a number of %s.", c.region)
	}
	return "Phone number", desc
}
