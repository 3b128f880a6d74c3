package sdk

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

func keySpecOfPublicKey(pub any) KeySpec {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return KeySpec{Type: KeyTypeRSA, Bits: k.N.BitLen()}
	case *ecdsa.PublicKey:
		return KeySpec{Type: KeyTypeECDSA, Bits: k.Curve.Params().BitSize}
	}
	return KeySpec{}
}

// KeySpecOfCSR returns the key spec of a CSR's public key.
func KeySpecOfCSR(csr *x509.CertificateRequest) KeySpec { return keySpecOfPublicKey(csr.PublicKey) }

// ParseCertificatePEM parses the first CERTIFICATE block of data.
func ParseCertificatePEM(data string) (*x509.Certificate, error) {
	rest := []byte(data)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE block found")
		}
		if block.Type == "CERTIFICATE" {
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse certificate: %w", err)
			}
			return cert, nil
		}
	}
}

// ParseCertificatesPEM parses every CERTIFICATE block of data, in order.
func ParseCertificatesPEM(data string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := []byte(data)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return certs, nil
}

// ParseCSRPEM parses a PEM CERTIFICATE REQUEST (or NEW CERTIFICATE REQUEST) and checks its signature.
func ParseCSRPEM(data string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(data))
	if block == nil {
		return nil, errors.New("no PEM block found in CSR")
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("PEM block is %q, want CERTIFICATE REQUEST", block.Type)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("CSR signature: %w", err)
	}
	return csr, nil
}

// EncodeCertificatePEM returns the PEM form of a certificate.
func EncodeCertificatePEM(cert *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
}

// Fingerprint is the SHA-256 of the DER certificate, hex lower case.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// Describe fills a DeviceCertificate's certificate fields from cert; the caller adds refs and
// bindings. In an Inventory, DescribeFor saves the work when the caller reads only fingerprints.
func Describe(cert *x509.Certificate) DeviceCertificate {
	d := DeviceCertificate{
		Serial:            hex.EncodeToString(cert.SerialNumber.Bytes()),
		Subject:           cert.Subject.String(),
		Issuer:            cert.Issuer.String(),
		NotBefore:         cert.NotBefore,
		NotAfter:          cert.NotAfter,
		KeySpec:           KeySpecOf(cert),
		SHA256Fingerprint: Fingerprint(cert),
		IsCA:              cert.IsCA,
		CertPEM:           EncodeCertificatePEM(cert),
	}
	d.SANs.DNSNames = append(d.SANs.DNSNames, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		d.SANs.IPAddresses = append(d.SANs.IPAddresses, ip.String())
	}
	d.SANs.EmailAddresses = append(d.SANs.EmailAddresses, cert.EmailAddresses...)
	return d
}

// PublicKeysEqual reports whether two public keys are the same key.
func PublicKeysEqual(a, b any) bool {
	type equaler interface{ Equal(x crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}
