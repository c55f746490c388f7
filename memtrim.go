package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Returning memory after a burst.
//
// Go keeps the heap it grew to (up to twice the live heap, GOGC=100) and
// returns the rest to the system only slowly, and it runs no collection
// while the process is idle (the forced one comes after two minutes). A
// burst (a mass join, a history replay to many users) therefore leaves the
// gateway's RSS at its peak long after the work is done. trimAfterBursts
// watches the allocation rate and, once a burst of allocation has been
// followed by a quiet spell, collects and returns the free memory once
// (debug.FreeOSMemory). It costs one collection per burst, at most one per
// trimMinGap, and none while the gateway is busy or idle without a burst.
//
// A burst is 32 MiB allocated since the last trim, or, for a small gateway
// (the common case: its first joins allocate less than that), 4 MiB
// allocated while the heap holds 4 MiB or more of free memory it has not
// returned: without the second rule a fresh gateway kept the peak of its
// first 100 joins (about 9 MiB of RSS, most of it free heap) for good.
const (
	trimPoll       = time.Second
	trimQuiet      = 3 * time.Second // quiet for this long after a burst
	trimQuietBPS   = 1 << 20         // "quiet": allocating less than 1 MiB/s
	trimBurst      = 32 << 20        // a burst: 32 MiB allocated since the last trim
	trimSmallBurst = 4 << 20         // or 4 MiB allocated…
	trimRetained   = 4 << 20         // …with this much free heap kept
	trimMinGap     = 10 * time.Second
)

func trimAfterBursts(ctx context.Context, log *slog.Logger) {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	allocated := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	heap := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"}, // live and dead objects
		{Name: "/memory/classes/heap/free:bytes"},    // free, not returned
		{Name: "/gc/heap/live:bytes"},                // live at the last collection
	}
	retained := func() uint64 { // heap a collection and a trim would return
		metrics.Read(heap)
		var v [3]uint64
		for i, s := range heap {
			if s.Value.Kind() != metrics.KindUint64 {
				return 0
			}
			v[i] = s.Value.Uint64()
		}
		if v[0]+v[1] < v[2] {
			return 0
		}
		return v[0] + v[1] - v[2]
	}
	t := time.NewTicker(trimPoll)
	defer t.Stop()
	last := allocated()
	sinceTrim := uint64(0)
	var quietFor time.Duration
	lastTrim := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := allocated()
		delta := now - last
		last = now
		sinceTrim += delta
		if delta < uint64(trimQuietBPS*trimPoll.Seconds()) {
			quietFor += trimPoll
		} else {
			quietFor = 0
		}
		if quietFor < trimQuiet || time.Since(lastTrim) < trimMinGap {
			continue
		}
		if sinceTrim < trimBurst && (sinceTrim < trimSmallBurst || retained() < trimRetained) {
			continue
		}
		start := time.Now()
		debug.FreeOSMemory()
		lastTrim, sinceTrim = time.Now(), 0
		log.Debug("returned free memory to the system after a burst", "took", time.Since(start))
	}
}
