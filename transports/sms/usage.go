package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"switchboard/bridge"
	"switchboard/store"
)

// usage counts texts and segments per user and UTC day, and segments of
// everyone together (the global ceiling). Counts are kept in the store's
// per-user state ("usage:2026-12-06"; the global one under the user key
// globalUser), so a restart does not reset a quota. All updates go
// through one mutex: a check and its increment are one step.
type usage struct {
	st  store.Store
	cfg Config
	mu  sync.Mutex
	now func() time.Time
}

const globalUser = "sms-global"

// dayUsage is one user's (or everyone's) use on one day.
type dayUsage struct {
	Messages int `json:"messages"`
	Segments int `json:"segments"`
}

func newUsage(st store.Store, cfg Config) *usage {
	return &usage{st: st, cfg: cfg, now: time.Now}
}

func dayKey(t time.Time) string { return "usage:" + t.UTC().Format("2006-01-02") }

func (u *usage) get(ctx context.Context, user, key string) (dayUsage, error) {
	var d dayUsage
	b, err := u.st.GetState(ctx, user, Name, key)
	if errors.Is(err, store.ErrNotFound) {
		return d, nil
	}
	if err != nil {
		return d, err
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &d); err != nil {
			return dayUsage{}, fmt.Errorf("usage record %s/%s: %w", user, key, err)
		}
	}
	return d, nil
}

func (u *usage) put(ctx context.Context, user, key string, d dayUsage) error {
	b, _ := json.Marshal(d)
	return u.st.PutState(ctx, user, Name, key, b)
}

// resetsIn says when the daily counts start over.
func resetsIn(now time.Time) string {
	next := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	d := next.Sub(now).Round(time.Minute)
	return fmt.Sprintf("at 00:00 UTC (in %dh%02dm)", int(d.Hours()), int(d.Minutes())%60)
}

// take counts one text of segs segments for user, or refuses it with a
// resource-constraint error naming the limit and when it resets.
func (u *usage) take(ctx context.Context, user string, segs int) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.now()
	key := dayKey(now)
	d, err := u.get(ctx, user, key)
	if err != nil {
		return err
	}
	g, err := u.get(ctx, globalUser, key)
	if err != nil {
		return err
	}
	if m := *u.cfg.DailyMessages; m > 0 && d.Messages+1 > m {
		return bridge.Errorf(bridge.ResourceConstraint, "You have sent your %d texts for today (daily_messages); the count resets %s.", m, resetsIn(now))
	}
	if m := *u.cfg.DailySegments; m > 0 && d.Segments+segs > m {
		return bridge.Errorf(bridge.ResourceConstraint, "This text of %d segments would go over your %d segments for today (daily_segments; %d used); the count resets %s.", segs, m, d.Segments, resetsIn(now))
	}
	if m := u.cfg.GlobalDailySegments; m > 0 && g.Segments+segs > m {
		return bridge.Errorf(bridge.ResourceConstraint, "The gateway has reached its daily ceiling of %d segments for all users (global_daily_segments); it resets %s.", m, resetsIn(now))
	}
	d.Messages++
	d.Segments += segs
	g.Messages++
	g.Segments += segs
	if err := u.put(ctx, user, key, d); err != nil {
		return err
	}
	return u.put(ctx, globalUser, key, g)
}

// refund gives back a text that was never sent (refused by Twilio's API).
func (u *usage) refund(ctx context.Context, user string, segs int, day time.Time) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	key := dayKey(day)
	for _, who := range []string{user, globalUser} {
		d, err := u.get(ctx, who, key)
		if err != nil {
			return err
		}
		d.Messages = max(0, d.Messages-1)
		d.Segments = max(0, d.Segments-segs)
		if err := u.put(ctx, who, key, d); err != nil {
			return err
		}
	}
	return nil
}

// today returns the use of user today.
func (u *usage) today(ctx context.Context, user string) (dayUsage, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.get(ctx, user, dayKey(u.now()))
}
