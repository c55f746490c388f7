package bridge

import (
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/mapping"
)

// This file holds the neutral event types. Events that come from XMPP users
// (the component parsed them) implement Inbound; events bound for XMPP users
// (a transport emitted them, the component renders them) implement Outbound.
// No type here knows XML: component/ turns them into stanzas and back.

// Inbound is an event from an XMPP user to a transport.
type Inbound interface{ inbound() }

// Outbound is an event from a transport to an XMPP user.
type Outbound interface{ outbound() }

// MessageType is the XMPP message type.
type MessageType string

const (
	Chat      MessageType = "chat"
	Groupchat MessageType = "groupchat"
	Normal    MessageType = "normal"
	Headline  MessageType = "headline"
)

// ChatState is a XEP-0085 chat state ("active", "composing", "paused",
// "inactive", "gone"); empty when absent.
type ChatState string

// Reply is a XEP-0461 reply reference.
type Reply struct {
	ID string  // id of the message replied to (stanza-id in groupchat)
	To jid.JID // author of the message replied to (optional)
	// Fallback is the quoted text the sender put in front of the body
	// (XEP-0428 fallback), already cut out of Body.
	Fallback string
}

// Attachment is an out-of-band file (XEP-0066 / XEP-0447 URL).
type Attachment struct {
	URL  string
	Desc string
	Type string // MIME type if known
	Size int64  // bytes, 0 when unknown
}

// ---------------------------------------------------------------- inbound

// SendMessage is a message an XMPP user sent to a remote room or contact.
type SendMessage struct {
	From     jid.JID         // full JID of the sender
	To       mapping.Address // room, occupant (private message), contact or server
	Type     MessageType
	ID       string // the stanza id (may be empty)
	OriginID string // XEP-0359 origin-id (may be empty)
	Body     string
	// Action is true for "/me does something" (the body then starts after
	// "/me ").
	Action bool
	// Subject is non-nil when the message sets a room subject.
	Subject *string
	// ReplaceID is the id of the message this one corrects (XEP-0308).
	ReplaceID string
	Reply     *Reply
	// ReceiptRequested is true when the sender asked for a XEP-0184 receipt.
	ReceiptRequested bool
	Attachments      []Attachment
	ChatState        ChatState
	// Thread is the XMPP <thread> of the message (may be empty).
	Thread string
	// MessageSubject is the <subject> of a message that is not groupchat
	// (a mail's subject); a groupchat subject is in Subject.
	MessageSubject string
	// Reactions is a XEP-0444 reaction to an earlier message (nil when
	// the message carries none).
	Reactions *Reactions
	// Addresses are the XEP-0033 addresses of the message (a multicast
	// message to a Multicaster transport's domain); nil when none.
	Addresses []ExtAddress
}

// PresenceType is the XMPP presence type ("" means available).
type PresenceType string

const (
	Available    PresenceType = ""
	Unavailable  PresenceType = "unavailable"
	Subscribe    PresenceType = "subscribe"
	Subscribed   PresenceType = "subscribed"
	Unsubscribe  PresenceType = "unsubscribe"
	Unsubscribed PresenceType = "unsubscribed"
	Probe        PresenceType = "probe"
)

// HistoryRequest is the XEP-0045 <history/> of a join; nil fields are absent.
type HistoryRequest struct {
	MaxChars   *int
	MaxStanzas *int
	Seconds    *int
	Since      *time.Time
}

// JoinRoom is a presence to an occupant JID: the user joins, or (when
// already in) changes nick or status.
type JoinRoom struct {
	From     jid.JID         // full JID
	Room     mapping.Address // KindOccupant: Resource is the wanted nick
	Password string
	History  *HistoryRequest // nil when the join had none
	// MUC is true when the presence carried the MUC <x/> element (a real
	// join rather than a presence update/nick change).
	MUC    bool
	Show   string
	Status string
	// ID is the presence stanza's id, echoed on errors.
	ID string
}

// LeaveRoom is unavailable presence to a room.
type LeaveRoom struct {
	From   jid.JID
	Room   mapping.Address
	Status string
	// ID is the presence stanza's id, echoed on errors.
	ID string
}

// UserPresence is presence from the user to a contact, a server or the
// gateway (not a room): availability changes and subscriptions.
type UserPresence struct {
	From   jid.JID
	To     mapping.Address
	Type   PresenceType
	Show   string
	Status string
}

// RoomAdmin is a moderator action from the user's client (muc#admin): a kick
// (role "none"), a role or an affiliation change.
type RoomAdmin struct {
	From        jid.JID
	Room        mapping.Address
	IQID        string
	Nick        string
	Role        string // "none" for a kick, "participant", "moderator", "visitor"
	Affiliation string // "outcast" for a ban, "member", "admin", "owner", "none"
	Reason      string
}

// ---------------------------------------------------------------- outbound

// Message is a message from a remote room or person to an XMPP user.
type Message struct {
	To   jid.JID         // the user's full or bare JID
	From mapping.Address // occupant (groupchat), contact or server
	Type MessageType
	ID   string // stanza id; for the user's own reflected message, its own id
	// StanzaID is the archive id (XEP-0359 stanza-id by the room/gateway);
	// for IRC the msgid tag when the server gives one.
	StanzaID string
	OriginID string // XEP-0359 origin-id of the user's own message
	Body     string
	Action   bool
	Subject  *string
	// Time is when the remote side sent it; zero means now. A non-zero time
	// is rendered as a XEP-0203 delay.
	Time        time.Time
	Delayed     bool // render the delay even if Time is recent (history)
	ReplaceID   string
	Reply       *Reply
	Attachments []Attachment
	ChatState   ChatState
	// ReceiptRequested asks the user's client for a XEP-0184 receipt.
	ReceiptRequested bool
	// Notice is true for IRC NOTICEs and other non-conversational text.
	Notice bool
	// Reactions, when set, makes the message a XEP-0444 reaction to an
	// earlier message (an iPhone tapback from SMS).
	Reactions *Reactions
	// Thread is rendered as <thread> (a mail conversation), when set.
	Thread string
	// Nick is the sender's display name, rendered as a XEP-0172 <nick>.
	Nick string
	// Addresses, when set, are rendered as XEP-0033 <addresses/>: who
	// else the remote message went to (Type "to" or "cc", Addr a contact).
	Addresses []ExtAddress
}

// Reactions is a XEP-0444 reaction: the full set of emojis the sender
// now has on the message ID (empty removes them).
type Reactions struct {
	ID     string
	Emojis []string
}

// Occupant is one participant of a room as XEP-0045 sees it.
type Occupant struct {
	Nick        string
	Role        string // "moderator", "participant", "visitor", "none"
	Affiliation string // "owner", "admin", "member", "none", "outcast"
	RealJID     string // a JID to reveal (non-anonymous rooms), may be empty
	Show        string // "", "away", "xa", "dnd", "chat"
	Status      string
}

// RoomJoined tells one user resource that it is in a room: the component
// sends every other occupant's presence, then self-presence with status
// 110 (plus 100, 201, 210 as flagged), then the subject.
type RoomJoined struct {
	To        jid.JID // the full JID that joined
	Room      mapping.Address
	Self      Occupant
	Occupants []Occupant // every other occupant
	// NickChanged is true when the gateway or the network changed the nick
	// asked for (status 210).
	NickChanged bool
	Created     bool // status 201
	Subject     string
	SubjectBy   string
	SubjectAt   time.Time
	// History is sent after the occupant list and before the subject.
	History []Message
}

// OccupantChanged is a change to one occupant of a room seen by a user
// resource: a join, a leave (Gone), a nick change (NewNick), a role or
// status change. Self is true for the user's own occupant (status 110).
type OccupantChanged struct {
	To       jid.JID
	Room     mapping.Address
	Occupant Occupant
	Self     bool
	Gone     bool   // unavailable presence
	NewNick  string // status 303
	Kicked   bool   // status 307
	Banned   bool   // status 301
	Actor    string // who kicked/banned
	Reason   string
	// Codes are extra status codes (e.g. 332 "removed because of a system
	// shutdown", 333 "technical reasons") for the unavailable presence.
	Codes []int
}

// RoomSubject is a topic change.
type RoomSubject struct {
	To      jid.JID
	Room    mapping.Address
	Subject string
	By      string // nick who set it, may be empty
	At      time.Time
}

// ContactPresence is a remote person's or server's availability.
type ContactPresence struct {
	To     jid.JID
	From   mapping.Address
	Type   PresenceType
	Show   string
	Status string
}

// Receipt tells the user that a message they sent reached the network
// (XEP-0184 received).
type Receipt struct {
	To   jid.JID
	From mapping.Address
	ID   string // the id of the user's message
}

// DeliveryError tells the user that a stanza they sent failed: the
// component sends an error stanza of Kind ("message", "presence") with the
// original ID.
type DeliveryError struct {
	To   jid.JID
	From mapping.Address
	Kind string // "message" or "presence"
	ID   string
	Err  *StanzaError
}

// IQResult answers a user IQ that a transport handled asynchronously (a room
// list, an archive query, a muc#admin action). Err set gives an IQ error;
// otherwise Payload is rendered by the component according to its type,
// and a nil Payload (with a nil Err) is an empty result: success without
// content, which is how a muc#admin action is confirmed.
type IQResult struct {
	To      jid.JID
	From    mapping.Address
	ID      string
	Payload any
	Err     *StanzaError
}

func (SendMessage) inbound()  {}
func (JoinRoom) inbound()     {}
func (LeaveRoom) inbound()    {}
func (UserPresence) inbound() {}
func (RoomAdmin) inbound()    {}

func (Message) outbound()         {}
func (RoomJoined) outbound()      {}
func (OccupantChanged) outbound() {}
func (RoomSubject) outbound()     {}
func (ContactPresence) outbound() {}
func (Receipt) outbound()         {}
func (DeliveryError) outbound()   {}
func (IQResult) outbound()        {}
