package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	twclient "github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

// Outbound sending. A text the user sent is checked and counted on their
// goroutine and stored in the queue "sms"; this worker claims it and
// calls the Messages API. To avoid paying twice for one text after a
// crash, a marker (state "ref:<queue id>") is written before the API
// call and updated with the SID after it; a retry that finds a marker
// without SID asks the Messages list API for a message to the same
// number with the same body created since the marker, and takes that one
// as sent instead of sending again. doc/sms.md states the window that
// remains.
const (
	outBatch      = 32
	outParallel   = 8
	outGiveUp     = 24 * time.Hour
	markerUser    = "sms-out"
	listLookback  = 50
	markerSkewSec = 5
)

// outboundText is the queue payload of one outbound text.
type outboundText struct {
	To       string   `json:"to"`
	From     string   `json:"from,omitempty"`
	Body     string   `json:"body"`
	Media    []string `json:"media,omitempty"`
	Segments int      `json:"segments"`
	// Resource is the full JID that sent it (errors and receipts go there).
	Resource string `json:"resource"`
	// Inbox and Nick are set for a text sent from a team inbox room.
	Inbox string `json:"inbox,omitempty"`
	Nick  string `json:"nick,omitempty"`
}

// marker is the record of one send (state "ref:<queue id>"): written
// before the API call, updated with the SID, and read by status callbacks
// (their URL carries ref).
type marker struct {
	User     string    `json:"user"`
	Resource string    `json:"resource"`
	To       string    `json:"to"`
	Inbox    string    `json:"inbox,omitempty"`
	StanzaID string    `json:"stanza_id"`
	At       time.Time `json:"at"`
	SID      string    `json:"sid,omitempty"`
	// Final is the final status seen ("delivered", "undelivered",
	// "failed"): later callbacks change nothing.
	Final string `json:"final,omitempty"`
	// Told is set once the receipt or error went to the user.
	Told bool `json:"told,omitempty"`
	// Counted is when the text was counted against the quotas (once,
	// before the first attempt).
	Counted time.Time `json:"counted,omitempty"`
}

func refKey(ref string) string { return "ref:" + ref }

func (t *Transport) getMarker(ctx context.Context, ref string) (*marker, error) {
	b, err := t.st.GetState(ctx, markerUser, Name, refKey(ref))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("marker %s: %w", ref, err)
	}
	return &m, nil
}

func (t *Transport) putMarker(ctx context.Context, ref string, m *marker) error {
	b, _ := json.Marshal(m)
	return t.st.PutState(ctx, markerUser, Name, refKey(ref), b)
}

func (t *Transport) sendLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	sem := make(chan struct{}, outParallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		items, err := t.st.Claim(ctx, queueOut, time.Now(), t.cfg.lease, outBatch)
		if err != nil && ctx.Err() == nil {
			t.log.Error("claiming outbound texts failed", "err", err)
		}
		for _, it := range items {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func(it store.QueueItem) {
				defer wg.Done()
				defer func() { <-sem }()
				t.send(ctx, it)
			}(it)
		}
		if len(items) == outBatch {
			continue
		}
		select {
		case <-ctx.Done():
		case <-t.wakeOut:
		case <-tick.C:
		}
	}
}

// callbackURL is the StatusCallback of a send: the public /sms/status with
// the queue id, so that callbacks find the marker even when they come
// before the API call returned.
func (t *Transport) callbackURL(ref string) string {
	return t.publicURL + "/sms/status?ref=" + url.QueryEscape(ref)
}

// send makes one attempt at one queued text.
func (t *Transport) send(ctx context.Context, it store.QueueItem) {
	var p outboundText
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		t.log.Error("a queued text is corrupt and is dropped", "id", it.ID, "err", err)
		_ = t.st.Dequeue(ctx, it.ID, it.Lease)
		return
	}
	ref := strconv.FormatInt(it.ID, 10)
	log := t.log.With("ref", ref, "user", it.User, "to", p.To)
	mk, err := t.getMarker(ctx, ref)
	if err != nil {
		t.retry(ctx, it, p, log, fmt.Errorf("reading the send marker: %w", err))
		return
	}
	log.Debug("send attempt", "marker", mk != nil, "attempts", it.Attempts)
	if mk != nil && mk.SID != "" {
		// Sent before a crash, not yet dequeued.
		t.finishSent(ctx, it, mk.SID, log)
		return
	}
	if mk != nil {
		sid, err := t.findSent(ctx, it, p, mk)
		if err != nil {
			t.retry(ctx, it, p, log, fmt.Errorf("checking whether an interrupted send went out: %w", err))
			return
		}
		if sid != "" {
			log.Info("an interrupted send had gone out; not sending it again", "sid", sid)
			mk.SID = sid
			if err := t.putMarker(ctx, ref, mk); err != nil {
				t.retry(ctx, it, p, log, err)
				return
			}
			t.finishSent(ctx, it, sid, log)
			return
		}
	} else {
		mk = &marker{User: it.User, Resource: p.Resource, To: p.To, Inbox: p.Inbox, StanzaID: it.StanzaID}
		if err := t.usage.take(ctx, it.User, p.Segments); err != nil {
			var se *bridge.StanzaError
			if !errors.As(err, &se) {
				t.retry(ctx, it, p, log, fmt.Errorf("counting the text against the quotas: %w", err))
				return
			}
			log.Info("a text over a limit was refused", "err", se.Text)
			t.tellError(ctx, it, p, se)
			if err := t.st.Dequeue(ctx, it.ID, it.Lease); err != nil {
				log.Warn("removing a refused text from the queue failed", "err", err)
			}
			return
		}
		mk.Counted = time.Now().UTC()
		if *t.cfg.HistoryDays > 0 && p.Inbox == "" {
			if err := t.st.AppendArchive(ctx, []store.ArchiveEntry{{User: it.User, Transport: Name, Peer: p.To, Outgoing: true, Body: p.Body, OriginID: it.StanzaID}}); err != nil {
				log.Warn("archiving a text failed", "err", err)
			}
		}
	}
	mk.At = time.Now().UTC()
	if err := t.putMarker(ctx, ref, mk); err != nil {
		t.retry(ctx, it, p, log, fmt.Errorf("writing the send marker: %w", err))
		return
	}
	params := &openapi.CreateMessageParams{}
	params.SetTo(p.To)
	if t.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(t.cfg.MessagingServiceSID)
	}
	if p.From != "" {
		params.SetFrom(p.From)
	}
	if p.Body != "" {
		params.SetBody(p.Body)
	}
	if len(p.Media) > 0 {
		params.SetMediaUrl(p.Media)
	}
	params.SetStatusCallback(t.callbackURL(ref))
	msg, err := t.api.CreateMessage(params)
	if err != nil {
		var te *twclient.TwilioRestError
		if errors.As(err, &te) && te.Status != 429 && te.Status < 500 {
			t.mFailed.Inc()
			log.Info("Twilio refused a text", "code", te.Code, "status", te.Status, "message", te.Message)
			mk.Final, mk.Told = "refused", true
			_ = t.putMarker(ctx, ref, mk)
			if err := t.usage.refund(ctx, it.User, max(1, p.Segments), mk.Counted); err != nil {
				log.Warn("giving back the quota of a refused text failed", "err", err)
			}
			t.tellError(ctx, it, p, apiError(te.Code, p.To, te.Message))
			if err := t.st.Dequeue(ctx, it.ID, it.Lease); err != nil {
				log.Warn("removing a refused text from the queue failed", "err", err)
			}
			return
		}
		t.retry(ctx, it, p, log, err)
		return
	}
	sid := ""
	if msg.Sid != nil {
		sid = *msg.Sid
	}
	mk.SID = sid
	if err := t.putMarker(ctx, ref, mk); err != nil {
		log.Warn("recording the SID of a sent text failed; a retry will find it through the list API", "sid", sid, "err", err)
		return // the lease runs out, the retry finds the message by listing
	}
	t.finishSent(ctx, it, sid, log)
}

// finishSent records the SID of a sent text and removes it from the queue.
func (t *Transport) finishSent(ctx context.Context, it store.QueueItem, sid string, log *slog.Logger) {
	if it.StanzaID != "" {
		if err := t.st.PutMessageID(ctx, store.MessageID{User: it.User, Transport: Name, Peer: it.Peer, StanzaID: it.StanzaID, RemoteID: sid}); err != nil {
			log.Warn("recording the SID of a sent text failed", "sid", sid, "err", err)
		}
	}
	if err := t.st.Dequeue(ctx, it.ID, it.Lease); err != nil {
		log.Warn("removing a sent text from the queue failed", "sid", sid, "err", err)
		return
	}
	t.mOut.Inc()
	log.Info("text sent", "sid", sid)
}

// findSent looks for the message an interrupted attempt may have created:
// same recipient (and sender), same body, created at or after the marker
// (less a few seconds: Twilio's dates have one-second precision), and not
// already the SID of another of the user's texts.
func (t *Transport) findSent(ctx context.Context, it store.QueueItem, p outboundText, mk *marker) (string, error) {
	params := &openapi.ListMessageParams{}
	params.SetTo(p.To)
	if p.From != "" {
		params.SetFrom(p.From)
	}
	params.SetDateSentAfter(mk.At.Add(-24 * time.Hour))
	params.SetPageSize(listLookback)
	params.SetLimit(listLookback)
	msgs, err := t.api.ListMessage(params)
	if err != nil {
		return "", err
	}
	since := mk.At.Add(-markerSkewSec * time.Second)
	for _, m := range msgs {
		if m.Sid == nil || m.Body == nil || *m.Body != p.Body {
			continue
		}
		if m.DateCreated != nil {
			created, err := time.Parse(time.RFC1123Z, *m.DateCreated)
			if err == nil && created.Before(since) {
				continue
			}
		}
		if _, err := t.st.FindByRemoteID(ctx, it.User, Name, it.Peer, *m.Sid); err == nil {
			continue // another text of the user's
		}
		return *m.Sid, nil
	}
	return "", nil
}

// retry reschedules a text after a network error, a 5xx or a 429, with
// backoff; after outGiveUp it fails for good.
func (t *Transport) retry(ctx context.Context, it store.QueueItem, p outboundText, log *slog.Logger, cause error) {
	if time.Since(it.CreatedAt) > outGiveUp {
		t.mFailed.Inc()
		log.Warn("giving up on a text after a day of failed attempts", "err", cause)
		t.tellError(ctx, it, p, bridge.Errorf(bridge.RemoteServerTimeout, "The text to %s could not be sent for a day (%v); it was not sent.", p.To, cause))
		_ = t.st.Dequeue(ctx, it.ID, it.Lease)
		return
	}
	t.mRetried.Inc()
	next := time.Now().Add(backoff(it.Attempts))
	log.Warn("sending a text failed; trying again later", "err", cause, "attempt", it.Attempts+1, "next", next)
	if err := t.st.Reschedule(ctx, it.ID, it.Lease, next, cause.Error()); err != nil {
		log.Warn("rescheduling a text failed", "err", err)
	}
}

// peerAddress is the address errors and receipts of a text come from:
// the contact, or the team inbox room.
func (t *Transport) peerAddress(to, inbox string) mapping.Address {
	if inbox != "" {
		if a, err := t.codec.InboxRoom(to, inbox); err == nil {
			return a
		}
	}
	a, err := t.codec.Number(to)
	if err != nil {
		return mapping.Address{Kind: mapping.KindGateway, Domain: t.codec.Domain()}
	}
	return a
}

func (t *Transport) tellError(ctx context.Context, it store.QueueItem, p outboundText, e *bridge.StanzaError) {
	to, err := jid.Parse(p.Resource)
	if err != nil {
		to, _ = jid.Parse(it.User)
	}
	if it.StanzaID == "" {
		// No id to put the error on: tell in words.
		_ = t.gw.Emit(ctx, Name, bridge.Message{To: to, From: t.peerAddress(p.To, p.Inbox), Type: bridge.Chat, Body: "⚠ " + e.Text, Notice: true})
		return
	}
	_ = t.gw.Emit(ctx, Name, bridge.DeliveryError{To: to, From: t.peerAddress(p.To, p.Inbox), Kind: "message", ID: it.StanzaID, Err: e})
}

// statusRank orders statuses: a callback never moves a text back.
var statusRank = map[string]int{"queued": 1, "accepted": 1, "scheduled": 1, "sending": 2, "sent": 3, "delivered": 4, "read": 5, "undelivered": 4, "failed": 4}

// statusCallback applies one status callback: delivered gives a XEP-0184
// receipt, undelivered and failed an error on the original message id.
// Repeated and late callbacks change nothing (the marker keeps the final
// status); the marker is updated before the user is told, and a crash in
// between is retried by Twilio's own callback retry (500 answered).
func (t *Transport) statusCallback(ctx context.Context, ref, sid, status string, code int) error {
	if ref == "" {
		t.log.Info("a status callback without ref (not a text of this gateway, or of an older version)", "sid", sid, "status", status)
		return nil
	}
	l := t.sidLock("ref" + ref)
	l.Lock()
	defer l.Unlock()
	mk, err := t.getMarker(ctx, ref)
	if err != nil {
		return err
	}
	if mk == nil {
		t.log.Warn("a status callback for an unknown text", "ref", ref, "sid", sid, "status", status)
		return nil
	}
	if mk.Final != "" || statusRank[status] < 4 {
		if mk.SID == "" && sid != "" && mk.Final == "" {
			mk.SID = sid // the callback came before the API answer was recorded
			return t.putMarker(ctx, ref, mk)
		}
		return nil
	}
	mk.Final = status
	if mk.SID == "" {
		mk.SID = sid
	}
	if err := t.putMarker(ctx, ref, mk); err != nil {
		return err
	}
	to, err := jid.Parse(mk.Resource)
	if err != nil {
		to, _ = jid.Parse(mk.User)
	}
	from := t.peerAddress(mk.To, mk.Inbox)
	switch status {
	case "delivered", "read":
		if mk.StanzaID != "" {
			return t.gw.Emit(ctx, Name, bridge.Receipt{To: to, From: from, ID: mk.StanzaID})
		}
	case "undelivered", "failed":
		t.mFailed.Inc()
		e := deliveryError(status, code, mk.To)
		if mk.StanzaID == "" {
			return t.gw.Emit(ctx, Name, bridge.Message{To: to, From: from, Type: bridge.Chat, Body: "⚠ " + e.Text, Notice: true})
		}
		return t.gw.Emit(ctx, Name, bridge.DeliveryError{To: to, From: from, Kind: "message", ID: mk.StanzaID, Err: e})
	}
	return nil
}
