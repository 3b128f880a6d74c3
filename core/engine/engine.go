package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/hashicorp/go-hclog"
)

// PluginSource returns the running plugin of a name (core/pluginhost in production).
type PluginSource func(name string) (sdk.Plugin, error)

// Options configure an Engine.
type Options struct {
	Store   state.Store
	Plugins PluginSource
	// Ready, when set, is waited for by Run and Plan before their first call to a CA or a device:
	// the caller's own checks that run while the engine reads the state (the plugins started and
	// the configuration checked against what they declare). Its error ends Run or Plan there,
	// before anything is recorded.
	Ready        func(context.Context) error
	Issuers      map[string]issuer.Issuer
	Devices      map[string]Device
	Certificates []Certificate
	// Disabled names configured certificates that are not managed (enabled: false); they are
	// not reported as retired.
	Disabled []string

	// Workers bounds the calls to devices in flight for certificates at once (8 when zero);
	// PerIssuer bounds the calls in flight to one CA account (4 when zero), unless
	// IssuerConcurrency names the account (issuers.<name>.concurrency). A certificate waiting for
	// its order at the CA holds neither.
	Workers           int
	PerIssuer         int
	IssuerConcurrency map[string]int
	// CollectTimeout is how long a run polls a pending order before leaving it for the next run.
	CollectTimeout time.Duration
	// CallTimeout bounds each plugin call (2 minutes when zero).
	CallTimeout time.Duration
	// RevocationCheckInterval is how often the CA is asked whether a deployed certificate was
	// revoked (and for its renewal information); zero means 24 hours, negative never.
	RevocationCheckInterval time.Duration

	Logger hclog.Logger
	// Progress, when set, receives a line per step (for a terminal).
	Progress func(Event)
	// Redact masks secrets in text that is logged or recorded.
	Redact func(string) string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Backoff is the first wait between collects of a pending order when the CA gives no
	// Retry-After (250ms when zero); the wait grows up to MaxBackoff (30s when zero).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// VerifyAttempts is how often an endpoint is read before its served certificate is declared
	// wrong (3 when zero), VerifyWait the pause between reads (1s when zero): a data plane may
	// pick up a commit a moment after the device reports it done.
	VerifyAttempts int
	VerifyWait     time.Duration
	// AfterStep, when set, is called after each step of an operation is recorded (fault
	// injection for the crash tests; see cmd/certfleet).
	AfterStep func(op *state.Operation)

	// Site, when set, limits plans and runs to the devices of that site (status still shows all).
	Site string
	// Shared, when set, makes runs share the fleet with other instances (see shared.go).
	Shared *Sharing
}

// Event is one step of progress on a certificate.
type Event struct {
	Certificate string
	Device      string
	Message     string
}

// Engine plans and runs certificates. It is not safe for two Runs at once; the state lock keeps
// two processes apart.
type Engine struct {
	opts Options
	log  hclog.Logger
	// slots bound the calls of a run's certificates (workers, devices, CA accounts); issuerSem
	// bounds the CA checks made before the work starts (ca.go), at the same per-account limits.
	slots     *slots
	issuerSem map[string]chan struct{}
	// claimed counts the devices a shared run has started on (their rank for the slots).
	claimed atomic.Int64

	infoMu sync.Mutex
	infos  map[string]sdk.Info
	// stop is the current run's RunOptions.Stop.
	stop <-chan struct{}
}

// New returns an Engine.
func New(opts Options) *Engine {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.PerIssuer <= 0 {
		opts.PerIssuer = 4
	}
	if opts.CollectTimeout <= 0 {
		opts.CollectTimeout = 5 * time.Minute
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 2 * time.Minute
	}
	if opts.RevocationCheckInterval == 0 {
		opts.RevocationCheckInterval = 24 * time.Hour
	}
	if opts.VerifyAttempts <= 0 {
		opts.VerifyAttempts = 3
	}
	if opts.VerifyWait <= 0 {
		opts.VerifyWait = time.Second
	}
	if opts.Backoff <= 0 {
		opts.Backoff = issuer.DefaultPollInitial
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = issuer.DefaultPollMax
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.Backoff)
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Redact == nil {
		opts.Redact = func(s string) string { return s }
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Engine{
		opts: opts, log: opts.Logger, issuerSem: map[string]chan struct{}{},
		slots: newSlots(opts.Workers), infos: map[string]sdk.Info{},
	}
	for name := range opts.Issuers {
		e.issuerSem[name] = make(chan struct{}, e.issuerConcurrency(name))
	}
	return e
}

func (e *Engine) progress(c Certificate, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.log.Debug(msg, "certificate", c.Name, "device", c.Device)
	if e.opts.Progress != nil {
		e.opts.Progress(Event{Certificate: c.Name, Device: c.Device, Message: msg})
	}
}

// selected returns the configured certificates, or only the named ones.
func (e *Engine) selected(names []string) ([]Certificate, error) {
	if len(names) == 0 {
		return e.onSite(e.opts.Certificates), nil
	}
	byName := map[string]Certificate{}
	for _, c := range e.opts.Certificates {
		byName[c.Name] = c
	}
	if err := e.checkSite(names, byName); err != nil {
		return nil, err
	}
	var out []Certificate
	for _, n := range names {
		c, ok := byName[n]
		if !ok {
			known := make([]string, 0, len(byName))
			for k := range byName {
				known = append(known, k)
			}
			sort.Strings(known)
			// A fleet has thousands: name a few, not all of them.
			if more := len(known) - 10; more > 0 {
				known = append(known[:10], fmt.Sprintf("and %d more", more))
			}
			return nil, fmt.Errorf("no certificate named %q in the configuration (known: %s)", n, strings.Join(known, ", "))
		}
		out = append(out, c)
	}
	return out, nil
}

func (e *Engine) plugin(ctx context.Context, dev Device) (sdk.Plugin, sdk.Info, error) {
	p, err := e.opts.Plugins(dev.Plugin)
	if err != nil {
		return nil, sdk.Info{}, err
	}
	e.infoMu.Lock()
	info, ok := e.infos[dev.Plugin]
	e.infoMu.Unlock()
	if ok {
		return p, info, nil
	}
	cctx, cancel := context.WithTimeout(ctx, e.opts.CallTimeout)
	defer cancel()
	info, err = p.Info(cctx)
	if err != nil {
		return nil, sdk.Info{}, fmt.Errorf("plugin %s: %w", dev.Plugin, err)
	}
	e.infoMu.Lock()
	e.infos[dev.Plugin] = info
	e.infoMu.Unlock()
	return p, info, nil
}

// ready waits for Options.Ready, if any.
func (e *Engine) ready(ctx context.Context) error {
	if e.opts.Ready == nil {
		return nil
	}
	return e.opts.Ready(ctx)
}

// callCtx bounds one plugin call.
func (e *Engine) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.opts.CallTimeout)
}

// stepCtx bounds a call that changes something (a key made, an order placed, a certificate
// imported or bound, a commit): it is let finish when ctx is cancelled (SIGTERM, Ctrl-C), so
// its result is recorded, and the run stops at the next step. Cutting such a call short would
// leave its effect unknown: an order placed but never recorded, a key nobody knows of.
func (e *Engine) stepCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), e.opts.CallTimeout)
}

// acquire takes a slot of sem, or fails when ctx ends first.
func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func release(sem chan struct{}) { <-sem }
