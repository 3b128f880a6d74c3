package acme

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// letsEncrypt2021Chains builds the two chains Let's Encrypt offered from 2021 (the case behind
// certbot#8577): the default leaf ← R3 ← "ISRG Root X1" cross-signed by "DST Root CA X3", and
// the alternate leaf ← R3, whose topmost certificate is issued by "ISRG Root X1".
func letsEncrypt2021Chains(t *testing.T) (long, short []*x509.Certificate) {
	t.Helper()
	serial := int64(0)
	mk := func(cn string, key *ecdsa.PrivateKey, issuerCert *x509.Certificate, issuerKey *ecdsa.PrivateKey, isCA bool) *x509.Certificate {
		serial++
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: isCA, BasicConstraintsValid: true,
		}
		parent, signer := tmpl, key
		if issuerCert != nil {
			parent, signer = issuerCert, issuerKey
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	dstKey, isrgKey, r3Key, leafKey := newKey(), newKey(), newKey(), newKey()
	dst := mk("DST Root CA X3", dstKey, nil, nil, true)
	isrg := mk("ISRG Root X1", isrgKey, nil, nil, true)
	isrgCross := mk("ISRG Root X1", isrgKey, dst, dstKey, true)
	r3 := mk("R3", r3Key, isrg, isrgKey, true)
	leaf := mk("www.example.com", leafKey, r3, r3Key, false)
	return []*x509.Certificate{leaf, r3, isrgCross}, []*x509.Certificate{leaf, r3}
}

// TestPreferredChainIsTheTopmostIssuer: preferred_chain names the issuer of the chain's topmost
// certificate, as in certbot and lego. Asking for "ISRG Root X1" must give the short chain,
// although the default chain carries a certificate whose subject is "ISRG Root X1".
func TestPreferredChainIsTheTopmostIssuer(t *testing.T) {
	long, short := letsEncrypt2021Chains(t)
	chains := [][]*x509.Certificate{long, short}
	for _, tc := range []struct {
		preferred string
		want      []*x509.Certificate
		found     bool
	}{
		{"ISRG Root X1", short, true},
		{"DST Root CA X3", long, true},
		{"R3", long, false}, // an intermediate's name is no chain name: the CA's default
		{"", long, false},
	} {
		got, found := pickChain(chains, tc.preferred)
		if len(got) != len(tc.want) || found != tc.found {
			t.Errorf("preferred %q: got a chain of %d certificates (found %v), want %d (found %v)",
				tc.preferred, len(got), found, len(tc.want), tc.found)
		}
	}
}
