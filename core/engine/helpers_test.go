package engine

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/scm"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/core/state"
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// newPemdirForTest is the pemdir plugin in-process, for tests that need a device to make CSRs.
func newPemdirForTest() sdk.Plugin { return pemdir.New() }

func issuerResult(leaf *x509.Certificate, ca *conformance.TestCA) issuer.Result {
	return issuer.Result{State: issuer.Issued, CertPEM: sdk.EncodeCertificatePEM(leaf), ChainPEM: ca.ChainPEM()}
}

// scmWorld starts an SCM simulator with cfg and returns an issuer "ca" for it, a new state
// database and a pemdir device directory "web1", all removed when the test ends.
func scmWorld(t *testing.T, cfg scmsim.Config) (*scmsim.Server, *scm.Issuer, *state.SQLite, string) {
	t.Helper()
	sim, err := scmsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	iss, err := scm.New(scm.Config{Name: "ca", BaseURL: sim.URL(), TokenURL: sim.TokenURL(), OrgID: 1234, CABundlePEM: sim.TLSCACertPEM(),
		ClientID: "certfleet-sim", ClientSecret: cfg.Clients["certfleet-sim"]})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store, err := state.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	device := filepath.Join(dir, "web1")
	if err := os.Mkdir(device, 0o700); err != nil {
		t.Fatal(err)
	}
	return sim, iss, store, device
}
