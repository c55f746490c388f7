package irc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/store"
	"switchboard/store/memstore"
	"switchboard/tests/testbed"
)

func TestIdentOf(t *testing.T) {
	key, err := identKey(&Config{ComponentConfig: bridge.ComponentConfig{Secret: "secret"}})
	if err != nil {
		t.Fatal(err)
	}
	a := identOf(key, "alice@localhost")
	if len(a) != 10 || strings.Trim(a, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		t.Fatalf("ident %q is not 10 lowercase base32 characters", a)
	}
	if identOf(key, "alice@localhost") != a {
		t.Fatal("the ident is not stable")
	}
	if identOf(key, "bob@localhost") == a {
		t.Fatal("two users share an ident")
	}
	other, _ := identKey(&Config{ComponentConfig: bridge.ComponentConfig{Secret: "another install"}})
	if identOf(other, "alice@localhost") == a {
		t.Fatal("the ident does not depend on the install's secret")
	}
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile, err := identKey(&Config{ComponentConfig: bridge.ComponentConfig{SecretFile: file}})
	if err != nil || identOf(fromFile, "alice@localhost") != a {
		t.Fatalf("key from secret_file differs (%v)", err)
	}
}

func TestIdentdConfig(t *testing.T) {
	for _, good := range []string{"0.0.0.0:113", "[::]:113", ":113", "127.0.0.1:1113"} {
		cfg := testConfig("127.0.0.1:6667")
		cfg.IdentdListen = good
		cfg.SetDefaults()
		if errs := cfg.Validate(); len(errs) != 0 {
			t.Errorf("%q: %v", good, errs)
		}
	}
	for _, bad := range []string{"113", "localhost:113", "0.0.0.0:0", "0.0.0.0:65536", ":auth", "1.2.3:113"} {
		cfg := testConfig("127.0.0.1:6667")
		cfg.IdentdListen = bad
		cfg.SetDefaults()
		errs := cfg.Validate()
		if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "identd_listen: ") {
			t.Errorf("%q: %v", bad, errs)
		}
	}
	cfg := testConfig("127.0.0.1:6667")
	cfg.IdentdListen = "nonsense"
	if _, err := New(cfg, memstore.New(), nil, testLog()); err == nil || !strings.Contains(err.Error(), "irc.identd_listen") {
		t.Fatalf("New = %v", err)
	}
}

func TestIdentTableAndAnswers(t *testing.T) {
	tr := &Transport{idents: newIdentTable(), log: testLog()}
	server := netip.MustParseAddrPort("192.0.2.7:6667")
	local := netip.MustParseAddrPort("198.51.100.1:40000")
	c1, c2, c3 := &conn{}, &conn{}, &conn{}
	tr.idents.add(local, server, "k2xq7c4mzd", c1)
	// The same local port towards another server (Linux reuses ephemeral
	// ports across destinations).
	tr.idents.add(local, netip.MustParseAddrPort("203.0.113.9:6667"), "otheruser0", c2)

	done, cancel := context.WithCancel(context.Background())
	cancel() // no grace: answers for unknown connections come at once
	from := netip.MustParseAddr("192.0.2.7")
	for _, tc := range []struct{ from, line, want string }{
		{"192.0.2.7", "40000, 6667", "40000, 6667 : USERID : UNIX : k2xq7c4mzd\r\n"},
		{"192.0.2.7", " \t40000 ,6667  ", "40000, 6667 : USERID : UNIX : k2xq7c4mzd\r\n"},
		{"::ffff:192.0.2.7", "40000,6667", "40000, 6667 : USERID : UNIX : k2xq7c4mzd\r\n"},
		{"203.0.113.9", "40000, 6667", "40000, 6667 : USERID : UNIX : otheruser0\r\n"},
		// Only the host at the other end may ask.
		{"192.0.2.99", "40000, 6667", "40000, 6667 : ERROR : NO-USER\r\n"},
		{"192.0.2.7", "40001, 6667", "40001, 6667 : ERROR : NO-USER\r\n"},
		{"192.0.2.7", "40000, 6697", "40000, 6697 : ERROR : NO-USER\r\n"},
		{"192.0.2.7", "0, 6667", "0, 6667 : ERROR : INVALID-PORT\r\n"},
		{"192.0.2.7", "65536, 6667", "65536, 6667 : ERROR : INVALID-PORT\r\n"},
		{"192.0.2.7", "40000, x", "40000, 0 : ERROR : INVALID-PORT\r\n"},
		{"192.0.2.7", "040000, 6667", "0, 6667 : ERROR : INVALID-PORT\r\n"},
		{"192.0.2.7", "40000 6667", "0, 0 : ERROR : INVALID-PORT\r\n"},
		{"192.0.2.7", "1, 2, 3", "1, 0 : ERROR : INVALID-PORT\r\n"},
		{"192.0.2.7", "", "0, 0 : ERROR : INVALID-PORT\r\n"},
		{"192.0.2.7", "GET / HTTP/1.0", "0, 0 : ERROR : INVALID-PORT\r\n"},
	} {
		if got := tr.identAnswer(done, netip.MustParseAddr(tc.from), tc.line); got != tc.want {
			t.Errorf("from %s %q: %q, want %q", tc.from, tc.line, got, tc.want)
		}
	}
	tr.idents.remove(local, server, c3) // not recorded: nothing happens
	if _, ok := tr.idents.lookup(from, 40000, 6667); !ok || tr.idents.len() != 2 {
		t.Fatal("removing a connection that is not recorded removed another")
	}
	tr.idents.remove(local, server, c1)
	if _, ok := tr.idents.lookup(from, 40000, 6667); ok || tr.idents.len() != 1 {
		t.Fatalf("entry left after remove (%d entries)", tr.idents.len())
	}
	// A connection recorded during the grace is found.
	go func() {
		time.Sleep(100 * time.Millisecond)
		tr.idents.add(local, server, "latecomer1", c1)
	}()
	if got := tr.identAnswer(context.Background(), from, "40000, 6667"); got != "40000, 6667 : USERID : UNIX : latecomer1\r\n" {
		t.Fatalf("late connection: %q", got)
	}
}

// identQuery sends payload to the identd at addr and returns everything it
// answers before closing.
func identQuery(t testing.TB, addr, payload string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("connecting to the identd: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, payload); err != nil {
		t.Fatalf("writing to the identd: %v", err)
	}
	b, err := io.ReadAll(c)
	if err != nil && !(isReset(err) && len(b) == 0) { // closed unanswered
		t.Fatalf("reading the identd's answer: %v (got %q)", err, b)
	}
	return string(b)
}

// identdAddr waits until the transport's identd listens.
func identdAddr(t testing.TB, tr *Transport) string {
	t.Helper()
	select {
	case <-tr.identdReady:
		return tr.identdAddr.String()
	case <-time.After(wait):
		t.Fatal("the identd did not start")
		return ""
	}
}

// TestIdentdServer runs the identd of a transport: line endings, an
// over-long line, bounded concurrency, and stopping with ctx.
func TestIdentdServer(t *testing.T) {
	cfg := testConfig("127.0.0.1:6667")
	cfg.IdentdListen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	tr, err := New(cfg, memstore.New(), nil, testLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	addr := identdAddr(t, tr)
	lo := netip.MustParseAddr("127.0.0.1")
	tr.idents.add(netip.AddrPortFrom(lo, 50000), netip.AddrPortFrom(lo, 6667), "abcdefghij", &conn{})

	want := "50000, 6667 : USERID : UNIX : abcdefghij\r\n"
	for _, q := range []string{"50000, 6667\r\n", "50000, 6667\n", "50000, 6667\r", "50000 , 6667\r\nmore ignored\r\n"} {
		if got := identQuery(t, addr, q); got != want {
			t.Errorf("%q: %q, want %q", q, got, want)
		}
	}
	// A query cut by a half-close still counts.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("50000, 6667"))
	c.(*net.TCPConn).CloseWrite()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(c); string(b) != want {
		t.Errorf("half-closed query: %q", b)
	}
	c.Close()
	if got := identQuery(t, addr, "1, 2\r\n"); got != "1, 2 : ERROR : NO-USER\r\n" {
		t.Errorf("unknown connection: %q", got)
	}
	// More than 1000 bytes without a line end: closed unanswered.
	if got := identQuery(t, addr, strings.Repeat(" ", 1000)+"50000, 6667\r\n"); got != "" {
		t.Errorf("over-long line answered: %q", got)
	}
	// Exactly at the limit (the line end is byte 1000) is still a line.
	line := strings.Repeat(" ", identdMaxLine-len("50000, 6667")-1) + "50000, 6667"
	if got := identQuery(t, addr, line+"\n"); got != want {
		t.Errorf("line of 1000 bytes: %q", got)
	}

	// Bounded concurrency: with every slot held by a silent client, one
	// more is closed at once instead of waiting.
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range identdMaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	start := time.Now()
	if got := identQuery(t, addr, "50000, 6667\r\n"); got != "" {
		t.Errorf("answered beyond the bound: %q", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the connection beyond the bound waited %s", d)
	}
	// The silent clients are let go once ctx ends, and Run returns.
	cancel()
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
	for _, c := range idle {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Fatalf("a silent client was not closed: %v", err)
		}
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// TestIdentdListenFails: Run fails, naming the key, when the identd
// cannot listen.
func TestIdentdListenFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig("127.0.0.1:6667")
	cfg.IdentdListen = ln.Addr().String()
	tr, err := New(cfg, memstore.New(), nil, testLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := tr.Run(ctx); err == nil || !strings.HasPrefix(err.Error(), "irc.identd_listen: ") {
		t.Fatalf("Run = %v", err)
	}
}

// gatewayPorts returns the local ports of the established TCP connections
// to 127.0.0.1:port, read from /proc/net/tcp: the kernel's view, not the
// gateway's.
func gatewayPorts(t testing.TB, port int) []uint16 {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	defer f.Close()
	want := fmt.Sprintf("0100007F:%04X", port)
	var out []uint16
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[2] != want || fields[3] != "01" {
			continue
		}
		_, lp, _ := strings.Cut(fields[1], ":")
		p, err := strconv.ParseUint(lp, 16, 16)
		if err == nil {
			out = append(out, uint16(p))
		}
	}
	return out
}

// TestIdentdForGatewayConnections: while a user is in a room, the identd
// answers the user's hash for the ports of the user's IRC connection, as
// the kernel lists it, and NO-USER once it is closed.
func TestIdentdForGatewayConnections(t *testing.T) {
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true})
	cfg := testConfig(ng.Addr())
	cfg.IdentdListen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	h := newHarness(t, cfg)
	addr := identdAddr(t, h.tr)
	key, err := identKey(&cfg)
	if err != nil {
		t.Fatal(err)
	}

	alice := jid.MustParse("alice@localhost/pc")
	rj := h.join(alice, "#ident%local@irc.localhost/alice")
	ports := gatewayPorts(t, ng.Port())
	if len(ports) != 1 {
		t.Fatalf("connections to ngircd: %v, want the gateway's one", ports)
	}
	q := fmt.Sprintf("%d, %d\r\n", ports[0], ng.Port())
	want := fmt.Sprintf("%d, %d : USERID : UNIX : %s\r\n", ports[0], ng.Port(), identOf(key, "alice@localhost"))
	if got := identQuery(t, addr, q); got != want {
		t.Fatalf("identd answered %q, want %q", got, want)
	}

	// Another user has another ident.
	bob := jid.MustParse("bob@localhost/pc")
	h.join(bob, "#ident%local@irc.localhost/bob")
	var bobPort uint16
	for _, p := range gatewayPorts(t, ng.Port()) {
		if p != ports[0] {
			bobPort = p
		}
	}
	got := identQuery(t, addr, fmt.Sprintf("%d, %d\r\n", bobPort, ng.Port()))
	if want := identOf(key, "bob@localhost"); !strings.HasSuffix(got, " : USERID : UNIX : "+want+"\r\n") || want == identOf(key, "alice@localhost") {
		t.Fatalf("bob's ident: %q", got)
	}
	if got := identQuery(t, addr, fmt.Sprintf("%d, %d\r\n", ports[0], ng.Port()+1)); !strings.HasSuffix(got, " : ERROR : NO-USER\r\n") {
		t.Fatalf("wrong server port: %q", got)
	}

	// Leaving the last room quits; the connection is forgotten.
	h.dispatch(alice, bridge.LeaveRoom{From: alice, Room: rj.Room.Occupant("alice")})
	deadline := time.Now().Add(wait)
	for {
		got := identQuery(t, addr, q)
		if got == fmt.Sprintf("%d, %d : ERROR : NO-USER\r\n", ports[0], ng.Port()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the connection closed: %q", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := h.tr.idents.len(); n != 1 {
		t.Fatalf("%d connections recorded, want bob's", n)
	}
}

// TestIdentdNgircdLookup lets ngircd itself ask (Ident = yes, which works
// only together with DNS = yes): it asks port 113 of the client's address, so the identd listens on
// 127.0.0.1:113, and the user's IRC user name becomes the hash (without
// the "~" of an unverified one).
func TestIdentdNgircdLookup(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:113")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.1:113 (ngircd asks there): %v", err)
	}
	probe.Close()
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true, ExtraConfig: "[Options]\n\tDNS = yes\n\tIdent = yes\n"}) // ngircd asks only with DNS on
	cfg := testConfig(ng.Addr())
	cfg.IdentdListen = "127.0.0.1:113"
	h := newHarness(t, cfg)
	identdAddr(t, h.tr)
	key, _ := identKey(&cfg)

	alice := jid.MustParse("alice@localhost/pc")
	acct := "alice@localhost"
	// The user set a username: the ident is still the hash.
	if err := h.st.PutAccount(context.Background(), &store.Account{User: acct, Transport: "irc", Fields: map[string]string{keyUsername: "alison"}}); err != nil {
		t.Fatal(err)
	}
	h.join(alice, "#identd%local@irc.localhost/alice")
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Send("WHOIS alice")
	who := bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "311" }, wait)
	if want := identOf(key, acct); who.Params[2] != want {
		t.Fatalf("ngircd sees user %q, want the ident %q", who.Params[2], want)
	}
	bob.Send("WHOIS bob")
	who = bob.Expect(t, func(m *ircmsg.Message) bool { return m.Command == "311" && m.Params[1] == "bob" }, wait)
	if who.Params[2] != "~bob" {
		t.Fatalf("a client the identd does not know is %q, want ~bob", who.Params[2])
	}
}

// TestNewAfterSecretFileRead: main reads secret_file into Secret and
// passes both; New must accept that.
func TestNewAfterSecretFileRead(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("127.0.0.1:6667")
	cfg.Secret, cfg.SecretFile = "from-file", file
	cfg.IdentdListen = "127.0.0.1:1113"
	tr, err := New(cfg, memstore.New(), nil, testLog())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := identKey(&Config{ComponentConfig: bridge.ComponentConfig{Secret: "from-file"}})
	if string(tr.identKey) != string(want) {
		t.Fatal("the identd key is not derived from the secret read from the file")
	}
}
