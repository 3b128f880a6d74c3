package e2e

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/haproxy-runtime/haproxysim"
)

// TestHAProxyRuntimeEnrollAndRenew enrolls and renews a certificate on a simulated HAProxy through
// its Runtime API, with Pebble as the CA: the frontend serving the crt-list is read over TLS after
// each run (the chain verifies to Pebble's root for the certificate's name, and the
// administrator's default certificate is still served to clients without SNI), the superseded
// store and every parked key are gone, and the key the plugin made appears in no output, log or
// state of the core. After HAProxy reloads (and forgets what the Runtime API changed), the next
// run notices and installs a certificate again.
func TestHAProxyRuntimeEnrollAndRenew(t *testing.T) {
	const list = "/etc/haproxy/shop.crtlist"
	sim, err := haproxysim.Start(haproxysim.Options{CrtLists: []string{list}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	frontend := sim.FrontendAddr(list)
	f, pebble := acmeFleetWith(t, fleetSpec{
		ExtraDevices: fmt.Sprintf(`  haproxy1:
    plugin: haproxy-runtime
    address: %s`, sim.Address),
		ExtraCertificates: fmt.Sprintf(`  shop:
    device: haproxy1
    sans: {dns: [shop.example.com]}
    bindings: [{kind: crt-list, name: %s}]
    verify: {address: %q}`, list, frontend),
	})
	root, err := pebble.RootPEM()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := served(frontend, "")
	if err != nil {
		t.Fatalf("TLS to the frontend before the first run: %v", err)
	}
	servedLeaf := func(stage string) *x509.Certificate {
		t.Helper()
		chain, err := served(frontend, "shop.example.com")
		if err != nil {
			t.Fatalf("%s: TLS to the frontend: %v", stage, err)
		}
		verifyChain(t, chain, root, "shop.example.com")
		if def, err := served(frontend, ""); err != nil || !def[0].Equal(admin[0]) {
			t.Errorf("%s: a client without SNI no longer gets the administrator's default certificate (%v)", stage, err)
		}
		return chain[0]
	}
	checkStores := func(stage string, want *x509.Certificate) {
		t.Helper()
		if txn := sim.Transaction(); txn != "" {
			t.Errorf("%s: a transaction is left open on %s", stage, txn)
		}
		for _, st := range sim.Stores() {
			if !strings.HasPrefix(st.Name, "certfleet/") {
				continue
			}
			if st.Cert == nil || !st.Cert.Equal(want) {
				t.Errorf("%s: store %s is left besides the served one (used: %v)", stage, st.Name, st.Used)
			}
		}
	}

	// The keys the plugin made, collected as they come (a reload drops them from HAProxy): their
	// private scalars, in any common encoding, must be nowhere in the core's outputs.
	var needles []string
	collectKeys := func() {
		t.Helper()
		for _, st := range sim.Stores() {
			if k, ok := st.Key.(*ecdsa.PrivateKey); ok && strings.HasPrefix(st.Name, "certfleet/") {
				der, err := x509.MarshalPKCS8PrivateKey(k)
				if err != nil {
					t.Fatal(err)
				}
				d, err := k.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				// Pieces of the PKCS#8 base64 that sit inside one 64-column PEM line, so that they
				// are found however the PEM was wrapped or escaped.
				b64 := base64.StdEncoding.EncodeToString(der)
				needles = append(needles, b64[8:56], b64[70:120], fmt.Sprintf("%x", d), base64.StdEncoding.EncodeToString(d)[:24])
			}
		}
	}

	var outputs []string
	report, res := f.run(nil)
	outputs = append(outputs, res.stdout, res.stderr)
	if res.code != 0 || outcomes(report)["shop"] != state.OutcomeDeployed {
		t.Fatalf("enroll: exit %d, %+v\n%s", res.code, report.Results, lastLines(res.stderr, 30))
	}
	first := servedLeaf("enroll")
	checkStores("enroll", first)
	collectKeys()

	report, res = f.run(nil)
	outputs = append(outputs, res.stdout, res.stderr)
	if res.code != 0 || outcomes(report)["shop"] == state.OutcomeDeployed {
		t.Fatalf("second run should have nothing to do: exit %d, %+v", res.code, report.Results)
	}

	report, res = f.run(nil, "--force")
	outputs = append(outputs, res.stdout, res.stderr)
	if res.code != 0 || outcomes(report)["shop"] != state.OutcomeDeployed {
		t.Fatalf("renew: exit %d, %+v\n%s", res.code, report.Results, lastLines(res.stderr, 30))
	}
	second := servedLeaf("renew")
	if second.Equal(first) || sameKey(first, second) {
		t.Fatal("the renewal did not serve a new certificate with a new key")
	}
	checkStores("renew", second)
	collectKeys()

	// A reload forgets every Runtime API change: the next run sees the certificate gone (drift),
	// renews it and serves it again.
	sim.Reload()
	if def, err := served(frontend, "shop.example.com"); err != nil || !def[0].Equal(admin[0]) {
		t.Fatalf("after the reload the frontend should serve its configured default again (%v)", err)
	}
	report, res = f.run(nil)
	outputs = append(outputs, res.stdout, res.stderr)
	if res.code != 0 || outcomes(report)["shop"] != state.OutcomeDeployed {
		t.Fatalf("run after a reload: exit %d, %+v\n%s", res.code, report.Results, lastLines(res.stderr, 30))
	}
	third := servedLeaf("after reload")
	if third.Equal(second) {
		t.Fatal("after the reload the certificate was not installed again")
	}
	checkStores("after reload", third)
	collectKeys()

	res = f.certfleet(nil, "status", "--output", "json")
	outputs = append(outputs, res.stdout, res.stderr)
	for _, name := range []string{"state.db", "state.db-wal"} {
		if data, err := os.ReadFile(filepath.Join(f.dir, name)); err == nil {
			outputs = append(outputs, string(data))
		}
	}
	if len(needles) == 0 {
		t.Fatal("no key on HAProxy to look for")
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
