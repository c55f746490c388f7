package main

// The sms mode measures the SMS transport against the Twilio stand-in:
//
//	go run ./tests/load sms -webhooks 10000 -concurrency 32 -sends 1000
//
// Inbound: signed "A message comes in" webhooks are posted by -concurrency
// workers as fast as the gateway answers; each answer (200 after the
// durable store write) is timed, and each text is timed again when the
// XMPP user (a real mellium c2s client on Prosody) receives it.
// Outbound: the user sends -sends texts to numbers; the time until the
// stand-in has created them all and until every XEP-0184 receipt (from
// the stand-in's "delivered" status callbacks) reached the user.

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/tests/testbed"
	"switchboard/tests/twilio"
)

const (
	smsLoadDomain  = "sms.localhost"
	smsLoadAccount = "AC0123456789abcdef0123456789abcdef"
	smsLoadToken   = "0123456789abcdef0123456789abcdef"
	smsLoadNumber  = "+15005550006"
)

func runSMS(args []string) int {
	fs := flag.NewFlagSet("load sms", flag.ExitOnError)
	webhooks := fs.Int("webhooks", 10000, "inbound webhooks to post")
	conc := fs.Int("concurrency", 32, "concurrent webhook senders (Twilio opens many connections)")
	sends := fs.Int("sends", 1000, "outbound texts the user sends")
	bin := fs.String("bin", "", "our gateway binary (default: build the module's root package)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	markdown := fs.Bool("markdown", false, "print a markdown table")
	_ = fs.Parse(args)

	tb := testbed.NewStandalone("load-sms")
	defer tb.Close()
	ctx, cancel := context.WithTimeout(tb.Context(), *timeout)
	defer cancel()

	p := testbed.StartProsody(tb, testbed.ProsodyOptions{Components: map[string]string{smsLoadDomain: "secret"}, ExtraModules: []string{"offline"}})
	p.Register("alice", "pw")
	tw, err := twilio.Start(smsLoadAccount, smsLoadToken)
	if err != nil {
		tb.Fatal(err)
	}
	defer tw.Close()
	listen := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(tb))
	public := "http://" + listen
	cfg := testbed.WriteGatewayConfig(tb.TempDir(), testbed.GatewayConfig{
		LogLevel: "info", XMPPServer: p.ComponentAddr(), HTTPListen: listen,
		Extra: map[string]any{
			"http": map[string]any{"listen": listen, "public_url": public},
			"sms": map[string]any{
				"domain": smsLoadDomain, "secret": "secret", "account_sid": smsLoadAccount, "auth_token": smsLoadToken,
				"api_url": tw.URL, "daily_messages": 0, "daily_segments": 0,
				"number": []map[string]any{{"number": smsLoadNumber, "owner": "alice@localhost"}},
			},
		},
	})
	gwBin := *bin
	if gwBin == "" {
		gwBin = testbed.BuildGateway(tb)
	} else if abs, err := filepath.Abs(gwBin); err == nil {
		gwBin = abs
	}
	gw := testbed.StartGateway(tb, gwBin, cfg)
	alice := testbed.DialXMPP(tb, p.C2SAddr(), jid.MustParse("alice@localhost/load"), "pw")

	// ---- inbound
	n := *webhooks
	sent := make([]time.Time, n)
	answer := make([]time.Duration, n)
	recv := make([]time.Duration, n)
	var failed atomic.Int64
	got := make(chan int, n)
	go func() {
		for i := 0; i < n; i++ {
			st, err := alice.Take(func(st testbed.Stanza) bool {
				return st.Name == "message" && strings.HasPrefix(st.Body(), "load ")
			}, time.Minute)
			if err != nil {
				close(got)
				return
			}
			k, _ := strconv.Atoi(strings.TrimPrefix(st.Body(), "load "))
			if k >= 0 && k < n && recv[k] == 0 {
				recv[k] = time.Since(sent[k])
			}
			got <- k
		}
		close(got)
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc * 2}}
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				form := twilio.Inbound{From: "+12025550123", To: smsLoadNumber, Body: "load " + strconv.Itoa(i)}.Form(smsLoadAccount)
				sent[i] = time.Now()
				code, _, err := twilio.SendForm(ctx, client, smsLoadToken, gw.URL("/sms/incoming"), public+"/sms/incoming", form)
				answer[i] = time.Since(sent[i])
				if err != nil || code != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	acceptDur := time.Since(start)
	delivered := 0
	for range got {
		delivered++
		if delivered == n {
			break
		}
	}
	deliverDur := time.Since(start)

	// ---- outbound
	m := *sends
	ostart := time.Now()
	for i := 0; i < m; i++ {
		to := fmt.Sprintf("+1202555%04d", i%10000)
		alice.SendRaw(fmt.Sprintf(`<message type='chat' to='%s@%s' id='o%d'><body>out %d</body><request xmlns='urn:xmpp:receipts'/></message>`, to, smsLoadDomain, i, i))
	}
	created := time.Duration(0)
	receipts := 0
	for receipts < m && ctx.Err() == nil {
		_, err := alice.Take(func(st testbed.Stanza) bool { return st.Find("{urn:xmpp:receipts}received") != nil }, time.Minute)
		if err != nil {
			break
		}
		receipts++
		if created == 0 && len(tw.Messages()) >= m {
			created = time.Since(ostart)
		}
	}
	receiptDur := time.Since(ostart)
	if created == 0 {
		created = receiptDur
	}

	pct := func(ds []time.Duration, q float64) time.Duration {
		var v []time.Duration
		for _, d := range ds {
			if d > 0 {
				v = append(v, d)
			}
		}
		if len(v) == 0 {
			return 0
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[min(len(v)-1, int(float64(len(v))*q))]
	}
	rows := [][2]string{
		{"webhooks posted", fmt.Sprintf("%d (%d concurrent senders)", n, *conc)},
		{"webhooks refused or failed", fmt.Sprint(failed.Load())},
		{"accepted per second (200 after the durable write)", fmt.Sprintf("%.0f", float64(n)/acceptDur.Seconds())},
		{"webhook answer p50 / p99", fmt.Sprintf("%v / %v", pct(answer, 0.5).Round(10*time.Microsecond), pct(answer, 0.99).Round(10*time.Microsecond))},
		{"delivered to the XMPP user", fmt.Sprintf("%d of %d", delivered, n)},
		{"all delivered after", deliverDur.Round(time.Millisecond).String()},
		{"webhook to XMPP client p50 / p99", fmt.Sprintf("%v / %v", pct(recv, 0.5).Round(100*time.Microsecond), pct(recv, 0.99).Round(100*time.Microsecond))},
		{"outbound texts sent", fmt.Sprint(m)},
		{"created at the API, per second", fmt.Sprintf("%.0f (all after %v)", float64(m)/created.Seconds(), created.Round(time.Millisecond))},
		{"receipts back (delivered callbacks)", fmt.Sprintf("%d after %v", receipts, receiptDur.Round(time.Millisecond))},
	}
	for _, r := range rows {
		if *markdown {
			fmt.Printf("| %s | %s |\n", r[0], r[1])
		} else {
			fmt.Printf("%-52s %s\n", r[0], r[1])
		}
	}
	if failed.Load() > 0 || delivered != n || receipts != m {
		fmt.Fprintln(os.Stderr, "load sms: not everything went through")
		return 1
	}
	return 0
}
