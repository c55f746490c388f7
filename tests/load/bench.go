package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ergochat/irc-go/ircmsg"

	"switchboard/tests/testbed"
)

const (
	ourDomain    = "irc.localhost"
	ourDomain2   = "irc2.localhost" // -history both: the history-off instance
	bibDomain    = "biboumi.localhost"
	bibHDomain   = "biboumih.localhost"
	xmppDomain   = "localhost"
	password     = "load-pw"
	adminUser    = "admin"
	ircNetwork   = "local"     // our network alias in room JIDs
	bibIRCServer = "127.0.0.1" // Biboumi's IRC server part of room JIDs
	bodyLen      = 64          // bytes per message body
	// stall is how long a burst or a join may go without progress before
	// it is given up (and what arrived is reported).
	stall = 30 * time.Second
)

// target is one gateway under test: a column of the results.
type target struct {
	key, title string
	domain     string
	server     string // the IRC server part of room JIDs
	chanBase   string
	nick       string // nick prefix on IRC (each gateway has its own IRC connections)
	biboumi    bool
	history    bool
	pid        int
	logPath    string
	running    func() bool

	schedStart, statStart time.Duration
	metricsURL            string // ours: Prometheus metrics
	profileURL            string // ours with -cpuprofile: a CPU profile
	skipNoted             bool
	sampled               atomic.Bool // -v: one delivered groupchat message logged

	leaving atomic.Bool  // users are leaving on purpose (join rounds)
	left    atomic.Int64 // self-presences type=unavailable while leaving
	kicked  atomic.Int64 // self-presences type=unavailable received (disconnections)
}

func (t *target) channel(room int) string { return fmt.Sprintf("%s-%d", t.chanBase, room) }

func (t *target) roomJID(room int) string { return t.channel(room) + "%" + t.server + "@" + t.domain }

// phase is one measurement in flight: which messages count and how many
// are expected.
type phase struct {
	tag      string      // body prefix, unique per phase
	xmppFrom string      // from prefix of counted XMPP messages ("" counts none)
	msgType  string      // XMPP message type counted (default groupchat)
	ircChan  string      // channel whose PRIVMSGs count on IRC ("" counts none)
	onlyAt   *xmppClient // count XMPP messages received by this client only

	wantXMPP, wantIRC int64
	gotXMPP, gotIRC   atomic.Int64
	last              atomic.Int64 // UnixNano of the latest counted arrival
	done              chan struct{}
	once              sync.Once
	arrive            chan arrival // latency probes: every counted arrival

	// Messages the gateway refused with an error to the sender (errFrom
	// is the room JID they come from); each stands for refX XMPP copies
	// and refI IRC lines that will not come.
	errFrom    string
	refX, refI int64
	refused    atomic.Int64
	firstErr   atomic.Pointer[string]
	// dropped is what the gateway's own metrics say it dropped during the
	// phase (XMPP copies that will not come).
	dropped atomic.Int64
}

// refuse counts an error answer to one of the phase's messages.
func (p *phase) refuse(raw []byte) {
	if p.refused.Add(1) == 1 {
		e := errorText(raw)
		p.firstErr.Store(&e)
	}
	p.check()
}

// check closes done once every expected copy arrived or is known lost.
func (p *phase) check() {
	ref, drop := p.refused.Load(), p.dropped.Load()
	if p.gotXMPP.Load()+ref*p.refX+drop >= p.wantXMPP && p.gotIRC.Load()+ref*p.refI >= p.wantIRC {
		p.once.Do(func() { close(p.done) })
	}
}

// errorText returns the <text/> of an error stanza, or the stanza.
func errorText(raw []byte) string {
	s := string(raw)
	if i := strings.Index(s, "<text"); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j >= 0 {
			rest := s[i+j+1:]
			if k := strings.Index(rest, "</text>"); k >= 0 {
				return xmlUnescape(rest[:k])
			}
		}
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

type arrival struct {
	seq int
	at  time.Time
}

func newPhase(tag string) *phase {
	return &phase{tag: tag, msgType: "groupchat", done: make(chan struct{})}
}

func (p *phase) hit(body string, irc bool) {
	rest, ok := strings.CutPrefix(body, p.tag)
	if !ok {
		return
	}
	now := time.Now()
	p.last.Store(now.UnixNano())
	if p.arrive != nil {
		if i := strings.IndexByte(rest, ' '); i > 0 {
			if seq, err := strconv.Atoi(rest[:i]); err == nil {
				select {
				case p.arrive <- arrival{seq, now}:
				default:
				}
			}
		}
	}
	if irc {
		p.gotIRC.Add(1)
	} else {
		p.gotXMPP.Add(1)
	}
	p.check()
}

func (p *phase) total() int64 { return p.gotXMPP.Load() + p.gotIRC.Load() }

// joinTrack counts self-presences (status 110) from one gateway's rooms.
type joinTrack struct {
	domain   string
	want     int64
	joined   atomic.Int64
	errors   atomic.Int64
	last     atomic.Int64
	firstErr atomic.Pointer[string]
	done     chan struct{}
	once     sync.Once
}

type bench struct {
	tb      *testbed.Standalone
	opt     options
	bin     string
	prosody *testbed.Prosody
	ircd    *testbed.Ngircd
	targets []*target
	byDom   map[string]*target

	prosodyPid, ircdPid int
	sender, recv        *xmppClient
	base0, base1        *xmppClient
	users               []*xmppClient
	obs, rcv, peer      *testbed.IRCClient

	phase       atomic.Pointer[phase]
	strayErrors atomic.Int64
	joins       atomic.Pointer[joinTrack]
	phaseNo     int

	res      map[string]map[string][]float64 // target key → metric → samples
	baseline map[string][]time.Duration
	notes    []string
	failed   bool
	started  time.Time
}

func newBench(tb *testbed.Standalone, o options, bin string) *bench {
	return &bench{tb: tb, opt: o, bin: bin, byDom: map[string]*target{},
		res: map[string]map[string][]float64{}, baseline: map[string][]time.Duration{}}
}

func (b *bench) logf(format string, args ...any) { b.tb.Logf(format, args...) }

func (b *bench) vlogf(format string, args ...any) {
	if b.opt.verbose {
		b.tb.Logf(format, args...)
	}
}

// note records a problem for the report (and marks the run failed when bad).
func (b *bench) note(bad bool, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.logf("%s", msg)
	b.notes = append(b.notes, msg)
	if bad {
		b.failed = true
	}
}

func (b *bench) rec(t *target, metric string, v float64) {
	m := b.res[t.key]
	if m == nil {
		m = map[string][]float64{}
		b.res[t.key] = m
	}
	m[metric] = append(m[metric], v)
}

// roomOf is the room index of user i (1-based).
func (b *bench) roomOf(i int) int {
	if b.opt.perRoom == 0 {
		return 0
	}
	return (i - 1) / b.opt.perRoom
}

// room0Users is how many XMPP users are in room 0 once everyone joined,
// the sender and the receiver included.
func (b *bench) room0Users() int {
	if b.opt.perRoom == 0 || b.opt.perRoom > b.opt.users {
		return b.opt.users + 2
	}
	return b.opt.perRoom + 2
}

func (b *bench) setup() {
	b.started = time.Now()
	o := b.opt
	secret := strings.ToLower(rand.Text()[:16])
	comps := map[string]string{}
	if o.only != "biboumi" {
		comps[ourDomain] = secret
		if o.history == "both" || o.bin2 != "" {
			comps[ourDomain2] = secret
		}
	}
	secrets := comps
	if o.only != "ours" {
		comps[bibDomain] = secret
		comps[bibHDomain] = secret
	}
	// internal_plain: logins cost Prosody no PBKDF2, and accounts are
	// plain files the tool writes (prosodyctl takes ~0.3 s per user). The
	// later assignment wins (Prosody warns about the duplicate).
	b.prosody = testbed.StartProsody(b.tb, testbed.ProsodyOptions{
		Components:  comps,
		LogLevel:    "warn",
		ExtraGlobal: `authentication = "internal_plain"` + "\nc2s_timeout = 600\n",
	})
	b.prosodyPid, _ = findPid("--config", b.prosody.ConfigPath)
	names := []string{"sender", "recv", "base0", "base1", adminUser}
	for i := 1; i <= o.users; i++ {
		names = append(names, userName(i))
	}
	t0 := time.Now()
	if err := writeAccounts(b.prosody.Dir, xmppDomain, names, password); err != nil {
		b.tb.Fatalf("writing Prosody accounts: %v", err)
	}
	b.logf("wrote %d Prosody accounts in %s", len(names), time.Since(t0).Round(time.Millisecond))

	b.ircd = testbed.StartNgircd(b.tb, testbed.NgircdOptions{NoFloodLimit: true})
	b.ircdPid, _ = findPid("-f", b.ircd.ConfigPath)

	if o.only != "biboumi" {
		var hist []bool
		switch o.history {
		case "on":
			hist = []bool{true}
		case "off":
			hist = []bool{false}
		default:
			hist = []bool{true, false}
		}
		if o.bin2 != "" {
			hist = append(hist, hist[0])
		}
		for i, h := range hist {
			t := &target{key: "ours", title: "Switchboard", domain: ourDomain, server: ircNetwork, chanBase: "#bench-ours", nick: "o", history: h}
			if i > 0 {
				// The second column (-history both): another instance on
				// its own domain, channels and nicks.
				t.key, t.domain, t.chanBase, t.nick = "ours-2", ourDomain2, "#bench-ours2", "n"
			}
			if h {
				t.title += " (history on)"
			} else {
				t.title += " (history off)"
			}
			bin := b.bin
			if i > 0 && o.bin2 != "" {
				bin = o.bin2
				t.title += " (-bin2)"
			}
			b.startOurs(t, bin, secrets[t.domain])
			b.targets = append(b.targets, t)
		}
	}
	if o.only != "ours" {
		port := strings.TrimPrefix(b.prosody.ComponentAddr(), "127.0.0.1:")
		for _, h := range []bool{false, true} {
			t := &target{key: "biboumi", title: "Biboumi (history off)", domain: bibDomain, server: bibIRCServer, chanBase: "#bench-bib", nick: "b", biboumi: true}
			if h {
				t.key, t.title, t.domain, t.chanBase, t.nick, t.history = "biboumi-h", "Biboumi (history on)", bibHDomain, "#bench-bibh", "h", true
			}
			bb := startBiboumi(b.tb, workDir(b.tb, t.key, b.opt.keep), t.domain, secret, port, adminUser+"@"+xmppDomain)
			t.pid, t.logPath, t.running = bb.pid(), bb.logPath, bb.running
			b.targets = append(b.targets, t)
		}
	}
	for _, t := range b.targets {
		b.byDom[t.domain] = t
		t.schedStart, _ = schedCPUTime(t.pid)
		t.statStart, _ = statCPUTime(t.pid)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	if b.sender, err = dialXMPP(ctx, b.prosody.C2SAddr(), xmppDomain, "sender", password, "load", b.onStanza); err != nil {
		b.tb.Fatalf("%v", err)
	}
	if b.base0, err = dialXMPP(ctx, b.prosody.C2SAddr(), xmppDomain, "base0", password, "load", b.onStanza); err != nil {
		b.tb.Fatalf("%v", err)
	}
	if b.base1, err = dialXMPP(ctx, b.prosody.C2SAddr(), xmppDomain, "base1", password, "load", b.onStanza); err != nil {
		b.tb.Fatalf("%v", err)
	}
	if b.recv, err = dialXMPP(ctx, b.prosody.C2SAddr(), xmppDomain, "recv", password, "load", b.onStanza); err != nil {
		b.tb.Fatalf("%v", err)
	}
	b.tb.Cleanup(b.recv.shutdown)
	b.tb.Cleanup(b.sender.shutdown)
	b.tb.Cleanup(b.base0.shutdown)
	b.tb.Cleanup(b.base1.shutdown)
	for _, t := range b.targets {
		b.waitComponent(t)
	}

	// IRC: obs only sends and rcv (peer in #baseline) only receives, and
	// on XMPP the sender only sends and recv receives: a connection that
	// both sends and receives small messages gets delayed ACKs, and a
	// server without TCP_NODELAY then holds its next write for up to
	// 40 ms (Nagle), which would swamp what is measured here.
	b.obs = testbed.DialIRCOpts(b.tb, b.ircd.Addr(), testbed.IRCOptions{Nick: "obs", OnMessage: b.onIRCNoise})
	b.rcv = testbed.DialIRCOpts(b.tb, b.ircd.Addr(), testbed.IRCOptions{Nick: "rcv", OnMessage: b.onIRC})
	b.peer = testbed.DialIRCOpts(b.tb, b.ircd.Addr(), testbed.IRCOptions{Nick: "peer", OnMessage: b.onIRC})
	b.obs.Join("#baseline")
	b.peer.Join("#baseline")
	for _, t := range b.targets {
		b.obs.Join(t.channel(0))
		b.rcv.Join(t.channel(0))
	}
	// The sender and the receiver join room 0 of every gateway.
	for _, t := range b.targets {
		for _, c := range []*xmppClient{b.sender, b.recv} {
			if t.biboumi {
				if err := b.configureBiboumi(t, c); err != nil {
					b.tb.Fatalf("configuring Biboumi for %s: %v", c.user, err)
				}
			}
			j := b.startJoins(t, 1)
			b.sendJoin(c, t, 0, t.nick+c.user)
			if !b.waitJoins(j) {
				b.tb.Fatalf("%s: %s could not join %s: %s", t.title, c.user, t.roomJID(0), b.joinErr(j))
			}
		}
	}
	b.logf("setup done in %s: %d gateways, ngircd on %s, Prosody c2s on %s", time.Since(b.started).Round(time.Millisecond),
		len(b.targets), b.ircd.Addr(), b.prosody.C2SAddr())
}

func userName(i int) string { return "u" + strconv.Itoa(i) }

// writeAccounts writes Prosody internal-storage account files (what
// prosodyctl register writes with authentication = internal_plain).
func writeAccounts(prosodyDir, host string, users []string, pw string) error {
	dir := filepath.Join(prosodyDir, "data", host, "accounts") // host and users are [a-z0-9] only: no %-encoding
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	content := []byte("return {\n\t[\"password\"] = " + strconv.Quote(pw) + ";\n};\n")
	for _, u := range users {
		if err := os.WriteFile(filepath.Join(dir, u+".dat"), content, 0o640); err != nil {
			return err
		}
	}
	return nil
}

// waitComponent waits until the gateway's component answers disco#info.
func (b *bench) waitComponent(t *target) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := b.sender.iq("<iq type='get' id='ID' to='"+t.domain+"'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", 5*time.Second)
		if err == nil && r.typ == "result" {
			return
		}
		if time.Now().After(deadline) || !t.running() {
			b.tb.Fatalf("%s does not answer on %s (running: %v): %v %s", t.title, t.domain, t.running(), err, rawOf(r))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func rawOf(s *rawStanza) string {
	if s == nil {
		return ""
	}
	return string(s.raw)
}

// configureBiboumi sets the user's IRC port (plain, no TLS), turns the
// throttle off, and sets record_history as the column wants.
func (b *bench) configureBiboumi(t *target, c *xmppClient) error {
	if err := adhocConfigure(c, bibIRCServer+"@"+t.domain, map[string][]string{
		"ports":          {strconv.Itoa(b.ircd.Port())},
		"tls_ports":      {},
		"throttle_limit": {"-1"},
	}); err != nil {
		return err
	}
	return adhocConfigure(c, t.domain, map[string][]string{"record_history": {strconv.FormatBool(t.history)}})
}

// onStanza runs on every c2s client's reading goroutine.
func (b *bench) onStanza(c *xmppClient, s *rawStanza) {
	switch s.name {
	case "message":
		p := b.phase.Load()
		if s.typ == "error" {
			if p != nil && p.errFrom != "" && strings.HasPrefix(s.from, p.errFrom) {
				p.refuse(s.raw)
			} else if b.strayErrors.Add(1) <= 5 {
				b.logf("%s got an error message outside a burst: %.400s", c.user, s.raw)
			}
			return
		}
		if b.opt.verbose && s.typ == "groupchat" && strings.Contains(string(s.raw), "<body") {
			if t := b.byDom[domainOf(s.from)]; t != nil && t.sampled.CompareAndSwap(false, true) {
				b.logf("%s: a groupchat message as delivered (%d bytes): %s", t.title, len(s.raw), s.raw)
			}
		}
		if p == nil || p.xmppFrom == "" || s.typ != p.msgType || !strings.HasPrefix(s.from, p.xmppFrom) ||
			(p.onlyAt != nil && p.onlyAt != c) {
			return
		}
		if body, ok := s.body(); ok {
			p.hit(body, false)
		}
	case "presence":
		if s.typ != "" && s.typ != "unavailable" && s.typ != "error" {
			return
		}
		dom := domainOf(s.from)
		t := b.byDom[dom]
		if t == nil {
			return
		}
		j := b.joins.Load()
		switch {
		case s.typ == "error":
			if j != nil && j.domain == dom {
				if j.errors.Add(1) == 1 {
					e := string(s.raw)
					j.firstErr.Store(&e)
				}
				j.maybeDone()
			} else {
				b.logf("%s: presence error outside a join: %.300s", t.title, s.raw)
			}
		case !s.hasStatus("110"):
		case s.typ == "unavailable" && t.leaving.Load():
			t.left.Add(1)
		case s.typ == "unavailable":
			if t.kicked.Add(1) <= 5 {
				b.logf("%s: %s left %s: %.400s", t.title, c.user, s.from, s.raw)
			}
		case j != nil && j.domain == dom:
			j.last.Store(time.Now().UnixNano())
			j.joined.Add(1)
			j.maybeDone()
		}
	}
}

func (j *joinTrack) maybeDone() {
	if j.joined.Load()+j.errors.Load() >= j.want {
		j.once.Do(func() { close(j.done) })
	}
}

// domainOf returns the domain part of a JID.
func domainOf(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		j = j[:i]
	}
	if i := strings.LastIndexByte(j, '@'); i >= 0 {
		j = j[i+1:]
	}
	return j
}

// onIRCNoise consumes what the sending IRC client receives.
func (b *bench) onIRCNoise(m *ircmsg.Message) bool {
	switch m.Command {
	case "PRIVMSG", "JOIN", "PART", "QUIT", "MODE", "NOTICE", "NICK", "KICK", "TOPIC":
		return true
	}
	return false
}

// onIRC runs on the IRC clients' reading goroutines: it counts PRIVMSGs
// and consumes the channel noise of mass joins.
func (b *bench) onIRC(m *ircmsg.Message) bool {
	switch m.Command {
	case "PRIVMSG":
		if p := b.phase.Load(); p != nil && p.ircChan != "" && len(m.Params) == 2 && strings.EqualFold(m.Params[0], p.ircChan) {
			p.hit(m.Params[1], true)
		}
		return true
	case "JOIN", "PART", "QUIT", "MODE", "NOTICE", "NICK", "KICK", "TOPIC":
		return true
	}
	return false
}

func (b *bench) startJoins(t *target, n int) *joinTrack {
	j := &joinTrack{domain: t.domain, want: int64(n), done: make(chan struct{})}
	b.joins.Store(j)
	return j
}

func (b *bench) sendJoin(c *xmppClient, t *target, room int, nick string) {
	if err := c.send("<presence to='" + xmlEscape(t.roomJID(room)+"/"+nick) + "'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"); err != nil {
		b.note(true, "%s: sending %s's join: %v", t.title, c.user, err)
	}
}

// waitJoins waits until every expected self-presence (or error) arrived,
// or nothing happened for the stall time. It reports whether all joined.
func (b *bench) waitJoins(j *joinTrack) bool {
	defer b.joins.Store(nil)
	lastCount, lastChange := int64(-1), time.Now()
	for {
		select {
		case <-j.done:
			return j.errors.Load() == 0
		case <-time.After(500 * time.Millisecond):
		}
		n := j.joined.Load() + j.errors.Load()
		if n != lastCount {
			lastCount, lastChange = n, time.Now()
			b.vlogf("%s: %d/%d joined, %d errors", j.domain, j.joined.Load(), j.want, j.errors.Load())
		} else if time.Since(lastChange) > stall {
			return false
		}
	}
}

func (b *bench) joinErr(j *joinTrack) string {
	if e := j.firstErr.Load(); e != nil {
		return *e
	}
	return fmt.Sprintf("%d of %d self-presences arrived", j.joined.Load(), j.want)
}

// nextTag returns a body prefix unique to a phase.
func (b *bench) nextTag() string {
	b.phaseNo++
	return fmt.Sprintf("p%d ", b.phaseNo)
}

// workDir makes a directory for a gateway's config, data and log, removed
// when the run ends unless keep is set.
func workDir(tb *testbed.Standalone, name string, keep bool) string {
	dir, err := os.MkdirTemp("", "switchboard-load-"+name+"-")
	if err != nil {
		tb.Fatalf("making a directory for %s: %v", name, err)
	}
	if !keep {
		tb.Cleanup(func() { os.RemoveAll(dir) })
	}
	return dir
}

// startOurs writes a config for our gateway (rate limit off, log level
// warn, history as t says) and starts it.
func (b *bench) startOurs(t *target, bin, secret string) {
	irc := map[string]any{"rate": 0}
	extra := map[string]any{"irc": irc}
	if b.opt.cpuProfile != "" {
		extra["http"] = map[string]any{"pprof": true}
	}
	if !t.history {
		irc["history_days"] = 0
	}
	cfg := testbed.WriteGatewayConfig(workDir(b.tb, t.key, b.opt.keep), testbed.GatewayConfig{
		LogLevel:   "warn",
		XMPPServer: b.prosody.ComponentAddr(),
		Allow:      []string{xmppDomain},
		Admins:     []string{adminUser + "@" + xmppDomain},
		IRC: &testbed.GatewayIRC{Domain: t.domain, Secret: secret,
			Networks: []testbed.GatewayIRCNetwork{{Name: ircNetwork, Address: b.ircd.Addr()}}},
		Extra: extra,
	})
	gw := testbed.StartGateway(b.tb, bin, cfg)
	pid, err := findPid("-config", gw.ConfigPath)
	if err != nil {
		b.tb.Fatalf("our gateway's pid: %v", err)
	}
	t.pid, t.logPath, t.running = pid, gw.LogPath, gw.Running
	t.metricsURL = gw.URL("/metrics")
	if b.opt.cpuProfile != "" {
		t.profileURL = gw.URL(fmt.Sprintf("/debug/pprof/profile?seconds=%d", b.opt.profileSeconds))
	}
}
