package sms

import (
	"context"
	"strings"
	"testing"
	"time"

	"switchboard/bridge"
	"switchboard/store/memstore"
)

func TestUsage(t *testing.T) {
	ctx := context.Background()
	cfg := Config{DailyMessages: ptr(3), DailySegments: ptr(5), GlobalDailySegments: 6}
	u := newUsage(memstore.New(), cfg)
	now := time.Date(2026, 12, 6, 22, 30, 0, 0, time.UTC)
	u.now = func() time.Time { return now }
	refused := func(err error, key string) {
		t.Helper()
		se, ok := err.(*bridge.StanzaError)
		if !ok || se.Condition != bridge.ResourceConstraint || !strings.Contains(se.Text, key) || !strings.Contains(se.Text, "in 1h30m") {
			t.Fatalf("want resource-constraint naming %s and the reset, got %v", key, err)
		}
	}
	for _, segs := range []int{2, 2} {
		if err := u.take(ctx, "a@x", segs); err != nil {
			t.Fatal(err)
		}
	}
	refused(u.take(ctx, "a@x", 2), "daily_segments")
	if err := u.take(ctx, "a@x", 1); err != nil {
		t.Fatal(err)
	}
	refused(u.take(ctx, "a@x", 0), "daily_messages")
	// b has their own quota but the global ceiling (6) has 1 left.
	if err := u.take(ctx, "b@x", 1); err != nil {
		t.Fatal(err)
	}
	refused(u.take(ctx, "b@x", 1), "global_daily_segments")
	// A refund gives it back; the next day starts over.
	if err := u.refund(ctx, "b@x", 1, now); err != nil {
		t.Fatal(err)
	}
	if err := u.take(ctx, "b@x", 1); err != nil {
		t.Fatalf("after a refund: %v", err)
	}
	now = now.Add(2 * time.Hour)
	if err := u.take(ctx, "a@x", 5); err != nil {
		t.Fatalf("the next day: %v", err)
	}
	if d, _ := u.today(ctx, "a@x"); d.Messages != 1 || d.Segments != 5 {
		t.Errorf("today %+v", d)
	}
}
