package scm

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
)

// clientFor is an issuer of the given API against sim; enrollment issuers get no lookup account.
func clientFor(t *testing.T, sim *scmsim.Server, api string) *Issuer {
	t.Helper()
	if api == APIAdmin {
		i, _ := newClient(t, sim, "oauth2")
		return i
	}
	i, err := New(enrollConfig(sim), WithRetry(4, time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	i.sleep = (&waits{}).sleep
	return i
}

func enrollConfig(sim *scmsim.Server) Config {
	return Config{Name: "rest", API: APIEnrollment, BaseURL: sim.EnrollURL(), CABundlePEM: sim.TLSCACertPEM(), TokenURL: sim.TokenURL(),
		ClientID: "certfleet-sim-rest", ClientSecret: sim.Config().EnrollAccounts["certfleet-sim-rest"].Secret}
}

func adminLookup(sim *scmsim.Server) *Config {
	return &Config{BaseURL: sim.URL(), OrgID: 1234, CABundlePEM: sim.TLSCACertPEM(), TokenURL: sim.TokenURL(),
		ClientID: "certfleet-sim", ClientSecret: sim.Config().Clients["certfleet-sim"]}
}

func TestEnrollmentEnrollCollectRevoke(t *testing.T) {
	for _, code := range []int{-103, -109} {
		sim := startSim(t, func(c *scmsim.Config) {
			c.PendingCollects = 2
			c.EnrollPendingCode = code
			c.CustomFields[0].Mandatory = true
		})
		i := clientFor(t, sim, APIEnrollment)
		req, key := request(t, "req-1", "www.example.com", "example.com")
		req.Options = map[string]any{"comments": "web tier", "external_requester": "ops@example.com", "custom_fields": map[string]any{"cost-center": "0042"}}
		if err := i.ValidateOptions(req.Options); err != nil {
			t.Fatal(err)
		}
		ref, err := i.Submit(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := i.Collect(context.Background(), ref); err != nil || res.State != issuer.Pending {
			t.Fatalf("code %d: first collect %v %v, want pending", code, res.State, err)
		}
		res := collectIssued(t, i, ref)
		leaf, err := x509.ParseCertificate(mustDER(t, res.CertPEM))
		if err != nil || !key.PublicKey.Equal(leaf.PublicKey) {
			t.Fatalf("leaf: %v", err)
		}
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		roots.AppendCertsFromPEM([]byte(sim.RootPEM()))
		for _, c := range res.ChainPEM {
			inter.AppendCertsFromPEM([]byte(c))
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "example.com"}); err != nil {
			t.Fatalf("chain: %v", err)
		}
		o := sim.Orders()
		want := scmsim.PublicTermLimit(time.Now())
		if len(o) != 1 || o[0].CertID != string(ref) || o[0].OrgID != 1234 || o[0].CertType != 101 || o[0].Term != want ||
			!slices.Equal(o[0].SANs, []string{"example.com"}) || o[0].CustomFields["cost-center"] != "0042" ||
			o[0].ExternalRequester != "ops@example.com" || !strings.Contains(o[0].Comments, "certfleet-request:req-1") {
			t.Fatalf("recorded order %+v", o)
		}
		if sim.Calls("GET /api/v1/certificates/{certId}/status") != 1 {
			t.Errorf("status asked %d times in 2 pending polls, want once", sim.Calls("GET /api/v1/certificates/{certId}/status"))
		}
		if err := i.Revoke(context.Background(), ref, leaf, issuer.ReasonSuperseded); err != nil {
			t.Fatal(err)
		}
		if err := i.Revoke(context.Background(), ref, leaf, issuer.ReasonSuperseded); err != nil {
			t.Fatalf("revoking twice: %v", err)
		}
		if o := sim.Orders()[0]; o.Status != "Revoked" || o.RevokeReason != 4 || o.RevokeMessage != "certfleet: superseded" {
			t.Fatalf("after revoke: %+v", o)
		}
		if res, err := i.Collect(context.Background(), ref); err != nil || res.State != issuer.Revoked {
			t.Fatalf("collect after revoke: %v %v", res.State, err)
		}
	}
}

func TestEnrollmentDeclinedAndRevokedOutOfBand(t *testing.T) {
	sim := startSim(t, func(c *scmsim.Config) { c.PendingCollects = 5 })
	i := clientFor(t, sim, APIEnrollment)
	req, _ := request(t, "r", "a.example.com")
	req.Options = nil
	ref, err := i.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Decline(1000); err != nil {
		t.Fatal(err)
	}
	if res, err := i.Collect(context.Background(), ref); err != nil || res.State != issuer.Failed {
		t.Fatalf("declined: %v %v", res.State, err)
	}
}

func TestEnrollmentCSRAsSingleLineBase64BothWays(t *testing.T) {
	for _, acceptsPEM := range []bool{false, true} {
		sim := startSim(t, func(c *scmsim.Config) { c.EnrollAcceptsPEMCSR = acceptsPEM })
		i := clientFor(t, sim, APIEnrollment)
		req, _ := request(t, "r", "a.example.com")
		req.Options = nil
		if _, err := i.Submit(context.Background(), req); err != nil {
			t.Fatalf("service accepts PEM=%v: %v", acceptsPEM, err)
		}
	}
}

func TestEnrollmentOptionsTheAccountFixes(t *testing.T) {
	sim := startSim(t, nil)
	i := clientFor(t, sim, APIEnrollment)
	err := i.ValidateOptions(map[string]any{"cert_type": "OV SSL", "term": 199, "org_id": 1234})
	for _, name := range []string{"cert_type", "term", "org_id"} {
		if err == nil || !strings.Contains(err.Error(), "issuer option "+name+" does not apply to an SCM REST Enrollment account") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := i.ValidateOptions(nil); err != nil {
		t.Errorf("no options: %v", err)
	}
	if _, err := New(Config{Name: "x", API: APIEnrollment, BaseURL: sim.EnrollURL(), Auth: "legacy", Login: "a", Password: "b", CustomerURI: "c"}); err == nil ||
		!strings.Contains(err.Error(), "only the REST account's client_id and client_secret") {
		t.Errorf("legacy login on the enrollment API: %v", err)
	}
}

func TestEnrollmentLostAnswerIsFoundThroughTheAdminAPI(t *testing.T) {
	sim := startSim(t, nil)
	i := clientFor(t, sim, APIEnrollment)
	req, _ := request(t, "mine", "a.example.com")
	req.Options = nil
	sim.LoseNextEnrollResponses(1)
	if _, err := i.Submit(context.Background(), req); !errors.Is(err, issuer.ErrOutcomeUnknown) {
		t.Fatalf("lost answer: %v, want ErrOutcomeUnknown", err)
	}
	// Without a lookup account there is no way to know: an error that says what to do, never "not found".
	if _, found, err := i.Find(context.Background(), req); found || err == nil || !strings.Contains(err.Error(), "add scm.lookup") {
		t.Fatalf("Find without lookup: %v %v", found, err)
	}
	cfg := enrollConfig(sim)
	cfg.Lookup = adminLookup(sim)
	withLookup, err := New(cfg, WithRetry(2, time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ref, found, err := withLookup.Find(context.Background(), req)
	if err != nil || !found || ref != lookupPrefix+"1000" {
		t.Fatalf("Find with lookup: %q %v %v", ref, found, err)
	}
	if res := collectIssued(t, withLookup, ref); res.CertPEM == "" {
		t.Fatal("no certificate")
	}
	if err := withLookup.Revoke(context.Background(), ref, nil, issuer.ReasonCessationOfOperation); err != nil {
		t.Fatal(err)
	}
	if n := len(sim.Orders()); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}
	other, _ := request(t, "never-sent", "a.example.com")
	if _, found, err := withLookup.Find(context.Background(), other); found || err != nil {
		t.Fatalf("Find of an order never placed: %v %v", found, err)
	}
}

// TestEachHostTakesOnlyItsOwnCredentialsAndPaths: the REST Enrollment host refuses Admin tokens
// and Admin paths; the Admin host refuses REST-account tokens (and header login unless switched
// on); the legacy host refuses bearer tokens.
func TestEachHostTakesOnlyItsOwnCredentialsAndPaths(t *testing.T) {
	for _, adminHeaders := range []bool{false, true} {
		sim := startSim(t, func(c *scmsim.Config) { c.AdminAcceptsHeaderLogin = adminHeaders })
		mk := func(cfg Config) *Issuer {
			cfg.Name, cfg.CABundlePEM, cfg.TokenURL = "x", sim.TLSCACertPEM(), sim.TokenURL()
			i, err := New(cfg, WithRetry(1, time.Millisecond, time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			return i
		}
		adminID, adminSecret := "certfleet-sim", sim.Config().Clients["certfleet-sim"]
		restID, restSecret := "certfleet-sim-rest", sim.Config().EnrollAccounts["certfleet-sim-rest"].Secret
		u := sim.Config().Users[0]

		adminOnRest := mk(Config{API: APIEnrollment, BaseURL: sim.EnrollURL(), ClientID: adminID, ClientSecret: adminSecret})
		if _, err := adminOnRest.enrollmentStatus(context.Background(), "x"); !isHTTP(err, http.StatusUnauthorized) {
			t.Errorf("Admin token on the enrollment host: %v", err)
		}
		restOnAdmin := mk(Config{BaseURL: sim.URL(), ClientID: restID, ClientSecret: restSecret})
		if _, err := restOnAdmin.Details(context.Background(), "1000"); !isHTTP(err, http.StatusUnauthorized) {
			t.Errorf("REST token on the Admin host: %v", err)
		}
		adminPathOnRest := mk(Config{BaseURL: sim.EnrollURL() + "/api/", ClientID: restID, ClientSecret: restSecret})
		if _, err := adminPathOnRest.Details(context.Background(), "1000"); !isHTTP(err, http.StatusNotFound) {
			t.Errorf("Admin path on the enrollment host: %v", err)
		}
		bearerOnLegacy := mk(Config{BaseURL: sim.LegacyURL(), ClientID: adminID, ClientSecret: adminSecret})
		if _, err := bearerOnLegacy.Details(context.Background(), "1000"); !isHTTP(err, http.StatusUnauthorized) {
			t.Errorf("bearer token on the legacy host: %v", err)
		}
		headersOnAdmin := mk(Config{BaseURL: sim.URL(), Auth: "legacy", Login: u.Login, Password: u.Password, CustomerURI: u.CustomerURI})
		_, err := headersOnAdmin.Details(context.Background(), "1000")
		if adminHeaders && !isHTTP(err, http.StatusBadRequest) || !adminHeaders && !isHTTP(err, http.StatusUnauthorized) {
			t.Errorf("header login on the Admin host (accepted=%v): %v", adminHeaders, err)
		}
	}
}

func isHTTP(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.HTTPStatus == status
}
