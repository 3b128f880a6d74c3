package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

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
}

func (c *countingPlugin) Inventory(ctx context.Context, t sdk.Target) ([]sdk.DeviceCertificate, error) {
	c.inventories.Add(1)
	return c.Plugin.Inventory(ctx, t)
}

// fleet is a deployed fleet of pemdir devices with state that says everything is current.
type fleet struct {
	engine  *Engine
	counter *countingPlugin
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
			if err := store.SaveDeployment(ctx, state.Deployment{
				Certificate: c.Name, Device: name, Issuer: "ca", CertRef: imp.CertRef, KeyRef: csr.KeyRef, OrderRef: "order",
				Serial: desc.Serial, Fingerprint: desc.SHA256Fingerprint, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
				SpecHash: specHash(c), Bindings: bindingKeys(c.Bindings), DeployedAt: now, RevocationCheckedAt: now,
			}); err != nil {
				b.Fatal(err)
			}
			all = append(all, c)
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
	e := New(Options{
		Store: store, Plugins: func(string) (sdk.Plugin, error) { return counter, nil },
		Issuers: nil, Devices: devs, Certificates: all,
	})
	return &fleet{engine: e, counter: counter}
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
