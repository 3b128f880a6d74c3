package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/acme"
	"github.com/certfleet/certfleet/core/issuer/acme/pebblesim"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// acmeFleet is a fleet whose CA is an in-process Pebble with EAB required and pre-validated names.
func acmeFleet(t *testing.T, devices map[string][]string) (*fleet, *pebblesim.Server) {
	return acmeFleetWith(t, fleetSpec{Devices: devices})
}

func acmeFleetWith(t *testing.T, spec fleetSpec) (*fleet, *pebblesim.Server) {
	t.Helper()
	pebble, err := pebblesim.Start(pebblesim.Config{ValidityDays: 90})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pebble.Close)
	kid, hmac := pebble.EAB()
	dir := t.TempDir()
	bundle := filepath.Join(dir, "pebble-tls.pem")
	if err := os.WriteFile(bundle, []byte(pebble.TLSCACertPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	issuers := fmt.Sprintf(`  ca:
    type: acme
    acme:
      directory_url: %s
      eab: {key_id: %s, hmac_key: "${env:E2E_EAB_HMAC}"}
      contact: ops@example.com
      tls: {ca_bundle: %s}`, pebble.DirectoryURL(), kid, bundle)
	spec.Issuers, spec.Env = issuers, append(spec.Env, "E2E_EAB_HMAC="+hmac)
	f := newFleet(t, spec)
	return f, pebble
}

func TestACMEEnrollRenewRevokeAndARI(t *testing.T) {
	f, pebble := acmeFleet(t, map[string][]string{"web1": {"www", "api"}})
	root, err := pebble.RootPEM()
	if err != nil {
		t.Fatal(err)
	}

	report, res := f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed || outcomes(report)["api"] != state.OutcomeDeployed {
		t.Fatalf("first run: exit %d, %v\n%s", res.code, outcomes(report), res.stderr)
	}
	verifyChain(t, f.liveChain("web1", "www"), root, "www.example.com")
	verifyChain(t, f.liveChain("web1", "api"), root, "api.example.com")
	if n := pebble.Orders(); n != 2 {
		t.Fatalf("%d orders for 2 certificates", n)
	}

	// Nothing is due: no CA call, no device write.
	before := f.live("web1", "www")
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeUnchanged || pebble.Orders() != 2 {
		t.Fatalf("second run: exit %d, %v, %d orders", res.code, outcomes(report), pebble.Orders())
	}

	// A forced renewal makes a new key, names the replaced certificate, cleans up the old key.
	keysBefore := f.keyFiles("web1")
	report, res = f.run(nil, "--force", "www")
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed {
		t.Fatalf("forced renewal: exit %d, %v", res.code, outcomes(report))
	}
	after := f.live("web1", "www")
	if sdk.PublicKeysEqual(before.PublicKey, after.PublicKey) {
		t.Fatal("a renewal reused the key")
	}
	keysAfter := f.keyFiles("web1")
	if len(keysAfter) != len(keysBefore) || slices.Equal(keysAfter, keysBefore) {
		t.Fatalf("keys before %v, after %v: the old key should be replaced by the new one", keysBefore, keysAfter)
	}
	if pebble.Orders() != 3 {
		t.Fatalf("%d orders after one renewal", pebble.Orders())
	}

	// Revocation through certfleet; the next run replaces the certificate.
	res = f.certfleet(nil, "revoke", "--reason", "key-compromise", "--replace=false", "www")
	if res.code != 0 || !pebble.Revoked(after) {
		t.Fatalf("revoke: exit %d, revoked at the CA: %v\n%s", res.code, pebble.Revoked(after), res.stderr)
	}
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed || !strings.Contains(reasonOf(report, "www"), "revoked") {
		t.Fatalf("run after revoke: exit %d, %+v", res.code, report.Results)
	}
	if f.live("web1", "www").Equal(after) {
		t.Fatal("the revoked certificate is still served")
	}

	// A certificate revoked elsewhere: the CA's renewal information (ARI) asks for early
	// renewal, and certfleet follows it once the check interval has passed.
	apiCert := f.live("web1", "api")
	revokeOutOfBand(t, f, pebble, apiCert)
	f.ageRevocationChecks(t)
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["api"] != state.OutcomeDeployed || !strings.Contains(reasonOf(report, "api"), "ARI") {
		t.Fatalf("run after out-of-band revocation: exit %d, %+v", res.code, report.Results)
	}
}

func reasonOf(r engine.Report, certificate string) string {
	for _, res := range r.Results {
		if res.Certificate == certificate {
			return res.Reason
		}
	}
	return ""
}

// revokeOutOfBand revokes a certificate at Pebble with the account certfleet registered, as another
// tool or the CA itself would, without telling certfleet.
func revokeOutOfBand(t *testing.T, f *fleet, pebble *pebblesim.Server, cert *x509.Certificate) {
	t.Helper()
	kid, hmac := pebble.EAB()
	s := f.openState()
	iss, err := acme.New(acme.Config{
		Name: "ca", DirectoryURL: pebble.DirectoryURL(), EAB: acme.EAB{KeyID: kid, HMACKey: hmac},
		TLS: acme.TLSConfig{CABundlePEM: pebble.TLSCACertPEM()},
	}, acme.BlobAccountStore(s))
	if err != nil {
		t.Fatal(err)
	}
	if err := iss.Revoke(context.Background(), "", cert, issuer.ReasonCessationOfOperation); err != nil {
		t.Fatalf("out-of-band revocation: %v", err)
	}
	s.Close()
	if !pebble.Revoked(cert) {
		t.Fatal("Pebble does not show the certificate revoked")
	}
}

// ageRevocationChecks makes every deployment due for a CA check, as if hours had passed: the
// revocation check interval and the CA's renewal-information Retry-After are both over.
func (f *fleet) ageRevocationChecks(t *testing.T) {
	t.Helper()
	f.ageCAChecks(t, true)
}

// ageCAChecks makes the revocation check interval pass; the CA's renewal-information
// Retry-After too when ari is set.
func (f *fleet) ageCAChecks(t *testing.T, ari bool) {
	t.Helper()
	s := f.openState()
	ds, err := s.Deployments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		d.RevocationCheckedAt = time.Time{}
		d.CACheckDueAt = time.Now().Add(-time.Minute)
		if ari {
			d.RenewalInfoRetryAt = time.Time{}
		}
		if err := s.SaveDeployment(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
}

func (f *fleet) deployment(t *testing.T, name string) state.Deployment {
	t.Helper()
	s := f.openState()
	defer s.Close()
	d, ok, err := s.Deployment(context.Background(), name)
	if err != nil || !ok {
		t.Fatalf("deployment of %s: %v (found %v)", name, err, ok)
	}
	return d
}

// TestACMERenewsAtTheChosenTimeInsideTheARIWindow: RFC 9773 §4.2 — renew at a time chosen
// uniformly inside the CA's window (not at its start), the same time on every run.
func TestACMERenewsAtTheChosenTimeInsideTheARIWindow(t *testing.T) {
	f, pebble := acmeFleet(t, map[string][]string{"web1": {"www"}})
	if report, res := f.run(nil); res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed {
		t.Fatalf("enroll: exit %d, %+v", res.code, report.Results)
	}
	// The window opened a minute ago and lasts 80 days: its start has passed, the chosen time
	// (almost surely) has not.
	now := time.Now()
	start, end := now.Add(-time.Minute), now.Add(80*24*time.Hour)
	if err := pebble.SetRenewalWindow(f.live("web1", "www"), start, end); err != nil {
		t.Fatal(err)
	}
	f.ageRevocationChecks(t)
	report, res := f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeUnchanged || pebble.Orders() != 1 {
		t.Fatalf("window open, chosen time ahead: exit %d, %+v, %d orders; want unchanged", res.code, report.Results, pebble.Orders())
	}
	d := f.deployment(t, "www")
	want := issuer.RenewalWindow{Start: d.RenewalWindowStart, End: d.RenewalWindowEnd}.RenewAt(d.Fingerprint)
	if d.RenewalWindowStart.Sub(start).Abs() > time.Second {
		t.Fatalf("recorded window start %s, set %s", d.RenewalWindowStart, start)
	}
	if !d.RenewalAt.Equal(want) || !d.RenewalAt.After(now) || d.RenewalAt.After(end) {
		t.Fatalf("renewal time %s, want %s inside %s – %s", d.RenewalAt, want, d.RenewalWindowStart, d.RenewalWindowEnd)
	}

	// Asked again (hours later): the same time, still not due.
	f.ageRevocationChecks(t)
	asked := pebble.RenewalInfoRequests()
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeUnchanged || pebble.RenewalInfoRequests() != asked+1 {
		t.Fatalf("second look: exit %d, %+v, %d renewalInfo requests (was %d)", res.code, report.Results, pebble.RenewalInfoRequests(), asked)
	}
	if again := f.deployment(t, "www").RenewalAt; !again.Equal(d.RenewalAt) {
		t.Fatalf("renewal time moved from %s to %s with the window unchanged", d.RenewalAt, again)
	}

	// The CA moves the window into the past: the time chosen in it has come.
	if err := pebble.SetRenewalWindow(f.live("web1", "www"), now.Add(-2*time.Hour), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.ageRevocationChecks(t)
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed || !strings.Contains(reasonOf(report, "www"), "ARI") {
		t.Fatalf("window passed: exit %d, %+v", res.code, report.Results)
	}
}

// TestACMERenewalInfoRetryAfterIsHonoured: the CA's Retry-After on renewalInfo (Pebble: 6 h) is
// kept; no run asks again before it, even when the revocation check is due.
func TestACMERenewalInfoRetryAfterIsHonoured(t *testing.T) {
	f, pebble := acmeFleet(t, map[string][]string{"web1": {"www"}})
	if report, res := f.run(nil); res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed {
		t.Fatalf("enroll: exit %d, %+v", res.code, report.Results)
	}
	f.ageRevocationChecks(t)
	before := time.Now()
	if _, res := f.run(nil); res.code != 0 || pebble.RenewalInfoRequests() != 1 {
		t.Fatalf("first CA check: exit %d, %d renewalInfo requests, want 1", res.code, pebble.RenewalInfoRequests())
	}
	f.ageCAChecks(t, false) // the revocation check is due again, the Retry-After is not over
	if _, res := f.run(nil); res.code != 0 || pebble.RenewalInfoRequests() != 1 {
		t.Fatalf("before Retry-After: exit %d, %d renewalInfo requests, want still 1", res.code, pebble.RenewalInfoRequests())
	}
	d := f.deployment(t, "www")
	if got := d.RenewalInfoRetryAt.Sub(before); got < 6*time.Hour-time.Minute || got > 6*time.Hour+time.Minute {
		t.Fatalf("next renewalInfo request allowed %s after the check, want Pebble's 6h", got)
	}
	f.ageCAChecks(t, true)
	if _, res := f.run(nil); res.code != 0 || pebble.RenewalInfoRequests() != 2 {
		t.Fatalf("after Retry-After: exit %d, %d renewalInfo requests, want 2", res.code, pebble.RenewalInfoRequests())
	}
}

// TestACMERateLimitHoldsTheNextAttempt: a rateLimited newOrder's Retry-After holds the
// operation: runs before it call no CA and say until when; the first run after it orders.
func TestACMERateLimitHoldsTheNextAttempt(t *testing.T) {
	f, pebble := acmeFleet(t, map[string][]string{"web1": {"www"}})
	pebble.RateLimitNewOrders("3600")
	report, res := f.run(nil)
	if res.code != 1 || outcomes(report)["www"] != state.OutcomeFailed || pebble.RateLimitedOrders() != 1 {
		t.Fatalf("rate limited: exit %d, %+v, %d refused orders", res.code, report.Results, pebble.RateLimitedOrders())
	}
	errText := errorOf(report, "www")

	// The limit is lifted at the CA, but the hour is not over: no call, pending, with the time.
	pebble.RateLimitNewOrders("")
	report, res = f.run(nil)
	if res.code != 3 || outcomes(report)["www"] != state.OutcomePending || pebble.RateLimitedOrders() != 1 || pebble.Orders() != 0 {
		t.Fatalf("held run: exit %d, %+v, %d refused, %d orders", res.code, report.Results, pebble.RateLimitedOrders(), pebble.Orders())
	}
	s := f.openState()
	ops, err := s.OpenOperations(context.Background())
	s.Close()
	if err != nil || ops["www"] == nil {
		t.Fatalf("open operations: %v %v", ops, err)
	}
	until := ops["www"].RetryNotBefore
	if got := time.Until(until); got < 58*time.Minute || got > time.Hour {
		t.Fatalf("held until %s (in %s), want the CA's 1h", until, got)
	}
	stamp := until.UTC().Format(time.RFC3339)
	if !strings.Contains(errText, "next attempt after "+stamp) {
		t.Fatalf("the rate-limited run does not say when it tries again: %q", errText)
	}
	if !strings.Contains(errorOf(report, "www"), stamp) || !strings.Contains(reasonOf(report, "www"), "held until "+stamp) {
		t.Fatalf("held run does not say until when: reason %q, error %q", reasonOf(report, "www"), errorOf(report, "www"))
	}

	// The hour passes: the next run orders, once.
	s = f.openState()
	op := ops["www"]
	op.RetryNotBefore = time.Now().Add(-time.Second)
	if err := s.SaveOperation(context.Background(), op); err != nil {
		t.Fatal(err)
	}
	s.Close()
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed || pebble.Orders() != 1 {
		t.Fatalf("after the hold: exit %d, %+v, %d orders", res.code, report.Results, pebble.Orders())
	}
}
