package main

// The SMS part of the demo: the local Twilio stand-in (tests/twilio) and
// the gateway's [sms] section. alice owns +15005550006; bob and carol
// share the team inbox "sales" (+15005550007). Texting alice from the
// shell is a signed webhook:
//
//	go run ./tests/demo sms --from +12025550101 "hi alice"
//
// which reads the running demo's address and token from a state file.
// What alice texts shows up in the demo's output (the stand-in logs every
// API call and status callback).

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"switchboard/tests/testbed"
	"switchboard/tests/twilio"
)

const (
	smsDemoDomain  = "sms.localhost"
	smsDemoAccount = "AC0123456789abcdef0123456789abcdef"
	smsDemoAlice   = "+15005550006"
	smsDemoSales   = "+15005550007"
)

// smsDemoState is what the "sms" subcommand needs to text the demo.
type smsDemoState struct {
	WebhookURL string `json:"webhook_url"` // where to post
	SignURL    string `json:"sign_url"`    // what the signature covers (public_url + path)
	Account    string `json:"account_sid"`
	Token      string `json:"auth_token"`
}

func smsStatePath() string { return filepath.Join(os.TempDir(), "switchboard-demo-sms.json") }

// smsDemo is the SMS part of a running demo.
type smsDemo struct {
	secret, token string
	tw            *twilio.Server
	listen        string // the gateway's [http] listen, fixed here for public_url
}

// newSMSDemo starts the Twilio stand-in (its log goes to stdout). listen
// is the gateway's [http] listen address ("" picks a free port).
func newSMSDemo(tb *testbed.Standalone, secret, listen string) *smsDemo {
	token := fmt.Sprintf("%x", time.Now().UnixNano()) + "0123456789abcdef"
	tw, err := twilio.Start(smsDemoAccount, token)
	if err != nil {
		tb.Fatalf("the Twilio stand-in: %v", err)
	}
	tb.Cleanup(tw.Close)
	tw.Logf = func(format string, args ...any) { fmt.Printf("[twilio stand-in] "+format+"\n", args...) }
	if listen == "" {
		listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(testbed.FreePort(tb)))
	}
	return &smsDemo{secret: secret, token: token, tw: tw, listen: listen}
}

// component is the Prosody component entry.
func (d *smsDemo) component() (string, string) { return smsDemoDomain, d.secret }

// extra is the gateway config for SMS.
func (d *smsDemo) extra(domain string) map[string]any {
	return map[string]any{
		"http":        map[string]any{"listen": d.listen, "public_url": "http://" + d.listen},
		"attachments": map[string]any{"allow_private_fetch": true},
		"sms": map[string]any{
			"domain": smsDemoDomain, "secret": d.secret, "account_sid": smsDemoAccount, "auth_token": d.token,
			"api_url": d.tw.URL, "default_region": "US",
			"number": []map[string]any{
				{"number": smsDemoAlice, "owner": "alice@" + domain},
				{"number": smsDemoSales, "name": "sales", "owners": []string{"bob@" + domain, "carol@" + domain}},
			},
		},
	}
}

// started writes the state file for the subcommand and prints how to
// text and where texts show up.
func (d *smsDemo) started(tb *testbed.Standalone) {
	st := smsDemoState{WebhookURL: "http://" + d.listen + "/sms/incoming", SignURL: "http://" + d.listen + "/sms/incoming", Account: smsDemoAccount, Token: d.token}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(smsStatePath(), b, 0o600); err != nil {
		tb.Errorf("writing %s: %v", smsStatePath(), err)
	}
	tb.Cleanup(func() { os.Remove(smsStatePath()) })
	fmt.Printf(`SMS (Twilio stand-in at %[1]s, component %[2]s):
  alice texts from %[3]s; bob and carol share the team inbox "sales" (%[4]s)
  text alice:       bin/switchboard-demo sms --from +12025550101 "hi alice"
  text the inbox:   bin/switchboard-demo sms --to %[4]s --from +12025550101 "open today?"
  alice texts back: chat with +12025550101@%[2]s
  bob/carol join:   +12025550101%%sales@%[2]s (a MUC room)
  outgoing texts, receipts and callbacks appear here as [twilio stand-in] lines
================================================================
`, d.tw.URL, smsDemoDomain, smsDemoAlice, smsDemoSales)
}

// smsCommand is "go run ./tests/demo sms [--from N] [--to N] text":
// a signed "A message comes in" webhook to the running demo.
func smsCommand(args []string) int {
	fs := flag.NewFlagSet("demo sms", flag.ExitOnError)
	from := fs.String("from", "+12025550101", "the sender's number (E.164)")
	to := fs.String("to", smsDemoAlice, "the gateway's number texted")
	_ = fs.Parse(args)
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, `usage: bin/switchboard-demo sms [--from +12025550101] [--to +15005550006] "text"`)
		return 2
	}
	b, err := os.ReadFile(smsStatePath())
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo sms: is the demo running? %v\n", err)
		return 1
	}
	var st smsDemoState
	if err := json.Unmarshal(b, &st); err != nil {
		fmt.Fprintf(os.Stderr, "demo sms: %s: %v\n", smsStatePath(), err)
		return 1
	}
	text := fs.Arg(0)
	for _, a := range fs.Args()[1:] {
		text += " " + a
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, body, err := twilio.SendForm(ctx, http.DefaultClient, st.Token, st.WebhookURL, st.SignURL,
		twilio.Inbound{From: *from, To: *to, Body: text}.Form(st.Account))
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo sms: %v\n", err)
		return 1
	}
	fmt.Printf("webhook answered %d %s\n", code, body)
	if code != 200 {
		return 1
	}
	return 0
}
