package conformance

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"sync/atomic"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// TestCA is a root → intermediate chain that signs CSRs, for tests of device plugins.
type TestCA struct {
	Root, Intermediate *x509.Certificate
	intermediateKey    crypto.Signer
	serial             atomic.Int64
}

// NewTestCA makes a fresh root and intermediate.
func NewTestCA() (*TestCA, error) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "certfleet conformance root", Organization: []string{"certfleet test"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	root, _ := x509.ParseCertificate(rootDER)
	interTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "certfleet conformance intermediate", Organization: []string{"certfleet test"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	inter, _ := x509.ParseCertificate(interDER)
	ca := &TestCA{Root: root, Intermediate: inter, intermediateKey: interKey}
	ca.serial.Store(time.Now().UnixNano())
	return ca, nil
}

// ChainPEM is the chain above a leaf: intermediate, then root.
func (ca *TestCA) ChainPEM() []string {
	return []string{sdk.EncodeCertificatePEM(ca.Intermediate), sdk.EncodeCertificatePEM(ca.Root)}
}

// SignCSR issues a leaf for the CSR's key and names, valid for validity.
func (ca *TestCA) SignCSR(csrPEM string, validity time.Duration) (*x509.Certificate, error) {
	csr, err := sdk.ParseCSRPEM(csrPEM)
	if err != nil {
		return nil, err
	}
	return ca.Sign(csr.PublicKey, csr.Subject, csr.DNSNames, csr, validity)
}

// Sign issues a leaf for pub with subject and names; csr, when given, supplies IPs and emails.
func (ca *TestCA) Sign(pub any, subject pkix.Name, dnsNames []string, csr *x509.CertificateRequest, validity time.Duration) (*x509.Certificate, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial.Add(1)), Subject: subject, DNSNames: dnsNames,
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if csr != nil {
		tmpl.IPAddresses, tmpl.EmailAddresses = csr.IPAddresses, csr.EmailAddresses
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Intermediate, pub, ca.intermediateKey)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}
