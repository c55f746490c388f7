package testbed

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircmsg"
)

// IRCOptions configures DialIRCOpts.
type IRCOptions struct {
	// Nick is required.
	Nick string
	// User is the USER name; default Nick.
	User string
	// RealName defaults to "Switchboard test client".
	RealName string
	// Password is sent with PASS before registering.
	Password string
	// Caps are requested with CAP REQ after CAP LS 302; registration fails
	// unless the server ACKs all of them.
	Caps []string
	// CapLS negotiates CAP (LS 302, then END) even when Caps is empty, to
	// fill AvailableCaps.
	CapLS bool
	// Timeout bounds the connection and registration; default 10 s.
	Timeout time.Duration
	// OnMessage, if set, sees every message (on the reading goroutine, so
	// keep it short); returning true consumes it, so Expect never sees it.
	// For load tests that count traffic instead of buffering it.
	OnMessage func(*ircmsg.Message) bool
}

// IRCClient is a raw IRC client for tests: it registers, answers PING, and
// buffers every received line until a test takes it with Expect or
// ExpectLine. Messages are taken out of order: Expect returns the oldest
// buffered message that matches and leaves the others for later calls.
type IRCClient struct {
	// Nick is the nickname the client registered with.
	Nick string
	// AvailableCaps is the server's CAP LS (name → value), when CAP was
	// negotiated.
	AvailableCaps map[string]string
	// EnabledCaps holds the capabilities the server ACKed.
	EnabledCaps map[string]bool
	// ISupport holds the 005 tokens (name → value, "" for flags).
	ISupport map[string]string

	tb        testing.TB
	conn      net.Conn
	onMessage func(*ircmsg.Message) bool

	wmu sync.Mutex

	buf *expectBuffer[ircEntry]

	done      chan struct{}
	closeOnce sync.Once
}

type ircEntry struct {
	line string
	msg  *ircmsg.Message // nil when the line does not parse
}

// ircHistory is how many received lines a client keeps for failure messages.
const ircHistory = 2000

// DialIRC connects to addr and registers as nick (NICK/USER, waits for the
// end of the MOTD). The connection is closed in tb.Cleanup.
func DialIRC(tb testing.TB, addr, nick string) *IRCClient {
	tb.Helper()
	return DialIRCOpts(tb, addr, IRCOptions{Nick: nick})
}

// DialIRCOpts is DialIRC with options: a server password, CAP negotiation.
// Registration numerics up to the end of the MOTD are consumed (they stay
// in Lines); ISUPPORT is parsed into ISupport.
func DialIRCOpts(tb testing.TB, addr string, opts IRCOptions) *IRCClient {
	tb.Helper()
	if opts.Nick == "" {
		tb.Fatal("DialIRCOpts: no nick")
	}
	if opts.User == "" {
		opts.User = opts.Nick
	}
	if opts.RealName == "" {
		opts.RealName = "Switchboard test client"
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	conn, err := net.DialTimeout("tcp", addr, opts.Timeout)
	if err != nil {
		tb.Fatalf("irc %s: connecting to %s: %v", opts.Nick, addr, err)
	}
	c := &IRCClient{
		Nick:          opts.Nick,
		AvailableCaps: map[string]string{},
		EnabledCaps:   map[string]bool{},
		ISupport:      map[string]string{},
		tb:            tb,
		conn:          conn,
		onMessage:     opts.OnMessage,
		buf:           newExpectBuffer[ircEntry](ircHistory),
		done:          make(chan struct{}),
	}
	go c.readLoop()
	tb.Cleanup(c.Close)
	if err := c.register(opts); err != nil {
		tb.Fatalf("irc %s: registering on %s: %v\n%s", opts.Nick, addr, err, c.recent(30))
	}
	return c
}

func (c *IRCClient) register(opts IRCOptions) error {
	deadline := time.Now().Add(opts.Timeout)
	left := func() time.Duration { return time.Until(deadline) }
	negotiate := opts.CapLS || len(opts.Caps) > 0
	if negotiate {
		if err := c.write("CAP LS 302"); err != nil {
			return err
		}
	}
	if opts.Password != "" {
		if err := c.write("PASS " + opts.Password); err != nil {
			return err
		}
	}
	if err := c.write("NICK " + opts.Nick); err != nil {
		return err
	}
	if err := c.write(fmt.Sprintf("USER %s 0 * :%s", opts.User, opts.RealName)); err != nil {
		return err
	}
	fatal := func(m *ircmsg.Message) error {
		switch m.Command {
		case "ERROR", "432", "433", "436", "464", "465":
			return fmt.Errorf("server refused registration: %s %s", m.Command, strings.Join(m.Params, " "))
		}
		return nil
	}
	if negotiate {
		// CAP LS 302 replies may span lines: "CAP * LS * :a b" ... "CAP * LS :c".
		for {
			e, err := c.take(func(e ircEntry) bool {
				return e.msg != nil && (isCap(e.msg, "LS") || fatal(e.msg) != nil || e.msg.Command == "001")
			}, left())
			if err != nil {
				return fmt.Errorf("waiting for CAP LS: %w", err)
			}
			if err := fatal(e.msg); err != nil {
				return err
			}
			if e.msg.Command == "001" {
				return errors.New("the server registered the client without answering CAP LS")
			}
			p := e.msg.Params
			for _, tok := range strings.Fields(p[len(p)-1]) {
				name, value, _ := strings.Cut(tok, "=")
				c.AvailableCaps[name] = value
			}
			if len(p) < 4 || p[2] != "*" {
				break
			}
		}
		if len(opts.Caps) > 0 {
			if err := c.write("CAP REQ :" + strings.Join(opts.Caps, " ")); err != nil {
				return err
			}
			e, err := c.take(func(e ircEntry) bool {
				return e.msg != nil && (isCap(e.msg, "ACK") || isCap(e.msg, "NAK"))
			}, left())
			if err != nil {
				return fmt.Errorf("waiting for CAP ACK: %w", err)
			}
			if isCap(e.msg, "NAK") {
				return fmt.Errorf("server refused CAP REQ %v: %s", opts.Caps, e.line)
			}
			for _, name := range strings.Fields(e.msg.Params[len(e.msg.Params)-1]) {
				c.EnabledCaps[strings.TrimPrefix(name, "-")] = !strings.HasPrefix(name, "-")
			}
		}
		if err := c.write("CAP END"); err != nil {
			return err
		}
	}
	// Wait for 001, then collect ISUPPORT until the end of the MOTD.
	registered := false
	for {
		e, err := c.take(func(e ircEntry) bool {
			if e.msg == nil {
				return false
			}
			switch e.msg.Command {
			case "001", "005", "376", "422":
				return true
			}
			return fatal(e.msg) != nil
		}, left())
		if err != nil {
			if registered {
				return fmt.Errorf("waiting for the end of the MOTD: %w", err)
			}
			return fmt.Errorf("waiting for 001: %w", err)
		}
		if err := fatal(e.msg); err != nil {
			return err
		}
		switch e.msg.Command {
		case "001":
			registered = true
			if len(e.msg.Params) > 0 {
				c.Nick = e.msg.Params[0]
			}
		case "005":
			p := e.msg.Params
			if len(p) > 2 {
				for _, tok := range p[1 : len(p)-1] {
					name, value, _ := strings.Cut(tok, "=")
					c.ISupport[name] = value
				}
			}
		case "376", "422":
			// Drop the rest of the welcome burst (251…375, 372): it stays
			// in Lines.
			c.buf.drop(func(p ircEntry) bool { return p.msg != nil && isNumeric(p.msg.Command) })
			return nil
		}
	}
}

func isNumeric(cmd string) bool {
	if len(cmd) != 3 {
		return false
	}
	for _, r := range cmd {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// isCap reports whether m is "CAP <target> <sub> ...".
func isCap(m *ircmsg.Message, sub string) bool {
	return m.Command == "CAP" && len(m.Params) >= 3 && strings.EqualFold(m.Params[1], sub)
}

func (c *IRCClient) readLoop() {
	defer close(c.done)
	r := bufio.NewReaderSize(c.conn, 16384)
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			c.received(line)
		}
		if err != nil {
			c.buf.end(err)
			return
		}
	}
}

func (c *IRCClient) received(line string) {
	e := ircEntry{line: line}
	if m, err := ircmsg.ParseLine(line); err == nil {
		e.msg = &m
	}
	if e.msg != nil && e.msg.Command == "PING" {
		arg := ""
		if len(e.msg.Params) > 0 {
			arg = e.msg.Params[len(e.msg.Params)-1]
		}
		_ = c.write("PONG :" + arg)
	}
	consumed := e.msg != nil && (e.msg.Command == "PING" || (c.onMessage != nil && c.onMessage(e.msg)))
	c.buf.add(e, line, consumed)
}

// take removes and returns the oldest pending entry matching pred, waiting
// up to timeout for one to arrive.
func (c *IRCClient) take(pred func(ircEntry) bool, timeout time.Duration) (ircEntry, error) {
	return c.buf.take(pred, timeout)
}

// write sends one line plus CRLF.
func (c *IRCClient) write(line string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return fmt.Errorf("sending %q: %w", line, err)
	}
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		return fmt.Errorf("sending %q: %w", line, err)
	}
	return nil
}

// Send writes line followed by CRLF, as is: no checks, so a test can send
// anything (a CR or LF inside the line starts another command).
func (c *IRCClient) Send(line string) {
	c.tb.Helper()
	if err := c.write(line); err != nil {
		c.tb.Fatalf("irc %s: %v", c.Nick, err)
	}
}

// Sendf is Send with fmt.Sprintf.
func (c *IRCClient) Sendf(format string, args ...any) {
	c.tb.Helper()
	c.Send(fmt.Sprintf(format, args...))
}

// Privmsg sends PRIVMSG target :text.
func (c *IRCClient) Privmsg(target, text string) {
	c.tb.Helper()
	c.Send("PRIVMSG " + target + " :" + text)
}

// Join joins channel and waits (10 s) for the end of its NAMES list (366);
// an error numeric for the channel fails the test. The JOIN echo and the
// 366 are consumed; the topic and NAMES replies stay buffered.
func (c *IRCClient) Join(channel string) {
	c.tb.Helper()
	c.Send("JOIN " + channel)
	e, err := c.take(func(e ircEntry) bool {
		m := e.msg
		if m == nil || len(m.Params) < 2 || !strings.EqualFold(m.Params[1], channel) {
			return false
		}
		switch m.Command {
		case "366", "403", "405", "471", "473", "474", "475", "476", "477":
			return true
		}
		return false
	}, 10*time.Second)
	if err != nil {
		c.tb.Fatalf("irc %s: joining %s: %v\n%s", c.Nick, channel, err, c.recent(20))
	}
	if e.msg.Command != "366" {
		c.tb.Fatalf("irc %s: joining %s: %s", c.Nick, channel, e.line)
	}
	_, _ = c.take(func(e ircEntry) bool {
		return e.msg != nil && e.msg.Command == "JOIN" && e.msg.Nick() == c.Nick &&
			len(e.msg.Params) > 0 && strings.EqualFold(e.msg.Params[0], channel)
	}, 0)
}

// Expect returns the oldest buffered message matching pred, waiting up to
// timeout for one to arrive, and removes it from the buffer. It fails the
// test (tb) on timeout or when the connection closes.
func (c *IRCClient) Expect(tb testing.TB, pred func(*ircmsg.Message) bool, timeout time.Duration) *ircmsg.Message {
	tb.Helper()
	e, err := c.take(func(e ircEntry) bool { return e.msg != nil && pred(e.msg) }, timeout)
	if err != nil {
		tb.Fatalf("irc %s: expected message not received: %v\n%s", c.Nick, err, c.recent(20))
	}
	return e.msg
}

// ExpectLine is Expect for the oldest buffered raw line (tags and prefix
// included, CRLF stripped) that matches the regular expression pattern. It
// returns the submatches: m[0] is the matched text, m[1:] the groups.
func (c *IRCClient) ExpectLine(tb testing.TB, pattern string, timeout time.Duration) []string {
	tb.Helper()
	re, err := regexp.Compile(pattern)
	if err != nil {
		tb.Fatalf("irc %s: bad pattern %q: %v", c.Nick, pattern, err)
	}
	e, err := c.take(func(e ircEntry) bool { return re.MatchString(e.line) }, timeout)
	if err != nil {
		tb.Fatalf("irc %s: expected a line matching %q: %v\n%s", c.Nick, pattern, err, c.recent(20))
	}
	return re.FindStringSubmatch(e.line)
}

// ExpectNone fails the test if a message matching pred is buffered or
// arrives within d (to check that something does not happen, such as a
// duplicate). It consumes nothing.
func (c *IRCClient) ExpectNone(tb testing.TB, pred func(*ircmsg.Message) bool, d time.Duration) {
	tb.Helper()
	if e, ok := c.buf.find(func(e ircEntry) bool { return e.msg != nil && pred(e.msg) }, d); ok {
		tb.Fatalf("irc %s: unexpected message: %s", c.Nick, e.line)
	}
}

// Lines returns every line received so far (the most recent ones when
// there were very many), including those already taken.
func (c *IRCClient) Lines() []string { return c.buf.all() }

// recent formats the last n received lines for a failure message.
func (c *IRCClient) recent(n int) string { return c.buf.recent(n, "lines", c.Nick) }

// Quit sends QUIT, waits (up to 5 s) for the server to close the
// connection, and closes it.
func (c *IRCClient) Quit(reason string) {
	if c.write("QUIT :"+reason) == nil {
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
	}
	c.Close()
}

// Close closes the connection and waits for the reading goroutine. It is
// safe to call more than once.
func (c *IRCClient) Close() {
	c.closeOnce.Do(func() {
		_ = c.conn.Close()
		<-c.done
	})
}
