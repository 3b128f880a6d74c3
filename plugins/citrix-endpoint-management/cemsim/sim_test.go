package cemsim_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/cemsim"
	"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/xms"
	"software.sslmate.com/src/go-pkcs12"
)

func start(t *testing.T, cfg cemsim.Config) (*cemsim.Sim, *xms.Client) {
	t.Helper()
	sim, err := cemsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(sim.CACertPEM()))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	return sim, xms.New(sim.URL(), hc)
}

func keystore(t *testing.T, password string) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "sim.example.test"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p12, err := pkcs12.Legacy.Encode(key, cert, nil, password)
	if err != nil {
		t.Fatal(err)
	}
	return p12
}

func apiStatus(err error) (int, int) {
	var e *xms.Error
	if errors.As(err, &e) {
		return e.HTTPStatus, e.Status
	}
	return 0, 0
}

func TestSimRules(t *testing.T) {
	ctx := context.Background()
	cfg := cemsim.DefaultConfig()
	sim, c := start(t, cfg)

	if _, err := c.List(ctx); err == nil {
		t.Error("list without a session succeeded; every call needs auth_token")
	}
	if err := c.Login(ctx, cfg.Username, "wrong"); err == nil {
		t.Error("a wrong password logged in")
	} else if h, _ := apiStatus(err); h != http.StatusUnauthorized {
		t.Errorf("bad login: HTTP %d, want 401", h)
	}
	if err := c.Login(ctx, cfg.Username, cfg.Password); err != nil {
		t.Fatal(err)
	}
	if cloud, err := c.Environment(ctx); err != nil || cloud {
		t.Errorf("on premises, GET /environment: cloud=%v err=%v", cloud, err)
	}

	p12 := keystore(t, "right")
	err := c.ImportKeystore(ctx, xms.RoleServer, p12, "wrong", "x")
	if _, st := apiStatus(err); st == 0 {
		t.Errorf("a keystore with the wrong password was imported: %v", err)
	}
	if err := c.ImportKeystore(ctx, xms.RoleServer, p12, "right", "first"); err != nil {
		t.Fatal(err)
	}
	// One certificate per public key (SEED): refused by default.
	if err := c.ImportKeystore(ctx, xms.RoleListener, p12, "right", "second"); err == nil {
		t.Error("a second certificate for the same key was accepted in refuse mode")
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 1 || list[0].Description != "first" || !bool(list[0].PrivateKey) {
		t.Fatalf("list: %+v %v", list, err)
	}
	if list[0].CertDetails.SerialNum != "42" {
		t.Errorf("serialNum %q, want decimal 42", list[0].CertDetails.SerialNum)
	}
	if _, err := c.Export(ctx, int64(list[0].ID), "", true); err == nil {
		t.Error("exporting the key without a password succeeded")
	}
	if err := c.Delete(ctx, 999999); err == nil {
		t.Error("deleting an unknown id succeeded")
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sim.ActiveSessions(); n != 0 {
		t.Errorf("%d sessions after logout", n)
	}
}
