// Command demo runs Switchboard on this machine with real servers, to try it
// from an XMPP client and an IRC client: Prosody (users alice and bob),
// ngircd, and bin/switchboard attached to Prosody as the irc.localhost
// component. Everything listens on 127.0.0.1 only; Ctrl-C stops it all.
//
//	make demo            (builds bin/switchboard, then go run ./tests/demo)
//	go run ./tests/demo -bin bin/switchboard
//
// The servers are started by the same code as the end-to-end tests
// (switchboard/tests/testbed), with a testbed.Standalone in place of a
// testing.T.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"switchboard/tests/testbed"
)

// ircDomain is the gateway's component domain in the demo.
const ircDomain = "irc.localhost"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sms" {
		os.Exit(smsCommand(os.Args[2:]))
	}
	bin := flag.String("bin", "bin/switchboard", "the gateway binary (`make build` makes it)")
	flag.Parse()
	binPath, err := filepath.Abs(*bin)
	if err == nil {
		_, err = os.Stat(binPath)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: no gateway binary: %v (run `make build` first, or pass -bin)\n", err)
		os.Exit(1)
	}
	os.Exit(run(binPath))
}

func run(binPath string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tb := testbed.NewStandalone("demo")
	defer tb.Close()

	secret := rand.Text()
	password := strings.ToLower(rand.Text()[:10])

	var taken []string // default ports other programs hold
	portOr := func(port int, what string) int {
		if p := freePort(port); p != 0 {
			return p
		}
		taken = append(taken, fmt.Sprintf("%d (%s)", port, what))
		return 0
	}
	email := startEmailDemo(tb, secret, portOr)
	httpListen := ""
	if p := portOr(8480, "gateway HTTP"); p != 0 {
		httpListen = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	sms := newSMSDemo(tb, secret, httpListen)
	smsDomain, smsSecret := sms.component()
	httpListen = sms.listen

	prosody := testbed.StartProsody(tb, testbed.ProsodyOptions{
		C2SPort:       portOr(5222, "XMPP clients"),
		ComponentPort: portOr(5347, "XMPP components"),
		Components:    map[string]string{ircDomain: secret, smsDomain: smsSecret, mailDomain: secret},
		// XEP-0356 for the email component: mail alice sends from another
		// mail client shows in XMPP as her own, and senders she blocks
		// (XEP-0191) are refused at SMTP.
		ExtraModules:     []string{"blocklist", "privilege"},
		ExtraGlobal:      `privileged_entities = { ["` + mailDomain + `"] = { message = "outgoing", iq = { ["urn:xmpp:blocking"] = "get" } } }`,
		ComponentModules: map[string][]string{mailDomain: {"privilege"}},
		LogLevel:         "info",
	})
	for _, user := range []string{"alice", "bob", "carol"} {
		prosody.Register(user, password)
	}
	ngircd := testbed.StartNgircd(tb, testbed.NgircdOptions{Port: portOr(16667, "IRC")})

	dir := tb.TempDir()
	config := testbed.WriteGatewayConfig(dir, testbed.GatewayConfig{
		LogLevel:   "info",
		XMPPServer: prosody.ComponentAddr(),
		HTTPListen: httpListen,
		Allow:      []string{prosody.Domain},
		Admins:     []string{"alice@" + prosody.Domain},
		IRC: &testbed.GatewayIRC{
			Domain: ircDomain,
			Secret: secret,
			Networks: []testbed.GatewayIRCNetwork{
				{Name: "local", Address: ngircd.Addr()},
			},
		},
		Extra: mergeSections(sms.extra(prosody.Domain), email.extra()),
	})
	gateway := testbed.StartGatewayOutput(tb, binPath, config, os.Stdout)

	if len(taken) > 0 {
		fmt.Printf("\ndemo: default ports %s are in use by other programs (on a stock Debian, the\n"+
			"prosody/ngircd/inspircd/postgresql daemons that installing the packages started);\n"+
			"the demo left them alone and uses free ports instead, shown below.\n", strings.Join(taken, ", "))
	}
	_, c2sPort, _ := net.SplitHostPort(prosody.C2SAddr())
	_, ircPort, _ := net.SplitHostPort(ngircd.Addr())
	fmt.Printf(`
================================================================
 Switchboard demo is running (everything on 127.0.0.1 only)
================================================================
XMPP (Prosody %[1]s, domain %[2]s):
  server 127.0.0.1, port %[3]s, TLS off (plain TCP on loopback:
  allow plaintext / disable TLS in your client)
  users  alice@%[2]s, bob@%[2]s and carol@%[2]s, password %[4]s
  e.g. Profanity: /connect alice@%[2]s server 127.0.0.1 port %[3]s tls disable

Try these JIDs from your XMPP client:
  %-28[5]s join as a group chat (MUC) room: IRC channel #demo
  %-28[12]s chat with IRC user "nick" on network "local"
  %-28[13]s the IRC server itself (notices, commands)

IRC side (ngircd %[6]s):
  nc 127.0.0.1 %[7]s    then: NICK nick / USER nick 0 * :Nick / JOIN #demo
  or any IRC client, server 127.0.0.1 port %[7]s, no TLS

Gateway:  config %[8]s
          health http://%[9]s/healthz
Data and logs of the servers: %[10]s, %[11]s
Ctrl-C stops everything.
================================================================
`, prosody.C2SAddr(), prosody.Domain, c2sPort, password, "#demo%local@"+ircDomain,
		ngircd.Addr(), ircPort, config, gateway.HTTPAddr(), prosody.Dir, ngircd.Dir,
		"nick%local@"+ircDomain, "local@"+ircDomain)
	sms.started(tb)
	email.registered(prosody, password)

	select {
	case <-ctx.Done():
		fmt.Println("\ndemo: stopping")
	case <-gateway.Done():
		tb.Errorf("the gateway exited: %v", gateway.ExitErr())
	}
	tb.Close()
	if tb.Failed() {
		return 1
	}
	return 0
}

// freePort returns port if 127.0.0.1:port is free now, else 0 (the
// starters then pick a free port).
func freePort(port int) int {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0
	}
	l.Close()
	return port
}

// mergeSections joins the config sections each transport's demo adds.
func mergeSections(parts ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, p := range parts {
		for k, v := range p {
			out[k] = v
		}
	}
	return out
}
