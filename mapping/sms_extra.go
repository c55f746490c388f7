package mapping

// Short codes and team inboxes of the SMS gateway:
//
//	12345@sms.example.org                   a short code (5 or 6 digits, KindContact)
//	+12025550123%sales@sms.example.org      the conversation of team inbox "sales"
//	                                        with +12025550123 (KindRoom: Name is the
//	                                        remote number, Network the inbox name)
//	+12025550123%sales@sms.example.org/bob  an occupant of that room (KindOccupant)
//
// Short codes are allowed as contacts so that users can answer the
// automated services that text them (2FA codes, carriers).

// IsShortCode reports whether s is a short code: 5 or 6 digits, the first
// not 0.
func IsShortCode(s string) bool {
	if len(s) < 5 || len(s) > 6 || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidRemote checks a remote party of a text: a valid E.164 number or a
// short code. Errors are jid-malformed *Error with a sentence.
func ValidRemote(s string) error { return validRemote(s) }

func validRemote(s string) error {
	if IsShortCode(s) {
		return nil
	}
	return ValidE164(s)
}

// ValidInboxName checks the name of a team inbox as it appears in room
// JIDs: 1 to 32 of a-z, 0-9, '-' and '_', starting with a letter.
func ValidInboxName(s string) error {
	if s == "" || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return ErrMalformed("%q is not a team inbox name: it must be 1 to 32 lowercase letters, digits, - or _, starting with a letter", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return ErrMalformed("%q is not a team inbox name: it must be 1 to 32 lowercase letters, digits, - or _, starting with a letter", s)
		}
	}
	return nil
}

// InboxRoom returns the room Address of the conversation of team inbox
// inbox with the remote number.
func (c *SMSCodec) InboxRoom(remote, inbox string) (Address, error) {
	if err := validRemote(remote); err != nil {
		return Address{}, err
	}
	if err := ValidInboxName(inbox); err != nil {
		return Address{}, err
	}
	return Address{Kind: KindRoom, Domain: c.domain, Network: inbox, Name: remote}, nil
}
