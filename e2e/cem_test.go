package e2e

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/cemsim"
)

// TestCitrixEndpointManagementListener enrolls and renews the SSL listener certificate of a
// simulated XenMobile Server through the core: the served listener is checked over TLS after each
// run, the superseded entry and every parked key are gone, and the key the plugin made appears in
// no output, log or state of the core.
func TestCitrixEndpointManagementListener(t *testing.T) {
	cfg := cemsim.DefaultConfig()
	sim, err := cemsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	bundle := filepath.Join(t.TempDir(), "xms-tls.pem")
	if err := os.WriteFile(bundle, []byte(sim.CACertPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	f, pebble := acmeFleetWith(t, fleetSpec{
		Env: []string{"E2E_XMS_PASSWORD=" + cfg.Password},
		ExtraDevices: fmt.Sprintf(`  xms1:
    plugin: citrix-endpoint-management
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: %s, password: "${env:E2E_XMS_PASSWORD}"}`, sim.URL(), bundle, cfg.Username),
		ExtraCertificates: `  mdm:
    device: xms1
    sans: {dns: [mdm.example.com]}
    key: {type: rsa, bits: 2048}
    bindings: [{kind: ssl-listener, name: default}]`,
	})
	root, err := pebble.RootPEM()
	if err != nil {
		t.Fatal(err)
	}
	var outputs []string
	servedLeaf := func(stage string) *x509.Certificate {
		t.Helper()
		chain, err := served(sim.ListenerAddress(), "mdm.example.com")
		if err != nil {
			t.Fatalf("%s: TLS to the listener: %v", stage, err)
		}
		verifyChain(t, chain, root, "mdm.example.com")
		return chain[0]
	}
	checkTable := func(stage string, want *x509.Certificate) {
		t.Helper()
		for _, e := range sim.Entries() {
			if strings.HasPrefix(e.Description, "certfleet key ") {
				t.Errorf("%s: a parked key is left on the server: %q", stage, e.Description)
			}
			if e.HasKey && !e.Cert.Equal(want) {
				t.Errorf("%s: entry %d (%s) with a key is left besides the served one", stage, e.ID, e.Cert.Subject.CommonName)
			}
		}
	}

	report, res := f.run(nil)
	outputs = append(outputs, res.stdout, res.stderr)
	if res.code != 0 || outcomes(report)["mdm"] != state.OutcomeDeployed {
		t.Fatalf("enroll: exit %d, %+v", res.code, report.Results)
	}
	first := servedLeaf("enroll")
	checkTable("enroll", first)

	report, res = f.run(nil)
	outputs = append(outputs, res.stdout, res.stderr)
	if res.code != 0 || outcomes(report)["mdm"] == state.OutcomeDeployed {
		t.Fatalf("second run should have nothing to do: exit %d, %+v", res.code, report.Results)
	}

	report, res = f.run(nil, "--force")
	outputs = append(outputs, res.stdout, res.stderr)
	if res.code != 0 || outcomes(report)["mdm"] != state.OutcomeDeployed {
		t.Fatalf("renew: exit %d, %+v", res.code, report.Results)
	}
	second := servedLeaf("renew")
	if second.Equal(first) || sameKey(first, second) {
		t.Fatal("the renewal did not serve a new certificate with a new key")
	}
	checkTable("renew", second)

	res = f.certfleet(nil, "status", "--output", "json")
	outputs = append(outputs, res.stdout, res.stderr)
	for _, name := range []string{"state.db", "state.db-wal"} {
		if data, err := os.ReadFile(filepath.Join(f.dir, name)); err == nil {
			outputs = append(outputs, string(data))
		}
	}
	// The key made by the plugin: its modulus in any common encoding must be nowhere.
	var needles []string
	for _, e := range sim.Entries() {
		if k, ok := e.Key.(*rsa.PrivateKey); ok {
			der := x509.MarshalPKCS1PrivateKey(k)
			needles = append(needles, base64.StdEncoding.EncodeToString(der)[:64], fmt.Sprintf("%x", k.D.Bytes()[:24]))
		}
	}
	if len(needles) == 0 {
		t.Fatal("no key on the server to look for")
	}
	for i, o := range outputs {
		if strings.Contains(o, "PRIVATE KEY") {
			t.Errorf("captured output %d holds a PEM private key", i)
		}
		for _, n := range needles {
			if strings.Contains(o, n) {
				t.Errorf("the plugin's key appears in captured output %d", i)
			}
		}
	}
}
