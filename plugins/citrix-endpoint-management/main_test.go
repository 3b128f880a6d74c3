package cem_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/cemsim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
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

// syncBuffer collects the plugin's stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// launch starts the plugin binary as certfleet does and returns it with its stderr.
func launch(t *testing.T) (sdk.Plugin, *syncBuffer) {
	t.Helper()
	stderr := &syncBuffer{}
	cfg := sdk.ClientConfig(pluginPath, nil, hclog.New(&hclog.LoggerOptions{Output: stderr, Level: hclog.Trace, JSONFormat: true}))
	cfg.Cmd = exec.Command(pluginPath)
	cfg.Cmd.Env = append(os.Environ(), "CERTFLEET_PLUGIN_LOG_LEVEL=trace")
	cfg.Stderr = stderr
	client := plugin.NewClient(cfg)
	t.Cleanup(client.Kill)
	p, err := sdk.Dispense(client)
	if err != nil {
		t.Fatalf("launch plugin: %v", err)
	}
	return p, stderr
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// served reads the certificate chain the SSL listener serves now.
func served(ctx context.Context, sim *cemsim.Sim) ([]*x509.Certificate, error) {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // reads what is served
	conn, err := d.DialContext(ctx, "tcp", sim.ListenerAddress())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("the listener served no certificate")
	}
	return certs, nil
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
