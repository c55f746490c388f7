package attachments

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"syscall"
	"time"
)

// ErrPrivateAddress is returned (wrapped) when a URL leads to an address
// that Fetch may not reach.
var ErrPrivateAddress = errors.New("attachments: the address is on a private network")

// Fetched is a downloaded file.
type Fetched struct {
	Data []byte
	Type string // the server's Content-Type, or sniffed
	Name string // from Content-Disposition or the URL's last path segment
}

// fetchTimeout bounds one download.
const fetchTimeout = 2 * time.Minute

// Fetch downloads an http or https URL, at most maxBytes (no cap when
// ≤ 0). Unless allowPrivate, it refuses to connect to loopback, private,
// link-local, multicast and unspecified addresses: the check runs on the
// address actually dialled, so neither a redirect nor a DNS answer can get
// around it. client may be nil (a default client); a non-nil client is
// used as it is when allowPrivate, and otherwise only for its redirect
// policy and timeout (its transport is replaced by the guarded one).
func Fetch(ctx context.Context, client *http.Client, rawURL string, maxBytes int64, allowPrivate bool) (Fetched, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Fetched{}, fmt.Errorf("attachments: %q is not an http or https URL", short(rawURL))
	}
	c := guardedClient(client, allowPrivate)
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Fetched{}, fmt.Errorf("attachments: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, ErrPrivateAddress) {
			return Fetched{}, fmt.Errorf("attachments: fetching %s: %w", u.Redacted(), ErrPrivateAddress)
		}
		return Fetched{}, fmt.Errorf("attachments: fetching %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Fetched{}, fmt.Errorf("attachments: fetching %s: the server answered %s", u.Redacted(), resp.Status)
	}
	if maxBytes > 0 && resp.ContentLength > maxBytes {
		return Fetched{}, fmt.Errorf("attachments: %s is %d bytes: %w (at most %d)", u.Redacted(), resp.ContentLength, ErrTooLarge, maxBytes)
	}
	body := io.Reader(resp.Body)
	if maxBytes > 0 {
		body = io.LimitReader(body, maxBytes+1)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return Fetched{}, fmt.Errorf("attachments: reading %s: %w", u.Redacted(), err)
	}
	if maxBytes > 0 && int64(len(data)) > maxBytes {
		return Fetched{}, fmt.Errorf("attachments: %s: %w (at most %d bytes)", u.Redacted(), ErrTooLarge, maxBytes)
	}
	f := Fetched{Data: data, Type: resp.Header.Get("Content-Type")}
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		f.Name = params["filename"]
	} else if b := path.Base(resp.Request.URL.Path); b != "/" && b != "." {
		f.Name = b
	}
	f.Name = cleanName(f.Name)
	if _, _, err := mime.ParseMediaType(f.Type); err != nil || f.Type == "" {
		f.Type = http.DetectContentType(data)
	}
	return f, nil
}

// guardedClient returns the client Fetch uses.
func guardedClient(c *http.Client, allowPrivate bool) *http.Client {
	if c != nil && allowPrivate {
		return c
	}
	out := &http.Client{}
	if c != nil {
		out.CheckRedirect, out.Timeout, out.Jar = c.CheckRedirect, c.Timeout, c.Jar
	}
	d := &net.Dialer{Timeout: 30 * time.Second}
	if !allowPrivate {
		d.Control = refusePrivate
	}
	out.Transport = &http.Transport{
		Proxy:                 nil, // a proxy would hide the address dialled
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
	}
	return out
}

// refusePrivate is a net.Dialer Control that refuses addresses outside
// the public internet.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, address)
	}
	if !PublicAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, ap.Addr())
	}
	return nil
}

// PublicAddr reports whether a is a public unicast address.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// nonPublic are special-purpose ranges that netip's predicates miss.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// short quotes at most 80 bytes of s in an error.
func short(s string) string {
	if len(s) > 80 {
		return strings.ToValidUTF8(s[:80], "") + "…"
	}
	return s
}
