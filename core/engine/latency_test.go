package engine

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/acme"
	"github.com/certfleet/certfleet/core/issuer/acme/pebblesim"
	"github.com/certfleet/certfleet/core/issuer/scm"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/core/state"
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/hashicorp/go-hclog"
)

// slowDevices is the pemdir plugin with every device call delayed by latency (a management API's
// round trip), timing each device's calls and recording its commits. The work is the real
// plugin's; only the wait is added.
type slowDevices struct {
	sdk.Plugin
	latency time.Duration

	mu      sync.Mutex
	busy    map[string]time.Duration // call time per device
	calls   map[string][]string      // the calls per device, in order
	commits map[string][]time.Time
	// firstCSR is when the first GenerateCSR was made.
	firstCSR time.Time
	// events, when set, gets "Commit <device>" for each commit.
	events *eventLog
	// order is every call as "<call> <device>", in the order they ended.
	order []string
}

// eventLog is the order in which things happened, across devices and CAs.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(e string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func newSlowDevices(latency time.Duration) *slowDevices {
	return &slowDevices{Plugin: pemdir.New(), latency: latency, busy: map[string]time.Duration{},
		calls: map[string][]string{}, commits: map[string][]time.Time{}}
}

// call waits the latency (or until ctx ends), runs f and records the time it took.
func (s *slowDevices) call(ctx context.Context, device, name string, f func() error) error {
	started := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.latency):
	}
	err := f()
	s.mu.Lock()
	s.busy[device] += time.Since(started)
	s.calls[device] = append(s.calls[device], name)
	s.order = append(s.order, name+" "+device)
	if name == "GenerateCSR" && s.firstCSR.IsZero() {
		s.firstCSR = started
	}
	if name == "Commit" && err == nil {
		s.commits[device] = append(s.commits[device], time.Now())
		s.events.add("Commit " + device)
	}
	s.mu.Unlock()
	return err
}

func (s *slowDevices) Inventory(ctx context.Context, t sdk.Target) (out []sdk.DeviceCertificate, err error) {
	err = s.call(ctx, t.Name, "Inventory", func() error { out, err = s.Plugin.Inventory(ctx, t); return err })
	return out, err
}

func (s *slowDevices) GenerateCSR(ctx context.Context, t sdk.Target, req sdk.CSRRequest) (out sdk.CSR, err error) {
	err = s.call(ctx, t.Name, "GenerateCSR", func() error { out, err = s.Plugin.GenerateCSR(ctx, t, req); return err })
	return out, err
}

func (s *slowDevices) ImportCert(ctx context.Context, t sdk.Target, req sdk.ImportRequest) (out sdk.ImportResult, err error) {
	err = s.call(ctx, t.Name, "ImportCert", func() error { out, err = s.Plugin.ImportCert(ctx, t, req); return err })
	return out, err
}

func (s *slowDevices) Bind(ctx context.Context, t sdk.Target, req sdk.BindRequest) (out sdk.BindResult, err error) {
	err = s.call(ctx, t.Name, "Bind", func() error { out, err = s.Plugin.Bind(ctx, t, req); return err })
	return out, err
}

func (s *slowDevices) Commit(ctx context.Context, t sdk.Target, req sdk.CommitRequest) (out sdk.CommitResult, err error) {
	err = s.call(ctx, t.Name, "Commit", func() error { out, err = s.Plugin.Commit(ctx, t, req); return err })
	return out, err
}

func (s *slowDevices) Rollback(ctx context.Context, t sdk.Target, token []byte) error {
	return s.call(ctx, t.Name, "Rollback", func() error { return s.Plugin.Rollback(ctx, t, token) })
}

func (s *slowDevices) Cleanup(ctx context.Context, t sdk.Target, objects []sdk.ObjectRef) (out []sdk.CleanupResult, err error) {
	err = s.call(ctx, t.Name, "Cleanup", func() error { out, err = s.Plugin.Cleanup(ctx, t, objects); return err })
	return out, err
}

// firstCommit is the earliest commit; commitsPer counts the commits of each device.
func (s *slowDevices) firstCommit() (first time.Time, commitsPer map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	commitsPer = map[string]int{}
	for d, ts := range s.commits {
		commitsPer[d] = len(ts)
		for _, t := range ts {
			if first.IsZero() || t.Before(first) {
				first = t
			}
		}
	}
	return first, commitsPer
}

// timedIssuer times and counts the calls made to a CA account, and the most in flight at once.
type timedIssuer struct {
	issuer.Issuer
	mu                    sync.Mutex
	busy                  time.Duration
	calls                 map[string]int
	inFlight, maxInFlight int
	// events, when set, gets "issued" for each Collect that returns a certificate.
	events *eventLog
}

// start counts a call in flight; the returned func records its end.
func (t *timedIssuer) start(name string) func() {
	started := time.Now()
	t.mu.Lock()
	t.inFlight++
	t.maxInFlight = max(t.maxInFlight, t.inFlight)
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.inFlight--
		t.busy += time.Since(started)
		if t.calls == nil {
			t.calls = map[string]int{}
		}
		t.calls[name]++
	}
}

func (t *timedIssuer) Submit(ctx context.Context, req issuer.Request) (issuer.OrderRef, error) {
	defer t.start("Submit")()
	return t.Issuer.Submit(ctx, req)
}

func (t *timedIssuer) Find(ctx context.Context, req issuer.Request) (issuer.OrderRef, bool, error) {
	defer t.start("Find")()
	return t.Issuer.Find(ctx, req)
}

func (t *timedIssuer) Collect(ctx context.Context, ref issuer.OrderRef) (issuer.Result, error) {
	defer t.start("Collect")()
	res, err := t.Issuer.Collect(ctx, ref)
	if err == nil && res.State == issuer.Issued {
		t.events.add("issued")
	}
	return res, err
}

func (t *timedIssuer) Revoke(ctx context.Context, ref issuer.OrderRef, cert *x509.Certificate, reason issuer.RevokeReason) error {
	defer t.start("Revoke")()
	return t.Issuer.Revoke(ctx, ref, cert, reason)
}

// startSCM starts the SCM simulator with latency on every answer and returns an issuer for it.
func startSCM(tb testing.TB, latency time.Duration, pendingCollects int) (*scmsim.Server, issuer.Issuer) {
	tb.Helper()
	cfg := scmsim.DefaultConfig()
	cfg.PendingCollects = pendingCollects
	sim, err := scmsim.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(sim.Close)
	sim.SetLatency(latency)
	iss, err := scm.New(scm.Config{Name: "ca", BaseURL: sim.URL(), TokenURL: sim.TokenURL(), OrgID: 1234, CABundlePEM: sim.TLSCACertPEM(),
		ClientID: "certfleet-sim", ClientSecret: cfg.Clients["certfleet-sim"]})
	if err != nil {
		tb.Fatal(err)
	}
	return sim, iss
}

// slowFleet is devices×perDevice certificates to enroll on pemdir devices behind slowDevices.
type slowFleet struct {
	devices map[string]Device
	certs   []Certificate
}

func newSlowFleet(tb testing.TB, devices, perDevice int) slowFleet {
	tb.Helper()
	root := tb.TempDir()
	f := slowFleet{devices: map[string]Device{}}
	for d := 0; d < devices; d++ {
		name := fmt.Sprintf("dev%03d", d)
		dir := filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			tb.Fatal(err)
		}
		links := make([]any, perDevice)
		for i := range links {
			links[i] = fmt.Sprintf("site%02d", i)
		}
		f.devices[name] = Device{Name: name, Plugin: "pemdir", Concurrency: 1,
			Target: sdk.Target{Name: name, Address: dir, Options: sdk.Options{"links": links}}}
		for i := 0; i < perDevice; i++ {
			host := fmt.Sprintf("site%02d.%s.example.com", i, name)
			f.certs = append(f.certs, Certificate{
				Name: fmt.Sprintf("%s-site%02d", name, i), Device: name, Issuer: "ca",
				Subject: sdk.Subject{CommonName: host}, SANs: sdk.SANs{DNSNames: []string{host}},
				KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}, RenewBefore: 30 * 24 * time.Hour,
				Bindings:      []sdk.Binding{{Kind: pemdir.BindingKind, Name: links[i].(string)}},
				IssuerOptions: map[string]any{"cert_type": "OV SSL"},
			})
		}
	}
	return f
}

// latencyBound is the shortest a run can take given its calls and the concurrency limits: the
// CA account's call time over its slots, the busiest device's over its slots, and all device call
// time over the workers, whichever is longest.
type latencyBound struct{ ca, device, workers time.Duration }

func boundOf(dev *slowDevices, iss *timedIssuer, workers, perIssuer, perDevice int) latencyBound {
	dev.mu.Lock()
	var all, busiest time.Duration
	for _, b := range dev.busy {
		all += b
		busiest = max(busiest, b)
	}
	dev.mu.Unlock()
	iss.mu.Lock()
	ca := iss.busy
	iss.mu.Unlock()
	return latencyBound{ca: ca / time.Duration(perIssuer), device: busiest / time.Duration(perDevice), workers: all / time.Duration(workers)}
}

func (b latencyBound) max() time.Duration { return max(b.ca, b.device, b.workers) }

// BenchmarkLatencyBound enrolls 1,000 certificates on 100 devices with 50 ms on every CA and
// device call (the SCM simulator, whose orders answer "pending" once, and pemdir devices), at
// the default limits: 8 workers, 4 calls per CA account, one call per device. It reports the run
// time against the latency bound the limits set, and when the first device committed.
//
//	go test ./core/engine -run '^$' -bench LatencyBound -benchtime 1x
func BenchmarkLatencyBound(b *testing.B) {
	const (
		devices, perDevice = 100, 10
		latency            = 50 * time.Millisecond
		workers, perIssuer = 8, 4
	)
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		_, ca := startSCM(b, latency, 1)
		iss := &timedIssuer{Issuer: ca}
		dev := newSlowDevices(latency)
		fleet := newSlowFleet(b, devices, perDevice)
		store, err := state.Open(context.Background(), filepath.Join(b.TempDir(), "state.db"))
		if err != nil {
			b.Fatal(err)
		}
		e := New(Options{
			Store: store, Plugins: func(string) (sdk.Plugin, error) { return dev, nil },
			Issuers: map[string]issuer.Issuer{"ca": iss}, Devices: fleet.devices, Certificates: fleet.certs,
			Workers: workers, PerIssuer: perIssuer,
		})
		b.StartTimer()
		started := time.Now()
		report, err := e.Run(sdk.WithLogger(context.Background(), hclog.NewNullLogger()), RunOptions{})
		took := time.Since(started)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		deployed := 0
		for _, r := range report.Results {
			if r.Outcome == state.OutcomeDeployed {
				deployed++
			}
		}
		first, commits := dev.firstCommit()
		if deployed != devices*perDevice || len(commits) != devices {
			b.Fatalf("%d deployed, %d devices committed", deployed, len(commits))
		}
		var counts []string
		for d, c := range commits {
			if c != 1 {
				counts = append(counts, fmt.Sprintf("%s: %d", d, c))
			}
		}
		sort.Strings(counts)
		if len(counts) > 0 {
			b.Fatalf("devices committed more than once: %v", counts)
		}
		bound := boundOf(dev, iss, workers, perIssuer, 1)
		b.ReportMetric(took.Seconds(), "run-s")
		b.ReportMetric(bound.max().Seconds(), "bound-s")
		b.ReportMetric(bound.ca.Seconds(), "ca-bound-s")
		b.ReportMetric(bound.workers.Seconds(), "worker-bound-s")
		b.ReportMetric(took.Seconds()/bound.max().Seconds(), "x-bound")
		b.ReportMetric(first.Sub(started).Seconds(), "first-commit-s")
		b.ReportMetric(dev.firstCSR.Sub(started).Seconds(), "first-csr-s")
		iss.mu.Lock()
		b.ReportMetric(float64(iss.calls["Collect"])/float64(devices*perDevice), "collects/cert")
		iss.mu.Unlock()
		store.Close()
		b.StartTimer()
	}
}

// BenchmarkACMESequential enrolls certificates one run after the other against Pebble (every
// authorization valid, as with pre-validated domains), as cron runs for one certificate each
// would: the time per certificate is the CA's and the engine's own waits, not the devices'.
//
//	go test ./core/engine -run '^$' -bench ACMESequential -benchtime 1x
func BenchmarkACMESequential(b *testing.B) {
	const certs = 20
	ctx := sdk.WithLogger(context.Background(), hclog.NewNullLogger())
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		pebble, err := pebblesim.Start(pebblesim.Config{ValidityDays: 90})
		if err != nil {
			b.Fatal(err)
		}
		kid, hmac := pebble.EAB()
		ca, err := acme.New(acme.Config{Name: "ca", DirectoryURL: pebble.DirectoryURL(), EAB: acme.EAB{KeyID: kid, HMACKey: hmac},
			TLS: acme.TLSConfig{CABundlePEM: pebble.TLSCACertPEM()}}, acme.NewMemoryAccountStore())
		if err != nil {
			b.Fatal(err)
		}
		fleet := newSlowFleet(b, 1, certs)
		for i := range fleet.certs {
			fleet.certs[i].IssuerOptions = nil
		}
		store, err := state.Open(ctx, filepath.Join(b.TempDir(), "state.db"))
		if err != nil {
			b.Fatal(err)
		}
		dev := newSlowDevices(0)
		e := New(Options{
			Store: store, Plugins: func(string) (sdk.Plugin, error) { return dev, nil },
			Issuers: map[string]issuer.Issuer{"ca": ca}, Devices: fleet.devices, Certificates: fleet.certs,
		})
		// The account is registered once, as on the first run of a real installation.
		if _, err := ca.Register(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		started := time.Now()
		for _, c := range fleet.certs {
			report, err := e.Run(ctx, RunOptions{Names: []string{c.Name}})
			if err != nil || report.ExitCode() != ExitOK {
				b.Fatalf("%s: %+v (%v)", c.Name, report.Results, err)
			}
		}
		took := time.Since(started)
		b.StopTimer()
		b.ReportMetric(took.Seconds()/certs, "s/cert")
		store.Close()
		pebble.Close()
		b.StartTimer()
	}
}
