package main

import (
	"crypto/x509"
	"os"
	"os/exec"
	"testing"
)

// The OCI image has no /etc/ssl: certfleet brings CA roots of its own for the CAs' and devices'
// TLS (x509roots/fallback), used only where the host has none.
func TestCARootsWhereTheHostHasNone(t *testing.T) {
	if os.Getenv("CERTFLEET_TEST_NO_HOST_ROOTS") == "1" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			t.Fatal(err)
		}
		if pool.Equal(x509.NewCertPool()) {
			t.Fatal("no CA roots where the host has none")
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCARootsWhereTheHostHasNone$", "-test.count=1")
	// Go reads only these when they are set: a host without roots.
	cmd.Env = append(os.Environ(), "CERTFLEET_TEST_NO_HOST_ROOTS=1", "SSL_CERT_FILE=/nonexistent", "SSL_CERT_DIR=/nonexistent")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
