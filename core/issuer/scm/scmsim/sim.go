// Package scmsim is a Sectigo Certificate Manager simulator: a real HTTPS server speaking the SSL
// REST API as ../shared/reference/scm-api.md documents it (OAuth2 token endpoint, legacy header
// and bearer auth, profiles, custom fields, enroll, collect in every PEM-capable format, details,
// list, revoke, renewById, replace), validating as SCM does and issuing real certificates from a
// test root → intermediate chain. It records every order so tests can count them, and injects
// faults: latency, bursts of 5xx/429, token expiry, lost enroll responses, approval that never
// comes, declined and out-of-band revoked orders.
package scmsim

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/certfleet/certfleet/plugins/sdk/simtls"
)

// Profile is an SSL certificate profile ("certType").
type Profile struct {
	ID       int                 `json:"id"`
	Name     string              `json:"name"`
	Terms    []int               `json:"terms"`
	KeyTypes map[string][]string `json:"keyTypes"`
}

// CustomField is an organization's custom field.
type CustomField struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	Mandatory bool   `json:"mandatory"`
}

// LegacyUser logs in with the login/password/customerUri headers.
type LegacyUser struct {
	Login, Password, CustomerURI string
}

// Config of a simulator.
type Config struct {
	OrgIDs       []int
	Profiles     []Profile
	CustomFields []CustomField
	// Clients are OAuth2 client ids and secrets.
	Clients map[string]string
	Users   []LegacyUser
	// TokenLifetime of access tokens (expires_in).
	TokenLifetime time.Duration
	// PendingCollects is how many collects answer "being processed" before an order issues.
	PendingCollects int
	// PendingCode is the code of that answer (0, -183 or -1400; the reference cannot say which
	// one a tenant returns, so it is configurable). UNCONFIRMED.
	PendingCode int
	// Validity overrides the term (days) when set, for tests of renewal windows.
	Validity time.Duration
}

// DefaultConfig has one organization, two profiles, one optional custom field, an OAuth2 client
// and a legacy user.
func DefaultConfig() Config {
	return Config{
		OrgIDs: []int{1234},
		Profiles: []Profile{
			{ID: 101, Name: "OV SSL", Terms: []int{365, 730}, KeyTypes: map[string][]string{"RSA": {"2048", "3072", "4096"}, "EC": {"P-256", "P-384"}}},
			{ID: 102, Name: "EV SSL", Terms: []int{365}, KeyTypes: map[string][]string{"RSA": {"2048", "4096"}}},
		},
		CustomFields:    []CustomField{{ID: 54, Name: "cost-center", Mandatory: false}},
		Clients:         map[string]string{"certfleet-sim": "certfleet-sim-client-secret"},
		Users:           []LegacyUser{{Login: "api-user", Password: "api-user-sim-password", CustomerURI: "simcorp"}},
		TokenLifetime:   5 * time.Minute,
		PendingCollects: 1,
	}
}

// Order is one enrollment, as recorded.
type Order struct {
	ID                int
	RenewID           string
	OrgID             int
	CertType          int
	Term              int
	CommonName        string
	SANs              []string
	Comments          string
	ExternalRequester string
	CustomFields      map[string]string
	Status            string // Requested, Issued, Declined, Revoked, Replaced
	Requested         time.Time
	CSR               *x509.CertificateRequest
	Cert              *x509.Certificate
	Collects          int
	RevokeReason      int
}

// Server is a running simulator.
type Server struct {
	cfg      Config
	ca       *conformance.TestCA
	tlsCAPEM string
	tlsCert  tls.Certificate
	srv      *http.Server
	ln       net.Listener

	mu             sync.Mutex
	orders         map[int]*Order
	nextID         int
	tokens         map[string]time.Time
	latency        time.Duration
	failNext       int
	failStatus     int
	retryAfter     int
	loseEnroll     int
	pendingForever bool
	requests       int
}

// New builds a simulator; Start serves it.
func New(cfg Config) (*Server, error) {
	ca, err := conformance.NewTestCA()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, ca: ca, orders: map[int]*Order{}, nextID: 1000, tokens: map[string]time.Time{}}
	if s.tlsCAPEM, s.tlsCert, err = simtls.ServerIdentity("scmsim TLS root"); err != nil {
		return nil, err
	}
	return s, nil
}

// Start listens on addr (e.g. "127.0.0.1:0") with TLS.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("scm simulator listen %s: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{s.tlsCert}, MinVersion: tls.VersionTLS12}}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	return nil
}

// Close stops the server.
func (s *Server) Close() {
	if s.srv != nil {
		_ = s.srv.Close()
	}
}

// URL is the API base, ending in /api/.
func (s *Server) URL() string { return "https://" + s.ln.Addr().String() + "/api/" }

// TokenURL is the OAuth2 token endpoint.
func (s *Server) TokenURL() string {
	return "https://" + s.ln.Addr().String() + "/auth/realms/apiclients/protocol/openid-connect/token"
}

// TLSCACertPEM is the CA of the server's HTTPS certificate.
func (s *Server) TLSCACertPEM() string { return s.tlsCAPEM }

// RootPEM is the root of the certificates the simulator issues.
func (s *Server) RootPEM() string { return sdkPEM(s.ca.Root) }

// Config returns the configuration it runs with.
func (s *Server) Config() Config { return s.cfg }

// Orders returns a copy of every order, oldest first.
func (s *Server) Orders() []Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Order, 0, len(s.orders))
	for id := 1000; id < s.nextID; id++ {
		if o, ok := s.orders[id]; ok {
			out = append(out, *o)
		}
	}
	return out
}

// Requests counts the API requests served (token requests included).
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// SetLatency delays every answer.
func (s *Server) SetLatency(d time.Duration) { s.mu.Lock(); s.latency = d; s.mu.Unlock() }

// FailNext answers the next n API requests with status (500, 503, 429...); retryAfter > 0 adds a
// Retry-After header in seconds.
func (s *Server) FailNext(n, status, retryAfter int) {
	s.mu.Lock()
	s.failNext, s.failStatus, s.retryAfter = n, status, retryAfter
	s.mu.Unlock()
}

// ExpireTokens makes every access token issued so far invalid.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	s.tokens = map[string]time.Time{}
	s.mu.Unlock()
}

// LoseNextEnrollResponses records the next n orders but cuts the connection before answering.
func (s *Server) LoseNextEnrollResponses(n int) { s.mu.Lock(); s.loseEnroll = n; s.mu.Unlock() }

// PendingForever keeps every order waiting for approval while on.
func (s *Server) PendingForever(on bool) { s.mu.Lock(); s.pendingForever = on; s.mu.Unlock() }

// Decline marks an order declined, as an administrator would.
func (s *Server) Decline(id int) error { return s.setStatus(id, "Declined") }

// RevokeOutOfBand revokes an order's certificate behind certfleet's back.
func (s *Server) RevokeOutOfBand(id int) error { return s.setStatus(id, "Revoked") }

func (s *Server) setStatus(id int, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return fmt.Errorf("no order %d", id)
	}
	o.Status = status
	return nil
}

func sdkPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
