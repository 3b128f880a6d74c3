package nitrosim_test

// One test per appliance rule the simulator enforces; each rule's source is cited where the
// simulator implements it (handler.go, sim.go).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitro"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// rsaCertKey makes an RSA key and CSR on the appliance, signs it and adds certkey name.
func (f *fixture) rsaCertKey(name string, dns ...string) *x509.Certificate {
	f.t.Helper()
	key, csrFile := "/nsconfig/ssl/"+name+".key", "/nsconfig/ssl/"+name+".csr"
	f.must(f.c.CreateRSAKey(f.ctx, key, 2048))
	f.must(f.c.CreateCertReq(f.ctx, nitro.CertReq{ReqFile: csrFile, KeyFile: key, CountryName: "GB", StateName: "Yorkshire",
		OrganizationName: "Example", CommonName: dns[0], SubjectAltName: "DNS:" + strings.Join(dns, " DNS:"), DigestMethod: "SHA256"}))
	csr, _, err := f.c.Download(f.ctx, csrFile)
	f.must(err)
	cert, err := f.ca.SignCSR(string(csr), time.Hour)
	f.must(err)
	f.must(f.c.Upload(f.ctx, nitro.SSLDir, name+".crt", []byte(sdk.EncodeCertificatePEM(cert))))
	f.must(f.c.AddCertKey(f.ctx, name, "/nsconfig/ssl/"+name+".crt", key))
	f.must(f.c.Link(f.ctx, name, "inter"))
	return cert
}

// servedWith returns the leaf a client offering only the given signature schemes gets.
func (f *fixture) servedWith(vs, sni string, schemes ...tls.SignatureScheme) (*x509.Certificate, error) {
	cfg := &tls.Config{ServerName: sni, MaxVersion: tls.VersionTLS12}
	if len(schemes) > 0 {
		// TLS 1.2 without ECDSA cipher suites: an RSA-only client.
		cfg.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	}
	ctx, cancel := context.WithTimeout(f.ctx, 2*time.Second)
	defer cancel()
	certs, err := conformance.ServedChain(ctx, f.sim.ServedAddress(vs), cfg)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

func TestRelativePathsAndBuiltinCertKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nitrosim.DefaultConfig())
	ck, found, err := f.c.GetCertKey(f.ctx, nitrosim.BuiltinCertKey)
	f.must(err)
	if !found || ck.Cert != "/nsconfig/ssl/ns-server.cert" {
		t.Fatalf("built-in certkey: found %v, cert %q (the client resolves it)", found, ck.Cert)
	}
	raw, err := f.c.Call(f.ctx, http.MethodGet, "/nitro/v1/config/sslcertkey/"+nitro.PathEscape(nitrosim.BuiltinCertKey), nil, nil)
	f.must(err)
	if !strings.Contains(string(raw), `"cert":"ns-server.cert"`) || !strings.Contains(string(raw), `"key":"ns-server.key"`) {
		t.Errorf("the appliance keeps the names as given, relative to /nsconfig/ssl: %s", raw)
	}
	if _, found, err := f.c.Download(f.ctx, "/nsconfig/ssl/ns-server.cert"); err != nil || !found {
		t.Errorf("ns-server.cert is not in /nsconfig/ssl: %v", err)
	}
	// An administrator's certkey added with relative names is kept and served as given.
	f.leaf("rel", "rel.example.com")
	f.must(f.c.AddCertKey(f.ctx, "rel", "rel.crt", "rel.key"))
	raw, err = f.c.Call(f.ctx, http.MethodGet, "/nitro/v1/config/sslcertkey/rel", nil, nil)
	f.must(err)
	if !strings.Contains(string(raw), `"cert":"rel.crt"`) {
		t.Errorf("relative cert name rewritten: %s", raw)
	}
	f.must(f.c.Bind(f.ctx, "vs_www_443", "rel", false))
	if chain, err := f.served("vs_www_443", ""); err != nil || chain[0].Subject.CommonName != "rel.example.com" {
		t.Errorf("relative-path certkey not served: %v", err)
	}
	// The same certificate by its absolute name is the same certificate: 273 names the holder.
	err = f.c.AddCertKey(f.ctx, "rel2", "/nsconfig/ssl/rel.crt", "/nsconfig/ssl/rel.key")
	wantCode(t, "add by the absolute name", err, nitro.CodeAlreadyExists)
}

func TestRSAAndECDSADefaultCertificates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nitrosim.DefaultConfig())
	ec := f.certkey("ec", "www.example.com")
	rsaCert := f.rsaCertKey("rsa", "www.example.com")
	f.certkey("ec2", "www.example.com")
	f.must(f.c.Bind(f.ctx, "vs_www_443", "ec", false))
	f.must(f.c.Bind(f.ctx, "vs_www_443", "rsa", false))
	if err := f.c.Bind(f.ctx, "vs_www_443", "ec2", false); !nitro.IsDeviceRefusal(err) {
		t.Fatalf("a second ECDSA default certificate: %v, want a refusal", err)
	}
	got, err := f.servedWith("vs_www_443", "", tls.PKCS1WithSHA256)
	f.must(err)
	if !got.Equal(rsaCert) {
		t.Errorf("an RSA-only client got %s (%v), want the RSA certificate", got.Subject.CommonName, got.PublicKeyAlgorithm)
	}
	got, err = f.servedWith("vs_www_443", "")
	f.must(err)
	if !got.Equal(ec) {
		t.Errorf("a client supporting ECDSA got %v, want the ECDSA certificate", got.PublicKeyAlgorithm)
	}
	cks, err := f.c.CertKeys(f.ctx)
	f.must(err)
	for _, ck := range cks {
		if ck.CertKey == "rsa" && ck.PublicKey != "rsaEncryption" || ck.CertKey == "ec" && ck.PublicKey != "id-ecPublicKey" {
			t.Errorf("certkey %s publickey %q", ck.CertKey, ck.PublicKey)
		}
	}
}

func TestDefaultProfileMode(t *testing.T) {
	t.Parallel()
	for _, lenient := range []bool{false, true} {
		cfg := nitrosim.DefaultConfig()
		cfg.DefaultProfile, cfg.AllowVServerSNIWithProfile = true, lenient
		f := newFixture(t, cfg)
		on, err := f.c.DefaultProfileEnabled(f.ctx)
		f.must(err)
		vs, err := f.c.SSLVServer(f.ctx, "vs_www_443")
		f.must(err)
		if !on || vs.SSLProfile != nitrosim.DefaultFrontendProfile {
			t.Fatalf("default profile %v, vserver profile %q", on, vs.SSLProfile)
		}
		err = f.c.EnableSNI(f.ctx, "vs_www_443")
		if lenient {
			f.must(err)
			continue
		}
		wantCode(t, "vserver-level snienable with the default profile", err, nitro.CodeDefaultProfile)
		f.certkey("shop", "shop.example.com")
		if err := f.c.Bind(f.ctx, "vs_www_443", "shop", true); !nitro.IsDeviceRefusal(err) {
			t.Fatalf("SNI bind with SNI off in the profile: %v", err)
		}
		f.must(f.c.EnableProfileSNI(f.ctx, nitrosim.DefaultFrontendProfile))
		f.must(f.c.Bind(f.ctx, "vs_www_443", "shop", true))
		if sni, err := f.c.ProfileSNI(f.ctx, nitrosim.DefaultFrontendProfile); err != nil || !sni {
			t.Errorf("profile SNI %v %v", sni, err)
		}
	}
	f := newFixture(t, nitrosim.DefaultConfig())
	if on, err := f.c.DefaultProfileEnabled(f.ctx); err != nil || on {
		t.Errorf("legacy mode reports default profile %v %v", on, err)
	}
}

func TestEveryPlaceACertKeyIsBound(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nitrosim.DefaultConfig())
	f.certkey("a", "a.example.com")
	f.must(f.c.Bind(f.ctx, "vs_www_443", "a", false))
	f.must(f.c.Bind(f.ctx, "cs_www_443", "a", false))
	for _, pl := range [][2]string{{nitrosim.PlaceService, "svc_backend"}, {nitrosim.PlaceServiceGroup, "sg_backend"},
		{nitrosim.PlaceProfile, "prof_x"}, {nitrosim.PlaceVPNGlobal, ""}, {nitrosim.PlaceSAMLAction, "saml_idp"}} {
		f.must(f.sim.BindElsewhere("", pl[0], pl[1], "a"))
	}
	places, err := f.c.Places(f.ctx)
	f.must(err)
	var got *nitro.CertKeyPlaces
	for i := range places {
		if places[i].CertKey == "a" {
			got = &places[i]
		}
	}
	if got == nil || len(got.VServers) != 2 || len(got.Services) != 2 || len(got.Profiles) != 1 {
		t.Fatalf("sslcertkey_binding of a: %+v", got)
	}
	vpn, err := f.c.VPNGlobalCertKeys(f.ctx)
	f.must(err)
	saml, err := f.c.SAMLActions(f.ctx)
	f.must(err)
	if len(vpn) != 1 || vpn[0] != "a" || len(saml) != 1 || saml[0].IdPCert != "a" {
		t.Errorf("vpnglobal %v, saml %+v", vpn, saml)
	}
	f.must(f.c.Unbind(f.ctx, "vs_www_443", "a", false))
	f.must(f.c.Unbind(f.ctx, "cs_www_443", "a", false))
	if err := f.c.DeleteCertKey(f.ctx, "a"); !nitro.IsDeviceRefusal(err) {
		t.Errorf("delete a certkey bound to a service: %v, want a refusal", err)
	}
}

func TestSSLTCPAndContentSwitchingVServers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nitrosim.DefaultConfig())
	f.certkey("a", "a.example.com")
	for _, vs := range []string{"vs_imaps_993", "cs_www_443"} {
		f.must(f.c.Bind(f.ctx, vs, "a", false))
		if chain, err := f.served(vs, ""); err != nil || chain[0].Subject.CommonName != "a.example.com" {
			t.Errorf("%s: %v", vs, err)
		}
	}
	wantCode(t, "bind to an HTTP vserver", f.c.Bind(f.ctx, "vs_plain_80", "a", false), nitro.CodeNotSSLVServer)
	cs, err := f.c.VServers(f.ctx, nitrosim.KindCS)
	f.must(err)
	if len(cs) != 1 || cs[0].ServiceType != "SSL" {
		t.Errorf("csvservers %+v", cs)
	}
}

func TestUploadWithoutFileEncoding(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nitrosim.DefaultConfig())
	_, err := f.c.Call(f.ctx, http.MethodPost, "/nitro/v1/config/systemfile", nil, map[string]any{"systemfile": map[string]any{
		"filename": "plain.txt", "filelocation": nitro.SSLDir, "filecontent": "aGVsbG8="}})
	f.must(err)
	if data, found, err := f.c.Download(f.ctx, "/nsconfig/ssl/plain.txt"); err != nil || !found || string(data) != "hello" {
		t.Errorf("upload without fileencoding: %q %v %v", data, found, err)
	}
	_, err = f.c.Call(f.ctx, http.MethodPost, "/nitro/v1/config/systemfile", nil, map[string]any{"systemfile": map[string]any{
		"filename": "other.txt", "filelocation": nitro.SSLDir, "filecontent": "hello", "fileencoding": "TEXT"}})
	if !nitro.IsDeviceRefusal(err) {
		t.Errorf("an unknown fileencoding: %v, want a refusal", err)
	}
}

func TestUnknownAttributeIs278(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nitrosim.DefaultConfig())
	f.leaf("a", "a.example.com")
	_, err := f.c.Call(f.ctx, http.MethodPost, "/nitro/v1/config/sslcertkey", nil, map[string]any{"sslcertkey": map[string]any{
		"certkey": "a", "cert": "/nsconfig/ssl/a.crt", "key": "/nsconfig/ssl/a.key", "nodomaincheck": true}})
	wantCode(t, "nodomaincheck on add", err, nitro.CodeInvalidArgument)
	if !strings.Contains(err.Error(), "Invalid argument [nodomaincheck]") {
		t.Errorf("278 does not name the attribute: %v", err)
	}
	_, err = f.c.Call(f.ctx, http.MethodPut, "/nitro/v1/config/sslvserver_sslcertkey_binding", nil, map[string]any{"sslvserver_sslcertkey_binding": map[string]any{
		"vservername": "vs_www_443", "certkeyname": "a", "sni": true}})
	wantCode(t, "sni instead of snicert", err, nitro.CodeInvalidArgument)
}

func TestMissingCertKey(t *testing.T) {
	t.Parallel()
	for _, as258 := range []bool{false, true} {
		cfg := nitrosim.DefaultConfig()
		cfg.MissingCertKeyAs258 = as258
		f := newFixture(t, cfg)
		_, err := f.c.Call(f.ctx, http.MethodGet, "/nitro/v1/config/sslcertkey/nope", nil, nil)
		if as258 {
			wantCode(t, "GET a missing certkey", err, nitro.CodeResourceMissing)
		} else {
			wantCode(t, "GET a missing certkey", err, nitro.CodeCertKeyMissing)
			if !strings.Contains(err.Error(), "Certificate does not exist") {
				t.Errorf("text: %v", err)
			}
		}
		if !nitro.IsMissing(err) {
			t.Errorf("IsMissing(%v) is false", err)
		}
		if _, found, err := f.c.GetCertKey(f.ctx, "nope"); err != nil || found {
			t.Errorf("GetCertKey of a missing certkey: found %v, %v", found, err)
		}
	}
}

func TestFileInUseDeletion(t *testing.T) {
	t.Parallel()
	for _, refuse := range []bool{false, true} {
		cfg := nitrosim.DefaultConfig()
		cfg.RefuseFileInUseDelete = refuse
		f := newFixture(t, cfg)
		a := f.certkey("a", "a.example.com")
		f.must(f.c.Bind(f.ctx, "vs_www_443", "a", false))
		existed, err := f.c.DeleteFile(f.ctx, "/nsconfig/ssl/a.crt")
		if refuse {
			if !nitro.IsDeviceRefusal(err) || existed {
				t.Errorf("refusing appliance: delete a file in use: %v", err)
			}
			continue
		}
		if err != nil || !existed {
			t.Fatalf("delete a file in use: %v", err)
		}
		// The certificate was loaded when the certkey was added: still served.
		if chain, err := f.served("vs_www_443", ""); err != nil || !chain[0].Equal(a) {
			t.Errorf("after its file was deleted the certkey is not served: %v", err)
		}
	}
}

func TestNotFoundBy404(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nitrosim.DefaultConfig())
	f.sim.FailNext("GET systemfile", 1, http.StatusNotFound, 3441)
	if _, found, err := f.c.Download(f.ctx, "/nsconfig/ssl/any.crt"); err != nil || found {
		t.Errorf("a 404 with another errorcode: found %v, %v; want not found", found, err)
	}
	_, err := f.c.Call(f.ctx, http.MethodGet, "/nitro/v1/config/lbvserver/nope", nil, nil)
	if !nitro.IsMissing(err) {
		t.Errorf("GET a missing lbvserver: %v", err)
	}
	if _, err := f.c.Bindings(f.ctx, "nope"); nitro.IsMissing(err) || !nitro.IsCode(err, nitro.CodeVServerMissing) {
		t.Errorf("a missing vserver's bindings (461) must not read as an empty list: %v", err)
	}
}
