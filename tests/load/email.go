package main

// The email mode: real Postfix's intake against the gateway's durable
// intake in the same run, then outbound XMPP → smarthost and IMAP APPEND
// → XMPP latency. See doc/benchmarks.md.
//
//	go run ./tests/load email
//	go run ./tests/load email -n 2000 -conns 8 -markdown

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/smtp"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"mellium.im/xmpp/jid"

	"switchboard/tests/testbed"
)

type emailOptions struct {
	n, nBig, conns, outN, appendN int
	bin                           string
	markdown                      bool
	timeout                       time.Duration
	cpuProfile                    string
	profileSeconds                int
}

func runEmail(args []string) int {
	fs := flag.NewFlagSet("load email", flag.ExitOnError)
	var o emailOptions
	fs.IntVar(&o.n, "n", 2000, "1 KiB messages per intake run")
	fs.IntVar(&o.nBig, "n-big", 200, "100 KiB messages per intake run")
	fs.IntVar(&o.conns, "conns", 8, "concurrent SMTP connections (each sends its share of messages, reusing the connection)")
	fs.IntVar(&o.outN, "out", 500, "messages sent from XMPP to the smarthost (Postfix)")
	fs.IntVar(&o.appendN, "append", 100, "IMAP APPENDs, one at a time, timed to the XMPP client")
	fs.StringVar(&o.bin, "bin", "", "our gateway binary (default: build the module's root package)")
	fs.BoolVar(&o.markdown, "markdown", false, "print markdown for doc/benchmarks.md")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of our gateway during each of its intake runs into this `directory` (turns on [http] pprof)")
	fs.IntVar(&o.profileSeconds, "profile-seconds", 5, "length of each CPU profile (make the runs last longer)")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up after this long")
	_ = fs.Parse(args)
	tb := testbed.NewStandalone("load-email")
	defer tb.Close()
	timer := time.AfterFunc(o.timeout, func() {
		fmt.Fprintln(os.Stderr, "load: -timeout reached")
		tb.Fail()
		tb.Close()
		os.Exit(3)
	})
	defer timer.Stop()
	bin := o.bin
	if bin == "" {
		tb.Logf("building the gateway")
		bin = testbed.BuildGateway(tb)
	} else if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	e := &emailBench{tb: tb, o: o}
	e.setup(bin)
	var rows []emailRow
	for _, size := range []struct {
		bytes, n int
	}{{1024, o.n}, {100 * 1024, o.nBig}} {
		pf := e.intake("postfix", e.sink.Addr(), size.bytes, size.n, false)
		ours := e.intake("ours", e.listen, size.bytes, size.n, true)
		rows = append(rows, pf, ours)
	}
	rows = append(rows, e.outbound(), e.appendLatency())
	e.print(rows)
	if e.failed {
		return 1
	}
	return 0
}

type emailBench struct {
	tb      *testbed.Standalone
	o       emailOptions
	prosody *testbed.Prosody
	sink    *testbed.Postfix // intake only: everything is deferred
	smart   *testbed.Postfix // the gateway's smarthost, deferring too
	dovecot *testbed.Dovecot
	gw      *testbed.Gateway
	listen  string
	alice   *testbed.XMPPClient
	bob     *testbed.XMPPClient
	failed  bool
	seq     atomic.Int64
	held    int // mails in the sink's hold queue after the last run
}

type emailRow struct {
	name      string
	size      int
	n         int
	accepted  int
	delivered int
	rate      float64 // messages per second accepted
	p50, p99  time.Duration
	note      string
}

func (e *emailBench) setup(bin string) {
	tb := e.tb
	e.prosody = testbed.StartProsody(tb, testbed.ProsodyOptions{Components: map[string]string{"mail.localhost": "secret"}, LogLevel: "warn"})
	e.prosody.Register("alice", "pw")
	e.prosody.Register("bob", "pw")
	// Postfix with every delivery deferred: what is measured is smtpd +
	// cleanup writing the queue file (fsync'd), i.e. its durable intake.
	deferAll := "defer_transports = smtp lmtp\nsmtpd_client_connection_count_limit = 0\n"
	// The sink puts every accepted mail on hold: cleanup writes and
	// fsyncs the queue file exactly as for any mail, and then nothing
	// else happens to it (deferred mail would be retried every second by
	// the queue manager, which would load the machine during the next
	// run, ours).
	holdAll := "smtpd_data_restrictions = check_client_access static:HOLD\n"
	e.sink = testbed.StartPostfix(tb, testbed.PostfixOptions{Transport: map[string]string{"sink.test": "smtp:[127.0.0.1]:9", "mail.localhost": "smtp:[127.0.0.1]:9"}, ExtraMain: holdAll, QueueLifetime: "1h"})
	e.smart = testbed.StartPostfix(tb, testbed.PostfixOptions{Transport: map[string]string{"example.test": "smtp:[127.0.0.1]:9"}, ExtraMain: deferAll, QueueLifetime: "1h"})
	e.dovecot = testbed.StartDovecot(tb, testbed.DovecotOptions{Users: map[string]string{"bob@example.test": "bobpw"}, RelayAddr: e.smart.Addr()})
	e.listen = "127.0.0.1:" + strconv.Itoa(testbed.FreePort(tb))
	extra := map[string]any{"email": map[string]any{
		"domain": "mail.localhost", "secret": "secret", "hosted_domain": "mail.localhost",
		"listen": e.listen, "smarthost": e.smart.Addr(), "smarthost_security": "none",
		"listen_per_ip": 0, "send_per_hour": 0, "trusted_relays": []string{"127.0.0.1/32"},
		"spool_dir": filepath.Join(tb.TempDir(), "spool"),
	}}
	if e.o.cpuProfile != "" {
		extra["http"] = map[string]any{"pprof": true}
	}
	cfg := testbed.WriteGatewayConfig(tb.TempDir(), testbed.GatewayConfig{XMPPServer: e.prosody.ComponentAddr(), LogLevel: "warn", Extra: extra})
	e.gw = testbed.StartGateway(tb, bin, cfg)
	if err := testbed.WaitPort(e.listen, 10*time.Second); err != nil {
		tb.Fatalf("listener: %v", err)
	}
	e.alice = testbed.DialXMPP(tb, e.prosody.C2SAddr(), jid.MustParse("alice@localhost/load"), "pw")
	reg := func(c *testbed.XMPPClient, fields string) {
		r := c.IQ(tb, `<iq type='set' to='mail.localhost'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>`+fields+`</x></query></iq>`, 30*time.Second)
		if r.Type != "result" {
			tb.Fatalf("registration: %s", r.XML)
		}
	}
	reg(e.alice, "")
	e.bob = testbed.DialXMPP(tb, e.prosody.C2SAddr(), jid.MustParse("bob@localhost/load"), "pw")
	field := func(k, v string) string { return fmt.Sprintf("<field var='%s'><value>%s</value></field>", k, v) }
	reg(e.bob, field("email", "bob@example.test")+field("imap_server", e.dovecot.IMAPAddr())+field("imap_security", "none")+
		field("smtp_server", e.dovecot.SubmissionAddr())+field("smtp_security", "none")+field("password", "bobpw"))
}

// message builds a mail of about size bytes whose body starts with token.
func message(token string, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: carol@example.test\r\nTo: alice@mail.localhost\r\nSubject: load %s\r\nMessage-ID: <%s@load.test>\r\nDate: %s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n%s\r\n",
		token, token, time.Now().Format(time.RFC1123Z), token)
	line := "the quick brown fox jumps over the lazy dog 0123456789 abcdefghij\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

// intake sends n messages over conns connections and measures how fast
// the server acknowledges them; with xmpp, also the time from the end of
// DATA to alice's client receiving each.
func (e *emailBench) intake(name, addr string, size, n int, xmpp bool) emailRow {
	row := emailRow{name: name, size: size, n: n}
	run := e.seq.Add(1)
	sent := make([]time.Time, n)
	var sentMu sync.Mutex
	var accepted atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	arrivals := map[int]time.Time{}
	var arrMu sync.Mutex
	done := make(chan struct{})
	if xmpp {
		go func() {
			defer close(done)
			prefix := fmt.Sprintf("R%dM", run)
			for got := 0; got < n; {
				st, err := e.alice.Take(func(st testbed.Stanza) bool { return strings.Contains(st.Body(), prefix) }, 60*time.Second)
				if err != nil {
					return
				}
				now := time.Now()
				b := st.Body()
				i := strings.Index(b, prefix) + len(prefix)
				j := i
				for j < len(b) && b[j] >= '0' && b[j] <= '9' {
					j++
				}
				k, _ := strconv.Atoi(b[i:j])
				arrMu.Lock()
				if _, dup := arrivals[k]; !dup {
					arrivals[k] = now
					got++
				}
				arrMu.Unlock()
			}
		}()
	}
	var profiled sync.WaitGroup
	if xmpp && e.o.cpuProfile != "" {
		profiled.Add(1)
		go func() {
			defer profiled.Done()
			e.profile(fmt.Sprintf("ours-%dB.pprof", size))
		}()
	}
	start := time.Now()
	per := (n + e.o.conns - 1) / e.o.conns
	for c := 0; c < e.o.conns; c++ {
		lo, hi := c*per, min((c+1)*per, n)
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := smtp.Dial(addr)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			defer cl.Close()
			_ = cl.Hello("load.test")
			for i := lo; i < hi; i++ {
				msg := message(fmt.Sprintf("R%dM%d", run, i), size)
				if err := cl.Mail("carol@example.test"); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				rcpt := "alice@mail.localhost"
				if !xmpp {
					rcpt = "x@sink.test"
				}
				if err := cl.Rcpt(rcpt); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				w, err := cl.Data()
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				_, _ = w.Write(msg)
				sentMu.Lock()
				sent[i] = time.Now()
				sentMu.Unlock()
				if err := w.Close(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				accepted.Add(1)
			}
			_ = cl.Quit()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	profiled.Wait()
	row.accepted = int(accepted.Load())
	row.rate = float64(row.accepted) / elapsed.Seconds()
	if err, _ := firstErr.Load().(error); err != nil {
		row.note = "error: " + err.Error()
		e.failed = true
	}
	if !xmpp {
		// Every mail Postfix acknowledged is a queue file in its hold
		// queue: what was measured is its durable intake.
		held, _ := os.ReadDir(filepath.Join(e.sink.Dir, "queue", "hold"))
		row.note += fmt.Sprintf("%d in the hold queue", len(held)-e.held)
		e.held = len(held)
	}
	if xmpp {
		select {
		case <-done:
		case <-time.After(120 * time.Second):
		}
		arrMu.Lock()
		var lat []time.Duration
		for k, at := range arrivals {
			lat = append(lat, at.Sub(sent[k]))
		}
		row.delivered = len(arrivals)
		arrMu.Unlock()
		row.p50, row.p99 = pct(lat, 50), pct(lat, 99)
		if row.delivered != row.accepted {
			row.note += fmt.Sprintf(" %d accepted but %d delivered", row.accepted, row.delivered)
			e.failed = true
		}
	}
	e.tb.Logf("%s %d B: %d accepted in %s (%.0f/s), delivered %d, p50 %s p99 %s %s", name, size, row.accepted, elapsed.Round(time.Millisecond), row.rate, row.delivered, row.p50, row.p99, row.note)
	return row
}

// outbound sends messages from alice to the smarthost and measures until
// the last receipt (the smarthost's 250).
func (e *emailBench) outbound() emailRow {
	n := e.o.outN
	row := emailRow{name: "XMPP → smarthost (Postfix)", size: 0, n: n}
	start := time.Now()
	for i := 0; i < n; i++ {
		e.alice.SendRaw(fmt.Sprintf(`<message type='chat' to='carol\40example.test@mail.localhost' id='out%d'><body>outbound load %d</body><request xmlns='urn:xmpp:receipts'/></message>`, i, i))
	}
	got := 0
	for got < n {
		st, err := e.alice.Take(func(st testbed.Stanza) bool {
			return st.Find("{urn:xmpp:receipts}received") != nil || (st.Type == "error" && strings.HasPrefix(st.ID, "out"))
		}, 60*time.Second)
		if err != nil {
			row.note = fmt.Sprintf("only %d of %d receipts", got, n)
			e.failed = true
			break
		}
		if st.Type == "error" {
			row.note = "error: " + st.ErrorText()
			e.failed = true
		}
		got++
	}
	el := time.Since(start)
	row.accepted = got
	row.rate = float64(got) / el.Seconds()
	e.tb.Logf("outbound: %d receipts in %s (%.0f/s) %s", got, el.Round(time.Millisecond), row.rate, row.note)
	return row
}

// appendLatency appends messages to bob's INBOX one at a time and times
// each until bob's XMPP client has it (IMAP IDLE).
func (e *emailBench) appendLatency() emailRow {
	n := e.o.appendN
	row := emailRow{name: "IMAP APPEND → XMPP (IDLE)", n: n}
	c, err := imapclient.DialInsecure(e.dovecot.IMAPAddr(), nil)
	if err != nil {
		row.note = err.Error()
		e.failed = true
		return row
	}
	defer c.Close()
	if err := c.Login("bob@example.test", "bobpw").Wait(); err != nil {
		row.note = err.Error()
		e.failed = true
		return row
	}
	time.Sleep(time.Second) // the watcher is in IDLE
	var lat []time.Duration
	for i := 0; i < n; i++ {
		tok := fmt.Sprintf("A%dX", i)
		msg := bytes.ReplaceAll(message(tok, 1024), []byte("alice@mail.localhost"), []byte("bob@example.test"))
		start := time.Now()
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		_, _ = io.Copy(cmd, bytes.NewReader(msg))
		if err := cmd.Close(); err != nil {
			row.note = err.Error()
			e.failed = true
			break
		}
		if _, err := cmd.Wait(); err != nil {
			row.note = err.Error()
			e.failed = true
			break
		}
		if _, err := e.bob.Take(func(st testbed.Stanza) bool { return strings.Contains(st.Body(), tok) }, 10*time.Second); err != nil {
			row.note = fmt.Sprintf("append %d not seen in XMPP", i)
			e.failed = true
			break
		}
		lat = append(lat, time.Since(start))
	}
	row.accepted, row.delivered = len(lat), len(lat)
	row.p50, row.p99 = pct(lat, 50), pct(lat, 99)
	e.tb.Logf("append: %d, p50 %s p99 %s %s", len(lat), row.p50, row.p99, row.note)
	return row
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[min(i, len(s)-1)]
}

func (e *emailBench) print(rows []emailRow) {
	ms := func(d time.Duration) string {
		if d == 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	size := func(b int) string {
		if b == 0 {
			return "–"
		}
		return fmt.Sprintf("%d KiB", b/1024)
	}
	if e.o.markdown {
		fmt.Println("| what | size | messages | accepted/s | delivered to XMPP | p50 | p99 | note |")
		fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
		for _, r := range rows {
			fmt.Printf("| %s | %s | %d | %.0f | %d | %s | %s | %s |\n", r.name, size(r.size), r.n, r.rate, r.delivered, ms(r.p50), ms(r.p99), r.note)
		}
	} else {
		fmt.Printf("%-28s %8s %8s %11s %10s %10s %10s %s\n", "what", "size", "msgs", "accepted/s", "delivered", "p50", "p99", "note")
		for _, r := range rows {
			fmt.Printf("%-28s %8s %8d %11.0f %10d %10s %10s %s\n", r.name, size(r.size), r.n, r.rate, r.delivered, ms(r.p50), ms(r.p99), r.note)
		}
	}
	for i := 0; i+1 < len(rows) && rows[i].name == "postfix"; i += 2 {
		if rows[i].rate > 0 {
			fmt.Printf("\nintake ratio ours/postfix at %s: %.2fx\n", size(rows[i].size), rows[i+1].rate/rows[i].rate)
		}
	}
}

// profile saves a CPU profile of the gateway, -profile-seconds long,
// into the -cpuprofile directory.
func (e *emailBench) profile(name string) {
	url := e.gw.URL(fmt.Sprintf("/debug/pprof/profile?seconds=%d", e.o.profileSeconds))
	resp, err := http.Get(url)
	if err != nil {
		e.tb.Logf("cpu profile: %v", err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	if err == nil {
		err = os.MkdirAll(e.o.cpuProfile, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(e.o.cpuProfile, name), b, 0o644)
	}
	if err != nil {
		e.tb.Logf("cpu profile: %v", err)
		return
	}
	e.tb.Logf("cpu profile: %s", filepath.Join(e.o.cpuProfile, name))
}
