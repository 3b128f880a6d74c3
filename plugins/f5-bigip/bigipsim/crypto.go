package bigipsim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// generateKey makes a key the way "create sys crypto key" does. Once an RSA-2048 key is asked
// for, a few more are generated in the background (each is handed out once), so a series of
// enrollments does not wait on RSA key generation every time.
func (s *Sim) generateKey(keyType string, size int, curve string) (crypto.Signer, error) {
	switch keyType {
	case "rsa-private":
		if size == 2048 && s.cfg.RSAPoolSize > 0 {
			s.poolOnce.Do(func() { close(s.poolDemand) })
			select {
			case k := <-s.rsaPool:
				return k, nil
			default:
			}
		}
		return rsa.GenerateKey(rand.Reader, size)
	case "ec-private":
		switch curve {
		case "prime256v1":
			return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case "secp384r1":
			return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		}
		return nil, fmt.Errorf("unsupported curve %q", curve)
	}
	return nil, fmt.Errorf("unsupported key type %q", keyType)
}

// fillRSAPool waits for the first demand, then keeps a few RSA-2048 keys ready until stop is closed.
func fillRSAPool(pool chan *rsa.PrivateKey, demand, stop <-chan struct{}) {
	select {
	case <-demand:
	case <-stop:
		return
	}
	for {
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

var oidEmail = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// csrSubject is what "create sys crypto csr" puts in the subject.
type csrSubject struct {
	commonName, organization, ou, city, state, country, email string
}

func (c csrSubject) name() pkix.Name {
	one := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	n := pkix.Name{
		CommonName: c.commonName, Organization: one(c.organization), OrganizationalUnit: one(c.ou),
		Locality: one(c.city), Province: one(c.state), Country: one(c.country),
	}
	if c.email != "" {
		n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{Type: oidEmail, Value: c.email})
	}
	return n
}

// parseSANs reads a subject-alternative-name value: "DNS:a, DNS:b, IP:192.0.2.1, email:x@y"
// (OpenSSL syntax; "IP Address:" is accepted as well).
func parseSANs(v string) (dns []string, ips []net.IP, emails []string, err error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil, nil, nil
	}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		kind, val, ok := strings.Cut(part, ":")
		if !ok || val == "" {
			return nil, nil, nil, fmt.Errorf("subject-alternative-name entry %q: want TYPE:value", part)
		}
		switch strings.ToLower(strings.TrimSpace(kind)) {
		case "dns":
			dns = append(dns, val)
		case "ip", "ip address":
			ip := net.ParseIP(val)
			if ip == nil {
				return nil, nil, nil, fmt.Errorf("subject-alternative-name entry %q: not an IP address", part)
			}
			ips = append(ips, ip)
		case "email":
			emails = append(emails, val)
		default:
			return nil, nil, nil, fmt.Errorf("subject-alternative-name entry %q: unsupported type %q", part, kind)
		}
	}
	return dns, ips, emails, nil
}

func makeCSR(key crypto.Signer, sub csrSubject, sans string) (string, error) {
	dns, ips, emails, err := parseSANs(sans)
	if err != nil {
		return "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: sub.name(), DNSNames: dns, IPAddresses: ips, EmailAddresses: emails,
	}, key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// The metadata sys/file/ssl-cert shows, in the device's own formats (genieparser's 14.1.2.1 samples).

var rdnShort = map[string]string{
	"2.5.4.3": "CN", "2.5.4.11": "OU", "2.5.4.10": "O", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.6": "C",
	"1.2.840.113549.1.9.1": "emailAddress", "2.5.4.5": "serialNumber", "2.5.4.9": "street",
}

// formatDN writes a name most specific first: "emailAddress=..,CN=..,OU=..,O=..,L=..,ST=..,C=..".
func formatDN(raw []byte) string {
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &seq); err != nil {
		return ""
	}
	var parts []string
	for i := len(seq) - 1; i >= 0; i-- {
		for _, atv := range seq[i] {
			key := rdnShort[atv.Type.String()]
			if key == "" {
				key = atv.Type.String()
			}
			parts = append(parts, key+"="+escapeDN(fmt.Sprint(atv.Value)))
		}
	}
	return strings.Join(parts, ",")
}

func escapeDN(v string) string {
	var b strings.Builder
	for _, r := range v {
		if strings.ContainsRune(`,+"\<>;`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// formatSerial: decimal when the serial fits a signed 64-bit integer, else colon hex (as OpenSSL
// prints it, and as the device shows it: "308384129", "87:ae:02:f9:18:f9:4a:11").
func formatSerial(n *big.Int) string {
	if n.BitLen() <= 63 {
		return n.String()
	}
	b := n.Bytes()
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

func formatSANs(c *x509.Certificate) string {
	var parts []string
	for _, d := range c.DNSNames {
		parts = append(parts, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		parts = append(parts, "IP Address:"+ip.String())
	}
	for _, e := range c.EmailAddresses {
		parts = append(parts, "email:"+e)
	}
	return strings.Join(parts, ", ")
}

func formatFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	parts := make([]string, len(sum))
	for i, x := range sum {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return "SHA256/" + strings.Join(parts, ":")
}

func publicKeyInfo(pub any) (keyType string, size int, curve string) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "rsa-public", k.N.BitLen(), "none"
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ec-public", 256, "prime256v1"
		case elliptic.P384():
			return "ec-public", 384, "secp384r1"
		case elliptic.P521():
			return "ec-public", 521, "secp521r1"
		}
	}
	return "unknown", 0, "none"
}

func publicKeysMatch(cert *x509.Certificate, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := cert.PublicKey.(equaler)
	return ok && e.Equal(key.Public())
}

// managementPKI makes the CA and server certificate of the management interface.
func managementPKI() (caPEM string, server tls.Certificate, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", tls.Certificate{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "bigipsim management CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return "", tls.Certificate{}, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", tls.Certificate{}, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano() + 1), Subject: pkix.Name{CommonName: "bigipsim"},
		DNSNames: []string{"localhost", "bigipsim"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, srvKey.Public(), caKey)
	if err != nil {
		return "", tls.Certificate{}, err
	}
	caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
	return caPEM, tls.Certificate{Certificate: [][]byte{srvDER, caDER}, PrivateKey: srvKey}, nil
}

// selfSigned makes the factory default.crt/default.key pair.
func selfSigned(cn string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	cert, err := selfSignedWith(key, cn, 10*365*24*time.Hour)
	return cert, key, err
}

// selfSignedWith makes a self-signed certificate for key.
func selfSignedWith(key crypto.Signer, cn string, lifetime time.Duration) (*x509.Certificate, error) {
	now := time.Now()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"MyCompany"}},
		DNSNames: []string{cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(lifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
