package scm

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
)

// Tests of the Admin-API defects of issue 15; each failed on the code before the fix.

func TestTermDefaultsToTheProfilesLongest(t *testing.T) {
	sim := startSim(t, nil)
	i, _ := newClient(t, sim, "oauth2")
	req, _ := request(t, "r", "a.example.com")
	req.Options = map[string]any{"cert_type": "OV SSL"}
	if err := i.ValidateOptions(req.Options); err != nil {
		t.Fatalf("ValidateOptions without term: %v", err)
	}
	if _, err := i.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	want := scmsim.PublicTermLimit(time.Now())
	if o := sim.Orders(); len(o) != 1 || o[0].Term != want {
		t.Fatalf("orders %+v, want one with the profile's longest term %d", o, want)
	}
}

func TestPublicTermLimitFollowsTheBallot(t *testing.T) {
	for date, want := range map[string]int{"2026-03-14": 398, "2026-03-15": 199, "2027-03-14": 199, "2027-03-15": 100, "2029-03-15": 47} {
		d, _ := time.Parse(time.DateOnly, date)
		if got := scmsim.PublicTermLimit(d); got != want {
			t.Errorf("%s: %d, want %d", date, got, want)
		}
	}
}

func TestCollectPendingOnlyForARealPendingAnswer(t *testing.T) {
	for _, tc := range []struct {
		status, code int
	}{{400, 0}, {400, -183}, {400, -1400}, {404, -103}, {404, -109}, {400, -103}} {
		sim := startSim(t, func(c *scmsim.Config) {
			c.PendingCollects = 1
			c.PendingCode = tc.code
			c.PendingHTTPStatus = tc.status
		})
		i, _ := newClient(t, sim, "oauth2")
		req, _ := request(t, "r", "a.example.com")
		ref, err := i.Submit(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := i.Collect(context.Background(), ref); err != nil || res.State != issuer.Pending {
			t.Errorf("HTTP %d code %d: %v %v, want pending", tc.status, tc.code, res.State, err)
		}
	}

	// A proxy's HTML page (no SCM code) is an error, not "pending".
	sim := startSim(t, nil)
	i, _ := newClient(t, sim, "oauth2")
	req, _ := request(t, "r", "a.example.com")
	ref, err := i.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []int{400, 404} {
		sim.ProxyPageNext(1, status)
		res, err := i.Collect(context.Background(), ref)
		if err == nil || !strings.Contains(err.Error(), "HTTP "+strconv.Itoa(status)) {
			t.Errorf("an HTML %d page: %v %v, want an error", status, res.State, err)
		}
	}
}

func TestStatusIsNotAskedOnEveryPoll(t *testing.T) {
	sim := startSim(t, func(c *scmsim.Config) { c.PendingCollects = 12 })
	i, _ := newClient(t, sim, "oauth2")
	req, _ := request(t, "r", "a.example.com")
	ref, err := i.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 13; n++ {
		res, err := i.Collect(context.Background(), ref)
		if err != nil || (n < 12) != (res.State == issuer.Pending) {
			t.Fatalf("poll %d: %v %v", n+1, res.State, err)
		}
	}
	collects, details := sim.Calls("GET /api/ssl/v1/collect/{id}"), sim.Calls("GET /api/ssl/v1/{id}")
	if collects != 13 || details != 3 {
		t.Fatalf("%d collects, %d details calls: want 13 collects and details at pending polls 1, 6 and 11", collects, details)
	}
	// A decline is still seen at the first pending poll.
	req2, _ := request(t, "r2", "b.example.com")
	ref2, _ := i.Submit(context.Background(), req2)
	if err := sim.Decline(1001); err != nil {
		t.Fatal(err)
	}
	if res, err := i.Collect(context.Background(), ref2); err != nil || res.State != issuer.Failed {
		t.Fatalf("declined order: %v %v", res.State, err)
	}
}

func TestInitialDelayBeforeTheFirstCollect(t *testing.T) {
	sim := startSim(t, nil)
	i, _ := newClient(t, sim, "oauth2")
	i.cfg.InitialDelay = 30 * time.Second
	now := time.Now()
	i.now = func() time.Time { return now }
	req, _ := request(t, "r", "a.example.com")
	ref, err := i.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := i.Collect(context.Background(), ref)
	if err != nil || res.State != issuer.Pending || res.RetryAfter != 30*time.Second {
		t.Fatalf("collect at once: %v %v after %s", res.State, err, res.RetryAfter)
	}
	now = now.Add(20 * time.Second)
	if res, _ := i.Collect(context.Background(), ref); res.RetryAfter != 10*time.Second {
		t.Fatalf("20s later: wait %s, want 10s", res.RetryAfter)
	}
	if n := sim.Calls("GET /api/ssl/v1/collect/{id}"); n != 0 {
		t.Fatalf("%d collects reached SCM within the initial delay", n)
	}
	now = now.Add(10 * time.Second)
	if res := collectIssued(t, i, ref); res.CertPEM == "" {
		t.Fatal("no certificate after the delay")
	}
}

func TestSecretGoesOnlyToTheConfiguredOrASectigoTokenHost(t *testing.T) {
	var stolen atomic.Int32
	thief := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.PostForm.Get("client_secret") != "" {
			stolen.Add(1)
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(thief.Close)
	for _, uri := range []string{thief.URL + "/token", "http://" + thief.Listener.Addr().String() + "/token"} {
		sim := startSim(t, func(c *scmsim.Config) { c.AuthorizationURI = uri })
		// The thief's certificate is trusted: only the host check can keep the secret from it.
		i, _ := newClient(t, sim, "oauth2", func(c *Config) {
			c.CABundlePEM += string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: thief.Certificate().Raw}))
		})
		if _, err := i.Details(context.Background(), "1000"); err == nil || !strings.Contains(err.Error(), "-124") {
			t.Fatalf("first call: %v", err)
		}
		sim.ExpireTokens()
		if _, err := i.Details(context.Background(), "1000"); err == nil || !strings.Contains(err.Error(), "-124") {
			t.Fatalf("call after the token expired, 401 naming %s: %v", uri, err)
		}
		if n := stolen.Load(); n != 0 {
			t.Fatalf("the client secret was sent to %s", uri)
		}
	}
	i := &Issuer{cfg: Config{TokenURL: DefaultTokenURL}}
	for uri, want := range map[string]bool{
		"https://auth.sso.sectigo.com/auth/realms/x/token": true, "https://eu.auth.sectigo.com/t": true,
		"http://auth.sso.sectigo.com/t": false, "https://sectigo.com.evil.example/t": false, "https://user@auth.sso.sectigo.com/t": false,
	} {
		if got := i.trustedTokenURL(uri); got != want {
			t.Errorf("%s: trusted %v, want %v", uri, got, want)
		}
	}
}

func TestProfilesAreListedForTheOrganization(t *testing.T) {
	sim := startSim(t, nil)
	i, _ := newClient(t, sim, "oauth2")
	i.cfg.OrgID = 5678 // its "OV SSL" is profile 201; organization 1234 has another "OV SSL" (101)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a.example.com"}, DNSNames: []string{"a.example.com"}}, key)
	req := issuer.Request{CertificateName: "a", RequestID: "r", CommonName: "a.example.com", DNSNames: []string{"a.example.com"},
		CSRPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), Options: map[string]any{"cert_type": "OV SSL"}}
	if _, err := i.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if o := sim.Orders(); len(o) != 1 || o[0].CertType != 201 || o[0].OrgID != 5678 {
		t.Fatalf("orders %+v, want profile 201 of organization 5678", o)
	}
}

func TestCertTypeByValidationLevel(t *testing.T) {
	sim := startSim(t, nil)
	i, _ := newClient(t, sim, "oauth2")
	req, _ := request(t, "r", "a.example.com")
	req.Options = map[string]any{"cert_type": "ov"}
	if _, err := i.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if o := sim.Orders(); len(o) != 1 || o[0].CertType != 101 {
		t.Fatalf("orders %+v, want profile 101 (OV SSL)", o)
	}
	req.Options = map[string]any{"cert_type": "DV"}
	if _, err := i.Submit(context.Background(), req); err == nil || !strings.Contains(err.Error(), `cert_type "DV" is not a profile`) {
		t.Fatalf("DV without a DV profile: %v", err)
	}
}

func TestCustomFieldValuesAreSentAsWritten(t *testing.T) {
	sim := startSim(t, func(c *scmsim.Config) {
		c.CustomFields = append(c.CustomFields, scmsim.CustomField{ID: 55, Name: "valid-from"})
	})
	i, _ := newClient(t, sim, "oauth2")
	req, _ := request(t, "r", "a.example.com")
	req.Options = map[string]any{"cert_type": "OV SSL", "custom_fields": map[string]any{"cost-center": "0123", "valid-from": time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC)}}
	if _, err := i.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if f := sim.Orders()[0].CustomFields; f["cost-center"] != "0123" || f["valid-from"] != "2025-01-31" {
		t.Fatalf("custom fields %v", f)
	}
}

func TestCancelledEnrollIsAnUnknownOutcome(t *testing.T) {
	for _, api := range []string{APIAdmin, APIEnrollment} {
		t.Run(api, func(t *testing.T) {
			sim := startSim(t, nil)
			i := clientFor(t, sim, api)
			req, _ := request(t, "r", "a.example.com")
			if api == APIEnrollment {
				req.Options = nil
			}
			if _, err := i.Submit(context.Background(), req); err != nil { // token and profiles are loaded
				t.Fatal(err)
			}
			// Cancelled before anything was sent: a plain cancellation, no order.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := i.Submit(ctx, req); errors.Is(err, issuer.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled before sending: %v", err)
			}
			// Cancelled while SCM works on it: the order may exist.
			sim.SetLatency(10 * time.Second)
			ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if _, err := i.Submit(ctx, req); !errors.Is(err, issuer.ErrOutcomeUnknown) {
				t.Fatalf("cancelled after sending: %v, want ErrOutcomeUnknown", err)
			}
		})
	}
}

func TestUnreachableTokenServerIsNotAnUnknownOutcome(t *testing.T) {
	sim := startSim(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	i, _ := newClient(t, sim, "oauth2")
	i.cfg.TokenURL = "https://" + closed + "/token"
	req, _ := request(t, "r", "a.example.com")
	i.profiles = map[int][]profile{1234: {{ID: 101, Name: "OV SSL", Terms: []int{199}}}}
	i.fields = []customField{}
	_, err = i.Submit(context.Background(), req)
	if err == nil || errors.Is(err, issuer.ErrOutcomeUnknown) {
		t.Fatalf("token server down: %v, want a plain error (the order was never sent)", err)
	}
}
