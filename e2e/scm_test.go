package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// scmFleet is a pemdir fleet whose CA is the SCM simulator's Admin API.
func scmFleet(t *testing.T, devices map[string][]string, renewBefore string) (*fleet, *scmsim.Server, fleetSpec) {
	return scmFleetAPI(t, devices, renewBefore, "admin", nil)
}

// scmFleetAPI is a pemdir fleet whose CA is the SCM simulator, through the Admin API or a REST
// Enrollment account (with an Admin API lookup account).
func scmFleetAPI(t *testing.T, devices map[string][]string, renewBefore, api string, mod func(*scmsim.Config)) (*fleet, *scmsim.Server, fleetSpec) {
	t.Helper()
	cfg := scmsim.DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	sim, err := scmsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	bundle := filepath.Join(t.TempDir(), "scm-tls.pem")
	if err := os.WriteFile(bundle, []byte(sim.TLSCACertPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := fmt.Sprintf(`      base_url: %s
      token_url: %s
      client_id: certfleet-sim
      client_secret: ${env:E2E_SCM_SECRET}
      org_id: 1234
      tls: {ca_bundle: %s}`, sim.URL(), sim.TokenURL(), bundle)
	spec := fleetSpec{
		Issuers:   "  ca:\n    type: scm\n    scm:\n" + admin,
		Devices:   devices,
		CertExtra: "\n    issuer_options: {cert_type: OV SSL}\n    renew_before: " + renewBefore,
		Env:       []string{"E2E_SCM_SECRET=" + cfg.Clients["certfleet-sim"], "E2E_SCM_REST_SECRET=" + cfg.EnrollAccounts["certfleet-sim-rest"].Secret},
	}
	if api == "enrollment" {
		spec.Issuers = fmt.Sprintf(`  ca:
    type: scm
    scm:
      api: enrollment
      base_url: %s
      token_url: %s
      client_id: certfleet-sim-rest
      client_secret: ${env:E2E_SCM_REST_SECRET}
      tls: {ca_bundle: %s}
      lookup:
  %s`, sim.EnrollURL(), sim.TokenURL(), bundle, strings.ReplaceAll(admin, "\n", "\n  "))
		spec.CertExtra = "\n    renew_before: " + renewBefore
	}
	return newFleet(t, spec), sim, spec
}

func TestSCMLifecycle(t *testing.T) {
	devices := map[string][]string{"web1": {"www", "api"}, "web2": {"shop"}}
	f, sim, spec := scmFleet(t, devices, "30d")

	report, res := f.run(nil)
	if res.code != 0 || len(report.Results) != 3 {
		t.Fatalf("enroll: exit %d, %+v", res.code, report.Results)
	}
	for _, r := range report.Results {
		if r.Outcome != state.OutcomeDeployed {
			t.Fatalf("enroll: %+v", r)
		}
	}
	verifyChain(t, f.liveChain("web1", "www"), sim.RootPEM(), "www.example.com")
	if len(sim.Orders()) != 3 {
		t.Fatalf("%d orders for 3 certificates", len(sim.Orders()))
	}

	// A second run does nothing: no CA call, no device write.
	requests := sim.Requests()
	keys := f.keyFiles("web1")
	served := f.live("web1", "www")
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeUnchanged || sim.Requests() != requests {
		t.Fatalf("second run: exit %d, %v, %d CA requests", res.code, outcomes(report), sim.Requests()-requests)
	}
	if !f.live("web1", "www").Equal(served) || len(f.keyFiles("web1")) != len(keys) {
		t.Fatal("the second run changed a device")
	}

	// A wider renewal window makes every certificate due.
	spec.CertExtra = strings.Replace(spec.CertExtra, "renew_before: 30d", "renew_before: 400d", 1)
	f.writeConfig(spec)
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed || !strings.Contains(reasonOf(report, "www"), "expires in") {
		t.Fatalf("renewal in window: exit %d, %+v", res.code, report.Results)
	}
	spec.CertExtra = strings.Replace(spec.CertExtra, "renew_before: 400d", "renew_before: 30d", 1)
	f.writeConfig(spec)

	// A forced renewal makes a new key.
	before := f.live("web1", "api")
	report, res = f.run(nil, "--force", "api")
	if res.code != 0 || outcomes(report)["api"] != state.OutcomeDeployed || outcomes(report)["www"] != "" {
		t.Fatalf("forced renewal of api only: exit %d, %+v", res.code, report.Results)
	}
	if after := f.live("web1", "api"); sameKey(before, after) {
		t.Fatal("the forced renewal kept the key")
	}

	// A change of names reissues.
	spec.Devices = map[string][]string{"web1": {"www", "api"}, "web2": {"shop"}}
	f.writeConfig(spec)
	cfgText, _ := os.ReadFile(f.config)
	os.WriteFile(f.config, []byte(strings.Replace(string(cfgText), "sans: {dns: [shop.example.com]}", "sans: {dns: [shop.example.com, store.example.com]}", 1)), 0o600)
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["shop"] != state.OutcomeDeployed || !strings.Contains(reasonOf(report, "shop"), "names or key changed") {
		t.Fatalf("SAN change: exit %d, %+v", res.code, report.Results)
	}
	if names := f.live("web2", "shop").DNSNames; len(names) != 2 {
		t.Fatalf("reissued certificate names %v", names)
	}

	// Revoked at the CA behind certfleet's back: noticed at the next check, and replaced.
	orders := sim.Orders()
	wwwOrder := 0
	for _, o := range orders {
		if o.CommonName == "www.example.com" && o.Status == "Issued" && o.Cert.Equal(f.live("web1", "www")) {
			wwwOrder = o.ID
		}
	}
	if err := sim.RevokeOutOfBand(wwwOrder); err != nil {
		t.Fatal(err)
	}
	f.ageRevocationChecks(t)
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed || !strings.Contains(reasonOf(report, "www"), "revoked") {
		t.Fatalf("revoked: exit %d, %+v", res.code, report.Results)
	}

	// Drift: someone re-points a live link; the next run puts it back without a new order.
	ordersBefore := len(sim.Orders())
	link := filepath.Join(f.dir, "devices", "web1", "live", "api")
	os.Remove(link)
	os.Symlink("../certs/elsewhere", link)
	res = f.certfleet(nil, "plan")
	if !strings.Contains(res.stdout, "rebind") {
		t.Fatalf("plan does not show the drift:\n%s", res.stdout)
	}
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["api"] != state.OutcomeDeployed || len(sim.Orders()) != ordersBefore {
		t.Fatalf("drift repair: exit %d, %+v, %d new orders", res.code, report.Results, len(sim.Orders())-ordersBefore)
	}
	f.live("web1", "api")

	// Drift: the certificate vanished from the device; a new one is issued.
	certDirs, _ := filepath.Glob(filepath.Join(f.dir, "devices", "web2", "certs", "shop-*"))
	for _, d := range certDirs {
		os.RemoveAll(d)
	}
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["shop"] != state.OutcomeDeployed || !strings.Contains(reasonOf(report, "shop"), "no longer on the device") {
		t.Fatalf("missing certificate: exit %d, %+v", res.code, report.Results)
	}
}

func sameKey(a, b *x509.Certificate) bool { return sdk.PublicKeysEqual(a.PublicKey, b.PublicKey) }

// TestSCMCrashAfterEveryStep kills the real certfleet process right after each recorded step;
// the next run completes, and the CA holds exactly one order.
func TestSCMCrashAfterEveryStep(t *testing.T) {
	for _, point := range []struct{ step, submit string }{
		{"csr", ""}, {"csr", "sending"}, {"submitted", ""}, {"issued", ""}, {"imported", ""}, {"bound", ""}, {"committed", ""},
	} {
		name := point.step
		if point.submit != "" {
			name += "-" + point.submit
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, sim, _ := scmFleet(t, map[string][]string{"web1": {"www"}}, "30d")
			env := []string{"CERTFLEET_CRASH_AFTER_STEP=" + point.step, "CERTFLEET_CRASH_AFTER_SUBMIT_STATE=" + point.submit}
			_, res := f.run(env)
			if res.code == 0 || !strings.Contains(res.stderr, "killing this process") {
				t.Fatalf("the run was not killed after %s: exit %d", name, res.code)
			}
			report, res := f.run(nil)
			if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed {
				t.Fatalf("run after the crash: exit %d, %+v", res.code, report.Results)
			}
			verifyChain(t, f.liveChain("web1", "www"), sim.RootPEM(), "www.example.com")
			if n := len(sim.Orders()); n != 1 {
				t.Fatalf("%d orders at the CA, want exactly 1", n)
			}
			st := f.openState()
			if op, _ := st.OpenOperation(context.Background(), "www"); op != nil {
				t.Fatalf("an operation is still open: %+v", op)
			}
		})
	}
}

func TestSCMLostEnrollAnswerIsFoundNotOrderedAgain(t *testing.T) {
	f, sim, _ := scmFleet(t, map[string][]string{"web1": {"www"}}, "30d")
	sim.LoseNextEnrollResponses(1)
	report, res := f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed {
		t.Fatalf("run with a lost enroll answer: exit %d, %+v", res.code, report.Results)
	}
	if n := len(sim.Orders()); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}
}

func TestSCMPendingApprovalIsCollectedByTheNextRun(t *testing.T) {
	f, sim, _ := scmFleet(t, map[string][]string{"web1": {"www"}}, "30d")
	text, _ := os.ReadFile(f.config)
	os.WriteFile(f.config, []byte(strings.Replace(string(text), "collect_timeout: 30s", "collect_timeout: 1s", 1)), 0o600)
	sim.PendingForever(true)
	report, res := f.run(nil)
	if res.code != 3 || outcomes(report)["www"] != state.OutcomePending {
		t.Fatalf("pending approval: exit %d, %+v", res.code, report.Results)
	}
	sim.PendingForever(false)
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed || len(sim.Orders()) != 1 {
		t.Fatalf("after approval: exit %d, %+v, %d orders", res.code, report.Results, len(sim.Orders()))
	}
}

// TestSCMBothAPIs runs the real engine with a pemdir device once per SCM API: enroll (pending,
// then issued), renewal, revoke, and a lost enroll answer found again with exactly one order.
func TestSCMBothAPIs(t *testing.T) {
	for _, api := range []string{"admin", "enrollment"} {
		t.Run(api, func(t *testing.T) {
			t.Parallel()
			f, sim, spec := scmFleetAPI(t, map[string][]string{"web1": {"www"}}, "30d", api, func(c *scmsim.Config) { c.PendingCollects = 2 })
			route := map[string]string{"admin": "GET /api/ssl/v1/collect/{id}", "enrollment": "GET /api/v1/certificates/{certId}"}[api]

			report, res := f.run(nil)
			if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed {
				t.Fatalf("enroll: exit %d, %+v\n%s", res.code, report.Results, res.stderr)
			}
			if n := sim.Calls(route); n != 3 {
				t.Fatalf("%d collects, want 2 pending and 1 issued", n)
			}
			verifyChain(t, f.liveChain("web1", "www"), sim.RootPEM(), "www.example.com")
			first := sim.Orders()
			if len(first) != 1 || (api == "enrollment") != (first[0].CertID != "") {
				t.Fatalf("orders %+v", first)
			}

			// Renewal: a wider window makes the certificate due.
			spec.CertExtra = strings.Replace(spec.CertExtra, "renew_before: 30d", "renew_before: 400d", 1)
			f.writeConfig(spec)
			report, res = f.run(nil)
			if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed || len(sim.Orders()) != 2 {
				t.Fatalf("renewal: exit %d, %+v, %d orders", res.code, report.Results, len(sim.Orders()))
			}
			spec.CertExtra = strings.Replace(spec.CertExtra, "renew_before: 400d", "renew_before: 30d", 1)
			f.writeConfig(spec)

			// Revoke through certfleet; the next run replaces it.
			served := f.live("web1", "www")
			if res := f.certfleet(nil, "revoke", "--reason", "key-compromise", "--replace=false", "www"); res.code != 0 {
				t.Fatalf("revoke: exit %d\n%s", res.code, res.stderr)
			}
			revoked := 0
			for _, o := range sim.Orders() {
				if o.Cert != nil && o.Cert.Equal(served) && o.Status == "Revoked" && o.RevokeReason == 1 {
					revoked++
				}
			}
			if revoked != 1 {
				t.Fatalf("the served certificate is not revoked at the CA: %+v", sim.Orders())
			}
			report, res = f.run(nil)
			if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed || len(sim.Orders()) != 3 {
				t.Fatalf("after revoke: exit %d, %+v, %d orders", res.code, report.Results, len(sim.Orders()))
			}

			// A lost enroll answer: found again, exactly one order for it.
			sim.LoseNextEnrollResponses(1)
			report, res = f.run(nil, "--force", "www")
			if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed || len(sim.Orders()) != 4 {
				t.Fatalf("lost answer: exit %d, %+v, %d orders, want 4\n%s", res.code, report.Results, len(sim.Orders()), res.stderr)
			}
			verifyChain(t, f.liveChain("web1", "www"), sim.RootPEM(), "www.example.com")
			if last := sim.Orders()[3]; !last.Cert.Equal(f.live("web1", "www")) {
				t.Fatal("the served certificate is not the lost order's")
			}
		})
	}
}

// TestSCMEnrollmentLostAnswerWithoutLookupNeverOrdersTwice: the REST Enrollment API cannot list
// orders, so without a lookup account the certificate waits (with an error naming the fix) rather
// than placing a second order; once lookup is configured, the lost order is found and deployed.
func TestSCMEnrollmentLostAnswerWithoutLookupNeverOrdersTwice(t *testing.T) {
	f, sim, spec := scmFleetAPI(t, map[string][]string{"web1": {"www"}}, "30d", "enrollment", nil)
	withLookup := spec.Issuers
	spec.Issuers = withLookup[:strings.Index(withLookup, "\n      lookup:")]
	f.writeConfig(spec)
	sim.LoseNextEnrollResponses(1)
	for run, want := range []string{"its answer was lost", "add scm.lookup"} {
		report, res := f.run(nil)
		if res.code != 1 || len(report.Results) != 1 || report.Results[0].Outcome != state.OutcomeFailed || !strings.Contains(report.Results[0].Error, want) {
			t.Fatalf("run %d without lookup: exit %d, %+v, want an error saying %q", run, res.code, report.Results, want)
		}
		if n := len(sim.Orders()); n != 1 {
			t.Fatalf("run %d without lookup: %d orders, want 1", run, n)
		}
	}
	spec.Issuers = withLookup
	f.writeConfig(spec)
	report, res := f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed || len(sim.Orders()) != 1 {
		t.Fatalf("with lookup: exit %d, %+v, %d orders", res.code, report.Results, len(sim.Orders()))
	}
	verifyChain(t, f.liveChain("web1", "www"), sim.RootPEM(), "www.example.com")
}
