package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/logging"
	"github.com/certfleet/certfleet/core/metrics"
	"github.com/certfleet/certfleet/core/schedule"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/hashicorp/go-hclog"
	"github.com/jonboulle/clockwork"
	"github.com/urfave/cli/v2"
)

// daemonClock is the daemon's clock; tests replace it with a fake one to drive the schedule.
var daemonClock clockwork.Clock = clockwork.NewRealClock()

func daemonCommand() *cli.Command {
	return &cli.Command{
		Name: "daemon",
		Usage: "run on the schedule of the configuration's daemon section and serve /metrics and /healthz; " +
			"SIGHUP reloads the configuration (a bad one is refused and the old one kept), SIGTERM stops at a safe point",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: `address of /metrics and /healthz, overriding daemon.listen ("" serves nothing)`},
		},
		Action: runDaemon,
	}
}

// daemon is the state of a running `certfleet daemon`.
type daemon struct {
	c       *cli.Context
	logs    *logging.Logging
	log     hclog.Logger
	metrics *metrics.Metrics
	runCtx  context.Context

	mu     sync.Mutex
	env    *environment
	sched  schedule.Schedule
	health health
}

// health is what /healthz reports.
type health struct {
	Status    string    `json:"status"` // ok, or degraded when the last reload was refused
	StartedAt time.Time `json:"started_at"`
	Running   bool      `json:"running"`
	NextRun   time.Time `json:"next_run,omitzero"`
	LastRun   *lastRun  `json:"last_run,omitempty"`
	Config    string    `json:"config"`
}

type lastRun struct {
	ID       int64     `json:"id"`
	Outcome  string    `json:"outcome"`
	Finished time.Time `json:"finished"`
}

func scheduleOf(d *config.Daemon) (schedule.Schedule, error) {
	cron, err := config.ParseSchedule(d.Schedule)
	if err != nil {
		return schedule.Schedule{}, fmt.Errorf("%s: daemon.schedule: %w", d.Position, err)
	}
	return schedule.Schedule{Cron: cron, Location: d.Location, Jitter: d.Jitter}, nil
}

// daemonEnvironment builds an environment whose configuration can drive the daemon.
func (d *daemon) environment() (*environment, schedule.Schedule, error) {
	env, err := setupWith(d.c, setupOptions{logs: d.logs, metrics: d.metrics})
	if err != nil {
		return nil, schedule.Schedule{}, err
	}
	if env.cfg.Daemon == nil {
		env.close()
		return nil, schedule.Schedule{}, cli.Exit(`the configuration has no daemon section (hint: add daemon: {schedule: "17 3 * * *"})`, 2)
	}
	sched, err := scheduleOf(env.cfg.Daemon)
	if err != nil {
		env.close()
		return nil, schedule.Schedule{}, cli.Exit(err.Error(), 2)
	}
	return env, sched, nil
}

func runDaemon(c *cli.Context) error {
	logs := newProcessLogging(c, secret.NewRedactor())
	defer logs.Close()
	d := &daemon{c: c, logs: logs, log: logs.Logger(), metrics: metrics.New(version, true)}
	d.health = health{Status: "ok", StartedAt: time.Now().UTC(), Config: "ok"}
	env, sched, err := d.environment()
	if err != nil {
		return err
	}
	d.env, d.sched = env, sched
	defer func() { d.current().close() }()
	d.metrics.ConfigLoaded(false, true)
	d.refreshMetrics()

	signals, release := watchStopSignals(c.Context, d.log, func() time.Duration { return d.current().cfg.StopTimeout() }, true)
	defer release()
	d.runCtx = signals.ctx

	listen := env.cfg.Daemon.Listen
	if c.IsSet("listen") {
		listen = c.String("listen")
	}
	if listen != "" {
		srv, err := d.serve(listen)
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	loop := &schedule.Loop{Clock: daemonClock, Schedule: d.schedule, Run: d.run, Reload: d.reload, Planned: d.planned, RunAtStart: env.cfg.Daemon.RunAtStart}
	d.log.Info("daemon started", "schedule", env.cfg.Daemon.Schedule, "time_zone", env.cfg.Daemon.Location.String(), "jitter", env.cfg.Daemon.Jitter, "certificates", len(env.cfg.Certificates))
	loop.Serve(signals.ctx, signals.reload, signals.stop)
	d.log.Info("daemon stopped")
	return nil
}

func (d *daemon) current() *environment {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.env
}

func (d *daemon) schedule() schedule.Schedule {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sched
}

func (d *daemon) planned(next time.Time) {
	d.metrics.SetNextRun(next)
	d.mu.Lock()
	d.health.NextRun = next.UTC()
	d.mu.Unlock()
	d.log.Debug("next run planned", "at", next)
}

// run is one scheduled run.
func (d *daemon) run(stop <-chan struct{}) {
	env := d.current()
	d.mu.Lock()
	d.health.Running = true
	d.mu.Unlock()
	started := time.Now()
	d.log.Info("scheduled run starting")
	report, err := env.engine.Run(d.runCtx, engine.RunOptions{Stop: stop})
	finishRun(d.runCtx, env, report, err, started, hclog.Error, true)
	if err != nil {
		d.log.Error("the run ended with an error", "error", env.redactor.Redact(err.Error()))
	}
	d.mu.Lock()
	d.health.Running = false
	d.health.LastRun = &lastRun{ID: report.RunID, Outcome: runOutcome(report, err), Finished: time.Now().UTC()}
	d.mu.Unlock()
}

// reload re-reads the configuration; a configuration that cannot be used is refused and the one
// running is kept.
func (d *daemon) reload() {
	d.log.Info("reloading the configuration (SIGHUP)")
	env, sched, err := d.environment()
	if err != nil {
		d.metrics.ConfigLoaded(true, false)
		msg := d.logs.Redactor().Redact(err.Error())
		d.log.Error("the new configuration is refused; the previous one keeps running", "error", msg)
		d.mu.Lock()
		d.health.Status, d.health.Config = "degraded", "reload refused: "+msg
		d.mu.Unlock()
		return
	}
	d.mu.Lock()
	old := d.env
	d.env, d.sched = env, sched
	d.health.Status, d.health.Config = "ok", "ok"
	d.mu.Unlock()
	old.close()
	d.metrics.ConfigLoaded(true, true)
	d.refreshMetrics()
	d.log.Info("configuration reloaded", "schedule", env.cfg.Daemon.Schedule, "certificates", len(env.cfg.Certificates))
}

// refreshMetrics sets the per-certificate gauges from the state.
func (d *daemon) refreshMetrics() {
	if _, err := updateCertificateMetrics(d.c.Context, d.current()); err != nil {
		d.log.Warn("cannot read the state for metrics", "error", err)
	}
}

func (d *daemon) serve(listen string) (*http.Server, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("daemon.listen %s: %w (set another address, or \"\" to serve nothing)", listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		d.mu.Lock()
		h := d.health
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("the metrics server stopped", "error", err)
		}
	}()
	d.log.Info("serving /metrics and /healthz", "address", ln.Addr().String())
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		d.log.Warn("/metrics and /healthz are served beyond this host (certificate names, devices and run results are readable there)",
			"address", ln.Addr().String(), "hint", "listen on 127.0.0.1 and let a local collector or a TLS proxy expose it")
	}
	return srv, nil
}
