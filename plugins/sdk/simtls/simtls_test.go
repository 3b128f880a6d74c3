package simtls

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestClientsVerifyTheServerWithTheCA(t *testing.T) {
	caPEM, cert, err := ServerIdentity("test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(caPEM))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("a client trusting the CA cannot connect: %v", err)
	}
	resp.Body.Close()
	other, _, _ := ServerIdentity("other CA")
	pool2 := x509.NewCertPool()
	pool2.AppendCertsFromPEM([]byte(other))
	client2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool2}}}
	if _, err := client2.Get(srv.URL); err == nil {
		t.Fatal("a client trusting another CA connected")
	}
}
