package engine

import (
	"testing"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// FuzzVerifyPEM feeds arbitrary text to every PEM/CSR parser the core trusts with a device's or a
// CA's answer: the CSR check, the issued-chain check and the SDK's certificate and CSR readers.
// None may panic, and nothing malformed may pass as the requested CSR.
func FuzzVerifyPEM(f *testing.F) {
	ca, err := conformance.NewTestCA()
	if err != nil {
		f.Fatal(err)
	}
	c := testCert()
	f.Add(ca.ChainPEM()[0])
	f.Add("-----BEGIN CERTIFICATE REQUEST-----\nMIIBAA==\n-----END CERTIFICATE REQUEST-----\n")
	f.Add("-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----")
	f.Add("")
	f.Add("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	f.Fuzz(func(t *testing.T, text string) {
		if verifyCSR(text, c) == nil {
			csr, err := sdk.ParseCSRPEM(text)
			if err != nil || csr.CheckSignature() != nil {
				t.Fatalf("verifyCSR accepted what is not a valid CSR: %v", err)
			}
		}
		_ = verifyIssued(issuer.Result{State: issuer.Issued, CertPEM: text, ChainPEM: []string{text}}, text, c)
		_, _ = sdk.ParseCertificatePEM(text)
		_, _ = sdk.ParseCertificatesPEM(text)
		_, _ = sdk.ParseCSRPEM(text)
	})
}
