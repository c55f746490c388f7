package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/attachments"
	"switchboard/store"
)

// This file is the seam a transport plugs into. A transport is a package
// under transports/ that exports one Plugin; main lists the plugins, and
// for every section of the config file that names one it decodes the
// section into the plugin's config, builds the transport with an Env, opens
// a component link for its domain and mounts its HTTP handler.

// Plugin describes one kind of transport to main.
type Plugin struct {
	// Name is the transport's name and its config section ("irc",
	// "email", "sms"); the environment variable SWITCHBOARD_<NAME>_SECRET
	// overrides the section's component secret.
	Name string
	// NewConfig returns a pointer to an empty config section, which the
	// TOML decoder fills.
	NewConfig func() TransportConfig
	// New builds the transport from its section (defaults set, validated,
	// secret resolved) and the gateway's shared parts.
	New func(cfg TransportConfig, env Env) (Transport, error)
}

// TransportConfig is a transport's config section. Its struct embeds
// ComponentConfig (`toml:",inline"` is implied for an embedded struct) and
// adds its own keys.
type TransportConfig interface {
	// Component is the component part of the section.
	Component() *ComponentConfig
	// SetDefaults fills in what the admin left out.
	SetDefaults()
	// Validate returns every problem with the transport's own keys, each
	// as "key: sentence" with the key relative to the section
	// ("network[0].address"); main puts the section name in front. The
	// component keys are checked by main.
	Validate() []error
}

// ComponentConfig is the part every transport section shares: how the
// transport's component attaches to the XMPP server.
type ComponentConfig struct {
	// Domain is the component domain, e.g. "irc.example.org".
	Domain string `toml:"domain"`
	// Secret is the XEP-0114 secret, or SecretFile a file that holds it
	// (main reads the file into Secret before the transport is built).
	Secret     string `toml:"secret"`
	SecretFile string `toml:"secret_file"`
}

// Component returns c, so that a struct embedding ComponentConfig has the
// method TransportConfig asks for.
func (c *ComponentConfig) Component() *ComponentConfig { return c }

// Env is what a transport gets from the gateway when it is built.
type Env struct {
	// Gateway runs work on users' goroutines (Do), sends events from
	// outside them (Emit) and confirms delivery to the XMPP server (Sync).
	Gateway *Gateway
	Store   store.Store
	Metrics *Metrics
	Log     *slog.Logger
	// PublicURL is [http] public_url without a trailing slash: the address
	// the outside world reaches the HTTP listener at (webhook signatures,
	// attachment links). Empty when not configured.
	PublicURL string
	// Attachments stores files (mail parts, MMS media) and serves them
	// under PublicURL/files/; AllowPrivateFetch says whether
	// attachments.Fetch may reach loopback and private addresses.
	Attachments       *attachments.Service
	AllowPrivateFetch bool
}

// HTTPService is implemented by a transport that serves HTTP on the
// [http] listener (webhooks): main mounts the handler at the prefix
// (e.g. "/sms/"), beside /metrics and /healthz.
type HTTPService interface {
	HTTPHandler() (prefix string, h http.Handler)
}

// Unregisterer is implemented by a transport that keeps something of a
// user outside the store's rows for them (a phone number taken from a
// pool, an open watcher): Gateway.Unregister calls it once the account is
// deleted.
type Unregisterer interface {
	Unregistered(bareJID string)
}

// Syncer is a Sink that can confirm that the XMPP server has taken what
// was queued: Sync returns nil once everything queued before the call has
// been read by the server (a XEP-0199 ping queued behind it was answered;
// a server handles a stream's stanzas in order), and an error when the
// connection ended first (what was queued then goes out again on the next
// connection, so a delivery confirmed later may arrive twice: with the
// same id).
type Syncer interface {
	Sync(ctx context.Context) error
}

// ErrNoSync is returned by Gateway.Sync when the transport's sink cannot
// confirm delivery.
var ErrNoSync = errors.New("bridge: the sink cannot confirm delivery")

// Do runs fn on the goroutine of user (a bare or full JID; the bare JID
// is used) in transport, starting that goroutine when it is not running.
// It is the one way for a transport to act for a user from outside an
// XMPP stanza: a webhook, an IMAP notice, an SMTP delivery, a restore at
// start. It returns once fn is queued (fn runs later, in order with the
// user's other work; close a channel in fn to wait for it). It waits while
// the user's inbox is full, until ctx is done. The access policy and
// registration apply: a user who may not use the transport, or must
// register first, gets a *StanzaError and fn does not run.
func (g *Gateway) Do(ctx context.Context, transport string, user jid.JID, fn func(*User, Session)) error {
	ev := fnEvent(fn)
	var retry *time.Ticker
	for restarts := 0; restarts < 3; {
		u, queued, err := g.offer(transport, user, ev)
		if err != nil || queued {
			return err
		}
		if retry == nil {
			// The room signal may go to a Dispatch waiting too: look again
			// now and then.
			retry = time.NewTicker(50 * time.Millisecond)
			defer retry.Stop()
		}
		select {
		case <-u.room:
		case <-retry.C:
		case <-u.done:
			restarts++
		case <-ctx.Done():
			return fmt.Errorf("waiting for the goroutine of %s: %w", user.Bare(), ctx.Err())
		}
	}
	return errCouldNotStart
}

// Emit sends an outbound event of transport to XMPP from outside a user's
// goroutine (a queue worker's receipt or error, a delivery that needs no
// user state). Like User.Emit it waits for room in a full queue while the
// link is up, up to emitWait without it, or until ctx is done.
func (g *Gateway) Emit(ctx context.Context, transport string, ev Outbound) error {
	te := g.transports[transport]
	if te == nil {
		return fmt.Errorf("bridge: no transport %q", transport)
	}
	var err error
	if w, ok := te.sink.(WaitingSink); ok {
		err = w.SendWait(ev, emitWait, ctx.Done())
	} else {
		err = te.sink.Send(ev)
	}
	if err != nil {
		g.metrics.dropped(transport)
	}
	return err
}

// Sync waits until the XMPP server has taken everything the transport
// queued before the call (see Syncer). A transport that must not forget a
// delivery until the XMPP server has it (a stored mail, a webhook's text)
// emits, syncs, and only then deletes its copy.
func (g *Gateway) Sync(ctx context.Context, transport string) error {
	te := g.transports[transport]
	if te == nil {
		return fmt.Errorf("bridge: no transport %q", transport)
	}
	s, ok := te.sink.(Syncer)
	if !ok {
		return ErrNoSync
	}
	return s.Sync(ctx)
}

// Sync is Gateway.Sync for the user's transport. It blocks the calling
// goroutine for a round trip to the XMPP server.
func (u *User) Sync(ctx context.Context) error {
	return u.gw.Sync(ctx, u.transport.Name())
}
