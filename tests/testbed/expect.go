package testbed

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// errTimeout is returned by take when nothing matched in time.
var errTimeout = errors.New("timed out")

// expectBuffer is what the test clients (XMPP and IRC) share: what a
// client received and nobody took yet, in order, a bounded history of
// everything for failure messages, and a wake-up for those who wait. It
// is safe for concurrent use: the client's reader adds, tests take.
type expectBuffer[T any] struct {
	mu         sync.Mutex
	pending    []T
	history    []string
	maxHistory int
	notify     chan struct{}
	ended      bool
	endErr     error
}

func newExpectBuffer[T any](maxHistory int) *expectBuffer[T] {
	return &expectBuffer[T]{maxHistory: maxHistory, notify: make(chan struct{})}
}

// wakeLocked wakes every waiter; b.mu is held.
func (b *expectBuffer[T]) wakeLocked() {
	close(b.notify)
	b.notify = make(chan struct{})
}

// add records raw in the history and, unless consumed, buffers v.
func (b *expectBuffer[T]) add(v T, raw string, consumed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.noteLocked(raw)
	if !consumed {
		b.pending = append(b.pending, v)
	}
	b.wakeLocked()
}

// note records a line in the history only (a comment on what went wrong).
func (b *expectBuffer[T]) note(raw string) {
	b.mu.Lock()
	b.noteLocked(raw)
	b.mu.Unlock()
}

func (b *expectBuffer[T]) noteLocked(raw string) {
	b.history = append(b.history, raw)
	if len(b.history) > b.maxHistory {
		b.history = append(b.history[:0:0], b.history[len(b.history)-b.maxHistory/2:]...)
	}
}

// end records that nothing more will come, and why.
func (b *expectBuffer[T]) end(err error) {
	b.mu.Lock()
	b.ended, b.endErr = true, err
	b.wakeLocked()
	b.mu.Unlock()
}

// err is why the input ended (nil while it runs or after a clean end).
func (b *expectBuffer[T]) err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.endErr
}

// take removes and returns the oldest buffered value matching pred,
// waiting up to timeout for one to arrive.
func (b *expectBuffer[T]) take(pred func(T) bool, timeout time.Duration) (T, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		b.mu.Lock()
		for i, v := range b.pending {
			if pred(v) {
				b.pending = append(b.pending[:i], b.pending[i+1:]...)
				b.mu.Unlock()
				return v, nil
			}
		}
		notify, ended, endErr := b.notify, b.ended, b.endErr
		b.mu.Unlock()
		if ended {
			var zero T
			return zero, fmt.Errorf("the connection ended (%v)", endErr)
		}
		select {
		case <-notify:
		case <-timer.C:
			var zero T
			return zero, errTimeout
		}
	}
}

// find returns a buffered value matching pred, or one that arrives within
// d; it consumes nothing. ok is false when none came.
func (b *expectBuffer[T]) find(pred func(T) bool, d time.Duration) (v T, ok bool) {
	deadline := time.Now().Add(d)
	for {
		b.mu.Lock()
		for _, v := range b.pending {
			if pred(v) {
				b.mu.Unlock()
				return v, true
			}
		}
		notify := b.notify
		b.mu.Unlock()
		wait := time.Until(deadline)
		if wait <= 0 {
			return v, false
		}
		select {
		case <-notify:
		case <-time.After(wait):
		}
	}
}

// drop removes every buffered value matching pred.
func (b *expectBuffer[T]) drop(pred func(T) bool) {
	b.mu.Lock()
	kept := b.pending[:0]
	for _, v := range b.pending {
		if !pred(v) {
			kept = append(kept, v)
		}
	}
	b.pending = kept
	b.mu.Unlock()
}

// all is the history: everything received (the most recent when there
// was very much), taken or not.
func (b *expectBuffer[T]) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.history...)
}

// recent words the last n history entries for a failure message.
func (b *expectBuffer[T]) recent(n int, what, who string) string {
	h := b.all()
	if len(h) > n {
		h = h[len(h)-n:]
	}
	return fmt.Sprintf("last %d %s received by %s:\n  %s", len(h), what, who, strings.Join(h, "\n  "))
}
