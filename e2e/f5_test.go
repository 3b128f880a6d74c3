package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
)

// TestBIGIPPCIModeEnrollRenew enrolls and renews with PCI mode on: the key is made on the BIG-IP
// under a passphrase that must appear in no log, output, state row or plugin output.
func TestBIGIPPCIModeEnrollRenew(t *testing.T) {
	sim, err := bigipsim.New(bigipsim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	bundle := filepath.Join(t.TempDir(), "bigip-tls.pem")
	if err := os.WriteFile(bundle, []byte(sim.CACertPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	pciSecret := randomSecret(t)
	f, pebble := acmeFleetWith(t, fleetSpec{
		Env: []string{"E2E_F5_PASSWORD=certfleet-sim-password", "E2E_F5_PCI=" + pciSecret},
		ExtraDevices: fmt.Sprintf(`  bigip1:
    plugin: f5-bigip
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: certfleet, password: "${env:E2E_F5_PASSWORD}", api_key: "${env:E2E_F5_PCI}"}
    options: {pci_mode: true}`, sim.URL(), bundle),
		ExtraCertificates: `  shop:
    device: bigip1
    sans: {dns: [shop.example.com]}
    bindings: [{kind: virtual, name: vs_www}, {kind: client-ssl-profile, name: api_clientssl, options: {virtuals: [vs_api]}}]`,
	})
	root, err := pebble.RootPEM()
	if err != nil {
		t.Fatal(err)
	}
	check := func(stage, vs string) {
		t.Helper()
		chain, err := served(sim.ServedAddress(vs), "shop.example.com")
		if err != nil {
			t.Fatalf("%s: TLS to %s: %v", stage, vs, err)
		}
		verifyChain(t, chain, root, "shop.example.com")
	}
	var outputs []string
	report, res := f.run(nil)
	outputs = append(outputs, res.stdout, res.stderr)
	if res.code != 0 || outcomes(report)["shop"] != state.OutcomeDeployed {
		t.Fatalf("enroll: exit %d, %+v", res.code, report.Results)
	}
	check("enroll", "vs_www")
	check("enroll", "vs_api")

	// Renew while clients connect: every handshake must complete, which with TLS 1.3 also proves
	// the served key matches the served certificate.
	stop := pollHandshakes(map[string]string{sim.ServedAddress("vs_www"): "shop.example.com", sim.ServedAddress("vs_api"): "shop.example.com"})
	report, res = f.run(nil, "--force")
	failures, handshakes := stop()
	outputs = append(outputs, res.stdout, res.stderr)
	if res.code != 0 || outcomes(report)["shop"] != state.OutcomeDeployed {
		t.Fatalf("renew: exit %d, %+v", res.code, report.Results)
	}
	if failures != 0 || handshakes < 10 {
		t.Fatalf("%d of %d handshakes failed during the renewal", failures, handshakes)
	}
	check("renew", "vs_www")
	res = f.certfleet(nil, "status", "--output", "json")
	outputs = append(outputs, res.stdout, res.stderr)
	for _, name := range []string{"state.db", "state.db-wal"} {
		if data, err := os.ReadFile(filepath.Join(f.dir, name)); err == nil {
			outputs = append(outputs, string(data))
		}
	}
	passphrases := sim.PassphrasesReceived()
	if len(passphrases) == 0 {
		t.Fatal("the BIG-IP received no key passphrase: PCI mode was not on")
	}
	for _, secret := range append(passphrases, pciSecret) {
		for i, o := range outputs {
			if strings.Contains(o, secret) {
				t.Errorf("a PCI secret appears in captured output %d:\n%s", i, excerpt(o, secret))
			}
		}
	}
}
