// Package mailmsg converts between Internet mail (RFC 5322 / MIME) and the
// plain values the email transport works with: Parse turns a raw message
// into a Message (readable text, attachments, threading headers, DSN), Build
// turns an Outgoing into well-formed MIME that cannot carry an injected
// header, ValidateAddress checks an address and says what is wrong with it
// in a sentence. MIME and charsets are go-message's (with its charset
// package: ISO-8859-x, Windows-125x, ISO-2022-JP, Shift_JIS, KOI8-R, …),
// HTML to text is html2text's.
//
// # Parse
//
//   - The message is read into memory: cap its size before (the transport's
//     max_message_bytes). Each part is capped by ParseOptions.MaxPartBytes.
//   - Text: in multipart/alternative the text/plain part wins, HTML is used
//     when there is no non-empty plain part (HTMLOnly is then true); in
//     multipart/related the root; in multipart/mixed (and any other
//     multipart) the inline text parts in order, separated by a blank line
//     (a list footer, say). format=flowed is unflowed. Line ends are "\n";
//     control characters XML cannot carry are dropped.
//   - HTML becomes text with links kept as "text <url>" (just the URL when
//     the text is the URL), lists as " - item", block elements on their
//     own lines, <blockquote> as "> " quotes.
//   - Charsets: the declared charset is decoded; text with no charset, a
//     wrong one (bytes that are not UTF-8 under us-ascii or utf-8) or raw
//     8-bit header bytes are read as Windows-1252, what such mail is.
//     RFC 2047 words are decoded in every header Parse returns.
//   - Attachments: every non-text part, and text parts that are attachments
//     (Content-Disposition attachment, or a file name without "inline").
//     Inline is true for Content-Disposition inline, or a Content-ID in a
//     multipart/related without a disposition (images of an HTML mail).
//     message/rfc822 parts are kept whole (file name "message.eml" when
//     none is given). File names lose any directory part. PGP/S-MIME
//     signature parts are left out. A part over MaxPartBytes is kept with
//     Truncated set, Size, and no Data.
//   - DSN: a multipart/report with a message/delivery-status (or
//     message/global-delivery-status) part sets Message.DSN: Action (lower
//     case), Status, Diagnostic (without its "smtp;" type, on one line) and
//     Recipient (Final-Recipient, else Original-Recipient) of the first
//     recipient whose action is "failed" or "delayed", else of the first;
//     OriginalMessageID from an Original-Message-ID field, else from the
//     returned message or headers. The returned message is not attached.
//     Callers check Action: "delayed" is a warning, not a failure.
//   - Headers: From (Sender when From is empty), To, Cc, Reply-To; message
//     ids without angle brackets, read leniently; In-Reply-To is its last id
//     (the parent, when a client lists the chain); ListID is the id inside
//     List-Id's brackets; ListPost the address of List-Post's first mailto:
//     URL ("" for "NO"); AuthResults the topmost Authentication-Results,
//     raw (the one the nearest MTA added: trust it only from a trusted
//     relay); AutoSubmitted is an Auto-Submitted other than "no".
//   - Malformed input never panics (fuzzed): an unreadable header keeps the
//     text after the first blank line; a multipart whose boundary never
//     shows is read as text; broken base64 or quoted-printable keeps what
//     decoded. What could not be decoded is listed in Message.Problems.
//     Parse returns an error (wrapping ErrUnreadable, with the message as
//     far as it was read) only when there is no readable text, subject,
//     attachment or DSN at all.
//
// Quoted history and signatures:
//   - At the end of a reply, the block of lines starting with ">" (blank
//     lines between them allowed), together with the attribution line just
//     above it ("On Mon, 1 Jan 2024, Bob <bob@example.com> wrote:", also when
//     wrapped over two lines, and "Le … a écrit :", "Am … schrieb …:", …),
//     is the quoted history; so is an Outlook "-----Original Message-----"
//     block to the end. Message.Quoted holds it as found, in every mode.
//     Message.Text keeps it as compact XEP-0393 block quotes with FoldQuotes
//     "fold" (the default: one ">" per level, "> > x" and ">>x" both become
//     ">> x", empty quoted lines dropped, the attribution a plain line
//     above), leaves it out with "drop", keeps it as written with "keep".
//   - Quotes interleaved with the author's own text (inline replies), or a
//     text that is nothing but a quote, are not history: they stay in Text
//     as they are, whatever FoldQuotes says.
//   - A signature (from the "-- " separator line, or "--" as some clients
//     send it, to the end) is always kept in Text, in every mode; quoted
//     history just above it is still found and handled.
//
// # Build
//
// Build writes Date, From, To, Cc, Subject, Message-ID, In-Reply-To,
// References, the extra Headers (sorted), MIME-Version and the content
// header, folded at spaces under 78 columns. Non-ASCII display names and
// values are RFC 2047 words; attachment names that are not
// ASCII are RFC 2231 parameters (filename*=utf-8 with percent escapes).
// The text is one text/plain; charset=utf-8 quoted-printable part (lone CR
// and LF become line breaks; no line can exceed 76 octets; a NUL is =00,
// which Parse drops again), with attachments in multipart/mixed as base64.
// Every value from the caller that could end up in a header is checked: a
// CR, LF or NUL anywhere is refused with a *HeaderError, addresses are
// checked as ValidateAddress does (an *AddressError), message ids must be
// printable ASCII without spaces or angle brackets, header names must be
// valid and not one Build sets itself. Display names over 200 bytes are
// cut. A non-ASCII local part (RFC 6531) is written as UTF-8 and needs a
// smarthost that offers SMTPUTF8.
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
	// ParseOptions.MaxPartBytes: Data is then nil. Size is the part's
	// decoded size in every case.
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
	// Undisclosed writes "To: undisclosed-recipients:;" (an empty RFC 5322
	// group) when To and Cc are empty: a mail to Bcc recipients only.
	Undisclosed bool
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
