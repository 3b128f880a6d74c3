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

// ageRevocationChecks makes every deployment due for a CA check.
func (f *fleet) ageRevocationChecks(t *testing.T) {
	t.Helper()
	s := f.openState()
	ds, err := s.Deployments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		d.RevocationCheckedAt = time.Time{}
		if err := s.SaveDeployment(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
}

func TestACMECrashBetweenOrderAndFinalizeResumesWithOneOrder(t *testing.T) {
	f, pebble := acmeFleet(t, map[string][]string{"web1": {"www"}})
	_, res := f.run([]string{"CERTFLEET_CRASH_AFTER_STEP=submitted"})
	if res.code == 0 {
		t.Fatalf("the run was to be killed after placing the order:\n%s", res.stderr)
	}
	if pebble.Orders() != 1 {
		t.Fatalf("%d orders after the crash", pebble.Orders())
	}
	report, res := f.run(nil)
	if res.code != 0 || outcomes(report)["www"] != state.OutcomeDeployed {
		t.Fatalf("resumed run: exit %d, %+v", res.code, report.Results)
	}
	if pebble.Orders() != 1 {
		t.Fatalf("%d orders: the resumed run placed another", pebble.Orders())
	}
}
