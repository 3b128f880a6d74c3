package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk/simtls"
)

// holdProxy is an HTTPS reverse proxy in front of a CA simulator that can hold the CA's answer to
// an order request in flight: the request reaches the CA (the order exists), the answer waits in
// the proxy until the test releases it or drops the connection. This is the window in which a
// signal or a kill lands between "the CA placed the order" and "certfleet heard of it".
type holdProxy struct {
	t        *testing.T
	upstream *url.URL
	client   *http.Client
	srv      *http.Server
	ln       net.Listener
	caPEM    string
	isOrder  func(*http.Request) bool

	mu      sync.Mutex
	armed   bool
	held    chan struct{} // receives once per held answer
	release chan bool     // true: deliver the answer; false: drop the connection
}

func startHoldProxy(t *testing.T, upstream, upstreamCAPEM string, isOrder func(*http.Request) bool) *holdProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(upstreamCAPEM))
	caPEM, cert, err := simtls.ServerIdentity("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{t: t, upstream: &url.URL{Scheme: u.Scheme, Host: u.Host}, caPEM: caPEM, ln: ln, isOrder: isOrder,
		client:  &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}},
		held:    make(chan struct{}, 16),
		release: make(chan bool, 16)}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go func() { _ = p.srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		close(p.release)
		_ = p.srv.Close()
	})
	return p
}

// URL maps an upstream URL onto the proxy.
func (p *holdProxy) URL(upstream string) string {
	u, err := url.Parse(upstream)
	if err != nil {
		p.t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// arm makes the proxy hold the next order answers until release or drop.
func (p *holdProxy) arm(on bool) { p.mu.Lock(); p.armed = on; p.mu.Unlock() }

// waitHeld waits until an order's answer is held (the CA has placed the order).
func (p *holdProxy) waitHeld(d time.Duration) bool {
	select {
	case <-p.held:
		return true
	case <-time.After(d):
		return false
	}
}

func (p *holdProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream.String()+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	p.mu.Lock()
	hold := p.armed && p.isOrder(r)
	p.mu.Unlock()
	if hold {
		// The CA must finish the order whatever the client does meanwhile.
		out = out.WithContext(context.WithoutCancel(r.Context()))
	}
	resp, err := p.client.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if hold {
		p.held <- struct{}{}
		if deliver, ok := <-p.release; !ok || !deliver {
			panic(http.ErrAbortHandler) // the connection is cut: the answer is lost
		}
	}
	for k, vs := range resp.Header {
		if strings.EqualFold(k, "Content-Length") {
			continue
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}
