package e2e

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/certfleet/certfleet/core/issuer/acme/pebblesim"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/paloalto-panos/panossim"
)

// panosFleet is a fleet with one simulated firewall, fw1, that certfleet reaches with an API key
// of the admin "certfleet" and no commit options, and one certificate, web, on the SSL/TLS
// service profile web-tls.
func panosFleet(t *testing.T, mutate func(*panossim.Config)) (*fleet, *pebblesim.Server, *panossim.Sim) {
	t.Helper()
	cfg := panossim.DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	sim, err := panossim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	key, err := sim.IssueKey("certfleet")
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "panos-tls.pem")
	if err := os.WriteFile(bundle, []byte(sim.CACertPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	f, pebble := acmeFleetWith(t, fleetSpec{
		Env: []string{"E2E_PANOS_KEY=" + key},
		ExtraDevices: fmt.Sprintf(`  fw1:
    plugin: paloalto-panos
    address: %s
    tls: {ca_bundle: %s}
    credentials: {api_key: "${env:E2E_PANOS_KEY}"}
    options: {commit_poll_interval: 0.2}`, sim.URL(), bundle),
		ExtraCertificates: `  web:
    device: fw1
    sans: {dns: [web.example.com]}
    bindings: [{kind: ssl-tls-service-profile, name: web-tls}]`,
	})
	return f, pebble, sim
}

// servedWithIntermediates reads what addr serves over TLS and checks it: the leaf for name,
// followed by the intermediate that issued it (not the leaf alone), verifying to rootPEM with
// nothing but what was served.
func servedWithIntermediates(t *testing.T, addr, name, rootPEM string) []*x509.Certificate {
	t.Helper()
	chain, err := served(addr, name)
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	if len(chain) < 2 {
		t.Fatalf("%s serves %d certificate(s): the intermediates are missing", addr, len(chain))
	}
	issuer := chain[1]
	if chain[0].CheckSignatureFrom(issuer) != nil || bytes.Equal(issuer.RawSubject, issuer.RawIssuer) {
		t.Fatalf("%s serves %q after the leaf, not the intermediate that issued it", addr, issuer.Subject)
	}
	verifyChain(t, chain, rootPEM, name)
	return chain
}

// TestPANOSRenewalServesTheIntermediates: after an enrollment and a forced renewal, what the
// firewall serves (read over TLS) is the new leaf followed by its intermediates.
func TestPANOSRenewalServesTheIntermediates(t *testing.T) {
	f, pebble, sim := panosFleet(t, nil)
	root, err := pebble.RootPEM()
	if err != nil {
		t.Fatal(err)
	}
	report, res := f.run(nil)
	if res.code != 0 || outcomes(report)["web"] != state.OutcomeDeployed {
		t.Fatalf("enroll: exit %d, %+v", res.code, report.Results)
	}
	first := servedWithIntermediates(t, sim.ServedAddress("web-tls"), "web.example.com", root)
	report, res = f.run(nil, "--force")
	if res.code != 0 || outcomes(report)["web"] != state.OutcomeDeployed {
		t.Fatalf("renewal: exit %d, %+v", res.code, report.Results)
	}
	renewed := servedWithIntermediates(t, sim.ServedAddress("web-tls"), "web.example.com", root)
	if renewed[0].Equal(first[0]) {
		t.Fatal("the renewal is not served")
	}
}

// TestPANOSEnrollmentLeavesAnotherAdminsChangePending: another administrator's unfinished change
// in the candidate configuration is neither committed nor lost by certfleet's run, which commits
// its own changes only (a partial commit by the admin the API key belongs to).
func TestPANOSEnrollmentLeavesAnotherAdminsChangePending(t *testing.T) {
	f, pebble, sim := panosFleet(t, nil)
	root, err := pebble.RootPEM()
	if err != nil {
		t.Fatal(err)
	}
	draft := "/config/shared/ssl-tls-service-profile/entry[@name='admins-draft']"
	if err := sim.StageAs("admin", draft, "<certificate>sim-factory-web</certificate>"); err != nil {
		t.Fatal(err)
	}
	report, res := f.run(nil)
	if res.code != 0 || outcomes(report)["web"] != state.OutcomeDeployed {
		t.Fatalf("enroll: exit %d, %+v", res.code, report.Results)
	}
	servedWithIntermediates(t, sim.ServedAddress("web-tls"), "web.example.com", root)
	if sim.Running(draft) != "" {
		t.Error("the other administrator's change was committed")
	}
	if sim.Candidate(draft) == "" || sim.PendingChangesBy("admin") != 1 {
		t.Errorf("the other administrator's change is no longer pending (%d pending)", sim.PendingChangesBy("admin"))
	}
	if sim.PendingChangesBy("certfleet") != 0 {
		t.Errorf("%d of certfleet's changes left uncommitted", sim.PendingChangesBy("certfleet"))
	}
	commits := sim.Commits()
	if len(commits) != 1 || !commits[0].Partial || len(commits[0].Admins) != 1 || commits[0].Admins[0] != "certfleet" {
		t.Errorf("commits %+v: want one partial commit by certfleet", commits)
	}
}
