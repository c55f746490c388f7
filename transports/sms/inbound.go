package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

// Inbound delivery: the webhook stored each text in the queue "sms-in";
// this worker claims a batch, emits every text to its owners, waits until
// the XMPP server has read them all (Gateway.Sync), and only then records
// each SID as delivered and removes the stored copies. A crash before
// that leaves the batch in the store: after the lease it is delivered
// again, with the same stanza ids (derived from the MessageSid), so at
// most the batch in flight at the crash can arrive twice, recognisably.
const inBatch = 256

// mediaAttempts is how many failed attempts at an inbound text's media
// are made (1 + 2 + 4 + 8 s of backoff) before the text goes out without
// them, with a note.
const mediaAttempts = 4

func (t *Transport) deliverLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		if n := t.deliverBatch(ctx); n > 0 {
			continue
		}
		select {
		case <-ctx.Done():
		case <-t.wakeIn:
		case <-tick.C:
		}
	}
}

// stanzaID is the id of the XMPP message carrying part n of an inbound
// text: derived from its MessageSid, so a redelivery carries the same id.
func stanzaID(sid string, n int) string {
	if n == 0 {
		return "sms-" + sid
	}
	return "sms-" + sid + "-" + strconv.Itoa(n)
}

func (t *Transport) deliverBatch(ctx context.Context) int {
	items, err := t.st.Claim(ctx, queueIn, time.Now(), t.cfg.lease, inBatch)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Error("claiming inbound texts failed", "err", err)
		}
		return 0
	}
	if len(items) == 0 {
		return 0
	}
	var delivered []store.QueueItem
	var sids []string
	var archive []store.ArchiveEntry
	var waits []chan struct{}
	for _, it := range items {
		var in inboundText
		if err := json.Unmarshal(it.Payload, &in); err != nil {
			t.log.Error("a stored inbound text is corrupt and is dropped", "id", it.ID, "err", err)
			_ = t.st.Dequeue(ctx, it.ID, it.Lease)
			continue
		}
		if done, _ := t.seen(ctx, peerDone, in.SID); done {
			_ = t.st.Dequeue(ctx, it.ID, it.Lease) // a second copy of a delivered text
			continue
		}
		// After a few failed attempts at its media (gone, or the media host
		// down for minutes) the text goes out with a note instead.
		msgs, err := t.inboundMessages(ctx, in, it.Attempts >= mediaAttempts)
		if err != nil {
			next := time.Now().Add(backoff(it.Attempts))
			t.log.Warn("the media of an inbound text could not be fetched; trying again later", "sid", in.SID, "err", err, "next", next)
			if err := t.st.Reschedule(ctx, it.ID, it.Lease, next, err.Error()); err != nil {
				t.log.Warn("rescheduling an inbound text failed", "sid", in.SID, "err", err)
			}
			continue
		}
		failed := false
		n := t.nums.lookup(in.To)
		if n == nil {
			t.mUnrouted.Inc()
			t.log.Warn("an inbound text to a number nobody owns any more was not delivered", "sid", in.SID, "to", in.To, "from", in.From)
		} else {
			for _, owner := range n.owners {
				oj, err := jid.Parse(owner)
				if err != nil || !t.gw.Allowed(oj) {
					t.mUnrouted.Inc()
					t.log.Warn("an inbound text was not delivered: the owner may not use the gateway", "sid", in.SID, "to", in.To, "owner", owner)
					continue
				}
				entries := t.archiveEntries(owner, n, in, msgs)
				archive = append(archive, entries...)
				if n.team() {
					w, err := t.deliverTeam(ctx, n, oj, in, msgs, entries)
					if err != nil {
						t.log.Warn("an inbound text could not reach a team inbox member", "sid", in.SID, "owner", owner, "err", err)
						continue
					}
					waits = append(waits, w)
				} else {
					for _, m := range msgs {
						m.To = oj
						if err := t.gw.Emit(ctx, Name, m); err != nil {
							t.log.Warn("an inbound text could not be queued for XMPP; it stays stored", "sid", in.SID, "err", err)
							failed = true
						}
					}
				}
			}
		}
		if failed {
			continue // comes back after the lease, with the same id
		}
		delivered = append(delivered, it)
		sids = append(sids, in.SID)
	}
	// The team inbox deliveries run on the members' goroutines; a member
	// whose session ends first never runs them, so the wait is bounded and
	// the batch is then left to come back after its lease.
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for _, w := range waits {
		select {
		case <-w:
		case <-timeout.C:
			t.log.Warn("team inbox deliveries did not run in time; the texts stay stored and go out again", "count", len(delivered))
			return 0
		case <-ctx.Done():
			return 0
		}
	}
	if len(delivered) == 0 {
		return len(items)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = t.gw.Sync(sctx, Name)
	cancel()
	if err != nil && !errors.Is(err, bridge.ErrNoSync) {
		t.log.Warn("the XMPP server did not confirm inbound texts; they stay stored and go out again", "count", len(delivered), "err", err)
		return 0
	}
	if len(archive) > 0 && *t.cfg.HistoryDays > 0 {
		if err := t.st.AppendArchive(ctx, archive); err != nil {
			t.log.Warn("archiving inbound texts failed", "err", err)
		}
	}
	pairs := make([]store.MessageID, len(sids))
	for i, sid := range sids {
		pairs[i] = store.MessageID{User: dedupUser, Transport: Name, Peer: peerDone, StanzaID: sid, RemoteID: sid}
	}
	if b, ok := t.st.(store.Batcher); ok {
		left, err := b.DequeueBatch(ctx, delivered, pairs)
		if err != nil {
			t.log.Warn("recording delivered texts failed; they go out again after the lease", "count", len(delivered), "err", err)
			return len(items)
		}
		if len(left) > 0 {
			t.log.Warn("some delivered texts had lost their lease (another attempt holds them)", "ids", left)
		}
		t.mIn.Add(float64(len(delivered)))
		return len(items)
	}
	for i, it := range delivered {
		if err := t.st.PutMessageID(ctx, pairs[i]); err != nil {
			t.log.Warn("recording a delivered text failed", "sid", sids[i], "err", err)
		}
		if err := t.st.Dequeue(ctx, it.ID, it.Lease); err != nil {
			t.log.Warn("removing a delivered text from the store failed", "sid", sids[i], "err", err)
		}
		t.mIn.Inc()
	}
	return len(items)
}

// inboundMessages builds the XMPP messages of one text (To is set by the
// caller): the text with the first medium, then one message per further
// medium. Media are fetched and stored by the attachment service.
func (t *Transport) inboundMessages(ctx context.Context, in inboundText, noteFailures bool) ([]bridge.Message, error) {
	from, err := t.codec.Number(in.From)
	if err != nil {
		return nil, err
	}
	var atts []bridge.Attachment
	body := in.Body
	for i, m := range in.Media {
		a, err := t.fetchMedium(ctx, in, i, m)
		if err != nil && noteFailures {
			t.log.Warn("an inbound medium could not be fetched; the text goes out without it", "sid", in.SID, "err", err)
			a = bridge.Attachment{Desc: fmt.Sprintf("(an attachment of type %s could not be fetched from Twilio)", m.Type)}
		} else if err != nil {
			return nil, err
		}
		if a.URL == "" { // too large: said in words
			body = strings.TrimSpace(body + "\n" + a.Desc)
			continue
		}
		atts = append(atts, a)
	}
	if note := optOutNote(in.Body, in.From); note != "" {
		body += "\n" + note
	}
	first := bridge.Message{From: from, Type: bridge.Chat, ID: stanzaID(in.SID, 0), Body: body, Time: in.At}
	if r := t.tapback(ctx, in); r != nil {
		first.Reactions = r
		first.Body = ""
	}
	if len(atts) > 0 {
		first.Attachments = atts[:1]
		if first.Body == "" {
			first.Body = atts[0].URL
		}
	}
	msgs := []bridge.Message{first}
	for i := 1; i < len(atts); i++ {
		msgs = append(msgs, bridge.Message{From: from, Type: bridge.Chat, ID: stanzaID(in.SID, i), Body: atts[i].URL, Attachments: atts[i : i+1], Time: in.At})
	}
	return msgs, nil
}

// archiveEntries are the archive entries of an inbound text for one owner.
func (t *Transport) archiveEntries(owner string, n *number, in inboundText, msgs []bridge.Message) []store.ArchiveEntry {
	peer := in.From
	nick := ""
	if n.team() {
		peer = mapping.PeerKey(mapping.Address{Kind: mapping.KindRoom, Name: in.From, Network: n.inbox})
		nick = in.From
	}
	var out []store.ArchiveEntry
	for _, m := range msgs {
		body := m.Body
		if m.Reactions != nil {
			body = in.Body
		}
		id := ""
		if n.team() {
			id = store.NewArchiveID()
		}
		out = append(out, store.ArchiveEntry{ID: id, User: owner, Transport: Name, Peer: peer, Nick: nick, Body: body, RemoteID: in.SID, OriginID: m.ID, Time: in.At})
	}
	return out
}

// backoff is the wait before retry number attempts+1: 1 s doubling up to
// 10 minutes.
func backoff(attempts int) time.Duration {
	d := time.Second
	for i := 0; i < attempts && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}
