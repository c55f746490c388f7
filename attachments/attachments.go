// Package attachments is the gateway's file service, shared by the
// transports that carry files (mail parts, MMS media): it stores a file
// once, durably, and serves it on the [http] listener under an
// unguessable URL that expires; the transport then sends that URL to the
// XMPP user as XEP-0066 out-of-band data. Fetch is the other direction: it
// downloads what an XMPP client uploaded (XEP-0363 URLs in a message) with
// a size cap, refusing private addresses.
//
// Each file is a directory <dir>/<token>/ holding "data" and "meta.json",
// written into <dir>/.tmp first, fsynced and renamed into place, so that a
// crash never leaves a served file half written. The token (32 random
// bytes, base64url) is the only secret: whoever has the URL may fetch the
// file until it expires.
package attachments

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// ErrTooLarge is returned (wrapped) when a file is over the size cap.
var ErrTooLarge = errors.New("attachments: the file is larger than allowed")

// DefaultTTL is how long files are kept when the config says nothing.
const DefaultTTL = 30 * 24 * time.Hour

// pruneEvery is how often Run removes expired files.
const pruneEvery = time.Hour

// File is a stored file as a transport tells the user about it.
type File struct {
	URL     string
	Name    string
	Type    string
	Size    int64
	Expires time.Time
}

// meta is meta.json.
type meta struct {
	Name    string    `json:"name"`
	Type    string    `json:"type"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Service stores and serves files. It is safe for concurrent use.
type Service struct {
	dir       string
	publicURL string
	ttl       time.Duration
	log       *slog.Logger
	now       func() time.Time
}

// New returns a service keeping files under dir (created 0700 when
// missing) for ttl (DefaultTTL when ≤ 0), with URLs under
// publicURL+"/files/". log may be nil.
func New(dir, publicURL string, ttl time.Duration, log *slog.Logger) (*Service, error) {
	if dir == "" {
		return nil, errors.New("attachments: no directory given")
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("attachments: creating %s: %w", dir, err)
	}
	return &Service{dir: dir, publicURL: strings.TrimRight(publicURL, "/"), ttl: ttl, log: log, now: time.Now}, nil
}

// TTL is how long a stored file is served.
func (s *Service) TTL() time.Duration { return s.ttl }

// Put stores at most maxBytes of r (no cap when maxBytes ≤ 0) under a new
// token and returns its public description. name is cleaned to a base
// name ("file" when empty); contentType is the MIME type
// ("application/octet-stream" when empty or invalid). The file is on disk
// (fsynced) when Put returns; on error nothing is kept.
func (s *Service) Put(ctx context.Context, name, contentType string, r io.Reader, maxBytes int64) (File, error) {
	name = cleanName(name)
	contentType = cleanType(contentType)
	token, err := newToken()
	if err != nil {
		return File{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, ".tmp"), "put-")
	if err != nil {
		return File{}, fmt.Errorf("attachments: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			_ = os.RemoveAll(tmp)
		}
	}()
	f, err := os.OpenFile(filepath.Join(tmp, "data"), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return File{}, fmt.Errorf("attachments: %w", err)
	}
	src := io.Reader(ctxReader{ctx, r})
	if maxBytes > 0 {
		src = io.LimitReader(src, maxBytes+1)
	}
	n, err := io.Copy(f, src)
	if err == nil && maxBytes > 0 && n > maxBytes {
		err = fmt.Errorf("%w (more than %d bytes)", ErrTooLarge, maxBytes)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return File{}, fmt.Errorf("attachments: storing %q: %w", name, err)
	}
	now := s.now().UTC()
	m := meta{Name: name, Type: contentType, Size: n, Created: now, Expires: now.Add(s.ttl)}
	if err := writeSynced(filepath.Join(tmp, "meta.json"), m); err != nil {
		return File{}, err
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, token)); err != nil {
		return File{}, fmt.Errorf("attachments: %w", err)
	}
	keep = true
	syncDir(s.dir)
	return File{URL: s.url(token, name), Name: name, Type: contentType, Size: n, Expires: m.Expires}, nil
}

// url is the public URL of a file.
func (s *Service) url(token, name string) string {
	return s.publicURL + "/files/" + token + "/" + url.PathEscape(name)
}

// HTTPHandler serves GET and HEAD /files/<token>/<name>; main mounts it.
// An unknown token is 404, an expired one 410. Files are served with
// their type, nosniff and a sandboxing CSP, and as attachments unless
// they are images, audio, video or plain text, so that an HTML mail part
// never runs as a page of the gateway's origin.
func (s *Service) HTTPHandler() (prefix string, h http.Handler) {
	return "/files/", http.HandlerFunc(s.serve)
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/files/")
	token, _, _ := strings.Cut(rest, "/")
	if !validToken(token) {
		http.NotFound(w, r)
		return
	}
	dir := filepath.Join(s.dir, token)
	m, err := readMeta(filepath.Join(dir, "meta.json"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if !s.now().Before(m.Expires) {
		http.Error(w, "this file has expired", http.StatusGone)
		return
	}
	f, err := os.Open(filepath.Join(dir, "data"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", m.Type)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, max-age=86400")
	disp := "attachment"
	if inlineType(m.Type) {
		disp = "inline"
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": m.Name}))
	http.ServeContent(w, r, "", m.Created, f)
}

// Run removes expired files (and leftovers of interrupted Puts) at start
// and then hourly, until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		if n := s.Prune(); n > 0 {
			s.log.Info("removed expired attachments", "files", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Prune removes expired files now and returns how many went.
func (s *Service) Prune() int {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.log.Warn("listing the attachment directory failed", "dir", s.dir, "err", err)
		return 0
	}
	now := s.now()
	n := 0
	for _, e := range entries {
		if !e.IsDir() || !validToken(e.Name()) {
			continue
		}
		dir := filepath.Join(s.dir, e.Name())
		m, err := readMeta(filepath.Join(dir, "meta.json"))
		if err == nil && now.Before(m.Expires) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			s.log.Warn("removing an expired attachment failed", "dir", dir, "err", err)
			continue
		}
		n++
	}
	if tmp, err := os.ReadDir(filepath.Join(s.dir, ".tmp")); err == nil {
		for _, e := range tmp {
			if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > time.Hour {
				_ = os.RemoveAll(filepath.Join(s.dir, ".tmp", e.Name()))
			}
		}
	}
	return n
}

// ---------------------------------------------------------------- helpers

const tokenLen = 43 // base64url of 32 bytes, unpadded

func newToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("attachments: no randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func validToken(t string) bool {
	if len(t) != tokenLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// cleanName makes a file name safe to show and to put in a URL and a
// Content-Disposition: a base name without control characters, at most
// 200 bytes (cut on a rune boundary).
func cleanName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, path.Base(strings.ReplaceAll(name, "\\", "/")))
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == ".." {
		name = "file"
	}
	for len(name) > 200 {
		_, size := lastRune(name)
		name = name[:len(name)-size]
	}
	return name
}

func lastRune(s string) (rune, int) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i]&0xc0 != 0x80 {
			return rune(s[i]), len(s) - i
		}
	}
	return 0, 1
}

func cleanType(t string) string {
	mt, params, err := mime.ParseMediaType(t)
	if err != nil || !strings.Contains(mt, "/") {
		return "application/octet-stream"
	}
	if cs, ok := params["charset"]; ok && strings.HasPrefix(mt, "text/") {
		return mime.FormatMediaType(mt, map[string]string{"charset": cs})
	}
	return mt
}

func inlineType(t string) bool {
	mt, _, _ := mime.ParseMediaType(t)
	switch {
	case mt == "image/svg+xml":
		return false // SVG may carry script
	case strings.HasPrefix(mt, "image/"), strings.HasPrefix(mt, "audio/"), strings.HasPrefix(mt, "video/"), mt == "text/plain":
		return true
	}
	return false
}

func readMeta(p string) (meta, error) {
	var m meta
	b, err := os.ReadFile(p)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("attachments: %s: %w", p, err)
	}
	return m, nil
}

func writeSynced(p string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("attachments: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("attachments: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("attachments: writing %s: %w", p, err)
	}
	return nil
}

// syncDir makes a rename in dir durable (best effort: some filesystems
// refuse fsync on a directory).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
