package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Metric keys.
const (
	mLatX2I50       = "lat_x2i_p50"
	mLatX2I99       = "lat_x2i_p99"
	mLatX2IAdd      = "lat_x2i_add"
	mLatI2X50       = "lat_i2x_p50"
	mLatI2X99       = "lat_i2x_p99"
	mLatI2XAdd      = "lat_i2x_add"
	mMixX2I50       = "mix_x2i_p50"
	mMixX2I99       = "mix_x2i_p99"
	mMixI2X50       = "mix_i2x_p50"
	mMixI2X99       = "mix_i2x_p99"
	mTpX2I          = "tp_x2i"
	mTpI2X          = "tp_i2x"
	mCPUX2I         = "cpu_x2i"
	mCPUI2X         = "cpu_i2x"
	mJoinWall       = "join_wall"
	mJoinCPU        = "join_cpu"
	mJoinErrs       = "join_errors"
	mRSS0           = "rss0"
	mRSS1           = "rss1"
	mRSSPerUser     = "rss_user"
	mFoX2I          = "fo_x2i"
	mFoX2ICPU       = "fo_x2i_cpu"
	mFoI2X          = "fo_i2x"
	mFoI2XSt        = "fo_i2x_stanzas"
	mFoI2XCPU       = "fo_i2x_cpu"
	mLost           = "lost"
	mRefused        = "refused"
	mArchiveDropped = "archive_dropped"
	mDropped        = "dropped"
	mKicked         = "kicked"
	mFDs            = "fds"
	mThreads        = "threads"
	mProsJoin       = "prosody_join_cpu"
	mIRCdJoin       = "ircd_join_cpu"
	mProsFoI2X      = "prosody_fo_i2x_cpu"
)

// order returns the targets rotated by round, so that no gateway always
// runs first (the machine is noisy; alternating spreads the noise).
func (b *bench) order(round int) []*target {
	n := len(b.targets)
	out := make([]*target, 0, n)
	for i := range n {
		out = append(out, b.targets[(i+round)%n])
	}
	return out
}

func (b *bench) measure() {
	b.measureLatency()
	b.measureBursts(false)
	b.massJoin()
	if b.opt.fanout {
		b.measureBursts(true)
	}
}

// probeItem is one latency series: a phase that counts its messages and
// how to send one.
type probeItem struct {
	name    string
	p       *phase
	send    func(body string) error
	samples []time.Duration
	lost    int
}

// measureLatency sends messages one at a time, each once the previous one
// arrived, and times send→arrival: IRC→IRC through ngircd and XMPP→XMPP
// (a chat message through Prosody) as baselines, and both directions
// through every gateway. Two passes:
//
//   - one direction at a time: each series runs alone for a chunk of
//     messages; the chunks alternate between the series over the rounds
//     (the "unloaded" latency);
//   - mixed: the series are interleaved message by message, so every
//     connection carries traffic both ways, as in real use. A program
//     that writes without TCP_NODELAY (Biboumi) then meets delayed ACKs
//     and Nagle's algorithm holds its next write for up to 40 ms.
func (b *bench) measureLatency() {
	const warmup = 10
	for _, mixed := range []bool{false, true} {
		items, ircBase, xmppBase, x2i, i2x := b.latencySeries()
		if mixed {
			for i := range b.opt.latency + warmup {
				for k := range items {
					it := items[(k+i)%len(items)] // rotate who goes first
					b.probeRecord(it, i, i >= warmup)
				}
			}
		} else {
			chunk := (b.opt.latency + b.opt.rounds - 1) / b.opt.rounds
			seq := 0
			for r := range b.opt.rounds {
				for k := range items {
					it := items[(k+r)%len(items)]
					for i := range chunk + warmup {
						b.probeRecord(it, seq, i >= warmup)
						seq++
					}
				}
			}
		}
		b.phase.Store(nil)
		pass := "one direction at a time"
		if mixed {
			pass = "mixed traffic"
		}
		for _, it := range items {
			sortDurations(it.samples)
			if it.lost > 0 {
				b.note(true, "latency %s (%s): %d messages did not arrive within 10 s", it.name, pass, it.lost)
			}
		}
		ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
		if !mixed {
			b.baseline["irc"], b.baseline["xmpp"] = ircBase.samples, xmppBase.samples
			base := percentile(ircBase.samples, 50) + percentile(xmppBase.samples, 50)
			for _, t := range b.targets {
				for _, dir := range []struct {
					samples         []time.Duration
					p50, p99, added string
				}{{x2i[t.key].samples, mLatX2I50, mLatX2I99, mLatX2IAdd}, {i2x[t.key].samples, mLatI2X50, mLatI2X99, mLatI2XAdd}} {
					b.rec(t, dir.p50, ms(percentile(dir.samples, 50)))
					b.rec(t, dir.p99, ms(percentile(dir.samples, 99)))
					b.rec(t, dir.added, ms(percentile(dir.samples, 50)-base))
				}
			}
		} else {
			b.baseline["irc-mixed"], b.baseline["xmpp-mixed"] = ircBase.samples, xmppBase.samples
			for _, t := range b.targets {
				b.rec(t, mMixX2I50, ms(percentile(x2i[t.key].samples, 50)))
				b.rec(t, mMixX2I99, ms(percentile(x2i[t.key].samples, 99)))
				b.rec(t, mMixI2X50, ms(percentile(i2x[t.key].samples, 50)))
				b.rec(t, mMixI2X99, ms(percentile(i2x[t.key].samples, 99)))
			}
		}
		b.logf("latency, %s: baselines IRC→IRC p50 %s p99 %s, XMPP→XMPP p50 %s p99 %s", pass,
			percentile(ircBase.samples, 50), percentile(ircBase.samples, 99), percentile(xmppBase.samples, 50), percentile(xmppBase.samples, 99))
		for _, t := range b.targets {
			a, c := x2i[t.key].samples, i2x[t.key].samples
			b.logf("latency, %s: %s: XMPP→IRC p50 %s p99 %s; IRC→XMPP p50 %s p99 %s", pass, t.title,
				percentile(a, 50), percentile(a, 99), percentile(c, 50), percentile(c, 99))
		}
	}
}

// latencySeries makes the probe series: the two baselines, then both
// directions of every gateway.
func (b *bench) latencySeries() (items []*probeItem, ircBase, xmppBase *probeItem, x2i, i2x map[string]*probeItem) {
	add := func(name string, p *phase, send func(string) error) *probeItem {
		p.arrive = make(chan arrival, 16)
		it := &probeItem{name: name, p: p, send: send}
		items = append(items, it)
		return it
	}
	p := newPhase(b.nextTag())
	p.ircChan, p.wantIRC = "#baseline", 1<<40
	ircBase = add("IRC→IRC", p, func(body string) error { return sendIRC(b.obs, "PRIVMSG #baseline :"+body) })
	p = newPhase(b.nextTag())
	p.xmppFrom, p.msgType, p.wantXMPP = "base0@"+xmppDomain+"/", "chat", 1<<40
	to := b.base1.jid
	xmppBase = add("XMPP→XMPP", p, func(body string) error {
		return b.base0.send("<message type='chat' to='" + xmlEscape(to) + "'><body>" + xmlEscape(body) + "</body></message>")
	})
	x2i = map[string]*probeItem{}
	i2x = map[string]*probeItem{}
	for _, t := range b.targets {
		room, ch := t.roomJID(0), t.channel(0)
		p := newPhase(b.nextTag())
		p.ircChan, p.wantIRC = ch, 1<<40
		x2i[t.key] = add(t.title+" XMPP→IRC", p, func(body string) error {
			return b.sender.send("<message type='groupchat' to='" + xmlEscape(room) + "'><body>" + xmlEscape(body) + "</body></message>")
		})
		p = newPhase(b.nextTag())
		p.xmppFrom, p.wantXMPP, p.onlyAt = room+"/obs", 1<<40, b.recv
		i2x[t.key] = add(t.title+" IRC→XMPP", p, func(body string) error { return sendIRC(b.obs, "PRIVMSG "+ch+" :"+body) })
	}
	return items, ircBase, xmppBase, x2i, i2x
}

// probeRecord probes one message and keeps its time when keep is set.
func (b *bench) probeRecord(it *probeItem, seq int, keep bool) {
	d, ok := b.probeOne(it, seq)
	switch {
	case !ok:
		it.lost++
	case keep:
		it.samples = append(it.samples, d)
	}
}

func sendIRC(c interface{ Send(string) }, line string) (err error) {
	// testbed's Send fails the run through tb on a write error.
	c.Send(line)
	return nil
}

// probeOne sends message seq of a series and waits (10 s at most) for it.
func (b *bench) probeOne(it *probeItem, seq int) (time.Duration, bool) {
	p := it.p
	b.phase.Store(p)
	body := padTo(p.tag+strconv.Itoa(seq)+" ", bodyLen)
	time.Sleep(time.Millisecond) // let the previous message's leftovers settle
	t0 := time.Now()
	if err := it.send(body); err != nil {
		b.note(true, "latency %s: %v", it.name, err)
		return 0, false
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case a := <-p.arrive:
			if a.seq == seq {
				return a.at.Sub(t0), true
			}
		case <-timeout:
			return 0, false
		}
	}
}

// burstResult is one burst's outcome.
type burstResult struct {
	elapsed       time.Duration
	cpu           time.Duration
	prosodyCPU    time.Duration
	gotX, gotI    int64
	wantX, wantI  int64
	complete      bool
	messagesInput int
	refused       int64
	dropped       int64
}

// burst sends n messages as fast as send goes and waits until every
// expected copy arrived (or nothing arrived for the stall time). elapsed
// runs from the first send to the last arrival; cpu is the gateway's CPU
// time over the burst until it is idle again.
func (b *bench) burst(t *target, p *phase, n int, send func(i int, body string) error) burstResult {
	res := burstResult{wantX: p.wantXMPP, wantI: p.wantIRC, messagesInput: n}
	b.waitIdle(t, 10*time.Second)
	var drop0 float64
	if t.metricsURL != "" {
		drop0, _ = b.metric(t, "switchboard_events_dropped_total")
	}
	// CPU is read after the /metrics scrape above and before the one
	// below: a scrape costs our gateway milliseconds that are not the
	// burst's (Biboumi has nothing to scrape).
	cpu0, _ := cpuTime(t.pid)
	pros0, _ := cpuTime(b.prosodyPid)
	profiled := b.startProfile(t, p.tag)
	defer func() { <-profiled }()
	b.phase.Store(p)
	t0 := time.Now()
	for i := range n {
		if err := send(i, padTo(p.tag+strconv.Itoa(i)+" ", bodyLen)); err != nil {
			b.note(true, "%s: burst %q: sending: %v", t.title, p.tag, err)
			break
		}
	}
	sent := time.Since(t0)
	lastTotal, lastChange := int64(-1), time.Now()
	lastPoll := time.Now()
loop:
	for {
		select {
		case <-p.done:
			res.complete = true
			break loop
		case <-time.After(200 * time.Millisecond):
		}
		if tot := p.total(); tot != lastTotal {
			lastTotal, lastChange = tot, time.Now()
		} else if time.Since(lastChange) > stall {
			break loop
		} else if t.metricsURL != "" && time.Since(lastPoll) > time.Second {
			// Quiet: ask our gateway whether it dropped what is missing.
			lastPoll = time.Now()
			if d, ok := b.metric(t, "switchboard_events_dropped_total"); ok {
				p.dropped.Store(int64(d - drop0))
				p.check()
			}
		}
	}
	b.phase.Store(nil)
	if last := p.last.Load(); last > 0 {
		res.elapsed = time.Unix(0, last).Sub(t0)
	}
	res.gotX, res.gotI = p.gotXMPP.Load(), p.gotIRC.Load()
	b.waitIdle(t, 10*time.Second)
	cpu1, _ := cpuTime(t.pid)
	pros1, _ := cpuTime(b.prosodyPid)
	if t.metricsURL != "" {
		if d, ok := b.metric(t, "switchboard_events_dropped_total"); ok {
			p.dropped.Store(int64(d - drop0))
		}
	}
	res.refused, res.dropped = p.refused.Load(), p.dropped.Load()
	if res.refused > 0 {
		b.rec(t, mRefused, float64(res.refused))
		b.note(true, "%s: burst %q: the gateway refused %d of %d messages with an error (first: %q)",
			t.title, strings.TrimSpace(p.tag), res.refused, n, *p.firstErr.Load())
	}
	if res.dropped > 0 {
		b.rec(t, mDropped, float64(res.dropped))
		b.note(true, "%s: burst %q: the gateway dropped %d XMPP copies (switchboard_events_dropped_total: its queue to the XMPP server was full)",
			t.title, strings.TrimSpace(p.tag), res.dropped)
	}
	res.cpu, res.prosodyCPU = cpu1-cpu0, pros1-pros0
	b.vlogf("%s burst %q: %d msgs sent in %s, arrived %d/%d XMPP %d/%d IRC in %s, gateway CPU %s, Prosody CPU %s",
		t.title, strings.TrimSpace(p.tag), n, sent.Round(time.Millisecond), res.gotX, res.wantX, res.gotI, res.wantI,
		res.elapsed.Round(time.Millisecond), res.cpu, res.prosodyCPU)
	switch {
	case !res.complete:
		b.note(true, "%s: burst %q incomplete after %s without progress: %d/%d XMPP copies, %d/%d IRC lines (%d refused, %d dropped)",
			t.title, strings.TrimSpace(p.tag), stall, res.gotX, res.wantX, res.gotI, res.wantI, res.refused, res.dropped)
		b.rec(t, mLost, float64(res.wantX+res.wantI-res.gotX-res.gotI))
	case res.refused > 0 || res.dropped > 0:
		b.rec(t, mLost, float64(res.wantX+res.wantI-res.gotX-res.gotI))
	}
	return res
}

// waitIdle waits (up to max) until the gateway and Prosody each use less
// than 3% of a CPU over 300 ms, so that one phase's leftovers are not
// billed to the next. Prosody counts too: after a flood (a mass join) the
// gateway goes idle while Prosody still reads what it sent (ours holds it
// in its link queue, Biboumi in its buffers), and memory read then would
// count those stanzas as what the users hold.
func (b *bench) waitIdle(t *target, max time.Duration) {
	deadline := time.Now().Add(max)
	pids := []int{t.pid, b.prosodyPid}
	prev := make([]time.Duration, len(pids))
	for i, pid := range pids {
		var err error
		if prev[i], err = cpuTime(pid); err != nil {
			return
		}
	}
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		idle := true
		for i, pid := range pids {
			cur, err := cpuTime(pid)
			if err != nil {
				return
			}
			if cur-prev[i] > 10*time.Millisecond { // one tick: under ~3% of 300 ms
				idle = false
			}
			prev[i] = cur
		}
		if idle {
			return
		}
	}
}

// measureBursts runs the throughput bursts, both directions, each gateway
// in turn, rounds times. With fanout, all users of room 0 are joined and
// every XMPP copy is counted.
func (b *bench) measureBursts(fanout bool) {
	n := b.opt.messages
	occupants := int64(2) // the sender and the receiver
	if fanout {
		n = b.opt.fanoutMessages
		occupants = int64(b.room0Users())
	}
	type acc struct {
		x2iCPU, i2xCPU, prosI2X time.Duration
		x2iMsgs, i2xMsgs        int
	}
	sums := map[string]*acc{}
	for _, t := range b.targets {
		sums[t.key] = &acc{}
	}
	for r := range b.opt.rounds {
		for _, t := range b.order(r) {
			if !t.running() {
				continue
			}
			if k := t.kicked.Load(); k > 0 && fanout {
				if !t.skipNoted {
					t.skipNoted = true
					b.note(true, "%s: %d users lost their IRC connection; its remaining fan-out bursts are skipped", t.title, k)
				}
				continue
			}
			a := sums[t.key]
			room := t.roomJID(0)
			// XMPP → IRC: the sender's groupchat; the IRC observer counts
			// the lines; with fanout, every occupant's copy counts too
			// (the other users' through IRC, the sender's reflection).
			p := newPhase(b.nextTag())
			p.ircChan, p.wantIRC = t.channel(0), int64(n)
			p.errFrom, p.refI = room, 1
			if fanout {
				p.xmppFrom, p.wantXMPP, p.refX = room+"/", int64(n)*occupants, occupants
			}
			res := b.burst(t, p, n, func(_ int, body string) error {
				return b.sender.send("<message type='groupchat' to='" + xmlEscape(room) + "'><body>" + xmlEscape(body) + "</body></message>")
			})
			if res.complete {
				if fanout {
					b.rec(t, mFoX2I, float64(res.gotI)/res.elapsed.Seconds())
				} else {
					b.rec(t, mTpX2I, float64(res.gotI)/res.elapsed.Seconds())
				}
			}
			if res.complete { // an incomplete burst's CPU says nothing per message
				a.x2iCPU += res.cpu
				// Per message that reached IRC: a message refused with an
				// error (a full per-user inbox) costs the gateway little.
				a.x2iMsgs += int(res.gotI)
			}

			// IRC → XMPP: the observer's PRIVMSGs; every XMPP copy counts.
			p = newPhase(b.nextTag())
			p.xmppFrom, p.wantXMPP = room+"/obs", int64(n)*occupants
			ch := t.channel(0)
			res = b.burst(t, p, n, func(_ int, body string) error {
				return sendIRC(b.obs, "PRIVMSG "+ch+" :"+body)
			})
			if res.complete {
				if fanout {
					b.rec(t, mFoI2X, float64(res.gotX)/float64(occupants)/res.elapsed.Seconds())
					b.rec(t, mFoI2XSt, float64(res.gotX)/res.elapsed.Seconds())
				} else {
					b.rec(t, mTpI2X, float64(res.gotX)/res.elapsed.Seconds())
				}
			}
			if res.complete {
				a.i2xCPU += res.cpu
				a.prosI2X += res.prosodyCPU
				a.i2xMsgs += n
			}
		}
	}
	perK := func(d time.Duration, msgs int) float64 {
		if msgs == 0 {
			return math.NaN() // no burst completed: no figure
		}
		return float64(d) / 1e6 / float64(msgs) * 1000
	}
	for _, t := range b.targets {
		a := sums[t.key]
		if fanout {
			b.rec(t, mFoX2ICPU, perK(a.x2iCPU, a.x2iMsgs))
			b.rec(t, mFoI2XCPU, perK(a.i2xCPU, a.i2xMsgs))
			b.rec(t, mProsFoI2X, perK(a.prosI2X, a.i2xMsgs))
		} else {
			b.rec(t, mCPUX2I, perK(a.x2iCPU, a.x2iMsgs))
			b.rec(t, mCPUI2X, perK(a.i2xCPU, a.i2xMsgs))
		}
	}
	what := "2 users in the room"
	if fanout {
		what = fmt.Sprintf("%d users in the room", occupants)
	}
	for _, t := range b.targets {
		m := b.res[t.key]
		if fanout {
			b.logf("%s bursts (%s): XMPP→IRC %.0f msg/s, IRC→XMPP %.0f msg/s; CPU/1000 msgs %.1f / %.1f ms", t.title, what,
				median(m[mFoX2I]), median(m[mFoI2X]), median(m[mFoX2ICPU]), median(m[mFoI2XCPU]))
		} else {
			b.logf("%s bursts (%s): XMPP→IRC %.0f msg/s, IRC→XMPP %.0f msg/s; CPU/1000 msgs %.1f / %.1f ms", t.title, what,
				median(m[mTpX2I]), median(m[mTpI2X]), median(m[mCPUX2I]), median(m[mCPUI2X]))
		}
	}
}

// massJoin logs the users in, prepares them (Biboumi's configure), then
// for each gateway sends every join and times until every self-presence
// arrived, reading the gateway's RSS before and after.
func (b *bench) massJoin() {
	o := b.opt
	t0 := time.Now()
	b.users = make([]*xmppClient, o.users)
	var failed atomic.Int64
	var firstErr atomic.Pointer[error]
	parallel(o.users, o.loginParallel, func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, err := dialXMPP(ctx, b.prosody.C2SAddr(), xmppDomain, userName(i+1), password, "load", b.onStanza)
		if err != nil {
			if failed.Add(1) == 1 {
				firstErr.Store(&err)
			}
			return
		}
		b.users[i] = c
	})
	for _, c := range b.users {
		if c != nil {
			b.tb.Cleanup(c.shutdown)
		}
	}
	if n := failed.Load(); n > 0 {
		b.tb.Fatalf("%d of %d c2s logins failed; first: %v", n, o.users, *firstErr.Load())
	}
	b.logf("%d users logged in to Prosody in %s", o.users, time.Since(t0).Round(time.Millisecond))

	for _, t := range b.targets {
		if !t.biboumi {
			continue
		}
		t1 := time.Now()
		var cfgErr atomic.Pointer[error]
		parallel(o.users, o.loginParallel, func(i int) {
			if err := b.configureBiboumi(t, b.users[i]); err != nil {
				cfgErr.CompareAndSwap(nil, &err)
			}
		})
		if e := cfgErr.Load(); e != nil {
			b.tb.Fatalf("%s: configuring users: %v", t.title, *e)
		}
		b.logf("%s: configured %d users (ad-hoc configure ×2 each) in %s", t.title, o.users, time.Since(t1).Round(time.Millisecond))
	}
	for r := range o.joinRounds {
		for _, t := range b.order(r) {
			if r > 0 && !b.leaveAll(t) {
				continue
			}
			b.joinAll(t, r == 0)
		}
	}
}

// rssSettle is how long after the join flood memory is read.
const rssSettle = 6 * time.Second

// joinAll sends every user's join to the gateway at once and times until
// every self-presence arrived. The first time it also reads the gateway's
// RSS before and after.
func (b *bench) joinAll(t *target, first bool) {
	o := b.opt
	b.waitIdle(t, 10*time.Second)
	if first {
		// The baseline is settled too: the phases before leave free
		// heap that ours hands back a few seconds later (memtrim.go),
		// which would otherwise be counted against the join.
		time.Sleep(rssSettle)
	}
	rss0, _ := rssKiB(t.pid)
	cpu0, _ := cpuTime(t.pid)
	pros0, _ := cpuTime(b.prosodyPid)
	ircd0, _ := cpuTime(b.ircdPid)
	j := b.startJoins(t, o.users)
	start := time.Now()
	for i, c := range b.users {
		if o.joinBatch > 0 && i > 0 && i%o.joinBatch == 0 && o.joinPause > 0 {
			time.Sleep(o.joinPause)
		}
		b.sendJoin(c, t, b.roomOf(i+1), t.nick+userName(i+1))
	}
	ok := b.waitJoins(j)
	wall := time.Duration(j.last.Load() - start.UnixNano())
	if !ok {
		b.note(true, "%s: %d of %d users joined (%d errors; first: %s); stalled %s after the last progress",
			t.title, j.joined.Load(), o.users, j.errors.Load(), b.joinErr(j), stall)
	}
	// Let the occupant floods (every join is announced to everyone)
	// settle before reading memory.
	b.waitIdle(t, 60*time.Second)
	// Memory is read once settled, before and after: rssSettle after the
	// gateway went idle (the same wait for every gateway). Ours returns a
	// burst's free heap a few seconds after the burst (memtrim.go);
	// reading at once would measure the peak of the join flood rather
	// than what the users hold.
	if first {
		time.Sleep(rssSettle)
	}
	rss1, _ := rssKiB(t.pid)
	cpu1, _ := cpuTime(t.pid)
	pros1, _ := cpuTime(b.prosodyPid)
	ircd1, _ := cpuTime(b.ircdPid)
	b.rec(t, mJoinWall, wall.Seconds())
	b.rec(t, mJoinCPU, (cpu1 - cpu0).Seconds())
	b.rec(t, mJoinErrs, float64(int64(o.users)-j.joined.Load()))
	b.rec(t, mProsJoin, (pros1 - pros0).Seconds())
	b.rec(t, mIRCdJoin, (ircd1 - ircd0).Seconds())
	if first {
		b.saveHeapProfile(t, "join")
		thr, _ := threads(t.pid)
		b.rec(t, mRSS0, float64(rss0)/1024)
		b.rec(t, mRSS1, float64(rss1)/1024)
		// Every user who sent a join has an IRC connection (even when the
		// gateway lost the self-presence): divide by all of them.
		b.rec(t, mRSSPerUser, float64(rss1-rss0)/float64(o.users))
		b.rec(t, mFDs, float64(openFDs(t.pid)))
		b.rec(t, mThreads, float64(thr))
	}
	b.logf("%s: %d/%d users joined in %s (gateway CPU %s, Prosody CPU %s, ngircd CPU %s); RSS %.1f → %.1f MiB (%+.1f KiB per user); %d fds",
		t.title, j.joined.Load(), o.users, wall.Round(time.Millisecond), (cpu1 - cpu0).Round(time.Millisecond),
		(pros1 - pros0).Round(time.Millisecond), (ircd1 - ircd0).Round(time.Millisecond),
		float64(rss0)/1024, float64(rss1)/1024, float64(rss1-rss0)/float64(o.users), openFDs(t.pid))
}

// leaveAll makes every user (not the sender) leave the gateway's rooms
// and waits until the gateway closed their IRC connections (its open file
// descriptors fall back), so that the next join starts from scratch.
func (b *bench) leaveAll(t *target) bool {
	fds0 := openFDs(t.pid)
	t.leaving.Store(true)
	defer t.leaving.Store(false)
	t.left.Store(0)
	for i, c := range b.users {
		nick := t.nick + userName(i+1)
		if err := c.send("<presence type='unavailable' to='" + xmlEscape(t.roomJID(b.roomOf(i+1))+"/"+nick) + "'/>"); err != nil {
			b.note(true, "%s: sending %s's leave: %v", t.title, c.user, err)
		}
	}
	deadline := time.Now().Add(2 * stall)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		if t.left.Load() >= int64(b.opt.users) && openFDs(t.pid) <= fds0-b.opt.users+5 {
			b.waitIdle(t, 30*time.Second)
			return true
		}
	}
	b.note(true, "%s: after the users left, %d of %d leaves were confirmed and it still has %d descriptors open (%d before); no more join rounds",
		t.title, t.left.Load(), b.opt.users, openFDs(t.pid), fds0)
	return false
}

// parallel runs f(0..n-1) on at most k goroutines.
func parallel(n, k int, f func(i int)) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range min(n, max(1, k)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// finish checks that nothing broke: gateways alive, c2s streams open,
// no disconnections, and collects the gateways' log warnings.
func (b *bench) finish() {
	closed := 0
	var firstClosed error
	for _, c := range append([]*xmppClient{b.sender, b.base0, b.base1}, b.users...) {
		if c == nil {
			continue
		}
		if gone, err := c.closed(); gone {
			closed++
			if firstClosed == nil {
				firstClosed = err
			}
		}
	}
	if closed > 0 {
		b.note(true, "%d c2s streams were closed by Prosody during the run (first: %v)", closed, firstClosed)
	}
	for _, t := range b.targets {
		sched, _ := schedCPUTime(t.pid)
		stat, _ := statCPUTime(t.pid)
		b.vlogf("%s: CPU over the run: %s (schedstat), %s (stat)", t.title, (sched - t.schedStart).Round(time.Millisecond), stat-t.statStart)
		if !t.running() {
			b.note(true, "%s exited during the run", t.title)
		}
		b.rec(t, mKicked, float64(t.kicked.Load()))
		if k := t.kicked.Load(); k > 0 {
			b.note(true, "%s: %d users were told they left a room (self-presence unavailable): disconnected from IRC?", t.title, k)
		}
		if !t.biboumi {
			b.rec(t, mArchiveDropped, float64(archiveDropped(t.logPath)))
		}
		if t.metricsURL != "" {
			if bad := b.badMetrics(t); bad != "" {
				b.note(true, "%s: its /metrics counted losses or errors:\n    %s", t.title, bad)
			}
		}
		if warn, lines := logProblems(t); warn > 0 {
			b.note(false, "%s logged %d warning/error lines; first ones:\n    %s", t.title, warn, strings.Join(lines, "\n    "))
		}
	}
}

// logProblems counts warning and error lines in a gateway's output and
// returns the first few.
func logProblems(t *target) (int, []string) {
	data, err := os.ReadFile(t.logPath)
	if err != nil {
		return 0, nil
	}
	n := 0
	var first []string
	for _, line := range strings.Split(string(data), "\n") {
		l := strings.ToLower(line)
		bad := false
		if t.biboumi {
			// log_level=2: every line but the first is a warning or an error.
			// "Connection closed." follows every QUIT (users leaving); real
			// disconnections show as users told they left a room.
			bad = strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "Using configuration file") &&
				!strings.HasSuffix(strings.TrimSpace(line), "Connection closed.")
		} else {
			bad = strings.Contains(l, "level=warn") || strings.Contains(l, "level=error") || strings.Contains(l, "panic")
		}
		if bad {
			n++
			if len(first) < 8 {
				if len(line) > 300 {
					line = line[:300] + "…"
				}
				first = append(first, line)
			}
		}
	}
	return n, first
}

// badMetrics returns the non-zero loss and error counters of our gateway's
// /metrics (dropped events, stanza errors), one per line.
func (b *bench) badMetrics(t *target) string {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(t.metricsURL)
	if err != nil {
		return fmt.Sprintf("GET %s: %v", t.metricsURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Sprintf("GET %s: %v", t.metricsURL, err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "#") || !(strings.Contains(line, "dropped") || strings.Contains(line, "errors_total")) {
			continue
		}
		if f := strings.Fields(line); len(f) == 2 && f[1] != "0" {
			out = append(out, line)
		}
	}
	b.vlogf("%s /metrics:\n%s", t.title, grepMetrics(string(data)))
	return strings.Join(out, "\n    ")
}

// grepMetrics keeps the switchboard_ samples of a metrics page.
func grepMetrics(page string) string {
	var out []string
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "switchboard_") {
			out = append(out, "    "+line)
		}
	}
	return strings.Join(out, "\n")
}

// metric reads one counter (summed over its label sets) from our
// gateway's /metrics.
func (b *bench) metric(t *target, name string) (float64, bool) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(t.metricsURL)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false
	}
	sum, found := 0.0, false
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest != "" && rest[0] != ' ' && rest[0] != '{' {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// archiveDropped returns the largest dropped=N of our gateway's "the IRC
// archive cannot keep up" warnings (it logs one per 1,000 drops).
func archiveDropped(logPath string) int64 {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return 0
	}
	var most int64
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, "archive cannot keep up") {
			continue
		}
		if _, v, ok := strings.Cut(line, "dropped="); ok {
			if n, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64); err == nil && n > most {
				most = n
			}
		}
	}
	return most
}

// startProfile fetches a CPU profile of t (ours with -cpuprofile) in the
// background into the -cpuprofile directory, named after the target and
// the burst; the channel closes when it is written (at once without one).
func (b *bench) startProfile(t *target, tag string) <-chan struct{} {
	done := make(chan struct{})
	if t.profileURL == "" {
		close(done)
		return done
	}
	file := fmt.Sprintf("%s-%s.pprof", t.key, strings.TrimSpace(tag))
	go func() {
		defer close(done)
		if b.saveURL(t, t.profileURL, file, time.Duration(b.opt.profileSeconds+30)*time.Second) {
			b.vlogf("%s: CPU profile of burst %q in %s", t.title, strings.TrimSpace(tag), filepath.Join(b.opt.cpuProfile, file))
		}
	}()
	return done
}

// saveHeapProfile writes a heap profile of t (ours with -cpuprofile) into
// the -cpuprofile directory.
func (b *bench) saveHeapProfile(t *target, what string) {
	if t.profileURL == "" {
		return
	}
	base, _, _ := strings.Cut(t.profileURL, "/profile?")
	for _, debug := range []string{"0", "1"} { // the profile, and the text form with runtime.MemStats
		b.saveURL(t, base+"/heap?gc=1&debug="+debug, fmt.Sprintf("%s-heap-%s.%s", t.key, what, map[string]string{"0": "pprof", "1": "txt"}[debug]), 30*time.Second)
	}
}

// saveURL writes what url answers into file in the -cpuprofile directory;
// a failure is noted, and it reports whether the file was written.
func (b *bench) saveURL(t *target, url, file string, timeout time.Duration) bool {
	c := http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		b.note(true, "%s: %s: %v", t.title, url, err)
		return false
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", resp.Status, data)
	}
	if err == nil {
		err = os.MkdirAll(b.opt.cpuProfile, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(b.opt.cpuProfile, file), data, 0o644)
	}
	if err != nil {
		b.note(true, "%s: %s: %v", t.title, url, err)
		return false
	}
	return true
}
