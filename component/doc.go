// Package component speaks XMPP for the gateway: one Link per transport
// domain attaches to the XMPP server as a XEP-0114 external component and
// turns stanzas into the bridge's neutral events and back.
//
// # The link
//
// A Link dials the server's component port, does the XEP-0114 handshake
// (through mellium's component.NewSession, the only part of mellium it
// uses), then runs two goroutines per connection:
//
//   - a read loop that decodes one top-level stanza at a time from the
//     session's token reader into a small element tree, parses its from and
//     to JIDs once, and handles it without ever blocking (bridge.Gateway's
//     Dispatch and Query never block; registration and ad-hoc commands,
//     which touch the store, go to a small worker pool owned by Run);
//   - a writer that owns every write to the connection: it drains the send
//     queue into a bufio.Writer and flushes once per batch, and sends a
//     XEP-0199 ping every PingInterval; no answer within PingTimeout closes
//     the connection.
//
// Run reconnects with exponential backoff and jitter (1 s doubling to
// 30 s) until its context is done; it then sends unavailable presence to
// every user it sent presence to, closes the stream and returns.
//
// # The send queue
//
// Link implements bridge.Sink. Send renders the event to bytes on the
// caller's goroutine and puts them on a bounded queue (LinkConfig.QueueSize,
// 10000 by default) that survives reconnects: what is sent while the link
// is down goes out after the next handshake. Send never blocks; a full queue
// returns bridge.ErrQueueFull. A batch whose write failed is written again
// on the next connection (at least once: a message may, rarely, arrive
// twice after a connection broke mid-write).
//
// # What the link answers itself
//
// On the component domain: XEP-0030 disco#info and disco#items (the command
// list; other nodes go to the transport), XEP-0199 ping, XEP-0092 version,
// XEP-0202 time, XEP-0077 registration (a data form with instructions),
// XEP-0100 jabber:iq:gateway, and XEP-0050 ad-hoc commands on any address.
// Presence subscription to the domain is answered by the link (subscribed
// plus available presence); the link never sends an unsolicited subscribed.
//
// Everything else becomes a bridge event: messages (with XEP-0308, 0359,
// 0184, 0085, 0461 + 0428, 0066), MUC joins and leaves (XEP-0045), presence
// to contacts, disco and XEP-0313 archive queries, muc#admin actions.
//
// # Rendering rules transports rely on
//
//   - Message: an empty Type becomes groupchat when From is a room (or an
//     occupant setting a Subject), chat otherwise; set Chat for a private
//     message from an occupant (it gets the muc#user <x/> of XEP-0045 §7.5).
//     Action prefixes "/me ". A non-zero Time gets a XEP-0203 delay when
//     Delayed is set or Time is more than 5 s old. StanzaID becomes
//     <stanza-id by=room> in groupchat, by=domain otherwise. ReceiptRequested
//     adds <request xmlns='urn:xmpp:receipts'/> and an id when ID is empty.
//     Reply.Fallback is put in front of the body with a XEP-0428 fallback
//     (offsets in code points). A message with only one attachment and no
//     body gets the URL as body (clients then show it inline). Notice does
//     not change the rendering.
//   - RoomJoined: every occupant's presence, self-presence (110; 100 when
//     any RealJID is known; 201 Created; 210 NickChanged), History (type
//     groupchat, always delayed), then the subject message from the room
//     (an empty <subject/> when there is none).
//   - OccupantChanged: NewNick gives unavailable+303 with item nick, then
//     available under the new nick; Kicked (307) and Banned (301,
//     affiliation outcast) imply unavailable; Self adds 110; Codes are
//     appended. Empty roles and affiliations become participant/none
//     (none/none when unavailable).
//   - RoomSubject comes from room/By when By is set, from the room
//     otherwise.
//   - IQResult: Err gives an IQ error; Payload nil an empty result;
//     *DiscoInfo, *DiscoItems and *ArchiveResult their XEP-0030/0313
//     elements (the disco node of the request is echoed). From must be
//     the Query's To and To the Query's From.
//   - DeliveryError: an error stanza of Kind ("message" when empty) with
//     the original ID; an unknown condition becomes undefined-condition.
//
// Send returns an error, and queues nothing, when the codec cannot turn an
// address into a JID (an occupant whose nick PRECIS refuses is left out of
// a RoomJoined with a log line instead).
//
// # Safety
//
// Every string written into XML is escaped and stripped of characters XML
// 1.0 forbids (IRC's \x02, \x03, \x01 among them), so no remote text can
// make the XMPP server close the stream. A stanza with an unparseable JID
// gets jid-malformed, a malformed one bad-request; neither ends the stream.
// Error stanzas are never answered with errors. Users the access policy
// does not allow get forbidden for everything except disco#info on the
// domain.
package component
