package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/scm"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/core/lease"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/core/state/pgtest"
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// An instance whose device claim is taken over while it works (it paused longer than the claim's
// lifetime) cannot record its next step, so it never places the order; the instance that took the
// claim resumes the operation and places exactly one.
func TestSharedRunStopsWhenItsClaimIsTakenOver(t *testing.T) {
	ctx := context.Background()
	store, err := state.OpenPostgres(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	simCfg := scmsim.DefaultConfig()
	simCfg.PendingCollects = 0
	sim, err := scmsim.New(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	iss, err := scm.New(scm.Config{Name: "ca", BaseURL: sim.URL(), TokenURL: sim.TokenURL(), ClientID: "certfleet-sim",
		ClientSecret: simCfg.Clients["certfleet-sim"], OrgID: 1234, CABundlePEM: sim.TLSCACertPEM()})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dev := Device{Name: "web1", Plugin: "pemdir", Concurrency: 1,
		Target: sdk.Target{Name: "web1", Address: dir, Options: sdk.Options{"links": []any{"www"}}}}
	cert := Certificate{Name: "www", Device: "web1", Issuer: "ca", Subject: sdk.Subject{CommonName: "www.example.com"},
		SANs: sdk.SANs{DNSNames: []string{"www.example.com"}}, KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		RenewBefore: 30 * 24 * time.Hour, Bindings: []sdk.Binding{{Kind: pemdir.BindingKind, Name: "www"}},
		IssuerOptions: map[string]any{"cert_type": "OV SSL", "term": 90}}
	plugin := pemdir.New()
	instance := func(name string, afterStep func(*state.Operation)) *Engine {
		claims := lease.New(store.Pool(), name, time.Minute)
		return New(Options{
			Store: store, Plugins: func(string) (sdk.Plugin, error) { return plugin, nil },
			Issuers: map[string]issuer.Issuer{"ca": iss}, Devices: map[string]Device{"web1": dev}, Certificates: []Certificate{cert},
			Shared:    &Sharing{ClaimDevice: claims.ClaimDevice, Wait: 5 * time.Second, Retry: 100 * time.Millisecond},
			AfterStep: afterStep, Backoff: 10 * time.Millisecond,
		})
	}

	// A records the CSR, then "pauses": its claim expires and B takes the device over.
	b := lease.New(store.Pool(), "b", time.Minute)
	var bClaim *lease.Claim
	a := instance("a", func(op *state.Operation) {
		if op.Step != state.StepCSR || bClaim != nil {
			return
		}
		if _, err := store.Pool().Exec(ctx, `UPDATE leases SET expires_at = now() WHERE name = 'device/web1'`); err != nil {
			t.Error(err)
		}
		var err error
		if bClaim, err = b.Claim(ctx, "device/web1"); err != nil {
			t.Error(err)
		}
	})
	report, err := a.Run(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Results) != 1 || report.Results[0].Outcome != state.OutcomeFailed || !strings.Contains(report.Results[0].Error, state.ErrFenced.Error()) {
		t.Fatalf("A's result: %+v; want failed with %q", report.Results, state.ErrFenced)
	}
	if n := len(sim.Orders()); n != 0 {
		t.Fatalf("A placed %d orders after losing its claim", n)
	}
	op, err := store.OpenOperation(ctx, "www")
	if err != nil || op == nil || op.Step != state.StepCSR || op.SubmitState != state.SubmitNone {
		t.Fatalf("the operation after A stopped: %+v, %v", op, err)
	}

	// B gives the claim back (as a run does when it ends); an instance then resumes and orders once.
	if bClaim == nil {
		t.Fatal("B never claimed the device")
	}
	if err := bClaim.Release(ctx); err != nil {
		t.Fatal(err)
	}
	report, err = instance("c", nil).Run(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Results) != 1 || report.Results[0].Outcome != state.OutcomeDeployed || report.Results[0].Action != string(ActionResume) {
		t.Fatalf("the resuming run: %+v", report.Results)
	}
	if n := len(sim.Orders()); n != 1 {
		t.Fatalf("%d orders; want exactly 1", n)
	}
	if _, ok, _ := store.Deployment(ctx, "www"); !ok {
		t.Fatal("not deployed")
	}
}
