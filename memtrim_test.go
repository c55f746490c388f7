package main

import (
	"context"
	"io"
	"log/slog"
	"runtime/metrics"
	"testing"
	"time"
)

var sink [][]byte

// TestTrimAfterBursts: after a burst of allocation followed by a quiet
// spell, the free heap goes back to the system.
func TestTrimAfterBursts(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a few seconds")
	}
	released := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		trimAfterBursts(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() { cancel(); <-done }()
	time.Sleep(trimPoll + 100*time.Millisecond) // the first reading
	// A burst: 96 MiB allocated, 64 MiB of it alive for a moment.
	for range 3 {
		sink = nil
		for range 512 {
			sink = append(sink, make([]byte, 64<<10))
		}
	}
	sink = nil
	before := released()
	deadline := time.Now().Add(trimQuiet + 5*trimPoll)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		if r := released(); r >= before+16<<20 {
			return
		}
	}
	t.Fatalf("released heap went from %d to %d bytes: the burst's memory was not returned", before, released())
}
