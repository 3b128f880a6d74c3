package paloaltopanos

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// The file imported onto the entry is the leaf followed by the intermediates that lead to the
// root, in that order, whatever order the CA gave them in; the root and strangers stay out.
func TestIntermediatesOf(t *testing.T) {
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	other, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Sign(key.Public(), pkix.Name{CommonName: "leaf.example"}, []string{"leaf.example"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got := intermediatesOf(leaf, []*x509.Certificate{ca.Root, other.Intermediate, leaf, ca.Intermediate})
	if len(got) != 1 || !got[0].Equal(ca.Intermediate) {
		t.Errorf("got %d certificates, want the intermediate alone", len(got))
	}
	if got := intermediatesOf(leaf, nil); len(got) != 0 {
		t.Errorf("no chain: got %d", len(got))
	}
}
