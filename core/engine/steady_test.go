package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/core/state"
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// readCounter counts how a run reads the deployments: whole (with the PEM bodies) or summaries.
type readCounter struct {
	state.Store
	mu        sync.Mutex
	whole     map[string]int
	all       int
	summaries int
	// due counts the deployments read whole by DueCAChecks.
	due map[string]int
}

func (r *readCounter) DueCAChecks(ctx context.Context, now, horizon time.Time) ([]state.Deployment, error) {
	ds, err := r.Store.DueCAChecks(ctx, now, horizon)
	r.mu.Lock()
	for _, d := range ds {
		r.due[d.Certificate]++
	}
	r.mu.Unlock()
	return ds, err
}

func (r *readCounter) Deployment(ctx context.Context, name string) (state.Deployment, bool, error) {
	r.mu.Lock()
	r.whole[name]++
	r.mu.Unlock()
	return r.Store.Deployment(ctx, name)
}

func (r *readCounter) Deployments(ctx context.Context) (map[string]state.Deployment, error) {
	r.mu.Lock()
	r.all++
	r.mu.Unlock()
	return r.Store.Deployments(ctx)
}

func (r *readCounter) DeploymentSummaries(ctx context.Context) (map[string]state.Deployment, error) {
	r.mu.Lock()
	r.summaries++
	r.mu.Unlock()
	return r.Store.DeploymentSummaries(ctx)
}

func (r *readCounter) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.whole, r.all, r.summaries, r.due = map[string]int{}, 0, 0, map[string]int{}
}

// TestARunReadsTheDeploymentsOnceWithoutThePEM: a run plans from one read of the deployments
// without their PEM bodies; only a certificate being renewed, or asked about at the CA, is read
// whole, and saving it keeps its PEM.
func TestARunReadsTheDeploymentsOnceWithoutThePEM(t *testing.T) {
	cfg := scmsim.DefaultConfig()
	_, iss, sqlite, device := scmWorld(t, cfg)
	store := &readCounter{Store: sqlite}
	store.reset()
	plugin := pemdir.New()
	opts := twoCertificateWorld(t, store, plugin, iss, device)
	ctx := context.Background()
	before, _, _ := sqlite.Deployment(ctx, "www")

	store.reset()
	report, err := New(opts).Run(ctx, RunOptions{})
	if err != nil || report.Results[0].Outcome != state.OutcomeUnchanged || report.Results[1].Outcome != state.OutcomeUnchanged {
		t.Fatalf("steady run: %+v %v", report.Results, err)
	}
	if store.summaries != 1 || store.all != 0 || len(store.whole) != 0 {
		t.Fatalf("a run with nothing due read the summaries %d times, all deployments whole %d times, and %v whole; want one summary read",
			store.summaries, store.all, store.whole)
	}

	// A forced renewal of www reads www whole (its previous certificate goes to the CA), no other.
	store.reset()
	report, err = New(opts).Run(ctx, RunOptions{Names: []string{"www"}, Force: true})
	if err != nil || report.Results[0].Outcome != state.OutcomeDeployed {
		t.Fatalf("forced renewal: %+v %v", report.Results, err)
	}
	if store.summaries != 1 || store.all != 0 || store.whole["www"] == 0 || store.whole["mail"] != 0 {
		t.Fatalf("renewal read summaries %d, all %d, whole %v", store.summaries, store.all, store.whole)
	}
	after, _, _ := sqlite.Deployment(ctx, "www")
	if after.CertPEM == "" || after.CertPEM == before.CertPEM || len(after.ChainPEM) == 0 {
		t.Fatalf("renewed deployment: PEM %q", after.CertPEM)
	}

	// A CA check due on every certificate reads each whole, once, from the index of the checks
	// due (not one by one), and its save keeps the PEM.
	opts.RevocationCheckInterval = time.Nanosecond
	store.reset()
	if report, err := New(opts).Run(ctx, RunOptions{}); err != nil || report.ExitCode() != ExitOK {
		t.Fatalf("run with CA checks: %+v %v", report.Results, err)
	}
	if store.due["www"] != 1 || store.due["mail"] != 1 || store.whole["www"] != 0 || store.whole["mail"] != 0 {
		t.Fatalf("CA checks read whole: %v from the checks due, %v one by one", store.due, store.whole)
	}
	mail, _, _ := sqlite.Deployment(ctx, "mail")
	if mail.CertPEM == "" || time.Since(mail.RevocationCheckedAt) > time.Minute {
		t.Fatalf("mail after the CA check: checked %s, PEM %q", mail.RevocationCheckedAt, mail.CertPEM)
	}
}

// inventoryAsks records, per Inventory call, whether the core asked for fingerprints only.
type inventoryAsks struct {
	sdk.Plugin
	mu   sync.Mutex
	asks []bool
}

func (p *inventoryAsks) Inventory(ctx context.Context, t sdk.Target) ([]sdk.DeviceCertificate, error) {
	p.mu.Lock()
	p.asks = append(p.asks, sdk.FingerprintsOnly(ctx))
	p.mu.Unlock()
	return p.Plugin.Inventory(ctx, t)
}

func (p *inventoryAsks) take() []bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	asks := p.asks
	p.asks = nil
	return asks
}

// TestInventoryAsksForFingerprintsUnlessItMayAdopt: a device whose certificates are all recorded
// is asked for fingerprints only; one with a certificate that may be adopted is asked for
// everything, and the adoption (which reads names, key and PEM) still works through a plugin
// that honours the request.
func TestInventoryAsksForFingerprintsUnlessItMayAdopt(t *testing.T) {
	cfg := scmsim.DefaultConfig()
	_, iss, store, device := scmWorld(t, cfg)
	plugin := &inventoryAsks{Plugin: pemdir.New()}
	opts := twoCertificateWorld(t, store, plugin, iss, device)
	ctx := context.Background()
	// Nothing was recorded: the plan's inventory is whole; the one after the commit checks
	// presence and bindings only.
	if asks := plugin.take(); len(asks) != 2 || asks[0] || !asks[1] {
		t.Fatalf("first run asked fingerprints only: %v; want [false true]", asks)
	}

	plan, err := New(opts).Plan(ctx, PlanOptions{})
	if err != nil || len(plan.Due()) != 0 {
		t.Fatalf("steady plan: %+v %v", plan.Items, err)
	}
	if asks := plugin.take(); len(asks) != 1 || !asks[0] {
		t.Fatalf("a steady plan asked fingerprints only: %v; want [true]", asks)
	}

	// mail is forgotten but still live: it may be adopted, so the device is asked for everything.
	mail, _, err := store.Deployment(ctx, "mail")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteDeployment(ctx, "mail"); err != nil {
		t.Fatal(err)
	}
	if _, err := New(opts).Plan(ctx, PlanOptions{NoAdopt: true}); err != nil {
		t.Fatal(err)
	}
	if asks := plugin.take(); len(asks) != 1 || !asks[0] {
		t.Fatalf("a plan that adopts nothing asked fingerprints only: %v; want [true]", asks)
	}
	report, err := New(opts).Run(ctx, RunOptions{})
	if err != nil || report.ExitCode() != ExitOK {
		t.Fatalf("adopting run: %+v %v", report.Results, err)
	}
	if asks := plugin.take(); len(asks) != 1 || asks[0] {
		t.Fatalf("a run that may adopt asked fingerprints only: %v; want [false]", asks)
	}
	adopted, ok, err := store.Deployment(ctx, "mail")
	if err != nil || !ok || !adopted.Adopted || adopted.Fingerprint != mail.Fingerprint || adopted.CertPEM != mail.CertPEM || adopted.KeyRef != mail.KeyRef {
		t.Fatalf("adopted mail: %+v %v %v; want the certificate deployed before (%s, key %s)", adopted, ok, err, mail.Fingerprint, mail.KeyRef)
	}
}

// twoCertificateWorld is www and mail on one pemdir device, enrolled by a first run.
func twoCertificateWorld(t *testing.T, store state.Store, plugin sdk.Plugin, iss issuer.Issuer, device string) Options {
	t.Helper()
	var certs []Certificate
	for _, name := range []string{"www", "mail"} {
		certs = append(certs, Certificate{Name: name, Device: "web1", Issuer: "ca", Subject: sdk.Subject{CommonName: name + ".example.com"},
			SANs: sdk.SANs{DNSNames: []string{name + ".example.com"}}, KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
			RenewBefore: 30 * 24 * time.Hour, Bindings: []sdk.Binding{{Kind: pemdir.BindingKind, Name: name}},
			IssuerOptions: map[string]any{"cert_type": "OV SSL"}})
	}
	opts := Options{
		Store: store, Plugins: func(string) (sdk.Plugin, error) { return plugin, nil },
		Issuers: map[string]issuer.Issuer{"ca": iss},
		Devices: map[string]Device{"web1": {Name: "web1", Plugin: "pemdir", Concurrency: 1,
			Target: sdk.Target{Name: "web1", Address: device, Options: sdk.Options{"links": []any{"www", "mail"}}}}},
		Certificates: certs, Backoff: 10 * time.Millisecond,
	}
	if report, err := New(opts).Run(context.Background(), RunOptions{}); err != nil || report.ExitCode() != ExitOK {
		t.Fatalf("first run: %+v %v", report.Results, err)
	}
	return opts
}
