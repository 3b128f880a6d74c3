package metrics

import (
	"context"
	"testing"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/acme"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestWrapIssuerKeepsTheOptionalInterfaces: the engine looks for RevocationLister (SCM's listing
// of revoked certificates) and RenewalAdvisor (ACME ARI) on the issuers it is given; the measured
// issuer has exactly those its issuer has, and measures their calls.
func TestWrapIssuerKeepsTheOptionalInterfaces(t *testing.T) {
	m := New("1.2.3", false)
	scmIssuer := m.WrapIssuer("sectigo", scmAgainstSimulator(t))
	lister, isLister := scmIssuer.(issuer.RevocationLister)
	if _, isAdvisor := scmIssuer.(issuer.RenewalAdvisor); !isLister || isAdvisor {
		t.Fatalf("wrapped SCM issuer: lister %v, advisor %v; want a lister only", isLister, isAdvisor)
	}
	if _, _, err := lister.RevokedAmong(context.Background(), []issuer.OrderRef{"1000"}); err != nil {
		t.Fatal(err)
	}
	// The listing is the only CA call so far: one series, the listing's.
	if n := testutil.CollectAndCount(m.caDuration.MustCurryWith(map[string]string{"issuer": "sectigo", "operation": "list_revoked"})); n != 1 {
		t.Errorf("%d list_revoked series, want 1", n)
	}

	acmeIssuer, err := acme.New(acme.Config{Name: "le", DirectoryURL: "https://127.0.0.1:1/directory", AccountKeyPassphrase: "metrics test passphrase"}, acme.NewMemoryAccountStore())
	if err != nil {
		t.Fatal(err)
	}
	wrapped := m.WrapIssuer("le", acmeIssuer)
	if _, isLister := wrapped.(issuer.RevocationLister); isLister {
		t.Fatal("the wrapped ACME issuer claims to list revoked certificates")
	}
	if _, isAdvisor := wrapped.(issuer.RenewalAdvisor); !isAdvisor {
		t.Fatal("the wrapped ACME issuer lost RenewalAdvisor")
	}
}
