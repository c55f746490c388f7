package irc

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// blockedPoster takes the first event (connUp) and then has no room: the
// user's goroutine is stuck (e.g. waiting for a full XMPP queue).
type blockedPoster struct {
	release chan struct{}
}

func (p *blockedPoster) Post(any) bool { return true }

func (p *blockedPoster) PostOr(_ any, interval time.Duration, waiting func()) bool {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.release:
			return false
		case <-t.C:
			waiting()
		}
	}
}

// TestKeepaliveWhileBlocked: a connection whose user's goroutine cannot
// take the lines it reads (so it cannot read the server's PING behind
// them) sends PINGs of its own, so that the server sees it alive; without
// them ngircd drops it ("Ping timeout") during a long join storm.
func TestKeepaliveWhileBlocked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := &blockedPoster{release: make(chan struct{})}
	c := newConn(dialSpec{addr: ln.Addr().String()}, p, testLog(), nil, 0, 10)
	c.keepaliveEvery = 50 * time.Millisecond
	c.start()
	defer func() { close(p.release); c.close() }()

	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// A line the user's goroutine will never take, then the server's PING.
	if _, err := sc.Write([]byte(":srv NOTICE * :hello\r\nPING :srv\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(sc)
	pings := 0
	for pings < 3 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d keepalive PINGs: %v", pings, err)
		}
		switch {
		case strings.HasPrefix(line, "PING switchboard"):
			pings++
		case strings.HasPrefix(line, "PONG"):
			t.Fatalf("the server's PING was answered although the reader is blocked before it: %q", line)
		}
	}
}
