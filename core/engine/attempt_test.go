package engine

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/core/state"
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// csrFault is pemdir with GenerateCSR's first answer lost (the key is made on the device, the
// core hears Unavailable) or, with wrongFirst, the first CSR made for other names; it records the
// attempt ID of every GenerateCSR.
type csrFault struct {
	*pemdir.Plugin
	wrongFirst bool

	mu       sync.Mutex
	attempts []string
}

func (p *csrFault) GenerateCSR(ctx context.Context, t sdk.Target, req sdk.CSRRequest) (sdk.CSR, error) {
	p.mu.Lock()
	p.attempts = append(p.attempts, req.AttemptID)
	first := len(p.attempts) == 1
	p.mu.Unlock()
	if first && p.wrongFirst {
		req.SANs.DNSNames = append(req.SANs.DNSNames, "not-asked-for.example.com")
	}
	csr, err := p.Plugin.GenerateCSR(ctx, t, req)
	if first && !p.wrongFirst && err == nil {
		return sdk.CSR{}, sdk.Unavailable("the answer was lost")
	}
	return csr, err
}

func (p *csrFault) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.attempts...)
}

func attemptEngine(t *testing.T, p sdk.Plugin) (*Engine, *state.SQLite, string) {
	t.Helper()
	_, iss, store, device := scmWorld(t, scmsim.DefaultConfig())
	return New(Options{
		Store: store, Plugins: func(string) (sdk.Plugin, error) { return p, nil },
		Issuers: map[string]issuer.Issuer{"ca": iss},
		Devices: map[string]Device{"web1": {Name: "web1", Plugin: "pemdir", Concurrency: 1,
			Target: sdk.Target{Name: "web1", Address: device, Options: sdk.Options{"links": []any{"www"}}}}},
		Certificates: []Certificate{{Name: "www", Device: "web1", Issuer: "ca", Subject: sdk.Subject{CommonName: "www.example.com"},
			SANs: sdk.SANs{DNSNames: []string{"www.example.com"}}, KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
			RenewBefore: 30 * 24 * time.Hour, Bindings: []sdk.Binding{{Kind: pemdir.BindingKind, Name: "www"}},
			IssuerOptions: map[string]any{"cert_type": "OV SSL"}}},
		CollectTimeout: time.Minute, Backoff: 10 * time.Millisecond,
	}), store, device
}

func keysOn(t *testing.T, device string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(device, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestResumedCSRKeepsItsAttemptID: GenerateCSR's answer is lost after pemdir made the key. The
// operation (recorded before the call, without a key_ref) is resumed by the next run, whose
// GenerateCSR carries the same attempt ID, the operation's; pemdir replaces the first key, so
// the device holds one key, the deployed one.
func TestResumedCSRKeepsItsAttemptID(t *testing.T) {
	p := &csrFault{Plugin: pemdir.New()}
	e, store, device := attemptEngine(t, p)
	ctx := context.Background()
	report, err := e.Run(ctx, RunOptions{})
	if err != nil || len(report.Results) != 1 || report.Results[0].Outcome != state.OutcomeFailed {
		t.Fatalf("first run: %+v (%v), want failed", report.Results, err)
	}
	op, err := store.OpenOperation(ctx, "www")
	if err != nil || op == nil || op.Step != state.StepStarted || op.KeyRef != "" {
		t.Fatalf("operation after the lost answer: %+v (%v)", op, err)
	}
	if got := p.seen(); len(got) != 1 || got[0] != op.ID {
		t.Fatalf("attempt IDs %q, want the operation's ID %q", got, op.ID)
	}
	if keys := keysOn(t, device); len(keys) != 1 {
		t.Fatalf("keys after the lost answer: %v, want the one the lost call made", keys)
	}

	report, err = e.Run(ctx, RunOptions{})
	if err != nil || report.Results[0].Outcome != state.OutcomeDeployed {
		t.Fatalf("resumed run: %+v (%v)", report.Results, err)
	}
	got := p.seen()
	if len(got) != 2 || got[1] != got[0] {
		t.Fatalf("attempt IDs %q: the resumed GenerateCSR must repeat the first one", got)
	}
	d, ok, err := store.Deployment(ctx, "www")
	if err != nil || !ok {
		t.Fatalf("deployment: %v %v", ok, err)
	}
	if keys := keysOn(t, device); len(keys) != 1 || keys[0] != d.KeyRef+".key" {
		t.Fatalf("keys on the device %v, want only the deployed %s", keys, d.KeyRef)
	}
}

// TestAbandonedCSRGetsANewAttempt: a CSR that fails verification abandons its operation and
// removes the key; the next operation asks with a new attempt ID, so it gets a new key.
func TestAbandonedCSRGetsANewAttempt(t *testing.T) {
	p := &csrFault{Plugin: pemdir.New(), wrongFirst: true}
	e, store, device := attemptEngine(t, p)
	ctx := context.Background()
	report, err := e.Run(ctx, RunOptions{})
	if err != nil || report.Results[0].Outcome != state.OutcomeFailed {
		t.Fatalf("first run: %+v (%v), want failed", report.Results, err)
	}
	if op, err := store.OpenOperation(ctx, "www"); err != nil || op != nil {
		t.Fatalf("the operation with the wrong CSR is still open: %+v (%v)", op, err)
	}
	if keys := keysOn(t, device); len(keys) != 0 {
		t.Fatalf("keys after the abandoned CSR: %v, want none", keys)
	}
	report, err = e.Run(ctx, RunOptions{})
	if err != nil || report.Results[0].Outcome != state.OutcomeDeployed {
		t.Fatalf("second run: %+v (%v)", report.Results, err)
	}
	if got := p.seen(); len(got) != 2 || got[0] == got[1] || got[1] == "" {
		t.Fatalf("attempt IDs %q: the new operation must ask with a new one", got)
	}
}
