package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/paloalto-panos/panossim"
)

const scmOptions = "issuer_options: {cert_type: OV SSL}"

// withBIGIP adds a simulated BIG-IP holding certificate "shop" on virtual vs_www.
func (f *scmProxyFleet) withBIGIP(t *testing.T) *bigipsim.Sim {
	t.Helper()
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
	f.spec.Env = append(f.spec.Env, "E2E_F5_PASSWORD=certfleet-sim-password", "E2E_F5_PCI="+randomSecret(t))
	f.fleet.env = f.spec.Env
	f.spec.ExtraDevices += fmt.Sprintf(`
  bigip1:
    plugin: f5-bigip
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: certfleet, password: "${env:E2E_F5_PASSWORD}", api_key: "${env:E2E_F5_PCI}"}`, sim.URL(), bundle)
	f.spec.ExtraCertificates += `
  shop:
    device: bigip1
    sans: {dns: [shop.example.com]}
    bindings: [{kind: virtual, name: vs_www}]
    ` + scmOptions
	f.writeConfig(f.spec)
	f.certs["shop"] = "bigip1"
	baseline := sim.KeyPaths()
	f.vendor = append(f.vendor, func(t *testing.T, deployments map[string]state.Deployment) int {
		var mine []string
		for _, k := range sim.KeyPaths() {
			if !slices.Contains(baseline, k) {
				mine = append(mine, k)
			}
		}
		want := 0
		if d, ok := deployments["shop"]; ok {
			want = 1
			chain, err := served(sim.ServedAddress("vs_www"), "shop.example.com")
			if err != nil || !chain[0].Equal(mustParse(t, d.CertPEM)) {
				t.Errorf("half-bound: vs_www does not serve the recorded certificate (%v)", err)
			}
		}
		if sim.Unsaved() {
			t.Errorf("the BIG-IP is left with unsaved changes")
		}
		if len(mine) != want {
			t.Errorf("BIG-IP keys made by certfleet: %v, want %d", mine, want)
		}
		return max(0, len(mine)-want)
	})
	return sim
}

// withPANOS adds a simulated PAN-OS firewall holding certificate "web" on profile web-tls.
func (f *scmProxyFleet) withPANOS(t *testing.T) *panossim.Sim {
	t.Helper()
	sim, err := panossim.New(panossim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	bundle := filepath.Join(t.TempDir(), "panos-tls.pem")
	if err := os.WriteFile(bundle, []byte(sim.CACertPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	f.spec.Env = append(f.spec.Env, "E2E_PANOS_PASSWORD=certfleet-sim-password")
	f.fleet.env = f.spec.Env
	f.spec.ExtraDevices += fmt.Sprintf(`
  fw1:
    plugin: paloalto-panos
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: certfleet, password: "${env:E2E_PANOS_PASSWORD}"}
    options: {commit_admin: certfleet, commit_poll_interval: 0.2}`, sim.URL(), bundle)
	f.spec.ExtraCertificates += `
  web:
    device: fw1
    sans: {dns: [web.example.com]}
    bindings: [{kind: ssl-tls-service-profile, name: web-tls}]
    ` + scmOptions
	f.writeConfig(f.spec)
	f.certs["web"] = "fw1"
	baseline := sim.CertificateNames(false)
	f.vendor = append(f.vendor, func(t *testing.T, deployments map[string]state.Deployment) int {
		// Entries certfleet made for the leaf carry a key; CA certificates it imported do not
		// match the certificate's name.
		var mine []string
		for _, n := range sim.CertificateNames(false) {
			if !slices.Contains(baseline, n) && strings.Contains(n, "web") {
				mine = append(mine, n)
			}
		}
		want := 0
		if d, ok := deployments["web"]; ok {
			want = 1
			chain, err := served(sim.ServedAddress("web-tls"), "web.example.com")
			if err != nil || !chain[0].Equal(mustParse(t, d.CertPEM)) {
				t.Errorf("half-bound: web-tls does not serve the recorded certificate (%v)", err)
			}
		}
		if n := sim.PendingChanges(); n != 0 {
			t.Errorf("the firewall is left with %d uncommitted changes", n)
		}
		if !slices.Equal(sim.CertificateNames(false), sim.CertificateNames(true)) {
			t.Errorf("candidate certificates %v differ from running %v", sim.CertificateNames(false), sim.CertificateNames(true))
		}
		if len(mine) != want {
			t.Errorf("PAN-OS certificate entries made by certfleet: %v, want %d", mine, want)
		}
		return max(0, len(mine)-want)
	})
	return sim
}

// TestReliabilitySIGTERMWhileTheKeyIsMade: the BIG-IP is slow, and SIGTERM arrives while
// GenerateCSR is making the key. The key is recorded and used (or removed): none is left behind,
// and the certificate is ordered once.
func TestReliabilitySIGTERMWhileTheKeyIsMade(t *testing.T) {
	f := newSCMProxyFleet(t, nil)
	sim := f.withBIGIP(t)
	sim.SetLatency(400 * time.Millisecond)
	before := len(sim.KeyPaths())
	p := f.start(nil, "run", "--output", "json")
	deadline := time.Now().Add(60 * time.Second)
	for len(sim.KeyPaths()) == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	p.signal(syscall.SIGTERM)
	code := p.wait(t, 120*time.Second)
	t.Logf("interrupted run: exit %d\n%s", code, lastLines(p.err.String(), 8))
	sim.SetLatency(0)
	if !f.settle(t) {
		t.Fatal("the fleet did not settle")
	}
	if double, lost, keys := f.invariants(t, 1); double+lost+keys != 0 {
		t.Fatalf("%d double orders, %d lost, %d keys left", double, lost, keys)
	}
}

// TestReliabilityVendorsRenewCleanly: an enrollment and a forced renewal on a BIG-IP and a PAN-OS
// firewall leave nothing unsaved or uncommitted and no superseded key.
func TestReliabilityVendorsRenewCleanly(t *testing.T) {
	f := newSCMProxyFleet(t, nil)
	f.withBIGIP(t)
	f.withPANOS(t)
	if !f.settle(t) {
		t.Fatal("enroll did not settle")
	}
	if _, res := f.run(nil, "--force"); res.code != 0 {
		t.Fatalf("forced renewal: exit %d\n%s", res.code, lastLines(res.stderr, 10))
	}
	if double, lost, keys := f.invariants(t, 2); double+lost+keys != 0 {
		t.Fatalf("%d double orders, %d lost, %d keys left", double, lost, keys)
	}
}

// TestReliabilityVendorRandomMoments stops runs on the vendor simulators at random moments
// (SIGTERM and SIGKILL), once each in the short form and many times in the long one.
func TestReliabilityVendorRandomMoments(t *testing.T) {
	rounds := 1
	if longReliability() {
		rounds = 15
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		ta := &tally{name: fmt.Sprintf("%s at random moments on BIG-IP and PAN-OS", sigName(sig))}
		t.Run(sigName(sig), func(t *testing.T) {
			for i := range rounds {
				t.Run(fmt.Sprint(i), func(t *testing.T) {
					f := newSCMProxyFleet(t, nil)
					f.withBIGIP(t)
					f.withPANOS(t)
					p := f.start(nil, "run", "--output", "json")
					time.Sleep(time.Duration(randN(4000)) * time.Millisecond)
					p.signal(sig)
					p.wait(t, 120*time.Second)
					resumed := f.settle(t)
					double, lost, keys := f.invariants(t, 1)
					ta.add(resumed, double, lost, keys)
				})
			}
		})
		t.Log(ta)
		fmt.Println("reliability:", ta)
	}
}

func sigName(s syscall.Signal) string {
	if s == syscall.SIGKILL {
		return "SIGKILL"
	}
	return "SIGTERM"
}
