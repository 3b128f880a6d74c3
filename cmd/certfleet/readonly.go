package main

import (
	"context"
	"os"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/logging"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/certfleet/certfleet/core/state"
	"github.com/urfave/cli/v2"
)

// stateView is what the commands that show recorded data need: the configuration with no secret
// resolved, and the state database. No plugin is started and no CA or device is contacted, so a
// monitoring check needs neither device nor CA credentials.
type stateView struct {
	cfg    *config.Config
	store  viewStore
	engine *engine.Engine
	logs   *logging.Logging
}

func (v *stateView) close() {
	if v.store != nil {
		v.store.Close()
	}
	_ = v.logs.Close()
}

func openStateView(c *cli.Context) (*stateView, error) {
	v, _, err := openView(c, false)
	return v, err
}

// openStatusView is openStateView for status, with what status shows already read: an SQLite
// state that exists is read while the configuration is still being built and checked (each takes
// a core). What was read is kept only if the configuration loads and names the same database;
// otherwise it is dropped and the view opens as openStateView does, with the same errors.
func openStatusView(c *cli.Context) (*stateView, *engine.StatusState, error) {
	return openView(c, true)
}

func openView(c *cli.Context, readStatus bool) (*stateView, *engine.StatusState, error) {
	redactor := secret.NewRedactor()
	v := &stateView{logs: newProcessLogging(c, redactor)}
	var early *earlyStatus
	opts := withConfigCache(c, v.logs.Logger())
	if readStatus {
		opts = append(opts, config.WithStateFirst(func(s config.State) { early = startEarlyStatus(c.Context, s) }))
	}
	cfg, err := loadConfig(c.Context, c.String("config"), redactor, false, v.logs.Logger(), opts...)
	var certs []engine.Certificate
	if err == nil {
		certs = engineCertificates(cfg) // while the state is still being read
	}
	kept := early.wait()
	if err != nil {
		early.discard()
		v.close()
		return nil, nil, cli.Exit(err.Error(), 2)
	}
	v.cfg = cfg
	if err := applyLoggingConfig(c, v.logs, cfg.Logging); err != nil {
		early.discard()
		v.close()
		return nil, nil, cli.Exit(err.Error(), 2)
	}
	var read *engine.StatusState
	if kept && cfg.State.Driver != config.DriverPostgres && statePathOf(cfg) == early.path {
		v.store, read = early.store, early.read
	} else {
		early.discard()
		store, err := openViewStore(c, cfg, redactor)
		if err != nil {
			v.close()
			return nil, nil, stateOpenError(err)
		}
		v.store = store
	}
	v.engine = engine.New(engine.Options{Store: v.store, Certificates: certs, Disabled: disabledCertificates(cfg), Logger: v.logs.Logger()})
	return v, read, nil
}

// earlyStatus is an SQLite state being opened and read for status while the configuration loads.
type earlyStatus struct {
	path  string
	done  chan struct{}
	store *state.SQLite
	read  *engine.StatusState
	err   error
}

// startEarlyStatus starts reading the SQLite state that s names, if it exists (nil: not started;
// a state that does not exist yet is made only once the configuration is known to be good).
func startEarlyStatus(ctx context.Context, s config.State) *earlyStatus {
	if s.Driver == config.DriverPostgres {
		return nil // its DSN is a secret reference, resolved only for a good configuration
	}
	path := statePathOf(&config.Config{State: s})
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	e := &earlyStatus{path: path, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		store, err := state.Open(ctx, path)
		if err != nil {
			e.err = err
			return
		}
		e.store = store
		e.read, e.err = engine.ReadStatusState(ctx, store)
	}()
	return e
}

// wait waits for the reading to end; true: it succeeded.
func (e *earlyStatus) wait() bool {
	if e == nil {
		return false
	}
	<-e.done
	return e.err == nil
}

// discard closes what was opened (after wait).
func (e *earlyStatus) discard() {
	if e != nil && e.store != nil {
		e.store.Close()
		e.store = nil
	}
}
