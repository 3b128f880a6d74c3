package nitrosim_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitro"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// fixture is a running simulator, a logged-in client and a test CA whose intermediate and root
// are installed as the linked certkeys "inter" and "root".
type fixture struct {
	t   *testing.T
	sim *nitrosim.Sim
	c   *nitro.Client
	ca  *conformance.TestCA
	ctx context.Context
}

func newFixture(t *testing.T, cfg nitrosim.Config) *fixture {
	t.Helper()
	sim, err := nitrosim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(sim.CACertPEM()))
	c := nitro.New(sim.URL(), nitro.Options{Username: cfg.Username, Password: cfg.Password,
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}})
	ctx := context.Background()
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Logout(ctx) })
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, sim: sim, c: c, ca: ca, ctx: ctx}
	f.must(c.Upload(ctx, nitro.SSLDir, "root.crt", []byte(sdk.EncodeCertificatePEM(ca.Root))))
	f.must(c.Upload(ctx, nitro.SSLDir, "inter.crt", []byte(sdk.EncodeCertificatePEM(ca.Intermediate))))
	f.must(c.AddCertKey(ctx, "root", "/nsconfig/ssl/root.crt", ""))
	f.must(c.AddCertKey(ctx, "inter", "/nsconfig/ssl/inter.crt", ""))
	f.must(c.Link(ctx, "inter", "root"))
	return f
}

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// leaf makes a key and a CSR on the appliance, has the test CA sign it and uploads the
// certificate as <name>.crt.
func (f *fixture) leaf(name string, dns ...string) *x509.Certificate {
	f.t.Helper()
	key, csrFile := "/nsconfig/ssl/"+name+".key", "/nsconfig/ssl/"+name+".csr"
	f.must(f.c.CreateECDSAKey(f.ctx, key, "P_256"))
	var sans []string
	for _, d := range dns {
		sans = append(sans, "DNS:"+d)
	}
	f.must(f.c.CreateCertReq(f.ctx, nitro.CertReq{ReqFile: csrFile, KeyFile: key, CountryName: "GB", StateName: "Yorkshire",
		OrganizationName: "Example", CommonName: dns[0], SubjectAltName: strings.Join(sans, " "), DigestMethod: "SHA256"}))
	csr, found, err := f.c.Download(f.ctx, csrFile)
	if err != nil || !found {
		f.t.Fatalf("download CSR: %v", err)
	}
	cert, err := f.ca.SignCSR(string(csr), time.Hour)
	f.must(err)
	f.must(f.c.Upload(f.ctx, nitro.SSLDir, name+".crt", []byte(sdk.EncodeCertificatePEM(cert))))
	return cert
}

// certkey makes a leaf and adds it as certkey name, linked to the intermediate.
func (f *fixture) certkey(name string, dns ...string) *x509.Certificate {
	f.t.Helper()
	cert := f.leaf(name, dns...)
	f.must(f.c.AddCertKey(f.ctx, name, "/nsconfig/ssl/"+name+".crt", "/nsconfig/ssl/"+name+".key"))
	f.must(f.c.Link(f.ctx, name, "inter"))
	return cert
}

// served returns the chain a TLS client gets from vserver vs with server name sni.
func (f *fixture) served(vs, sni string) ([]*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(f.ctx, 2*time.Second)
	defer cancel()
	return conformance.ServedChain(ctx, f.sim.ServedAddress(vs), &tls.Config{ServerName: sni})
}

func wantCode(t *testing.T, what string, err error, code int) {
	t.Helper()
	if !nitro.IsCode(err, code) {
		t.Fatalf("%s: got %v, want errorcode %d", what, err, code)
	}
}

func TestCSRMadeOnTheAppliance(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nitrosim.DefaultConfig())
	f.must(f.c.CreateRSAKey(f.ctx, "/nsconfig/ssl/r.key", 2048))
	f.must(f.c.CreateCertReq(f.ctx, nitro.CertReq{ReqFile: "/nsconfig/ssl/r.csr", KeyFile: "/nsconfig/ssl/r.key", CountryName: "GB",
		StateName: "Yorkshire", OrganizationName: "Example", OrganizationUnit: "Ops", LocalityName: "Leeds", CommonName: "r.example.com",
		EmailAddress: "ops@example.com", SubjectAltName: "DNS:r.example.com DNS:s.example.com IP:192.0.2.7", DigestMethod: "SHA256"}))
	data, _, err := f.c.Download(f.ctx, "/nsconfig/ssl/r.csr")
	f.must(err)
	csr, err := sdk.ParseCSRPEM(string(data))
	f.must(err)
	if got := sdk.KeySpecOfCSR(csr); got != (sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 2048}) {
		t.Errorf("key %v", got)
	}
	if csr.Subject.CommonName != "r.example.com" || csr.Subject.Locality[0] != "Leeds" || csr.Subject.OrganizationalUnit[0] != "Ops" {
		t.Errorf("subject %v", csr.Subject)
	}
	if !slices.Equal(csr.DNSNames, []string{"r.example.com", "s.example.com"}) || len(csr.IPAddresses) != 1 || len(csr.EmailAddresses) != 0 {
		t.Errorf("SANs %v %v %v; emailaddress is a subject attribute, not a SAN", csr.DNSNames, csr.IPAddresses, csr.EmailAddresses)
	}
	if !slices.ContainsFunc(csr.Subject.Names, func(a pkix.AttributeTypeAndValue) bool {
		return a.Type.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}) && a.Value == "ops@example.com"
	}) {
		t.Errorf("subject %v lacks the emailAddress attribute", csr.Subject)
	}
	err = f.c.CreateCertReq(f.ctx, nitro.CertReq{ReqFile: "/nsconfig/ssl/w.csr", KeyFile: "/nsconfig/ssl/r.key", CountryName: "GB",
		StateName: "Y", OrganizationName: "Example", CommonName: "*.example.com"})
	if !nitro.IsDeviceRefusal(err) {
		t.Errorf("wildcard commonname: %v, want a refusal (12.1 docs)", err)
	}
}

// TestOneCertKeyPerCertificate: a certificate already held cannot be added or updated onto
// another certkey (273 naming the holder), unless the switch allows it for update.
func TestOneCertKeyPerCertificate(t *testing.T) {
	t.Parallel()
	for _, lenient := range []bool{false, true} {
		cfg := nitrosim.DefaultConfig()
		cfg.AllowDuplicateOnUpdate = lenient
		f := newFixture(t, cfg)
		f.certkey("a", "a.example.com")
		f.certkey("b", "b.example.com")
		err := f.c.AddCertKey(f.ctx, "a2", "/nsconfig/ssl/a.crt", "/nsconfig/ssl/a.key")
		wantCode(t, "add a held certificate", err, nitro.CodeAlreadyExists)
		if !strings.Contains(err.Error(), "certkeyName Contents, a]") {
			t.Errorf("273 does not name the holder: %v", err)
		}
		err = f.c.UpdateCertKey(f.ctx, "b", "/nsconfig/ssl/a.crt", "/nsconfig/ssl/a.key")
		if lenient && err != nil {
			t.Errorf("lenient: update onto a held certificate: %v", err)
		}
		if !lenient {
			wantCode(t, "update onto a held certificate", err, nitro.CodeAlreadyExists)
		}
	}
}

func TestStrictDeletesAndLinks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nitrosim.DefaultConfig())
	f.certkey("a", "a.example.com")
	f.must(f.c.Bind(f.ctx, "vs_www_443", "a", false))
	if err := f.c.DeleteCertKey(f.ctx, "a"); !nitro.IsDeviceRefusal(err) {
		t.Errorf("delete a bound certkey: %v, want a refusal", err)
	}
	if err := f.c.DeleteCertKey(f.ctx, "inter"); !nitro.IsDeviceRefusal(err) {
		t.Errorf("delete a CA certkey others link to: %v, want a refusal", err)
	}
	if err := f.c.Unlink(f.ctx, "root"); !nitro.IsDeviceRefusal(err) {
		t.Errorf("unlink an unlinked certkey: %v, want a refusal", err)
	}
	f.certkey("other", "other.example.com")
	f.must(f.c.Unlink(f.ctx, "other"))
	if err := f.c.Link(f.ctx, "other", "root"); !nitro.IsDeviceRefusal(err) {
		t.Errorf("link to a CA that did not issue the certificate: %v, want a refusal", err)
	}
	if err := f.c.Bind(f.ctx, "vs_www_443", "inter", false); !nitro.IsDeviceRefusal(err) {
		t.Errorf("bind a CA certkey as the server certificate: %v, want a refusal", err)
	}
	// An update to a certificate for other names needs nodomaincheck, which the client sends.
	f.leaf("c", "c.example.com")
	f.must(f.c.UpdateCertKey(f.ctx, "a", "/nsconfig/ssl/c.crt", "/nsconfig/ssl/c.key"))
	chain, err := f.served("vs_www_443", "")
	f.must(err)
	if chain[0].Subject.CommonName != "c.example.com" {
		t.Errorf("after the update the vserver serves %s", chain[0].Subject.CommonName)
	}
	// A key that does not match the certificate is refused.
	err = f.c.UpdateCertKey(f.ctx, "a", "/nsconfig/ssl/c.crt", "/nsconfig/ssl/other.key")
	wantCode(t, "update to a mismatched pair", err, nitro.CodeBadPrivateKey)
}

func TestDefaultAndSNIBindings(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nitrosim.DefaultConfig())
	if _, err := f.served("vs_www_443", ""); err == nil {
		t.Fatal("a vserver with no certificate completed a handshake")
	}
	a := f.certkey("a", "a.example.com")
	f.certkey("b", "b.example.com")
	shop := f.certkey("shop", "shop.example.com")
	f.certkey("shop2", "shop.example.com")
	f.must(f.c.Bind(f.ctx, "vs_www_443", "a", false))
	if err := f.c.Bind(f.ctx, "vs_www_443", "b", false); !nitro.IsDeviceRefusal(err) {
		t.Fatalf("a second default certificate: %v, want a refusal", err)
	}
	if err := f.c.Bind(f.ctx, "vs_www_443", "shop", true); !nitro.IsDeviceRefusal(err) {
		t.Fatalf("an SNI certificate with SNI off: %v, want a refusal", err)
	}
	f.must(f.c.EnableSNI(f.ctx, "vs_www_443"))
	f.must(f.c.Bind(f.ctx, "vs_www_443", "shop", true))
	if err := f.c.Bind(f.ctx, "vs_www_443", "shop2", true); !nitro.IsDeviceRefusal(err) {
		t.Fatalf("a second SNI certificate for the same domain: %v, want a refusal", err)
	}
	chain, err := f.served("vs_www_443", "shop.example.com")
	f.must(err)
	if !chain[0].Equal(shop) || len(chain) != 2 || !chain[1].Equal(f.ca.Intermediate) {
		t.Errorf("SNI shop.example.com: got %s with %d certificates, want the shop certificate and the intermediate (no root)", chain[0].Subject.CommonName, len(chain))
	}
	chain, err = f.served("vs_www_443", "other.example.com")
	f.must(err)
	if !chain[0].Equal(a) {
		t.Errorf("an unknown server name got %s, want the default certificate", chain[0].Subject.CommonName)
	}
	all, err := f.c.AllBindings(f.ctx)
	f.must(err)
	if len(all) != 2 || all[0].VServerName != "vs_www_443" {
		t.Errorf("bulk bindings %+v", all)
	}
	f.must(f.c.Unbind(f.ctx, "vs_www_443", "shop", true))
	wantCode(t, "unbind what is not bound", f.c.Unbind(f.ctx, "vs_www_443", "shop", true), nitro.CodeResourceMissing)
}

func TestLenientBindingSwitches(t *testing.T) {
	t.Parallel()
	cfg := nitrosim.DefaultConfig()
	cfg.DefaultBindReplaces, cfg.AllowSNIDomainOverlap = true, true
	f := newFixture(t, cfg)
	f.certkey("a", "a.example.com")
	f.certkey("b", "b.example.com")
	f.certkey("shop", "shop.example.com")
	f.certkey("shop2", "shop.example.com")
	f.must(f.c.Bind(f.ctx, "vs_www_443", "a", false))
	f.must(f.c.Bind(f.ctx, "vs_www_443", "b", false))
	f.must(f.c.EnableSNI(f.ctx, "vs_www_443"))
	f.must(f.c.Bind(f.ctx, "vs_www_443", "shop", true))
	f.must(f.c.Bind(f.ctx, "vs_www_443", "shop2", true))
	if got := f.sim.BoundCertKeys("vs_www_443"); !slices.Equal(got, []string{"b", "shop(sni)", "shop2(sni)"}) {
		t.Errorf("bindings %v: the second default bind must replace the first", got)
	}
}

func TestPartitionsAreSeparate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nitrosim.DefaultConfig())
	f.certkey("a", "a.example.com")
	// vs_t1_443 lives in p_tenant1: the default partition does not see it.
	wantCode(t, "bind across partitions", f.c.Bind(f.ctx, "vs_t1_443", "a", false), nitro.CodeVServerMissing)
	f.must(f.c.SaveConfig(f.ctx))
	if f.sim.Saves("") != 1 || f.sim.Saves("p_tenant1") != 0 {
		t.Errorf("saves default=%d p_tenant1=%d", f.sim.Saves(""), f.sim.Saves("p_tenant1"))
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nitrosim.DefaultConfig())
	f.sim.FailSave(1)
	if err := f.c.SaveConfig(f.ctx); !nitro.IsDeviceRefusal(err) {
		t.Errorf("injected save failure: %v", err)
	}
	f.must(f.c.SaveConfig(f.ctx))
	f.sim.FailNext("POST sslcertkey?action=link", 1, 599, 4242)
	f.leaf("a", "a.example.com")
	f.must(f.c.AddCertKey(f.ctx, "a", "/nsconfig/ssl/a.crt", "/nsconfig/ssl/a.key")) // an add is not a link
	wantCode(t, "injected link fault", f.c.Link(f.ctx, "a", "inter"), 4242)
	f.must(f.c.Link(f.ctx, "a", "inter"))
	f.sim.FailNext("POST login", 1, 401, nitro.CodeBadLogin)
	other := nitro.New(f.sim.URL(), nitro.Options{Username: "nsroot", Password: "nsroot-sim",
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}) //nolint:gosec // test
	wantCode(t, "injected login fault", other.Login(f.ctx), nitro.CodeBadLogin)
	f.sim.ExpireSessions()
	if f.sim.Sessions() != 0 {
		t.Error("sessions survive ExpireSessions")
	}
	f.sim.SetLatency(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(f.ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := f.c.CertKeys(ctx); err == nil {
		t.Error("a request slower than its deadline succeeded")
	}
}
