package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// served connects to a vserver's TLS listener as a client would and returns the chain it gets.
func served(addr, serverName string) ([]*x509.Certificate, error) {
	return servedTo(tlsClient{addr: addr, name: serverName})
}

// tlsClient is one kind of client of a vserver: its server name, and whether it offers only RSA
// (TLS 1.2 with no ECDSA cipher suite), so that a vserver with an RSA and an ECDSA certificate
// shows each.
type tlsClient struct {
	addr, name string
	rsaOnly    bool
}

func servedTo(c tlsClient) ([]*x509.Certificate, error) {
	cfg := &tls.Config{ServerName: c.name}
	if c.rsaOnly {
		cfg.MaxVersion, cfg.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	}
	ctx, cancel := context.WithTimeout(context.Background(), netDialer.Timeout)
	defer cancel()
	return conformance.ServedChain(ctx, c.addr, cfg)
}

func TestCitrixADCEnrollRenewAndRollback(t *testing.T) {
	sim, err := nitrosim.New(nitrosim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	bundle := filepath.Join(t.TempDir(), "adc-tls.pem")
	if err := os.WriteFile(bundle, []byte(sim.CACertPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := nitrosim.DefaultConfig()
	f, pebble := acmeFleetWith(t, fleetSpec{
		Env: []string{"E2E_ADC_PASSWORD=" + cfg.Password},
		ExtraDevices: fmt.Sprintf(`  adc1:
    plugin: citrix-nitro
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: %s, password: "${env:E2E_ADC_PASSWORD}"}`, sim.URL(), bundle, cfg.Username),
		ExtraCertificates: `  www:
    device: adc1
    subject: {locality: Leeds, state: West Yorkshire}
    sans: {dns: [www.example.com]}
    bindings: [{kind: lb-vserver, name: vs_www_443}, {kind: lb-vserver, name: vs_api_443}]
  vpn:
    device: adc1
    subject: {locality: Leeds, state: West Yorkshire}
    sans: {dns: [vpn.example.com]}
    bindings: [{kind: gateway-vserver, name: gw_vpn_443}]`,
	})
	root, err := pebble.RootPEM()
	if err != nil {
		t.Fatal(err)
	}
	check := func(stage, vs, name string) *x509.Certificate {
		t.Helper()
		chain, err := served(sim.ServedAddress(vs), name)
		if err != nil {
			t.Fatalf("%s: TLS to %s: %v", stage, vs, err)
		}
		verifyChain(t, chain, root, name)
		return chain[0]
	}

	report, res := f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed || outcomes(report)["vpn"] != state.OutcomeDeployed {
		t.Fatalf("enroll: exit %d, %+v", res.code, report.Results)
	}
	first := check("enroll", "vs_www_443", "www.example.com")
	check("enroll", "vs_api_443", "www.example.com")
	check("enroll", "gw_vpn_443", "vpn.example.com")
	if sim.Saves("") != 1 {
		t.Errorf("%d saves for one run on one device; want one batched save", sim.Saves(""))
	}

	// Renew while clients keep connecting: no handshake may fail.
	stop := pollHandshakes(map[string]string{sim.ServedAddress("vs_www_443"): "www.example.com", sim.ServedAddress("vs_api_443"): "www.example.com"})
	report, res = f.run(nil, "--force", "www")
	failures, handshakes := stop()
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed {
		t.Fatalf("renew: exit %d, %+v", res.code, report.Results)
	}
	if failures != 0 || handshakes < 10 {
		t.Fatalf("%d of %d handshakes failed during the renewal", failures, handshakes)
	}
	renewed := check("renew", "vs_www_443", "www.example.com")
	if renewed.Equal(first) {
		t.Fatal("the renewed certificate is not served")
	}

	// A failed save: the bindings are rolled back, the old certificate stays served, and the
	// next run completes the renewal.
	sim.FailSave(1)
	report, res = f.run(nil, "--force", "www")
	if res.code != 1 || outcomes(report)["www"] != state.OutcomeFailed {
		t.Fatalf("run with a failing save: exit %d, %+v", res.code, report.Results)
	}
	if got := check("after rollback", "vs_www_443", "www.example.com"); !got.Equal(renewed) {
		t.Fatalf("after the failed save the vserver serves serial %s, want the previous %s", got.SerialNumber, renewed.SerialNumber)
	}
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed {
		t.Fatalf("run after the failed save: exit %d, %+v", res.code, report.Results)
	}
	if got := check("after retry", "vs_www_443", "www.example.com"); got.Equal(renewed) {
		t.Fatal("the retried renewal is not served")
	}
	if sim.Sessions() != 0 {
		t.Errorf("%d NITRO sessions left open", sim.Sessions())
	}
}

// pollHandshakes connects to each address (with its server name) in a loop until the returned
// function is called, which reports the failed and total handshakes.
func pollHandshakes(targets map[string]string) func() (failures, total int64) {
	clients := make([]tlsClient, 0, len(targets))
	for addr, name := range targets {
		clients = append(clients, tlsClient{addr: addr, name: name})
	}
	return pollClients(clients)
}

// pollClients is pollHandshakes for any kind of client.
func pollClients(clients []tlsClient) func() (failures, total int64) {
	var fails, count atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := servedTo(c); err != nil {
					fails.Add(1)
				}
				count.Add(1)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return func() (int64, int64) {
		close(done)
		wg.Wait()
		return fails.Load(), count.Load()
	}
}
