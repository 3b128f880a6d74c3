package paloaltopanos_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paloaltopanos "github.com/certfleet/certfleet/plugins/paloalto-panos"
	"github.com/certfleet/certfleet/plugins/paloalto-panos/panossim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
)

// ctxT bounds a call; the in-process plugin logs nowhere.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(sdk.WithLogger(context.Background(), hclog.NewNullLogger()), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var webTLS = sdk.Binding{Kind: paloaltopanos.KindProfile, Name: "web-tls"}

func csrRequest(cn string) sdk.CSRRequest {
	return sdk.CSRRequest{
		NameHint: cn, KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		Subject: sdk.Subject{CommonName: cn, Organization: "certfleet test", Country: "GB"},
		SANs:    sdk.SANs{DNSNames: []string{cn}},
	}
}

type enrolled struct {
	keyRef, certRef string
	chainRefs       []string
	cert            *x509.Certificate
}

// enroll runs GenerateCSR, signs with ca and runs ImportCert.
func enroll(t *testing.T, p sdk.Plugin, tgt sdk.Target, ca *conformance.TestCA, req sdk.CSRRequest) enrolled {
	t.Helper()
	ctx := ctxT(t)
	csr, err := p.GenerateCSR(ctx, tgt, req)
	if err != nil {
		t.Fatalf("GenerateCSR: %v", err)
	}
	cert, err := ca.SignCSR(csr.PEM, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.ImportCert(ctx, tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: ca.ChainPEM(), NameHint: req.NameHint})
	if err != nil {
		t.Fatalf("ImportCert: %v", err)
	}
	return enrolled{keyRef: csr.KeyRef, certRef: res.CertRef, chainRefs: res.ChainRefs, cert: cert}
}

func newCA(t *testing.T) *conformance.TestCA {
	t.Helper()
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func served(t *testing.T, sim *panossim.Sim, profile string) *x509.Certificate {
	t.Helper()
	c, err := dialServed(ctxT(t), sim.ServedAddress(profile))
	if err != nil {
		t.Fatalf("read what %s serves: %v", profile, err)
	}
	return c
}

func wantCode(t *testing.T, what string, err error, code codes.Code, reason string) *sdk.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %v", what, code)
	}
	e := sdk.AsError(err)
	if e.Code != code || (reason != "" && e.Reason != reason) {
		t.Fatalf("%s: %v / %s (%v), want %v / %s", what, e.Code, e.Reason, err, code, reason)
	}
	return e
}

// launch runs the real plugin binary, as the core does.
func launch(t *testing.T) sdk.Plugin {
	t.Helper()
	client := plugin.NewClient(sdk.ClientConfig(pluginPath, nil, hclog.New(&hclog.LoggerOptions{Level: hclog.Warn})))
	t.Cleanup(client.Kill)
	p, err := sdk.Dispense(client)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A commit job that fails is an error carrying the job's messages, across the plugin boundary,
// and nothing becomes live.
func TestFailedCommitIsAnErrorWithTheJobMessages(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	tgt := targetFor(sim, passwordCreds, nil)
	p := launch(t)
	ca := newCA(t)
	before := served(t, sim, "web-tls")
	got := enroll(t, p, tgt, ca, csrRequest("failing.example"))
	bound, err := p.Bind(ctxT(t), tgt, sdk.BindRequest{CertRef: got.certRef, KeyRef: got.keyRef, Bindings: []sdk.Binding{webTLS}})
	if err != nil {
		t.Fatal(err)
	}
	sim.FailCommits(1, "Validation Error:", "ssl-tls-service-profile -> web-tls -> content update in progress")
	_, err = p.Commit(ctxT(t), tgt, sdk.CommitRequest{Description: "certfleet: failing"})
	e := wantCode(t, "Commit of a failing job", err, codes.FailedPrecondition, sdk.ReasonCommitFailed)
	for _, want := range []string{"Validation Error:", "content update in progress"} {
		if !strings.Contains(e.VendorMessage, want) || !strings.Contains(err.Error(), want) {
			t.Errorf("commit error %q (vendor message %q) lacks the job message %q", err, e.VendorMessage, want)
		}
	}
	if e.VendorCode != "FAIL" {
		t.Errorf("vendor code %q, want the job result FAIL", e.VendorCode)
	}
	if now := served(t, sim, "web-tls"); !now.Equal(before) {
		t.Error("a failed commit changed what web-tls serves")
	}
	if c := sim.Running("/config/shared/ssl-tls-service-profile/entry[@name='web-tls']/certificate"); !strings.Contains(c, "sim-factory-web") {
		t.Errorf("a failed commit changed the running configuration of web-tls: %s", c)
	}
	if slices.Contains(sim.CertificateNames(true), got.certRef) {
		t.Errorf("a failed commit put certificate %s into the running configuration", got.certRef)
	}
	// The engine rolls back after a failed commit; the candidate is then as before.
	if err := p.Rollback(ctxT(t), tgt, bound.RollbackToken); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sim.Candidate("/config/shared/ssl-tls-service-profile/entry[@name='web-tls']/certificate"), "sim-factory-web") {
		t.Error("rollback did not restore the profile in the candidate configuration")
	}
}

// Values with XML and URL special characters survive: admin, password, profile name, subject,
// name hint and commit description.
func TestSpecialCharactersSurviveTheRoundTrip(t *testing.T) {
	t.Parallel()
	admin, pass := "api & <ops> 'x'", `p&ss w<rd>'%+=#?;"`
	profileName := "web & <api> 'prod'"
	sim := startSim(t, func(c *panossim.Config) {
		c.Admins = append(c.Admins, panossim.Admin{Name: admin, Password: pass})
		c.Profiles = append(c.Profiles, panossim.ProfileSpec{Name: profileName, Certificate: "sim-factory-web"})
	})
	tgt := targetFor(sim, sdk.Credentials{Username: admin, Password: pass}, sdk.Options{"commit_admin": admin})
	p := paloaltopanos.New()
	ca := newCA(t)
	req := sdk.CSRRequest{
		NameHint: "R&D <shop> 'web' portal",
		KeySpec:  sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 384},
		Subject: sdk.Subject{
			CommonName: "Shop & Co's <web> site", Organization: "AT&T <Labs> & O'Brien", OrganizationalUnit: "R&D 'core' <x>",
			Locality: "St. John's", State: "Newfoundland & Labrador", Country: "CA", Email: "o'brien+pki@example.com",
		},
		SANs: sdk.SANs{DNSNames: []string{"shop.example", "www.shop.example"}, IPAddresses: []string{"192.0.2.7"}, EmailAddresses: []string{"ops&sec@example.com"}},
	}
	csr, err := p.GenerateCSR(ctxT(t), tgt, req)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := sdk.ParseCSRPEM(csr.PEM)
	if err != nil {
		t.Fatal(err)
	}
	s := parsed.Subject
	if s.CommonName != req.Subject.CommonName || s.Organization[0] != req.Subject.Organization || s.OrganizationalUnit[0] != req.Subject.OrganizationalUnit ||
		s.Locality[0] != req.Subject.Locality || s.Province[0] != req.Subject.State {
		t.Errorf("CSR subject %q, want the requested fields exactly", s.String())
	}
	if !slices.Contains(parsed.EmailAddresses, "ops&sec@example.com") || !slices.Contains(parsed.EmailAddresses, req.Subject.Email) {
		t.Errorf("CSR emails %v", parsed.EmailAddresses)
	}
	if name := strings.TrimPrefix(csr.KeyRef, "vsys1/"); !strings.HasPrefix(name, "R-D-shop-web-portal-") || len(name) > 63 {
		t.Errorf("certificate name %q: want the sanitized hint and at most 63 characters", name)
	}
	cert, err := ca.SignCSR(csr.PEM, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.ImportCert(ctxT(t), tgt, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: ca.ChainPEM()})
	if err != nil {
		t.Fatal(err)
	}
	b := sdk.Binding{Kind: paloaltopanos.KindProfile, Name: profileName}
	if _, err := p.Bind(ctxT(t), tgt, sdk.BindRequest{CertRef: res.CertRef, Bindings: []sdk.Binding{b}}); err != nil {
		t.Fatal(err)
	}
	description := `renew <web> & 'shop' "now"`
	if _, err := p.Commit(ctxT(t), tgt, sdk.CommitRequest{Description: description}); err != nil {
		t.Fatal(err)
	}
	commits := sim.Commits()
	last := commits[len(commits)-1]
	if last.Description != description || !slices.Equal(last.Admins, []string{admin}) || last.User != admin {
		t.Errorf("commit record %+v: description and admin must come through unchanged", last)
	}
	if got := served(t, sim, profileName); !got.Equal(cert) {
		t.Error("the profile with special characters does not serve the new certificate")
	}
	inv, err := p.Inventory(ctxT(t), tgt)
	if err != nil {
		t.Fatal(err)
	}
	for _, dc := range inv {
		if dc.CertRef != res.CertRef {
			continue
		}
		if dc.Subject != cert.Subject.String() || !slices.ContainsFunc(dc.Bindings, func(x sdk.Binding) bool { return x.Name == profileName }) {
			t.Errorf("Inventory: subject %q, bindings %v", dc.Subject, dc.Bindings)
		}
		return
	}
	t.Errorf("Inventory does not list %s", res.CertRef)
}

// While certificates are renewed, bound and committed over and over, a TLS client connecting to
// the profile in a loop never fails: there is no moment without a certificate.
func TestRenewalNeverLeavesTheProfileWithoutACertificate(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *panossim.Config) { c.CommitDuration = 50 * time.Millisecond })
	tgt := targetFor(sim, passwordCreds, sdk.Options{"commit_poll_interval": 0.02})
	p := paloaltopanos.New()
	ca := newCA(t)
	var stop atomic.Bool
	var failures, handshakes atomic.Int64
	serials := sync.Map{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			c, err := dialServed(context.Background(), sim.ServedAddress("web-tls"))
			if err != nil {
				failures.Add(1)
				continue
			}
			handshakes.Add(1)
			serials.Store(c.SerialNumber.String(), true)
		}
	}()
	previous := ""
	for i := 0; i < 3; i++ {
		got := enroll(t, p, tgt, ca, csrRequest("loop.example"))
		res, err := p.Bind(ctxT(t), tgt, sdk.BindRequest{CertRef: got.certRef, Bindings: []sdk.Binding{webTLS}})
		if err != nil {
			t.Fatal(err)
		}
		if previous != "" && !slices.Contains(res.PreviousCertRefs, previous) {
			t.Errorf("previous_cert_refs %v lacks %s", res.PreviousCertRefs, previous)
		}
		if _, err := p.Commit(ctxT(t), tgt, sdk.CommitRequest{Description: "loop"}); err != nil {
			t.Fatal(err)
		}
		if now := served(t, sim, "web-tls"); !now.Equal(got.cert) {
			t.Fatalf("round %d: the new certificate is not served after Commit", i)
		}
		if previous != "" {
			if _, err := p.Cleanup(ctxT(t), tgt, []sdk.ObjectRef{{CertRef: previous, KeyRef: previous}}); err != nil {
				t.Fatal(err)
			}
		}
		previous = got.certRef
	}
	stop.Store(true)
	wg.Wait()
	n := 0
	serials.Range(func(any, any) bool { n++; return true })
	if failures.Load() > 0 || n < 3 {
		t.Errorf("%d failed handshakes of %d; %d distinct certificates seen, want 0 failures and at least 3", failures.Load(), handshakes.Load(), n)
	}
}

// Bind changes the candidate only: Inventory shows the binding, the TLS listener still serves
// the old certificate until Commit.
func TestNothingIsLiveUntilCommit(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	tgt := targetFor(sim, passwordCreds, nil)
	p := paloaltopanos.New()
	before := served(t, sim, "web-tls")
	got := enroll(t, p, tgt, newCA(t), csrRequest("staged.example"))
	if _, err := p.Bind(ctxT(t), tgt, sdk.BindRequest{CertRef: got.certRef, Bindings: []sdk.Binding{webTLS}}); err != nil {
		t.Fatal(err)
	}
	if now := served(t, sim, "web-tls"); !now.Equal(before) {
		t.Fatal("a bound but uncommitted certificate is served")
	}
	if sim.Running("/config/shared/certificate/entry[@name='"+got.certRef+"']") != "" {
		t.Fatal("the imported certificate is in the running configuration before Commit")
	}
	res, err := p.Commit(ctxT(t), tgt, sdk.CommitRequest{Description: "live"})
	if err != nil || !res.Changed || res.JobID == "" {
		t.Fatalf("Commit: %+v, %v", res, err)
	}
	if now := served(t, sim, "web-tls"); !now.Equal(got.cert) {
		t.Fatal("the committed certificate is not served")
	}
	// Nothing left: success, not changed, no job.
	res, err = p.Commit(ctxT(t), tgt, sdk.CommitRequest{Description: "again"})
	if err != nil || res.Changed || res.JobID != "" {
		t.Fatalf("Commit with nothing to commit: %+v, %v", res, err)
	}
}

func TestKeygenAgainAfterTheKeyExpires(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	tgt := targetFor(sim, passwordCreds, nil)
	p := paloaltopanos.New()
	info, err := p.CheckTarget(ctxT(t), tgt)
	if err != nil {
		t.Fatal(err)
	}
	if info.Hostname != "pa-sim-fw1" || info.SoftwareVersion != "10.2.9" || info.HARole != "standalone" {
		t.Errorf("CheckTarget: %+v", info)
	}
	if _, err := p.Inventory(ctxT(t), tgt); err != nil {
		t.Fatal(err)
	}
	if n := sim.Keygens(); n != 1 {
		t.Errorf("%d keygens for two calls, want 1", n)
	}
	sim.ExpireKeys()
	if _, err := p.Inventory(ctxT(t), tgt); err != nil {
		t.Fatalf("Inventory after the key expired: %v", err)
	}
	if n := sim.Keygens(); n != 2 {
		t.Errorf("%d keygens, want 2", n)
	}
}

func TestHARole(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *panossim.Config) { c.HAState = "passive" })
	info, err := paloaltopanos.New().CheckTarget(ctxT(t), targetFor(sim, passwordCreds, nil))
	if err != nil || info.HARole != "standby" {
		t.Fatalf("CheckTarget of a passive HA peer: %+v, %v", info, err)
	}
}

// A device that adds the common name as a DNS SAN (unconfirmed behaviour) cannot make the CSR
// asked for when the CN is not among the DNS names: a clear error, and no entry left behind.
func TestDeviceThatAddsTheCommonNameAsSAN(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *panossim.Config) { c.AddCommonNameSAN = true })
	tgt := targetFor(sim, passwordCreds, nil)
	p := paloaltopanos.New()
	before := sim.CertificateNames(false)
	req := csrRequest("cn.example")
	req.SANs.DNSNames = []string{"other.example"}
	_, err := p.GenerateCSR(ctxT(t), tgt, req)
	e := wantCode(t, "GenerateCSR without the CN among the DNS names", err, codes.FailedPrecondition, "CSR_MISMATCH")
	if !strings.Contains(e.Message, "list it among the certificate's DNS names") {
		t.Errorf("error gives no fix: %v", err)
	}
	if after := sim.CertificateNames(false); !slices.Equal(after, before) {
		t.Errorf("entries before %v, after %v: the rejected key pair was left on the device", before, after)
	}
	if _, err := p.GenerateCSR(ctxT(t), tgt, csrRequest("cn.example")); err != nil {
		t.Errorf("GenerateCSR with the CN among the DNS names: %v", err)
	}
}

// CA certificates are imported once under their own names and reused; the profile serves the
// intermediate with the leaf.
func TestChainCertificatesAreReusedAndServed(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	tgt := targetFor(sim, passwordCreds, nil)
	p := paloaltopanos.New()
	ca := newCA(t)
	first := enroll(t, p, tgt, ca, csrRequest("one.example"))
	second := enroll(t, p, tgt, ca, csrRequest("two.example"))
	if len(first.chainRefs) != 2 || !slices.Equal(first.chainRefs, second.chainRefs) {
		t.Fatalf("chain refs %v and %v: want the same two", first.chainRefs, second.chainRefs)
	}
	if _, err := p.Bind(ctxT(t), tgt, sdk.BindRequest{CertRef: second.certRef, Bindings: []sdk.Binding{webTLS}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Commit(ctxT(t), tgt, sdk.CommitRequest{}); err != nil {
		t.Fatal(err)
	}
	d := dialChain(t, sim.ServedAddress("web-tls"))
	if len(d) != 2 || !d[0].Equal(second.cert) || !d[1].Equal(ca.Intermediate) {
		t.Errorf("served chain of %d certificates; want the leaf and the intermediate", len(d))
	}
	inv, err := p.Inventory(ctxT(t), tgt)
	if err != nil {
		t.Fatal(err)
	}
	cas := 0
	for _, dc := range inv {
		if dc.IsCA {
			cas++
			if dc.KeyRef != "" {
				t.Errorf("CA certificate %s reports a key", dc.CertRef)
			}
		}
	}
	if cas != 2 {
		t.Errorf("%d CA certificates on the device, want 2", cas)
	}
}

// Cleanup keeps what the device refuses to delete because of a reference the plugin does not
// look at (a profile in another vsys), with the device's reason.
func TestCleanupKeepsWhatTheDeviceRefusesToDelete(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *panossim.Config) { c.Vsys = []string{"vsys1", "vsys2"} })
	tgt := targetFor(sim, passwordCreds, nil)
	p := paloaltopanos.New()
	got := enroll(t, p, tgt, newCA(t), csrRequest("refused.example"))
	if _, err := p.Commit(ctxT(t), tgt, sdk.CommitRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddProfile(panossim.ProfileSpec{Name: "elsewhere", Vsys: "vsys2", Certificate: got.certRef}); err != nil {
		t.Fatal(err)
	}
	res, err := p.Cleanup(ctxT(t), tgt, []sdk.ObjectRef{{CertRef: got.certRef, KeyRef: got.keyRef}, {CertRef: "never-existed"}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Removed || !strings.Contains(res[0].Reason, "elsewhere") {
		t.Errorf("cleanup of a certificate referenced from vsys2: %+v", res[0])
	}
	if !res[1].Removed {
		t.Errorf("cleanup of an absent certificate: %+v", res[1])
	}
}

func TestCleanupCommitOption(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	tgt := targetFor(sim, passwordCreds, sdk.Options{"cleanup_commit": true})
	p := paloaltopanos.New()
	got := enroll(t, p, tgt, newCA(t), csrRequest("gone.example"))
	if _, err := p.Commit(ctxT(t), tgt, sdk.CommitRequest{}); err != nil {
		t.Fatal(err)
	}
	res, err := p.Cleanup(ctxT(t), tgt, []sdk.ObjectRef{{CertRef: got.certRef}})
	if err != nil || !res[0].Removed {
		t.Fatalf("Cleanup: %+v, %v", res, err)
	}
	if sim.Running("/config/shared/certificate/entry[@name='"+got.certRef+"']") != "" || sim.PendingChanges() != 0 {
		t.Error("with cleanup_commit the deletion must be committed")
	}
}

// If a change fails part way through Bind, the profiles changed before it are restored.
func TestBindFailurePartWayIsUndone(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	tgt := targetFor(sim, passwordCreds, nil)
	p := paloaltopanos.New()
	got := enroll(t, p, tgt, newCA(t), csrRequest("partial.example"))
	sim.InjectFault(panossim.Fault{Kind: panossim.FaultInternalError, Type: "config", Action: "set", After: 1})
	_, err := p.Bind(ctxT(t), tgt, sdk.BindRequest{CertRef: got.certRef, Bindings: []sdk.Binding{webTLS, {Kind: paloaltopanos.KindGateway, Name: "gp-gateway"}}})
	wantCode(t, "Bind with a failing second change", err, codes.Unavailable, "")
	if c := sim.Candidate("/config/shared/ssl-tls-service-profile/entry[@name='web-tls']/certificate"); !strings.Contains(c, "sim-factory-web") {
		t.Errorf("web-tls was left at %s after the failed Bind", c)
	}
}

func TestRollbackLeavesAProfileChangedSinceAlone(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	tgt := targetFor(sim, passwordCreds, nil)
	p := paloaltopanos.New()
	ca := newCA(t)
	a := enroll(t, p, tgt, ca, csrRequest("a.example"))
	b := enroll(t, p, tgt, ca, csrRequest("b.example"))
	first, err := p.Bind(ctxT(t), tgt, sdk.BindRequest{CertRef: a.certRef, Bindings: []sdk.Binding{webTLS}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Bind(ctxT(t), tgt, sdk.BindRequest{CertRef: b.certRef, Bindings: []sdk.Binding{webTLS}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Rollback(ctxT(t), tgt, first.RollbackToken); err != nil {
		t.Fatal(err)
	}
	if c := sim.Candidate("/config/shared/ssl-tls-service-profile/entry[@name='web-tls']/certificate"); !strings.Contains(c, b.certRef) {
		t.Errorf("rollback of an older Bind overwrote a newer one: %s", c)
	}
	err = p.Rollback(ctxT(t), tgt, []byte(`{"v":1,"plugin":"paloalto-panos","cert":"x","changes":[{"profile":"p","vsys":"../x"}]}`))
	wantCode(t, "Rollback with a bad vsys in the token", err, codes.InvalidArgument, sdk.ReasonBadRollbackToken)
}

// commit_admin naming someone other than the admin behind the credentials commits nothing of
// ours; that must be an error, not a quiet "no changes".
func TestPartialCommitByTheWrongAdminIsAnError(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	tgt := targetFor(sim, passwordCreds, sdk.Options{"commit_admin": "admin"})
	p := paloaltopanos.New()
	got := enroll(t, p, tgt, newCA(t), csrRequest("wrong-admin.example"))
	if _, err := p.Bind(ctxT(t), tgt, sdk.BindRequest{CertRef: got.certRef, Bindings: []sdk.Binding{webTLS}}); err != nil {
		t.Fatal(err)
	}
	_, err := p.Commit(ctxT(t), tgt, sdk.CommitRequest{})
	e := wantCode(t, "partial commit by an admin who made no changes", err, codes.FailedPrecondition, sdk.ReasonCommitFailed)
	if !strings.Contains(e.Message, "web-tls") || !strings.Contains(e.Message, "commit_admin") {
		t.Errorf("error does not name the profile and the fix: %v", err)
	}
}

func TestCommitTimeout(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *panossim.Config) { c.CommitDuration = 3 * time.Second })
	tgt := targetFor(sim, passwordCreds, sdk.Options{"commit_timeout": "200ms"})
	p := paloaltopanos.New()
	if _, err := p.GenerateCSR(ctxT(t), tgt, csrRequest("slow.example")); err != nil {
		t.Fatal(err)
	}
	res, err := p.Commit(ctxT(t), tgt, sdk.CommitRequest{})
	wantCode(t, "Commit of a job slower than commit_timeout", err, codes.Unavailable, "")
	if res.JobID == "" || !strings.Contains(err.Error(), "still running") {
		t.Errorf("result %+v, error %v: want the job id and a clear message", res, err)
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nil)
	p := paloaltopanos.New()
	good := targetFor(sim, passwordCreds, nil)

	noCA := good
	noCA.TLS = sdk.TLSConfig{}
	_, err := p.CheckTarget(ctxT(t), noCA)
	wantCode(t, "management certificate from an unknown CA", err, codes.FailedPrecondition, sdk.ReasonTLSVerify)

	sim.InjectFault(panossim.Fault{Kind: panossim.FaultUnavailable, Type: "op"})
	_, err = p.CheckTarget(ctxT(t), good)
	wantCode(t, "HTTP 503", err, codes.Unavailable, "")

	sim.InjectFault(panossim.Fault{Kind: panossim.FaultDropConnection, Type: "op"})
	_, err = p.CheckTarget(ctxT(t), good)
	wantCode(t, "dropped connection", err, codes.Unavailable, "")

	sim.SetLatency(time.Second)
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = p.Inventory(short, good)
	wantCode(t, "slow device, short deadline", err, codes.DeadlineExceeded, "")
	sim.SetLatency(0)

	for name, tgt := range map[string]sdk.Target{
		"unknown option":  targetFor(sim, passwordCreds, sdk.Options{"vsys_name": "vsys1"}),
		"bad vsys":        targetFor(sim, passwordCreds, sdk.Options{"vsys": "vsys1']"}),
		"plain http":      func() sdk.Target { t := good; t.Address = "http://127.0.0.1:1"; return t }(),
		"no credentials":  targetFor(sim, sdk.Credentials{Username: "certfleet"}, nil),
		"bad digest":      targetFor(sim, passwordCreds, sdk.Options{"digest": "md5"}),
		"bad poll number": targetFor(sim, passwordCreds, sdk.Options{"commit_poll_interval": "soon"}),
	} {
		_, err := p.CheckTarget(ctxT(t), tgt)
		e := wantCode(t, name, err, codes.InvalidArgument, "")
		if name == "unknown option" && !strings.Contains(e.Message, "vsys_name") {
			t.Errorf("unknown option error does not name it: %v", err)
		}
	}

	got := enroll(t, p, good, newCA(t), csrRequest("map.example"))
	for name, b := range map[string]sdk.Binding{
		"unknown binding option": {Kind: paloaltopanos.KindProfile, Name: "web-tls", Options: sdk.Options{"sni_name": "x"}},
		"sni":                    {Kind: paloaltopanos.KindProfile, Name: "web-tls", SNI: true},
		"gp in shared":           {Kind: paloaltopanos.KindPortal, Name: "gp-portal", Options: sdk.Options{"vsys": "shared"}},
	} {
		_, err := p.Bind(ctxT(t), good, sdk.BindRequest{CertRef: got.certRef, Bindings: []sdk.Binding{b}})
		wantCode(t, name, err, codes.InvalidArgument, "")
	}
	_, err = p.Bind(ctxT(t), good, sdk.BindRequest{CertRef: got.certRef, Bindings: []sdk.Binding{{Kind: paloaltopanos.KindGateway, Name: "no-gw"}}})
	wantCode(t, "unknown gateway", err, codes.NotFound, sdk.ReasonUnknownBinding)
	_, err = p.Bind(ctxT(t), good, sdk.BindRequest{CertRef: "no-such-cert", Bindings: []sdk.Binding{webTLS}})
	wantCode(t, "unknown certificate", err, codes.NotFound, "")

	// A pending entry (no certificate yet) cannot be bound.
	csr, err := p.GenerateCSR(ctxT(t), good, csrRequest("pending.example"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Bind(ctxT(t), good, sdk.BindRequest{CertRef: csr.KeyRef, Bindings: []sdk.Binding{webTLS}})
	wantCode(t, "Bind of a pending CSR", err, codes.FailedPrecondition, "")
	// Importing again the certificate already there is a no-op; another one is refused.
	ca := newCA(t)
	again, err := p.ImportCert(ctxT(t), good, sdk.ImportRequest{KeyRef: got.keyRef, CertPEM: sdk.EncodeCertificatePEM(got.cert)})
	if err != nil || again.CertRef != got.certRef {
		t.Errorf("repeated ImportCert: %+v, %v", again, err)
	}
	other, err := ca.SignCSR(mustCSR(t, p, good), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.ImportCert(ctxT(t), good, sdk.ImportRequest{KeyRef: got.keyRef, CertPEM: sdk.EncodeCertificatePEM(other)})
	wantCode(t, "ImportCert of another certificate onto a key_ref that has one", err, codes.FailedPrecondition, sdk.ReasonAlreadyExists)
}

func mustCSR(t *testing.T, p sdk.Plugin, tgt sdk.Target) string {
	t.Helper()
	csr, err := p.GenerateCSR(ctxT(t), tgt, csrRequest("other.example"))
	if err != nil {
		t.Fatal(err)
	}
	return csr.PEM
}

// An SSL Inbound Inspection rule gets the new certificate in place of the one it renews; the
// listener of the rule serves it only after Commit; Rollback restores the list in the candidate;
// Cleanup keeps what a rule still uses.
func TestDecryptionRuleBinding(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *panossim.Config) {
		c.Certificates = append(c.Certificates,
			panossim.CertSpec{Name: "other-server", Vsys: "vsys1", CommonName: "other.example"},
			panossim.CertSpec{Name: "api-2024", Vsys: "vsys1", CommonName: "api.example"})
		c.DecryptionRules = append(c.DecryptionRules, panossim.DecryptionRuleSpec{Name: "inbound & <multi>", Certificates: []string{"other-server", "api-2024"}})
	})
	tgt := targetFor(sim, passwordCreds, nil)
	p := paloaltopanos.New()
	ca := newCA(t)
	rules := "/config/devices/entry[@name='localhost.localdomain']/vsys/entry[@name='vsys1']/rulebase/decryption/rules"

	// A single-certificate rule: its certificate is replaced.
	before := served(t, sim, "web-tls") // untouched throughout
	app := enroll(t, p, tgt, ca, csrRequest("app.example"))
	single := sdk.Binding{Kind: paloaltopanos.KindDecryption, Name: "inbound-app"}
	bound, err := p.Bind(ctxT(t), tgt, sdk.BindRequest{CertRef: app.certRef, Bindings: []sdk.Binding{single}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bound.PreviousCertRefs, []string{"vsys1/sim-factory-app"}) {
		t.Errorf("PreviousCertRefs %v, want [vsys1/sim-factory-app]", bound.PreviousCertRefs)
	}
	ruleCert := func(name string) *x509.Certificate {
		t.Helper()
		c, err := dialServed(ctxT(t), sim.DecryptionRuleAddress("vsys1", name))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if ruleCert("inbound-app").Equal(app.cert) {
		t.Fatal("the rule serves the new certificate before Commit")
	}
	// Rollback of the uncommitted Bind restores the candidate.
	if err := p.Rollback(ctxT(t), tgt, bound.RollbackToken); err != nil {
		t.Fatal(err)
	}
	if c := sim.Candidate(rules + "/entry[@name='inbound-app']/type/ssl-inbound-inspection/certificates"); !strings.Contains(c, "<member>sim-factory-app</member>") || strings.Contains(c, app.certRef) {
		t.Fatalf("after Rollback the rule holds %s", c)
	}
	if _, err := p.Bind(ctxT(t), tgt, sdk.BindRequest{CertRef: app.certRef, Bindings: []sdk.Binding{single}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Commit(ctxT(t), tgt, sdk.CommitRequest{}); err != nil {
		t.Fatal(err)
	}
	if !ruleCert("inbound-app").Equal(app.cert) {
		t.Error("after Commit the rule does not serve the new certificate")
	}

	// A rule with several servers: only the certificate with the same common name is replaced.
	api := enroll(t, p, tgt, ca, csrRequest("api.example"))
	multi := sdk.Binding{Kind: paloaltopanos.KindDecryption, Name: "inbound & <multi>"}
	bound, err = p.Bind(ctxT(t), tgt, sdk.BindRequest{CertRef: api.certRef, Bindings: []sdk.Binding{multi}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bound.PreviousCertRefs, []string{"vsys1/api-2024"}) {
		t.Errorf("PreviousCertRefs %v, want [vsys1/api-2024]", bound.PreviousCertRefs)
	}
	want := "<certificates><member>other-server</member><member>" + api.certRef + "</member></certificates>"
	if c := sim.Candidate(rules + "/entry[@name='inbound & <multi>']/type/ssl-inbound-inspection/certificates"); !strings.Contains(strings.Join(strings.Fields(c), ""), want) {
		t.Errorf("rule holds %s, want %s", c, want)
	}
	if _, err := p.Commit(ctxT(t), tgt, sdk.CommitRequest{}); err != nil {
		t.Fatal(err)
	}
	conn := func(sni string) *x509.Certificate {
		t.Helper()
		d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, ServerName: sni}} //nolint:gosec // only reads what is served
		c, err := d.DialContext(ctxT(t), "tcp", sim.DecryptionRuleAddress("vsys1", "inbound & <multi>"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState().PeerCertificates[0]
	}
	if !conn("api.example").Equal(api.cert) || conn("other.example").Subject.CommonName != "other.example" {
		t.Error("the multi-server rule does not serve the new certificate for api.example and the other one for other.example")
	}

	// Inventory names the rule; Cleanup keeps a certificate a rule uses and removes the replaced ones.
	inv, err := p.Inventory(ctxT(t), tgt)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(inv, func(dc sdk.DeviceCertificate) bool { return dc.CertRef == api.certRef }); i < 0 ||
		!slices.ContainsFunc(inv[i].Bindings, func(b sdk.Binding) bool { return b.Kind == paloaltopanos.KindDecryption && b.Name == multi.Name }) {
		t.Errorf("Inventory does not show %s bound to the rule", api.certRef)
	}
	res, err := p.Cleanup(ctxT(t), tgt, []sdk.ObjectRef{{CertRef: api.certRef}, {CertRef: "vsys1/api-2024"}, {CertRef: "vsys1/sim-factory-app"}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Removed || !strings.Contains(res[0].Reason, "decryption-rule") || !res[1].Removed || !res[2].Removed {
		t.Errorf("Cleanup: %+v", res)
	}
	if now := served(t, sim, "web-tls"); !now.Equal(before) {
		t.Error("binding decryption rules changed what web-tls serves")
	}
}

// TestRepeatedAttemptLeavesOneEntry: a plugin killed after "request certificate generate" made the
// entry answers nobody; the core calls again with the same attempt ID. The second call deletes the
// entry the first made and generates it again under the same name, so the firewall holds one
// key pair for the attempt, the second CSR's, and a certificate for the first key is refused.
// Both ways a firewall may treat generate onto an existing name ([UNCONFIRMED]: refused or
// replaced).
func TestRepeatedAttemptLeavesOneEntry(t *testing.T) {
	t.Parallel()
	for _, overwrite := range []bool{false, true} {
		t.Run(fmt.Sprintf("generate overwrites %v", overwrite), func(t *testing.T) {
			t.Parallel()
			repeatedAttemptLeavesOneEntry(t, startSim(t, func(c *panossim.Config) { c.GenerateOverwrites = overwrite }))
		})
	}
}

func repeatedAttemptLeavesOneEntry(t *testing.T, sim *panossim.Sim) {
	tgt := targetFor(sim, passwordCreds, nil)
	p := paloaltopanos.New()
	ca := newCA(t)
	req := csrRequest("retried.example")
	req.AttemptID = "0123456789abcdef01234567"
	lost, err := p.GenerateCSR(ctxT(t), tgt, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.GenerateCSR(ctxT(t), tgt, req)
	if err != nil {
		t.Fatalf("GenerateCSR again with the same attempt ID: %v", err)
	}
	var ours []string
	for _, n := range sim.CertificateNames(false) {
		if strings.HasPrefix(n, "retried-example") {
			ours = append(ours, n)
		}
	}
	if len(ours) != 1 || ours[0] != again.KeyRef {
		t.Fatalf("entries of the attempt %v, want only %s", ours, again.KeyRef)
	}
	stale, err := ca.SignCSR(lost.PEM, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ImportCert(ctxT(t), tgt, sdk.ImportRequest{KeyRef: lost.KeyRef, CertPEM: sdk.EncodeCertificatePEM(stale), ChainPEM: ca.ChainPEM(), NameHint: req.NameHint}); err == nil {
		t.Fatal("a certificate for the first call's key was imported: that key is still on the firewall")
	}
	cert, err := ca.SignCSR(again.PEM, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ImportCert(ctxT(t), tgt, sdk.ImportRequest{KeyRef: again.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: ca.ChainPEM(), NameHint: req.NameHint}); err != nil {
		t.Fatalf("ImportCert for the second answer: %v", err)
	}
}
