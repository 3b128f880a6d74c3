package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/acme"
	"github.com/certfleet/certfleet/core/logging"
	"github.com/certfleet/certfleet/core/metrics"
	"github.com/certfleet/certfleet/core/notify"
	"github.com/certfleet/certfleet/core/pluginhost"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"
)

// environment is everything a command that drives certificates needs, built from the flags and
// the configuration.
type environment struct {
	cfg      *config.Config
	log      hclog.Logger
	logs     *logging.Logging
	metrics  *metrics.Metrics
	notifier *notify.Notifier
	redactor *secret.Redactor
	store    state.Store
	host     *pluginhost.Host
	engine   *engine.Engine
	// plugins is the plugins' check against the configuration (setupOptions.deferPluginCheck:
	// perhaps still running).
	plugins *pluginCheck
	closers []func()
}

func (env *environment) close() {
	for i := len(env.closers) - 1; i >= 0; i-- {
		env.closers[i]()
	}
}

// redactedLogger is a host logger for commands that need no environment: everything it writes
// passes through the redactor, which learns every secret as it is resolved.
func redactedLogger(c *cli.Context, r *secret.Redactor) (hclog.Logger, interface{ Flush() error }) {
	l := newProcessLogging(c, r)
	l.Discard()
	return l.Logger(), flushFunc(l.Close)
}

type flushFunc func() error

func (f flushFunc) Flush() error { return f() }

// loadConfig reads the configuration, decrypting sops files in memory; with resolve, secret
// references are expanded (and registered with the redactor).
func loadConfig(ctx context.Context, path string, redactor *secret.Redactor, resolve bool, log hclog.Logger, extra ...config.LoadOption) (*config.Config, error) {
	opts := append([]config.LoadOption{config.WithFileReader(func(p string) ([]byte, error) { return secret.ReadFile(ctx, p) })}, extra...)
	var resolver *secret.Resolver
	if resolve {
		base := path
		if cfgIsFile(path) {
			base = filepath.Dir(path)
		}
		resolver = &secret.Resolver{Redactor: redactor, BaseDir: base}
		opts = append(opts, config.WithResolver(ctx, resolver))
	}
	cfg, warnings, err := config.Load(path, opts...)
	for _, w := range warnings {
		log.Warn(w.String())
	}
	if resolver != nil {
		for _, w := range resolver.Warnings() {
			log.Warn(w.String())
		}
	}
	return cfg, err
}

// withConfigCache is the configuration cache for a command that loads the configuration often
// (run, plan, status, the daemon's reloads): an entry beside the state database lets a load whose
// files did not change skip parsing and checking them. --no-config-cache or
// CERTFLEET_CONFIG_CACHE=off turns it off; validate never uses it.
func withConfigCache(c *cli.Context, log hclog.Logger) []config.LoadOption {
	if c.Bool("no-config-cache") || strings.EqualFold(os.Getenv("CERTFLEET_CONFIG_CACHE"), "off") {
		return nil
	}
	return []config.LoadOption{config.WithCache(config.Cache{Version: version, Dir: configCacheDir, Debug: log.Debug})}
}

// configCacheDir keeps the entries beside the SQLite state database, in a directory only its
// owner reads, once the state directory exists (a first run makes it); for a PostgreSQL state, in
// the user's cache directory.
func configCacheDir(s config.State) string {
	if s.Driver == config.DriverPostgres {
		dir, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		return filepath.Join(dir, "certfleet", "config-cache")
	}
	stateDir := filepath.Dir(statePathOf(&config.Config{State: s}))
	if st, err := os.Stat(stateDir); err != nil || !st.IsDir() {
		return ""
	}
	return filepath.Join(stateDir, "config-cache")
}

// setup builds the environment for plan, run and status.
func setup(c *cli.Context, progress bool) (*environment, error) {
	return setupWith(c, setupOptions{progress: progress})
}

// setupOptions are what a long-lived caller (the daemon) keeps across environments.
type setupOptions struct {
	progress bool
	// logs and metrics are the process's; when nil, the environment makes (and closes) its own.
	logs    *logging.Logging
	metrics *metrics.Metrics
	// deferPluginCheck: the engine waits for the plugins' check before its first CA or device
	// call instead of setup waiting for it, so the check overlaps the engine's reads of the
	// state. The caller turns the engine's error into the exit with pluginCheckFailure.
	deferPluginCheck bool
}

// pluginCheck starts the configuration's plugins and checks the configuration against what they
// declare (checkConfigAgainstPlugins), in the background.
type pluginCheck struct {
	done   chan struct{}
	err    error // set before done closes
	cancel context.CancelFunc
}

// pluginCheckError is a configuration the plugins refuse: exit 2, as for any configuration error.
type pluginCheckError struct{ err error }

func (e *pluginCheckError) Error() string { return e.err.Error() }
func (e *pluginCheckError) Unwrap() error { return e.err }

func startPluginCheck(ctx context.Context, cfg *config.Config, host *pluginhost.Host) *pluginCheck {
	ctx, cancel := context.WithCancel(ctx)
	pc := &pluginCheck{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(pc.done)
		infos := pluginInfos(ctx, cfg, func(name string) (sdk.Plugin, error) { return host.Plugin(name) })
		if err := checkConfigAgainstPlugins(cfg, infos); err != nil {
			pc.err = &pluginCheckError{err}
		}
	}()
	return pc
}

// wait returns the check's error once it is known, or ctx's.
func (pc *pluginCheck) wait(ctx context.Context) error {
	select {
	case <-pc.done:
		return pc.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop ends the check (a plugin still starting is abandoned) and waits for it, so the host can
// close with nothing starting behind it.
func (pc *pluginCheck) stop() {
	pc.cancel()
	<-pc.done
}

// pluginCheckFailure is the exit for an engine error that is the deferred plugin check failing:
// exit 2 with the configuration's errors, as setup gives them; nil for any other error.
func pluginCheckFailure(err error) error {
	var pce *pluginCheckError
	if errors.As(err, &pce) {
		return cli.Exit(pce.Error(), 2)
	}
	return nil
}

// setupWith builds the environment. The configuration's logging section takes effect only once
// everything else succeeded, so a daemon whose new configuration is refused keeps logging as before.
func setupWith(c *cli.Context, so setupOptions) (*environment, error) {
	ctx := c.Context
	owned := so.logs == nil
	if owned {
		so.logs = newProcessLogging(c, secret.NewRedactor())
	}
	// One redactor for the process: secrets of an earlier configuration stay masked after a reload.
	redactor := so.logs.Redactor()
	log := so.logs.Logger()
	env := &environment{log: log, logs: so.logs, redactor: redactor, metrics: so.metrics}
	if owned {
		env.closers = append(env.closers, func() { _ = so.logs.Close() })
	}
	if env.metrics == nil {
		env.metrics = metrics.New(version, false)
	}
	cfg, err := loadConfig(ctx, c.String("config"), redactor, true, log, withConfigCache(c, log)...)
	if err != nil {
		env.close()
		return nil, cli.Exit(redactor.Redact(err.Error()), 2)
	}
	env.cfg = cfg
	if path := c.String("credentials"); path != "" {
		if err := applyCredentialsFile(ctx, path, cfg, redactor, log); err != nil {
			env.close()
			return nil, cli.Exit(redactor.Redact(err.Error()), 2)
		}
	}
	registerCredentials(redactor, cfg)

	site, err := chooseSite(c, cfg)
	if err != nil {
		env.close()
		return nil, cli.Exit(err.Error(), 2)
	}
	env.host = newPluginHost(c, log, cfg, false)
	env.closers = append(env.closers, env.host.Close)
	// The plugins start (a process each, checked against its pin) while the state is opened and
	// the engine built: it is the longest step of a command's start.
	check := startPluginCheck(ctx, cfg, env.host)
	env.plugins = check
	env.closers = append(env.closers, check.stop) // before the host closes

	opened, err := openState(ctx, cfg, redactor)
	if err != nil {
		env.close()
		return nil, stateOpenError(err)
	}
	store := opened.store
	env.store = store
	env.closers = append(env.closers, func() { store.Close() })

	issuers, err := buildIssuers(cfg, store, so.logs.Slog())
	if err != nil {
		env.close()
		return nil, cli.Exit(redactor.Redact(err.Error()), 2)
	}
	registerNotificationSecrets(redactor, cfg.Notifications)
	env.notifier, err = notify.New(cfg.Notifications, redactor.Redact)
	if err != nil {
		env.close()
		return nil, cli.Exit(redactor.Redact(err.Error()), 2)
	}
	for name, iss := range issuers {
		issuers[name] = env.metrics.WrapIssuer(name, iss)
	}
	opts := engine.Options{
		Store: store,
		Plugins: func(name string) (sdk.Plugin, error) {
			p, err := env.host.Plugin(name)
			if err != nil {
				return nil, err
			}
			return env.metrics.WrapPlugin(name, p), nil
		},
		Issuers:                 issuers,
		Devices:                 engineDevices(cfg),
		Certificates:            engineCertificates(cfg),
		Disabled:                disabledCertificates(cfg),
		Workers:                 cfg.Runtime.Workers,
		PerIssuer:               cfg.Runtime.PerIssuer,
		IssuerConcurrency:       issuerConcurrency(cfg),
		CollectTimeout:          cfg.Runtime.CollectTimeout,
		CallTimeout:             cfg.Runtime.CallTimeout,
		RevocationCheckInterval: cfg.Runtime.RevocationCheckInterval,
		VerifyAttempts:          cfg.Runtime.VerifyAttempts,
		VerifyWait:              cfg.Runtime.VerifyWait,
		Logger:                  log,
		Redact:                  redactor.Redact,
		Site:                    site,
		Shared:                  opened.sharing,
	}
	if so.deferPluginCheck {
		opts.Ready = check.wait
	} else if err := check.wait(ctx); err != nil {
		env.close()
		return nil, cli.Exit(err.Error(), 2)
	}
	opts.AfterStep = crashAfterStep(log)
	if so.progress {
		opts.Progress = progressPrinter(redactor.Writer(c.App.ErrWriter))
	}
	env.engine = engine.New(opts)
	if err := applyLoggingConfig(c, so.logs, cfg.Logging); err != nil {
		env.close()
		return nil, cli.Exit(err.Error(), 2)
	}
	return env, nil
}

// crashAfterStep implements CERTFLEET_CRASH_AFTER_STEP=<step>: the process kills itself with
// SIGKILL right after recording that step, so the crash tests can stop a real run at every point
// where it can die. With CERTFLEET_CRASH_SIGNAL=TERM it sends itself SIGTERM instead (once) and
// goes on, as systemd or a cron time-out would stop it. It is a fault-injection knob, never set
// in production.
func crashAfterStep(log hclog.Logger) func(*state.Operation) {
	step := os.Getenv("CERTFLEET_CRASH_AFTER_STEP")
	if step == "" {
		return nil
	}
	submit := os.Getenv("CERTFLEET_CRASH_AFTER_SUBMIT_STATE")
	term := os.Getenv("CERTFLEET_CRASH_SIGNAL") == "TERM"
	var once sync.Once
	return func(op *state.Operation) {
		if string(op.Step) != step || (submit != "" && string(op.SubmitState) != submit) {
			return
		}
		self, err := os.FindProcess(os.Getpid())
		if err != nil {
			return
		}
		if term {
			once.Do(func() {
				log.Warn("CERTFLEET_CRASH_AFTER_STEP: sending this process SIGTERM", "step", step, "certificate", op.Certificate)
				_ = self.Signal(syscall.SIGTERM)
			})
			return
		}
		log.Warn("CERTFLEET_CRASH_AFTER_STEP: killing this process", "step", step, "certificate", op.Certificate)
		// Process.Kill is SIGKILL on Unix and TerminateProcess on Windows: no deferred code runs.
		_ = self.Kill()
		select {}
	}
}

// applyCredentialsFile gives each device configured without credentials the login the file holds
// for its host, as the Citrix agent's -c file does.
func applyCredentialsFile(ctx context.Context, path string, cfg *config.Config, redactor *secret.Redactor, log hclog.Logger) error {
	creds, err := (&secret.Resolver{Redactor: redactor}).LoadCredentialsFile(ctx, path)
	if err != nil {
		return err
	}
	if creds.Warning != nil {
		log.Warn(creds.Warning.String())
	}
	for name, d := range cfg.Devices {
		if d.Credentials != (sdk.Credentials{}) {
			continue
		}
		host := d.Address
		if u, err := url.Parse(d.Address); err == nil && u.Host != "" {
			host = u.Host
		}
		if user, pass, ok := creds.Lookup(host); ok {
			d.Credentials.Username, d.Credentials.Password = user, pass
			log.Debug("device credentials taken from the credentials file", "device", name, "file", path)
		}
	}
	return nil
}

// issuerConcurrency is each CA account's own limit of calls in flight (issuers.<name>.concurrency);
// accounts without one get runtime.per_issuer.
func issuerConcurrency(cfg *config.Config) map[string]int {
	out := map[string]int{}
	for name, iss := range cfg.Issuers {
		if iss.Concurrency > 0 {
			out[name] = iss.Concurrency
		}
	}
	return out
}

func registerCredentials(r *secret.Redactor, cfg *config.Config) {
	for _, d := range cfg.Devices {
		r.Add(d.Credentials.Password, d.Credentials.APIKey, d.Credentials.Token)
		r.AddBasicAuth(d.Credentials.Username, d.Credentials.Password)
	}
	for _, iss := range cfg.Issuers {
		if iss.SCM != nil {
			r.Add(iss.SCM.ClientSecret, iss.SCM.Password)
		}
		if iss.ACME != nil {
			r.Add(iss.ACME.EAB.HMACKey, iss.ACME.AccountKeyPassphrase)
			for _, v := range iss.ACME.DNS.Settings {
				r.Add(v)
			}
		}
	}
}

func buildIssuers(cfg *config.Config, store state.Store, slogger *slog.Logger) (map[string]issuer.Issuer, error) {
	out := map[string]issuer.Issuer{}
	var errs []error
	names := make([]string, 0, len(cfg.Issuers))
	for name := range cfg.Issuers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ic := cfg.Issuers[name]
		var (
			iss issuer.Issuer
			err error
		)
		switch ic.Type {
		case "acme":
			iss, err = acme.New(*ic.ACME, acme.BlobAccountStore(store), acme.WithLogger(slogger.With("issuer", name)))
		case "scm":
			iss, err = newSCMIssuer(name, ic.SCM, slogger.With("issuer", name))
		default:
			err = fmt.Errorf("unknown type %q", ic.Type)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: issuer %s: %w", ic.Position, name, err))
			continue
		}
		out[name] = iss
	}
	return out, errors.Join(errs...)
}

func targetTLS(t config.TLS) sdk.TLSConfig {
	return sdk.TLSConfig{InsecureSkipVerify: t.InsecureSkipVerify, CABundlePEM: t.CABundlePEM, ServerName: t.ServerName}
}

func engineDevices(cfg *config.Config) map[string]engine.Device {
	out := make(map[string]engine.Device, len(cfg.Devices))
	for name, d := range cfg.Devices {
		opts := d.Options
		if d.AllowPlainHTTP {
			// The plugin accepts an http:// address only with this, so the opt-in is the user's.
			opts = sdk.Options{"allow_plain_http": true}
			for k, v := range d.Options {
				opts[k] = v
			}
		}
		out[name] = engine.Device{
			Name: name, Plugin: d.Plugin, Concurrency: d.Concurrency, Site: d.Site,
			Target: sdk.Target{Name: name, Address: d.Address, TLS: targetTLS(d.TLS), Credentials: d.Credentials, Options: opts},
		}
	}
	return out
}

// namedCertificate is a certificate with its name in the configuration.
type namedCertificate struct {
	name string
	*config.Certificate
}

// sortedCertificates lists the configuration's certificates by name, the order of the engine's
// lists and of the messages about them.
func sortedCertificates(cfg *config.Config) []namedCertificate {
	out := make([]namedCertificate, 0, len(cfg.Certificates))
	for name, c := range cfg.Certificates {
		out = append(out, namedCertificate{name, c})
	}
	slices.SortFunc(out, func(a, b namedCertificate) int { return strings.Compare(a.name, b.name) })
	return out
}

func engineCertificates(cfg *config.Config) []engine.Certificate {
	out := make([]engine.Certificate, 0, len(cfg.Certificates))
	for _, nc := range sortedCertificates(cfg) {
		name, c := nc.name, nc.Certificate
		if !c.Enabled {
			continue
		}
		ec := engine.Certificate{
			Name: name, Device: c.Device, Issuer: c.Issuer, Subject: c.Subject, SANs: c.SANs, KeySpec: c.Key,
			RenewBefore: c.RenewBefore, RenewFraction: c.RenewFraction, Bindings: c.Bindings, IssuerOptions: c.IssuerOptions,
			RollbackOnVerifyFailure: c.OnVerifyFailure == config.OnVerifyRollback,
			CleanupAdopted:          c.CleanupAdopted,
		}
		if c.Verify != nil {
			ec.Verify = &sdk.ServedEndpoint{Address: c.Verify.Address, ServerName: c.Verify.ServerName}
		}
		out = append(out, ec)
	}
	return out
}

func disabledCertificates(cfg *config.Config) []string {
	var out []string
	for name, c := range cfg.Certificates {
		if !c.Enabled {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
