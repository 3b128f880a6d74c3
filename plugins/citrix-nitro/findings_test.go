package citrixnitro_test

// One test per finding of issue 12, written against the plugin contract and the simulator only
// (binding kinds as strings), so that each also runs against the plugin as it was before.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"google.golang.org/grpc/codes"
)

// servedTo returns the leaf a client gets; rsaOnly offers no ECDSA cipher suite (TLS 1.2).
func servedTo(t *testing.T, sim *nitrosim.Sim, vs, serverName string, rsaOnly bool) *x509.Certificate {
	t.Helper()
	cfg := &tls.Config{ServerName: serverName}
	if rsaOnly {
		cfg.MaxVersion, cfg.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	certs, err := conformance.ServedChain(ctx, sim.ServedAddress(vs), cfg)
	if err != nil {
		t.Fatalf("TLS to %s (rsa only %v): %v", vs, rsaOnly, err)
	}
	return certs[0]
}

// Finding 1: the appliance refuses to update a certkey to a certificate another certkey holds
// (CTX206045, 273 naming the holder). Renewing twice must work, touch no binding and leave one
// certkey per certificate.
func TestFinding1RenewalRespectsOneCertKeyPerCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	first := e.enroll("www", "www.example.com")
	e.bind(first, lbWWW)
	live := first
	for round := range 2 {
		next := e.enroll("www", "www.example.com")
		res, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: next.ref, Bindings: []sdk.Binding{lbWWW}})
		if err != nil {
			t.Fatalf("renewal %d: %v", round+1, err)
		}
		if !slices.Equal(res.PreviousCertRefs, []string{live.ref}) {
			t.Errorf("renewal %d: previous %v, want [%s]", round+1, res.PreviousCertRefs, live.ref)
		}
		e.wantServed("after renewal", "vs_www_443", "www.example.com", next)
		live = next
	}
}

// Finding 2: file names are kept relative to /nsconfig/ssl; ns-server-certificate is on every
// appliance. An administrator's relative-path certkey bound SNI stays served and is reported,
// while ours is renewed on the same vserver.
func TestFinding2RelativePathsAndBuiltinCertKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	admin := e.adminCertKey("shop_admin", "shop.example.com", "shop-admin.crt", "shop-admin.key", "vs_www_443", true)
	ours := e.enroll("www", "www.example.com")
	e.bind(ours, lbWWW)
	for range 2 {
		next := e.enroll("www", "www.example.com")
		e.bind(next, lbWWW)
		e.wantServed("renewed", "vs_www_443", "www.example.com", next)
		e.wantServed("the administrator's SNI certificate", "vs_www_443", "shop.example.com", admin)
		ours = next
	}
	inv := e.inventory()
	if b := inv["shop_admin"].Bindings; len(b) != 1 || !b[0].SNI || b[0].Name != "vs_www_443" {
		t.Errorf("the administrator's certkey in Inventory: %+v", inv["shop_admin"])
	}
	if inv["shop_admin"].KeyRef != "" {
		t.Errorf("an administrator's key reported as key_ref %q", inv["shop_admin"].KeyRef)
	}
	if builtin, ok := inv[nitrosim.BuiltinCertKey]; !ok || builtin.Serial == "" {
		t.Errorf("ns-server-certificate missing from Inventory: %+v", builtin)
	}
	res, err := e.p.Cleanup(e.ctx, e.tgt, []sdk.ObjectRef{{CertRef: nitrosim.BuiltinCertKey}, {CertRef: "shop_admin"}})
	if err != nil || res[0].Removed || res[1].Removed {
		t.Errorf("Cleanup removed the appliance's or a bound administrator's certkey: %+v %v", res, err)
	}
	if !slices.Contains(e.sim.Files(""), "/nsconfig/ssl/shop-admin.crt") {
		t.Error("the administrator's relative-path file is gone")
	}
}

// Finding 3: one RSA and one ECDSA default certificate on one vserver; each renewal replaces
// only the certificate of its own key type.
func TestFinding3DualRSAAndECDSAVServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	rsaSpec, ecSpec := sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 2048}, sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}
	rsaCert := e.enrollKey("www-rsa", rsaSpec, e.ca.ChainPEM(), "www.example.com")
	ecCert := e.enrollKey("www-ec", ecSpec, e.ca.ChainPEM(), "www.example.com")
	e.bind(rsaCert, lbWWW)
	e.bind(ecCert, lbWWW)
	check := func(stage string, wantRSA, wantEC enrolled) {
		t.Helper()
		if got := servedTo(t, e.sim, "vs_www_443", "www.example.com", true); !got.Equal(wantRSA.cert) {
			t.Errorf("%s: an RSA-only client gets %v serial %s, want the RSA certificate %s", stage, got.PublicKeyAlgorithm, got.SerialNumber, wantRSA.ref)
		}
		if got := servedTo(t, e.sim, "vs_www_443", "www.example.com", false); !got.Equal(wantEC.cert) {
			t.Errorf("%s: an ECDSA client gets %v serial %s, want the ECDSA certificate %s", stage, got.PublicKeyAlgorithm, got.SerialNumber, wantEC.ref)
		}
	}
	check("both bound", rsaCert, ecCert)
	for range 2 {
		nextEC := e.enrollKey("www-ec", ecSpec, e.ca.ChainPEM(), "www.example.com")
		res := e.bind(nextEC, lbWWW)
		if !slices.Equal(res.PreviousCertRefs, []string{ecCert.ref}) {
			t.Errorf("ECDSA renewal replaced %v, want [%s]", res.PreviousCertRefs, ecCert.ref)
		}
		check("ECDSA renewed", rsaCert, nextEC)
		nextRSA := e.enrollKey("www-rsa", rsaSpec, e.ca.ChainPEM(), "www.example.com")
		res = e.bind(nextRSA, lbWWW)
		if !slices.Equal(res.PreviousCertRefs, []string{rsaCert.ref}) {
			t.Errorf("RSA renewal replaced %v, want [%s]", res.PreviousCertRefs, rsaCert.ref)
		}
		check("RSA renewed", nextRSA, nextEC)
		rsaCert, ecCert = nextRSA, nextEC
	}
}

// Finding 4: with the default SSL profile enabled, SNI is a profile setting (PUT sslvserver
// snienable gets 3740). A vserver with a profile of its own gets SNI there; one on the shared
// default profile gets a clear error naming the fix, and none once SNI is on in that profile.
func TestFinding4SNIWithTheDefaultSSLProfile(t *testing.T) {
	t.Parallel()
	cfg := nitrosim.DefaultConfig()
	cfg.DefaultProfile = true
	cfg.VServers = append(cfg.VServers, nitrosim.VServer{Name: "vs_shop_443", Kind: nitrosim.KindLB, Profile: "prof_shop"})
	e := newEnv(t, cfg, nil)
	def := e.enroll("default", "default.example.com")
	e.bind(def, lbWWW, sdk.Binding{Kind: "lb-vserver", Name: "vs_shop_443"})
	shop := e.enroll("shop", "shop.example.com")
	e.bind(shop, sdk.Binding{Kind: "lb-vserver", Name: "vs_shop_443", SNI: true})
	e.wantServed("SNI through its own profile", "vs_shop_443", "shop.example.com", shop)
	if !e.sim.ProfileSNI("prof_shop") || e.sim.ProfileSNI(nitrosim.DefaultFrontendProfile) {
		t.Error("SNI was not enabled in the vserver's own profile only")
	}
	_, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: shop.ref, Bindings: []sdk.Binding{{Kind: "lb-vserver", Name: "vs_www_443", SNI: true}}})
	se := wantErr(t, "SNI on a vserver using the shared default profile", err, codes.FailedPrecondition, "")
	if !strings.Contains(se.Message, "set ssl profile "+nitrosim.DefaultFrontendProfile+" -sniEnable ENABLED") {
		t.Errorf("the error does not name the fix: %v", se)
	}
}

// Finding 5: Inventory reports every place a certkey is bound; content-switching and SSL_TCP
// vservers are managed.
func TestFinding5EveryPlaceAndMoreVServerKinds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	cs, tcp := sdk.Binding{Kind: "cs-vserver", Name: "cs_www_443"}, sdk.Binding{Kind: "lb-vserver", Name: "vs_imaps_993"}
	first := e.enroll("www", "www.example.com")
	e.bind(first, lbWWW, cs, tcp)
	for _, pl := range [][2]string{{nitrosim.PlaceService, "svc_www"}, {nitrosim.PlaceServiceGroup, "sg_www"}, {nitrosim.PlaceProfile, "prof_x"},
		{nitrosim.PlaceVPNGlobal, ""}, {nitrosim.PlaceSAMLAction, "saml_www"}} {
		if err := e.sim.BindElsewhere("", pl[0], pl[1], first.ref); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	for _, b := range e.inventory()[first.ref].Bindings {
		got[b.Kind+"/"+b.Name] = true
	}
	for _, want := range []string{"lb-vserver/vs_www_443", "cs-vserver/cs_www_443", "lb-vserver/vs_imaps_993", "ssl-service/svc_www",
		"ssl-servicegroup/sg_www", "ssl-profile/prof_x", "vpn-global/vpnglobal", "saml-action/saml_www"} {
		if !got[want] {
			t.Errorf("Inventory does not show %s (has %v)", want, got)
		}
	}
	next := e.enroll("www", "www.example.com")
	_, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: next.ref, Bindings: []sdk.Binding{lbWWW, cs, tcp}})
	wantErr(t, "in-place update of a certkey also bound to services", err, codes.FailedPrecondition, "")
	e.wantServed("unchanged after the refusal", "cs_www_443", "", first)
}

// Finding 6: http:// only with the device's explicit opt-in.
func TestFinding6PlainHTTPNeedsOptIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	plain, err := e.sim.StartPlainHTTP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tgt := e.tgt
	tgt.Address = plain
	_, err = e.p.CheckTarget(e.ctx, tgt)
	se := wantErr(t, "http:// without the opt-in", err, codes.InvalidArgument, "")
	if !strings.Contains(se.Message, "allow_plain_http") {
		t.Errorf("the error does not name the opt-in: %v", se)
	}
	tgt.Options = sdk.Options{"allow_plain_http": true}
	if _, err := e.p.CheckTarget(e.ctx, tgt); err != nil {
		t.Fatalf("http:// with allow_plain_http: %v", err)
	}
}

// Finding 7: a missing certkey answers 1540 "Certificate does not exist"; the plugin reads that
// as missing (here: a second Rollback finds the freed certkey already back).
func TestFinding7MissingCertKeyIsRecognised(t *testing.T) {
	t.Parallel()
	for _, as258 := range []bool{false, true} {
		cfg := nitrosim.DefaultConfig()
		cfg.MissingCertKeyAs258 = as258
		e := newEnv(t, cfg, nil)
		first := e.enroll("www", "www.example.com")
		e.bind(first, lbWWW)
		next := e.enroll("www", "www.example.com")
		res := e.bind(next, lbWWW)
		for range 2 {
			if err := e.p.Rollback(e.ctx, e.tgt, res.RollbackToken); err != nil {
				t.Fatalf("as258=%v: Rollback: %v", as258, err)
			}
		}
		e.wantServed("after rollback", "vs_www_443", "", first)
		// A retried ImportCert of a certificate already held reads the holder the 273 names.
		if _, err := e.p.ImportCert(e.ctx, e.tgt, sdk.ImportRequest{KeyRef: first.ref, CertPEM: sdk.EncodeCertificatePEM(first.cert), ChainPEM: e.ca.ChainPEM()}); err != nil {
			t.Errorf("as258=%v: retried ImportCert: %v", as258, err)
		}
	}
}

// Finding 2, SNI over an administrator's certkey: an SNI binding for a domain an administrator's
// relative-path certkey serves takes that place; the default certificate is untouched; the
// failure of the bulk place list on an older appliance falls back to one read per certkey; and
// Rollback puts the administrator's certificate back.
func TestFinding2SNIOverAnAdministratorsRelativePathCertKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	def := e.enroll("default", "default.example.com")
	e.bind(def, lbAPI)
	admin := e.adminCertKey("shop_admin", "shop.example.com", "shop-admin.crt", "shop-admin.key", "vs_api_443", true)
	shop := e.enroll("shop", "shop.example.com")
	e.sim.FailNext("GET sslcertkey_binding", 1, 599, 1233)
	res := e.bind(shop, sdk.Binding{Kind: "lb-vserver", Name: "vs_api_443", SNI: true})
	if !slices.Equal(res.PreviousCertRefs, []string{"shop_admin"}) {
		t.Errorf("previous %v, want [shop_admin]", res.PreviousCertRefs)
	}
	e.wantServed("ours for the domain", "vs_api_443", "shop.example.com", shop)
	e.wantServed("default untouched", "vs_api_443", "", def)
	if err := e.p.Rollback(e.ctx, e.tgt, res.RollbackToken); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	e.wantServed("the administrator's again", "vs_api_443", "shop.example.com", admin)
}
