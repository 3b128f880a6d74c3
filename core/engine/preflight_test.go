package engine

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/core/state"
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// contract10 is the pemdir plugin as a plugin built before contract 1.1 looks to the core: the
// same calls, without CheckBindings, reporting minor version 0.
type contract10 struct{ sdk.Plugin }

func (p contract10) Info(ctx context.Context) (sdk.Info, error) {
	info, err := p.Plugin.Info(ctx)
	info.ContractMinorVersion = 0
	return info, err
}

func preflightEngine(t *testing.T, p sdk.Plugin, bindings ...sdk.Binding) *Engine {
	t.Helper()
	dir := t.TempDir()
	store, err := state.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	target := sdk.Target{Name: "web1", Address: dir, Options: sdk.Options{"links": []any{"www"}}}
	return New(Options{
		Store:   store,
		Plugins: func(string) (sdk.Plugin, error) { return p, nil },
		Devices: map[string]Device{"web1": {Name: "web1", Plugin: "pemdir", Target: target}},
		Certificates: []Certificate{{Name: "www", Device: "web1", Issuer: "ca", Subject: sdk.Subject{CommonName: "www.example.com"},
			SANs: sdk.SANs{DNSNames: []string{"www.example.com"}}, KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}, Bindings: bindings}},
	})
}

func TestPreflightBlocksAMissingTarget(t *testing.T) {
	e := preflightEngine(t, pemdir.New(), sdk.Binding{Kind: pemdir.BindingKind, Name: "shop"})
	plan, err := e.Plan(context.Background(), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	it := plan.Items[0]
	if it.Action != ActionBlocked || !strings.Contains(it.Error, `live link "shop"`) || len(plan.Due()) != 0 {
		t.Fatalf("plan: %+v", it)
	}
}

// TestPreflightWithAContract10Plugin: an older plugin keeps working. Its binding targets cannot
// be asked about, so the plan says so and goes on; its credentials and declared capabilities
// are still checked.
func TestPreflightWithAContract10Plugin(t *testing.T) {
	e := preflightEngine(t, contract10{pemdir.New()}, sdk.Binding{Kind: pemdir.BindingKind, Name: "shop"})
	plan, err := e.Plan(context.Background(), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	it := plan.Items[0]
	if it.Action != ActionEnroll || !strings.Contains(it.Reason, "binding targets not checked: plugin pemdir implements contract 1.0") {
		t.Fatalf("plan with a contract 1.0 plugin: %+v", it)
	}

	e = preflightEngine(t, contract10{pemdir.New()}, sdk.Binding{Kind: "vserver", Name: "www"})
	plan, err = e.Plan(context.Background(), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if it := plan.Items[0]; it.Action != ActionBlocked || !strings.Contains(it.Error, `plugin pemdir has no binding kind "vserver"`) {
		t.Fatalf("plan with an undeclared binding kind: %+v", it)
	}
}
