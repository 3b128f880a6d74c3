package inventory

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state"
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// install makes a key and CSR on a pemdir device, signs it and binds it to link.
func install(t *testing.T, p sdk.Plugin, target sdk.Target, ca *conformance.TestCA, name, link string, validity time.Duration) string {
	t.Helper()
	ctx := context.Background()
	csr, err := p.GenerateCSR(ctx, target, sdk.CSRRequest{NameHint: name, KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		Subject: sdk.Subject{CommonName: name}, SANs: sdk.SANs{DNSNames: []string{name}}})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.SignCSR(csr.PEM, validity)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := p.ImportCert(ctx, target, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(leaf), ChainPEM: ca.ChainPEM(), NameHint: name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Bind(ctx, target, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: "live-link", Name: link}}}); err != nil {
		t.Fatal(err)
	}
	return imp.CertRef
}

func TestCollectFilterSuggest(t *testing.T) {
	p := pemdir.New()
	target := sdk.Target{Name: "web1", Address: t.TempDir(), Options: sdk.Options{"links": []any{"www", "old"}}}
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	managed := install(t, p, target, ca, "www.example.com", "www", 90*24*time.Hour)
	unmanaged := install(t, p, target, ca, "old.example.com", "old", 10*24*time.Hour)
	now := time.Now()
	fleet := Collect(context.Background(), []Device{{Name: "web1", Plugin: p, Target: target}, {Name: "gone", Plugin: p, Target: sdk.Target{Name: "gone", Address: "/nonexistent/certfleet"}}},
		Options{Deployments: map[string]state.Deployment{"www": {Certificate: "www", Device: "web1", CertRef: managed, Adopted: true}}, Now: now})
	if len(fleet.Errors) != 1 || fleet.Errors[0].Device != "gone" {
		t.Fatalf("errors: %+v", fleet.Errors)
	}
	byRef := map[string]Row{}
	for _, r := range fleet.Rows {
		byRef[r.Object] = r
	}
	if r := byRef[managed]; !r.Managed || r.Certificate != "www" || r.Role != "adopted" || r.KeyType != "ecdsa-256" || strings.Join(r.Bindings, ",") != "live-link/www" {
		t.Fatalf("managed row: %+v", r)
	}
	if r := byRef[unmanaged]; r.Managed || r.Subject != "CN=old.example.com" {
		t.Fatalf("unmanaged row: %+v", r)
	}
	if got := (Filter{Unmanaged: true}).Apply(fleet.Rows, now); len(got) != 1 || got[0].Object != unmanaged {
		t.Fatalf("--unmanaged: %+v", got)
	}
	if got := (Filter{Expiring: 30 * 24 * time.Hour}).Apply(fleet.Rows, now); len(got) != 1 || got[0].Object != unmanaged {
		t.Fatalf("--expiring 30d: %+v", got)
	}
	snippet, n := Suggest(fleet.Rows, nil)
	if n != 1 || !strings.Contains(string(snippet), "device: web1") || !strings.Contains(string(snippet), "- old.example.com") ||
		!strings.Contains(string(snippet), "kind: live-link") || !strings.Contains(string(snippet), "type: ecdsa") || strings.Contains(string(snippet), "www.example.com") {
		t.Fatalf("suggest (%d):\n%s", n, snippet)
	}
	if _, n := Suggest(fleet.Rows, func(string, string) bool { return false }); n != 0 {
		t.Fatal("a snippet for a binding kind the plugin cannot bind")
	}
}
