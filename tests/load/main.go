// Command load measures Switchboard's IRC gateway against Biboumi, the
// established XMPP–IRC gateway, with the same workload in the same run:
// real Prosody, real ngircd (flood limits off), real gateway processes, all
// on loopback. See doc/benchmarks.md for what it measures, how, and the
// numbers.
//
//	go run ./tests/load irc -users 100
//	go run ./tests/load irc -users 1000 -markdown
//	go run ./tests/load irc -users 10000 -per-room 100 -only ours
//
// Everything it starts (Prosody, ngircd, the gateways) runs in temp
// directories and is stopped when it exits, also on Ctrl-C and on
// -timeout.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"switchboard/tests/testbed"
)

type options struct {
	users          int
	perRoom        int
	messages       int
	fanoutMessages int
	latency        int
	rounds         int
	only           string
	history        string
	markdown       bool
	bin            string
	bin2           string
	timeout        time.Duration
	loginParallel  int
	fanout         bool
	verbose        bool
	keep           bool
	joinBatch      int
	joinRounds     int
	joinPause      time.Duration
	cpuProfile     string
	profileSeconds int
}

func usage(fs *flag.FlagSet) func() {
	return func() {
		fmt.Fprintf(fs.Output(), `usage: go run ./tests/load irc [flags]

Starts Prosody, ngircd and the gateways on loopback and measures burst
throughput, latency, CPU per message, memory per bridged user and join
time of Switchboard ("ours", history on by default) and of Biboumi with its
history off and on, side by side.

flags:
`)
		fs.PrintDefaults()
	}
}

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "sms" {
		os.Exit(runSMS(os.Args[2:]))
	}
	if len(os.Args) >= 2 && os.Args[1] == "email" {
		os.Exit(runEmail(os.Args[2:]))
	}
	if len(os.Args) < 2 || os.Args[1] != "irc" {
		fmt.Fprintln(os.Stderr, "usage: go run ./tests/load irc|email|sms [flags]   (-h for flags)")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("load irc", flag.ExitOnError)
	fs.Usage = usage(fs)
	var o options
	fs.IntVar(&o.users, "users", 100, "bridged XMPP users who join (besides the sender); each has its own IRC connection per gateway")
	fs.IntVar(&o.perRoom, "per-room", 0, "users per channel (0: all in one channel); rooms of N users cost N² presences, so use e.g. 100 for -users 10000")
	fs.IntVar(&o.messages, "messages", 5000, "messages per burst with one user in the room")
	fs.IntVar(&o.fanoutMessages, "fanout-messages", 200, "messages per burst with all users of room 0 in the room")
	fs.IntVar(&o.latency, "latency-samples", 300, "messages sent one at a time per direction and gateway")
	fs.IntVar(&o.rounds, "rounds", 3, "times each burst is repeated (gateways alternate; the median is reported)")
	fs.StringVar(&o.only, "only", "", "measure only `ours` or `biboumi` (both Biboumi columns); default all three columns")
	fs.StringVar(&o.history, "history", "on", "our gateway's room archive: `on` (history_days = 30, the default), off (history_days = 0), or both (two instances, two columns)")
	fs.BoolVar(&o.markdown, "markdown", false, "print the results as markdown (for doc/benchmarks.md) instead of a text table")
	fs.StringVar(&o.bin, "bin", "", "our gateway binary (default: build the module's root package)")
	fs.StringVar(&o.bin2, "bin2", "", "a second build of our gateway, run as one more column with the same -history (A/B of two commits in one run; not with -history both)")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Minute, "stop everything and exit after this long")
	fs.IntVar(&o.loginParallel, "login-parallel", 32, "concurrent c2s logins and Biboumi configure commands while setting up")
	fs.BoolVar(&o.fanout, "fanout", true, "measure bursts with all users of room 0 joined")
	fs.BoolVar(&o.verbose, "v", false, "log progress details")
	fs.BoolVar(&o.keep, "keep", false, "keep the servers' directories (logs, databases) and print their paths")
	fs.IntVar(&o.joinRounds, "join-rounds", 3, "times all users join each gateway (leaving in between); memory is read on the first")
	fs.IntVar(&o.joinBatch, "join-batch", 0, "send join presences in batches of this many (0: all at once)")
	fs.DurationVar(&o.joinPause, "join-pause", 0, "pause between join batches")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write CPU profiles of our gateway into this `directory`, one per burst (turns on [http] pprof); make bursts last longer than -profile-seconds")
	fs.IntVar(&o.profileSeconds, "profile-seconds", 3, "length of each CPU profile taken with -cpuprofile")
	_ = fs.Parse(os.Args[2:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "load: unexpected arguments %q\n", fs.Args())
		os.Exit(2)
	}
	switch o.history {
	case "on", "off", "both":
	default:
		fmt.Fprintf(os.Stderr, "load: -history %q: want on, off or both\n", o.history)
		os.Exit(2)
	}
	if o.bin2 != "" && (o.history == "both" || o.only == "biboumi") {
		fmt.Fprintln(os.Stderr, "load: -bin2 adds a column of ours: not with -history both or -only biboumi")
		os.Exit(2)
	}
	switch o.only {
	case "", "ours", "biboumi":
	default:
		fmt.Fprintf(os.Stderr, "load: -only %q: want ours or biboumi\n", o.only)
		os.Exit(2)
	}
	if o.users < 1 || o.messages < 1 || o.fanoutMessages < 1 || o.latency < 1 || o.rounds < 1 || o.joinRounds < 1 || o.perRoom < 0 {
		fmt.Fprintln(os.Stderr, "load: -users, -messages, -fanout-messages, -latency-samples and -rounds must be positive")
		os.Exit(2)
	}
	if o.keep {
		os.Setenv(testbed.KeepEnv, "1")
	}
	os.Exit(run(o))
}

func run(o options) int {
	tb := testbed.NewStandalone("load")
	defer tb.Close()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-finished:
			return
		case <-sigs:
			fmt.Fprintln(os.Stderr, "load: interrupted; stopping the servers")
		case <-time.After(o.timeout):
			fmt.Fprintf(os.Stderr, "load: -timeout %s reached; stopping the servers\n", o.timeout)
		}
		tb.Fail()
		tb.Close()
		os.Exit(3)
	}()

	if lim, err := raiseFileLimit(); err != nil {
		tb.Logf("raising RLIMIT_NOFILE: %v", err)
	} else if need := uint64(o.users*3 + 500); lim < need {
		tb.Logf("RLIMIT_NOFILE is %d, and %d users may need about %d descriptors in one process; raise the hard limit (ulimit -Hn)", lim, o.users, need)
	}
	bin := o.bin
	if bin == "" {
		tb.Logf("building the gateway")
		bin = testbed.BuildGateway(tb)
	} else if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	if abs, err := filepath.Abs(o.bin2); o.bin2 != "" && err == nil {
		o.bin2 = abs
	}
	b := newBench(tb, o, bin)
	b.setup()
	b.measure()
	b.finish()
	if o.markdown {
		b.printMarkdown(os.Stdout)
	} else {
		b.printText(os.Stdout)
	}
	if o.keep {
		tb.Fail() // testbed keeps directories of failed runs only
		for _, t := range b.targets {
			fmt.Fprintf(os.Stderr, "load: %s log: %s\n", t.title, t.logPath)
		}
	}
	if b.failed {
		return 1
	}
	return 0
}

// padTo returns s padded with filler text to n bytes (a typical chat line).
func padTo(s string, n int) string {
	const filler = " the quick brown fox jumps over the lazy dog and keeps on running"
	for len(s) < n {
		s += filler
	}
	return strings.TrimSpace(s[:n])
}
