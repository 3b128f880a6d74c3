package catransport

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func build(cfg *tls.Config) *http.Transport { return &http.Transport{TLSClientConfig: cfg} }

func TestBundleIsCheckedAtOnce(t *testing.T) {
	for bundle, want := range map[string]string{
		"nope": "tls.ca_bundle: no PEM CERTIFICATE block found",
		"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n": "tls.ca_bundle: parse certificate 1",
	} {
		if _, err := New(bundle, false, build); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bundle %q: got %v, want %q", bundle, err, want)
		}
	}
}

// TestTransportIsMadeOnFirstRequest: nothing is built (no system roots loaded) until a request
// goes out; then the server is verified against the bundle. Without the bundle (the system roots
// alone) the same server is refused, unless verification is turned off.
func TestTransportIsMadeOnFirstRequest(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	bundle := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	rt, err := New(bundle, false, build)
	if err != nil {
		t.Fatal(err)
	}
	l := rt.(*lazy)
	client := &http.Client{Transport: rt}
	client.CloseIdleConnections()
	if l.built.Load() {
		t.Fatal("the transport was made before any request")
	}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !l.built.Load() || l.t.TLSClientConfig.MinVersion != tls.VersionTLS12 {
		t.Fatalf("after a request: built %v", l.built.Load())
	}
	system, err := New("", false, build)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&http.Client{Transport: system}).Get(srv.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server the system roots do not vouch for: got %v", err)
	}
	insecure, err := New("", true, build)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = (&http.Client{Transport: insecure}).Get(srv.URL)
	if err != nil {
		t.Fatalf("verification off: %v", err)
	}
	resp.Body.Close()
}
