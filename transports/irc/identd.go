package irc

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The identd (RFC 1413). With identd_listen set, the transport answers
// ident queries for the IRC connections it has open, so that a network
// sees one distinct user name per XMPP user behind the gateway's address
// (and can ban one of them without banning the gateway). The answer for a
// connection is a per-user hash: the first 10 characters of
// base32(HMAC-SHA256(key, bare JID)), lowercase, where the key is derived
// from the component secret. It is stable, reveals nothing of the JID, and
// is the same on every network. It is the hash even when the user set a
// username: the username is the user's choice, while the ident is there so
// that a network can tell the gateway's users apart; a chosen name could
// copy another user's or slip past a ban. The username still goes in USER,
// which is what servers show (with "~") when they do not ask the identd.
//
// A query is one line, "<port-on-server> , <port-on-client>": the
// gateway's local port and the IRC server's port of one connection. It is
// answered, as RFC 1413 asks, only for connections between the querying
// host and the gateway: "6193, 6667 : USERID : UNIX : k2xq7c4mzd", or
// "6193, 6667 : ERROR : NO-USER" for any other, "INVALID-PORT" when a port
// is not a number from 1 to 65535.

// identd limits.
const (
	identdMaxConns = 64               // queries served at once; more are closed unanswered
	identdTimeout  = 10 * time.Second // to read the query and write the answer
	identdMaxLine  = 1000             // bytes of a query line
	// identdGrace is how long a query for an unknown connection waits
	// for it to appear: a server may ask before the gateway recorded the
	// connection it has just opened.
	identdGrace = 500 * time.Millisecond
)

// identKeyInfo separates the identd key from other uses of the secret.
const identKeyInfo = "switchboard irc identd v1"

// identKey derives the identd's HMAC key from the component secret (read
// from secret_file when secret is empty). Changing the secret changes
// every user's ident.
func identKey(cfg *Config) ([]byte, error) {
	secret := cfg.Secret
	if secret == "" && cfg.SecretFile != "" {
		b, err := os.ReadFile(cfg.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("irc.secret_file: cannot be read for the identd key: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		return nil, errors.New("irc.identd_listen: the identd needs the component secret (secret or secret_file) to derive its key")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(identKeyInfo))
	return mac.Sum(nil), nil
}

// identOf is a user's ident: 10 lowercase base32 characters of
// HMAC-SHA256(key, bare JID).
func identOf(key []byte, bare string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(bare))
	s := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(mac.Sum(nil))
	return strings.ToLower(s[:10])
}

// identTable maps the IRC connections the gateway has open, by (local
// port, remote port), to the ident of their user. Connections add and
// remove themselves from their own goroutines; the identd reads it.
type identTable struct {
	mu sync.Mutex
	m  map[portPair][]identEntry
}

type portPair struct{ local, remote uint16 }

type identEntry struct {
	remote netip.Addr // the IRC server's address
	ident  string
	owner  *conn
}

func newIdentTable() *identTable { return &identTable{m: make(map[portPair][]identEntry)} }

// add records a connection from local to remote.
func (t *identTable) add(local, remote netip.AddrPort, ident string, owner *conn) {
	k := portPair{local.Port(), remote.Port()}
	t.mu.Lock()
	t.m[k] = append(t.m[k], identEntry{remote: remote.Addr().Unmap(), ident: ident, owner: owner})
	t.mu.Unlock()
}

// remove forgets the connection owner recorded under (local, remote).
func (t *identTable) remove(local, remote netip.AddrPort, owner *conn) {
	k := portPair{local.Port(), remote.Port()}
	t.mu.Lock()
	defer t.mu.Unlock()
	es := t.m[k]
	for i, e := range es {
		if e.owner == owner {
			es = append(es[:i], es[i+1:]...)
			break
		}
	}
	if len(es) == 0 {
		delete(t.m, k)
	} else {
		t.m[k] = es
	}
}

// lookup returns the ident of the connection from the gateway's port
// local to port remote of host from.
func (t *identTable) lookup(from netip.Addr, local, remote uint16) (string, bool) {
	from = from.Unmap()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.m[portPair{local, remote}] {
		if e.remote == from {
			return e.ident, true
		}
	}
	return "", false
}

// len is the number of connections recorded (for tests).
func (t *identTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, es := range t.m {
		n += len(es)
	}
	return n
}

// tcpAddrPort returns the address of a TCP endpoint.
func tcpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// runIdentd serves ident queries on ln until ctx is done; it returns when
// every query it started has ended.
func (t *Transport) runIdentd(ctx context.Context, ln net.Listener) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	sem := make(chan struct{}, identdMaxConns)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a moment.
			t.log.Warn("the identd could not accept a connection", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			c.Close() // too many queries at once
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t.serveIdent(ctx, c)
		}()
	}
}

// serveIdent answers the one query of a connection and closes it.
func (t *Transport) serveIdent(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetDeadline(time.Now().Add(identdTimeout))
	line, ok := readIdentQuery(c)
	if !ok {
		return
	}
	peer, _ := tcpAddrPort(c.RemoteAddr())
	answer := t.identAnswer(ctx, peer.Addr(), line)
	t.log.Debug("identd query", "from", peer.Addr().String(), "query", strconv.Quote(line), "answer", strings.TrimSpace(answer))
	if _, err := c.Write([]byte(answer)); err != nil {
		return
	}
	// Close gently: a close with unread input would reset the connection,
	// and the client could lose the answer.
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
		c.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(c, identdMaxLine))
	}
}

// readIdentQuery reads one query line: up to the first CR or LF (RFC 1413
// ends it with CR LF; a lone LF or CR is accepted too), or up to the end
// of the stream when the client half-closed after its query. A line longer
// than identdMaxLine is refused.
func readIdentQuery(c net.Conn) (string, bool) {
	buf := make([]byte, identdMaxLine)
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		if i := bytes.IndexAny(buf[n:n+m], "\r\n"); i >= 0 {
			return string(buf[:n+i]), true
		}
		n += m
		if err != nil {
			return string(buf[:n]), n > 0 && errors.Is(err, io.EOF)
		}
	}
	return "", false
}

// identAnswer is the answer line (with CR LF) to one query from host.
func (t *Transport) identAnswer(ctx context.Context, from netip.Addr, line string) string {
	a, b, _ := strings.Cut(line, ",")
	local, okL := parseIdentPort(a)
	remote, okR := parseIdentPort(b)
	if !okL || !okR {
		return fmt.Sprintf("%s, %s : ERROR : INVALID-PORT\r\n", echoPort(a), echoPort(b))
	}
	deadline := time.Now().Add(identdGrace)
	for {
		if ident, ok := t.idents.lookup(from, local, remote); ok {
			return fmt.Sprintf("%d, %d : USERID : UNIX : %s\r\n", local, remote, ident)
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("%d, %d : ERROR : NO-USER\r\n", local, remote)
		}
		select {
		case <-ctx.Done():
			return fmt.Sprintf("%d, %d : ERROR : NO-USER\r\n", local, remote)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// parseIdentPort reads one port of a query (spaces and tabs around it
// allowed).
func parseIdentPort(s string) (uint16, bool) {
	s = strings.Trim(s, " \t")
	if s == "" || len(s) > 5 {
		return 0, false
	}
	if strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, false
	}
	return uint16(p), true
}

// echoPort is a port of a bad query as the answer repeats it: the number
// when it is one, 0 otherwise (nothing else of the query is echoed).
func echoPort(s string) string {
	s = strings.Trim(s, " \t")
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return "0"
	}
	v, _ := strconv.Atoi(s)
	return strconv.Itoa(v)
}
