package f5bigip_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

var pluginPath string

func TestMain(m *testing.M) {
	conformance.Main(m, "github.com/certfleet/certfleet/plugins/f5-bigip/cmd/certfleet-plugin-f5-bigip", &pluginPath)
}

// pciSecret is the test devices' credentials.api_key.
const pciSecret = "test-pci-secret-6f1d0c2b9a8e7d"

// startSim starts a simulator for one test.
func startSim(t *testing.T, cfg bigipsim.Config) *bigipsim.Sim {
	t.Helper()
	sim, err := bigipsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// target is the sim as certfleet would configure it: user certfleet (no util/bash), PCI mode.
func target(sim *bigipsim.Sim) sdk.Target {
	return sdk.Target{
		Name:    "bigip-test",
		Address: sim.URL(),
		TLS:     sdk.TLSConfig{CABundlePEM: sim.CACertPEM()},
		Credentials: sdk.Credentials{
			Username: "certfleet", Password: "certfleet-sim-password", APIKey: pciSecret,
		},
		Options: sdk.Options{"sync_device_group": "dg_failover"},
	}
}

// launch starts the plugin binary as certfleet does, with its log level, and returns it with
// everything it writes to stderr.
func launch(t *testing.T, logLevel string) (sdk.Plugin, *conformance.LogBuffer) {
	t.Helper()
	l := conformance.Launch(t, pluginPath, logLevel)
	return l.Plugin, l.Stderr
}

// served reads the certificate a virtual server (or the first carrier of a profile) serves now.
func served(ctx context.Context, sim *bigipsim.Sim, name string) (*x509.Certificate, error) {
	addr := sim.ServedAddress(name)
	if addr == "" {
		return nil, fmt.Errorf("%s is not served", name)
	}
	certs, err := conformance.ServedChain(ctx, addr, nil)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// enroll makes a key and CSR on the device, signs it and imports the certificate.
func enroll(t *testing.T, p sdk.Plugin, tgt sdk.Target, ca *conformance.TestCA, hint string, spec sdk.KeySpec) (sdk.CSR, sdk.ImportResult, *x509.Certificate) {
	t.Helper()
	ctx := ctxFor(t)
	csr, err := p.GenerateCSR(ctx, tgt, sdk.CSRRequest{NameHint: hint, KeySpec: spec,
		Subject: sdk.Subject{CommonName: hint + ".example.test", Organization: "certfleet test", Country: "GB"},
		SANs:    sdk.SANs{DNSNames: []string{hint + ".example.test"}}})
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
