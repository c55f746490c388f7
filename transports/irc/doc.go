// Package irc is the IRC transport: users of an XMPP server join IRC
// channels as MUC rooms (#chan%network@irc.example.org, Biboumi's scheme)
// and talk to IRC nicks (nick%network@irc.example.org, or the occupant JID
// room/nick). The server JID (network@irc.example.org) shows server notices
// and takes raw IRC commands, one a line ("PRIVMSG NickServ :IDENTIFY x",
// "/msg NickServ IDENTIFY x", "/quote MODE me +i").
//
// # Connections
//
// The gateway opens one IRC connection per user per server, shared by all
// of that user's rooms on it. A connection is two goroutines (conn.go): a
// reader that parses lines (ircreader + ircmsg) and posts each to the
// user's goroutine, and a writer behind a token bucket (rate/burst). Every
// bit of protocol state (CAP, SASL, ISUPPORT, channels, nicks) lives in the
// user's session and is touched only on the user's goroutine. Connects to
// one server address are paced (a few at a time) so that a thousand users
// joining at once all get in despite small listen backlogs.
//
// When a connection drops, every XMPP resource in a room gets a room
// message and an unavailable self-presence with status 333 and the reason;
// the gateway reconnects with backoff (at most 8 s apart while the outage
// is young) and sends a full join again (occupants, status 110, subject)
// once the channel is rejoined. Messages sent meanwhile get an error with
// their id. After two hours it gives up. Gateway shutdown sends QUIT and an
// unavailable self-presence with status 332.
//
// A user who lands on another nick than the one they want (nick_ after a
// collision, typically with their own ghost after a reconnect) asks for
// the wanted nick again every minute, and at once when its holder is seen
// quitting or changing nick; the rooms then see the change (status 303).
// Refusals of these attempts are not shown; a nick the server finds
// erroneous (432) is given up.
//
// Errors answering a join or a nick change carry the id of the presence
// that asked (bridge.JoinRoom.ID).
//
// Leaving the last room quits, unless bouncer mode keeps the connection
// (per user, per network, or per channel with the room's configure
// command); a connection opened for private messages or a room list stays
// 15 minutes after its last use.
//
// # Text
//
// No text from XMPP reaches the socket with CR, LF or NUL: bodies are split
// into lines (one PRIVMSG each) and control characters are removed, targets
// are validated (no comma, space or control character), and conn.send, the
// only way out, refuses any line that still holds one. Over-long lines are
// cut before a space in the second half of the window, otherwise between
// characters (never inside a UTF-8 sequence or before a combining mark);
// the space starts the next line, so no character is lost even on servers
// that strip trailing spaces. A message that would take more than max_lines
// lines is refused with an error. IRC formatting becomes XEP-0393 styling
// (*bold*, _italic_, ~strike~, `mono`); colours are dropped. Lines that are
// not UTF-8 are decoded with the network's charset (latin-1 by default).
//
// # Roles
//
// Channel membership modes map to MUC roles and affiliations as Biboumi
// maps them: ~ (q) and & (a) owner/moderator, @ (o) admin/moderator,
// % (h) member/moderator, + (v) member/participant, none participant/none.
// In a moderated channel (+m) members without voice are visitors
// (none/visitor): the gateway asks for the channel modes after the JOIN
// and completes the join with the answer, and MODE +m/-m changes the role
// of every occupant without voice, the user included.
// Moderation from XMPP goes the other way: role none is KICK, affiliation
// outcast is a ban and a KICK, admin is +o, owner +q, member +v, none
// removes every prefix mode, role moderator +o, participant -o/-h (or +v),
// visitor removes them all; each request is answered when the server
// confirms or refuses it.
//
// # IRCv3
//
// CAP 302 with server-time (Message.Time), echo-message (the user's own
// message is reflected with its id and origin-id when the echo comes, and
// a private message's echo is its receipt), labeled-response (errors reach
// the exact message), message-tags and msgid (stanza-ids), +draft/reply
// (XEP-0461), multi-prefix, userhost-in-names, away-notify (Occupant.Show
// "away"), account-notify and extended-join (member accounts are tracked,
// not shown to XMPP users yet), chghost, batch, invite-notify and SASL
// PLAIN or EXTERNAL (client certificate). A SASL login that fails, or that
// is configured but cannot be tried (no TLS for EXTERNAL, the server does
// not offer SASL or the mechanism), is explained to the user in a notice
// from the server JID, and the connection goes on without it.
//
// # identd
//
// With identd_listen set ("0.0.0.0:113"; off by default), Transport.Run
// serves RFC 1413 ident queries (identd.go) for the IRC connections the
// gateway has open, matched by the gateway's local port and the server's
// port, and only for the host the connection goes to. The answer is a
// per-user hash, the first 10 characters of base32(HMAC-SHA256(key, bare
// JID)) in lower case, with the key derived from the component secret
// (changing the secret changes every ident). It is the hash even when the
// user set a username, as with Biboumi: a network uses the ident to tell
// the gateway's users apart and to ban one of them, which a name the user
// picks would defeat. The username still goes in USER, which servers that
// get no ident answer show with "~". Other connections get NO-USER, bad
// ports INVALID-PORT; at most 64 queries are served at once, each has 10
// seconds and one line of at most 1000 bytes.
//
// # Stanza-ids and the archive
//
// Channel messages are archived per user (store.AppendArchive, written in
// batches by one goroutine of the transport) for history_days and served
// for XEP-0313 queries and MUC history on join. When archiving is on, the
// stanza-id of a message is an archive id (store.NewArchiveID, whose seq
// orders the archive) followed by "~" and the IRC msgid; every user of the
// gateway who gets that message gets the same stanza-id (archive ids are
// unique per user's archive), and a +draft/reply naming a recent msgid
// maps back to it. Messages without msgid get a bare archive id. When
// archiving is off, the stanza-id is the msgid itself. Replies from XMPP
// go to IRC with the msgid behind the stanza-id, including ids of the
// older form msgid~tag; ids of messages archived before the archive was
// kept in chunks (store schema version 2) carry no msgid any more.
//
// # Settings
//
// Per-user settings live in store.Account: "nick", "username", "realname",
// "bouncer" globally, and the same per network as "net.<network>.<key>"
// together with "commands" (sent after connecting), "autojoin",
// "bouncer_channels", "sasl_mechanism", "sasl_username" and, for servers of
// an open gateway, "port", "tls", "tls_verify", "fingerprint". Passwords
// ("password", "sasl_password") and the client certificate
// ("client_cert") are secrets. They are edited with the registration form
// (global) and the configure command on the gateway, a server JID or a room.
package irc
