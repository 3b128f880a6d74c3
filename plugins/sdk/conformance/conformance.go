// Package conformance is the suite a device plugin author runs (with `go test`) against their
// plugin binary and a target: a simulator or a lab device the suite may change freely. It checks
// that the plugin keeps the contract of proto/certfleet/device/v1 as the core relies on it.
//
// A plugin declares what it does not support through Config.Unsupported (as cert-manager's issuer
// suite does with feature sets); the suite skips exactly those checks and nothing else.
package conformance

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
)

// Feature is a part of the contract a plugin may declare it does not support.
type Feature string

const (
	// FeatureAuthentication: the target has no credentials to get wrong.
	FeatureAuthentication Feature = "authentication"
	// FeatureRollback: Rollback is not supported.
	FeatureRollback Feature = "rollback"
	// FeatureCleanup: Cleanup is not supported.
	FeatureCleanup Feature = "cleanup"
	// FeatureIPSANs: the device cannot put IP addresses in a CSR.
	FeatureIPSANs Feature = "ip-sans"
)

// Features are every Feature a plugin may declare unsupported, and the checks each one skips
// (whole checks, or the parts of a check that need the feature):
//
//   - authentication: BadCredentials;
//   - rollback: the Rollback half of BindCommitRollbackCleanup, RollbackOfPartialBind, and the
//     Rollback call of DeadlineEveryCall;
//   - cleanup: the Cleanup half of BindCommitRollbackCleanup, CleanupIdempotent, and the Cleanup
//     call of DeadlineEveryCall;
//   - ip-sans: the IP address in every CSR the suite asks for.
//
// The other checks (GenerateCSRRetried, ImportCertIdempotent, ConcurrentCertificates,
// BindErrorLeavesDeviceUnchanged, InventoryAfterCommit, InventoryFingerprintsOnly, ...) are
// guarantees of calls every plugin has; no feature skips them (every device can remove, or reuse,
// a key it made under a known name).
var Features = []Feature{FeatureAuthentication, FeatureRollback, FeatureCleanup, FeatureIPSANs}

// ParseFeature reads a feature's name, as a qualification target file gives it.
func ParseFeature(name string) (Feature, error) {
	for _, f := range Features {
		if string(f) == name {
			return f, nil
		}
	}
	known := make([]string, len(Features))
	for i, f := range Features {
		known[i] = string(f)
	}
	return "", fmt.Errorf("unknown feature %q: use one of %s", name, strings.Join(known, ", "))
}

// skipUnsupported ends a check the plugin cannot take, saying why.
func (c Config) skipUnsupported(t T, f Feature, what string) {
	t.Helper()
	if !c.supports(f) {
		t.Skipf("the plugin declares %s unsupported (Config.Unsupported), so %s", f, what)
	}
}

// Config tells the suite what to run against.
type Config struct {
	// PluginPath is the plugin binary (certfleet-plugin-<name>).
	PluginPath string
	// Target is a device the suite may change freely.
	Target sdk.Target
	// BadCredentials is Target with credentials the device rejects. Required unless
	// FeatureAuthentication is unsupported.
	BadCredentials *sdk.Target
	// Bindings are existing places on Target to bind test certificates to (at least one).
	Bindings []sdk.Binding
	// UnknownBinding is a binding of a supported kind naming an object the device does not have.
	UnknownBinding sdk.Binding
	// KeySpecs to exercise; empty means every key spec the plugin declares.
	KeySpecs []sdk.KeySpec
	// Unsupported lists the features whose checks are skipped.
	Unsupported []Feature
	// Served, when set, returns the certificate a binding serves now (for example over a TLS
	// listener), so the suite checks what is live after Commit and Rollback, not only Inventory.
	Served func(ctx context.Context, b sdk.Binding) (*x509.Certificate, error)
	// CallTimeout bounds each call; 60s when zero.
	CallTimeout time.Duration
	// Stall, when set, makes the device stop answering (a simulator's stall switch, a held lock)
	// until release is called. The DeadlineEveryCall check needs it and is skipped without it.
	Stall func(ctx context.Context) (release func(), err error)
	// StallDeadline is the deadline of each call made while stalled; 500ms when zero.
	StallDeadline time.Duration
	// StallSettle is how long after release a plugin that ignored its deadline is given to do the
	// damage the check looks for; 1s when zero.
	StallSettle time.Duration
}

func (c Config) supports(f Feature) bool { return !slices.Contains(c.Unsupported, f) }

// suite is one run: a launched plugin, a test CA and the config.
type suite struct {
	cfg  Config
	p    sdk.Plugin
	info sdk.Info
	ca   *TestCA
}

// Run launches the plugin and runs every check as a subtest, in an order where later checks build
// on the objects earlier ones made.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	runChecks(testingT{t}, cfg)
}

func runChecks(t T, cfg Config) {
	t.Helper()
	if cfg.PluginPath == "" {
		t.Fatal("conformance: Config.PluginPath is empty")
	}
	if len(cfg.Bindings) == 0 {
		t.Fatal("conformance: Config.Bindings needs at least one binding to test with")
	}
	for _, f := range cfg.Unsupported {
		if _, err := ParseFeature(string(f)); err != nil {
			t.Fatalf("conformance: Config.Unsupported: %v", err)
		}
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 60 * time.Second
	}
	client := plugin.NewClient(sdk.ClientConfig(cfg.PluginPath, nil, hclog.New(&hclog.LoggerOptions{
		Name: "plugin", Output: os.Stderr, Level: hclog.Warn,
	})))
	t.Cleanup(client.Kill)
	p, err := sdk.Dispense(client)
	if err != nil {
		t.Fatalf("conformance: launch %s: %v", cfg.PluginPath, err)
	}
	ca, err := NewTestCA()
	if err != nil {
		t.Fatalf("conformance: test CA: %v", err)
	}
	s := &suite{cfg: cfg, p: p, ca: ca}

	t.Run("GetInfo", s.testGetInfo)
	if s.info.Name == "" {
		t.Fatal("conformance: GetInfo failed; nothing else can be checked")
	}
	t.Run("CheckTarget", s.testCheckTarget)
	t.Run("BadCredentials", s.testBadCredentials)
	t.Run("CheckBindings", s.testCheckBindings)
	t.Run("GenerateCSR", s.testGenerateCSR)
	t.Run("ImportCert", s.testImportCert)
	t.Run("BindCommitRollbackCleanup", s.testLifecycle)
	t.Run("GenerateCSRRetried", s.testGenerateCSRRetried)
	t.Run("ImportCertIdempotent", s.testImportIdempotent)
	t.Run("CleanupIdempotent", s.testCleanupIdempotent)
	t.Run("ConcurrentCertificates", s.testConcurrentCertificates)
	t.Run("BindErrorLeavesDeviceUnchanged", s.testBindErrorLeavesDevice)
	t.Run("RollbackOfPartialBind", s.testRollbackOfPartialBind)
	t.Run("InventoryAfterCommit", s.testInventoryAfterCommit)
	t.Run("InventoryFingerprintsOnly", s.testInventoryFingerprintsOnly)
	t.Run("DeadlineEveryCall", s.testDeadlineEveryCall)
	t.Run("UnknownBinding", s.testUnknownBinding)
	t.Run("Deadline", s.testDeadline)
	t.Run("Canceled", s.testCanceled)
}

func (s *suite) ctx(t T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t T, what string, err error, want ...codes.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want error with code %v", what, want)
	}
	got := sdk.CodeOf(err)
	if !slices.Contains(want, got) {
		t.Fatalf("%s: code %v (%v), want %v", what, got, err, want)
	}
	if e := sdk.AsError(err); e.Reason == "" {
		t.Errorf("%s: error has no reason: %v", what, err)
	}
}

func (s *suite) testGetInfo(t T) {
	info, err := s.p.Info(s.ctx(t))
	if err != nil {
		t.Fatalf("GetInfo: %v", err)
	}
	s.info = info
	if info.Name == "" || info.Version == "" || info.Vendor == "" {
		t.Errorf("GetInfo: name %q, version %q and vendor %q must all be set", info.Name, info.Version, info.Vendor)
	}
	base := s.cfg.PluginPath[strings.LastIndex(s.cfg.PluginPath, "/")+1:]
	if want := sdk.BinaryPrefix + info.Name; strings.TrimSuffix(base, ".exe") != want {
		t.Errorf("GetInfo: name %q, but the binary is %q (want %q)", info.Name, base, want)
	}
	if info.ContractMinorVersion > sdk.ContractMinorVersion {
		t.Errorf("GetInfo: contract minor %d is newer than this suite's %d", info.ContractMinorVersion, sdk.ContractMinorVersion)
	}
	if len(info.Capabilities.KeySpecs) == 0 {
		t.Error("GetInfo: no key specs declared")
	}
	for _, k := range info.Capabilities.KeySpecs {
		if !k.Valid() {
			t.Errorf("GetInfo: key spec %v is not one the contract allows", k)
		}
	}
	if len(info.Capabilities.BindingKinds) == 0 {
		t.Error("GetInfo: no binding kinds declared")
	}
	for _, b := range s.cfg.Bindings {
		if !info.Capabilities.SupportsBinding(b.Kind) {
			t.Errorf("GetInfo: test binding kind %q is not among the declared kinds %v", b.Kind, info.Capabilities.BindingKinds)
		}
	}
	if info.Capabilities.SupportsRollback != s.cfg.supports(FeatureRollback) {
		t.Errorf("GetInfo: supports_rollback=%v disagrees with Config.Unsupported", info.Capabilities.SupportsRollback)
	}
	if info.Capabilities.SupportsCleanup != s.cfg.supports(FeatureCleanup) {
		t.Errorf("GetInfo: supports_cleanup=%v disagrees with Config.Unsupported", info.Capabilities.SupportsCleanup)
	}
}

func (s *suite) testCheckTarget(t T) {
	if _, err := s.p.CheckTarget(s.ctx(t), s.cfg.Target); err != nil {
		t.Fatalf("CheckTarget: %v", err)
	}
}

func (s *suite) testBadCredentials(t T) {
	s.cfg.skipUnsupported(t, FeatureAuthentication, "the target has no credentials to get wrong")
	if s.cfg.BadCredentials == nil {
		t.Fatal("Config.BadCredentials is required unless FeatureAuthentication is unsupported")
	}
	_, err := s.p.CheckTarget(s.ctx(t), *s.cfg.BadCredentials)
	wantCode(t, "CheckTarget with bad credentials", err, codes.Unauthenticated)
	for _, secret := range []string{s.cfg.BadCredentials.Credentials.Password, s.cfg.BadCredentials.Credentials.APIKey, s.cfg.BadCredentials.Credentials.Token} {
		if len(secret) >= 4 && strings.Contains(err.Error(), secret) {
			t.Errorf("error text reveals a credential: %v", err)
		}
	}
	_, err = s.p.Inventory(s.ctx(t), *s.cfg.BadCredentials)
	wantCode(t, "Inventory with bad credentials", err, codes.Unauthenticated)
}

func (s *suite) keySpecs() []sdk.KeySpec {
	if len(s.cfg.KeySpecs) > 0 {
		return s.cfg.KeySpecs
	}
	return s.info.Capabilities.KeySpecs
}

// csrRequest is what the suite asks for: a subject and names unique to this run.
func (s *suite) csrRequest(hint string, spec sdk.KeySpec) sdk.CSRRequest {
	host := fmt.Sprintf("%s-%d.conformance.example", hint, time.Now().UnixNano()%1e9)
	req := sdk.CSRRequest{
		NameHint:  hint,
		AttemptID: newAttemptID(),
		KeySpec:   spec,
		Subject: sdk.Subject{
			CommonName: host, Organization: "certfleet test", OrganizationalUnit: "conformance",
			Locality: "Leeds", State: "West Yorkshire", Country: "GB",
		},
		SANs: sdk.SANs{DNSNames: []string{host, "alt-" + host}},
	}
	if s.cfg.supports(FeatureIPSANs) {
		req.SANs.IPAddresses = []string{"192.0.2.10"}
	}
	return req
}

// newAttemptID is a new attempt ID, as the core gives each operation (24 hex digits).
func newAttemptID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func sorted(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

// checkCSR verifies a CSR against exactly what was requested.
func checkCSR(t T, req sdk.CSRRequest, csr sdk.CSR) *x509.CertificateRequest {
	t.Helper()
	if csr.KeyRef == "" {
		t.Fatal("GenerateCSR returned an empty key_ref")
	}
	parsed, err := sdk.ParseCSRPEM(csr.PEM)
	if err != nil {
		t.Fatalf("GenerateCSR returned an invalid CSR: %v", err)
	}
	if got := sdk.KeySpecOfCSR(parsed); got != req.KeySpec {
		t.Errorf("CSR key is %v, want %v", got, req.KeySpec)
	}
	sub := parsed.Subject
	if sub.CommonName != req.Subject.CommonName {
		t.Errorf("CSR CN %q, want %q", sub.CommonName, req.Subject.CommonName)
	}
	check := func(field string, got []string, want string) {
		if want == "" && len(got) == 0 {
			return
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("CSR %s %v, want %q", field, got, want)
		}
	}
	check("O", sub.Organization, req.Subject.Organization)
	check("OU", sub.OrganizationalUnit, req.Subject.OrganizationalUnit)
	check("L", sub.Locality, req.Subject.Locality)
	check("ST", sub.Province, req.Subject.State)
	check("C", sub.Country, req.Subject.Country)
	if got, want := sorted(parsed.DNSNames), sorted(req.SANs.DNSNames); !slices.Equal(got, want) {
		t.Errorf("CSR DNS names %v, want exactly %v", got, want)
	}
	var ips []string
	for _, ip := range parsed.IPAddresses {
		ips = append(ips, ip.String())
	}
	if got, want := sorted(ips), sorted(req.SANs.IPAddresses); !slices.Equal(got, want) {
		t.Errorf("CSR IP addresses %v, want exactly %v", got, want)
	}
	return parsed
}

func (s *suite) testGenerateCSR(t T) {
	for _, spec := range s.keySpecs() {
		t.Run(spec.String(), func(t T) {
			req := s.csrRequest("csr", spec)
			first, err := s.p.GenerateCSR(s.ctx(t), s.cfg.Target, req)
			if err != nil {
				t.Fatalf("GenerateCSR: %v", err)
			}
			a := checkCSR(t, req, first)
			// The next key request for the same certificate: a new operation, a new attempt.
			next := req
			next.AttemptID = newAttemptID()
			s.expectNewKey(t, a, first, next)
		})
	}
	t.Run("WithoutAttemptID", func(t T) {
		// A core older than attempt_id sends none: every call makes a new key under new names.
		req := s.csrRequest("csr-noattempt", s.keySpecs()[0])
		req.AttemptID = ""
		first, err := s.p.GenerateCSR(s.ctx(t), s.cfg.Target, req)
		if err != nil {
			t.Fatalf("GenerateCSR: %v", err)
		}
		s.expectNewKey(t, checkCSR(t, req, first), first, req)
	})
	t.Run("InvalidKeySpec", func(t T) {
		_, err := s.p.GenerateCSR(s.ctx(t), s.cfg.Target, s.csrRequest("bad", sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 1024}))
		wantCode(t, "GenerateCSR with RSA-1024", err, codes.InvalidArgument)
	})
}

// expectNewKey asks for req's key and checks it is a new key pair under a new key_ref, not the
// one of first (made by an earlier call with another attempt ID, or none).
func (s *suite) expectNewKey(t T, a *x509.CertificateRequest, first sdk.CSR, req sdk.CSRRequest) {
	t.Helper()
	second, err := s.p.GenerateCSR(s.ctx(t), s.cfg.Target, req)
	if err != nil {
		t.Fatalf("second GenerateCSR for the same certificate: %v", err)
	}
	b := checkCSR(t, req, second)
	if sdk.PublicKeysEqual(a.PublicKey, b.PublicKey) {
		t.Error("two GenerateCSR calls returned the same key: every key request must make a new key pair")
	}
	if first.KeyRef == second.KeyRef {
		t.Errorf("two GenerateCSR calls returned the same key_ref %q", first.KeyRef)
	}
}

// issued is a certificate the suite made and imported.
type issued struct {
	keyRef, certRef string
	cert            *x509.Certificate
}

func (s *suite) enroll(t T, hint string) issued {
	t.Helper()
	req := s.csrRequest(hint, s.keySpecs()[0])
	csr, err := s.p.GenerateCSR(s.ctx(t), s.cfg.Target, req)
	if err != nil {
		t.Fatalf("GenerateCSR: %v", err)
	}
	cert, err := s.ca.SignCSR(csr.PEM, 30*24*time.Hour)
	if err != nil {
		t.Fatalf("sign CSR: %v", err)
	}
	res, err := s.p.ImportCert(s.ctx(t), s.cfg.Target, sdk.ImportRequest{
		KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: s.ca.ChainPEM(), NameHint: hint,
	})
	if err != nil {
		t.Fatalf("ImportCert: %v", err)
	}
	if res.CertRef == "" {
		t.Fatal("ImportCert returned an empty cert_ref")
	}
	return issued{keyRef: csr.KeyRef, certRef: res.CertRef, cert: cert}
}

func (s *suite) inventory(t T) map[string]sdk.DeviceCertificate {
	t.Helper()
	certs, err := s.p.Inventory(s.ctx(t), s.cfg.Target)
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	out := make(map[string]sdk.DeviceCertificate, len(certs))
	for _, c := range certs {
		out[c.CertRef] = c
	}
	return out
}

// testInventoryFingerprintsOnly: an Inventory whose caller reads only fingerprints (what the
// core asks in the steady state) lists the same certificates as a whole one, with the same
// fingerprints and bindings (of a certificate bound and committed here), and nothing else.
func (s *suite) testInventoryFingerprintsOnly(t T) {
	cert := s.enroll(t, "fingerprints-only")
	if _, err := s.p.Bind(s.ctx(t), s.cfg.Target, sdk.BindRequest{CertRef: cert.certRef, KeyRef: cert.keyRef, Bindings: s.cfg.Bindings}); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	s.commit(t, "inventory of fingerprints only")
	whole := s.inventory(t)
	if len(whole[cert.certRef].Bindings) == 0 {
		t.Fatalf("a whole Inventory shows %s bound nowhere after Commit", cert.certRef)
	}
	certs, err := s.p.Inventory(sdk.WithFingerprintsOnly(s.ctx(t)), s.cfg.Target)
	if err != nil {
		t.Fatalf("Inventory of fingerprints only: %v", err)
	}
	if len(certs) != len(whole) {
		t.Errorf("Inventory of fingerprints only lists %d certificates, a whole one %d", len(certs), len(whole))
	}
	byName := func(a, b sdk.Binding) int { return strings.Compare(a.Kind+"/"+a.Name, b.Kind+"/"+b.Name) }
	for _, got := range certs {
		w, ok := whole[got.CertRef]
		if !ok {
			t.Errorf("%s is listed only when fingerprints alone are asked for", got.CertRef)
			continue
		}
		want := sdk.DeviceCertificate{CertRef: w.CertRef, SHA256Fingerprint: w.SHA256Fingerprint, Bindings: slices.Clone(w.Bindings)}
		slices.SortFunc(got.Bindings, byName)
		slices.SortFunc(want.Bindings, byName)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s with fingerprints only is %+v, want %+v", got.CertRef, got, want)
		}
	}
}

func (s *suite) testImportCert(t T) {
	got := s.enroll(t, "import")
	inv := s.inventory(t)
	dc, ok := inv[got.certRef]
	if !ok {
		t.Fatalf("Inventory does not list imported cert_ref %q", got.certRef)
	}
	if dc.SHA256Fingerprint != "" && dc.SHA256Fingerprint != sdk.Fingerprint(got.cert) {
		t.Errorf("Inventory fingerprint %s, want %s", dc.SHA256Fingerprint, sdk.Fingerprint(got.cert))
	}
	if want := sdk.Describe(got.cert).Serial; dc.Serial != want {
		t.Errorf("Inventory serial %q, want %q", dc.Serial, want)
	}
	if !dc.NotAfter.Equal(got.cert.NotAfter) {
		t.Errorf("Inventory not_after %v, want %v", dc.NotAfter, got.cert.NotAfter)
	}
	if got, want := sorted(dc.SANs.DNSNames), sorted(got.cert.DNSNames); !slices.Equal(got, want) {
		t.Errorf("Inventory DNS names %v, want %v", got, want)
	}
	if dc.KeySpec != sdk.KeySpecOf(got.cert) {
		t.Errorf("Inventory key spec %v, want %v", dc.KeySpec, sdk.KeySpecOf(got.cert))
	}

	t.Run("RejectsCertificateForAnotherKey", func(t T) {
		req := s.csrRequest("mismatch", s.keySpecs()[0])
		csr, err := s.p.GenerateCSR(s.ctx(t), s.cfg.Target, req)
		if err != nil {
			t.Fatalf("GenerateCSR: %v", err)
		}
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		wrong, err := s.ca.Sign(other.Public(), pkix.Name{CommonName: req.Subject.CommonName}, req.SANs.DNSNames, nil, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.p.ImportCert(s.ctx(t), s.cfg.Target, sdk.ImportRequest{
			KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(wrong), ChainPEM: s.ca.ChainPEM(), NameHint: "mismatch",
		})
		wantCode(t, "ImportCert of a certificate for another key", err, codes.InvalidArgument, codes.FailedPrecondition)
	})
	t.Run("RejectsUnknownKeyRef", func(t T) {
		_, err := s.p.ImportCert(s.ctx(t), s.cfg.Target, sdk.ImportRequest{
			KeyRef: "certfleet-conformance-no-such-key", CertPEM: sdk.EncodeCertificatePEM(got.cert), ChainPEM: s.ca.ChainPEM(),
		})
		wantCode(t, "ImportCert with an unknown key_ref", err, codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition)
	})
	t.Run("RejectsGarbage", func(t T) {
		_, err := s.p.ImportCert(s.ctx(t), s.cfg.Target, sdk.ImportRequest{KeyRef: got.keyRef, CertPEM: "not a certificate"})
		wantCode(t, "ImportCert of a non-PEM certificate", err, codes.InvalidArgument)
	})
}

// boundTo reports whether Inventory shows certRef bound at b.
func boundTo(inv map[string]sdk.DeviceCertificate, certRef string, b sdk.Binding) bool {
	for _, got := range inv[certRef].Bindings {
		if got.Kind == b.Kind && got.Name == b.Name {
			return true
		}
	}
	return false
}

func (s *suite) expectBound(t T, stage string, want issued) {
	t.Helper()
	inv := s.inventory(t)
	for _, b := range s.cfg.Bindings {
		if !boundTo(inv, want.certRef, b) {
			t.Errorf("%s: Inventory does not show %s bound at %v (bindings: %v)", stage, want.certRef, b, inv[want.certRef].Bindings)
		}
	}
}

func (s *suite) expectServed(t T, stage string, want issued) {
	t.Helper()
	if s.cfg.Served == nil {
		return
	}
	for _, b := range s.cfg.Bindings {
		served, err := s.cfg.Served(s.ctx(t), b)
		if err != nil {
			t.Errorf("%s: read served certificate of %v: %v", stage, b, err)
			continue
		}
		if !served.Equal(want.cert) {
			t.Errorf("%s: %v serves serial %s, want %s", stage, b, served.SerialNumber, want.cert.SerialNumber)
		}
	}
}

func (s *suite) commit(t T, what string) {
	t.Helper()
	if _, err := s.p.Commit(s.ctx(t), s.cfg.Target, sdk.CommitRequest{Description: "certfleet conformance: " + what}); err != nil {
		t.Fatalf("Commit after %s: %v", what, err)
	}
}

func (s *suite) testLifecycle(t T) {
	first := s.enroll(t, "first")
	if _, err := s.p.Bind(s.ctx(t), s.cfg.Target, sdk.BindRequest{CertRef: first.certRef, KeyRef: first.keyRef, Bindings: s.cfg.Bindings}); err != nil {
		t.Fatalf("Bind first: %v", err)
	}
	s.expectBound(t, "after Bind", first)
	s.commit(t, "bind first")
	s.expectServed(t, "after Commit", first)

	second := s.enroll(t, "second")
	bound, err := s.p.Bind(s.ctx(t), s.cfg.Target, sdk.BindRequest{CertRef: second.certRef, KeyRef: second.keyRef, Bindings: s.cfg.Bindings})
	if err != nil {
		t.Fatalf("Bind second (renewal): %v", err)
	}
	if !slices.Contains(bound.PreviousCertRefs, first.certRef) {
		t.Errorf("Bind second: previous_cert_refs %v does not name the replaced %q", bound.PreviousCertRefs, first.certRef)
	}
	s.expectBound(t, "after renewal Bind", second)
	inv := s.inventory(t)
	for _, b := range s.cfg.Bindings {
		if boundTo(inv, first.certRef, b) {
			t.Errorf("after renewal Bind: %s is still bound at %v", first.certRef, b)
		}
	}
	s.commit(t, "bind second")
	s.expectServed(t, "after renewal Commit", second)

	if s.cfg.supports(FeatureRollback) {
		if len(bound.RollbackToken) == 0 {
			t.Fatal("Bind returned no rollback token though the plugin supports rollback")
		}
		if err := s.p.Rollback(s.ctx(t), s.cfg.Target, bound.RollbackToken); err != nil {
			t.Fatalf("Rollback: %v", err)
		}
		s.expectBound(t, "after Rollback", first)
		s.commit(t, "rollback")
		s.expectServed(t, "after Rollback Commit", first)
		err := s.p.Rollback(s.ctx(t), s.cfg.Target, []byte("certfleet conformance: not a token"))
		wantCode(t, "Rollback with a corrupt token", err, codes.InvalidArgument)
	} else {
		t.Log("rollback: skipped, plugin declares it unsupported")
	}

	if !s.cfg.supports(FeatureCleanup) {
		t.Log("cleanup: skipped, plugin declares it unsupported")
		return
	}
	live, stale := first, second
	if !s.cfg.supports(FeatureRollback) {
		live, stale = second, first
	}
	results, err := s.p.Cleanup(s.ctx(t), s.cfg.Target, []sdk.ObjectRef{
		{CertRef: live.certRef, KeyRef: live.keyRef}, {CertRef: stale.certRef, KeyRef: stale.keyRef},
	})
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if len(results) != 2 {
		t.Fatalf("Cleanup returned %d results for 2 objects", len(results))
	}
	for _, r := range results {
		switch r.Object.CertRef {
		case live.certRef:
			if r.Removed || r.Reason == "" {
				t.Errorf("Cleanup of the bound %s: removed=%v reason=%q; a bound object must be kept, with a reason", live.certRef, r.Removed, r.Reason)
			}
		case stale.certRef:
			if !r.Removed {
				t.Errorf("Cleanup of the unbound %s was not removed: %s", stale.certRef, r.Reason)
			}
		default:
			t.Errorf("Cleanup reported on an object it was not asked about: %+v", r.Object)
		}
	}
	inv = s.inventory(t)
	if _, ok := inv[stale.certRef]; ok {
		t.Errorf("after Cleanup, Inventory still lists %s", stale.certRef)
	}
	if _, ok := inv[live.certRef]; !ok {
		t.Errorf("after Cleanup, Inventory lost the bound %s", live.certRef)
	}
	s.expectServed(t, "after Cleanup", live)
}

func (s *suite) testUnknownBinding(t T) {
	cert := s.enroll(t, "unknown-binding")
	_, err := s.p.Bind(s.ctx(t), s.cfg.Target, sdk.BindRequest{CertRef: cert.certRef, KeyRef: cert.keyRef, Bindings: []sdk.Binding{s.cfg.UnknownBinding}})
	wantCode(t, fmt.Sprintf("Bind to the unknown %v", s.cfg.UnknownBinding), err, codes.NotFound)
	bad := s.cfg.Bindings[0]
	bad.Kind = "certfleet-conformance-no-such-kind"
	_, err = s.p.Bind(s.ctx(t), s.cfg.Target, sdk.BindRequest{CertRef: cert.certRef, KeyRef: cert.keyRef, Bindings: []sdk.Binding{bad}})
	wantCode(t, "Bind with an undeclared binding kind", err, codes.InvalidArgument)
}

func (s *suite) testDeadline(t T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	_, err := s.p.Inventory(ctx, s.cfg.Target)
	wantCode(t, "Inventory with an expired deadline", err, codes.DeadlineExceeded)
	// The plugin must still serve calls afterwards.
	if _, err := s.p.Inventory(s.ctx(t), s.cfg.Target); err != nil {
		t.Fatalf("Inventory after an expired deadline: %v", err)
	}
}

func (s *suite) testCanceled(t T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.p.GenerateCSR(ctx, s.cfg.Target, s.csrRequest("canceled", s.keySpecs()[0]))
	wantCode(t, "GenerateCSR with a cancelled context", err, codes.Canceled)
}
