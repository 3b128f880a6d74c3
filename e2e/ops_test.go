package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/core/state"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// cronFleet is an SCM fleet whose configuration needs no environment: the client secret is in a
// file, as a cron job's would be, and a debug log file rotates at 1 MB.
func cronFleet(t *testing.T, devices map[string][]string, extra string) (*fleet, *scmsim.Server, fleetSpec) {
	t.Helper()
	f, sim, spec := scmFleet(t, devices, "30d")
	secretFile := filepath.Join(f.dir, "scm-secret")
	if err := os.WriteFile(secretFile, []byte(scmsim.DefaultConfig().Clients["certfleet-sim"]), 0o600); err != nil {
		t.Fatal(err)
	}
	spec.Issuers = strings.Replace(spec.Issuers, "${env:E2E_SCM_SECRET}", "${file:"+secretFile+"}", 1)
	spec.Env = nil
	f.env = nil
	f.writeConfig(spec)
	f.appendConfig("logging:\n  file: {path: logs/certfleet.log, level: debug, max_size_mb: 1, max_backups: 3}\n" + extra)
	return f, sim, spec
}

func (f *fleet) appendConfig(text string) {
	f.t.Helper()
	file, err := os.OpenFile(f.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.WriteString("\n" + text); err != nil {
		f.t.Fatal(err)
	}
}

// cron runs certfleet as cron does: an empty environment (env -i), no terminal, stdin closed.
func (f *fleet) cron(args ...string) result {
	f.t.Helper()
	return f.cronWith(nil, args...)
}

// cronWith is cron with more global flags.
func (f *fleet) cronWith(global []string, args ...string) result {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := append([]string{"-i", filepath.Join(binDir, "certfleet"), "--config", f.config, "--plugin-dir", binDir}, global...)
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, "env", full...)
	cmd.Env = []string{}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatal(err)
	}
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

func (f *fleet) logFile() string {
	f.t.Helper()
	data, err := os.ReadFile(filepath.Join(f.dir, "logs", "certfleet.log"))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(data)
}

// TestCronQuietRun: a cron run of a healthy fleet prints nothing and exits 0; a failure prints one
// paragraph and exits non-zero; the log file holds the debug detail and rotates.
func TestCronQuietRun(t *testing.T) {
	f, sim, _ := cronFleet(t, map[string][]string{"web1": {"www", "api"}, "web2": {"shop"}}, "")

	promFile := filepath.Join(f.dir, "textfile", "certfleet.prom")
	os.MkdirAll(filepath.Dir(promFile), 0o755)
	for i, what := range []string{"enrolment", "nothing to do"} {
		res := f.cron("run", "-q", "--metrics-file", promFile)
		if res.code != 0 || res.stdout != "" || res.stderr != "" {
			t.Fatalf("cron run %d (%s): exit %d, stdout %q, stderr %q; want silence and 0", i+1, what, res.code, res.stdout, res.stderr)
		}
	}
	// The textfile for node_exporter, parsed with Prometheus's own parser.
	prom, err := os.Open(promFile)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(prom)
	prom.Close()
	if err != nil {
		t.Fatalf("%s does not parse: %v", promFile, err)
	}
	expiry := families["certfleet_certificate_expiry_timestamp_seconds"]
	if expiry == nil || len(expiry.Metric) != 3 || expiry.Metric[0].GetGauge().GetValue() < float64(time.Now().Add(60*24*time.Hour).Unix()) {
		t.Fatalf("expiry in the textfile: %v", expiry)
	}
	if runs := families["certfleet_runs_total"]; runs == nil || runs.Metric[0].GetCounter().GetValue() != 1 || families["go_goroutines"] != nil {
		t.Fatalf("the textfile holds one run's counters and no process metrics: %v", runs)
	}
	if len(sim.Orders()) != 3 {
		t.Fatalf("%d orders", len(sim.Orders()))
	}
	log := f.logFile()
	for _, want := range []string{"submitting the CSR to ca", "certfleet.plugin.pemdir", "run finished: run=1", "run finished: run=2"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log file lacks %q", want)
		}
	}
	if strings.Contains(log, scmsim.DefaultConfig().Clients["certfleet-sim"]) {
		t.Error("the client secret is in the log file")
	}

	// The CA fails every request: the forced renewal of one certificate fails.
	sim.FailNext(1000, 500, 0)
	res := f.cron("run", "-q", "--force", "shop")
	t.Logf("failure output:\n%s%s", res.stdout, res.stderr)
	paragraph := strings.TrimSpace(res.stdout)
	if res.code != 1 || res.stderr != "" || strings.Contains(paragraph, "\n\n") ||
		!strings.HasPrefix(paragraph, "certfleet: 1 of 1 certificates failed in run 3.") ||
		!strings.Contains(paragraph, "shop on web2 (renew, at step csr): ") || !strings.Contains(paragraph, "500") ||
		!strings.Contains(paragraph, "certfleet history shop") || !strings.Contains(paragraph, filepath.Join(f.dir, "logs", "certfleet.log")+" has the debug detail") {
		t.Fatalf("failure: exit %d\nstdout %q\nstderr %q\nwant exit 1 and one paragraph on stdout only", res.code, res.stdout, res.stderr)
	}
	sim.FailNext(0, 500, 0)

	// The log file rotates at max_size_mb: with 1 MB already written by earlier runs, the next
	// run starts a new file and keeps the old one as a backup.
	logPath := filepath.Join(f.dir, "logs", "certfleet.log")
	old, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	old.WriteString(strings.Repeat("earlier run detail\n", 1<<20/19))
	old.Close()
	if res := f.cron("run", "-q"); res.code != 0 || res.stdout+res.stderr != "" {
		t.Fatalf("run after the failure: exit %d %q %q", res.code, res.stdout, res.stderr)
	}
	backups, _ := filepath.Glob(filepath.Join(f.dir, "logs", "certfleet-*.log"))
	if len(backups) != 1 || !strings.Contains(f.logFile(), "run finished: run=4") || strings.Contains(f.logFile(), "earlier run detail") {
		t.Fatalf("after rotation: backups %v", backups)
	}

	// history shows what each run did, from the state alone: it runs without the CA secret.
	os.Remove(filepath.Join(f.dir, "scm-secret"))
	res = f.cron("history", "--output", "json", "shop")
	var runs []struct {
		Run     int64
		Outcome string
		Results []struct{ Certificate, Outcome, Step, Error string }
	}
	if err := json.Unmarshal([]byte(res.stdout), &runs); err != nil || res.code != 0 {
		t.Fatalf("history: exit %d, %v\n%s%s", res.code, err, res.stdout, res.stderr)
	}
	if len(runs) != 4 || runs[0].Run != 4 || runs[1].Outcome != "failed" || len(runs[1].Results) != 1 || runs[1].Results[0].Outcome != "failed" || runs[3].Results[0].Outcome != "deployed" {
		t.Fatalf("history of shop: %+v", runs)
	}
	if res := f.cron("status"); res.code != 0 || !strings.Contains(res.stdout, "shop") {
		t.Fatalf("status without the CA secret: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if res := f.cron("history"); res.code != 0 || !strings.Contains(res.stdout, "run 3 ") || !strings.Contains(res.stdout, "shop  web2  renew  failed") {
		t.Fatalf("history table: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}

	// status and history start no plugin: with a pin the plugin binary does not match they still
	// answer, where validate, which starts each plugin for its GetInfo, is refused.
	pins := filepath.Join(t.TempDir(), "pins.json")
	if err := os.WriteFile(pins, []byte(`{"version": 1, "plugins": {"pemdir": {"sha256": "`+strings.Repeat("0", 64)+`", "path": "/nowhere", "pinned_at": "2026-01-01T00:00:00Z"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	mismatch := []string{"--pins-file", pins}
	if res := f.cronWith(mismatch, "validate"); res.code == 0 || !strings.Contains(res.stderr, "pemdir") {
		t.Fatalf("validate with a mismatched pin: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	for _, args := range [][]string{{"status"}, {"history", "shop"}, {"status", "--output", "json"}} {
		if res := f.cronWith(mismatch, args...); res.code != 0 || !strings.Contains(res.stdout, "shop") {
			t.Fatalf("%v with a mismatched pin: exit %d\n%s%s", args, res.code, res.stdout, res.stderr)
		}
	}
}

// daemonProcess is a running `certfleet daemon`.
type daemonProcess struct {
	cmd  *exec.Cmd
	addr string
	// done is closed when the process has exited, with its exit code in code.
	done chan struct{}
	code int
}

func startDaemon(t *testing.T, f *fleet, addr string) *daemonProcess {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "certfleet"), "--config", f.config, "--plugin-dir", binDir, "daemon", "--listen", addr)
	cmd.Env = []string{}
	// A file, not a pipe: nothing can keep Wait waiting for a pipe to close.
	errFile, err := os.Create(filepath.Join(f.dir, "daemon.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	cmd.Stderr = errFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProcess{cmd: cmd, addr: addr, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			d.code = ee.ExitCode()
		}
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			out, _ := os.ReadFile(filepath.Join(f.dir, "daemon.stderr"))
			t.Logf("daemon stderr:\n%s", lastLines(string(out), 30))
		}
	})
	return d
}

type daemonHealth struct {
	Status  string
	Running bool
	NextRun time.Time `json:"next_run"`
	LastRun *struct {
		ID      int64
		Outcome string
	} `json:"last_run"`
	Config string
}

func (d *daemonProcess) health(t *testing.T) (daemonHealth, bool) {
	resp, err := http.Get("http://" + d.addr + "/healthz")
	if err != nil {
		return daemonHealth{}, false
	}
	defer resp.Body.Close()
	var h daemonHealth
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h, true
}

func (d *daemonProcess) waitFor(t *testing.T, what string, ok func(daemonHealth) bool) daemonHealth {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if h, up := d.health(t); up && ok(h) {
			return h
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("daemon: %s never happened", what)
	return daemonHealth{}
}

func (d *daemonProcess) metrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + d.addr + "/metrics")
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

func gauge(families map[string]*dto.MetricFamily, name string) float64 {
	f := families[name]
	if f == nil || len(f.Metric) == 0 {
		return -1
	}
	return f.Metric[0].GetGauge().GetValue()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDaemonReloadAndGracefulStop drives a real daemon process with real signals: SIGHUP with a
// broken configuration keeps the old one running (and says so), SIGHUP with a good one applies
// it, and a SIGTERM while an order is being placed lets that step finish and be recorded, so the
// next run carries on with exactly one order.
func TestDaemonReloadAndGracefulStop(t *testing.T) {
	const daemonSection = "daemon: {schedule: \"%s\", run_at_start: true, stop_timeout: 1m}\n"
	f, sim, spec := cronFleet(t, map[string][]string{"web1": {"www", "api"}}, fmt.Sprintf(daemonSection, "0 3 1 1 *"))
	good, err := os.ReadFile(f.config)
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, f, freeAddr(t))
	h := d.waitFor(t, "the first run", func(h daemonHealth) bool { return h.LastRun != nil })
	if h.LastRun.Outcome != "ok" || h.NextRun.Month() != time.January || h.NextRun.Hour() == 0 && h.NextRun.Minute() == 0 {
		t.Logf("health %+v", h)
	}
	if h.LastRun.Outcome != "ok" || len(sim.Orders()) != 2 {
		t.Fatalf("first run: %+v, %d orders", h, len(sim.Orders()))
	}
	if v := gauge(d.metrics(t), "certfleet_config_last_reload_successful"); v != 1 {
		t.Fatalf("config_last_reload_successful %v", v)
	}

	// A broken configuration is refused; the daemon keeps running the old one.
	if err := os.WriteFile(f.config, append(append([]byte{}, good...), "certificates: [oops\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	h = d.waitFor(t, "the refused reload", func(h daemonHealth) bool { return h.Status == "degraded" })
	if !strings.Contains(h.Config, "reload refused") || !strings.Contains(f.logFile(), "the new configuration is refused; the previous one keeps running") {
		t.Fatalf("refused reload: %+v\n%s", h, lastLines(f.logFile(), 10))
	}
	if v := gauge(d.metrics(t), "certfleet_config_last_reload_successful"); v != 0 {
		t.Fatalf("config_last_reload_successful after a refused reload: %v", v)
	}

	// A good configuration is applied: a new certificate, and a schedule that runs now.
	spec.Devices = map[string][]string{"web1": {"www", "api", "new"}}
	f.writeConfig(spec)
	cfg, _ := os.ReadFile(f.config)
	secretFile := filepath.Join(f.dir, "scm-secret")
	cfg = []byte(strings.Replace(string(cfg), "${env:E2E_SCM_SECRET}", "${file:"+secretFile+"}", 1))
	cfg = append(cfg, []byte("\nlogging:\n  file: {path: logs/certfleet.log, level: debug}\n"+fmt.Sprintf(daemonSection, "@every 1s"))...)
	if err := os.WriteFile(f.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	sim.SetLatency(3 * time.Second) // the order for "new" stays in flight long enough to be interrupted
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitFor(t, "the applied reload", func(h daemonHealth) bool { return h.Status == "ok" && h.Config == "ok" })

	// SIGTERM while the order for "new" is in flight.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(f.logFile(), "submitting the CSR to ca: certificate=new") {
		if time.Now().After(deadline) {
			t.Fatalf("the order for new was never sent\n%s", lastLines(f.logFile(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if d.code != 0 {
			t.Fatalf("daemon exit %d after SIGTERM", d.code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not stop after SIGTERM")
	}
	if n := len(sim.Orders()); n != 3 {
		t.Fatalf("%d orders after the stop; want 3 (the one in flight was placed once)", n)
	}
	store := f.openState()
	op, err := store.OpenOperation(context.Background(), "new")
	if err != nil || op == nil || op.Step != state.StepSubmitted || op.OrderRef == "" || op.SubmitState != state.SubmitPlaced {
		t.Fatalf("the operation in flight was not recorded as placed: %+v (%v)", op, err)
	}
	store.Close()
	if !strings.Contains(f.logFile(), "stopping: the step in flight finishes and is recorded") || !strings.Contains(f.logFile(), "daemon stopped") {
		t.Fatalf("log file:\n%s", lastLines(f.logFile(), 20))
	}

	// The next run resumes it: collected and deployed, no second order.
	sim.SetLatency(0)
	if res := f.cron("run", "-q"); res.code != 0 || res.stdout+res.stderr != "" {
		t.Fatalf("resume run: exit %d %q %q", res.code, res.stdout, res.stderr)
	}
	if n := len(sim.Orders()); n != 3 {
		t.Fatalf("%d orders after the resumed run; want 3", n)
	}
	if names := f.live("web1", "new").DNSNames; len(names) != 1 || names[0] != "new.example.com" {
		t.Fatalf("served names %v", names)
	}
}

// hookReceiver is a real HTTP receiver that records the bodies posted to it.
type hookReceiver struct {
	status int
	mu     sync.Mutex
	bodies []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, string(body))
	h.mu.Unlock()
	w.WriteHeader(h.status)
}

func (h *hookReceiver) posts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// TestRunNotifiesOncePerRun: a run that deploys sends one digest to each receiver; a receiver
// that fails does not fail the run, which says so in its quiet output; a run with nothing to tell
// sends nothing; the webhook's secret URL never reaches the log.
func TestRunNotifiesOncePerRun(t *testing.T) {
	good, broken := &hookReceiver{status: 200}, &hookReceiver{status: 500}
	goodSrv, brokenSrv := httptest.NewServer(good), httptest.NewServer(broken)
	defer goodSrv.Close()
	defer brokenSrv.Close()
	const secretPath = "/services/T000/B000/XXXXsecretXXXX"
	f, _, _ := cronFleet(t, map[string][]string{"web1": {"www"}}, fmt.Sprintf(`notifications:
  webhooks:
    - {name: team-chat, url: "%s%s", format: slack}
    - {name: broken, url: "%s/hook", format: teams}
`, goodSrv.URL, secretPath, brokenSrv.URL))

	res := f.cron("run", "-q")
	if res.code != 0 || res.stderr != "" || !strings.HasPrefix(res.stdout, "certfleet: the broken notification of run 1 was not delivered: webhook broken: the receiver answered 500") ||
		strings.Count(res.stdout, "\n") != 1 {
		t.Fatalf("run with a failing receiver: exit %d\nstdout %q\nstderr %q", res.code, res.stdout, res.stderr)
	}
	if posts := good.posts(); len(posts) != 1 || !strings.Contains(posts[0], "DEPLOYED www on web1 (enroll)") {
		t.Fatalf("team-chat received %q", posts)
	}
	if posts := broken.posts(); len(posts) != 1 || !strings.Contains(posts[0], "AdaptiveCard") {
		t.Fatalf("broken received %q", posts)
	}
	if res := f.cron("run", "-q"); res.code != 0 || res.stdout+res.stderr != "" || len(good.posts()) != 1 || len(broken.posts()) != 1 {
		t.Fatalf("a run with nothing to tell: exit %d %q %q, %d/%d posts", res.code, res.stdout, res.stderr, len(good.posts()), len(broken.posts()))
	}
	log := f.logFile()
	if !strings.Contains(log, "notification not delivered; the run itself is not affected") || strings.Contains(log, secretPath) {
		t.Fatalf("log file: the failure is missing or the secret URL is present:\n%s", lastLines(log, 20))
	}
}
