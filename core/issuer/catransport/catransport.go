// Package catransport is the HTTP transport of the CA clients (SCM, ACME): TLS 1.2 or later,
// verified against the system's CA roots plus the configured tls.ca_bundle, built on the first
// request. A command that makes no CA call (plan, most steady-state runs) then never loads and
// parses the system's roots (~150 certificates, a few MiB).
package catransport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// New checks caBundlePEM (empty: the system roots alone) and returns a RoundTripper that, on its
// first request, builds its *http.Transport with build from the TLS configuration.
// insecureSkipVerify turns verification off (the user's explicit choice, for one issuer).
func New(caBundlePEM string, insecureSkipVerify bool, build func(*tls.Config) *http.Transport) (http.RoundTripper, error) {
	bundle, err := parseBundle(caBundlePEM)
	if err != nil {
		return nil, err
	}
	return &lazy{make: func() *http.Transport {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecureSkipVerify} //nolint:gosec // the user's explicit choice
		if len(bundle) > 0 {
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			for _, c := range bundle {
				pool.AddCert(c)
			}
			cfg.RootCAs = pool
		}
		return build(cfg)
	}}, nil
}

// parseBundle returns the certificates of a PEM bundle (none for an empty one).
func parseBundle(bundlePEM string) ([]*x509.Certificate, error) {
	if bundlePEM == "" {
		return nil, nil
	}
	certs, err := sdk.ParseCertificatesPEM(bundlePEM)
	if err != nil {
		return nil, fmt.Errorf("tls.ca_bundle: %w", err)
	}
	return certs, nil
}

// lazy is the RoundTripper whose transport is made on the first request.
type lazy struct {
	make  func() *http.Transport
	once  sync.Once
	built atomic.Bool
	t     *http.Transport
}

func (l *lazy) transport() *http.Transport {
	l.once.Do(func() {
		l.t = l.make()
		l.built.Store(true)
	})
	return l.t
}

func (l *lazy) RoundTrip(req *http.Request) (*http.Response, error) {
	return l.transport().RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the transport, if it was made.
func (l *lazy) CloseIdleConnections() {
	if l.built.Load() {
		l.t.CloseIdleConnections()
	}
}
