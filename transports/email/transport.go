// Package email is the email transport: gateway-hosted addresses (an SMTP
// or LMTP listener for inbound mail, a smarthost for outbound) and
// bring-your-own mailboxes (IMAP IDLE in, the user's submission server
// out, a copy appended to their \Sent folder). See doc/email.md.
package email

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"mellium.im/xmpp/jid"

	"switchboard/attachments"
	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

// Queue transports: outbound mail is queued under "email" (so that
// deleting an account drops its queue), accepted inbound mail under
// "email-in" until the XMPP server has it.
const (
	queueOut = "email"
	queueIn  = "email-in"
)

// Transport is the email transport. It implements bridge.Transport.
type Transport struct {
	cfg     Config
	gw      *bridge.Gateway
	codec   *mapping.EmailCodec
	st      store.Store
	log     *slog.Logger
	metrics *bridge.Metrics

	msgsIn, msgsOut prometheus.Counter

	wakeOut chan struct{}
	wakeIn  chan struct{}

	// hosted addresses: local part → bare JID, reloaded from the store.
	addrMu   sync.Mutex
	addrs    map[string]string
	blocked  map[string]string // bare JID → its blocked senders ("\n"-separated), hosted users
	addrsAt  time.Time
	addrLock sync.Mutex // serialises registrations that claim addresses

	// blockCache holds users' XEP-0191 block lists (blocklist.go).
	blockCache blockCache

	ipMu  sync.Mutex
	perIP map[string]int

	imap *watchers

	// spool holds accepted inbound mail when spool_dir is set (else the
	// store's queue does); spoolRetry is the delivery worker's backoff.
	spool      *spool
	spoolRetry map[spoolKey]spoolRetry

	files        *attachments.Service // nil: attachments are named, not stored
	allowPrivate bool                 // attachments.Fetch may reach private addresses

	// now is time.Now (tests replace it).
	now func() time.Time
	// resolver answers the DNS questions of SPF, DKIM and DMARC (nil:
	// net.DefaultResolver; tests answer from a map).
	resolver dnsResolver
	// listenAddr is where the SMTP listener listens once Run started it.
	listenMu   sync.Mutex
	listenAddr string
}

var (
	_ bridge.Transport   = (*Transport)(nil)
	_ bridge.Multicaster = (*Transport)(nil)
)

// Multicast is true: a XEP-0033 message to the gateway domain with
// several addresses becomes one mail to all of them (group.go).
func (t *Transport) Multicast() bool { return true }

// Plugin is the email transport's entry in main's list of transports.
var Plugin = bridge.Plugin{
	Name:      "email",
	NewConfig: func() bridge.TransportConfig { return new(Config) },
	New: func(c bridge.TransportConfig, env bridge.Env) (bridge.Transport, error) {
		t, err := New(*c.(*Config), env.Store, env.Metrics, env.Log)
		if err != nil {
			return nil, err
		}
		t.gw = env.Gateway
		t.files, t.allowPrivate = env.Attachments, env.AllowPrivateFetch
		return t, nil
	},
}

// New builds the transport from its section.
func New(cfg Config, st store.Store, metrics *bridge.Metrics, log *slog.Logger) (*Transport, error) {
	if cfg.Secret != "" && cfg.SecretFile != "" {
		cfg.SecretFile = ""
	}
	cfg.SetDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("the [email] configuration is invalid: %w", errors.Join(errs...))
	}
	if log == nil {
		log = slog.Default()
	}
	if metrics == nil {
		metrics = bridge.NewMetrics(nil)
	}
	t := &Transport{
		cfg:     cfg,
		codec:   mapping.NewEmailCodec(cfg.Domain),
		st:      st,
		log:     log.With("transport", "email"),
		metrics: metrics,
		msgsIn:  metrics.Messages.WithLabelValues("email", "to-xmpp"),
		msgsOut: metrics.Messages.WithLabelValues("email", "to-remote"),
		wakeOut: make(chan struct{}, 1),
		wakeIn:  make(chan struct{}, 1),
		perIP:   map[string]int{},
		now:     time.Now,
	}
	t.imap = newWatchers(t)
	t.spoolRetry = map[spoolKey]spoolRetry{}
	if cfg.SpoolDir != "" {
		sp, err := openSpool(cfg.SpoolDir)
		if err != nil {
			return nil, err
		}
		t.spool = sp
	}
	return t, nil
}

// Name returns "email".
func (t *Transport) Name() string { return "email" }

// Codec returns the email codec of the component domain.
func (t *Transport) Codec() mapping.Codec { return t.codec }

// Identity is the XEP-0030 identity of the gateway domain.
func (t *Transport) Identity() (category, typ, name string) {
	return "gateway", "smtp", "Email gateway"
}

// RegistrationRequired is true: a user needs an address (hosted) or a
// mailbox (bring-your-own) before mail can flow.
func (t *Transport) RegistrationRequired() bool { return true }

// NewSession starts a user's state (called on the user's goroutine).
func (t *Transport) NewSession(u *bridge.User) bridge.Session {
	return &session{t: t, u: u}
}

// Run serves the SMTP listener (hosted domain), the inbound delivery and
// outbound queues, and one IMAP watcher per bring-your-own account, until
// ctx is done.
func (t *Transport) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	if t.cfg.HostedDomain != "" {
		srv, ln, err := t.listen(ctx)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
				select {
				case errc <- fmt.Errorf("email.listen: the SMTP listener stopped: %w", err):
				default:
				}
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
		}()
	}
	if t.spool != nil {
		wg.Add(1)
		go func() { defer wg.Done(); t.spool.run(ctx.Done()) }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); t.runInbound(ctx) }()
	go func() { defer wg.Done(); t.runOutbound(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); t.imap.run(ctx) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	wg.Wait()
	if t.spool != nil {
		t.spool.close()
	}
	return err
}

// ListenAddr is the SMTP listener's address once Run started it.
func (t *Transport) ListenAddr() string {
	t.listenMu.Lock()
	defer t.listenMu.Unlock()
	return t.listenAddr
}

// wake signals a worker without blocking.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// deriveID turns a Message-ID (or any stable text) into a stanza id: the
// same mail gets the same id on every delivery, for every restart.
func deriveID(prefix, s string) string {
	sum := sha256.Sum256([]byte(s))
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:15]))
}

// userJID parses a stored bare JID.
func userJID(bare string) (jid.JID, error) {
	j, err := jid.Parse(bare)
	if err != nil {
		return jid.JID{}, fmt.Errorf("the stored user %q is not a JID: %w", bare, err)
	}
	return j.Bare(), nil
}

// account mode helpers.
func isBYO(a *store.Account) bool { return a != nil && a.Fields["imap_server"] != "" }

// ownAddress is the mail address the user sends from.
func (t *Transport) ownAddress(a *store.Account) string {
	if a == nil {
		return ""
	}
	if isBYO(a) {
		return a.Fields["email"]
	}
	if lp := a.Fields["address"]; lp != "" && t.cfg.HostedDomain != "" {
		return lp + "@" + t.cfg.HostedDomain
	}
	return ""
}

// displayName is the From name of the user's mail.
func displayName(a *store.Account) string {
	if n := a.Fields["name"]; n != "" {
		return n
	}
	if j, err := jid.Parse(a.User); err == nil {
		return j.Localpart()
	}
	return ""
}
