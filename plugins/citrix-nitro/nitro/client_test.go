package nitro_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitro"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
)

func client(t *testing.T, cfg nitrosim.Config, mode nitro.AuthMode) (*nitro.Client, *nitrosim.Sim) {
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
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c := nitro.New(sim.URL(), nitro.Options{Mode: mode, HTTPClient: hc, Username: cfg.Username, Secret: cfg.Password})
	if err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Logout(context.Background()) })
	return c, sim
}

func wantCode(t *testing.T, what string, err error, code int) {
	t.Helper()
	if !nitro.IsCode(err, code) {
		t.Fatalf("%s: got %v, want errorcode %d", what, err, code)
	}
}

// TestDeviceErrors drives the simulator into each NITRO error the plugin must handle.
func TestDeviceErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := client(t, nitrosim.DefaultConfig(), nitro.AuthSession)

	wantCode(t, "bind to unknown vserver", c.Bind(ctx, "vs_nope", "x", false), nitro.CodeVServerMissing)
	wantCode(t, "bindings of HTTP vserver", func() error { _, err := c.Bindings(ctx, "vs_plain_80"); return err }(), nitro.CodeNotSSLVServer)
	wantCode(t, "missing certkey", c.DeleteCertKey(ctx, "nope"), nitro.CodeResourceMissing)

	if err := c.CreateECDSAKey(ctx, "/nsconfig/ssl/k1.key", "P_256"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "key onto an existing file", c.CreateECDSAKey(ctx, "/nsconfig/ssl/k1.key", "P_256"), nitro.CodeFileExists)
	if err := c.Upload(ctx, nitro.SSLDir, "f.txt", []byte("a")); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "upload over a file", c.Upload(ctx, nitro.SSLDir, "f.txt", []byte("b")), nitro.CodeFileExists)
	// A self-signed certificate for k1 via the appliance's own CSR is not needed: a certkey whose
	// key file does not match is refused.
	if err := c.CreateECDSAKey(ctx, "/nsconfig/ssl/k2.key", "P_384"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateCertReq(ctx, nitro.CertReq{ReqFile: "/nsconfig/ssl/k2.csr", KeyFile: "/nsconfig/ssl/k2.key",
		CountryName: "GB", StateName: "Yorkshire", OrganizationName: "Ex", CommonName: "a.example", DigestMethod: "SHA256"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "CSR onto an existing file", c.CreateCertReq(ctx, nitro.CertReq{ReqFile: "/nsconfig/ssl/k2.csr", KeyFile: "/nsconfig/ssl/k2.key",
		CountryName: "GB", StateName: "Yorkshire", OrganizationName: "Ex", CommonName: "a.example", DigestMethod: "SHA256"}), nitro.CodeFileExists)
	if err := c.CreateCertReq(ctx, nitro.CertReq{ReqFile: "/nsconfig/ssl/k3.csr", KeyFile: "/nsconfig/ssl/k2.key", CountryName: "GB"}); err == nil {
		t.Fatal("CSR without statename/organizationname accepted")
	}
	if err := c.CreateRSAKey(ctx, "/nsconfig/ssl/k4.key", 8192); err == nil {
		t.Fatal("RSA 8192 accepted; NITRO allows 512-4096")
	}
	data, found, err := c.Download(ctx, "/nsconfig/ssl/k2.csr")
	if err != nil || !found || len(data) == 0 {
		t.Fatalf("download CSR: %v %v", found, err)
	}
	if _, _, err := c.Download(ctx, "/nsconfig/ssl/none.csr"); err == nil {
		t.Fatal("download of a missing file succeeded")
	}
	if err := c.DeleteFile(ctx, "/nsconfig/ssl/f.txt"); err != nil {
		t.Fatal(err)
	}
}

func TestSessionModes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := nitrosim.DefaultConfig()
	c, sim := client(t, cfg, nitro.AuthSession)
	sim.ExpireSessions()
	if _, err := c.CertKeys(ctx); err != nil {
		t.Fatalf("re-login after expiry: %v", err)
	}
	h, hsim := client(t, cfg, nitro.AuthHeaders)
	if _, err := h.CertKeys(ctx); err != nil {
		t.Fatalf("header auth: %v", err)
	}
	if hsim.Sessions() != 0 {
		t.Error("header auth opened a session")
	}
	bad := nitro.New(sim.URL(), nitro.Options{HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}, Username: "nsroot", Secret: "bad"}) //nolint:gosec // test
	wantCode(t, "bad login", bad.Login(ctx), nitro.CodeBadLogin)
}

func TestFlexDays(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{"daystoexpiration":12}`, `{"daystoexpiration":"12"}`} {
		var ck nitro.CertKey
		if err := jsonUnmarshal(in, &ck); err != nil || !ck.DaysToExpiration.Set || ck.DaysToExpiration.Value != 12 {
			t.Errorf("%s: %+v %v", in, ck.DaysToExpiration, err)
		}
	}
}
