package pemdir_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/hashicorp/go-hclog"
)

// deployedDevice is a directory holding n certificates, each bound to its own live link, as a
// run leaves it; it returns the target and the key_ref of each certificate by cert_ref.
func deployedDevice(tb testing.TB, n int) (sdk.Target, map[string]string) {
	tb.Helper()
	ctx := sdk.WithLogger(context.Background(), hclog.NewNullLogger())
	ca, err := conformance.NewTestCA()
	if err != nil {
		tb.Fatal(err)
	}
	p := pemdir.New()
	links := make([]any, n)
	for i := range links {
		links[i] = fmt.Sprintf("site%02d", i)
	}
	target := sdk.Target{Name: "web", Address: tb.TempDir(), Options: sdk.Options{"links": links, "access_log": "access.log"}}
	keys := map[string]string{}
	for i := 0; i < n; i++ {
		host := fmt.Sprintf("site%02d.web.example.com", i)
		csr, err := p.GenerateCSR(ctx, target, sdk.CSRRequest{NameHint: host, KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
			Subject: sdk.Subject{CommonName: host}, SANs: sdk.SANs{DNSNames: []string{host}}})
		if err != nil {
			tb.Fatal(err)
		}
		leaf, err := ca.SignCSR(csr.PEM, 90*24*time.Hour)
		if err != nil {
			tb.Fatal(err)
		}
		imp, err := p.ImportCert(ctx, target, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(leaf), ChainPEM: ca.ChainPEM()})
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := p.Bind(ctx, target, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: pemdir.BindingKind, Name: links[i].(string)}}}); err != nil {
			tb.Fatal(err)
		}
		keys[imp.CertRef] = csr.KeyRef
	}
	return target, keys
}

// TestInventoryKeyRefs: Inventory tells each certificate's key by its privkey.pem link, by the
// key_ref file when the link is gone, and not at all when neither is there.
func TestInventoryKeyRefs(t *testing.T) {
	target, keys := deployedDevice(t, 3)
	ctx := sdk.WithLogger(context.Background(), hclog.NewNullLogger())
	var noLink, neither string
	for ref := range keys {
		if noLink == "" {
			noLink = ref
		} else if neither == "" {
			neither = ref
		}
	}
	certs := filepath.Join(target.Address, "certs")
	for _, f := range []string{filepath.Join(certs, noLink, "privkey.pem"), filepath.Join(certs, neither, "privkey.pem"), filepath.Join(certs, neither, "key_ref")} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	list, err := pemdir.New().Inventory(ctx, target)
	if err != nil || len(list) != len(keys) {
		t.Fatalf("inventory: %d certificates, %v", len(list), err)
	}
	for _, dc := range list {
		want := keys[dc.CertRef]
		if dc.CertRef == neither {
			want = ""
		}
		if dc.KeyRef != want {
			t.Errorf("%s: key_ref %q; want %q", dc.CertRef, dc.KeyRef, want)
		}
		if dc.SHA256Fingerprint == "" || dc.CertPEM == "" || len(dc.Bindings) != 1 {
			t.Errorf("%s: %+v", dc.CertRef, dc)
		}
	}
}

// BenchmarkInventory is the device side of a fleet's steady-state run: one Inventory of a
// directory holding ten bound certificates (a 10,000-certificate fleet makes 1,000 of them),
// in process, without the gRPC transport; whole, and of fingerprints only (what the core asks
// when it adopts nothing).
func BenchmarkInventory(b *testing.B) {
	const certs = 10
	target, _ := deployedDevice(b, certs)
	base := sdk.WithLogger(context.Background(), hclog.NewNullLogger())
	p := pemdir.New()
	for _, mode := range []struct {
		name string
		ctx  context.Context
	}{{"whole", base}, {"fingerprints-only", sdk.WithFingerprintsOnly(base)}} {
		b.Run(mode.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				list, err := p.Inventory(mode.ctx, target)
				if err != nil {
					b.Fatal(err)
				}
				if len(list) != certs {
					b.Fatalf("%d certificates in the inventory; want %d", len(list), certs)
				}
			}
		})
	}
}
