// Package metrics exposes what certfleet knows in the Prometheus format: per certificate expiry,
// renewal due time and last outcome; runs by outcome and duration; CA and device call latencies
// and errors. The daemon serves it on /metrics; `certfleet run --metrics-file` writes the same
// for node_exporter's textfile collector.
package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "certfleet"

// Outcomes a certificate's last result can have (one series each, 1 for the current one).
var Outcomes = []string{"deployed", "unchanged", "pending", "failed"}

// Metrics is one process's registry and its collectors.
type Metrics struct {
	Registry *prometheus.Registry

	certExpiry  *prometheus.GaugeVec
	certRenewAt *prometheus.GaugeVec
	certOutcome *prometheus.GaugeVec
	runs        *prometheus.CounterVec
	runDuration *prometheus.HistogramVec
	lastRun     *prometheus.GaugeVec
	caDuration  *prometheus.HistogramVec
	caErrors    *prometheus.CounterVec
	devDuration *prometheus.HistogramVec
	devErrors   *prometheus.CounterVec
	notifyFails *prometheus.CounterVec
	nextRun     prometheus.Gauge
	reloads     *prometheus.CounterVec
	configOK    prometheus.Gauge
}

// callBuckets cover a local plugin call (milliseconds) up to a slow CA or a PAN-OS commit (minutes).
var callBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180}

// New returns the metrics of a certfleet process; withProcess adds the Go and process collectors
// (for a daemon; a textfile written by a cron run should not carry them).
func New(version string, withProcess bool) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{Registry: r}
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m.certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "certificate_expiry_timestamp_seconds",
		Help: "Not-after time of the deployed certificate, in seconds since the epoch."}, []string{"certificate", "device", "issuer"})
	m.certRenewAt = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "certificate_renewal_due_timestamp_seconds",
		Help: "When the deployed certificate becomes due for renewal, in seconds since the epoch."}, []string{"certificate", "device", "issuer"})
	m.certOutcome = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "certificate_last_outcome",
		Help: "1 for the outcome of the certificate's last run (deployed, unchanged, pending, failed), 0 for the others."}, []string{"certificate", "device", "outcome"})
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "runs_total",
		Help: "Runs by outcome (ok, pending, failed, interrupted, error)."}, []string{"outcome"})
	m.runDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "run_duration_seconds",
		Help: "How long runs took, by outcome.", Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600}}, []string{"outcome"})
	m.lastRun = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "last_run_timestamp_seconds",
		Help: "When the last run of each outcome finished, in seconds since the epoch."}, []string{"outcome"})
	m.caDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "ca_request_duration_seconds",
		Help: "Latency of calls to a CA, by issuer and operation.", Buckets: callBuckets}, []string{"issuer", "operation"})
	m.caErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "ca_request_errors_total",
		Help: "Failed calls to a CA, by issuer, operation and reason."}, []string{"issuer", "operation", "reason"})
	m.devDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "device_call_duration_seconds",
		Help: "Latency of device plugin calls, by plugin and operation.", Buckets: callBuckets}, []string{"plugin", "operation"})
	m.devErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "device_call_errors_total",
		Help: "Failed device plugin calls, by plugin, device, operation and reason."}, []string{"plugin", "device", "operation", "reason"})
	m.notifyFails = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "notification_errors_total",
		Help: "Notifications that could not be delivered, by channel."}, []string{"channel"})
	m.nextRun = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "daemon_next_run_timestamp_seconds",
		Help: "When the daemon runs next, in seconds since the epoch."})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "config_reloads_total",
		Help: "Configuration reloads (SIGHUP) by outcome (ok, failed)."}, []string{"outcome"})
	m.configOK = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "config_last_reload_successful",
		Help: "1 if the last configuration (re)load succeeded, 0 if the daemon kept the previous one."})
	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help: "certfleet's version, as a label.", ConstLabels: prometheus.Labels{"version": version}})
	build.Set(1)
	for _, c := range []prometheus.Collector{m.certExpiry, m.certRenewAt, m.certOutcome, m.runs, m.runDuration, m.lastRun,
		m.caDuration, m.caErrors, m.devDuration, m.devErrors, m.notifyFails, build} {
		f(c)
	}
	if withProcess {
		f(m.nextRun)
		f(m.reloads)
		f(m.configOK)
		f(collectors.NewGoCollector())
		f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Certificate is one certificate's state for the gauges.
type Certificate struct {
	Name, Device, Issuer string
	NotAfter, RenewAt    time.Time
	LastOutcome          string
}

// SetCertificates replaces the per-certificate series with the current state, so a certificate
// removed from the configuration disappears.
func (m *Metrics) SetCertificates(certs []Certificate) {
	m.certExpiry.Reset()
	m.certRenewAt.Reset()
	m.certOutcome.Reset()
	for _, c := range certs {
		if !c.NotAfter.IsZero() {
			m.certExpiry.WithLabelValues(c.Name, c.Device, c.Issuer).Set(unix(c.NotAfter))
		}
		if !c.RenewAt.IsZero() {
			m.certRenewAt.WithLabelValues(c.Name, c.Device, c.Issuer).Set(unix(c.RenewAt))
		}
		if c.LastOutcome == "" {
			continue
		}
		for _, o := range Outcomes {
			v := 0.0
			if o == c.LastOutcome {
				v = 1
			}
			m.certOutcome.WithLabelValues(c.Name, c.Device, o).Set(v)
		}
	}
}

// ObserveRun records a finished run.
func (m *Metrics) ObserveRun(outcome string, took time.Duration, finished time.Time) {
	m.runs.WithLabelValues(outcome).Inc()
	m.runDuration.WithLabelValues(outcome).Observe(took.Seconds())
	m.lastRun.WithLabelValues(outcome).Set(unix(finished))
}

// NotificationFailed counts an undelivered notification.
func (m *Metrics) NotificationFailed(channel string) { m.notifyFails.WithLabelValues(channel).Inc() }

// SetNextRun records when the daemon runs next.
func (m *Metrics) SetNextRun(t time.Time) { m.nextRun.Set(unix(t)) }

// ConfigLoaded records a configuration (re)load.
func (m *Metrics) ConfigLoaded(reload, ok bool) {
	outcome, v := "ok", 1.0
	if !ok {
		outcome, v = "failed", 0
	}
	if reload {
		m.reloads.WithLabelValues(outcome).Inc()
	}
	m.configOK.Set(v)
}

// Handler serves the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// WriteFile writes the registry for node_exporter's textfile collector, atomically (a temporary
// file renamed into place), so the collector never reads half a file.
func (m *Metrics) WriteFile(path string) error {
	if filepath.Ext(path) != ".prom" {
		return fmt.Errorf("metrics file %s: node_exporter's textfile collector reads only *.prom files", path)
	}
	if err := prometheus.WriteToTextfile(path, m.Registry); err != nil {
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	// WriteToTextfile creates the file 0600 (a temporary file renamed); node_exporter runs as its own user.
	if err := os.Chmod(path, 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	return nil
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
