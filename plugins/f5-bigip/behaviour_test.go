package f5bigip_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	f5bigip "github.com/certfleet/certfleet/plugins/f5-bigip"
	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"google.golang.org/grpc/codes"
)

func wantError(t *testing.T, what string, err error, code codes.Code, reason string) *sdk.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %v %s", what, code, reason)
	}
	e := sdk.AsError(err)
	if e.Code != code || (reason != "" && e.Reason != reason) {
		t.Fatalf("%s: %v/%s (%v), want %v/%s", what, e.Code, e.Reason, err, code, reason)
	}
	return e
}

func testCA(t *testing.T) *conformance.TestCA {
	t.Helper()
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestCSRReadRoutes: an administrator reads the CSR with util/bash; a user without shell access
// through the file route, which leaves the CSR file where the device keeps it.
func TestCSRReadRoutes(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	p, log := launch(t, "trace")
	ca := testCA(t)
	admin := target(sim)
	admin.Credentials.Username, admin.Credentials.Password = "admin", "admin-sim-password"
	enroll(t, p, admin, ca, "viabash", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	if strings.Contains(log.String(), "/mgmt/tm/util/unix-mv") {
		t.Fatal("the administrator's CSR was read through the file route")
	}
	csr, _, _ := enroll(t, p, target(sim), ca, "viafile", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	if !strings.Contains(log.String(), "/mgmt/tm/util/unix-mv") {
		t.Fatal("the CSR of a user without util/bash was not read through the file route")
	}
	name := strings.TrimSuffix(strings.TrimPrefix(csr.KeyRef[:strings.Index(csr.KeyRef, "#")], "/Common/"), ".key")
	if !sim.FileExists("/config/ssl/ssl.csr/" + name + ".csr") {
		t.Error("the CSR file was not moved back after the download")
	}
}

// TestUnconfirmedCSRVariants: a device that wants tmsh-style CSR properties and the key's
// passphrase to make a CSR (both unconfirmed) still gets a correct CSR.
func TestUnconfirmedCSRVariants(t *testing.T) {
	t.Parallel()
	cfg := bigipsim.DefaultConfig()
	cfg.CSRHyphenatedFields, cfg.CSRNeedsPassphrase = true, true
	sim := startSim(t, cfg)
	p, _ := launch(t, "info")
	req := sdk.CSRRequest{NameHint: "variant", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 384},
		Subject: sdk.Subject{CommonName: "variant.example.test", Organization: "Org", Country: "DE", Email: "pki@example.test"},
		SANs:    sdk.SANs{DNSNames: []string{"variant.example.test"}, IPAddresses: []string{"192.0.2.7"}}}
	csr, err := p.GenerateCSR(ctxFor(t), target(sim), req)
	if err != nil {
		t.Fatalf("GenerateCSR: %v", err)
	}
	parsed, err := sdk.ParseCSRPEM(csr.PEM)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Subject.CommonName != "variant.example.test" || !slices.Equal(parsed.Subject.Country, []string{"DE"}) ||
		len(parsed.IPAddresses) != 1 || parsed.IPAddresses[0].String() != "192.0.2.7" {
		t.Errorf("CSR subject %v, IPs %v", parsed.Subject, parsed.IPAddresses)
	}
}

// TestCommitSavesAndSyncs: Bind is live at once but not saved; a failed save is COMMIT_FAILED and
// a reboot then loses the change; a good Commit saves and syncs the device group.
func TestCommitSavesAndSyncs(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	tgt := target(sim)
	p, _ := launch(t, "info")
	ctx := ctxFor(t)
	before, err := served(ctx, sim, "vs_www")
	if err != nil {
		t.Fatal(err)
	}
	csr, imp, cert := enroll(t, p, tgt, testCA(t), "commit", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www"}}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := served(ctx, sim, "vs_www"); !got.Equal(cert) || !sim.Unsaved() {
		t.Fatal("after Bind the new certificate should be live and unsaved")
	}
	sim.FailSave(1)
	_, err = p.Commit(ctx, tgt, sdk.CommitRequest{})
	if e := wantError(t, "Commit with a failing save", err, codes.FailedPrecondition, sdk.ReasonCommitFailed); e.VendorCode != "01070711" {
		t.Errorf("vendor code %q, want 01070711", e.VendorCode)
	}
	sim.Restart()
	if got, _ := served(ctx, sim, "vs_www"); !got.Equal(before) {
		t.Fatal("after a reboot without save the device should serve the old certificate")
	}
	// The reboot also lost the unsaved key and certificate objects.
	csr, imp, cert = enroll(t, p, tgt, testCA(t), "commit", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www"}}}); err != nil {
		t.Fatal(err)
	}
	res, err := p.Commit(ctx, tgt, sdk.CommitRequest{})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if sim.Saves() != 1 || sim.Unsaved() || !sim.InSync("dg_failover") || !strings.Contains(res.Message, "In Sync") {
		t.Errorf("after Commit: saves %d, unsaved %v, in sync %v, message %q", sim.Saves(), sim.Unsaved(), sim.InSync("dg_failover"), res.Message)
	}
	sim.Restart()
	if got, _ := served(ctx, sim, "vs_www"); !got.Equal(cert) {
		t.Fatal("after Commit and a reboot the device should serve the new certificate")
	}
	sim.FailConfigSync(1)
	_, err = p.Commit(ctx, tgt, sdk.CommitRequest{})
	wantError(t, "Commit with a failing config-sync", err, codes.FailedPrecondition, sdk.ReasonCommitFailed)
}

// TestFailedTransactionChangesNothing: when the device fails the transaction, no profile or
// virtual server changed and the old certificate is still served.
func TestFailedTransactionChangesNothing(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	tgt := target(sim)
	p, _ := launch(t, "info")
	ctx := ctxFor(t)
	ca := testCA(t)
	bindings := []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www"}, {Kind: f5bigip.KindVirtual, Name: "vs_api"}}
	csr, imp, first := enroll(t, p, tgt, ca, "txn1", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: bindings}); err != nil {
		t.Fatal(err)
	}
	csr2, imp2, _ := enroll(t, p, tgt, ca, "txn2", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	sim.FailTransactionCommit(1)
	_, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp2.CertRef, KeyRef: csr2.KeyRef, Bindings: bindings})
	wantError(t, "Bind with a failing transaction", err, codes.FailedPrecondition, sdk.ReasonDeviceError)
	for _, name := range []string{"vs_www", "vs_api"} {
		if got, err := served(ctx, sim, name); err != nil || !got.Equal(first) {
			t.Errorf("%s changed although the transaction failed: %v", name, err)
		}
	}
	inv, err := p.Inventory(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	for _, dc := range inv {
		if dc.CertRef == imp2.CertRef && len(dc.Bindings) > 0 {
			t.Errorf("Inventory shows %s bound at %v after a failed transaction", imp2.CertRef, dc.Bindings)
		}
	}
}

// TestTokens: every call gives its token back, failed calls too; a user at the token limit gets
// TOKEN_LIMIT; basic auth uses no token at all.
func TestTokens(t *testing.T) {
	t.Parallel()
	cfg := bigipsim.DefaultConfig()
	cfg.TokenLimit = 2
	sim := startSim(t, cfg)
	tgt := target(sim)
	p, _ := launch(t, "info")
	ctx := ctxFor(t)
	if _, err := p.CheckTarget(ctx, tgt); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Inventory(ctx, tgt); err != nil {
		t.Fatal(err)
	}
	_, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: "/Common/missing.crt", KeyRef: "/Common/missing.key", Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www"}}})
	wantError(t, "Bind of a missing certificate", err, codes.NotFound, "")
	if n := sim.ActiveTokens("certfleet"); n != 0 || len(sim.TokensIssued()) != 3 {
		t.Fatalf("after 3 calls: %d tokens live, %d issued; want 0 live, 3 issued", n, len(sim.TokensIssued()))
	}
	// Two sessions someone else left open use up the limit.
	for range 2 {
		c := userClient(t, sim, "certfleet", "certfleet-sim-password", false)
		if err := c.Login(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_, err = p.CheckTarget(ctx, tgt)
	wantError(t, "CheckTarget at the token limit", err, codes.ResourceExhausted, f5bigip.ReasonTokenLimit)

	basic := tgt
	basic.Options = sdk.Options{"auth": "basic"}
	issued := len(sim.TokensIssued())
	if _, err := p.CheckTarget(ctx, basic); err != nil {
		t.Fatalf("CheckTarget with basic auth at the token limit: %v", err)
	}
	if _, err := p.GenerateCSR(ctx, basic, sdk.CSRRequest{NameHint: "basic", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}, Subject: sdk.Subject{CommonName: "basic.example.test"}}); err != nil {
		t.Fatalf("GenerateCSR with basic auth: %v", err)
	}
	if len(sim.TokensIssued()) != issued {
		t.Error("basic auth logged in for a token")
	}
	bad := basic
	bad.Credentials.Password = "wrong"
	_, err = p.CheckTarget(ctx, bad)
	wantError(t, "CheckTarget with a wrong password (basic auth)", err, codes.Unauthenticated, sdk.ReasonBadCredentials)
}

// TestPartitionAndSNI binds in partition Tenant1, and adds an SNI certificate next to a
// virtual server's default one.
func TestPartitionAndSNI(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	if err := sim.AddClientSSLProfile(bigipsim.ProfileSpec{Name: "/Tenant1/shop_default", DefaultsFrom: "/Common/clientssl", SNIDefault: true}); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddVirtual(bigipsim.VirtualSpec{Name: "/Tenant1/vs_multi", Profiles: []string{"/Common/tcp", "/Tenant1/shop_default"}}); err != nil {
		t.Fatal(err)
	}
	tgt := target(sim)
	// Option profile (a profile certfleet keeps and edits) is the mode without PCI keys.
	tgt.Options = sdk.Options{"partition": "Tenant1", "pci_mode": false}
	p, _ := launch(t, "info")
	ctx := ctxFor(t)
	ca := testCA(t)
	info, err := p.CheckTarget(ctx, tgt)
	if err != nil || info.HARole != "active" || info.Details["partition"] != "Tenant1" {
		t.Fatalf("CheckTarget: %+v, %v", info, err)
	}
	csr, imp, shop := enroll(t, p, tgt, ca, "shop", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	if !strings.HasPrefix(imp.CertRef, "/Tenant1/") || !strings.HasPrefix(csr.KeyRef, "/Tenant1/") {
		t.Fatalf("objects made outside the partition: %s, %s", imp.CertRef, csr.KeyRef)
	}
	if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_shop"}}}); err != nil {
		t.Fatalf("Bind in Tenant1: %v", err)
	}
	if got, err := served(ctx, sim, "/Tenant1/vs_shop"); err != nil || !got.Equal(shop) {
		t.Fatalf("/Tenant1/vs_shop does not serve the certificate: %v", err)
	}

	csr2, imp2, sni := enroll(t, p, tgt, ca, "sni", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	_, err = p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp2.CertRef, KeyRef: csr2.KeyRef,
		Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_multi", SNI: true, Options: sdk.Options{"server_name": "sni.example.test"}}}})
	if err != nil {
		t.Fatalf("SNI Bind: %v", err)
	}
	addr := sim.ServedAddress("/Tenant1/vs_multi")
	for name, wantSNI := range map[string]bool{"sni.example.test": true, "other.example.test": false} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true}) //nolint:gosec // reads what is served
		if err != nil {
			t.Fatalf("handshake for %s: %v", name, err)
		}
		got := conn.ConnectionState().PeerCertificates[0]
		_ = conn.Close()
		if got.Equal(sni) != wantSNI {
			t.Errorf("server name %s got %s; the SNI certificate should be served for sni.example.test only", name, got.Subject)
		}
	}
	// An SNI profile next to a main profile that is not the SNI default: refused before the device.
	sniOnShop := sdk.Binding{Kind: f5bigip.KindVirtual, Name: "vs_shop", SNI: true, Options: sdk.Options{"profile": "shop_sni", "server_name": "sni.example.test"}}
	_, err = p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp2.CertRef, KeyRef: csr2.KeyRef, Bindings: []sdk.Binding{sniOnShop}})
	wantError(t, "SNI Bind next to a main profile that is not the default", err, codes.InvalidArgument, sdk.ReasonInvalidRequest)
	// Bound in one request with the main certificate, the main profile becomes the SNI default.
	_, err = p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp.CertRef, KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_shop"}, sniOnShop}})
	if err != nil {
		t.Fatalf("Bind of a main and an SNI profile together: %v", err)
	}
	conn, err := tls.Dial("tcp", sim.ServedAddress("/Tenant1/vs_shop"), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads what is served
	if err != nil {
		t.Fatalf("vs_shop with two profiles: %v", err)
	}
	_ = conn.Close()
	inv, err := p.Inventory(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, dc := range inv {
		if !strings.HasPrefix(dc.CertRef, "/Tenant1/") {
			t.Errorf("Inventory of Tenant1 lists %s", dc.CertRef)
		}
		for _, b := range dc.Bindings {
			found[dc.CertRef+" "+b.Kind+"/"+b.Name] = true
		}
	}
	for _, want := range []string{imp.CertRef + " virtual/vs_shop", imp.CertRef + " client-ssl-profile/certfleet_vs_shop", imp2.CertRef + " virtual/vs_multi"} {
		if !found[want] {
			t.Errorf("Inventory lacks %s; has %v", want, found)
		}
	}
}

// TestRejectsBadInput: unknown options and misplaced binding options are refused before the
// device is touched, naming the option.
func TestRejectsBadInput(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	p, _ := launch(t, "info")
	ctx := ctxFor(t)
	tgt := target(sim)
	typo := tgt
	typo.Options = sdk.Options{"partiton": "Common"}
	_, err := p.CheckTarget(ctx, typo)
	if e := wantError(t, "CheckTarget with an unknown option", err, codes.InvalidArgument, sdk.ReasonInvalidRequest); !strings.Contains(e.Message, "partiton") {
		t.Errorf("the error does not name the option: %v", err)
	}
	_, err = p.Bind(ctx, tgt, sdk.BindRequest{CertRef: "/Common/x.crt", KeyRef: "/Common/x.key",
		Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www", Options: sdk.Options{"virtuals": []any{"vs_api"}}}}})
	wantError(t, "Bind with option virtuals on a virtual binding", err, codes.InvalidArgument, sdk.ReasonInvalidRequest)
	_, err = p.Bind(ctx, tgt, sdk.BindRequest{CertRef: "/Common/x.crt", KeyRef: "/Common/x.key",
		Bindings: []sdk.Binding{{Kind: f5bigip.KindClientSSLProfile, Name: "no_such_profile"}}})
	wantError(t, "Bind to a missing profile without create", err, codes.NotFound, "")
	_, err = p.GenerateCSR(ctx, tgt, sdk.CSRRequest{NameHint: "x", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 521}, Subject: sdk.Subject{CommonName: "x"}})
	wantError(t, "GenerateCSR with P-521", err, codes.InvalidArgument, sdk.ReasonUnsupported)
	if n := len(sim.TokensIssued()); n != 1 {
		t.Errorf("%d logins; only the missing-profile Bind should have reached the device", n)
	}
}

// TestBusyDeviceIsRetried: a 503 "active asynchronous task" is waited out.
func TestBusyDeviceIsRetried(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	p, _ := launch(t, "info")
	sim.InjectFault(bigipsim.Fault{Method: http.MethodGet, PathPrefix: "/mgmt/tm/cm/device", Status: http.StatusServiceUnavailable,
		Message: "01020060:3: there is an active asynchronous task executing."})
	if _, err := p.CheckTarget(ctxFor(t), target(sim)); err != nil {
		t.Fatalf("CheckTarget on a busy device: %v", err)
	}
	sim.InjectFault(bigipsim.Fault{Method: http.MethodGet, PathPrefix: "/mgmt/tm/cm/device", Status: http.StatusServiceUnavailable, Times: 4})
	_, err := p.CheckTarget(ctxFor(t), target(sim))
	wantError(t, "CheckTarget on a device that stays busy", err, codes.Unavailable, "")
}

// TestCleanupOfAbandonedOperation: the engine cleans up an operation it gave up after ImportCert
// with the key_ref only; the certificate and chain made for that key go too, unless bound.
func TestCleanupOfAbandonedOperation(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	tgt := target(sim)
	p, _ := launch(t, "info")
	ctx := ctxFor(t)
	ca := testCA(t)
	abandoned, abandonedImp, _ := enroll(t, p, tgt, ca, "abandoned", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	bound, boundImp, _ := enroll(t, p, tgt, ca, "bound", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: boundImp.CertRef, KeyRef: bound.KeyRef, Bindings: []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www"}}}); err != nil {
		t.Fatal(err)
	}
	res, err := p.Cleanup(ctx, tgt, []sdk.ObjectRef{{KeyRef: abandoned.KeyRef}, {KeyRef: bound.KeyRef}})
	if err != nil || len(res) != 2 {
		t.Fatalf("Cleanup: %+v, %v", res, err)
	}
	if !res[0].Removed || res[1].Removed || !strings.Contains(res[1].Reason, "_clientssl (on virtual server /Common/vs_www)") {
		t.Fatalf("Cleanup results %+v: the abandoned key should go, the bound one stay with the profile named", res)
	}
	inv, err := p.Inventory(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	for _, dc := range inv {
		if strings.HasPrefix(dc.CertRef, strings.TrimSuffix(abandonedImp.CertRef, ".crt")) {
			t.Errorf("Inventory still lists %s of the abandoned key", dc.CertRef)
		}
	}
	keys := strings.Join(sim.KeyPaths(), " ")
	if strings.Contains(keys, "abandoned") || !strings.Contains(keys, "bound") {
		t.Errorf("keys left on the device: %s", keys)
	}
}

// TestSlowDeviceHitsDeadline: a call that runs out of time ends with DeadlineExceeded, and the
// plugin still deletes the token it got before the deadline.
func TestSlowDeviceHitsDeadline(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	p, _ := launch(t, "info")
	sim.SetLatency(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 450*time.Millisecond)
	defer cancel()
	_, err := p.Inventory(ctx, target(sim))
	wantError(t, "Inventory on a slow device", err, codes.DeadlineExceeded, "")
	if len(sim.TokensIssued()) != 1 {
		t.Fatalf("%d logins; the login should have made it before the deadline", len(sim.TokensIssued()))
	}
	deadline := time.Now().Add(5 * time.Second)
	for sim.ActiveTokens("certfleet") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the token of a call that hit its deadline was never deleted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sim.SetLatency(0)
	if _, err := p.Inventory(ctxFor(t), target(sim)); err != nil {
		t.Fatalf("Inventory after the device recovered: %v", err)
	}
}

// TestRepeatedAttemptLeavesOneKey: a plugin killed after GenerateCSR made the key (and, in PCI
// mode, its placeholder certificate and key profile) answers nobody; the core calls again with the
// same attempt ID. In PCI mode the second call removes what the first made (the key's passphrase
// is gone) and makes it again under the same names, so a certificate for the first key is refused;
// without PCI mode it makes the CSR again from the first key, under the same key_ref. Either way
// the BIG-IP holds one key for the attempt, the second CSR's.
func TestRepeatedAttemptLeavesOneKey(t *testing.T) {
	for _, pci := range []bool{true, false} {
		t.Run(fmt.Sprintf("pci_mode=%v", pci), func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, bigipsim.DefaultConfig())
			p, log := launch(t, "trace")
			t.Cleanup(func() {
				if t.Failed() {
					t.Log(log.String())
				}
			})
			ca := testCA(t)
			tgt := target(sim)
			tgt.Options = sdk.Options{"sync_device_group": "dg_failover", "pci_mode": pci}
			req := sdk.CSRRequest{NameHint: "retried", AttemptID: "0123456789abcdef01234567", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
				Subject: sdk.Subject{CommonName: "retried.example.com", Organization: "certfleet test", Country: "GB"},
				SANs:    sdk.SANs{DNSNames: []string{"retried.example.com"}}}
			lost, err := p.GenerateCSR(ctxFor(t), tgt, req)
			if err != nil {
				t.Fatal(err)
			}
			again, err := p.GenerateCSR(ctxFor(t), tgt, req)
			if err != nil {
				t.Fatalf("GenerateCSR again with the same attempt ID: %v", err)
			}
			keyPath, _, _ := strings.Cut(again.KeyRef, "#")
			var keys []string
			for _, k := range sim.KeyPaths() {
				if strings.HasPrefix(k, "/Common/retried") {
					keys = append(keys, k)
				}
			}
			if len(keys) != 1 || keys[0] != keyPath {
				t.Fatalf("keys of the attempt %v, want only %s", keys, keyPath)
			}
			if _, _, ok := sim.ProfileSettings(strings.TrimSuffix(keyPath, ".key") + "_clientssl"); ok != pci {
				t.Errorf("key profile of the attempt exists: %v, want %v", ok, pci)
			}
			if pci {
				stale, err := ca.SignCSR(lost.PEM, 24*time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := p.ImportCert(ctxFor(t), tgt, sdk.ImportRequest{KeyRef: lost.KeyRef, CertPEM: sdk.EncodeCertificatePEM(stale), ChainPEM: ca.ChainPEM(), NameHint: "retried"}); err == nil {
					t.Fatal("a certificate for the first call's key was imported: that key is still on the BIG-IP")
				}
			} else if again.KeyRef != lost.KeyRef {
				t.Fatalf("without PCI mode the key was not reused: key_ref %s, first %s", again.KeyRef, lost.KeyRef)
			}
			cert, err := ca.SignCSR(again.PEM, 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.ImportCert(ctxFor(t), tgt, sdk.ImportRequest{KeyRef: again.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: ca.ChainPEM(), NameHint: "retried"}); err != nil {
				t.Fatalf("ImportCert for the second answer: %v", err)
			}
		})
	}
}
