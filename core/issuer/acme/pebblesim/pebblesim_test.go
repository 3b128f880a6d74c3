package pebblesim_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer/acme/pebblesim"
)

// TestLatencyDelaysEveryRequest: certfleet-sim --latency slows the ACME CA too. Only a lower
// bound is asserted, and that each request was counted.
func TestLatencyDelaysEveryRequest(t *testing.T) {
	const latency = 60 * time.Millisecond
	p, err := pebblesim.Start(pebblesim.Config{Latency: latency})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(p.TLSCACertPEM())) {
		t.Fatal("TLS CA not PEM")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	get := func() time.Duration {
		t.Helper()
		start := time.Now()
		resp, err := client.Get(p.DirectoryURL())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("directory: %s", resp.Status)
		}
		return time.Since(start)
	}
	for i := 0; i < 2; i++ {
		if took := get(); took < latency {
			t.Errorf("directory request %d took %s with latency %s", i, took, latency)
		}
	}
	p.SetLatency(0)
	get()
	if n := p.Requests(); n != 3 {
		t.Errorf("Requests() = %d after 3 requests", n)
	}
}
