// Package mapping is the only place that builds or takes apart gateway JIDs.
//
// An Address is a remote thing (an IRC channel, an IRC nick, an email
// mailbox, a phone number, a network's server) seen from XMPP. Each transport
// has a Codec that turns JIDs addressed to its component domain into
// Addresses and back, and turns what a user types (XEP-0100) into one.
//
// Case and normalisation: mellium's jid.Parse and jid.New apply PRECIS
// (RFC 7622). The localpart is lowercased (Unicode lowercase), NFC-normalised
// and width-mapped (a fullwidth comma becomes ','), so every name a Codec
// takes from a JID's localpart is lowercase, and a Codec's JID method
// lowercases the names it is given. The resourcepart (a MUC occupant's nick)
// keeps its case. The same PRECIS code refuses non-ASCII localparts that do
// not start and end with a letter (its Bidi Rule check), so "#chän" cannot be
// part of a JID at all.
//
// Never call jid.Unescape: in mellium v0.22.0 it panics on `#ergo\40irc` and
// turns `alice\40example.com` into "alice\xa0example.com". Use UnescapeLocal.
package mapping

import (
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"
)

// Kind says what an Address points at.
type Kind uint8

const (
	// KindGateway is the component domain itself: "irc.example.org".
	KindGateway Kind = iota
	// KindServer is a remote server or network: "irc.libera.chat@irc.example.org".
	KindServer
	// KindRoom is a group conversation: "#chan%net@irc.example.org".
	KindRoom
	// KindOccupant is one participant of a room: "#chan%net@irc.example.org/nick".
	KindOccupant
	// KindContact is one remote person: "nick%net@irc.example.org",
	// "alice\40example.com@mail.example.org", "+12025550123@sms.example.org".
	KindContact
)

// String returns the kind's name: "gateway", "server", "room", "occupant"
// or "contact".
func (k Kind) String() string {
	switch k {
	case KindGateway:
		return "gateway"
	case KindServer:
		return "server"
	case KindRoom:
		return "room"
	case KindOccupant:
		return "occupant"
	case KindContact:
		return "contact"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Address is a remote thing in neutral form. Two Addresses that name the same
// remote thing compare equal with == once built by a Codec (Parse, Translate,
// or a codec's constructors such as IRCCodec.Room and EmailCodec.Mailbox).
// Names are in the form a JID can carry: PRECIS-lowercased (see the package
// documentation), not in the remote side's own spelling; IRC names that
// differ only under the network's casemapping ("#a[b" and "#a{b") are still
// different Addresses, so use IRCCodec.Key or PeerKey for map and store keys.
type Address struct {
	Kind   Kind
	Domain string // the component domain, e.g. "irc.example.org"
	// Network is the IRC network: a configured alias ("libera") or a host
	// name ("irc.libera.chat"). Empty for email and SMS. Codecs write it
	// canonically: the configured Name for a configured network (even when
	// the JID named it by its host), else the lowercased host or IP.
	Network string
	// Name is the remote name: "#chan" (room), "nick" (IRC contact),
	// "alice@example.com" (mailbox), "+12025550123" (E.164). Empty for
	// KindGateway and KindServer.
	Name string
	// Resource is the occupant nick for KindOccupant and the JID resource
	// otherwise (usually empty).
	Resource string
}

// Room returns the room an occupant address belongs to (or a itself).
func (a Address) Room() Address {
	if a.Kind == KindOccupant {
		a.Kind = KindRoom
		a.Resource = ""
	}
	return a
}

// Bare returns the address without its resource; an occupant becomes its room.
func (a Address) Bare() Address {
	a = a.Room()
	a.Resource = ""
	return a
}

// Occupant returns the occupant address for nick in room a.
func (a Address) Occupant(nick string) Address {
	a.Kind = KindOccupant
	a.Resource = nick
	return a
}

// Server returns the server address of a's network.
func (a Address) Server() Address {
	return Address{Kind: KindServer, Domain: a.Domain, Network: a.Network}
}

// Codec turns JIDs of one transport's component domain into Addresses and
// back. Implementations are safe for concurrent use.
type Codec interface {
	// Domain is the component domain the codec serves.
	Domain() string
	// Parse takes apart a JID addressed to the component domain. It fails
	// with an *Error for anything that does not name a valid remote thing.
	Parse(j jid.JID) (Address, error)
	// JID builds the gateway JID for an Address (XEP-0106 escaping applied).
	// It fails only for names that cannot be part of a JID (a nick that
	// PRECIS refuses as a resource, say).
	JID(a Address) (jid.JID, error)
	// Translate turns what a user typed into the XEP-0100 prompt into an
	// Address (jabber:iq:gateway).
	Translate(typed string) (Address, error)
	// Prompt is the XEP-0100 prompt and description shown to users.
	Prompt() (prompt, desc string)
}

// Error is a mapping failure with a sentence for the user. Condition is an
// XMPP stanza error condition name ("jid-malformed", "item-not-found",
// "not-allowed", "bad-request").
type Error struct {
	Condition string
	Text      string
}

// Error returns the sentence for the user.
func (e *Error) Error() string { return e.Text }

// ErrMalformed returns a jid-malformed *Error with a formatted sentence.
func ErrMalformed(format string, args ...any) error {
	return &Error{Condition: "jid-malformed", Text: fmt.Sprintf(format, args...)}
}

// AsError returns err as a *Error, or nil.
func AsError(err error) *Error {
	var me *Error
	if errors.As(err, &me) {
		return me
	}
	return nil
}
