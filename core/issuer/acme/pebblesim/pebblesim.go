// Package pebblesim runs Let's Encrypt's Pebble ACME test server in-process (its wfe, ca, va and
// db packages, the same code the pebble binary runs) behind a real HTTPS listener on loopback,
// with External Account Binding required. By default every authorization is valid without a
// challenge, as a Sectigo ACME account with pre-validated domains behaves; with
// Config.Challenges, Pebble's VA validates HTTP-01 and DNS-01 for real against a DNS server of
// the simulator's own on loopback (see DNS), as Let's Encrypt does. certfleet-sim and the
// engine's end-to-end tests use it as their ACME CA.
package pebblesim

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk/simtls"
	"github.com/letsencrypt/pebble/v2/acme"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Config of a Pebble instance.
type Config struct {
	// Addr to listen on; "127.0.0.1:0" when empty.
	Addr string
	// ValidityDays of issued certificates (Pebble's default profile when zero).
	ValidityDays int
	// Logger receives Pebble's own log; discarded when nil.
	Logger *log.Logger
	// NoRenewalInfo serves a directory without the renewalInfo resource, as a CA that does not
	// implement ACME Renewal Information: RFC 9773 §3 makes it a field a server adds to its
	// directory (RFC 8555 §7.1.1 lets clients ignore what they do not know, and servers leave out
	// what they do not offer).
	NoRenewalInfo bool
	// Latency delays every request, as a distant CA does (see SetLatency).
	Latency time.Duration
	// Challenges makes Pebble validate the challenges clients answer (RFC 8555 §8) instead of
	// treating every name as pre-validated: its VA asks the simulator's DNS server (Server.DNS)
	// for DNS-01 TXT records and for the addresses of names (all 127.0.0.1), and fetches
	// HTTP-01 tokens from HTTP01Port. This is Pebble's "-dnsserver" flag and "httpPort" setting
	// (Pebble README, "DNS Server" and "Default validation ports").
	Challenges bool
	// HTTP01Port is where Pebble's VA fetches HTTP-01 tokens (Pebble's httpPort, default 5002
	// in its test configuration); 0: a free loopback port is picked (see Server.HTTP01Port).
	HTTP01Port int
	// VASleep is, with Challenges, the limit of the random sleep Pebble's VA takes before each
	// validation attempt: PEBBLE_VA_SLEEPTIME, a sleep of rand.Intn(VASleep) whole seconds in
	// each of its 3 concurrent attempts (va.performValidation; Pebble's default is 5). Zero
	// sets PEBBLE_VA_NOSLEEP=1, Pebble's documented switch for "testing at full speed" (Pebble
	// README, "Testing at full speed").
	VASleep int
}

// Server is a running Pebble.
type Server struct {
	srv      *http.Server
	listener net.Listener
	mgmt     http.Handler
	store    *db.MemoryStore
	tlsCA    string
	eabKID   string
	eabHMAC  string
	orders   atomic.Int64
	closing  sync.Once
	dns      *DNS
	httpPort int
	settings []string

	renewalInfoGets atomic.Int64
	requests        atomic.Int64
	posts           atomic.Int64
	latency         atomic.Int64 // nanoseconds
	mu              sync.Mutex
	// orderRetryAfter, when set, refuses every newOrder as over a rate limit with this Retry-After.
	orderRetryAfter string
	limitedOrders   int
}

// pebbleEnv are the knobs Pebble reads from its environment (Pebble README: "Testing at full
// speed", "Skipping Validation", "Invalid Anti-Replay Nonce Errors", "Valid Authorization
// Reuse"). Always: no nonce rejected at random (Pebble rejects 5 % by default to exercise
// clients' badNonce retries; no production CA does), valid authorizations always reused (Let's
// Encrypt reuses them for 30 days; Pebble 50 % of the time by default). Pre-validated: no
// challenge is validated. With challenges: the VA's random sleep per cfg.VASleep.
func pebbleEnv(cfg Config) map[string]string {
	env := map[string]string{"PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "100"}
	switch {
	case !cfg.Challenges:
		env["PEBBLE_VA_ALWAYS_VALID"], env["PEBBLE_VA_NOSLEEP"] = "1", "1"
	case cfg.VASleep <= 0:
		env["PEBBLE_VA_NOSLEEP"] = "1"
	default:
		env["PEBBLE_VA_SLEEPTIME"] = strconv.Itoa(cfg.VASleep)
	}
	return env
}

// settings describe how this Pebble differs from a stock one, for benchmark notes that must
// cite the CA's settings.
func settings(cfg Config, httpPort int) []string {
	env := pebbleEnv(cfg)
	out := make([]string, 0, len(env)+4)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	out = append(out, "External Account Binding required", "no Retry-After sent (Pebble's retryAfter authz/order 0)")
	if cfg.Challenges {
		out = append(out, fmt.Sprintf("challenges validated for real: DNS-01 and HTTP-01 (httpPort %d) against the simulator's DNS on loopback (-dnsserver)", httpPort))
	} else {
		out = append(out, "authorizations marked valid when the order is created (no challenge to answer)")
	}
	return append(out, "issuing chain ECDSA; orders finalized by Pebble's own asynchronous issuance")
}

// Settings describe how this Pebble differs from a stock one, for benchmark notes that must
// cite the CA's settings.
func (s *Server) Settings() []string { return slices.Clone(s.settings) }

// envMu: Pebble reads its knobs from the environment while its parts are built.
var envMu sync.Mutex

// Start builds Pebble and serves it.
func Start(cfg Config) (*Server, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	caPEM, serverCert, err := simtls.ServerIdentity("certfleet-sim ACME TLS root")
	if err != nil {
		return nil, err
	}
	s := &Server{}
	resolver := ""
	if cfg.Challenges {
		if s.dns, err = StartDNS(); err != nil {
			return nil, err
		}
		resolver = s.dns.Addr()
		s.httpPort = cfg.HTTP01Port
		if s.httpPort == 0 {
			if s.httpPort, err = freePort(); err != nil {
				s.dns.Close()
				return nil, err
			}
		}
	}
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "certfleet-sim default"}}
	if cfg.ValidityDays > 0 {
		profiles["default"] = ca.Profile{Description: "certfleet-sim default", ValidityPeriod: uint64(cfg.ValidityDays) * 24 * 3600}
	}
	envMu.Lock()
	restore := setEnv(pebbleEnv(cfg))
	pca := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	// TLS-ALPN-01 goes to port 443 of 127.0.0.1 (Pebble's tlsPort); no client here answers it.
	pva := va.New(logger, s.httpPort, 443, false, resolver, store)
	front := wfe.New(logger, store, pva, pca, []string{"pebble.letsencrypt.org"}, false, true, 0, 0)
	restore()
	envMu.Unlock()

	s.store, s.tlsCA, s.mgmt = store, caPEM, front.ManagementHandler()
	s.eabKID, s.eabHMAC = "certfleet-sim", base64.RawURLEncoding.EncodeToString(randomBytes(32))
	s.settings = settings(cfg, s.httpPort)
	if err := store.AddExternalAccountKeyByID(s.eabKID, s.eabHMAC); err != nil {
		s.Close()
		return nil, fmt.Errorf("pebble EAB key: %w", err)
	}
	s.latency.Store(int64(cfg.Latency))
	acmeHandler := front.Handler()
	mux := http.NewServeMux()
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if d := time.Duration(s.latency.Load()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if r.Method == http.MethodPost {
			s.posts.Add(1)
		}
		if cfg.NoRenewalInfo && r.Method == http.MethodGet && r.URL.Path == wfe.DirectoryPath {
			serveWithout(acmeHandler, w, r, "renewalInfo")
			return
		}
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			if s.refuseOverRateLimit(acmeHandler, w) {
				return
			}
			s.orders.Add(1)
			if !cfg.Challenges {
				s.newOrder(acmeHandler, w, r)
				return
			}
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/renewalInfo/") {
			s.renewalInfoGets.Add(1)
		}
		acmeHandler.ServeHTTP(w, r)
	}))
	s.listener, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("pebble listen %s: %w", cfg.Addr, err)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12},
		ErrorLog:  log.New(io.Discard, "", 0)}
	go func() { _ = s.srv.ServeTLS(s.listener, "", "") }()
	return s, nil
}

// newOrder passes a newOrder request to Pebble and marks the new order's authorizations valid
// before the client sees them: the names count as validated beforehand, as in a Sectigo ACME
// account whose domains are pre-validated, so no challenge is offered to answer.
func (s *Server) newOrder(next http.Handler, w http.ResponseWriter, r *http.Request) {
	rec := &recorder{header: http.Header{}}
	next.ServeHTTP(rec, r)
	var order struct {
		Authorizations []string `json:"authorizations"`
	}
	if json.Unmarshal([]byte(rec.body.String()), &order) == nil {
		for _, u := range order.Authorizations {
			if authz := s.store.GetAuthorizationByID(u[strings.LastIndex(u, "/")+1:]); authz != nil {
				authz.Lock()
				authz.Status = acme.StatusValid
				authz.Unlock()
			}
		}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	if rec.status != 0 {
		w.WriteHeader(rec.status)
	}
	_, _ = io.WriteString(w, rec.body.String())
}

// refuseOverRateLimit answers a newOrder as a CA over its rate limit does, when switched on:
// HTTP 429 with problem type rateLimited (RFC 8555 §6.7) and a Retry-After header (RFC 8555
// §6.6; Let's Encrypt's rate-limit documentation, "Retrying after hitting rate limits"; Boulder
// answers rate limits with 429). No order is created.
func (s *Server) refuseOverRateLimit(acmeHandler http.Handler, w http.ResponseWriter) bool {
	s.mu.Lock()
	retryAfter := s.orderRetryAfter
	if retryAfter != "" {
		s.limitedOrders++
	}
	s.mu.Unlock()
	if retryAfter == "" {
		return false
	}
	// Every ACME answer carries a fresh nonce (RFC 8555 §6.5); Pebble's nonce endpoint makes it.
	rec := &recorder{header: http.Header{}}
	acmeHandler.ServeHTTP(rec, httptestRequest(http.MethodHead, "/nonce-plz"))
	w.Header().Set("Replay-Nonce", rec.header.Get("Replay-Nonce"))
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Retry-After", retryAfter)
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = io.WriteString(w, `{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many new orders recently","status":429}`)
	return true
}

func httptestRequest(method, path string) *http.Request {
	req, _ := http.NewRequestWithContext(context.Background(), method, path, nil)
	return req
}

// RateLimitNewOrders makes every newOrder a rateLimited refusal with this Retry-After (seconds
// or an HTTP date); "" lifts the limit.
func (s *Server) RateLimitNewOrders(retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orderRetryAfter = retryAfter
}

// RateLimitedOrders counts newOrder requests refused over the rate limit.
func (s *Server) RateLimitedOrders() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limitedOrders
}

// serveWithout serves a JSON object from next without the field named.
func serveWithout(next http.Handler, w http.ResponseWriter, r *http.Request, field string) {
	rec := &recorder{header: http.Header{}}
	next.ServeHTTP(rec, r)
	body := []byte(rec.body.String())
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) == nil {
		delete(obj, field)
		if out, err := json.Marshal(obj); err == nil {
			body = out
		}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	if rec.status != 0 {
		w.WriteHeader(rec.status)
	}
	_, _ = w.Write(body)
}

// Requests counts the ACME requests received; Posts those that were POSTs (every resource but
// the directory and nonces is read by POST-as-GET, RFC 8555 §6.3).
func (s *Server) Requests() int { return int(s.requests.Load()) }

// Posts counts the POST requests received.
func (s *Server) Posts() int { return int(s.posts.Load()) }

// RenewalInfoRequests counts renewalInfo (ARI) requests received.
func (s *Server) RenewalInfoRequests() int { return int(s.renewalInfoGets.Load()) }

// SetLatency delays every HTTP request by d before Pebble sees it.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// SetRenewalWindow makes Pebble suggest [start, end) as cert's renewal window (Pebble's
// management call /set-renewal-info/).
func (s *Server) SetRenewalWindow(cert *x509.Certificate, start, end time.Time) error {
	ari, err := json.Marshal(map[string]any{"suggestedWindow": map[string]time.Time{"start": start.UTC(), "end": end.UTC()}})
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]string{
		"Certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		"ARIResponse": string(ari),
	})
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "/set-renewal-info/", strings.NewReader(string(body)))
	req.Header.Set("User-Agent", "certfleet-sim")
	rec := &recorder{header: http.Header{}}
	s.mgmt.ServeHTTP(rec, req)
	if rec.status != 0 && rec.status != http.StatusOK {
		return fmt.Errorf("pebble set-renewal-info: HTTP %d: %s", rec.status, rec.body.String())
	}
	return nil
}

func setEnv(vars map[string]string) func() {
	saved := map[string]*string{}
	for k, v := range vars {
		if old, ok := os.LookupEnv(k); ok {
			saved[k] = &old
		} else {
			saved[k] = nil
		}
		_ = os.Setenv(k, v)
	}
	return func() {
		for k, v := range saved {
			if v == nil {
				_ = os.Unsetenv(k)
			} else {
				_ = os.Setenv(k, *v)
			}
		}
	}
}

// DirectoryURL is the ACME directory.
func (s *Server) DirectoryURL() string {
	return "https://" + s.listener.Addr().String() + wfe.DirectoryPath
}

// TLSCACertPEM is the CA of the server's HTTPS certificate, for the client's tls.ca_bundle.
func (s *Server) TLSCACertPEM() string { return s.tlsCA }

// EAB returns the key id and base64url HMAC key the server requires.
func (s *Server) EAB() (kid, hmac string) { return s.eabKID, s.eabHMAC }

// Orders counts newOrder requests received.
func (s *Server) Orders() int { return int(s.orders.Load()) }

// RootPEM is the root of the chains Pebble issues.
func (s *Server) RootPEM() (string, error) {
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, wfe.RootCertPath+"0", nil)
	rec := &recorder{header: http.Header{}}
	s.mgmt.ServeHTTP(rec, req)
	if rec.status != 0 && rec.status != http.StatusOK {
		return "", fmt.Errorf("pebble root: HTTP %d", rec.status)
	}
	return rec.body.String(), nil
}

// Revoked reports whether Pebble recorded the certificate as revoked.
func (s *Server) Revoked(cert *x509.Certificate) bool {
	return s.store.GetRevokedCertificateBySerial(cert.SerialNumber) != nil
}

// DNS is the simulator's DNS server Pebble's VA asks (nil without Config.Challenges).
func (s *Server) DNS() *DNS { return s.dns }

// HTTP01Port is where Pebble's VA fetches HTTP-01 tokens on 127.0.0.1 (0 without
// Config.Challenges).
func (s *Server) HTTP01Port() int { return s.httpPort }

// Close stops the server.
func (s *Server) Close() {
	s.closing.Do(func() {
		if s.srv != nil {
			_ = s.srv.Close()
		}
		if s.dns != nil {
			s.dns.Close()
		}
	})
}

// freePort finds a TCP port free on 127.0.0.1 for the HTTP-01 listener a client starts later.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port for HTTP-01: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type recorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(p []byte) (int, error) {
	return r.body.Write(p)
}
func (r *recorder) WriteHeader(code int) { r.status = code }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
