package irc

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/tests/testbed"
)

// TestMassJoin has many users join at once (200, or IRC_MASS_USERS): every
// one must get in, although ngircd's listen backlog is small, and it
// reports the memory each bridged user costs.
func TestMassJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("mass join: not in -short")
	}
	users := 200
	if v, err := strconv.Atoi(os.Getenv("IRC_MASS_USERS")); err == nil && v > 0 {
		users = v
	}
	if os.Getenv("IRC_MASS_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 64
	}
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	cfg := testConfig(ng.Addr())
	cfg.HistoryDays = ptr(0)
	h := newHarness(t, cfg)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	start := time.Now()
	jids := make([]jid.JID, users)
	for i := range users {
		jids[i] = jid.MustParse(fmt.Sprintf("user%d@localhost/r", i))
		occ := h.addr(fmt.Sprintf("#mass%d%%local@irc.localhost/user%d", i%50, i))
		h.dispatch(jids[i], bridge.JoinRoom{From: jids[i], Room: occ, MUC: true})
	}
	joined := map[string]bool{}
	deadline := time.Now().Add(3 * time.Minute)
	for len(joined) < users {
		ev, ok := h.next(func(ev bridge.Outbound) bool {
			switch ev.(type) {
			case bridge.RoomJoined, bridge.DeliveryError:
				return true
			}
			return false
		}, time.Until(deadline))
		if !ok {
			t.Fatalf("only %d of %d users got in after %s", len(joined), users, time.Since(start))
		}
		switch ev := ev.(type) {
		case bridge.RoomJoined:
			joined[ev.To.String()] = true
		case bridge.DeliveryError:
			t.Fatalf("a join failed: %+v", ev.Err)
		}
	}
	elapsed := time.Since(start)
	h.mu.Lock()
	h.pending = nil // the recorded events are not the gateway's memory
	h.mu.Unlock()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if path := os.Getenv("IRC_MASS_HEAPPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	perUser := (int64(after.HeapInuse+after.StackInuse) - int64(before.HeapInuse+before.StackInuse)) / int64(users)
	t.Logf("%d users joined in %s; %d goroutines per user; about %.1f KiB per bridged user (%.1f KiB heap, %.1f KiB stacks: user goroutine, session, IRC connection, room state)",
		users, elapsed.Round(time.Millisecond), (runtime.NumGoroutine()-goroutines)/users, float64(perUser)/1024,
		float64(int64(after.HeapInuse)-int64(before.HeapInuse))/float64(users)/1024,
		float64(int64(after.StackInuse)-int64(before.StackInuse))/float64(users)/1024)
	if got := h.tr.Connections(); got != users {
		t.Fatalf("connections = %d, want %d", got, users)
	}
}
