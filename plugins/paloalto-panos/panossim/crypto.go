package panossim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"strings"
	"time"
)

// fillRSAPool keeps pool full of fresh RSA-2048 keys until stop closes. Each key is handed out
// once.
func fillRSAPool(pool chan *rsa.PrivateKey, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return
		}
		select {
		case pool <- k:
		case <-stop:
			return
		}
	}
}

// newKey makes a key pair for generate.
func (s *Sim) newKey(algorithm string, bits int) (crypto.Signer, error) {
	switch algorithm {
	case "RSA":
		if bits == 2048 && s.rsaPool != nil {
			select {
			case k := <-s.rsaPool:
				return k, nil
			default:
			}
		}
		return rsa.GenerateKey(rand.Reader, bits)
	case "ECDSA":
		curve := map[int]elliptic.Curve{256: elliptic.P256(), 384: elliptic.P384(), 521: elliptic.P521()}[bits]
		return ecdsa.GenerateKey(curve, rand.Reader)
	}
	return nil, fmt.Errorf("algorithm %s", algorithm)
}

// storeKey keeps key and returns the opaque value a config entry's <private-key> holds. A real
// device stores an encrypted blob there; the simulator stores a random handle, so the key itself
// never appears in any answer.
func (s *Sim) storeKey(key crypto.Signer) (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	handle := "-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + base64.StdEncoding.EncodeToString(b[:]) + "\n-----END ENCRYPTED PRIVATE KEY-----"
	s.privateKeys[handle] = key
	return handle, nil
}

var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

func signatureAlgorithm(algorithm, digest string) (x509.SignatureAlgorithm, bool) {
	rsaAlgs := map[string]x509.SignatureAlgorithm{
		"sha1": x509.SHA1WithRSA, "sha256": x509.SHA256WithRSA, "sha384": x509.SHA384WithRSA, "sha512": x509.SHA512WithRSA,
		"md5": x509.MD5WithRSA,
	}
	ecAlgs := map[string]x509.SignatureAlgorithm{
		"sha1": x509.ECDSAWithSHA1, "sha256": x509.ECDSAWithSHA256, "sha384": x509.ECDSAWithSHA384, "sha512": x509.ECDSAWithSHA512,
	}
	if algorithm == "RSA" {
		a, ok := rsaAlgs[digest]
		return a, ok
	}
	a, ok := ecAlgs[digest]
	return a, ok
}

// opensslTime is the format of not-valid-before/after ("Jun 19 08:36:12 2023 GMT").
func opensslTime(t time.Time) string { return t.UTC().Format("Jan _2 15:04:05 2006 GMT") }

var shortNames = map[string]string{
	"2.5.4.6": "C", "2.5.4.8": "ST", "2.5.4.7": "L", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.3": "CN",
	"1.2.840.113549.1.9.1": "emailAddress", "2.5.4.5": "serialNumber", "2.5.4.9": "street",
}

// oneline renders a name the way OpenSSL's X509_NAME_oneline does: /C=GB/O=Example/CN=host.
func oneline(raw []byte) string {
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &seq); err != nil {
		return ""
	}
	var b strings.Builder
	for _, rdn := range seq {
		for _, atv := range rdn {
			name, ok := shortNames[atv.Type.String()]
			if !ok {
				name = atv.Type.String()
			}
			fmt.Fprintf(&b, "/%s=%v", name, atv.Value)
		}
	}
	return b.String()
}

// nameHash stands in for OpenSSL's subject hash [UNCONFIRMED algorithm; nothing relies on it].
func nameHash(raw []byte) string {
	sum := sha1.Sum(raw)
	return hex.EncodeToString(sum[:4])
}

func algorithmName(pub crypto.PublicKey) string {
	if _, ok := pub.(*ecdsa.PublicKey); ok {
		return "EC"
	}
	return "RSA"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func encodeCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// certificateEntry is the config entry of an installed certificate, without its key: the
// fields describe certs[0], and public-key holds every certificate imported with it, in the order
// imported. How a device shows a chain imported onto an entry is [UNCONFIRMED]; clients should
// read the first certificate of public-key as the entry's own.
func certificateEntry(name string, certs []*x509.Certificate) *node {
	c := certs[0]
	var bundle strings.Builder
	for _, x := range certs {
		bundle.WriteString(encodeCert(x))
	}
	return entry(name,
		leaf("subject-hash", nameHash(c.RawSubject)),
		leaf("issuer-hash", nameHash(c.RawIssuer)),
		leaf("not-valid-before", opensslTime(c.NotBefore)),
		leaf("issuer", oneline(c.RawIssuer)),
		leaf("not-valid-after", opensslTime(c.NotAfter)),
		leaf("common-name", c.Subject.CommonName),
		leaf("expiry-epoch", strconv.FormatInt(c.NotAfter.Unix(), 10)),
		leaf("ca", yesNo(c.IsCA)),
		leaf("subject", oneline(c.RawSubject)),
		leaf("public-key", bundle.String()),
		leaf("algorithm", algorithmName(c.PublicKey)),
	)
}

func sameKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
}

// selfSigned makes a certificate like a factory default: self-signed ECDSA, valid a year.
func selfSigned(cn string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"panossim"}},
		DNSNames: []string{cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, key, err
}

// managementPKI makes a CA and the management interface's certificate for 127.0.0.1/localhost.
func managementPKI() (caPEM string, server tls.Certificate, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", tls.Certificate{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "panossim management CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return "", tls.Certificate{}, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "panossim management"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(2 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return "", tls.Certificate{}, err
	}
	return encodeCert(ca), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func attributeTypeAndValue(oid asn1.ObjectIdentifier, value string) pkix.AttributeTypeAndValue {
	return pkix.AttributeTypeAndValue{Type: oid, Value: value}
}
