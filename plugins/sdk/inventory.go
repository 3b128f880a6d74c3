package sdk

import (
	"context"
	"crypto/x509"
)

type omitCertPEMKey struct{}

// WithoutCertPEM returns ctx for an Inventory call whose caller needs no certificate bodies
// (DeviceCertificate.CertPEM), only the fields that describe them: the core in the steady state,
// which compares fingerprints and bindings. The flag crosses the process boundary as
// InventoryRequest.omit_cert_pem; the SDK then leaves the bodies off the answer, and a plugin may
// save reading or encoding them (CertPEMWanted, DescribeFor). A plugin that ignores it is still
// right.
func WithoutCertPEM(ctx context.Context) context.Context {
	return context.WithValue(ctx, omitCertPEMKey{}, true)
}

// CertPEMWanted reports whether the caller of the Inventory call ctx belongs to wants
// DeviceCertificate.CertPEM filled: true unless it asked otherwise (WithoutCertPEM).
func CertPEMWanted(ctx context.Context) bool {
	omit, _ := ctx.Value(omitCertPEMKey{}).(bool)
	return !omit
}

// DescribeFor is Describe for an Inventory call: it leaves CertPEM empty, and saves encoding
// it, when the caller wants no certificate bodies (CertPEMWanted).
func DescribeFor(ctx context.Context, cert *x509.Certificate) DeviceCertificate {
	return describe(cert, CertPEMWanted(ctx))
}
