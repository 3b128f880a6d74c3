package engine

import (
	"crypto/x509"

	"github.com/certfleet/certfleet/core/issuer"
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// newPemdirForTest is the pemdir plugin in-process, for tests that need a device to make CSRs.
func newPemdirForTest() sdk.Plugin { return pemdir.New() }

func issuerResult(leaf *x509.Certificate, ca *conformance.TestCA) issuer.Result {
	return issuer.Result{State: issuer.Issued, CertPEM: sdk.EncodeCertificatePEM(leaf), ChainPEM: ca.ChainPEM()}
}
