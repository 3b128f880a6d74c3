package scm

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
)

func startSim(t *testing.T, mod func(*scmsim.Config)) *scmsim.Server {
	t.Helper()
	cfg := scmsim.DefaultConfig()
	cfg.PendingCollects = 0
	if mod != nil {
		mod(&cfg)
	}
	s, err := scmsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// waits records the backoff sleeps instead of sleeping.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(_ context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return nil
}

func newClient(t *testing.T, sim *scmsim.Server, auth string, adjust ...func(*Config)) (*Issuer, *waits) {
	t.Helper()
	cfg := Config{Name: "test", BaseURL: sim.URL(), OrgID: 1234, CABundlePEM: sim.TLSCACertPEM(), Auth: auth, TokenURL: sim.TokenURL()}
	if auth == "legacy" {
		cfg.BaseURL = sim.LegacyURL()
		u := sim.Config().Users[0]
		cfg.Login, cfg.Password, cfg.CustomerURI = u.Login, u.Password, u.CustomerURI
	} else {
		cfg.ClientID, cfg.ClientSecret = "certfleet-sim", sim.Config().Clients["certfleet-sim"]
	}
	for _, a := range adjust {
		a(&cfg)
	}
	i, err := New(cfg, WithRetry(4, time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	w := &waits{}
	i.sleep = w.sleep
	return i, w
}

func csrFor(t *testing.T, names ...string) (string, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: names[0]}, DNSNames: names}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), key
}

func request(t *testing.T, id string, names ...string) (issuer.Request, *ecdsa.PrivateKey) {
	csr, key := csrFor(t, names...)
	return issuer.Request{CertificateName: "www", RequestID: id, CSRPEM: csr, CommonName: names[0], DNSNames: names,
		Options: map[string]any{"cert_type": "OV SSL", "comments": "web tier"}}, key
}

func collectIssued(t *testing.T, i *Issuer, ref issuer.OrderRef) issuer.Result {
	t.Helper()
	for n := 0; n < 10; n++ {
		res, err := i.Collect(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		if res.State == issuer.Issued {
			return res
		}
		if res.State != issuer.Pending {
			t.Fatalf("collect: %v %s", res.State, res.Message)
		}
	}
	t.Fatal("still pending after 10 collects")
	return issuer.Result{}
}

func TestEnrollAndCollectBothAuthModes(t *testing.T) {
	for _, auth := range []string{"oauth2", "legacy"} {
		t.Run(auth, func(t *testing.T) {
			sim := startSim(t, func(c *scmsim.Config) { c.PendingCollects = 2; c.PendingCode = -1400 })
			i, _ := newClient(t, sim, auth)
			req, key := request(t, "req-1", "www.example.com", "example.com")
			ref, err := i.Submit(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			res, err := i.Collect(context.Background(), ref)
			if err != nil || res.State != issuer.Pending {
				t.Fatalf("first collect: %v %v", res.State, err)
			}
			res = collectIssued(t, i, ref)
			leaf, err := x509.ParseCertificate(mustDER(t, res.CertPEM))
			if err != nil {
				t.Fatal(err)
			}
			if !key.PublicKey.Equal(leaf.PublicKey) {
				t.Error("the certificate is not for the CSR's key")
			}
			if got := slices.Sorted(slices.Values(leaf.DNSNames)); !slices.Equal(got, []string{"example.com", "www.example.com"}) {
				t.Errorf("names %v", got)
			}
			roots, inter := x509.NewCertPool(), x509.NewCertPool()
			roots.AppendCertsFromPEM([]byte(sim.RootPEM()))
			for _, c := range res.ChainPEM {
				inter.AppendCertsFromPEM([]byte(c))
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "www.example.com"}); err != nil {
				t.Fatalf("chain does not verify to the simulator's root: %v", err)
			}
			if len(res.ChainPEM) != 2 {
				t.Errorf("chain has %d certificates, want intermediate and root", len(res.ChainPEM))
			}
			o := sim.Orders()
			if len(o) != 1 || o[0].CertType != 101 || o[0].Term != scmsim.PublicTermLimit(time.Now()) || !strings.Contains(o[0].Comments, "certfleet-request:req-1") ||
				!strings.Contains(o[0].Comments, "web tier") || !slices.Equal(o[0].SANs, []string{"example.com"}) {
				t.Fatalf("recorded order: %+v", o)
			}
		})
	}
}

func mustDER(t *testing.T, p string) []byte {
	t.Helper()
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		t.Fatal("not PEM")
	}
	return b.Bytes
}

func TestTokenRefreshedAfterExpiry(t *testing.T) {
	sim := startSim(t, nil)
	i, _ := newClient(t, sim, "oauth2")
	req, _ := request(t, "r", "a.example.com")
	ref, err := i.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	sim.ExpireTokens()
	if _, err := i.Details(context.Background(), ref); err != nil {
		t.Fatalf("call after the token expired: %v", err)
	}
}

func TestBadCredentials(t *testing.T) {
	sim := startSim(t, nil)
	i, err := New(Config{Name: "test", BaseURL: sim.LegacyURL(), OrgID: 1234, CABundlePEM: sim.TLSCACertPEM(), Auth: "legacy",
		Login: "api-user", Password: "wrong-password-123", CustomerURI: "simcorp"}, WithRetry(1, time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_, err = i.Details(context.Background(), "1000")
	var e *Error
	if !errors.As(err, &e) || e.Code != -16 || !strings.Contains(err.Error(), "check the issuer's login") || strings.Contains(err.Error(), "wrong-password-123") {
		t.Fatalf("bad login: %v", err)
	}
	i2, _ := New(Config{Name: "test", BaseURL: sim.URL(), OrgID: 1234, CABundlePEM: sim.TLSCACertPEM(), ClientID: "certfleet-sim",
		ClientSecret: "nope-nope-nope", TokenURL: sim.TokenURL()})
	if _, err := i2.Details(context.Background(), "1000"); err == nil || !strings.Contains(err.Error(), "invalid_client") || strings.Contains(err.Error(), "nope-nope-nope") {
		t.Fatalf("bad client secret: %v", err)
	}
}

func TestDeclinedAndRevoked(t *testing.T) {
	sim := startSim(t, func(c *scmsim.Config) { c.PendingCollects = 5 })
	i, _ := newClient(t, sim, "oauth2")
	req, _ := request(t, "r1", "a.example.com")
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

	sim2 := startSim(t, nil)
	i2, _ := newClient(t, sim2, "oauth2")
	ref2, err := i2.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	collectIssued(t, i2, ref2)
	if err := i2.Revoke(context.Background(), ref2, nil, issuer.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if err := i2.Revoke(context.Background(), ref2, nil, issuer.ReasonKeyCompromise); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	if res, err := i2.Collect(context.Background(), ref2); err != nil || res.State != issuer.Revoked {
		t.Fatalf("revoked: %v %v", res.State, err)
	}
}

func TestRateLimitHonoursRetryAfterAndServerErrorsAreRetried(t *testing.T) {
	sim := startSim(t, nil)
	i, w := newClient(t, sim, "legacy")
	req, _ := request(t, "r", "a.example.com")
	ref, err := i.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	sim.FailNext(2, 429, 7)
	if _, err := i.Details(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	if len(w.d) != 2 || w.d[0] != 7*time.Second || w.d[1] != 7*time.Second {
		t.Fatalf("waits %v, want Retry-After's 7s twice", w.d)
	}
	sim.FailNext(3, 503, 0)
	if res := collectIssued(t, i, ref); res.CertPEM == "" {
		t.Fatal("no certificate")
	}
	sim.FailNext(10, 500, 0)
	if _, err := i.Details(context.Background(), ref); err == nil {
		t.Fatal("a persistent 500 was not reported after the retries")
	}
	// A 429 on enroll is retried (the order was refused, not placed).
	sim.FailNext(0, 0, 0)
	sim.FailNext(1, 429, 1)
	if _, err := i.Submit(context.Background(), req); err != nil {
		t.Fatalf("enroll after a 429: %v", err)
	}
}

func TestServerErrorOnEnrollIsAnUnknownOutcome(t *testing.T) {
	sim := startSim(t, nil)
	i, _ := newClient(t, sim, "legacy")
	req, _ := request(t, "r", "a.example.com")
	if _, err := i.Submit(context.Background(), req); err != nil { // loads the profiles
		t.Fatal(err)
	}
	sim.FailNext(1, 502, 0)
	if _, err := i.Submit(context.Background(), req); !errors.Is(err, issuer.ErrOutcomeUnknown) {
		t.Fatalf("502 on enroll: %v, want ErrOutcomeUnknown", err)
	}
}

func TestLostEnrollResponseIsFoundNotPlacedAgain(t *testing.T) {
	sim := startSim(t, nil)
	i, _ := newClient(t, sim, "oauth2")
	other, _ := request(t, "someone-else", "a.example.com")
	if _, err := i.Submit(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	req, _ := request(t, "mine", "a.example.com")
	sim.LoseNextEnrollResponses(1)
	_, err := i.Submit(context.Background(), req)
	if !errors.Is(err, issuer.ErrOutcomeUnknown) {
		t.Fatalf("lost answer: %v, want ErrOutcomeUnknown", err)
	}
	ref, found, err := i.Find(context.Background(), req)
	if err != nil || !found || ref != "1001" {
		t.Fatalf("Find: %q %v %v", ref, found, err)
	}
	if n := len(sim.Orders()); n != 2 {
		t.Fatalf("%d orders, want 2 (one each)", n)
	}
	missing, _ := request(t, "never-sent", "a.example.com")
	if _, found, err := i.Find(context.Background(), missing); found || err != nil {
		t.Fatalf("Find of an order never placed: %v %v", found, err)
	}
}

func TestOptionsAreCheckedAgainstTheAccount(t *testing.T) {
	sim := startSim(t, func(c *scmsim.Config) { c.CustomFields[0].Mandatory = true })
	i, _ := newClient(t, sim, "oauth2")
	for name, tc := range map[string]struct {
		opts map[string]any
		want string
	}{
		"bad term":       {map[string]any{"cert_type": 101, "term": 400}, fmt.Sprintf("term 400 is not allowed by profile \"OV SSL\" (allowed: [90 %d] days)", scmsim.PublicTermLimit(time.Now()))},
		"unknown type":   {map[string]any{"cert_type": "DV"}, `cert_type "DV" is not a profile of this account`},
		"missing field":  {map[string]any{"cert_type": 101}, `custom field "cost-center" is mandatory`},
		"unknown option": {map[string]any{"cert_type": 101, "colour": "blue"}, `unknown SCM issuer option "colour"`},
	} {
		req, _ := request(t, "r", "a.example.com")
		req.Options = tc.opts
		_, err := i.Submit(context.Background(), req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if len(sim.Orders()) != 0 {
		t.Error("an invalid request reached SCM")
	}
	if err := i.ValidateOptions(map[string]any{"term": 199}); err == nil || !strings.Contains(err.Error(), "cert_type is missing") {
		t.Errorf("ValidateOptions without cert_type: %v", err)
	}
	if err := i.ValidateOptions(map[string]any{"cert_type": "OV SSL", "term": 199, "custom_fields": map[string]any{"cost-center": "42"}}); err != nil {
		t.Errorf("ValidateOptions: %v", err)
	}
}

func TestWWWAuthenticateAuthorizationURI(t *testing.T) {
	for h, want := range map[string]string{
		`Bearer authorization_uri="https://auth.example/token"`:               "https://auth.example/token",
		`Bearer realm="x", authorization_uri=https://auth.example/t, error=x`: "https://auth.example/t",
		`Bearer realm="x"`: "",
	} {
		if got := authorizationURI(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
}
