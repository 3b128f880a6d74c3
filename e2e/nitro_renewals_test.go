package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
)

// adminSNICertificate installs, as an administrator would by hand, a certkey with file names
// relative to /nsconfig/ssl, bound SNI to vserver vs.
func adminSNICertificate(t *testing.T, sim *nitrosim.Sim, vs, name string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.AddAdminCertKey(nitrosim.AdminCertKey{Name: "shop_admin", CertFile: "shop.crt", KeyFile: "shop.key",
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		BindTo: vs, SNI: true}); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// TestCitrixADCRenewTwiceBesideAdminSNIAndOnDualKeyVServer renews, twice in a row, a default
// certificate on a vserver where an administrator's relative-path certkey is bound SNI, and the
// RSA and the ECDSA certificate of one vserver. After each run the served chains verify over TLS
// (an RSA-only client and an ECDSA client each get their own certificate) and the
// administrator's certificate is still served; while each run renews, clients loop handshakes
// and none fails.
func TestCitrixADCRenewTwiceBesideAdminSNIAndOnDualKeyVServer(t *testing.T) {
	cfg := nitrosim.DefaultConfig()
	sim, err := nitrosim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	admin := adminSNICertificate(t, sim, "vs_www_443", "shop.example.com")
	bundle := filepath.Join(t.TempDir(), "adc-tls.pem")
	if err := os.WriteFile(bundle, []byte(sim.CACertPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	f, pebble := acmeFleetWith(t, fleetSpec{
		Env: []string{"E2E_ADC_PASSWORD=" + cfg.Password},
		ExtraDevices: fmt.Sprintf(`  adc1:
    plugin: citrix-nitro
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: %s, password: "${env:E2E_ADC_PASSWORD}"}`, sim.URL(), bundle, cfg.Username),
		ExtraCertificates: `  www:
    device: adc1
    subject: {state: West Yorkshire}
    sans: {dns: [www.example.com]}
    bindings: [{kind: lb-vserver, name: vs_www_443}]
  api-rsa:
    device: adc1
    subject: {state: West Yorkshire}
    key: {type: rsa, bits: 2048}
    sans: {dns: [api.example.com]}
    bindings: [{kind: lb-vserver, name: vs_api_443}]
  api-ec:
    device: adc1
    subject: {state: West Yorkshire}
    key: {type: ecdsa, bits: 256}
    sans: {dns: [api.example.com]}
    bindings: [{kind: lb-vserver, name: vs_api_443}]`,
	})
	root, err := pebble.RootPEM()
	if err != nil {
		t.Fatal(err)
	}
	www, api := sim.ServedAddress("vs_www_443"), sim.ServedAddress("vs_api_443")
	clients := []tlsClient{{addr: www, name: "www.example.com"}, {addr: www, name: "shop.example.com"},
		{addr: api, name: "api.example.com", rsaOnly: true}, {addr: api, name: "api.example.com"}}
	// check verifies what each client gets and returns the leaves of www, api (RSA), api (ECDSA).
	check := func(stage string) [3]*x509.Certificate {
		t.Helper()
		var out [3]*x509.Certificate
		for i, c := range clients {
			chain, err := servedTo(c)
			if err != nil {
				t.Fatalf("%s: TLS to %s as %s (rsa only %v): %v", stage, c.addr, c.name, c.rsaOnly, err)
			}
			switch i {
			case 1:
				if !chain[0].Equal(admin) {
					t.Fatalf("%s: shop.example.com gets %s, not the administrator's certificate", stage, chain[0].Subject)
				}
				continue
			case 2:
				if chain[0].PublicKeyAlgorithm != x509.RSA {
					t.Fatalf("%s: an RSA-only client gets a %v certificate", stage, chain[0].PublicKeyAlgorithm)
				}
				out[1] = chain[0]
			case 3:
				if chain[0].PublicKeyAlgorithm != x509.ECDSA {
					t.Fatalf("%s: an ECDSA client gets a %v certificate", stage, chain[0].PublicKeyAlgorithm)
				}
				out[2] = chain[0]
			default:
				out[0] = chain[0]
			}
			verifyChain(t, chain, root, c.name)
		}
		return out
	}

	report, res := f.run(nil)
	for _, name := range []string{"www", "api-rsa", "api-ec"} {
		if res.code != 0 || outcomes(report)[name] != state.OutcomeDeployed {
			t.Fatalf("enroll: exit %d, %+v\n%s", res.code, report.Results, res.stderr)
		}
	}
	prev := check("enroll")
	for round := 1; round <= 2; round++ {
		stop := pollClients(clients)
		report, res = f.run(nil, "--force", "www", "api-rsa", "api-ec")
		failures, handshakes := stop()
		for _, name := range []string{"www", "api-rsa", "api-ec"} {
			if res.code != 0 || outcomes(report)[name] != state.OutcomeDeployed {
				t.Fatalf("renewal %d: exit %d, %+v\n%s", round, res.code, report.Results, res.stderr)
			}
		}
		if failures != 0 || handshakes < 20 {
			t.Fatalf("renewal %d: %d of %d handshakes failed", round, failures, handshakes)
		}
		t.Logf("renewal %d: %d handshakes by 4 kinds of client, 0 failed", round, handshakes)
		now := check(fmt.Sprintf("renewal %d", round))
		for i, what := range []string{"www", "api (RSA)", "api (ECDSA)"} {
			if now[i].Equal(prev[i]) {
				t.Errorf("renewal %d: %s still serves serial %s", round, what, now[i].SerialNumber)
			}
		}
		prev = now
	}
	if n := sim.Sessions(); n != 0 {
		t.Errorf("%d NITRO sessions left open", n)
	}
}
