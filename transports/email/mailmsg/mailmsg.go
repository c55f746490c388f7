// Package mailmsg converts between Internet mail (RFC 5322 / MIME) and the
// plain values the email transport works with: Parse turns a raw message
// into a Message (readable text, attachments, threading headers, DSN), Build
// turns an Outgoing into well-formed MIME that cannot carry an injected
// header, ValidateAddress checks an address with a human error sentence.
//
// Quoted history and signatures (how Parse treats them):
//   - At the end of a reply, the block of lines starting with ">" (blank
//     lines between them allowed), together with the attribution line just
//     above it ("On Mon, 1 Jan 2024, Bob wrote:", "Le … a écrit :", "Am … schrieb …:"),
//     is the quoted history. Message.Quoted always holds it, without change.
//     Message.Text keeps it as XEP-0393 block quotes ("> " prefix, one level
//     per ">", the attribution line kept) with FoldQuotes "fold" (the
//     default), leaves it out with "drop", keeps it as written with "keep".
//   - Quotes interleaved with the author's own text (inline replies) are not
//     history: they stay in Text as they are, whatever FoldQuotes says.
//   - A signature (from the RFC 3676 "-- " separator line to the end) is
//     always kept in Text, in every mode; the quoted history after it is
//     still found, since it is searched from the end.
package mailmsg

import (
	"errors"
	"io"
	"time"
)

// Address is a mailbox with an optional display name.
type Address struct{ Name, Addr string }

// Part is an attachment, or an inline image (Inline true).
type Part struct {
	Filename, ContentType, ContentID string
	Inline                           bool
	Data                             []byte
	// Truncated is true when the part was bigger than
	// ParseOptions.MaxPartBytes: Data is then empty and Size holds the number
	// of bytes seen (at most the cap plus one buffer).
	Truncated bool
	Size      int64
}

// DSN is a delivery status notification (RFC 3464) about a message.
type DSN struct{ OriginalMessageID, Action, Status, Diagnostic, Recipient string }

// Message is a parsed mail.
type Message struct {
	From               Address
	To, Cc, ReplyTo    []Address
	Subject, MessageID string
	InReplyTo          string
	References         []string
	Date               time.Time
	ListID, ListPost   string
	Text               string // the readable body; quoted history handled per ParseOptions.FoldQuotes
	Quoted             string // the quoted history that was cut off (for "drop")
	HTMLOnly           bool
	Attachments        []Part
	AuthResults        string
	AutoSubmitted      bool
	DSN                *DSN // non-nil for a delivery status notification (multipart/report; report-type=delivery-status)
	// Problems lists what could not be decoded (an unknown charset, a broken
	// part) when Parse still found something readable.
	Problems []string
}

// ParseOptions tune Parse.
type ParseOptions struct {
	// FoldQuotes is "fold" (quoted history as compact XEP-0393 "> " quotes),
	// "drop" (left out of Text, kept in Quoted) or "keep" (as written).
	// "" means "fold".
	FoldQuotes string
	// MaxPartBytes caps the decoded size of one part; a bigger attachment
	// is kept as a Part with Truncated set and no Data, a bigger text part
	// is cut. 0 means 25 MiB.
	MaxPartBytes int64
}

// ErrUnreadable is wrapped by Parse's error when nothing readable was found.
var ErrUnreadable = errors.New("no readable content")

// Parse reads one message. It never panics on malformed input; it returns
// an error only when nothing usable was found.
func Parse(r io.Reader, opt ParseOptions) (*Message, error) {
	return parse(r, opt)
}

// Outgoing is a message to build.
type Outgoing struct {
	From        Address
	To          []Address
	Subject     string
	InReplyTo   string
	References  []string
	Text        string
	Attachments []Part
	MessageID   string // "" = generate
	Domain      string // right side of generated Message-ID
	Date        time.Time
	Headers     map[string]string // extra, e.g. Auto-Submitted, validated
	// Cc lists carbon-copy recipients.
	Cc []Address
}

// Build renders o as MIME. It returns the raw message (CRLF line ends) and
// its Message-ID without angle brackets.
func Build(o Outgoing) (raw []byte, messageID string, err error) {
	return build(o)
}

// ValidateAddress checks s ("bob@example.com" or "Bob <bob@example.com>")
// and returns it split. Errors are human sentences.
func ValidateAddress(s string) (Address, error) {
	return validateAddress(s)
}

// ThreadID returns a stable XMPP <thread> value for m: the root of its
// References, else its In-Reply-To, else its own Message-ID.
func ThreadID(m *Message) string {
	return threadID(m)
}

// ReplySubject returns s with one "Re: " in front.
func ReplySubject(s string) string {
	return replySubject(s)
}
