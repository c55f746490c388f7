package component

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"switchboard/bridge"
	"switchboard/mapping"
)

// Defaults of LinkConfig.
const (
	DefaultQueueSize    = 10000
	DefaultPingInterval = 30 * time.Second
	DefaultPingTimeout  = 20 * time.Second
)

const (
	writeBufSize     = 64 << 10
	maxBatchItems    = 1024
	handshakeTimeout = 20 * time.Second
	shutdownTimeout  = 5 * time.Second
	closeWait        = 2 * time.Second
	workers          = 4
	workQueueSize    = 256
)

// LinkConfig configures one component link.
type LinkConfig struct {
	// Domain is the component domain, e.g. "irc.example.org".
	Domain string
	// Server is host:port of the XMPP server's component port.
	Server string
	// Secret is the component secret shared with the XMPP server.
	Secret string
	// Transport is the name of the bridge transport served on Domain.
	Transport string
	// QueueSize bounds the send queue (DefaultQueueSize when 0).
	QueueSize int
	// PingInterval is how often the link pings the server
	// (DefaultPingInterval when 0); PingTimeout is how long it waits for
	// the answer before it drops the connection (DefaultPingTimeout when 0).
	PingInterval, PingTimeout time.Duration
	// PingTo is the JID the keepalive pings go to; empty means the
	// server's host, the domain without its first label
	// ("irc.example.org" → "example.org").
	PingTo string
	// Version is the gateway's version as XEP-0092 reports it ("dev"
	// when empty).
	Version string
}

// Stanza kinds, indexes of per-kind counters.
const (
	kMessage = iota
	kPresence
	kIQ
	numKinds
)

var kindNames = [numKinds]string{"message", "presence", "iq"}

// outItem is one unit of the send queue: one or more rendered stanzas that
// go out together and in order (a room join is a single item).
type outItem struct {
	b []byte
	n [numKinds]uint16 // stanzas of each kind in b
}

// Link is one XEP-0114 component connection for one transport domain. It
// implements bridge.Sink. Create it with NewLink, register it with the
// gateway, then call Run.
type Link struct {
	cfg       LinkConfig
	gw        *bridge.Gateway
	codec     mapping.Codec
	log       *slog.Logger
	domain    jid.JID
	domainStr string // normalized domain
	domainErr error
	pingTo    string

	queue chan outItem
	up    atomic.Bool
	// connDone is closed when the current connection's loops end; reply
	// waits on it so that a read loop blocked on a full queue is freed.
	connDone atomic.Pointer[chan struct{}]

	pingID   atomic.Pointer[string]
	idPrefix string
	idSeq    atomic.Uint64

	// readSeq counts stanzas read from the server; handleSince is when
	// the read loop entered the handler it is in (unix ns), 0 outside one.
	// The keepalive uses both: a server that sent stanzas since the ping
	// is alive (the answer waits behind them), and a read loop held in a
	// handler (Dispatch waiting for a busy user: backpressure) is not
	// reading the answer.
	readSeq     atomic.Uint64
	handleSince atomic.Int64

	mIn, mOut [numKinds]prometheus.Counter
	mLinkUp   prometheus.Gauge
	mDepth    prometheus.Gauge
	mDropped  prometheus.Counter
	mErrors   sync.Map // condition → prometheus.Counter

	work chan func(context.Context)
	jids atomic.Pointer[jidCache]

	mu           sync.Mutex
	presenceSent map[string]struct{} // bare JIDs the domain sent available presence to
	cmdSessions  map[string]*cmdSession
	pending      map[string]pendingQuery
	pendingAdds  int
	syncs        map[string]chan error // Sync waiting for its ping's answer, by id
	privIQs      map[string]*privWait  // privileged IQs waiting for their answer, by id (blocklist.go)

	// retry is the batch whose write failed, written first on the next
	// connection. Only the writer goroutine of the current connection
	// touches it (connections are sequential).
	retry []outItem

	// Test hooks and tunables.
	minBackoff, maxBackoff time.Duration
	dial                   func(ctx context.Context, addr string) (net.Conn, error)
	now                    func() time.Time
	repanic                bool // tests: let a handler panic through
}

// NewLink returns a Link for cfg. Nothing happens until Run. gw must get
// the transport cfg.Transport registered (AddTransport with this link as
// its sink) before Run; log may be nil.
func NewLink(cfg LinkConfig, gw *bridge.Gateway, codec mapping.Codec, log *slog.Logger) *Link {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("domain", cfg.Domain)
	l := &Link{
		cfg:          cfg,
		gw:           gw,
		codec:        codec,
		log:          log,
		queue:        make(chan outItem, cfg.QueueSize),
		work:         make(chan func(context.Context), workQueueSize),
		presenceSent: make(map[string]struct{}),
		cmdSessions:  make(map[string]*cmdSession),
		pending:      make(map[string]pendingQuery),
		minBackoff:   time.Second,
		maxBackoff:   30 * time.Second,
		now:          time.Now,
	}
	l.jids.Store(new(jidCache))
	l.domain, l.domainErr = jid.Parse(cfg.Domain)
	if l.domainErr == nil && (l.domain.Localpart() != "" || l.domain.Resourcepart() != "") {
		l.domainErr = fmt.Errorf("%q is not a bare domain", cfg.Domain)
	}
	if l.domainErr != nil {
		l.domainErr = fmt.Errorf("component domain %q: %w", cfg.Domain, l.domainErr)
	}
	l.domainStr = l.domain.Domainpart()
	l.pingTo = cfg.PingTo
	if l.pingTo == "" {
		l.pingTo = l.domainStr
		if i := strings.IndexByte(l.domainStr, '.'); i > 0 && i < len(l.domainStr)-1 {
			l.pingTo = l.domainStr[i+1:]
		}
	}
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	l.idPrefix = "sb" + hex.EncodeToString(rb[:]) + "-"
	l.dial = func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: handshakeTimeout, KeepAlive: 30 * time.Second}
		return d.DialContext(ctx, "tcp", addr)
	}

	m := gw.Metrics()
	for k := range numKinds {
		l.mIn[k] = m.Stanzas.WithLabelValues(cfg.Domain, "in", kindNames[k])
		l.mOut[k] = m.Stanzas.WithLabelValues(cfg.Domain, "out", kindNames[k])
	}
	l.mLinkUp = m.LinkUp.WithLabelValues(cfg.Domain)
	l.mLinkUp.Set(0)
	l.mDepth = m.QueueDepth.WithLabelValues(cfg.Domain)
	l.mDropped = m.Dropped.WithLabelValues(cfg.Transport)
	return l
}

// Domain is the component domain the link serves.
func (l *Link) Domain() string { return l.cfg.Domain }

// Up reports whether the link is connected and authenticated.
func (l *Link) Up() bool { return l.up.Load() }

func (l *Link) setUp(up bool) {
	l.up.Store(up)
	if up {
		l.mLinkUp.Set(1)
	} else {
		l.mLinkUp.Set(0)
	}
}

// newID returns a fresh stanza id.
func (l *Link) newID() string {
	return l.idPrefix + strconv.FormatUint(l.idSeq.Add(1), 36)
}

// Send renders an outbound event and queues it for the XMPP server. It
// never blocks: it returns bridge.ErrQueueFull when the queue is full, and
// an error when the event cannot be rendered (an address the codec cannot
// turn into a JID).
func (l *Link) Send(ev bridge.Outbound) error {
	it, err := l.renderItem(ev)
	if err != nil || len(it.b) == 0 {
		return err
	}
	return l.enqueue(it)
}

// renderItem renders an outbound event into a queue item (empty when the
// event renders to nothing).
func (l *Link) renderItem(ev bridge.Outbound) (outItem, error) {
	var o out
	o.b = make([]byte, 0, sizeHint(ev))
	if err := l.render(&o, ev); err != nil {
		return outItem{}, fmt.Errorf("component %s: %w", l.cfg.Domain, err)
	}
	return o.item(), nil
}

// SendWait is Send that, when the queue is full, waits for room instead of
// failing at once. The bridge uses it for events that have no sender to
// refuse (a line from IRC for a room of 200 users): waiting pushes back on
// the remote connection, where failing would lose the event. It waits as
// long as the link is up (the queue drains; a server that stops reading is
// caught by the keepalive, which takes the link down) and gives up after
// maxWait without the link, or when stop is closed.
func (l *Link) SendWait(ev bridge.Outbound, maxWait time.Duration, stop <-chan struct{}) error {
	it, err := l.renderItem(ev)
	if err != nil || len(it.b) == 0 {
		return err
	}
	if l.enqueue(it) == nil {
		return nil
	}
	t := time.NewTicker(maxWait)
	defer t.Stop()
	for {
		select {
		case l.queue <- it:
			l.mDepth.Set(float64(len(l.queue)))
			return nil
		case <-t.C:
			if !l.Up() {
				return bridge.ErrQueueFull
			}
		case <-stop:
			return bridge.ErrQueueFull
		}
	}
}

// enqueue puts an item on the send queue without blocking.
func (l *Link) enqueue(it outItem) error {
	select {
	case l.queue <- it:
		l.mDepth.Set(float64(len(l.queue)))
		return nil
	default:
		return bridge.ErrQueueFull
	}
}

// enqueueCtx queues it, waiting for room in the queue until ctx is done:
// for callers that wait for the server's answer anyway (Sync, a
// privileged IQ).
func (l *Link) enqueueCtx(ctx context.Context, it outItem) error {
	if l.enqueue(it) == nil {
		return nil
	}
	select {
	case l.queue <- it:
		l.mDepth.Set(float64(len(l.queue)))
		return nil
	case <-ctx.Done():
		return fmt.Errorf("component %s: waiting for room in the send queue: %w", l.cfg.Domain, ctx.Err())
	}
}

// reply queues a stanza the link itself produced (an IQ answer, an error
// such as the resource-constraint that refuses a message). While the link
// is up a full queue makes it wait: the queue drains as fast as the server
// reads, and the read loop waiting here pushes back on the server over TCP
// instead of losing the answer (a refused message whose error is lost
// vanishes for its sender). It gives up only when the connection ends;
// with the link down, a full queue drops the answer with a log line.
func (l *Link) reply(o *out) {
	if len(o.b) == 0 {
		return
	}
	it := o.item()
	if l.enqueue(it) == nil {
		return
	}
	if done := l.connDone.Load(); done != nil && l.Up() {
		select {
		case l.queue <- it:
			l.mDepth.Set(float64(len(l.queue)))
			return
		case <-*done:
		}
	}
	l.mDropped.Inc()
	l.log.Warn("an answer to the XMPP server was dropped: the send queue is full and the link is down")
}

// countError counts an error stanza sent, by condition.
func (l *Link) countError(cond string) {
	c, ok := l.mErrors.Load(cond)
	if !ok {
		c, _ = l.mErrors.LoadOrStore(cond, l.gw.Metrics().StanzaErrors.WithLabelValues(l.cfg.Domain, cond))
	}
	c.(prometheus.Counter).Inc()
}

// ---------------------------------------------------------------- workers

// startWorkers starts the pool that runs slow requests (registration,
// ad-hoc commands: they touch the store or stop sessions) off the read
// loop. The returned function stops it and waits.
func (l *Link) startWorkers(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case fn := <-l.work:
					fn(ctx)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// spawn hands fn to the worker pool; it reports false when the pool is
// saturated.
func (l *Link) spawn(fn func(context.Context)) bool {
	select {
	case l.work <- fn:
		return true
	default:
		return false
	}
}

// ---------------------------------------------------------------- run

// Run connects to the XMPP server and keeps the link up, reconnecting with
// exponential backoff (1 s doubling to 30 s, with jitter; it starts over
// after every successful handshake), until ctx is
// done. It then sends unavailable presence to the users the domain sent
// presence to, closes the stream and returns nil. It returns an error only
// for a configuration it can never connect with.
func (l *Link) Run(ctx context.Context) error {
	if l.domainErr != nil {
		return l.domainErr
	}
	if l.gw.Transport(l.cfg.Transport) == nil {
		return fmt.Errorf("component %s: transport %q is not registered with the gateway", l.cfg.Domain, l.cfg.Transport)
	}
	stop := l.startWorkers(ctx)
	defer stop()
	backoff := l.minBackoff
	for {
		lasted, err := l.runOnce(ctx)
		if ctx.Err() != nil {
			l.log.Info("component link closed")
			if n := len(l.queue); n > 0 {
				l.log.Warn("stanzas still queued at shutdown were not sent", "count", n)
			}
			return nil
		}
		if lasted > 0 {
			// The handshake succeeded: this is a new outage, and its
			// first try comes as soon as the first try of any outage.
			backoff = l.minBackoff
		}
		wait := time.Duration(float64(backoff) * (0.8 + 0.4*mrand.Float64()))
		l.log.Warn("component link down; reconnecting", "server", l.cfg.Server, "err", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			l.log.Info("component link closed")
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, l.maxBackoff)
	}
}

// errPingTimeout is returned by the writer when the server did not answer
// a keepalive ping in time.
var errPingTimeout = errors.New("the XMPP server did not answer the keepalive ping")

// runOnce does one connection: dial, handshake, serve until the
// connection fails or ctx is done. It returns how long the link was up.
func (l *Link) runOnce(ctx context.Context) (time.Duration, error) {
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn, err := l.dial(connCtx, l.cfg.Server)
	if err != nil {
		return 0, fmt.Errorf("connecting to the XMPP server's component port %s: %w", l.cfg.Server, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	// connCtx lives as long as the connection: mellium ties the
	// connection's deadlines to it during the handshake.
	sess, err := component.NewSession(connCtx, l.domain, []byte(l.cfg.Secret), conn)
	if err != nil {
		return 0, handshakeError(l.cfg.Domain, err)
	}
	_ = conn.SetDeadline(time.Time{})
	// Everything below reads and writes the session's connection directly.
	conn = sess.Conn()
	upAt := time.Now()
	connDone := make(chan struct{})
	var endConn sync.Once
	connEnded := func() {
		endConn.Do(func() {
			close(connDone)
			l.failSyncs(errSyncLinkDown)
			l.failPrivIQs(errPrivLinkDown)
		})
	}
	defer connEnded()
	l.connDone.Store(&connDone)
	l.setUp(true)
	defer l.setUp(false)
	l.log.Info("component link up", "server", l.cfg.Server)
	l.notifyLinkUp()

	initial := l.linkUpPresence(ctx)

	r := sess.TokenReader()
	readDone := make(chan error, 1)
	go func() {
		defer r.Close()
		readDone <- l.readLoop(r)
	}()
	abort := make(chan struct{})
	shutdown := make(chan struct{})
	writeDone := make(chan error, 1)
	go func() {
		writeDone <- l.writeLoop(conn, initial, abort, shutdown)
	}()

	select {
	case err = <-readDone:
		close(abort)
		connEnded()
		_ = conn.Close()
		<-writeDone
	case err = <-writeDone:
		connEnded()
		_ = conn.Close()
		<-readDone
	case <-ctx.Done():
		close(shutdown)
		// The writer bounds its shutdown writes by shutdownTimeout; a write
		// already under way has the longer keepalive deadline: cut it.
		t := time.NewTimer(shutdownTimeout + time.Second)
		select {
		case err = <-writeDone:
		case <-t.C:
			_ = conn.Close()
			err = <-writeDone
		}
		t.Stop()
		connEnded() // the writer is gone: nothing drains the queue now
		if err != nil {
			l.log.Warn("closing the component stream failed", "err", err)
		}
		t = time.NewTimer(closeWait)
		select {
		case <-readDone: // the server closed its side
		case <-t.C:
			_ = conn.Close()
			<-readDone
		}
		t.Stop()
		err = nil
	}
	return time.Since(upAt), err
}

// handshakeError turns a failed XEP-0114 handshake into one clear sentence.
func handshakeError(domain string, err error) error {
	var se stream.Error
	if errors.As(err, &se) {
		switch se.Err {
		case "not-authorized":
			return fmt.Errorf("the XMPP server refused the component handshake for %s (not-authorized): the component secret does not match the server's config", domain)
		case "host-unknown", "improper-addressing":
			return fmt.Errorf("the XMPP server does not know the component %s (%s): add a component block for it to the server's config", domain, se.Err)
		case "conflict":
			return fmt.Errorf("the XMPP server refused %s (conflict): another component is connected with this domain", domain)
		}
		return fmt.Errorf("the XMPP server refused the component handshake for %s: stream error %s", domain, se.Err)
	}
	return fmt.Errorf("component handshake for %s: %w", domain, err)
}

// readLoop reads and handles stanzas until the stream or connection ends.
func (l *Link) readLoop(r xml.TokenReader) error {
	var t tree
	for {
		if err := readStanza(r, &t); err != nil {
			var se stream.Error
			switch {
			case errors.Is(err, io.EOF):
				return errors.New("the XMPP server closed the stream")
			case connectionClosed(err):
				return errors.New("the XMPP server closed the connection")
			case errors.As(err, &se):
				return fmt.Errorf("the XMPP server sent stream error %s", se.Err)
			}
			return fmt.Errorf("reading from the XMPP server: %w", err)
		}
		l.readSeq.Add(1)
		l.handleSince.Store(time.Now().UnixNano())
		l.handle(&t)
		l.handleSince.Store(0)
	}
}

// pingOverdue reports whether a ping unanswered for PingTimeout means a
// dead connection: nothing was read since seqAtPing, and the read loop is
// not held in a handler (or has been for longer than PingTimeout, which
// no wait of ours lasts).
func (l *Link) pingOverdue(seqAtPing uint64) bool {
	if l.readSeq.Load() != seqAtPing {
		return false
	}
	since := l.handleSince.Load()
	return since == 0 || time.Since(time.Unix(0, since)) >= l.cfg.PingTimeout
}

// writeLoop owns every write to conn. It writes the retry batch and
// initial, then drains the queue in batches (one flush per batch) and
// pings the server. It returns on abort (without writing more), on
// shutdown (after draining the queue, unavailable presence and
// </stream:stream>), on a write error or a ping timeout.
func (l *Link) writeLoop(conn net.Conn, initial outItem, abort, shutdown <-chan struct{}) error {
	bw := bufio.NewWriterSize(conn, writeBufSize)
	writeTimeout := l.cfg.PingInterval + l.cfg.PingTimeout
	batch := make([]outItem, 0, maxBatchItems)
	var werr error

	write := func(it outItem) {
		batch = append(batch, it)
		if werr == nil {
			_, werr = bw.Write(it.b)
		}
	}
	flush := func(deadline bool) error {
		if werr == nil {
			if deadline {
				_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			}
			werr = bw.Flush()
		}
		if werr != nil {
			// Keep the batch for the next connection (only items, not
			// the pings and presences the link writes itself).
			l.retry = append(l.retry[:0], batch...)
			return fmt.Errorf("writing to the XMPP server: %w", werr)
		}
		var n [numKinds]int
		for _, it := range batch {
			for k := range numKinds {
				n[k] += int(it.n[k])
			}
		}
		for k := range numKinds {
			if n[k] > 0 {
				l.mOut[k].Add(float64(n[k]))
			}
		}
		batch = batch[:0]
		l.mDepth.Set(float64(len(l.queue)))
		return nil
	}
	drain := func() {
		for len(batch) < maxBatchItems && bw.Buffered() < writeBufSize/2 {
			select {
			case it := <-l.queue:
				write(it)
			default:
				return
			}
		}
	}

	l.pingID.Store(nil)
	retry := l.retry
	l.retry = nil
	for _, it := range retry {
		write(it)
	}
	if len(initial.b) > 0 {
		write(initial)
	}
	if err := flush(true); err != nil {
		return err
	}

	ticker := time.NewTicker(l.cfg.PingInterval)
	defer ticker.Stop()
	pingTimer := time.NewTimer(time.Hour)
	pingTimer.Stop()
	defer pingTimer.Stop()
	var pingID string
	var seqAtPing uint64

	for {
		select {
		case <-abort:
			return nil
		case <-shutdown:
			return l.closeStream(conn, bw, write, flush, drain)
		case it := <-l.queue:
			write(it)
			drain()
			if err := flush(true); err != nil {
				return err
			}
		case <-ticker.C:
			if l.pingID.Load() != nil {
				continue // one ping at a time; its timer is running
			}
			pingID = l.newID()
			l.pingID.Store(&pingID)
			write(l.pingItem(pingID))
			if err := flush(true); err != nil {
				return err
			}
			seqAtPing = l.readSeq.Load()
			pingTimer.Reset(l.cfg.PingTimeout)
		case <-pingTimer.C:
			if p := l.pingID.Load(); p != nil && *p == pingID {
				if !l.pingOverdue(seqAtPing) {
					// Alive: stanzas came since the ping, or our read
					// loop holds its reading back. Give the answer,
					// which waits behind them, another PingTimeout.
					seqAtPing = l.readSeq.Load()
					pingTimer.Reset(l.cfg.PingTimeout)
					continue
				}
				return fmt.Errorf("%w within %s", errPingTimeout, l.cfg.PingTimeout)
			}
		}
	}
}

// closeStream is the writer's shutdown: what is queued now, unavailable
// presence to the users the domain sent presence to, </stream:stream>.
func (l *Link) closeStream(conn net.Conn, bw *bufio.Writer, write func(outItem), flush func(bool) error, drain func()) error {
	_ = conn.SetWriteDeadline(time.Now().Add(shutdownTimeout))
	for range l.cfg.QueueSize/maxBatchItems + 1 {
		if len(l.queue) == 0 {
			break
		}
		drain()
		if err := flush(false); err != nil {
			return err
		}
	}
	var o out
	l.mu.Lock()
	for bare := range l.presenceSent {
		o.presence(l.domainStr, bare, "unavailable", "", "")
	}
	clear(l.presenceSent)
	l.mu.Unlock()
	write(o.item())
	_, _ = bw.WriteString("</stream:stream>")
	return flush(false)
}

// linkUpPresence renders available presence from the domain to every
// registered user the access policy allows (XEP-0100 §6.1: the gateway is
// online), and records them.
func (l *Link) linkUpPresence(ctx context.Context) outItem {
	users, err := l.gw.RegisteredUsers(ctx, l.cfg.Transport)
	if err != nil {
		l.log.Error("cannot send the gateway's presence to registered users", "err", err)
		return outItem{}
	}
	var o out
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, u := range users {
		j, err := jid.Parse(u)
		if err != nil || !l.gw.Allowed(j) {
			continue
		}
		bare := j.Bare().String()
		o.presence(l.domainStr, bare, "", "", "")
		l.presenceSent[bare] = struct{}{}
	}
	return o.item()
}
