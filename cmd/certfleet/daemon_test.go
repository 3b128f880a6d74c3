package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/jonboulle/clockwork"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrape reads /metrics and parses it with Prometheus's own text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return families
}

func metricValue(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := families[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func getHealth(t *testing.T, addr string) health {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %d %v", resp.StatusCode, err)
	}
	return h
}

// TestDaemonRunsOnScheduleWithInjectedClock runs the daemon in process with a fake clock: no run
// happens before the scheduled time (read in the configured time zone), one happens when the
// clock reaches it, and /metrics, scraped while it runs, parses with Prometheus's text parser.
func TestDaemonRunsOnScheduleWithInjectedClock(t *testing.T) {
	sim, err := scmsim.New(scmsim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bundle := write("scm-ca.pem", sim.TLSCACertPEM())
	secretFile := write("scm-secret", scmsim.DefaultConfig().Clients["certfleet-sim"])
	addr := freeAddr(t)
	if err := os.MkdirAll(filepath.Join(dir, "web1"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := write("certfleet.yaml", fmt.Sprintf(`version: v1
state: {path: state.db}
logging:
  file: {path: logs/certfleet.log, level: debug}
daemon:
  schedule: "0 3 * * *"
  time_zone: Europe/London
  listen: %s
issuers:
  ca:
    type: scm
    scm: {base_url: %s, token_url: %s, client_id: certfleet-sim, client_secret: "${file:%s}", org_id: 1234, tls: {ca_bundle: %s}}
devices:
  web1: {plugin: pemdir, address: %s, options: {links: [www]}}
certificates:
  www:
    device: web1
    issuer: ca
    key: {type: ecdsa, bits: 256}
    subject: {organization: certfleet test, country: GB}
    sans: {dns: [www.example.com]}
    bindings: [{kind: live-link, name: www}]
    issuer_options: {cert_type: OV SSL}
`, addr, sim.URL(), sim.TokenURL(), secretFile, bundle, filepath.Join(dir, "web1")))

	// 01:59 UTC on 1 July is 02:59 in London (BST): the 03:00 run is one minute away.
	start := time.Date(2026, 7, 1, 1, 59, 0, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(start)
	daemonClock = clock
	defer func() { daemonClock = clockwork.NewRealClock() }()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr conformance.LogBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"certfleet", "--config", cfg, "--plugin-dir", pluginDir, "--pins-file", filepath.Join(dir, "pins.json"), "daemon"},
			&bytes.Buffer{}, &stderr)
	}()
	wait, waitCancel := context.WithTimeout(ctx, 60*time.Second)
	defer waitCancel()
	if err := clock.BlockUntilContext(wait, 1); err != nil {
		t.Fatalf("the daemon never waited for its schedule: %v\n%s", err, stderr.String())
	}
	h := getHealth(t, addr)
	if want := time.Date(2026, 7, 1, 2, 0, 0, 0, time.UTC); !h.NextRun.Equal(want) || h.LastRun != nil {
		t.Fatalf("health before the run: %+v; want next run %s (03:00 London) and no run yet", h, want)
	}
	if len(sim.Orders()) != 0 {
		t.Fatal("an order was placed before the scheduled time")
	}
	families := scrape(t, addr)
	if v, ok := metricValue(families, "certfleet_daemon_next_run_timestamp_seconds", nil); !ok || int64(v) != time.Date(2026, 7, 1, 2, 0, 0, 0, time.UTC).Unix() {
		t.Fatalf("next run metric %v %v", v, ok)
	}

	clock.Advance(time.Minute)
	deadline := time.Now().Add(60 * time.Second)
	for h = getHealth(t, addr); h.LastRun == nil; h = getHealth(t, addr) {
		if time.Now().After(deadline) {
			t.Fatalf("no run after the scheduled time\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h.LastRun.Outcome != "ok" || len(sim.Orders()) != 1 || !h.NextRun.Equal(time.Date(2026, 7, 2, 2, 0, 0, 0, time.UTC)) {
		logged, _ := os.ReadFile(filepath.Join(dir, "logs", "certfleet.log"))
		t.Fatalf("after the run: %+v (%+v), %d orders\n%s", h, h.LastRun, len(sim.Orders()), logged)
	}

	families = scrape(t, addr)
	for _, c := range []struct {
		name   string
		labels map[string]string
		check  func(float64) bool
	}{
		{"certfleet_certificate_expiry_timestamp_seconds", map[string]string{"certificate": "www", "device": "web1", "issuer": "ca"},
			func(v float64) bool { return v > float64(time.Now().Add(60*24*time.Hour).Unix()) }},
		{"certfleet_certificate_renewal_due_timestamp_seconds", map[string]string{"certificate": "www"},
			func(v float64) bool { return v > float64(time.Now().Unix()) }},
		{"certfleet_certificate_last_outcome", map[string]string{"certificate": "www", "outcome": "deployed"}, func(v float64) bool { return v == 1 }},
		{"certfleet_certificate_last_outcome", map[string]string{"certificate": "www", "outcome": "failed"}, func(v float64) bool { return v == 0 }},
		{"certfleet_runs_total", map[string]string{"outcome": "ok"}, func(v float64) bool { return v == 1 }},
		{"certfleet_run_duration_seconds", map[string]string{"outcome": "ok"}, func(v float64) bool { return v == 1 }},
		{"certfleet_ca_request_duration_seconds", map[string]string{"issuer": "ca", "operation": "submit"}, func(v float64) bool { return v == 1 }},
		{"certfleet_device_call_duration_seconds", map[string]string{"plugin": "pemdir", "operation": "generate_csr"}, func(v float64) bool { return v == 1 }},
		{"certfleet_device_call_duration_seconds", map[string]string{"plugin": "pemdir", "operation": "inventory"}, func(v float64) bool { return v >= 1 }},
		{"certfleet_config_last_reload_successful", nil, func(v float64) bool { return v == 1 }},
		{"certfleet_build_info", nil, func(v float64) bool { return v == 1 }},
	} {
		v, ok := metricValue(families, c.name, c.labels)
		if !ok || !c.check(v) {
			t.Errorf("%s%v = %v (present %v)", c.name, c.labels, v, ok)
		}
	}

	cancel() // as a first SIGTERM would: stop at a safe point
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("daemon exit %d\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not stop")
	}
	logFile, err := os.ReadFile(filepath.Join(dir, "logs", "certfleet.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"daemon started", "submitting the CSR to ca", "certfleet.plugin.pemdir", "run finished", "daemon stopped"} {
		if !strings.Contains(string(logFile), want) {
			t.Errorf("the log file lacks %q", want)
		}
	}
	if strings.Contains(string(logFile)+stderr.String(), scmsim.DefaultConfig().Clients["certfleet-sim"]) {
		t.Error("the SCM client secret reached a log")
	}
}
