package email

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"switchboard/store"
)

// send_per_hour is counted from a durable log of send times per user
// (the store's per-user state "sendlog": Unix milliseconds of the sends in
// the last hour), so a restart of the gateway does not give anyone a
// fresh quota. It is read and written only on the user's goroutine
// (sends, and the status command), so one user's reads and writes never
// overlap and no lock is needed: a lock shared by all users would make
// every user's send wait for the others' store writes.

const sendLogKey = "sendlog"

// sendLog returns the send times of user in the last hour, oldest first.
func (t *Transport) sendLog(ctx context.Context, user string) ([]time.Time, error) {
	b, err := t.st.GetState(ctx, user, "email", sendLogKey)
	if errors.Is(err, store.ErrNotFound) || (err == nil && len(b) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the send log: %w", err)
	}
	var ms []int64
	if err := json.Unmarshal(b, &ms); err != nil {
		// A damaged log must not lift the limit for ever: it is
		// rewritten by the next send.
		t.log.Warn("the send log of a user is unreadable; starting it again", "user", user, "err", err)
		return nil, nil
	}
	now := t.now()
	var out []time.Time
	for _, m := range ms {
		ts := time.UnixMilli(m)
		if now.Sub(ts) < time.Hour {
			out = append(out, ts)
		}
	}
	return out, nil
}

// rateState returns the sends in the last hour and when the oldest
// leaves the window (now when there is none).
func (t *Transport) rateState(ctx context.Context, user string) (int, time.Time, error) {
	ts, err := t.sendLog(ctx, user)
	if err != nil {
		return 0, t.now(), err
	}
	if len(ts) == 0 {
		return 0, t.now(), nil
	}
	return len(ts), ts[0].Add(time.Hour), nil
}

// takeSend records a send if the user is under send_per_hour; when not,
// it returns false and when the next send can go. The record is durable
// before the mail is queued: a crash in between counts a mail that was
// not sent, never the other way round.
func (t *Transport) takeSend(ctx context.Context, user string) (bool, time.Time, error) {
	if t.cfg.SendPerHour <= 0 {
		return true, time.Time{}, nil
	}
	ts, err := t.sendLog(ctx, user)
	if err != nil {
		return false, time.Time{}, err
	}
	if len(ts) >= t.cfg.SendPerHour {
		return false, ts[len(ts)-t.cfg.SendPerHour].Add(time.Hour), nil
	}
	ms := make([]int64, 0, len(ts)+1)
	for _, x := range ts {
		ms = append(ms, x.UnixMilli())
	}
	ms = append(ms, t.now().UnixMilli())
	b, err := json.Marshal(ms)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("encoding the send log: %w", err)
	}
	if err := t.st.PutState(ctx, user, "email", sendLogKey, b); err != nil {
		return false, time.Time{}, fmt.Errorf("saving the send log: %w", err)
	}
	return true, time.Time{}, nil
}

// giveBackSend removes the newest send record of user: the mail it
// counted could not be queued.
func (t *Transport) giveBackSend(ctx context.Context, user string) {
	if t.cfg.SendPerHour <= 0 {
		return
	}
	ts, err := t.sendLog(ctx, user)
	if err != nil || len(ts) == 0 {
		return
	}
	ms := make([]int64, 0, len(ts))
	for _, x := range ts[:len(ts)-1] {
		ms = append(ms, x.UnixMilli())
	}
	b, _ := json.Marshal(ms)
	if err := t.st.PutState(ctx, user, "email", sendLogKey, b); err != nil {
		t.log.Warn("giving back a send failed", "user", user, "err", err)
	}
}
