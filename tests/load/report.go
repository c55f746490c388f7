package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the results table.
type row struct {
	metric string
	label  string
	format string
	// better says which way is better: -1 lower, +1 higher, 0 neither.
	better int
}

func (b *bench) rows() []row {
	n := b.opt.users
	room0 := b.room0Users()
	rooms := "one channel"
	if b.opt.perRoom > 0 && b.opt.perRoom < n {
		rooms = fmt.Sprintf("channels of %d", b.opt.perRoom)
	}
	return []row{
		{mLatX2I50, "XMPP→IRC latency p50, alone (ms)", "%.3f", -1},
		{mLatX2I99, "XMPP→IRC latency p99, alone (ms)", "%.3f", -1},
		{mLatX2IAdd, "XMPP→IRC added latency p50 (ms)", "%.3f", -1},
		{mLatI2X50, "IRC→XMPP latency p50, alone (ms)", "%.3f", -1},
		{mLatI2X99, "IRC→XMPP latency p99, alone (ms)", "%.3f", -1},
		{mLatI2XAdd, "IRC→XMPP added latency p50 (ms)", "%.3f", -1},
		{mMixX2I50, "XMPP→IRC latency p50, mixed traffic (ms)", "%.3f", -1},
		{mMixX2I99, "XMPP→IRC latency p99, mixed traffic (ms)", "%.3f", -1},
		{mMixI2X50, "IRC→XMPP latency p50, mixed traffic (ms)", "%.3f", -1},
		{mMixI2X99, "IRC→XMPP latency p99, mixed traffic (ms)", "%.3f", -1},
		{mTpX2I, "XMPP→IRC burst, 2 users in room (msg/s)", "%.0f", +1},
		{mTpI2X, "IRC→XMPP burst, 2 users in room (msg/s)", "%.0f", +1},
		{mCPUX2I, "CPU per 1,000 msgs XMPP→IRC, 2 users (ms)", "%.1f", -1},
		{mCPUI2X, "CPU per 1,000 msgs IRC→XMPP, 2 users (ms)", "%.1f", -1},
		{mJoinWall, fmt.Sprintf("%d users join, %s: wall time to the last self-presence (s)", n, rooms), "%.2f", -1},
		{mJoinCPU, fmt.Sprintf("%d users join: gateway CPU (s)", n), "%.2f", -1},
		{mJoinErrs, "joins that never completed (all rounds)", "%.0f", -1},
		{mRSS0, "RSS before the users join (MiB)", "%.1f", -1},
		{mRSS1, fmt.Sprintf("RSS with %d users joined, %s after the join (MiB)", n, rssSettle), "%.1f", -1},
		{mRSSPerUser, "RSS per bridged user (KiB)", "%.1f", -1},
		{mFDs, "open file descriptors", "%.0f", 0},
		{mThreads, "threads", "%.0f", 0},
		{mFoX2I, fmt.Sprintf("XMPP→IRC burst, %d users in room (msg/s)", room0), "%.0f", +1},
		{mFoX2ICPU, fmt.Sprintf("CPU per 1,000 msgs XMPP→IRC, %d users (ms)", room0), "%.1f", -1},
		{mFoI2X, fmt.Sprintf("IRC→XMPP burst, %d users in room (msg/s)", room0), "%.0f", +1},
		{mFoI2XSt, fmt.Sprintf("IRC→XMPP, %d users: stanzas delivered/s", room0), "%.0f", +1},
		{mFoI2XCPU, fmt.Sprintf("CPU per 1,000 msgs IRC→XMPP, %d users (ms)", room0), "%.1f", -1},
		{mProsFoI2X, "  Prosody CPU per 1,000 msgs, same (ms)", "%.1f", 0},
		{mProsJoin, "  Prosody CPU during the join (s)", "%.2f", 0},
		{mIRCdJoin, "  ngircd CPU during the join (s)", "%.2f", 0},
		{mRefused, "messages refused with an error (bursts)", "%.0f", -1},
		{mDropped, "XMPP copies dropped by the gateway (bursts)", "%.0f", -1},
		{mLost, "messages or copies not delivered (bursts, refused included)", "%.0f", -1},
		{mArchiveDropped, "archive entries dropped (log)", "%.0f", -1},
		{mKicked, "users disconnected (self-presence unavailable)", "%.0f", -1},
	}
}

// value is the median of a metric's samples for a target (NaN if none).
func (b *bench) value(key, metric string) float64 {
	m := b.res[key]
	if m == nil {
		return math.NaN()
	}
	v := m[metric]
	if len(v) == 0 {
		if metric == mLost || metric == mRefused || metric == mDropped || metric == mJoinErrs {
			return 0
		}
		return math.NaN()
	}
	if metric == mLost || metric == mRefused || metric == mDropped || metric == mJoinErrs {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s
	}
	return median(v)
}

func (b *bench) has(key string) bool {
	for _, t := range b.targets {
		if t.key == key {
			return true
		}
	}
	return false
}

func fmtVal(format string, v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// table returns the header and the cells.
func (b *bench) table() ([]string, [][]string) {
	var cols []*target
	cols = append(cols, b.targets...)
	head := []string{"metric"}
	for _, t := range cols {
		head = append(head, t.title)
	}
	withRatio := b.has("ours") && b.has("biboumi")
	if withRatio {
		head = append(head, "ours ÷ Biboumi off")
		if b.has("ours-2") {
			head = append(head, "2nd ours ÷ Biboumi off")
		}
		if b.has("biboumi-h") {
			head = append(head, "ours ÷ Biboumi on")
		}
	}
	var cells [][]string
	for _, r := range b.rows() {
		line := []string{r.label}
		any := false
		for _, t := range cols {
			v := b.value(t.key, r.metric)
			if !math.IsNaN(v) {
				any = true
			}
			line = append(line, fmtVal(r.format, v))
		}
		if !any {
			continue
		}
		if withRatio {
			line = append(line, ratio(b.value("ours", r.metric), b.value("biboumi", r.metric)))
			if b.has("ours-2") {
				line = append(line, ratio(b.value("ours-2", r.metric), b.value("biboumi", r.metric)))
			}
			if b.has("biboumi-h") {
				line = append(line, ratio(b.value("ours", r.metric), b.value("biboumi-h", r.metric)))
			}
		}
		cells = append(cells, line)
	}
	return head, cells
}

// targets checks the goals (ours with history on against Biboumi
// with history off).
func (b *bench) goals() []string {
	if !b.has("ours") || !b.has("biboumi") {
		return nil
	}
	ours := func(m string) float64 { return b.value("ours", m) }
	bib := func(m string) float64 { return b.value("biboumi", m) }
	var out []string
	check := func(label string, ok bool, detail string) {
		mark := "PASS"
		if !ok {
			mark = "MISS"
		}
		out = append(out, fmt.Sprintf("%s  %s (%s)", mark, label, detail))
	}
	le := func(label, m string) {
		a, c := ours(m), bib(m)
		if math.IsNaN(a) || math.IsNaN(c) {
			return
		}
		check(label, a <= c, fmt.Sprintf("ours %.3g, Biboumi %.3g, ratio %s", a, c, ratio(a, c)))
	}
	ge := func(label, m string) {
		a, c := ours(m), bib(m)
		if math.IsNaN(a) || math.IsNaN(c) {
			return
		}
		check(label, a >= c, fmt.Sprintf("ours %.0f, Biboumi %.0f, ratio %s", a, c, ratio(a, c)))
	}
	le("CPU per message XMPP→IRC ≤ Biboumi history off", mCPUX2I)
	le("CPU per message IRC→XMPP ≤ Biboumi history off", mCPUI2X)
	le("CPU per message IRC→XMPP with fan-out ≤ Biboumi history off", mFoI2XCPU)
	ge("burst XMPP→IRC ≥ Biboumi history off", mTpX2I)
	ge("burst IRC→XMPP ≥ Biboumi history off", mTpI2X)
	le("memory per bridged user ≤ Biboumi", mRSSPerUser)
	if e := ours(mJoinErrs); e > 0 {
		check(fmt.Sprintf("%d users joined no slower than Biboumi", b.opt.users), false,
			fmt.Sprintf("%.0f joins never completed over %d rounds; Biboumi %.0f", e, b.opt.joinRounds, bib(mJoinErrs)))
	} else {
		le(fmt.Sprintf("%d users joined no slower than Biboumi", b.opt.users), mJoinWall)
	}
	le("p50 added latency XMPP→IRC ≤ Biboumi", mLatX2IAdd)
	le("p50 added latency IRC→XMPP ≤ Biboumi", mLatI2XAdd)
	return out
}

func (b *bench) printText(w io.Writer) {
	head, cells := b.table()
	fmt.Fprintf(w, "\n%s\n", b.summaryLine())
	fmt.Fprintf(w, "%s\n\n", b.baselineLine())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, c := range cells {
		fmt.Fprintln(tw, strings.Join(c, "\t")+"\t")
	}
	tw.Flush()
	if g := b.goals(); len(g) > 0 {
		fmt.Fprintln(w, "\ngoals (Switchboard as configured vs Biboumi with history off):")
		for _, l := range g {
			fmt.Fprintln(w, "  "+l)
		}
	}
	if len(b.notes) > 0 {
		fmt.Fprintln(w, "\nproblems seen:")
		for _, n := range b.notes {
			fmt.Fprintln(w, "  - "+n)
		}
	}
}

func (b *bench) printMarkdown(w io.Writer) {
	head, cells := b.table()
	fmt.Fprintf(w, "Command: `go run ./tests/load %s`\n\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(w, "%s\n\n", b.summaryLine())
	fmt.Fprintf(w, "Machine: %s\n\n", machine())
	fmt.Fprintf(w, "%s\n\n", b.baselineLine())
	fmt.Fprintln(w, "| "+strings.Join(head, " | ")+" |")
	seps := make([]string, len(head))
	seps[0] = "---"
	for i := 1; i < len(seps); i++ {
		seps[i] = "---:"
	}
	fmt.Fprintln(w, "| "+strings.Join(seps, " | ")+" |")
	for _, c := range cells {
		fmt.Fprintln(w, "| "+strings.Join(c, " | ")+" |")
	}
	if g := b.goals(); len(g) > 0 {
		fmt.Fprintln(w, "\nGoals (Switchboard as configured vs Biboumi with history off):")
		fmt.Fprintln(w)
		for _, l := range g {
			fmt.Fprintln(w, "- "+l)
		}
	}
	if len(b.notes) > 0 {
		fmt.Fprintln(w, "\nProblems seen:")
		fmt.Fprintln(w)
		for _, n := range b.notes {
			fmt.Fprintln(w, "- "+strings.ReplaceAll(n, "\n", "\n  "))
		}
	}
}

func (b *bench) summaryLine() string {
	return fmt.Sprintf("%s; %d users (+ sender and receiver) per gateway, %d-byte messages, bursts of %d (2 users in room) and %d (fan-out), %d latency samples per direction, %d rounds; run took %s",
		time.Now().Format("2006-01-02 15:04 MST"), b.opt.users, bodyLen, b.opt.messages, b.opt.fanoutMessages,
		b.opt.latency, b.opt.rounds, time.Since(b.started).Round(time.Second))
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

// machine describes the host and the server versions.
func machine() string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0]); len(f) >= 2 {
			mem = f[1] + " kB RAM, "
		}
	}
	vers := []string{}
	for _, pkg := range []string{"prosody", "ngircd", "biboumi"} {
		out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", pkg).Output()
		if err == nil {
			vers = append(vers, pkg+" "+string(out))
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s%s, %s", runtime.NumCPU(), cpu, mem, runtime.Version(), strings.Join(vers, ", "))
}

// baselineLine describes the direct IRC→IRC and XMPP→XMPP latencies the
// "added latency" rows subtract.
func (b *bench) baselineLine() string {
	bl := func(k string) string {
		return fmt.Sprintf("p50 %s, p99 %s", fmtDur(percentile(b.baseline[k], 50)), fmtDur(percentile(b.baseline[k], 99)))
	}
	return fmt.Sprintf("Baselines, one message at a time: IRC→IRC (through ngircd) %s; XMPP→XMPP (chat through Prosody) %s. "+
		"With mixed traffic: IRC→IRC %s; XMPP→XMPP %s. Added latency = gateway p50 − IRC p50 − XMPP p50 (alone).",
		bl("irc"), bl("xmpp"), bl("irc-mixed"), bl("xmpp-mixed"))
}
