package email

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestSpool: concurrent puts are all durable and listed in order after a
// reopen (a restart); removed mail stays removed across a reopen; a torn
// record at the end of a segment is cut and later writes are readable.
func TestSpool(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.run(stop) }()
	var pw sync.WaitGroup
	for i := 0; i < 50; i++ {
		pw.Add(1)
		go func() {
			defer pw.Done()
			if err := s.put([]byte(fmt.Sprintf("mail %d", i))); err != nil {
				t.Error(err)
			}
		}()
	}
	pw.Wait()
	keys := s.list(100)
	if len(keys) != 50 {
		t.Fatalf("%d listed, want 50", len(keys))
	}
	for _, k := range keys[:20] {
		if err := s.remove(k); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if err := s.put([]byte("late")); err == nil {
		t.Error("a put after stop succeeded")
	}

	// Restart, with a torn record appended to the last segment.
	seg := filepath.Join(dir, segName(keys[0].seg))
	f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.Write([]byte{0, 0, 1, 0, 1, 2, 3, 4, 'x'})
	f.Close()
	s2, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	left := s2.list(100)
	if len(left) != 30 {
		t.Fatalf("after a restart %d pending, want 30", len(left))
	}
	seen := map[string]bool{}
	for _, k := range left {
		b, err := s2.read(k)
		if err != nil {
			t.Fatal(err)
		}
		seen[string(b)] = true
	}
	for _, k := range keys[:20] {
		b, _ := s.read(k)
		if seen[string(b)] {
			t.Errorf("%q came back after it was removed", b)
		}
	}
	stop2 := make(chan struct{})
	wg.Add(1)
	go func() { defer wg.Done(); s2.run(stop2) }()
	if err := s2.put([]byte("after restart")); err != nil {
		t.Fatal(err)
	}
	all := s2.list(100)
	if b, _ := s2.read(all[len(all)-1]); string(b) != "after restart" {
		t.Errorf("last record %q", b)
	}
	for _, k := range all {
		_ = s2.remove(k)
	}
	close(stop2)
	wg.Wait()
	if s3, err := openSpool(dir); err != nil || len(s3.list(10)) != 0 {
		t.Errorf("after removing everything and a restart: %v pending, err %v", len(s3.list(10)), err)
	}
}

// TestSpoolSegments: with small segments, mail spreads over several;
// removing a batch of keys at once deletes each segment whose mail is all
// delivered, the one being written is kept until it is left behind, and a
// reopen finds exactly the mail not removed.
func TestSpoolSegments(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.segMax = 100
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.run(stop) }()
	defer func() { close(stop); wg.Wait(); s.close() }()
	segs := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, "seg-*"))
		return len(m)
	}
	for i := 0; i < 10; i++ {
		if err := s.put([]byte(fmt.Sprintf("mail %02d %s", i, string(make([]byte, 40))))); err != nil {
			t.Fatal(err)
		}
	}
	keys := s.list(100)
	if len(keys) != 10 || segs() < 4 {
		t.Fatalf("%d keys in %d segments, want 10 in at least 4", len(keys), segs())
	}
	for _, k := range keys { // every record can be read back
		if b, err := s.read(k); err != nil || len(b) != 48 {
			t.Fatalf("read %v: %d bytes, %v", k, len(b), err)
		}
	}
	before := segs()
	if err := s.remove(keys[:6]...); err != nil {
		t.Fatal(err)
	}
	if got := len(s.list(100)); got != 4 {
		t.Fatalf("%d pending after removing 6 of 10", got)
	}
	if segs() >= before {
		t.Errorf("no segment deleted: %d before, %d after", before, segs())
	}
	if err := s.remove(keys[:6]...); err != nil { // twice is harmless
		t.Fatal(err)
	}
	if err := s.remove(keys[6:]...); err != nil {
		t.Fatal(err)
	}
	// The current segment stays until a write moves on; then it goes.
	if segs() != 1 {
		t.Errorf("%d segments with nothing pending, want the current one", segs())
	}
	if err := s.put([]byte(string(make([]byte, 200)))); err != nil {
		t.Fatal(err)
	}
	if err := s.put([]byte("x")); err != nil {
		t.Fatal(err)
	}
	s2, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.close()
	left := s2.list(100)
	if len(left) != 2 {
		t.Fatalf("after a reopen %d pending, want 2", len(left))
	}
	if b, err := s2.read(left[1]); err != nil || string(b) != "x" {
		t.Fatalf("last record %q, %v", b, err)
	}
}
