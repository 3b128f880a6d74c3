package cem_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/cemsim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

var pluginPath string

func TestMain(m *testing.M) {
	conformance.Main(m, "github.com/certfleet/certfleet/plugins/citrix-endpoint-management/cmd/certfleet-plugin-citrix-endpoint-management", &pluginPath)
}

func startSim(t *testing.T, cfg cemsim.Config) *cemsim.Sim {
	t.Helper()
	sim, err := cemsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

func target(sim *cemsim.Sim, cfg cemsim.Config) sdk.Target {
	return sdk.Target{
		Name: "xms-test", Address: sim.URL(), TLS: sdk.TLSConfig{CABundlePEM: sim.CACertPEM()},
		Credentials: sdk.Credentials{Username: cfg.Username, Password: cfg.Password},
	}
}

// launch starts the plugin binary as certfleet does and returns it with its stderr.
func launch(t *testing.T) (sdk.Plugin, *conformance.LogBuffer) {
	t.Helper()
	l := conformance.Launch(t, pluginPath, "trace")
	return l.Plugin, l.Stderr
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// served reads the certificate chain the SSL listener serves now.
func served(ctx context.Context, sim *cemsim.Sim) ([]*x509.Certificate, error) {
	return conformance.ServedChain(ctx, sim.ListenerAddress(), nil)
}

// enroll makes a key and CSR, signs it and imports it.
func enroll(t *testing.T, p sdk.Plugin, tgt sdk.Target, ca *conformance.TestCA, hint string) (sdk.CSR, sdk.ImportResult, *x509.Certificate) {
	t.Helper()
	ctx := ctxFor(t)
	csr, err := p.GenerateCSR(ctx, tgt, sdk.CSRRequest{NameHint: hint, KeySpec: sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 2048},
		Subject: sdk.Subject{CommonName: hint + ".example.test", Organization: "certfleet test", Country: "GB"},
		SANs:    sdk.SANs{DNSNames: []string{hint + ".example.test", "alt." + hint + ".example.test"}}})
	if err != nil {
		t.Fatalf("GenerateCSR: %v", err)
	}
	cert, err := ca.SignCSR(csr.PEM, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.ImportCert(ctx, tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: ca.ChainPEM(), NameHint: hint})
	if err != nil {
		t.Fatalf("ImportCert: %v", err)
	}
	return csr, res, cert
}
