// Package sms is the SMS/MMS transport: texts to and from phone numbers
// through Twilio's Programmable Messaging API (twilio-go), with signed
// webhooks for inbound texts and status callbacks, a durable outbound
// queue that avoids sending twice, per-user and global quotas, team
// inboxes as MUC rooms, and MMS media through the attachment service.
// doc/sms.md describes it for admins.
package sms

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twilio/twilio-go"
	twclient "github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"switchboard/attachments"
	"switchboard/bridge"
	"switchboard/mapping"
	"switchboard/store"
)

// Name is the transport's name and config section.
const Name = "sms"

// Queue transports in the store: outbound texts, and inbound texts
// accepted by the webhook and not yet delivered to XMPP.
const (
	queueOut = "sms"
	queueIn  = "sms-in"
)

// Transport is the SMS transport. It implements bridge.Transport and
// bridge.HTTPService.
type Transport struct {
	cfg          Config
	gw           *bridge.Gateway
	codec        *mapping.SMSCodec
	st           store.Store
	log          *slog.Logger
	publicURL    string
	files        *attachments.Service
	allowPrivate bool

	api       *openapi.ApiService
	validator twclient.RequestValidator
	mediaHTTP *http.Client

	nums  *numbers
	usage *usage

	wakeIn, wakeOut chan struct{}
	accepts         chan acceptReq // to acceptLoop (nil: no group commit)
	sidLocks        [64]sync.Mutex

	mIn, mOut, mUnrouted, mForged, mDuplicate prometheus.Counter
	mFailed, mRetried                         prometheus.Counter
}

var _ bridge.Transport = (*Transport)(nil)
var _ bridge.HTTPService = (*Transport)(nil)

// Plugin is the SMS transport's entry in main's list of transports.
var Plugin = bridge.Plugin{
	Name:      Name,
	NewConfig: func() bridge.TransportConfig { return new(Config) },
	New: func(c bridge.TransportConfig, env bridge.Env) (bridge.Transport, error) {
		return New(*c.(*Config), env)
	},
}

// New builds the transport.
func New(cfg Config, env bridge.Env) (*Transport, error) {
	if cfg.Secret != "" && cfg.SecretFile != "" {
		cfg.SecretFile = ""
	}
	cfg.SetDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("the [sms] configuration is invalid: %w", errs[0])
	}
	codec, err := mapping.NewSMSCodec(cfg.Domain, cfg.DefaultRegion)
	if err != nil {
		return nil, fmt.Errorf("the [sms] configuration is invalid: %w", err)
	}
	if env.PublicURL == "" {
		return nil, fmt.Errorf("the SMS transport needs [http] listen (and public_url behind a proxy): Twilio's webhooks come in there")
	}
	log := env.Log
	if log == nil {
		log = slog.Default()
	}
	metrics := env.Metrics
	if metrics == nil {
		metrics = bridge.NewMetrics(nil)
	}
	t := &Transport{
		cfg:       cfg,
		gw:        env.Gateway,
		codec:     codec,
		st:        env.Store,
		log:       log.With("transport", Name),
		publicURL: strings.TrimRight(env.PublicURL, "/"),
		validator: twclient.NewRequestValidator(cfg.AuthToken),
		nums:      newNumbers(cfg.Numbers, cfg.Pool),
		wakeIn:    make(chan struct{}, 1),
		wakeOut:   make(chan struct{}, 1),
		accepts:   make(chan acceptReq),
		mIn:       metrics.Messages.WithLabelValues(Name, "to-xmpp"),
		mOut:      metrics.Messages.WithLabelValues(Name, "to-remote"),
	}
	t.files, t.allowPrivate = env.Attachments, env.AllowPrivateFetch
	t.usage = newUsage(env.Store, cfg)
	t.api = newAPI(cfg)
	t.mediaHTTP = &http.Client{Timeout: 2 * time.Minute}
	c := func(name, help string) prometheus.Counter {
		ctr := prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_sms_" + name, Help: help})
		if err := metrics.Registry.Register(ctr); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				return are.ExistingCollector.(prometheus.Counter)
			}
		}
		return ctr
	}
	t.mUnrouted = c("inbound_unrouted_total", "Inbound texts to a number with no owner, or from a sender that cannot be addressed (logged, answered 200).")
	t.mForged = c("webhook_forged_total", "Webhooks refused with 403 (bad or missing X-Twilio-Signature).")
	t.mDuplicate = c("webhook_duplicate_total", "Inbound webhooks already accepted (Twilio retries), answered 200 and not stored again.")
	t.mFailed = c("outbound_failed_total", "Outbound texts that failed for good (API error or undelivered/failed callback).")
	t.mRetried = c("outbound_retried_total", "Outbound send attempts that will be retried (network, 5xx, 429).")
	if env.Store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		accts, err := env.Store.ListAccounts(ctx, Name)
		if err != nil {
			return nil, fmt.Errorf("sms: reading the assigned numbers: %w", err)
		}
		for _, a := range accts {
			if n := a.Fields[fieldNumber]; n != "" {
				if err := t.nums.assign(n, a.User); err != nil {
					t.log.Warn("an assigned number is not given back", "user", a.User, "number", n, "err", err)
				}
			}
		}
	}
	return t, nil
}

// newAPI builds the twilio-go client, pointed at api_url through its HTTP
// client (the library's base URL is fixed to api.twilio.com).
func newAPI(cfg Config) *openapi.ApiService {
	c := &twclient.Client{
		Credentials: twclient.NewCredentials(cfg.AccountSID, cfg.AuthToken),
		HTTPClient:  &http.Client{Timeout: 30 * time.Second, Transport: &rewrite{base: cfg.APIURL, rt: http.DefaultTransport}},
	}
	c.SetAccountSid(cfg.AccountSID)
	rc := twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})
	return rc.Api
}

// rewrite sends twilio-go's requests to the configured API base URL.
type rewrite struct {
	base string
	rt   http.RoundTripper
}

func (r *rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.base == DefaultAPIURL {
		return r.rt.RoundTrip(req)
	}
	u := *req.URL
	base, err := parseBase(r.base)
	if err != nil {
		return nil, err
	}
	u.Scheme, u.Host = base.Scheme, base.Host
	u.Path = strings.TrimRight(base.Path, "/") + u.Path
	req2 := req.Clone(req.Context())
	req2.URL = &u
	req2.Host = base.Host
	return r.rt.RoundTrip(req2)
}

// Name returns "sms".
func (t *Transport) Name() string { return Name }

// Codec returns the SMS codec.
func (t *Transport) Codec() mapping.Codec { return t.codec }

// Identity is the XEP-0030 identity of the gateway domain.
func (t *Transport) Identity() (category, typ, name string) { return "gateway", "sms", "SMS gateway" }

// RegistrationRequired is false: a user who owns a number in the config
// texts at once; registration picks a pool number and settings.
func (t *Transport) RegistrationRequired() bool { return false }

// NewSession starts a user's SMS state.
func (t *Transport) NewSession(u *bridge.User) bridge.Session { return newSession(t, u) }

// HTTPHandler serves the webhooks under /sms/.
func (t *Transport) HTTPHandler() (string, http.Handler) {
	mux := http.NewServeMux()
	mux.HandleFunc("/sms/incoming", t.handleIncoming)
	mux.HandleFunc("/sms/status", t.handleStatus)
	return "/sms/", mux
}

// Run runs the inbound delivery worker, the outbound sender and the daily
// archive pruning until ctx is done.
func (t *Transport) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	if _, ok := t.st.(store.Batcher); ok {
		run(t.acceptLoop)
	}
	run(t.deliverLoop)
	run(t.sendLoop)
	run(t.pruneLoop)
	wg.Wait()
	return nil
}

func (t *Transport) pruneLoop(ctx context.Context) {
	tick := time.NewTicker(24 * time.Hour)
	defer tick.Stop()
	for {
		days := max(*t.cfg.HistoryDays, 7) // dedup records live at least a week
		pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		n, err := t.st.PruneArchive(pctx, Name, time.Now().AddDate(0, 0, -days))
		cancel()
		if err != nil && ctx.Err() == nil {
			t.log.Warn("pruning the SMS archive failed", "err", err)
		} else if n > 0 {
			t.log.Info("pruned the SMS archive", "entries", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// sidLock returns the lock of a MessageSid (webhook deduplication).
func (t *Transport) sidLock(sid string) *sync.Mutex {
	var h uint32
	for i := 0; i < len(sid); i++ {
		h = h*31 + uint32(sid[i])
	}
	return &t.sidLocks[h%uint32(len(t.sidLocks))]
}
