package sdk

import (
	"context"
	"crypto/x509"
)

type fingerprintsOnlyKey struct{}

// WithFingerprintsOnly returns ctx for an Inventory call whose caller reads only CertRef,
// SHA256Fingerprint and Bindings of each certificate: the core in the steady state, checking
// that what it deployed is still there and bound. The flag crosses the process boundary as
// InventoryRequest.fingerprints_only; the SDK then sends only those fields, and a plugin may save
// the work of filling the others (FingerprintsOnly, DescribeFor), but lists the same
// certificates. A plugin that ignores the flag is still right.
func WithFingerprintsOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, fingerprintsOnlyKey{}, true)
}

// FingerprintsOnly reports whether the caller of the Inventory call ctx belongs to reads only
// CertRef, SHA256Fingerprint and Bindings (WithFingerprintsOnly).
func FingerprintsOnly(ctx context.Context) bool {
	only, _ := ctx.Value(fingerprintsOnlyKey{}).(bool)
	return only
}

// DescribeFor is Describe for an Inventory call: when the caller reads only fingerprints
// (FingerprintsOnly), it fills SHA256Fingerprint alone and saves writing names and encoding PEM.
func DescribeFor(ctx context.Context, cert *x509.Certificate) DeviceCertificate {
	if FingerprintsOnly(ctx) {
		return DeviceCertificate{SHA256Fingerprint: Fingerprint(cert)}
	}
	return Describe(cert)
}

// fingerprintsOnly is what a caller that reads only fingerprints gets of c.
func fingerprintsOnly(c DeviceCertificate) DeviceCertificate {
	return DeviceCertificate{CertRef: c.CertRef, SHA256Fingerprint: c.SHA256Fingerprint, Bindings: c.Bindings}
}
