package email

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// spool keeps accepted inbound mail in append-only segment files until
// the XMPP server has it. A DATA command hands its mail to the spool's
// writer, which appends every mail waiting at that moment to the current
// segment and calls fdatasync once for all of them (group commit), then
// lets each DATA answer 250: concurrent SMTP sessions share one flush,
// which is what makes this intake faster than a file or a database
// transaction per mail. Delivered mail is recorded in done.log (not
// synced: after a crash a delivered mail may be delivered again, with the
// same stanza id); a segment whose mail is all delivered is deleted. A
// spool belongs to one gateway process.
//
// Record: 4-byte big-endian length, 4-byte CRC-32 (IEEE) of the payload,
// payload. A torn record at the end of a segment (a crash during the
// write, never acknowledged) ends the segment's scan.
type spool struct {
	dir    string
	segMax int64 // start a new segment past this size

	reqs chan spoolReq

	mu      sync.Mutex
	pending []spoolKey       // accepted, not yet delivered, in order
	live    map[int]int      // segment → records not yet delivered
	cur     int              // segment being written
	curF    *os.File         // written only by the writer goroutine
	curSize int64            // written only by the writer goroutine
	doneF   *os.File         // done.log
	readers map[int]*os.File // open segments, for read
	stopped bool
}

type spoolKey struct {
	seg int
	off int64 // of the record header
	n   int   // payload length
}

func (k spoolKey) String() string { return fmt.Sprintf("%d:%d", k.seg, k.off) }

type spoolReq struct {
	payload []byte
	done    chan error
}

const (
	spoolSegmentMax = 64 << 20
	spoolBatchMax   = 256
)

func segName(n int) string { return fmt.Sprintf("seg-%012d.log", n) }

func openSpool(dir string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("email.spool_dir: %w", err)
	}
	s := &spool{dir: dir, segMax: spoolSegmentMax, reqs: make(chan spoolReq, 1024), live: map[int]int{}}
	done := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(dir, "done.log")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				done[l] = true
			}
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("email.spool_dir: %w", err)
	}
	var segs []int
	for _, e := range ents {
		if n, ok := strings.CutPrefix(e.Name(), "seg-"); ok {
			if v, err := strconv.Atoi(strings.TrimSuffix(n, ".log")); err == nil {
				segs = append(segs, v)
			}
		}
	}
	sort.Ints(segs)
	for _, seg := range segs {
		keys, end, err := scanSegment(filepath.Join(dir, segName(seg)), seg)
		if err != nil {
			return nil, fmt.Errorf("email.spool_dir: %w", err)
		}
		// Cut a torn tail so that new records never follow garbage.
		if fi, err := os.Stat(filepath.Join(dir, segName(seg))); err == nil && fi.Size() > end {
			_ = os.Truncate(filepath.Join(dir, segName(seg)), end)
		}
		left := 0
		for _, k := range keys {
			if !done[k.String()] {
				s.pending = append(s.pending, k)
				left++
			}
		}
		if left == 0 {
			_ = os.Remove(filepath.Join(dir, segName(seg)))
			continue
		}
		s.live[seg] = left
	}
	if len(segs) > 0 {
		s.cur = segs[len(segs)-1] + 1
	}
	// done.log only needs the entries of segments still there.
	var keep strings.Builder
	for d := range done {
		seg, _ := strconv.Atoi(strings.SplitN(d, ":", 2)[0])
		if s.live[seg] > 0 {
			keep.WriteString(d + "\n")
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "done.log"), []byte(keep.String()), 0o600); err != nil {
		return nil, fmt.Errorf("email.spool_dir: %w", err)
	}
	s.doneF, err = os.OpenFile(filepath.Join(dir, "done.log"), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("email.spool_dir: %w", err)
	}
	if err := s.newSegment(); err != nil {
		return nil, err
	}
	return s, nil
}

// scanSegment returns the whole records of a segment and where they end.
func scanSegment(path string, seg int) ([]spoolKey, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var keys []spoolKey
	var off int64
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return keys, off, nil
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		sum := binary.BigEndian.Uint32(hdr[4:])
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil || crc32.ChecksumIEEE(buf) != sum {
			return keys, off, nil
		}
		keys = append(keys, spoolKey{seg: seg, off: off, n: n})
		off += 8 + int64(n)
	}
}

func (s *spool) newSegment() error {
	if s.curF != nil {
		s.curF.Close()
	}
	f, err := os.OpenFile(filepath.Join(s.dir, segName(s.cur)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("email.spool_dir: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("email.spool_dir: %w", err)
	}
	d, err := os.Open(s.dir)
	if err == nil {
		_ = d.Sync() // the new segment's directory entry
		d.Close()
	}
	s.curF, s.curSize = f, fi.Size()
	return nil
}

// run is the writer: it appends and flushes batches until stop is closed.
func (s *spool) run(stop <-chan struct{}) {
	for {
		var batch []spoolReq
		select {
		case <-stop:
			s.mu.Lock()
			s.stopped = true
			s.mu.Unlock()
			for {
				select {
				case r := <-s.reqs:
					r.done <- errors.New("the gateway is shutting down")
				default:
					return
				}
			}
		case r := <-s.reqs:
			batch = append(batch, r)
		}
	more:
		for len(batch) < spoolBatchMax {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		s.write(batch)
	}
}

func (s *spool) write(batch []spoolReq) {
	if s.curSize > s.segMax {
		if err := s.rotate(); err != nil {
			for _, r := range batch {
				r.done <- err
			}
			return
		}
	}
	var buf []byte
	keys := make([]spoolKey, len(batch))
	off := s.curSize
	for i, r := range batch {
		var hdr [8]byte
		binary.BigEndian.PutUint32(hdr[:4], uint32(len(r.payload)))
		binary.BigEndian.PutUint32(hdr[4:], crc32.ChecksumIEEE(r.payload))
		buf = append(buf, hdr[:]...)
		buf = append(buf, r.payload...)
		keys[i] = spoolKey{seg: s.cur, off: off, n: len(r.payload)}
		off += 8 + int64(len(r.payload))
	}
	_, err := s.curF.Write(buf)
	if err == nil {
		err = s.curF.Sync()
	}
	if err != nil {
		// Nothing is acknowledged; start a fresh segment so that later
		// records do not follow a torn one.
		err = fmt.Errorf("spooling mail: %w", err)
		_ = s.rotate()
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	s.curSize = off
	s.mu.Lock()
	s.pending = append(s.pending, keys...)
	s.live[s.cur] += len(keys)
	s.mu.Unlock()
	for _, r := range batch {
		r.done <- nil
	}
}

// rotate starts a new segment. The one it leaves is deleted at once when
// none of its mail is waiting (remove never deletes the current one).
func (s *spool) rotate() error {
	s.mu.Lock()
	old := s.cur
	s.cur++
	if s.live[old] <= 0 {
		delete(s.live, old)
		s.closeReader(old)
		_ = os.Remove(filepath.Join(s.dir, segName(old)))
	}
	s.mu.Unlock()
	return s.newSegment()
}

// put stores one mail durably: it is on disk when put returns nil.
func (s *spool) put(payload []byte) error {
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return errors.New("the gateway is shutting down")
	}
	if len(payload) > 1<<31 {
		return errors.New("mail too large for the spool")
	}
	r := spoolReq{payload: payload, done: make(chan error, 1)}
	s.reqs <- r
	return <-r.done
}

// list returns up to limit undelivered mails, oldest first.
func (s *spool) list(limit int) []spoolKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(limit, len(s.pending))
	return append([]spoolKey(nil), s.pending[:n]...)
}

// read returns a mail's record. Segments are kept open for reading until
// they are deleted (the delivery worker reads every record of them).
func (s *spool) read(k spoolKey) ([]byte, error) {
	s.mu.Lock()
	f := s.readers[k.seg]
	if f == nil {
		var err error
		if f, err = os.Open(filepath.Join(s.dir, segName(k.seg))); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		if s.readers == nil {
			s.readers = map[int]*os.File{}
		}
		s.readers[k.seg] = f
	}
	s.mu.Unlock()
	buf := make([]byte, k.n)
	if _, err := f.ReadAt(buf, k.off+8); err != nil {
		return nil, err
	}
	return buf, nil
}

// closeReader closes a segment's read handle (s.mu held).
func (s *spool) closeReader(seg int) {
	if f := s.readers[seg]; f != nil {
		f.Close()
		delete(s.readers, seg)
	}
}

// remove records mails as delivered (one write to done.log for all of
// them) and deletes the segments left with nothing in them (but never the
// one being written).
func (s *spool) remove(keys ...spoolKey) error {
	if len(keys) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	gone := make(map[spoolKey]bool, len(keys))
	for _, k := range keys {
		gone[k] = true
	}
	var lines []byte
	kept := s.pending[:0]
	for _, p := range s.pending {
		if gone[p] {
			lines = append(lines, p.String()+"\n"...)
			s.live[p.seg]--
			delete(gone, p)
			continue
		}
		kept = append(kept, p)
	}
	clear(s.pending[len(kept):])
	s.pending = kept
	if len(lines) == 0 {
		return nil
	}
	var errs []error
	if _, err := s.doneF.Write(lines); err != nil {
		errs = append(errs, err)
	}
	for _, k := range keys {
		if s.live[k.seg] <= 0 && k.seg != s.cur {
			if _, ok := s.live[k.seg]; !ok {
				continue // already deleted
			}
			delete(s.live, k.seg)
			s.closeReader(k.seg)
			if err := os.Remove(filepath.Join(s.dir, segName(k.seg))); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// close closes the spool's files; call it once nothing uses the spool.
func (s *spool) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for seg := range s.readers {
		s.closeReader(seg)
	}
	if s.curF != nil {
		s.curF.Close()
		s.curF = nil
	}
	if s.doneF != nil {
		s.doneF.Close()
		s.doneF = nil
	}
}
