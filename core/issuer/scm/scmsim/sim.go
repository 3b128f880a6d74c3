// Package scmsim is a Sectigo Certificate Manager simulator: real HTTPS servers speaking SCM's
// APIs as ../shared/reference/scm-api.md and docs/reference-notes/scm.md document them, each on
// its own host (port), as the real service does:
//   - the Admin API (https://admin.{instance}.sectigo.com/api/, OAuth2 bearer only),
//   - the legacy SSL API (https://cert-manager.com/api/, login/password/customerUri headers only),
//   - the REST Enrollment API of a REST account (https://{customer}.enroll.{instance}.sectigo.com,
//     /api/v1/certificates, bearer tokens of REST accounts only),
//
// with an OAuth2 token endpoint. It validates as SCM does, issues real certificates from a test
// root → intermediate chain, records every order so tests can count them, counts calls per
// endpoint, and injects faults: latency, bursts of 5xx/429, token expiry, lost enroll responses,
// approval that never comes, declined and out-of-band revoked orders.
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
	"slices"
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
	// OrgIDs limits the profile to these organizations (none: every organization). GET
	// /ssl/v1/types takes an organizationId filter (DOC25 "List SSL types"), so profiles can differ
	// per organization; two organizations may hold profiles of the same name.
	OrgIDs []int `json:"-"`
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

// EnrollAccount is a REST account of an SSL enrollment endpoint (Enrollment → REST → Accounts):
// the endpoint fixes the organization, the profile and the term; the client only sends a CSR and a
// few fields (docs.sectigo.com "Understanding REST endpoints"; ENR SslEnrollRequest).
type EnrollAccount struct {
	Secret    string
	OrgID     int
	ProfileID int
	// Term in days; zero: the profile's longest term.
	Term int
}

// Config of a simulator.
type Config struct {
	OrgIDs       []int
	Profiles     []Profile
	CustomFields []CustomField
	// Clients are Admin API OAuth2 client ids and secrets.
	Clients map[string]string
	Users   []LegacyUser
	// EnrollAccounts are REST Enrollment accounts by client id.
	EnrollAccounts map[string]EnrollAccount
	// TokenLifetime of access tokens (expires_in).
	TokenLifetime time.Duration
	// PendingCollects is how many collects answer "being processed" before an order issues.
	PendingCollects int
	// PendingCode is the code of that answer on the Admin/legacy API (0, -183, -1400, -103, -109:
	// every one is reported by a source, none says which a tenant returns). UNCONFIRMED.
	PendingCode int
	// PendingHTTPStatus is the HTTP status of that answer: 400 (osg-pki-tools, hm-edu, python
	// cert_manager tests) or 404 (the Admin OpenAPI lists both for collect). UNCONFIRMED; 400 when zero.
	PendingHTTPStatus int
	// EnrollPendingCode is the code of a REST Enrollment download while pending: ENR documents
	// "404 ... code -103 or -109"; -103 when zero.
	EnrollPendingCode int
	// AdminAcceptsHeaderLogin lets the Admin API host take the legacy login headers too. Sectigo's
	// Admin API getting-started page pairs OAuth2 with admin.{instance}.sectigo.com and header
	// login with cert-manager.com; whether the admin host refuses headers is UNCONFIRMED (off:
	// it refuses them).
	AdminAcceptsHeaderLogin bool
	// EnrollAcceptsPEMCSR lets the Enrollment API take a PEM CSR with BEGIN/END lines. ENR says
	// "single line Base64 PKCS#10" and ENRDOC "no BEGIN/END lines"; whether the service refuses
	// PEM is UNCONFIRMED (off: it refuses it).
	EnrollAcceptsPEMCSR bool
	// AuthorizationURI overrides the authorization_uri a 401 names (tests of where a client
	// sends its secret).
	AuthorizationURI string
	// ListClampsSize makes GET /ssl/v1 answer a size over 200 with 200 entries instead of
	// refusing it: the Admin OpenAPI bounds size at 200, what SCM does beyond is UNCONFIRMED.
	ListClampsSize bool
	// Validity overrides the term (days) when set, for tests of renewal windows.
	Validity time.Duration
	// Now is the simulator's clock (time.Now when nil); it sets the longest public term.
	Now func() time.Time
}

// PublicTermLimit is the longest term in days a public TLS profile allows on date: 199 since SCM
// 26.1 (Sectigo KB "Update SSL certificate profiles to a 199-day validity period"; CA/B Forum
// ballot SC-081: 200 days from 2026-03-15), 100 from 2027-03-15 and 47 from 2029-03-15 (SC-081).
func PublicTermLimit(date time.Time) int {
	switch {
	case !date.Before(time.Date(2029, 3, 15, 0, 0, 0, 0, time.UTC)):
		return 47
	case !date.Before(time.Date(2027, 3, 15, 0, 0, 0, 0, time.UTC)):
		return 100
	case !date.Before(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)):
		return 199
	}
	return 398
}

// DefaultConfig has two organizations, three profiles (public OV and EV limited to today's
// longest public term, and an OV profile of the other organization with the same name), one
// optional custom field, an Admin OAuth2 client, a legacy user and a REST Enrollment account.
func DefaultConfig() Config {
	limit := PublicTermLimit(time.Now())
	return Config{
		OrgIDs: []int{1234, 5678},
		Profiles: []Profile{
			{ID: 101, Name: "OV SSL", Terms: []int{90, limit}, KeyTypes: map[string][]string{"RSA": {"2048", "3072", "4096"}, "EC": {"P-256", "P-384"}}, OrgIDs: []int{1234}},
			{ID: 102, Name: "EV SSL", Terms: []int{limit}, KeyTypes: map[string][]string{"RSA": {"2048", "4096"}}, OrgIDs: []int{1234}},
			{ID: 201, Name: "OV SSL", Terms: []int{limit}, KeyTypes: map[string][]string{"RSA": {"2048"}}, OrgIDs: []int{5678}},
		},
		CustomFields:    []CustomField{{ID: 54, Name: "cost-center", Mandatory: false}},
		Clients:         map[string]string{"certfleet-sim": "certfleet-sim-client-secret"},
		Users:           []LegacyUser{{Login: "api-user", Password: "api-user-sim-password", CustomerURI: "simcorp"}},
		EnrollAccounts:  map[string]EnrollAccount{"certfleet-sim-rest": {Secret: "certfleet-sim-rest-secret", OrgID: 1234, ProfileID: 101}},
		TokenLifetime:   5 * time.Minute,
		PendingCollects: 1,
	}
}

// Order is one enrollment, as recorded.
type Order struct {
	ID int
	// CertID is the order's id on the REST Enrollment API (empty for Admin API orders).
	CertID            string
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
	RequestedVia      string
	CSR               *x509.CertificateRequest
	Cert              *x509.Certificate
	Collects          int
	RevokeReason      int
	RevokeMessage     string
}

// surface is one of the simulated hosts; each accepts only its own credentials and paths.
type surface int

const (
	adminAPI surface = iota
	legacyAPI
	enrollAPI
)

// Server is a running simulator.
type Server struct {
	cfg      Config
	ca       *conformance.TestCA
	tlsCAPEM string
	tlsCert  tls.Certificate
	servers  []*http.Server
	lns      map[surface]net.Listener

	mu             sync.Mutex
	orders         map[int]*Order
	nextID         int
	tokens         map[string]token
	latency        time.Duration
	failNext       int
	failStatus     int
	retryAfter     int
	loseEnroll     int
	pendingForever bool
	requests       int
	calls          map[string]int
	proxyPages     int
	proxyStatus    int
}

// token is an issued access token and whose it is.
type token struct {
	expires time.Time
	enroll  bool // a REST Enrollment account's token (else an Admin API client's)
	client  string
}

// New builds a simulator; Start serves it.
func New(cfg Config) (*Server, error) {
	ca, err := conformance.NewTestCA()
	if err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, ca: ca, orders: map[int]*Order{}, nextID: 1000, tokens: map[string]token{}, calls: map[string]int{},
		lns: map[surface]net.Listener{}}
	if s.tlsCAPEM, s.tlsCert, err = simtls.ServerIdentity("scmsim TLS root"); err != nil {
		return nil, err
	}
	return s, nil
}

// Start serves the Admin API (and the token endpoint) on addr (e.g. "127.0.0.1:0") and the
// legacy and REST Enrollment APIs on further ports of the same host, all with TLS.
func (s *Server) Start(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("scm simulator address %s: %w", addr, err)
	}
	for _, sf := range []surface{adminAPI, legacyAPI, enrollAPI} {
		a := addr
		if sf != adminAPI {
			a = net.JoinHostPort(host, "0")
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			s.Close()
			return fmt.Errorf("scm simulator listen %s: %w", a, err)
		}
		s.lns[sf] = ln
		srv := &http.Server{Handler: s.handler(sf), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{s.tlsCert}, MinVersion: tls.VersionTLS12}}
		s.servers = append(s.servers, srv)
		go func() { _ = srv.ServeTLS(ln, "", "") }()
	}
	return nil
}

// Close stops the servers.
func (s *Server) Close() {
	for _, srv := range s.servers {
		_ = srv.Close()
	}
}

// URL is the Admin API base (OAuth2), ending in /api/.
func (s *Server) URL() string { return "https://" + s.lns[adminAPI].Addr().String() + "/api/" }

// LegacyURL is the legacy SSL API base (header login), ending in /api/.
func (s *Server) LegacyURL() string { return "https://" + s.lns[legacyAPI].Addr().String() + "/api/" }

// EnrollURL is the REST Enrollment endpoint's URL as SCM shows it (Enrollment → REST → URL).
func (s *Server) EnrollURL() string { return "https://" + s.lns[enrollAPI].Addr().String() }

// TokenURL is the OAuth2 token endpoint.
func (s *Server) TokenURL() string {
	return "https://" + s.lns[adminAPI].Addr().String() + "/auth/realms/apiclients/protocol/openid-connect/token"
}

// TLSCACertPEM is the CA of the server's HTTPS certificate.
func (s *Server) TLSCACertPEM() string { return s.tlsCAPEM }

// RootPEM is the root of the certificates the simulator issues.
func (s *Server) RootPEM() string { return sdkPEM(s.ca.Root) }

// Config returns the configuration it runs with.
func (s *Server) Config() Config { return s.cfg }

// Calls counts the requests served per route, e.g. "GET /api/ssl/v1/{id}".
func (s *Server) Calls(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[route]
}

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

// ProxyPageNext answers the next n API requests with status and an HTML page, as a proxy or
// load balancer in front of SCM does; the body carries no SCM error code.
func (s *Server) ProxyPageNext(n, status int) {
	s.mu.Lock()
	s.proxyPages, s.proxyStatus = n, status
	s.mu.Unlock()
}

// ExpireTokens makes every access token issued so far invalid.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	s.tokens = map[string]token{}
	s.mu.Unlock()
}

// LoseNextEnrollResponses records the next n orders but cuts the connection before answering.
func (s *Server) LoseNextEnrollResponses(n int) { s.mu.Lock(); s.loseEnroll = n; s.mu.Unlock() }

// PendingForever keeps every order waiting for approval while on.
func (s *Server) PendingForever(on bool) { s.mu.Lock(); s.pendingForever = on; s.mu.Unlock() }

// addOrderLocked records a new Admin API order, as enroll does: the next SSL id, a renewId,
// Requested (the first collects issue it). s.mu must be held.
func (s *Server) addOrderLocked(o *Order) *Order {
	o.ID, o.RenewID, o.Status, o.Requested, o.RequestedVia = s.nextID, randomID(10), "Requested", time.Now(), "REST API"
	s.orders[o.ID] = o
	s.nextID++
	return o
}

// PlaceOrders records n Admin API orders of csr in organization org with profile's longest term,
// as n enroll requests would, and returns their SSL ids: a tenant that already holds a large
// fleet (the day-2 check's tests), without n requests through TLS and JSON.
func (s *Server) PlaceOrders(n, org int, profile Profile, csr *x509.CertificateRequest) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int, n)
	for i := range ids {
		ids[i] = s.addOrderLocked(&Order{OrgID: org, CertType: profile.ID, Term: slices.Max(profile.Terms),
			CommonName: csr.Subject.CommonName, SANs: csr.DNSNames, CSR: csr}).ID
	}
	return ids
}

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
