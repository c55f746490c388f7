package attachments

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newService(t *testing.T) (*Service, *httptest.Server) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s, err := New(t.TempDir(), srv.URL+"/", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	prefix, h := s.HTTPHandler()
	mux.Handle(prefix, h)
	return s, srv
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestPutServeExpire(t *testing.T) {
	s, srv := newService(t)
	ctx := context.Background()
	f, err := s.Put(ctx, "../../etc/photo é.jpg", "image/jpeg", strings.NewReader("JPEGDATA"), 100)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "photo é.jpg" || f.Size != 8 || f.Type != "image/jpeg" {
		t.Fatalf("file %+v", f)
	}
	if !strings.HasPrefix(f.URL, srv.URL+"/files/") || !strings.HasSuffix(f.URL, "/photo%20%C3%A9.jpg") {
		t.Fatalf("url %s", f.URL)
	}
	resp, body := get(t, f.URL)
	if resp.StatusCode != 200 || string(body) != "JPEGDATA" {
		t.Fatalf("GET: %s %q", resp.Status, body)
	}
	if resp.Header.Get("Content-Type") != "image/jpeg" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "inline") ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers %v", resp.Header)
	}

	// HTML is never served inline from the gateway's origin.
	h, err := s.Put(ctx, "x.html", "text/html; charset=utf-8", strings.NewReader("<script>alert(1)</script>"), 0)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ = get(t, h.URL)
	if !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("html headers %v", resp.Header)
	}

	// A guessed or malformed token is 404.
	for _, p := range []string{"/files/x/y", "/files/" + strings.Repeat("A", 43) + "/y", "/files/../../etc/passwd"} {
		if resp, _ := get(t, srv.URL+p); resp.StatusCode != 404 {
			t.Errorf("%s: %s", p, resp.Status)
		}
	}

	// Expired: 410, then pruned.
	s.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if resp, _ := get(t, f.URL); resp.StatusCode != http.StatusGone {
		t.Fatalf("expired: %s", resp.Status)
	}
	if n := s.Prune(); n != 2 {
		t.Fatalf("pruned %d, want 2", n)
	}
	if resp, _ := get(t, f.URL); resp.StatusCode != 404 {
		t.Fatalf("after prune: %s", resp.Status)
	}
}

func TestPutTooLargeKeepsNothing(t *testing.T) {
	s, _ := newService(t)
	_, err := s.Put(context.Background(), "big", "", bytes.NewReader(make([]byte, 101)), 100)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	entries, _ := os.ReadDir(s.dir)
	tmp, _ := os.ReadDir(filepath.Join(s.dir, ".tmp"))
	if len(entries) != 1 || len(tmp) != 0 {
		t.Fatalf("left behind: %v %v", entries, tmp)
	}
	// Exactly the cap is fine, and a bad type becomes octet-stream.
	f, err := s.Put(context.Background(), "", "not a type", bytes.NewReader(make([]byte, 100)), 100)
	if err != nil || f.Size != 100 || f.Type != "application/octet-stream" || f.Name != "file" {
		t.Fatalf("%+v %v", f, err)
	}
}

func TestFetch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/up/cat.png":
			w.Header().Set("Content-Type", "image/png")
			w.Write([]byte("PNG"))
		case "/big":
			w.Write(make([]byte, 2000))
		case "/redirect":
			http.Redirect(w, r, "/up/cat.png", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	// The test server is on loopback: refused unless allowed.
	if _, err := Fetch(ctx, nil, srv.URL+"/up/cat.png", 100, false); !errors.Is(err, ErrPrivateAddress) {
		t.Fatalf("loopback fetch: got %v, want ErrPrivateAddress", err)
	}
	f, err := Fetch(ctx, nil, srv.URL+"/redirect", 100, true)
	if err != nil || string(f.Data) != "PNG" || f.Type != "image/png" || f.Name != "cat.png" {
		t.Fatalf("fetch: %+v %v", f, err)
	}
	if _, err := Fetch(ctx, nil, srv.URL+"/big", 1000, true); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("big: %v", err)
	}
	if _, err := Fetch(ctx, nil, srv.URL+"/missing", 1000, true); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing: %v", err)
	}
	for _, u := range []string{"file:///etc/passwd", "gopher://x", "http://", "::"} {
		if _, err := Fetch(ctx, nil, u, 10, true); err == nil {
			t.Errorf("%s was fetched", u)
		}
	}
}

func TestPublicAddr(t *testing.T) {
	for _, c := range []struct {
		a    string
		want bool
	}{
		{"8.8.8.8", true}, {"2a00:1450::1", true},
		{"127.0.0.1", false}, {"10.1.2.3", false}, {"192.168.1.1", false}, {"172.16.0.1", false},
		{"169.254.169.254", false}, {"100.64.0.1", false}, {"0.0.0.0", false}, {"::1", false},
		{"fe80::1", false}, {"fc00::1", false}, {"::ffff:127.0.0.1", false}, {"224.0.0.1", false},
	} {
		if got := PublicAddr(netip.MustParseAddr(c.a)); got != c.want {
			t.Errorf("PublicAddr(%s) = %v", c.a, got)
		}
	}
}

func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"a.txt", "../x", "", "\x00\r\n", "é/ü", strings.Repeat("ä", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := cleanName(s)
		if n == "" || strings.ContainsAny(n, "/\\\r\n\x00") || len(n) > 200 {
			t.Fatalf("cleanName(%q) = %q", s, n)
		}
	})
}
