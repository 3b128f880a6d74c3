package cem_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	cem "github.com/certfleet/certfleet/plugins/citrix-endpoint-management"
	"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/cemsim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"google.golang.org/grpc/codes"
)

var listener = []sdk.Binding{{Kind: cem.KindListener, Name: "default"}}

func newCA(t *testing.T) *conformance.TestCA {
	t.Helper()
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func wantCode(t *testing.T, err error, code codes.Code, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("succeeded; want %v %s", code, reason)
	}
	e := sdk.AsError(err)
	if e.Code != code || (reason != "" && e.Reason != reason) {
		t.Fatalf("got %v %s (%v); want %v %s", e.Code, e.Reason, err, code, reason)
	}
}

// The SSL listener of a Citrix Endpoint Management tenant is managed by Citrix (SEED): the plugin
// refuses before it changes anything.
func TestListenerRefusedOnCloudBeforeAnyChange(t *testing.T) {
	cfg := cemsim.DefaultConfig()
	cfg.Cloud, cfg.CloudBearer = true, "cloud-bearer-token-5f2e"
	sim := startSim(t, cfg)
	p, _ := launch(t)
	tgt := target(sim, cfg)
	tgt.Options = sdk.Options{"login": "cloud"}
	tgt.Credentials = sdk.Credentials{Token: cfg.CloudBearer}

	info, err := p.CheckTarget(ctxFor(t), tgt)
	if err != nil {
		t.Fatal(err)
	}
	if info.Model != "Citrix Endpoint Management" {
		t.Errorf("model %q, want Citrix Endpoint Management (GET /environment answered 200)", info.Model)
	}
	_, res, _ := enroll(t, p, tgt, newCA(t), "cloudlistener")
	before := sim.Entries()
	_, err = p.Bind(ctxFor(t), tgt, sdk.BindRequest{CertRef: res.CertRef, Bindings: listener})
	wantCode(t, err, codes.FailedPrecondition, sdk.ReasonUnsupported)
	if !strings.Contains(err.Error(), "Citrix Support") {
		t.Errorf("the error should say what to do: %v", err)
	}
	if n := sim.Requests("POST /certificates/import/keystore/listener"); n != 0 {
		t.Errorf("%d listener imports sent; want none", n)
	}
	if after := sim.Entries(); len(after) != len(before) {
		t.Errorf("the table changed from %d to %d entries", len(before), len(after))
	}

	// SAML stays the admin's on cloud.
	if _, err := p.Bind(ctxFor(t), tgt, sdk.BindRequest{CertRef: res.CertRef, Bindings: []sdk.Binding{{Kind: cem.KindSAML, Name: "default"}}}); err != nil {
		t.Fatalf("Bind SAML on cloud: %v", err)
	}

	badTgt := tgt
	badTgt.Credentials.Token = "wrong-token"
	_, err = p.CheckTarget(ctxFor(t), badTgt)
	wantCode(t, err, codes.Unauthenticated, sdk.ReasonBadCredentials)
}

// Whether a listener import is served at once is unconfirmed (reference §3): with a server that
// needs a restart, the old certificate is served until then, and Inventory already shows the new.
func TestListenerRestartRequired(t *testing.T) {
	cfg := cemsim.DefaultConfig()
	cfg.ListenerRestartRequired = true
	sim := startSim(t, cfg)
	p, stderr := launch(t)
	tgt := target(sim, cfg)
	ca := newCA(t)
	_, first, firstCert := enroll(t, p, tgt, ca, "first")
	if _, err := p.Bind(ctxFor(t), tgt, sdk.BindRequest{CertRef: first.CertRef, Bindings: listener}); err != nil {
		t.Fatal(err)
	}
	_, second, secondCert := enroll(t, p, tgt, ca, "second")
	if _, err := p.Bind(ctxFor(t), tgt, sdk.BindRequest{CertRef: second.CertRef, Bindings: listener}); err != nil {
		t.Fatal(err)
	}
	chain, err := served(ctxFor(t), sim)
	if err != nil {
		t.Fatal(err)
	}
	if !chain[0].Equal(firstCert) {
		t.Errorf("before the restart the listener should still serve the first certificate")
	}
	if !strings.Contains(stderr.String(), "restarted") {
		t.Errorf("the plugin should warn that a restart may be needed; stderr:\n%s", stderr.String())
	}
	sim.Restart()
	if chain, err = served(ctxFor(t), sim); err != nil {
		t.Fatal(err)
	}
	if !chain[0].Equal(secondCert) {
		t.Errorf("after the restart the listener serves serial %s, want the second certificate", chain[0].SerialNumber)
	}
	if len(chain) < 2 {
		t.Errorf("the listener serves %d certificate(s); the chain should follow the leaf", len(chain))
	}
}

// The delete path moved between document generations (reference §2): the plugin finds either.
func TestCleanupOnLegacyDeletePath(t *testing.T) {
	cfg := cemsim.DefaultConfig()
	cfg.LegacyDeletePath = true
	sim := startSim(t, cfg)
	p, _ := launch(t)
	tgt := target(sim, cfg)
	csr, res, _ := enroll(t, p, tgt, newCA(t), "legacy")
	before := sim.Requests("DELETE /publicapi/certificates")
	out, err := p.Cleanup(ctxFor(t), tgt, []sdk.ObjectRef{{CertRef: res.CertRef, KeyRef: csr.KeyRef}})
	if err != nil {
		t.Fatal(err)
	}
	if !out[0].Removed {
		t.Fatalf("not removed: %s", out[0].Reason)
	}
	if n := sim.Requests("DELETE /publicapi/certificates") - before; n != 1 {
		t.Errorf("Cleanup called DELETE /publicapi/certificates %d times, want 1", n)
	}
}

// A deletion the server refuses is reported, not fatal: the other objects are still cleaned.
func TestCleanupReportsRefusal(t *testing.T) {
	cfg := cemsim.DefaultConfig()
	sim := startSim(t, cfg)
	p, _ := launch(t)
	tgt := target(sim, cfg)
	ca := newCA(t)
	_, a, _ := enroll(t, p, tgt, ca, "a")
	_, b, _ := enroll(t, p, tgt, ca, "b")
	sim.FailNext("DELETE /certificates", 1, http.StatusOK)
	out, err := p.Cleanup(ctxFor(t), tgt, []sdk.ObjectRef{{CertRef: a.CertRef}, {CertRef: b.CertRef}})
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if out[0].Removed || !strings.Contains(out[0].Reason, "simulated failure") {
		t.Errorf("the refused deletion: %+v; want not removed, with the server's message", out[0])
	}
	if !out[1].Removed {
		t.Errorf("the second object was not cleaned: %+v", out[1])
	}
}

// Called again after a crash, ImportCert finds what it did: same cert_ref, one entry, no parked key.
func TestImportCertIsIdempotent(t *testing.T) {
	cfg := cemsim.DefaultConfig()
	sim := startSim(t, cfg)
	p, _ := launch(t)
	tgt := target(sim, cfg)
	ca := newCA(t)
	csr, first, cert := enroll(t, p, tgt, ca, "again")
	again, err := p.ImportCert(ctxFor(t), tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: ca.ChainPEM(), NameHint: "again"})
	if err != nil {
		t.Fatal(err)
	}
	if again.CertRef != first.CertRef {
		t.Errorf("second ImportCert cert_ref %q, want %q", again.CertRef, first.CertRef)
	}
	n := 0
	for _, e := range sim.Entries() {
		if strings.HasPrefix(e.Description, "certfleet key ") {
			t.Errorf("a parked key entry remains: %q", e.Description)
		}
		if e.Cert.Equal(cert) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d entries hold the certificate, want 1", n)
	}
}

// A key abandoned before ImportCert is removed by Cleanup of its key_ref; ImportCert then says
// to enroll again.
func TestAbandonedKeyCleanedUp(t *testing.T) {
	cfg := cemsim.DefaultConfig()
	sim := startSim(t, cfg)
	p, _ := launch(t)
	tgt := target(sim, cfg)
	csr, err := p.GenerateCSR(ctxFor(t), tgt, sdk.CSRRequest{NameHint: "lost", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 2048},
		Subject: sdk.Subject{CommonName: "lost.example.test"}, SANs: sdk.SANs{DNSNames: []string{"lost.example.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sim.Entries()) != 1 {
		t.Fatalf("want the parked key alone on the server, got %d entries", len(sim.Entries()))
	}
	out, err := p.Cleanup(ctxFor(t), tgt, []sdk.ObjectRef{{KeyRef: csr.KeyRef}})
	if err != nil || !out[0].Removed {
		t.Fatalf("Cleanup of the key_ref: %v %+v", err, out)
	}
	if len(sim.Entries()) != 0 {
		t.Fatalf("the parked key is still there")
	}
	cert, err := newCA(t).SignCSR(csr.PEM, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.ImportCert(ctxFor(t), tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert)})
	wantCode(t, err, codes.NotFound, sdk.ReasonNotFound)
}

// A session the server ends mid-call is opened again once (reference §1).
func TestSessionEndedIsRenewedOnce(t *testing.T) {
	cfg := cemsim.DefaultConfig()
	sim := startSim(t, cfg)
	p, _ := launch(t)
	tgt := target(sim, cfg)
	sim.FailNext("GET /certificates", 1, http.StatusUnauthorized)
	if _, err := p.Inventory(ctxFor(t), tgt); err != nil {
		t.Fatalf("Inventory after a 401: %v", err)
	}
	if n := sim.Requests("POST /authentication/login"); n != 2 {
		t.Errorf("%d logins, want 2 (one retry)", n)
	}
	if n := sim.ActiveSessions(); n != 0 {
		t.Errorf("%d sessions left open", n)
	}
}

// Certificates an administrator imported by hand are listed, with no binding claimed and no key_ref;
// the plugin's parked keys are not certificates and are not listed.
func TestInventoryListsAdministratorsCertificates(t *testing.T) {
	cfg := cemsim.DefaultConfig()
	sim := startSim(t, cfg)
	p, _ := launch(t)
	tgt := target(sim, cfg)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(987654321), Subject: pkix.Name{CommonName: "mdm.example.test"},
		DNSNames: []string{"mdm.example.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := x509.ParseCertificate(der)
	sim.AddEntry(admin, key, "listener", "installed by the admin")
	if _, err := p.GenerateCSR(ctxFor(t), tgt, sdk.CSRRequest{NameHint: "parked", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 2048},
		Subject: sdk.Subject{CommonName: "parked.example.test"}}); err != nil {
		t.Fatal(err)
	}
	inv, err := p.Inventory(ctxFor(t), tgt)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv) != 1 {
		t.Fatalf("Inventory lists %d certificates, want the administrator's alone", len(inv))
	}
	got := inv[0]
	if got.SHA256Fingerprint != sdk.Fingerprint(admin) || got.KeyRef != "" || len(got.Bindings) != 0 {
		t.Errorf("administrator's certificate listed as %+v", got)
	}
	if got.Serial != "3ade68b1" {
		t.Errorf("serial %q, want 3ade68b1 (987654321 in hex)", got.Serial)
	}
}

// When the server refuses the import that makes room for a second certificate of a key, and then
// refuses the import again, the entry it deleted is put back: nothing is lost.
func TestFailedRebindRestoresTheEntry(t *testing.T) {
	cfg := cemsim.DefaultConfig() // refuses a second certificate per key
	sim := startSim(t, cfg)
	p, _ := launch(t)
	tgt := target(sim, cfg)
	ca := newCA(t)
	_, old, oldCert := enroll(t, p, tgt, ca, "old")
	if _, err := p.Bind(ctxFor(t), tgt, sdk.BindRequest{CertRef: old.CertRef, Bindings: listener}); err != nil {
		t.Fatal(err)
	}
	_, res, cert := enroll(t, p, tgt, ca, "new")
	sim.FailNext("POST /certificates/import/keystore/listener", 1, 0)                              // the first try meets the duplicate rule
	sim.FailNext("POST /certificates/import/keystore/listener", 1, http.StatusInternalServerError) // the second fails
	_, err := p.Bind(ctxFor(t), tgt, sdk.BindRequest{CertRef: res.CertRef, Bindings: listener})
	if err == nil {
		t.Fatal("Bind succeeded though the server failed the import")
	}
	found := false
	for _, e := range sim.Entries() {
		if e.Cert.Equal(cert) {
			found = true
			if !e.HasKey || e.Role != "none" {
				t.Errorf("the restored entry: key %v, role %q; want the key, as a server certificate", e.HasKey, e.Role)
			}
		}
	}
	if !found {
		t.Fatal("the new certificate was lost: the entry deleted to make room was not restored")
	}
	chain, err := served(ctxFor(t), sim)
	if err != nil {
		t.Fatal(err)
	}
	if !chain[0].Equal(oldCert) {
		t.Error("the listener no longer serves the old certificate")
	}
}

// The key is made in the plugin and must never leave it but to the server: not in its log, at trace.
func TestKeyNeverLogged(t *testing.T) {
	cfg := cemsim.DefaultConfig()
	sim := startSim(t, cfg)
	p, stderr := launch(t)
	tgt := target(sim, cfg)
	_, res, _ := enroll(t, p, tgt, newCA(t), "secret")
	if _, err := p.Bind(ctxFor(t), tgt, sdk.BindRequest{CertRef: res.CertRef, Bindings: listener}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr.String(), "logout failed") {
		t.Errorf("a logout failed:\n%s", stderr.String())
	}
	for _, leak := range []string{"PRIVATE KEY", cfg.Password, "Proc-Type"} {
		if strings.Contains(stderr.String(), leak) {
			t.Errorf("plugin stderr contains %q", leak)
		}
	}
}

// TestRepeatedAttemptLeavesOneParkedKey: GenerateCSR parks its key on the server at once; when the
// answer is lost the core calls again with the same attempt ID. The second call removes the entry
// the first parked, so the server holds one parked key for the attempt: the second CSR's, under
// the second answer's key_ref; the first key_ref takes no certificate.
func TestRepeatedAttemptLeavesOneParkedKey(t *testing.T) {
	cfg := cemsim.DefaultConfig()
	sim := startSim(t, cfg)
	p, _ := launch(t)
	tgt := target(sim, cfg)
	req := sdk.CSRRequest{NameHint: "retried", AttemptID: "0123456789abcdef01234567", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 2048},
		Subject: sdk.Subject{CommonName: "retried.example.test", Organization: "certfleet test", Country: "GB"},
		SANs:    sdk.SANs{DNSNames: []string{"retried.example.test"}}}
	lost, err := p.GenerateCSR(ctxFor(t), tgt, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.GenerateCSR(ctxFor(t), tgt, req)
	if err != nil {
		t.Fatalf("GenerateCSR again with the same attempt ID: %v", err)
	}
	csr, err := sdk.ParseCSRPEM(again.PEM)
	if err != nil {
		t.Fatal(err)
	}
	var parked []cemsim.Entry
	for _, e := range sim.Entries() {
		if strings.HasPrefix(e.Description, "certfleet key ") && strings.Contains(e.Description, " retried ") {
			parked = append(parked, e)
		}
	}
	if len(parked) != 1 || !parked[0].HasKey || !sdk.PublicKeysEqual(parked[0].Key.Public(), csr.PublicKey) {
		t.Fatalf("parked entries of the attempt: %d (%+v), want one holding the second CSR's key", len(parked), parked)
	}
	ca := newCA(t)
	stale, err := ca.SignCSR(lost.PEM, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.ImportCert(ctxFor(t), tgt, sdk.ImportRequest{KeyRef: lost.KeyRef, CertPEM: sdk.EncodeCertificatePEM(stale), ChainPEM: ca.ChainPEM(), NameHint: "retried"})
	if err == nil {
		t.Fatal("a certificate for the first call's key was imported: that key is still on the server")
	}
	cert, err := ca.SignCSR(again.PEM, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ImportCert(ctxFor(t), tgt, sdk.ImportRequest{KeyRef: again.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: ca.ChainPEM(), NameHint: "retried"}); err != nil {
		t.Fatalf("ImportCert for the second answer: %v", err)
	}
}
