package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/paloalto-panos/panossim"
)

// TestPANOSOneCommitPerRunAndFailedCommits: several certificates on one firewall are enrolled
// and renewed with one commit per run; the profiles serve the new certificates only once the
// commit is done; a failed commit job is a failure that leaves the running configuration alone
// and is retried by the next run.
func TestPANOSOneCommitPerRunAndFailedCommits(t *testing.T) {
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
	f, pebble := acmeFleetWith(t, fleetSpec{
		Env: []string{"E2E_PANOS_PASSWORD=certfleet-sim-password"},
		ExtraDevices: fmt.Sprintf(`  fw1:
    plugin: paloalto-panos
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: certfleet, password: "${env:E2E_PANOS_PASSWORD}"}
    options: {commit_admin: certfleet, commit_poll_interval: 0.2}`, sim.URL(), bundle),
		ExtraCertificates: `  web:
    device: fw1
    sans: {dns: [web.example.com]}
    bindings: [{kind: ssl-tls-service-profile, name: web-tls}]
  portal:
    device: fw1
    sans: {dns: [portal.example.com]}
    bindings: [{kind: globalprotect-portal, name: gp-portal}]`,
	})
	root, err := pebble.RootPEM()
	if err != nil {
		t.Fatal(err)
	}
	portalAddr, err := sim.GlobalProtectAddress("portal", "gp-portal")
	if err != nil {
		t.Fatal(err)
	}
	servedLeaf := func(addr, name string) []byte {
		t.Helper()
		chain, err := served(addr, name)
		if err != nil {
			t.Fatalf("TLS to %s: %v", addr, err)
		}
		return chain[0].Raw
	}
	factoryWeb := servedLeaf(sim.ServedAddress("web-tls"), "web.example.com")

	// Killed after binding, before the commit: nothing new is live.
	if _, res := f.run([]string{"CERTFLEET_CRASH_AFTER_STEP=bound"}); res.code == 0 {
		t.Fatal("the run was not killed after binding")
	}
	if got := servedLeaf(sim.ServedAddress("web-tls"), "web.example.com"); string(got) != string(factoryWeb) {
		t.Fatal("a bound but uncommitted certificate is served")
	}
	commits := len(sim.Commits())
	report, res := f.run(nil)
	if res.code != 0 || outcomes(report)["web"] != state.OutcomeDeployed || outcomes(report)["portal"] != state.OutcomeDeployed {
		t.Fatalf("enroll: exit %d, %+v", res.code, report.Results)
	}
	if n := len(sim.Commits()) - commits; n != 1 {
		t.Fatalf("%d commits for one run on one firewall, want 1", n)
	}
	chain, err := served(sim.ServedAddress("web-tls"), "web.example.com")
	if err != nil {
		t.Fatal(err)
	}
	verifyChain(t, chain, root, "web.example.com")
	pchain, err := served(portalAddr, "portal.example.com")
	if err != nil {
		t.Fatal(err)
	}
	verifyChain(t, pchain, root, "portal.example.com")

	// A failed commit job: reported as a failure with the job's messages, nothing goes live.
	before := servedLeaf(sim.ServedAddress("web-tls"), "web.example.com")
	sim.FailCommits(1, "Validation Error: ssl-tls-service-profile web-tls is invalid")
	report, res = f.run(nil, "--force")
	if res.code != 1 || outcomes(report)["web"] != state.OutcomeFailed {
		t.Fatalf("failed commit: exit %d, %+v", res.code, report.Results)
	}
	if !strings.Contains(errorOf(report, "web"), "web-tls is invalid") {
		t.Errorf("the failure does not carry the job's message: %q", errorOf(report, "web"))
	}
	if got := servedLeaf(sim.ServedAddress("web-tls"), "web.example.com"); string(got) != string(before) {
		t.Fatal("the running configuration changed after a failed commit")
	}
	commits = len(sim.Commits())
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["web"] != state.OutcomeDeployed || outcomes(report)["portal"] != state.OutcomeDeployed {
		t.Fatalf("retry after the failed commit: exit %d, %+v", res.code, report.Results)
	}
	if string(servedLeaf(sim.ServedAddress("web-tls"), "web.example.com")) == string(before) {
		t.Fatal("the retried renewal is not served")
	}
	// One commit for the renewals, then one for the deletion of what they superseded, so that
	// nothing is left uncommitted in the candidate configuration.
	var changes, cleanups int
	for _, c := range sim.Commits()[commits:] {
		if strings.Contains(c.Description, "remove superseded") {
			cleanups++
		} else {
			changes++
		}
	}
	if changes != 1 || cleanups != 1 || sim.PendingChanges() != 0 {
		t.Fatalf("retry run: %d commits of the change, %d of the cleanup, %d changes left uncommitted; want 1, 1, 0", changes, cleanups, sim.PendingChanges())
	}
}

func errorOf(r engine.Report, certificate string) string {
	for _, res := range r.Results {
		if res.Certificate == certificate {
			return res.Error
		}
	}
	return ""
}
