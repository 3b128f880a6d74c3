package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

func testCert() Certificate {
	return Certificate{
		Name: "www", Device: "web1", Issuer: "ca",
		Subject:     sdk.Subject{CommonName: "www.example.com", Organization: "Example"},
		SANs:        sdk.SANs{DNSNames: []string{"www.example.com", "example.com"}},
		KeySpec:     sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		RenewBefore: 30 * 24 * time.Hour,
		Bindings:    []sdk.Binding{{Kind: "live-link", Name: "www"}},
	}
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	c := testCert()
	deployed := func(mod func(*state.Deployment)) *state.Deployment {
		d := &state.Deployment{Certificate: "www", CertRef: "www-1", Fingerprint: "aa", SpecHash: specHash(c),
			NotBefore: now.Add(-30 * 24 * time.Hour), NotAfter: now.Add(60 * 24 * time.Hour)}
		if mod != nil {
			mod(d)
		}
		return d
	}
	healthy := inventory{
		certs:   map[string]sdk.DeviceCertificate{"www-1": {CertRef: "www-1", SHA256Fingerprint: "aa"}},
		boundAt: map[string][]string{"live-link/www": {"www-1"}},
	}
	for _, tc := range []struct {
		name   string
		cert   func(*Certificate)
		d      *state.Deployment
		inv    inventory
		force  bool
		action Action
		reason string
	}{
		{name: "nothing deployed", d: nil, inv: healthy, action: ActionEnroll, reason: "no certificate deployed"},
		{name: "healthy", d: deployed(nil), inv: healthy, action: ActionNone, reason: "valid for 60 more days"},
		{name: "forced", d: deployed(nil), inv: healthy, force: true, action: ActionRenew, reason: "renewal forced"},
		{name: "inside the window", d: deployed(func(d *state.Deployment) { d.NotAfter = now.Add(12 * 24 * time.Hour) }), inv: healthy,
			action: ActionRenew, reason: "expires in 12 days"},
		{name: "share of lifetime", cert: func(c *Certificate) { c.RenewFraction = 0.5 },
			d: deployed(func(d *state.Deployment) {
				d.NotBefore = now.Add(-60 * 24 * time.Hour)
				d.NotAfter = now.Add(40 * 24 * time.Hour)
			}),
			inv: healthy, action: ActionRenew, reason: "expires in 40 days"},
		{name: "expired", d: deployed(func(d *state.Deployment) { d.NotAfter = now.Add(-time.Hour) }), inv: healthy, action: ActionRenew, reason: "expired on"},
		{name: "revoked", d: deployed(func(d *state.Deployment) { d.Revoked = true }), inv: healthy, action: ActionRenew, reason: "revoked"},
		{name: "names changed", cert: func(c *Certificate) { c.SANs.DNSNames = append(c.SANs.DNSNames, "api.example.com") },
			d: deployed(nil), inv: healthy, action: ActionRenew, reason: "names or key changed"},
		{name: "key changed", cert: func(c *Certificate) { c.KeySpec = sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 3072} },
			d: deployed(nil), inv: healthy, action: ActionRenew, reason: "names or key changed"},
		{name: "certificate gone from the device", d: deployed(nil), inv: inventory{certs: map[string]sdk.DeviceCertificate{}, boundAt: map[string][]string{}},
			action: ActionRenew, reason: "no longer on the device"},
		{name: "another certificate under the same name", d: deployed(nil),
			inv:    inventory{certs: map[string]sdk.DeviceCertificate{"www-1": {CertRef: "www-1", SHA256Fingerprint: "bb"}}, boundAt: healthy.boundAt},
			action: ActionRenew, reason: "not the certificate that was deployed"},
		{name: "binding points elsewhere", d: deployed(nil),
			inv:    inventory{certs: healthy.certs, boundAt: map[string][]string{"live-link/www": {"manual"}}},
			action: ActionRebind, reason: "drift: live-link/www serves manual instead of www-1"},
		{name: "new binding in the configuration", cert: func(c *Certificate) { c.Bindings = append(c.Bindings, sdk.Binding{Kind: "live-link", Name: "api"}) },
			d: deployed(nil), inv: healthy, action: ActionRebind, reason: "live-link/api serves nothing"},
		{name: "ARI window open", d: deployed(func(d *state.Deployment) { d.RenewalWindowStart = now.Add(-time.Hour) }), inv: healthy,
			action: ActionRenew, reason: "the CA suggests renewal"},
		// RFC 9773 §4.2: renew at the time chosen inside the window, not at its start.
		{name: "ARI window open, chosen time ahead", d: deployed(func(d *state.Deployment) {
			d.RenewalWindowStart, d.RenewalWindowEnd, d.RenewalAt = now.Add(-time.Hour), now.Add(47*time.Hour), now.Add(20*time.Hour)
		}), inv: healthy, action: ActionNone, reason: "valid for 60 more days"},
		{name: "ARI chosen time come", d: deployed(func(d *state.Deployment) {
			d.RenewalWindowStart, d.RenewalWindowEnd, d.RenewalAt = now.Add(-21*time.Hour), now.Add(27*time.Hour), now.Add(-time.Minute)
		}), inv: healthy, action: ActionRenew, reason: "the CA suggests renewal"},
		// A record from before the choice was stored: the same choice is derived from it.
		{name: "ARI window open, no stored choice", d: deployed(func(d *state.Deployment) {
			d.RenewalWindowStart, d.RenewalWindowEnd = now.Add(-time.Minute), now.Add(30*24*time.Hour)
		}), inv: healthy, action: ActionNone, reason: "valid for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := testCert()
			if tc.cert != nil {
				tc.cert(&cert)
			}
			action, reason := decide(cert, tc.d, tc.inv, tc.force, now)
			if action != tc.action || !strings.Contains(reason, tc.reason) {
				t.Fatalf("decide: %s (%q), want %s (containing %q)", action, reason, tc.action, tc.reason)
			}
		})
	}
}

func TestSpecHashIgnoresOrderAndCase(t *testing.T) {
	a, b := testCert(), testCert()
	b.SANs.DNSNames = []string{"EXAMPLE.com", "www.example.com"}
	if specHash(a) != specHash(b) {
		t.Error("the same names in another order or case hash differently")
	}
	b.Subject.Organization = "Other"
	if specHash(a) == specHash(b) {
		t.Error("a subject change does not change the hash")
	}
}

// csrFor makes a CSR as a device would, with a key of spec.
func csrFor(t *testing.T, req sdk.CSRRequest) string {
	t.Helper()
	dir := t.TempDir()
	p := newPemdirForTest()
	csr, err := p.GenerateCSR(t.Context(), sdk.Target{Address: dir}, req)
	if err != nil {
		t.Fatal(err)
	}
	return csr.PEM
}

func TestVerifyCSR(t *testing.T) {
	c := testCert()
	good := sdk.CSRRequest{NameHint: "www", KeySpec: c.KeySpec, Subject: c.Subject, SANs: c.SANs}
	if err := verifyCSR(csrFor(t, good), c); err != nil {
		t.Fatalf("a CSR with exactly the requested content: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*sdk.CSRRequest)
		want string
	}{
		{"other key size", func(r *sdk.CSRRequest) { r.KeySpec = sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 384} }, "key is ecdsa-384, want ecdsa-256"},
		{"other CN", func(r *sdk.CSRRequest) { r.Subject.CommonName = "evil.example.com" }, `CN is "evil.example.com"`},
		{"extra name", func(r *sdk.CSRRequest) { r.SANs.DNSNames = append(r.SANs.DNSNames, "evil.example.com") }, "DNS names are"},
		{"missing name", func(r *sdk.CSRRequest) { r.SANs.DNSNames = r.SANs.DNSNames[:1] }, "DNS names are"},
		{"other organization", func(r *sdk.CSRRequest) { r.Subject.Organization = "Evil" }, `O is "Evil"`},
		{"unexpected IP", func(r *sdk.CSRRequest) { r.SANs.IPAddresses = []string{"192.0.2.1"} }, "IP addresses are"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := good
			req.SANs.DNSNames = append([]string(nil), good.SANs.DNSNames...)
			tc.mod(&req)
			err := verifyCSR(csrFor(t, req), c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verifyCSR: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if err := verifyCSR("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", c); err == nil {
		t.Error("a corrupt CSR passed")
	}
}

func TestVerifyIssued(t *testing.T) {
	c := testCert()
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	csrPEM := csrFor(t, sdk.CSRRequest{NameHint: "www", KeySpec: c.KeySpec, Subject: c.Subject, SANs: c.SANs})
	leaf, err := ca.SignCSR(csrPEM, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	res := issuerResult(leaf, ca)
	if err := verifyIssued(res, csrPEM, c); err != nil {
		t.Fatalf("a certificate for the CSR: %v", err)
	}
	otherCSR := csrFor(t, sdk.CSRRequest{NameHint: "www", KeySpec: c.KeySpec, Subject: c.Subject, SANs: c.SANs})
	if err := verifyIssued(res, otherCSR, c); err == nil || !strings.Contains(err.Error(), "not for the key") {
		t.Fatalf("a certificate for another key: %v", err)
	}
	wider := c
	wider.SANs.DNSNames = append(wider.SANs.DNSNames, "api.example.com")
	if err := verifyIssued(res, csrPEM, wider); err == nil || !strings.Contains(err.Error(), "does not cover api.example.com") {
		t.Fatalf("a certificate missing a name: %v", err)
	}
	res.ChainPEM = []string{sdk.EncodeCertificatePEM(ca.Root)}
	if err := verifyIssued(res, csrPEM, c); err == nil || !strings.Contains(err.Error(), "not signed by the first chain certificate") {
		t.Fatalf("a chain that does not start with the issuer: %v", err)
	}
}
