package f5bigip_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	f5bigip "github.com/certfleet/certfleet/plugins/f5-bigip"
	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

// Tests of issue 13: PCI mode as the seed promises it, the customer's TLS settings kept, the
// device's rules enforced.

// version1Passphrase is how plugin version 1 derived a key's passphrase from api_key (HMAC-SHA256
// over a label and the key path): anyone holding api_key could recompute it.
func version1Passphrase(secret, keyPath string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("certfleet f5-bigip pci-passphrase v1\x00"))
	mac.Write([]byte(keyPath))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// TestPCIPassphraseIsRandom (finding 1): the device's passphrase of a PCI key cannot be computed
// from anything certfleet holds, and differs between keys.
func TestPCIPassphraseIsRandom(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	tgt := target(sim)
	p, _ := launch(t, "info")
	ca := testCA(t)
	seen := map[string]bool{}
	for _, hint := range []string{"rand1", "rand2"} {
		csr, _, _ := enroll(t, p, tgt, ca, hint, sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
		keyPath, _, _ := strings.Cut(csr.KeyRef, "#")
		pass, ok := sim.KeyPassphrase(keyPath)
		if !ok {
			t.Fatalf("key %s is not passphrase-protected", keyPath)
		}
		if pass == version1Passphrase(pciSecret, keyPath) {
			t.Fatalf("the passphrase of %s is HMAC(api_key, key path): whoever reads certfleet's secrets can recompute it", keyPath)
		}
		if seen[pass] || len(pass) < 40 {
			t.Fatalf("passphrase of %s repeats or is short (%d characters)", keyPath, len(pass))
		}
		seen[pass] = true
	}
}

// TestPCIKeyMustBeProtected (finding 2): a device that makes an unprotected key although
// securityType password was asked for fails GenerateCSR, and the key is not left behind; without
// PCI mode the same device works.
func TestPCIKeyMustBeProtected(t *testing.T) {
	t.Parallel()
	cfg := bigipsim.DefaultConfig()
	cfg.KeyCreateIgnoresProtection = true
	sim := startSim(t, cfg)
	tgt := target(sim)
	p, _ := launch(t, "info")
	keysBefore := sim.KeyPaths()
	_, err := p.GenerateCSR(ctxFor(t), tgt, sdk.CSRRequest{NameHint: "unprotected", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		Subject: sdk.Subject{CommonName: "unprotected.example.test"}})
	if e := wantError(t, "GenerateCSR when the device makes an unprotected key", err, codes.FailedPrecondition, f5bigip.ReasonKeyNotProtected); !strings.Contains(e.Message, "pci_mode: false") {
		t.Errorf("the error does not say how to proceed: %v", err)
	}
	if got := sim.KeyPaths(); !slices.Equal(got, keysBefore) {
		t.Errorf("keys after the refused GenerateCSR: %v, want %v", got, keysBefore)
	}
	tgt.Options["pci_mode"] = false
	enroll(t, p, tgt, testCA(t), "plain", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
}

// TestPCIKeyProfileMadeByGenerateCSR: GenerateCSR leaves the key in its own profile with a
// placeholder pair; Bind refuses the placeholder; ImportCert replaces it in place.
func TestPCIKeyProfileMadeByGenerateCSR(t *testing.T) {
	t.Parallel()
	for _, needsPass := range []bool{false, true} {
		cfg := bigipsim.DefaultConfig()
		// [UNCONFIRMED] whether making a certificate from a protected key needs its passphrase.
		cfg.CertFromKeyNeedsPassphrase = needsPass
		sim := startSim(t, cfg)
		tgt := target(sim)
		p, _ := launch(t, "info")
		ctx := ctxFor(t)
		req := sdk.CSRRequest{NameHint: "holder", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}, Subject: sdk.Subject{CommonName: "holder.example.test"}}
		csr, err := p.GenerateCSR(ctx, tgt, req)
		if err != nil {
			t.Fatalf("GenerateCSR (certificate from key needs passphrase: %v): %v", needsPass, err)
		}
		keyPath, _, _ := strings.Cut(csr.KeyRef, "#")
		stem := strings.TrimSuffix(keyPath, ".key")
		if got, want := sim.ProfileEntries(stem+"_clientssl"), []string{stem + ".crt " + keyPath + " " + stem + "_chain.crt"}; !slices.Equal(got, want) {
			t.Fatalf("the key's profile holds %v, want %v", got, want)
		}
		_, err = p.Bind(ctx, tgt, sdk.BindRequest{CertRef: stem + ".crt", KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www"}}})
		wantError(t, "Bind of the placeholder", err, codes.FailedPrecondition, sdk.ReasonInvalidRequest)
		ca := testCA(t)
		cert, err := ca.SignCSR(csr.PEM, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		imp, err := p.ImportCert(ctx, tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: ca.ChainPEM()})
		if err != nil || imp.CertRef != stem+".crt" {
			t.Fatalf("ImportCert: %+v, %v; want cert_ref %s.crt", imp, err, stem)
		}
		if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www"}}}); err != nil {
			t.Fatalf("Bind: %v", err)
		}
		if got, err := served(ctx, sim, "vs_www"); err != nil || !got.Equal(cert) {
			t.Fatalf("vs_www does not serve the imported certificate: %v", err)
		}
	}
}

// clientCA is a CA for client certificates (a profile's caFile) and one client certificate.
type clientCA struct {
	pem    string
	client tls.Certificate
}

func newClientCA(t *testing.T) clientCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "client"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return clientCA{pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		client: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// hardenedSettings are a customer's own client-ssl settings: ciphers, protocol options, required
// client certificates and renegotiation.
func hardenedSettings() map[string]any {
	return map[string]any{
		"ciphers": "ECDHE+AES-GCM:!SSLv3:!TLSv1", "tmOptions": []any{"no-tlsv1.3", "no-tlsv1.1", "no-tlsv1", "no-ssl"},
		"peerCertMode": "require", "caFile": "/Common/client_ca.crt", "authenticateDepth": float64(3),
		"renegotiation": "disabled", "secureRenegotiation": "require-strict",
	}
}

// hardenedDevice is the default sim plus a virtual server vs_hard carrying hardened_clientssl.
func hardenedDevice(t *testing.T, cfg bigipsim.Config) (*bigipsim.Sim, clientCA) {
	t.Helper()
	sim := startSim(t, cfg)
	ca := newClientCA(t)
	if err := sim.AddCert("client_ca.crt", ca.pem); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddClientSSLProfile(bigipsim.ProfileSpec{Name: "hardened_clientssl", Settings: hardenedSettings()}); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddVirtual(bigipsim.VirtualSpec{Name: "vs_hard", Profiles: []string{"/Common/tcp", "/Common/http", "/Common/hardened_clientssl"}}); err != nil {
		t.Fatal(err)
	}
	return sim, ca
}

// checkHardened: the profile vs_hard carries has the customer's settings, and the listener acts
// on them: no handshake without a client certificate, none at TLS 1.3, one with both right.
func checkHardened(ctx context.Context, t *testing.T, sim *bigipsim.Sim, ca clientCA, want *x509.Certificate, stage string) {
	t.Helper()
	profiles := sim.ClientSSLOf("vs_hard")
	if len(profiles) != 1 {
		t.Fatalf("%s: vs_hard carries client-ssl profiles %v, want one", stage, profiles)
	}
	got, _, _ := sim.ProfileSettings(profiles[0])
	for k, v := range hardenedSettings() {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s: %s of %s is %v, want the customer's %v", stage, k, profiles[0], got[k], v)
		}
	}
	addr := sim.ServedAddress("vs_hard")
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}} //nolint:gosec // reads what is served
	if conn, err := d.DialContext(ctx, "tcp", addr); err == nil {
		// TLS 1.2 reports a missing client certificate only when the client reads.
		_, err = conn.Read(make([]byte, 1))
		_ = conn.Close()
		if err == nil {
			t.Errorf("%s: vs_hard completed a handshake without a client certificate", stage)
		}
	}
	d13 := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{ca.client}}} //nolint:gosec // reads what is served
	if conn, err := d13.DialContext(ctx, "tcp", addr); err == nil {
		_ = conn.Close()
		t.Errorf("%s: vs_hard speaks TLS 1.3 though the customer's options say no-tlsv1.3", stage)
	}
	dc := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, Certificates: []tls.Certificate{ca.client}}} //nolint:gosec // reads what is served
	conn, err := dc.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("%s: handshake with a client certificate: %v", stage, err)
	}
	defer conn.Close()
	if got := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]; !got.Equal(want) {
		t.Errorf("%s: vs_hard serves %s, want %s", stage, got.Subject, want.Subject)
	}
}

// TestCustomerSettingsKept (finding 4): binding a virtual server keeps its client-ssl profile's
// ciphers, options, client authentication and renegotiation settings, after enrolment and renewal,
// with PCI keys and without; rollback brings the customer's profile back.
func TestCustomerSettingsKept(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct{ pci, parentImmutable bool }{{true, false}, {true, true}, {false, false}} {
		pci := mode.pci
		cfg := bigipsim.DefaultConfig()
		// [UNCONFIRMED] whether a profile's parent can change: with a device that refuses it,
		// certfleet copies the settings onto the key's profile instead.
		cfg.ParentImmutable = mode.parentImmutable
		sim, clientCA := hardenedDevice(t, cfg)
		tgt := target(sim)
		tgt.Options["pci_mode"] = pci
		p, _ := launch(t, "info")
		ctx := ctxFor(t)
		ca := testCA(t)
		binding := []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_hard"}}
		csr, imp, cert := enroll(t, p, tgt, ca, "hard", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
		if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: binding}); err != nil {
			t.Fatalf("pci %v: Bind: %v", pci, err)
		}
		checkHardened(ctx, t, sim, clientCA, cert, "after enrolment")
		if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: binding}); err != nil {
			t.Fatalf("pci %v: repeated Bind: %v", pci, err)
		}
		checkHardened(ctx, t, sim, clientCA, cert, "after a repeated Bind")
		csr2, imp2, cert2 := enroll(t, p, tgt, ca, "hard2", sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 2048})
		bound, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp2.CertRef, KeyRef: csr2.KeyRef, Bindings: binding})
		if err != nil {
			t.Fatalf("pci %v: renewal Bind: %v", pci, err)
		}
		checkHardened(ctx, t, sim, clientCA, cert2, "after renewal")
		if err := p.Rollback(ctx, tgt, bound.RollbackToken); err != nil {
			t.Fatalf("pci %v: Rollback: %v", pci, err)
		}
		checkHardened(ctx, t, sim, clientCA, cert, "after rollback")
		if got, _, _ := sim.ProfileSettings("hardened_clientssl"); !reflect.DeepEqual(got["peerCertMode"], "require") {
			t.Errorf("%+v: the customer's profile changed: %v", mode, got)
		}
		if _, parent, _ := sim.ProfileSettings(sim.ClientSSLOf("vs_hard")[0]); !mode.parentImmutable && parent != "/Common/hardened_clientssl" {
			t.Errorf("%+v: the profile on vs_hard inherits from %s, want /Common/hardened_clientssl", mode, parent)
		}
	}
}

// TestParentChoice: a virtual server with two client-ssl profiles needs an explicit parent; with
// option parent the profile inherits from it.
func TestParentChoice(t *testing.T) {
	t.Parallel()
	sim, _ := hardenedDevice(t, bigipsim.DefaultConfig())
	if err := sim.AddClientSSLProfile(bigipsim.ProfileSpec{Name: "second_clientssl", ServerName: "b.example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddClientSSLProfile(bigipsim.ProfileSpec{Name: "first_clientssl", SNIDefault: true, Settings: hardenedSettings()}); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddVirtual(bigipsim.VirtualSpec{Name: "vs_two", Profiles: []string{"/Common/tcp", "/Common/first_clientssl", "/Common/second_clientssl"}}); err != nil {
		t.Fatal(err)
	}
	tgt := target(sim)
	p, _ := launch(t, "info")
	ctx := ctxFor(t)
	csr, imp, _ := enroll(t, p, tgt, testCA(t), "two", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	_, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_two"}}})
	if e := wantError(t, "Bind to a virtual server with two client-ssl profiles", err, codes.InvalidArgument, sdk.ReasonInvalidRequest); !strings.Contains(e.Message, "option parent") {
		t.Errorf("the error does not name the fix: %v", err)
	}
	if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef,
		Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_two", Options: sdk.Options{"parent": "first_clientssl"}}}}); err != nil {
		t.Fatalf("Bind with option parent: %v", err)
	}
	profiles := sim.ClientSSLOf("vs_two")
	if len(profiles) != 1 {
		t.Fatalf("vs_two carries %v", profiles)
	}
	if _, parent, _ := sim.ProfileSettings(profiles[0]); parent != "/Common/first_clientssl" {
		t.Errorf("%s inherits from %s, want /Common/first_clientssl", profiles[0], parent)
	}
}

// sectigoDevice adds what the Sectigo PCI agent leaves: a key with a passphrase certfleet never
// knew, its certificate, and a profile holding them with hardened settings, on vs_legacy.
func sectigoDevice(t *testing.T) *bigipsim.Sim {
	t.Helper()
	sim := startSim(t, bigipsim.DefaultConfig())
	if err := sim.AddKeyPair(bigipsim.KeyPairSpec{Key: "legacy.example.test.key", Cert: "legacy.example.test.crt", CommonName: "legacy.example.test", Passphrase: "sectigo-random-passphrase-not-ours"}); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddClientSSLProfile(bigipsim.ProfileSpec{Name: "legacy.example.test_clientssl", Settings: legacySettings(),
		Entries: []bigipsim.ProfileEntry{{Name: "default", Cert: "/Common/legacy.example.test.crt", Key: "/Common/legacy.example.test.key"}}}); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddVirtual(bigipsim.VirtualSpec{Name: "vs_legacy", Profiles: []string{"/Common/tcp", "/Common/legacy.example.test_clientssl"}}); err != nil {
		t.Fatal(err)
	}
	return sim
}

func legacySettings() map[string]any {
	return map[string]any{"ciphers": "ECDHE+AES-GCM", "tmOptions": []any{"no-tlsv1.3", "no-tlsv1.1"}, "renegotiation": "disabled"}
}

// TestMigrationFromSectigoAgent (finding 3): with PCI keys, binding the virtual server leaves the
// agent's profile and key untouched, inherits its settings, and rollback swaps it back; editing
// the agent's profile in place (kind client-ssl-profile) is refused before anything changes,
// because its key could never be put back.
func TestMigrationFromSectigoAgent(t *testing.T) {
	t.Parallel()
	sim := sectigoDevice(t)
	tgt := target(sim)
	p, _ := launch(t, "info")
	ctx := ctxFor(t)
	ca := testCA(t)
	legacyEntries := sim.ProfileEntries("legacy.example.test_clientssl")
	legacyCert, err := served(ctx, sim, "vs_legacy")
	if err != nil {
		t.Fatal(err)
	}

	csr, imp, cert := enroll(t, p, tgt, ca, "legacy", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	inPlace := []sdk.Binding{{Kind: f5bigip.KindClientSSLProfile, Name: "legacy.example.test_clientssl", Options: sdk.Options{"virtuals": []any{"vs_legacy"}}}}
	_, err = p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: inPlace})
	wantError(t, "PCI Bind into the agent's profile", err, codes.InvalidArgument, sdk.ReasonInvalidRequest)

	bound, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_legacy"}}})
	if err != nil {
		t.Fatalf("Bind over the agent's profile: %v", err)
	}
	if got, err := served(ctx, sim, "vs_legacy"); err != nil || !got.Equal(cert) {
		t.Fatalf("vs_legacy does not serve the new certificate: %v", err)
	}
	profiles := sim.ClientSSLOf("vs_legacy")
	if settings, parent, _ := sim.ProfileSettings(profiles[0]); parent != "/Common/legacy.example.test_clientssl" || settings["ciphers"] != legacySettings()["ciphers"] {
		t.Errorf("vs_legacy carries %v inheriting from %s (ciphers %v), want the agent's profile as parent", profiles, parent, settings["ciphers"])
	}
	if got := sim.ProfileEntries("legacy.example.test_clientssl"); !slices.Equal(got, legacyEntries) {
		t.Errorf("the agent's profile changed: %v, was %v", got, legacyEntries)
	}
	if err := p.Rollback(ctx, tgt, bound.RollbackToken); err != nil {
		t.Fatalf("Rollback to the agent's profile: %v", err)
	}
	if got := sim.ClientSSLOf("vs_legacy"); !slices.Equal(got, []string{"/Common/legacy.example.test_clientssl"}) {
		t.Errorf("after Rollback vs_legacy carries %v", got)
	}
	if got, err := served(ctx, sim, "vs_legacy"); err != nil || !got.Equal(legacyCert) {
		t.Fatalf("after Rollback vs_legacy does not serve the agent's certificate: %v", err)
	}

}

// TestInPlaceEditOfAgentProfileRefused (finding 3): without PCI mode, editing the agent's profile
// in place (kind client-ssl-profile) is refused before anything changes, because its key, whose
// passphrase certfleet never had, could never be put back (Rollback would fail with 01070313);
// kind virtual works and rolls back.
func TestInPlaceEditOfAgentProfileRefused(t *testing.T) {
	t.Parallel()
	sim := sectigoDevice(t)
	p, _ := launch(t, "info")
	ctx := ctxFor(t)
	ca := testCA(t)
	legacyEntries := sim.ProfileEntries("legacy.example.test_clientssl")
	inPlace := []sdk.Binding{{Kind: f5bigip.KindClientSSLProfile, Name: "legacy.example.test_clientssl", Options: sdk.Options{"virtuals": []any{"vs_legacy"}}}}
	plain := target(sim)
	plain.Options["pci_mode"] = false
	csr2, imp2, _ := enroll(t, p, plain, ca, "legacy2", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	_, err := p.Bind(ctx, plain, sdk.BindRequest{CertRef: imp2.CertRef, KeyRef: csr2.KeyRef, Bindings: inPlace})
	if e := wantError(t, "in-place Bind into the agent's profile", err, codes.FailedPrecondition, f5bigip.ReasonRollbackImpossible); !strings.Contains(e.Message, "kind virtual") {
		t.Errorf("the error does not name the fix: %v", err)
	}
	if got := sim.ProfileEntries("legacy.example.test_clientssl"); !slices.Equal(got, legacyEntries) {
		t.Errorf("the refused Bind changed the agent's profile: %v", got)
	}
	// Kind virtual works without PCI mode too, and rolls back.
	bound2, err := p.Bind(ctx, plain, sdk.BindRequest{CertRef: imp2.CertRef, KeyRef: csr2.KeyRef, Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_legacy"}}})
	if err != nil {
		t.Fatalf("Bind (no PCI) over the agent's profile: %v", err)
	}
	if err := p.Rollback(ctx, plain, bound2.RollbackToken); err != nil {
		t.Fatalf("Rollback (no PCI) to the agent's profile: %v", err)
	}
	if got := sim.ClientSSLOf("vs_legacy"); !slices.Equal(got, []string{"/Common/legacy.example.test_clientssl"}) {
		t.Errorf("after Rollback vs_legacy carries %v", got)
	}
}

// TestCommitFailsWhenGroupNotInSync (finding 5): a device group that stays Disconnected after
// config-sync fails Commit with a retryable error.
func TestCommitFailsWhenGroupNotInSync(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	p, _ := launch(t, "info")
	sim.SetSyncDisconnected(true)
	_, err := p.Commit(ctxFor(t), target(sim), sdk.CommitRequest{})
	if e := wantError(t, "Commit with a disconnected group", err, codes.Unavailable, f5bigip.ReasonSyncIncomplete); !strings.Contains(e.Message, "Disconnected") {
		t.Errorf("the error does not give the group's status: %v", err)
	}
	sim.SetSyncDisconnected(false)
	if _, err := p.Commit(ctxFor(t), target(sim), sdk.CommitRequest{}); err != nil {
		t.Fatalf("Commit once the group is back: %v", err)
	}
}

// TestStandbyUnitRefused (finding 5): every change is refused on a unit that is not active,
// unless the device is configured as standalone.
func TestStandbyUnitRefused(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	tgt := target(sim)
	p, _ := launch(t, "info")
	ctx := ctxFor(t)
	csr, imp, cert := enroll(t, p, tgt, testCA(t), "standby", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	sim.SetFailoverState("standby")
	saves := sim.Saves()
	keys := sim.KeyPaths()
	_, err := p.GenerateCSR(ctx, tgt, sdk.CSRRequest{NameHint: "x", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}, Subject: sdk.Subject{CommonName: "x"}})
	wantError(t, "GenerateCSR on a standby", err, codes.FailedPrecondition, f5bigip.ReasonNotActive)
	_, err = p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www"}}})
	wantError(t, "Bind on a standby", err, codes.FailedPrecondition, f5bigip.ReasonNotActive)
	_, err = p.ImportCert(ctx, tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert)})
	wantError(t, "ImportCert on a standby", err, codes.FailedPrecondition, f5bigip.ReasonNotActive)
	err = p.Rollback(ctx, tgt, []byte(`{"v":1,"virtuals":[{"path":"/Common/vs_www","profiles":[{"path":"/Common/clientssl","context":"clientside"}]}]}`))
	wantError(t, "Rollback on a standby", err, codes.FailedPrecondition, f5bigip.ReasonNotActive)
	_, err = p.Commit(ctx, tgt, sdk.CommitRequest{})
	wantError(t, "Commit on a standby", err, codes.FailedPrecondition, f5bigip.ReasonNotActive)
	_, err = p.Cleanup(ctx, tgt, []sdk.ObjectRef{{CertRef: imp.CertRef, KeyRef: csr.KeyRef}})
	wantError(t, "Cleanup on a standby", err, codes.FailedPrecondition, f5bigip.ReasonNotActive)
	if sim.Saves() != saves || !slices.Equal(sim.KeyPaths(), keys) || len(sim.ClientSSLOf("vs_www")) != 1 || sim.ClientSSLOf("vs_www")[0] != "/Common/clientssl" {
		t.Errorf("a refused call changed the standby")
	}
	tgt.Options["standalone"] = true
	if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www"}}}); err != nil {
		t.Fatalf("Bind with option standalone: %v", err)
	}
}

// TestPCISNIBinding: a PCI key's profile joins a virtual server's profiles for one server name;
// the main profile stays the SNI default, and rollback takes the key's profile off again.
func TestPCISNIBinding(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	if err := sim.AddClientSSLProfile(bigipsim.ProfileSpec{Name: "main_default", SNIDefault: true}); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddVirtual(bigipsim.VirtualSpec{Name: "vs_multi", Profiles: []string{"/Common/tcp", "/Common/main_default"}}); err != nil {
		t.Fatal(err)
	}
	tgt := target(sim)
	p, _ := launch(t, "info")
	ctx := ctxFor(t)
	csr, imp, sni := enroll(t, p, tgt, testCA(t), "sni", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	bound, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef,
		Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_multi", SNI: true, Options: sdk.Options{"server_name": "sni.example.test"}}}})
	if err != nil {
		t.Fatalf("SNI Bind: %v", err)
	}
	for name, wantSNI := range map[string]bool{"sni.example.test": true, "other.example.test": false} {
		conn, err := tls.Dial("tcp", sim.ServedAddress("vs_multi"), &tls.Config{ServerName: name, InsecureSkipVerify: true}) //nolint:gosec // reads what is served
		if err != nil {
			t.Fatalf("handshake for %s: %v", name, err)
		}
		got := conn.ConnectionState().PeerCertificates[0]
		_ = conn.Close()
		if got.Equal(sni) != wantSNI {
			t.Errorf("server name %s got %s; the SNI certificate should be served for sni.example.test only", name, got.Subject)
		}
	}
	if err := p.Rollback(ctx, tgt, bound.RollbackToken); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if got := sim.ClientSSLOf("vs_multi"); !slices.Equal(got, []string{"/Common/main_default"}) {
		t.Errorf("after Rollback vs_multi carries %v", got)
	}
}

// TestGenerateCSRLeavesNothingOnFailure: when the key's profile cannot be made, GenerateCSR fails
// and removes the key, its CSR and the placeholder certificates.
func TestGenerateCSRLeavesNothingOnFailure(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	p, _ := launch(t, "info")
	keys := sim.KeyPaths()
	sim.InjectFault(bigipsim.Fault{Method: http.MethodPost, PathPrefix: "/mgmt/tm/ltm/profile/client-ssl", Status: http.StatusBadRequest, Message: "01070734:3: Configuration error."})
	_, err := p.GenerateCSR(ctxFor(t), target(sim), sdk.CSRRequest{NameHint: "fail", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}, Subject: sdk.Subject{CommonName: "fail.example.test"}})
	if err == nil {
		t.Fatal("GenerateCSR succeeded though the key's profile could not be made")
	}
	if got := sim.KeyPaths(); !slices.Equal(got, keys) {
		t.Errorf("keys after the failed GenerateCSR: %v, want %v", got, keys)
	}
	for _, c := range sim.CertPaths() {
		if strings.Contains(c, "fail_") {
			t.Errorf("certificate %s left behind", c)
		}
	}
}
