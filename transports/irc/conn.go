package irc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/ergochat/irc-go/ircmsg"
	"github.com/ergochat/irc-go/ircreader"
	"golang.org/x/sys/unix"
	"golang.org/x/text/encoding"
)

// Why our own connection rather than ircevent.Connection: ircevent runs
// about five goroutines and ~35 KiB per connection, writes its log to
// stdout by default, never rejoins, blocks registration 15 s when CAP gets
// no answer, and runs callbacks on its read goroutine, so the per-user
// state would need locks. The gateway keeps one IRC connection per user per
// network (the benchmark against Biboumi counts memory per bridged user),
// so conn is lean: one goroutine reads (ircreader + ircmsg) and posts every
// parsed line to the user's goroutine, one goroutine writes through a token
// bucket. All protocol state (CAP, SASL, ISUPPORT, channels) lives in the
// session, on the user's goroutine, without locks.

// Timeouts of a connection.
const (
	dialTimeout = 30 * time.Second
	// writeTimeout bounds one write; a server that reads nothing for this
	// long is treated as gone.
	writeTimeout = 60 * time.Second
	// idleTimeout is how long the reader waits for a line before it sends
	// PING; pingTimeout how long it then waits for anything.
	idleTimeout = 150 * time.Second
	pingTimeout = 60 * time.Second
	// quitLinger is how long the writer waits, once QUIT is written, for
	// the server to close the connection.
	quitLinger = 2 * time.Second
	// maxQueue bounds what a connection may have waiting to be written.
	maxQueue = 256 << 10
	// readBufMax is the longest line the reader accepts: tags (8191) and
	// the 512-byte message.
	readBufMax = 8192 + 512
	// directGap: a line sent this soon after the last write goes to the
	// writer (it is part of a stream), not out directly.
	directGap = time.Millisecond
)

// outLine is one encoded line waiting to be written.
type outLine struct {
	b        []byte
	priority bool // PING/PONG: ahead of the queue, outside the rate limit
	// quit marks the QUIT line: the last one, outside the rate limit (it
	// floods nothing, and at shutdown it must not wait for tokens).
	quit bool
	// seq numbers the lines of the session (not PING/PONG/QUIT), in the
	// order they are written: the session learns which of its lines
	// reached the socket from conn.written.
	seq uint64
}

// connWritten tells the session that lines were written (up to
// conn.written); posted at most once at a time per conn.
type connWritten struct{ c *conn }

// errQueueFull is returned by send when too much is waiting to be written.
var errQueueFull = errors.New("too much is waiting to be sent on this IRC connection")

// errClosed is returned by send on a connection that is closing.
var errClosed = errors.New("the IRC connection is closing")

// poster is what a conn posts its events to (*bridge.User in production).
type poster interface {
	Post(ev any) bool
	PostOr(ev any, interval time.Duration, waiting func()) bool
}

// dialSpec says how to reach a server.
type dialSpec struct {
	addr      string      // host:port
	tls       *tls.Config // nil for plain TCP
	bind      string      // local IP or ""
	noPrivate bool        // refuse loopback, private and link-local addresses
	// slot paces connects: a conn holds one from dialing until the
	// server registered it (or the attempt failed).
	slots chan struct{}
	// idents, when the identd runs, records the connection (by its local
	// and remote port) with ident, the user's answer to ident queries.
	idents *identTable
	ident  string
}

// Events a conn posts to the user's goroutine.
type (
	// connUp says the TCP (and TLS) connection is established.
	connUp struct{ c *conn }
	// connLine is one line read from the server.
	connLine struct {
		c   *conn
		msg ircmsg.Message
	}
	// connDown says the connection is gone; it is the last event of c.
	connDown struct {
		c   *conn
		err error
	}
)

// conn is one connection to an IRC server. Its goroutines are started by
// start and end after close (or a network error); the owner (a session)
// calls close in every case.
type conn struct {
	spec    dialSpec
	u       poster
	log     *slog.Logger
	decoder encoding.Encoding // for lines that are not UTF-8; nil: U+FFFD
	rate    float64
	burst   int
	// keepaliveEvery: see keepaliveEvery; set before start.
	keepaliveEvery time.Duration

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	queue    []outLine
	queued   int  // bytes in queue
	quitting bool // QUIT queued: nothing more may be queued
	slotHeld bool
	// nc is the connection while it is up (nil before and after), and raw
	// its TCP socket, for the writability check of a direct write.
	nc  net.Conn
	raw syscall.RawConn
	// writing says the socket is being written, by the writer or by a
	// direct write in sendRaw: only one of them writes at a time.
	writing bool
	// writerUp says a writer goroutine runs. It runs only while lines
	// wait (a connection that keeps up writes directly, and an idle one
	// costs no goroutine stack); writers counts them for run.
	writerUp bool
	writers  sync.WaitGroup
	// wrote is when the last write ended (direct writes are for lines
	// that come alone; see sendRaw).
	wrote time.Time
	// tokens and refilled are the token bucket (when rate > 0).
	tokens   float64
	refilled time.Time

	quitWritten atomic.Bool // the writer wrote QUIT

	// seq is the number of the last line queued or written (c.mu held);
	// written the number of the last line written to the socket, which
	// the session reads to reflect a message only once its last line
	// left. notifying says a connWritten is on its way.
	seq       uint64
	lines     int // queued lines with a seq (c.mu held)
	written   atomic.Uint64
	notifying atomic.Bool

	// identLocal and identRemote are the ends recorded in spec.idents
	// (valid when identRecorded; used by the reader goroutine only).
	identLocal, identRemote netip.AddrPort
	identRecorded           bool

	wake    chan struct{} // cap 1: something was queued, or a direct write ended
	flushed chan struct{} // closed when the writer has written QUIT
	done    chan struct{} // closed when both goroutines ended
}

// newConn returns a conn that is not started. Its context is its own (not
// the user's): at shutdown the user's context ends first, and QUIT must
// still be written.
func newConn(spec dialSpec, u poster, log *slog.Logger, dec encoding.Encoding, rate float64, burst int) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	if burst < 1 {
		burst = 1
	}
	return &conn{
		spec: spec, u: u, log: log, decoder: dec, rate: rate, burst: burst,
		ctx: ctx, cancel: cancel,
		tokens: float64(burst), refilled: time.Now(),
		keepaliveEvery: keepaliveEvery,
		wake:           make(chan struct{}, 1),
		flushed:        make(chan struct{}),
		done:           make(chan struct{}),
	}
}

// start runs the connection: dial, then read until the end.
func (c *conn) start() {
	go c.run()
}

// run is the reader goroutine; it also dials and starts the writer.
func (c *conn) run() {
	defer close(c.done)
	defer c.forgetIdent()
	nc, err := c.dial()
	if err != nil {
		c.releaseSlot()
		c.cancel()
		c.u.Post(connDown{c: c, err: err})
		return
	}
	// Closing the socket is what stops a blocked read or write.
	stop := context.AfterFunc(c.ctx, func() { nc.Close() })
	defer stop()
	c.mu.Lock()
	c.nc, c.raw = nc, rawConn(nc)
	c.ensureWriter() // for what was queued while dialing
	c.mu.Unlock()
	if !c.u.Post(connUp{c: c}) {
		c.cancel()
	}
	err = c.readLoop(nc)
	c.cancel()
	c.mu.Lock()
	c.nc, c.raw = nil, nil // no writer starts after this
	c.mu.Unlock()
	nc.Close()
	c.writers.Wait()
	c.releaseSlot()
	c.u.Post(connDown{c: c, err: err})
}

// dial connects to the server, holding a pacing slot.
func (c *conn) dial() (net.Conn, error) {
	if c.spec.slots != nil {
		select {
		case c.spec.slots <- struct{}{}:
			c.mu.Lock()
			c.slotHeld = true
			c.mu.Unlock()
		case <-c.ctx.Done():
			return nil, c.ctx.Err()
		}
	}
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 60 * time.Second}
	if c.spec.bind != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(c.spec.bind)}
	}
	if c.spec.noPrivate {
		d.Control = refusePrivate
	}
	nc, err := d.DialContext(c.ctx, "tcp", c.spec.addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", c.spec.addr, err)
	}
	c.recordIdent(nc)
	if c.spec.tls == nil {
		return nc, nil
	}
	tc := tls.Client(nc, c.spec.tls)
	hctx, cancel := context.WithTimeout(c.ctx, dialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS with %s: %w", c.spec.addr, err)
	}
	return tc, nil
}

// recordIdent tells the identd about the connection, as early as possible:
// servers ask right after accepting it.
func (c *conn) recordIdent(nc net.Conn) {
	if c.spec.idents == nil {
		return
	}
	local, ok1 := tcpAddrPort(nc.LocalAddr())
	remote, ok2 := tcpAddrPort(nc.RemoteAddr())
	if !ok1 || !ok2 {
		return
	}
	c.identLocal, c.identRemote, c.identRecorded = local, remote, true
	c.spec.idents.add(local, remote, c.spec.ident, c)
}

// forgetIdent undoes recordIdent when the connection ends.
func (c *conn) forgetIdent() {
	if c.identRecorded {
		c.identRecorded = false
		c.spec.idents.remove(c.identLocal, c.identRemote, c)
	}
}

// refusePrivate is a net.Dialer Control that refuses addresses an open
// gateway must not reach.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refusing to connect to %s: %w", address, err)
	}
	ip := ap.Addr().Unmap()
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
		return fmt.Errorf("refusing to connect to %s: the gateway does not reach local or private addresses", ip)
	}
	return nil
}

// releaseSlot gives the pacing slot back (once).
func (c *conn) releaseSlot() {
	c.mu.Lock()
	held := c.slotHeld
	c.slotHeld = false
	c.mu.Unlock()
	if held {
		<-c.spec.slots
	}
}

// readLoop reads lines until an error. It pings an idle server.
func (c *conn) readLoop(nc net.Conn) error {
	var r ircreader.Reader
	r.Initialize(nc, 512, readBufMax)
	pinged := false
	debug := c.log.Enabled(context.Background(), slog.LevelDebug)
	for {
		switch {
		case c.quitWritten.Load():
			// The writer set a short deadline for the server to close.
		case pinged:
			nc.SetReadDeadline(time.Now().Add(pingTimeout))
		default:
			nc.SetReadDeadline(time.Now().Add(idleTimeout))
		}
		raw, err := r.ReadLine()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged && c.ctx.Err() == nil {
				c.mu.Lock()
				quitting := c.quitting
				c.mu.Unlock()
				if !quitting {
					pinged = true
					c.sendRaw([]byte("PING :switchboard\r\n"), true)
					continue
				}
			}
			if c.ctx.Err() != nil {
				return context.Canceled
			}
			if errors.Is(err, ircreader.ErrReadQ) {
				return errors.New("the server sent a line longer than IRC allows")
			}
			return err
		}
		pinged = false
		if len(raw) == 0 {
			continue
		}
		line := c.decode(raw)
		if debug {
			c.log.Debug("irc <-", "line", line)
		}
		msg, err := ircmsg.ParseLine(line)
		if err != nil {
			c.log.Debug("an unparseable line from the IRC server was ignored", "err", err)
			continue
		}
		if msg.Command == "PING" {
			// Answered here, not on the user's goroutine: that one may be
			// waiting for room in a full XMPP queue (backpressure), and a
			// server must not time the connection out meanwhile.
			c.pong(&msg)
			continue
		}
		if !c.u.PostOr(connLine{c: c, msg: msg}, c.keepaliveEvery, c.keepalive) {
			// The user's goroutine stopped and is closing its
			// connections (Close gives queued lines time to leave, then
			// QUITs): keep reading, so that the server is not held up,
			// until then.
			continue
		}
	}
}

// keepaliveEvery is how often a reader that cannot hand a line to its
// user's goroutine sends the server a PING of its own (conn.keepaliveEvery,
// which tests shorten).
const keepaliveEvery = 10 * time.Second

// keepalive is sent while the reader waits for the user's goroutine (see
// readLoop): the server's own PING may be unread behind the line it
// holds, and servers (ngircd, Solanum, InspIRCd) time out a client that
// sends nothing for a while after a PING, so the connection says it is
// alive. The server's PONG reaches the user's goroutine later and is
// ignored.
func (c *conn) keepalive() {
	ping := ircmsg.MakeMessage(nil, "", "PING", "switchboard")
	if b, err := encodeLine(&ping); err == nil {
		_ = c.sendRaw(b, true)
	}
}

// pong answers a server PING ahead of the queue and the rate limit.
func (c *conn) pong(ping *ircmsg.Message) {
	pong := ircmsg.MakeMessage(nil, "", "PONG", ping.Params...)
	if b, err := encodeLine(&pong); err == nil {
		_ = c.sendRaw(b, true)
	}
}

// decode returns the line as UTF-8, decoding it with the network's
// fallback charset when it is not valid UTF-8.
func (c *conn) decode(raw []byte) string {
	if utf8.Valid(raw) {
		return string(raw)
	}
	if c.decoder != nil {
		if s, err := c.decoder.NewDecoder().Bytes(raw); err == nil && utf8.Valid(s) {
			return string(s)
		}
	}
	return string(bytes.ToValidUTF8(raw, []byte("\uFFFD")))
}

// send queues one message. It is the only way a line from the session
// reaches the socket, and it refuses any line that holds NUL, CR or LF (or
// is longer than IRC allows) instead of sending something else than what
// was meant.
func (c *conn) send(msg *ircmsg.Message) (uint64, error) {
	b, err := encodeLine(msg)
	if err != nil {
		return 0, err
	}
	return c.sendLine(b)
}

// sendLine queues (or writes) a line of the session and returns its
// number (see conn.written).
func (c *conn) sendLine(b []byte) (uint64, error) {
	var seq uint64
	err := c.sendRawSeq(b, false, &seq)
	return seq, err
}

// encodeLine serialises msg as one IRC line, refusing what cannot be one.
func encodeLine(msg *ircmsg.Message) ([]byte, error) {
	for i, p := range msg.Params {
		if !safeParam(p) {
			return nil, fmt.Errorf("refusing to send %s: parameter %d holds a line break or NUL", msg.Command, i+1)
		}
	}
	b, err := msg.LineBytesStrict(true, maxLine)
	if err != nil {
		return nil, fmt.Errorf("refusing to send %s: %w", msg.Command, err)
	}
	if i := bytes.IndexAny(b[:len(b)-2], "\x00\r\n"); i >= 0 {
		return nil, fmt.Errorf("refusing to send %s: the line holds a line break or NUL", msg.Command)
	}
	return b, nil
}

// sendRaw sends an encoded line; priority lines (PONG, PING) jump the
// queue and the rate limit.
//
// A line that comes alone (nothing queued or being written, nothing
// written in the last directGap) is written by the caller itself when the
// bucket has a token and the socket can take it without blocking: handing
// it to the writer goroutine would cost a wake-up and put the line behind
// whatever else the caller's P runs first (the reflection to XMPP, the
// archive), which is latency on every message of a conversation. Lines
// that come in a stream go to the writer, which writes them in batches:
// one system call for many lines, where direct writes would pay two per
// line.
func (c *conn) sendRaw(b []byte, priority bool) error {
	return c.sendRawSeq(b, priority, nil)
}

// sendRawSeq is sendRaw; a line of the session (seq not nil, not priority)
// gets its number in *seq.
func (c *conn) sendRawSeq(b []byte, priority bool, seq *uint64) error {
	c.mu.Lock()
	switch {
	case c.quitting:
		c.mu.Unlock()
		return errClosed
	case c.queued+len(b) > maxQueue && !priority:
		c.mu.Unlock()
		return errQueueFull
	}
	var n uint64
	if !priority {
		c.seq++
		n = c.seq
		if seq != nil {
			*seq = n
		}
	}
	if nc := c.nc; nc != nil && !c.writing && len(c.queue) == 0 && time.Since(c.wrote) > directGap && c.writable() && c.takeToken(priority) {
		c.writing = true
		c.mu.Unlock()
		nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := nc.Write(b)
		c.mu.Lock()
		c.writing = false
		c.wrote = time.Now()
		if err == nil && n > 0 {
			c.written.Store(n) // the caller reads it on return
		}
		if len(c.queue) > 0 {
			c.ensureWriter()
		}
		c.mu.Unlock()
		if err != nil {
			// As in the writer: the reader sees the closed socket and
			// reports the connection down.
			c.log.Debug("writing to the IRC server failed", "err", err)
			nc.Close()
		}
		c.poke() // a writer waiting for this write to end
		return nil
	}
	if priority {
		c.queue = append(c.queue, outLine{})
		copy(c.queue[1:], c.queue)
		c.queue[0] = outLine{b: b, priority: true}
	} else {
		c.queue = append(c.queue, outLine{b: b, seq: n})
		if n > 0 {
			c.lines++
		}
	}
	c.queued += len(b)
	c.ensureWriter()
	c.mu.Unlock()
	c.poke()
	return nil
}

// ensureWriter starts a writer goroutine if none runs and the connection
// is up (c.mu held).
func (c *conn) ensureWriter() {
	if c.writerUp || c.nc == nil {
		return
	}
	c.writerUp = true
	c.writers.Add(1)
	nc := c.nc
	go func() {
		defer c.writers.Done()
		c.writeLoop(nc)
	}()
}

// poke wakes the writer.
func (c *conn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// refill adds the tokens earned since the last refill (c.mu held).
func (c *conn) refill() {
	now := time.Now()
	c.tokens = min(c.tokens+now.Sub(c.refilled).Seconds()*c.rate, float64(c.burst))
	c.refilled = now
}

// takeToken takes a token for one line if the bucket has one (c.mu held);
// priority lines and connections without a rate need none.
func (c *conn) takeToken(priority bool) bool {
	if priority || c.rate <= 0 {
		return true
	}
	c.refill()
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// writable reports whether the socket can take a line without blocking
// (poll for POLLOUT, which TCP reports only with a third of the send
// buffer free: far more than a line, even with TLS framing). c.mu held.
func (c *conn) writable() bool {
	if c.raw == nil {
		return false
	}
	ok := false
	err := c.raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, 0)
		ok = err == nil && n == 1 && fds[0].Revents&unix.POLLOUT != 0
	})
	return err == nil && ok
}

// rawConn returns the TCP socket under nc (under TLS too), or nil.
func rawConn(nc net.Conn) syscall.RawConn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// quit queues QUIT (reason already cleaned) as the last line; the writer
// sends what is queued, then QUIT, then closes the connection.
func (c *conn) quit(reason string) {
	msg := ircmsg.MakeMessage(nil, "", "QUIT", reason)
	b, err := encodeLine(&msg)
	if err != nil {
		b = []byte("QUIT\r\n")
	}
	c.mu.Lock()
	if c.quitting {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, outLine{b: b, quit: true})
	c.queued += len(b)
	c.quitting = true
	c.ensureWriter()
	c.mu.Unlock()
	c.poke()
}

// notifyWritten posts connWritten unless one is on its way. The post runs
// on its own goroutine, so that the writer never waits for the user's
// goroutine (which may itself be waiting for the writer, in Close); it
// ends once posted or once the user stopped.
func (c *conn) notifyWritten() {
	if c.notifying.CompareAndSwap(false, true) {
		go c.u.Post(connWritten{c: c})
	}
}

// backlog returns how many lines of the session wait to be written.
func (c *conn) backlog() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines
}

// drain waits until every line of the session was written, the
// connection ended, or the deadline passed.
func (c *conn) drain(deadline time.Time) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for c.backlog() > 0 && time.Now().Before(deadline) {
		select {
		case <-t.C:
		case <-c.done:
			return
		}
	}
}

// abandon drops the lines of the session that wait to be written (PING,
// PONG and QUIT stay) and returns how many it dropped; the session errors
// the messages they belonged to.
func (c *conn) abandon() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.queue[:0]
	dropped := 0
	for _, l := range c.queue {
		if l.seq > 0 {
			c.queued -= len(l.b)
			c.lines--
			dropped++
			continue
		}
		kept = append(kept, l)
	}
	clear(c.queue[len(kept):])
	c.queue = kept
	return dropped
}

// close ends the connection at once; the goroutines end soon after.
func (c *conn) close() { c.cancel() }

// waitFlushed waits until QUIT was written, the connection ended, or the
// deadline passed.
func (c *conn) waitFlushed(deadline <-chan time.Time) {
	select {
	case <-c.flushed:
	case <-c.done:
	case <-deadline:
	}
}

// writeLoop writes queued lines through the token bucket until the queue
// is empty, ctx ends or QUIT was written.
func (c *conn) writeLoop(nc net.Conn) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	exit := func() {
		c.mu.Lock()
		c.writerUp = false
		c.mu.Unlock()
	}
	var wbuf []byte
	var lines []outLine
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			// Done: the next line is written directly or starts a writer.
			c.writerUp = false
			c.mu.Unlock()
			return
		}
		if c.writing {
			// A direct write is under way; it pokes when it ends.
			c.mu.Unlock()
			select {
			case <-c.wake:
				continue
			case <-c.ctx.Done():
				exit()
				return
			}
		}
		n := 16
		if c.rate > 0 {
			c.refill()
			if c.tokens < 1 && !c.queue[0].priority && !c.queue[0].quit {
				wait := time.Duration((1 - c.tokens) / c.rate * float64(time.Second))
				c.mu.Unlock()
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-timer.C:
				case <-c.ctx.Done():
					exit()
					return
				}
				continue
			}
			n = max(1, int(c.tokens))
		}
		n = min(n, len(c.queue))
		// A priority line is never held back by the bucket.
		lines = append(lines[:0], c.queue[:n]...)
		var last uint64
		for _, l := range lines {
			c.queued -= len(l.b)
			if !l.priority && !l.quit && c.rate > 0 {
				c.tokens--
			}
			if l.seq > 0 {
				last = l.seq
				c.lines--
			}
		}
		rest := copy(c.queue, c.queue[n:])
		clear(c.queue[rest:])
		c.queue = c.queue[:rest]
		if len(c.queue) == 0 && cap(c.queue) > 64 {
			c.queue = nil
		}
		quit := c.quitting && len(c.queue) == 0
		c.writing = true
		c.mu.Unlock()

		wbuf = wbuf[:0]
		for _, l := range lines {
			wbuf = append(wbuf, l.b...)
		}
		clear(lines)
		nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := nc.Write(wbuf)
		c.mu.Lock()
		c.writing = false
		c.wrote = time.Now()
		c.mu.Unlock()
		if err != nil {
			c.log.Debug("writing to the IRC server failed", "err", err)
			nc.Close()
			exit()
			return
		}
		if last > 0 {
			c.written.Store(last)
			c.notifyWritten()
		}
		if cap(wbuf) > 4096 { // a burst; do not keep its buffer
			wbuf = nil
		}
		if quit {
			c.quitWritten.Store(true)
			nc.SetReadDeadline(time.Now().Add(quitLinger))
			close(c.flushed)
			exit()
			return
		}
	}
}

// tlsConfig builds the TLS configuration of a server: verification against
// the system roots by default, none with verify false, and with a
// fingerprint only the pinned certificate (SHA-256 of its DER).
func tlsConfig(host string, verify bool, fingerprint []byte, cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	if len(fingerprint) > 0 {
		cfg.InsecureSkipVerify = true // replaced by the pin below
		pin := fingerprint
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(sum[:], pin) != 1 {
				return fmt.Errorf("the server's certificate has fingerprint %x, not the configured one", sum)
			}
			return nil
		}
		return cfg
	}
	if !verify {
		cfg.InsecureSkipVerify = true
	}
	return cfg
}
