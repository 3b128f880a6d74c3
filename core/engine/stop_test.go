package engine

import (
	"context"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/core/state"
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// TestStopEndsTheRunAtASafePoint: asked to stop while its order is pending at the CA, a run does
// not wait out collect_timeout; the order stays recorded, the next run collects it, and the CA
// sees one order.
func TestStopEndsTheRunAtASafePoint(t *testing.T) {
	cfg := scmsim.DefaultConfig()
	cfg.PendingCollects = 3
	sim, iss, store, device := scmWorld(t, cfg)
	plugin := pemdir.New()
	stop := make(chan struct{})
	e := New(Options{
		Store: store, Plugins: func(string) (sdk.Plugin, error) { return plugin, nil },
		Issuers: map[string]issuer.Issuer{"ca": iss},
		Devices: map[string]Device{"web1": {Name: "web1", Plugin: "pemdir", Concurrency: 1,
			Target: sdk.Target{Name: "web1", Address: device, Options: sdk.Options{"links": []any{"www"}}}}},
		Certificates: []Certificate{{Name: "www", Device: "web1", Issuer: "ca", Subject: sdk.Subject{CommonName: "www.example.com"},
			SANs: sdk.SANs{DNSNames: []string{"www.example.com"}}, KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
			RenewBefore: 30 * 24 * time.Hour, Bindings: []sdk.Binding{{Kind: pemdir.BindingKind, Name: "www"}},
			IssuerOptions: map[string]any{"cert_type": "OV SSL"}}},
		CollectTimeout: time.Hour, Backoff: 10 * time.Second,
		// The shutdown request arrives once the order is placed and recorded.
		AfterStep: func(op *state.Operation) {
			if op.Step == state.StepSubmitted {
				select {
				case <-stop:
				default:
					close(stop)
				}
			}
		},
	})
	started := time.Now()
	report, err := e.Run(context.Background(), RunOptions{Stop: stop})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(started); took > 8*time.Second {
		t.Fatalf("the stopped run took %s: it waited for the pending order", took)
	}
	if len(report.Results) != 1 || report.Results[0].Outcome != state.OutcomePending || report.Results[0].Error != ErrStopped.Error() {
		t.Fatalf("results %+v", report.Results)
	}
	op, err := store.OpenOperation(context.Background(), "www")
	if err != nil || op == nil || op.Step != state.StepSubmitted || op.OrderRef == "" || op.Attempts != 0 {
		t.Fatalf("operation after the stop: %+v (%v)", op, err)
	}
	runs, _ := store.Runs(context.Background(), 1)
	if runs[0].Outcome != "interrupted" {
		t.Fatalf("run outcome %q", runs[0].Outcome)
	}

	e.opts.AfterStep, e.opts.Backoff = nil, 10*time.Millisecond
	report, err = e.Run(context.Background(), RunOptions{})
	if err != nil || report.Results[0].Outcome != state.OutcomeDeployed || len(sim.Orders()) != 1 {
		t.Fatalf("resumed run: %+v (%v), %d orders", report.Results, err, len(sim.Orders()))
	}
}
