package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/pluginhost"
	"github.com/certfleet/certfleet/core/state"
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/hashicorp/go-hclog"
)

// countingPlugin counts the device calls a plan makes.
type countingPlugin struct {
	sdk.Plugin
	inventories atomic.Int64
	infos       atomic.Int64
}

func (c *countingPlugin) Inventory(ctx context.Context, t sdk.Target) ([]sdk.DeviceCertificate, error) {
	c.inventories.Add(1)
	return c.Plugin.Inventory(ctx, t)
}

func (c *countingPlugin) Info(ctx context.Context) (sdk.Info, error) {
	c.infos.Add(1)
	return c.Plugin.Info(ctx)
}

// countingIssuer counts the CA calls of a run; a healthy fleet's run makes none.
type countingIssuer struct {
	issuer.Issuer
	calls atomic.Int64
}

func (c *countingIssuer) Name() string { return "ca" }

func (c *countingIssuer) Capabilities() issuer.Capabilities { return issuer.Capabilities{} }

func (c *countingIssuer) Submit(context.Context, issuer.Request) (issuer.OrderRef, error) {
	c.calls.Add(1)
	return "", errors.New("no order expected")
}

func (c *countingIssuer) Find(context.Context, issuer.Request) (issuer.OrderRef, bool, error) {
	c.calls.Add(1)
	return "", false, errors.New("no order expected")
}

func (c *countingIssuer) Collect(context.Context, issuer.OrderRef) (issuer.Result, error) {
	c.calls.Add(1)
	return issuer.Result{}, errors.New("no collect expected")
}

// fleet is a deployed fleet of pemdir devices with state that says everything is current.
type fleet struct {
	engine  *Engine
	counter *countingPlugin
	ca      *countingIssuer
}

// newFleet deploys certs certificates over devices pemdir devices: keys, CSRs, a test CA's
// certificates and live links on disk, and matching deployments in a state database.
func newFleet(b *testing.B, devices, certs int) *fleet {
	b.Helper()
	store, err := state.Open(context.Background(), filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	return newFleetOn(b, store, devices, certs)
}

// newFleetOn is newFleet with the deployments recorded in store.
func newFleetOn(b *testing.B, store state.Store, devices, certs int) *fleet {
	b.Helper()
	ctx := sdk.WithLogger(context.Background(), hclog.NewNullLogger())
	root := b.TempDir()
	ca, err := conformance.NewTestCA()
	if err != nil {
		b.Fatal(err)
	}
	direct := pemdir.New()
	devs := map[string]Device{}
	var all []Certificate
	var deployments []state.Deployment
	perDevice := certs / devices
	for d := 0; d < devices; d++ {
		name := fmt.Sprintf("web%03d", d)
		dir := filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		links := make([]any, perDevice)
		for i := range links {
			links[i] = fmt.Sprintf("site%02d", i)
		}
		target := sdk.Target{Name: name, Address: dir, Options: sdk.Options{"links": links}}
		devs[name] = Device{Name: name, Plugin: "pemdir", Target: target, Concurrency: 1}
		for i := 0; i < perDevice; i++ {
			host := fmt.Sprintf("site%02d.%s.example.com", i, name)
			c := Certificate{
				Name: fmt.Sprintf("%s-site%02d", name, i), Device: name, Issuer: "ca",
				Subject: sdk.Subject{CommonName: host}, SANs: sdk.SANs{DNSNames: []string{host}},
				KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}, RenewBefore: 30 * 24 * time.Hour,
				Bindings: []sdk.Binding{{Kind: pemdir.BindingKind, Name: links[i].(string)}},
			}
			csr, err := direct.GenerateCSR(ctx, target, sdk.CSRRequest{NameHint: c.Name, KeySpec: c.KeySpec, Subject: c.Subject, SANs: c.SANs})
			if err != nil {
				b.Fatal(err)
			}
			leaf, err := ca.SignCSR(csr.PEM, 90*24*time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			imp, err := direct.ImportCert(ctx, target, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(leaf), ChainPEM: ca.ChainPEM()})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := direct.Bind(ctx, target, sdk.BindRequest{CertRef: imp.CertRef, Bindings: c.Bindings}); err != nil {
				b.Fatal(err)
			}
			desc := sdk.Describe(leaf)
			now := time.Now()
			// Recorded as a run records it, PEM bodies included (what makes a deployment large).
			deployments = append(deployments, state.Deployment{
				Certificate: c.Name, Device: name, Issuer: "ca", CertRef: imp.CertRef, KeyRef: csr.KeyRef, OrderRef: "order",
				Serial: desc.Serial, Fingerprint: desc.SHA256Fingerprint, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
				CertPEM: sdk.EncodeCertificatePEM(leaf), ChainPEM: ca.ChainPEM(),
				SpecHash: specHash(c), Bindings: bindingKeys(c.Bindings), DeployedAt: now, RevocationCheckedAt: now,
			})
			all = append(all, c)
		}
	}
	for _, d := range deployments {
		if err := store.SaveDeployment(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	bin, err := conformance.BuildPlugin(b.TempDir(), "github.com/certfleet/certfleet/examples/plugin-pemdir/cmd/certfleet-plugin-pemdir")
	if err != nil {
		b.Fatal(err)
	}
	host := pluginhost.New(pluginhost.Options{Dirs: []string{filepath.Dir(bin)}, SkipPATH: true, Logger: hclog.NewNullLogger()})
	b.Cleanup(host.Close)
	p, err := host.Plugin("pemdir")
	if err != nil {
		b.Fatal(err)
	}
	counter := &countingPlugin{Plugin: p}
	calls := &countingIssuer{}
	e := New(Options{
		Store: store, Plugins: func(string) (sdk.Plugin, error) { return counter, nil },
		Issuers: map[string]issuer.Issuer{"ca": calls}, Devices: devs, Certificates: all,
	})
	return &fleet{engine: e, counter: counter, ca: calls}
}

// BenchmarkNothingDue plans and runs 5,000 current certificates on 500 pemdir devices: the cost
// of a cron run on a healthy fleet. A plan must make one Inventory call per device.
func BenchmarkNothingDue(b *testing.B) {
	f := newFleet(b, 500, 5000)
	ctx := context.Background()
	b.Run("plan", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			f.counter.inventories.Store(0)
			plan, err := f.engine.Plan(ctx, PlanOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if due := len(plan.Due()); due != 0 {
				b.Fatalf("%d certificates due; want none", due)
			}
			if n := f.counter.inventories.Load(); n != 500 {
				b.Fatalf("%d Inventory calls for 500 devices", n)
			}
		}
		b.ReportMetric(float64(f.counter.inventories.Load()), "inventory-calls/op")
	})
	b.Run("run", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			f.counter.inventories.Store(0)
			report, err := f.engine.Run(ctx, RunOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if code := report.ExitCode(); code != ExitOK || len(report.Results) != 5000 {
				b.Fatalf("exit code %d with %d results", code, len(report.Results))
			}
			if n := f.counter.inventories.Load(); n != 500 {
				b.Fatalf("%d Inventory calls for 500 devices", n)
			}
		}
		b.ReportMetric(float64(f.counter.inventories.Load()), "inventory-calls/op")
	})
}

// BenchmarkFleetSteadyState is a healthy fleet's cron run, plan and status at 10,000 and 20,000
// certificates on 1,000 pemdir devices, deployments recorded with their PEM bodies: a run must
// make exactly one Inventory per device and no CA call, and cost (time, memory) in proportion
// to the fleet. The targets (#24): run ≤ 1 s and ≤ 100 MiB at 10,000, status ≤ 0.3 s,
// 20,000 at most 2.1× 10,000.
func BenchmarkFleetSteadyState(b *testing.B) {
	parent := b
	for _, certs := range []int{10000, 20000} {
		const devices = 1000
		var f *fleet
		ctx := context.Background()
		// The fleet is built once, on first use, and lives as long as the parent benchmark: a
		// sub-benchmark's function runs several times, and deploying it takes longer than a run.
		setup := func(b *testing.B) {
			if f == nil {
				f = newFleet(parent, devices, certs)
				// Records the first results, so the measured runs are steady ones.
				if _, err := f.engine.Run(ctx, RunOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run(fmt.Sprintf("%dk/run", certs/1000), func(b *testing.B) {
			setup(b)
			b.ReportAllocs()
			defer reportCPU(b)()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f.counter.inventories.Store(0)
				f.ca.calls.Store(0)
				report, err := f.engine.Run(ctx, RunOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if code := report.ExitCode(); code != ExitOK || len(report.Results) != certs {
					b.Fatalf("exit code %d with %d results", code, len(report.Results))
				}
				if n := f.counter.inventories.Load(); n != devices {
					b.Fatalf("%d Inventory calls for %d devices", n, devices)
				}
				if n := f.ca.calls.Load(); n != 0 {
					b.Fatalf("%d CA calls in a run with nothing due", n)
				}
			}
			b.ReportMetric(float64(f.counter.inventories.Load()), "inventory-calls/op")
			b.ReportMetric(float64(f.ca.calls.Load()), "ca-calls/op")
		})
		b.Run(fmt.Sprintf("%dk/plan", certs/1000), func(b *testing.B) {
			setup(b)
			b.ReportAllocs()
			defer reportCPU(b)()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				plan, err := f.engine.Plan(ctx, PlanOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if due := len(plan.Due()); due != 0 {
					b.Fatalf("%d certificates due; want none", due)
				}
			}
		})
		b.Run(fmt.Sprintf("%dk/status", certs/1000), func(b *testing.B) {
			setup(b)
			b.ReportAllocs()
			defer reportCPU(b)()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rows, err := f.engine.Status(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if len(rows) != certs || rows[0].LastOutcome != string(state.OutcomeUnchanged) {
					b.Fatalf("%d status rows, first %+v", len(rows), rows[0])
				}
			}
		})
	}
}
