package acme

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/core"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// The tests run Let's Encrypt's Pebble ACME server in-process (its wfe, ca, va and db packages,
// the same code its binary runs) behind real HTTPS listeners on 127.0.0.1, one instance per
// test so that what each test counts is its own. Pebble's VA validates DNS-01 for real against
// testDNS, where lego's rfc2136 provider publishes the records.

var (
	dnsServer *testDNS
	tlsCA     *testTLS
)

func TestMain(m *testing.M) {
	var err error
	if dnsServer, err = startTestDNS(); err != nil {
		fmt.Fprintln(os.Stderr, "test DNS server:", err)
		os.Exit(1)
	}
	if tlsCA, err = newTestTLS(); err != nil {
		fmt.Fprintln(os.Stderr, "test TLS CA:", err)
		os.Exit(1)
	}
	// lego's providers resolve through this (CNAME following, zone lookup): the test zone only.
	SetProviderResolvers([]string{dnsServer.addr}, 2*time.Second)
	code := m.Run()
	dnsServer.Close()
	os.Exit(code)
}

// testTLS is the CA that signs the Pebble listeners' certificate; clients trust it through
// Config.TLS.CABundlePEM.
type testTLS struct {
	caPEM  string
	server tls.Certificate
}

func newTestTLS() (*testTLS, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "certfleet test TLS root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	return &testTLS{
		caPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		server: tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
	}, nil
}

type pebbleOptions struct {
	noEAB          bool
	alternateRoots int
	// chainLength is the number of intermediates per chain (Pebble's default 1 when zero).
	chainLength int
	// nonceReject is the share (percent) of good nonces Pebble rejects as bad.
	nonceReject int
	// authzReuse is the share (percent) of orders that get an existing valid authorization.
	authzReuse int
	// retryAfterOrder is the Retry-After (seconds) Pebble sends on processing orders.
	retryAfterOrder int
}

type pebbleServer struct {
	dirURL, mgmtURL string
	store           *db.MemoryStore
	wire            *wireStats
	eabKID, eabHMAC string
}

// pebbleEnvMu: Pebble reads its knobs from the environment when its parts are built.
var pebbleEnvMu sync.Mutex

func startPebble(t *testing.T, o pebbleOptions) *pebbleServer {
	t.Helper()
	logger := log.New(io.Discard, "", 0)
	if os.Getenv("CERTFLEET_PEBBLE_LOG") != "" {
		logger = log.New(os.Stderr, "pebble "+t.Name()+" ", log.Lmicroseconds)
	}
	store := db.NewMemoryStore()

	pebbleEnvMu.Lock()
	env := map[string]string{
		"PEBBLE_WFE_NONCEREJECT": strconv.Itoa(o.nonceReject),
		"PEBBLE_AUTHZREUSE":      strconv.Itoa(o.authzReuse),
		"PEBBLE_VA_NOSLEEP":      "1",
	}
	saved := map[string]*string{}
	for k, v := range env {
		if old, ok := os.LookupEnv(k); ok {
			saved[k] = &old
		} else {
			saved[k] = nil
		}
		_ = os.Setenv(k, v)
	}
	profiles := map[string]ca.Profile{
		"default":    {Description: "default profile"},
		"shortlived": {Description: "six days", ValidityPeriod: 6 * 24 * 3600},
	}
	pca := ca.New(logger, store, "", "ecdsa", o.alternateRoots, max(o.chainLength, 1), profiles)
	pva := va.New(logger, 0, 0, false, dnsServer.addr, store)
	front := wfe.New(logger, store, pva, pca, []string{"pebble.letsencrypt.org"}, false, !o.noEAB, 0, o.retryAfterOrder)
	for k, v := range saved {
		if v == nil {
			_ = os.Unsetenv(k)
		} else {
			_ = os.Setenv(k, *v)
		}
	}
	pebbleEnvMu.Unlock()

	p := &pebbleServer{store: store, wire: &wireStats{posts: map[string]int{}, created: map[string]int{}},
		eabKID: "kid-" + randomLabel(t), eabHMAC: base64.RawURLEncoding.EncodeToString(randomBytes(t, 32))}
	if err := store.AddExternalAccountKeyByID(p.eabKID, p.eabHMAC); err != nil {
		t.Fatal(err)
	}
	serve := func(h http.Handler) *httptest.Server {
		s := httptest.NewUnstartedServer(h)
		s.TLS = &tls.Config{Certificates: []tls.Certificate{tlsCA.server}, MinVersion: tls.VersionTLS12}
		s.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake noise from clients that do not trust it, on purpose
		s.StartTLS()
		t.Cleanup(s.Close)
		return s
	}
	p.dirURL = serve(p.wire.wrap(front.Handler())).URL + wfe.DirectoryPath
	p.mgmtURL = serve(front.ManagementHandler()).URL
	return p
}

// wireStats counts what reached Pebble: POSTs and created resources per endpoint, and the
// badNonce problems it sent.
type wireStats struct {
	mu       sync.Mutex
	posts    map[string]int
	created  map[string]int
	badNonce int
	// loseAnswers: Pebble processes POSTs to these endpoints but the connection is cut before
	// the answer goes out (a lost response).
	loseAnswers map[string]bool
	// rateLimits: POSTs to these endpoints get a rateLimited problem instead of reaching Pebble.
	rateLimits map[string]rateLimitAnswer
}

// rateLimitAnswer is how a CA refuses a request over a rate limit: problem type rateLimited
// (RFC 8555 §6.7) with a Retry-After header (RFC 8555 §6.6; Let's Encrypt's rate-limit
// documentation, "Retrying after hitting rate limits"). Boulder sends it with HTTP 429, which
// is also the only status lego reads Retry-After from; another status is UNCONFIRMED for real
// CAs (RFC 8555 names none), so the tests try both.
type rateLimitAnswer struct {
	status     int
	retryAfter string
}

func (s *wireStats) rateLimit(ep string, a rateLimitAnswer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rateLimits == nil {
		s.rateLimits = map[string]rateLimitAnswer{}
	}
	s.rateLimits[ep] = a
}

func (s *wireStats) loseAnswersTo(ep string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loseAnswers == nil {
		s.loseAnswers = map[string]bool{}
	}
	s.loseAnswers[ep] = true
}

func endpointOf(path string) string {
	for _, p := range []string{"/sign-me-up", "/order-plz", "/finalize-order/", "/chalZ/", "/revoke-cert", "/authZ/", "/my-order/", "/certZ/"} {
		if strings.HasPrefix(path, p) {
			return p
		}
	}
	return path
}

func (s *wireStats) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep := endpointOf(r.URL.Path)
		s.mu.Lock()
		lose := s.loseAnswers[ep] && r.Method == http.MethodPost
		limited, isLimited := s.rateLimits[ep]
		if r.Method == http.MethodPost {
			s.posts[ep]++
		}
		s.mu.Unlock()
		if isLimited && r.Method == http.MethodPost {
			// A fresh nonce, as Pebble gives on every answer, so the client's next request works.
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/nonce-plz", nil))
			w.Header().Set("Replay-Nonce", rec.Header().Get("Replay-Nonce"))
			w.Header().Set("Content-Type", "application/problem+json")
			if limited.retryAfter != "" {
				w.Header().Set("Retry-After", limited.retryAfter)
			}
			w.WriteHeader(limited.status)
			_, _ = fmt.Fprintf(w, `{"type":%q,"detail":"too many new orders recently","status":%d}`, problemRateLimited, limited.status)
			return
		}
		out := w
		if lose {
			out = httptest.NewRecorder()
		}
		h.ServeHTTP(&countingWriter{ResponseWriter: out, stats: s, endpoint: ep, status: http.StatusOK}, r)
		if lose {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
				}
			}
		}
	})
}

func (s *wireStats) count(m map[string]int, ep string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return m[ep]
}

func (s *wireStats) postsTo(ep string) int   { return s.count(s.posts, ep) }
func (s *wireStats) createdAt(ep string) int { return s.count(s.created, ep) }
func (s *wireStats) badNonces() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.badNonce
}

// countingWriter counts an answer before any of it is passed on, so that a client that has
// its answer always finds it counted.
type countingWriter struct {
	http.ResponseWriter
	stats    *wireStats
	endpoint string
	status   int
	wrote    bool
}

func (w *countingWriter) WriteHeader(code int) {
	w.status = code
	if code == http.StatusCreated {
		w.stats.mu.Lock()
		w.stats.created[w.endpoint]++
		w.stats.mu.Unlock()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if !w.wrote && w.status == http.StatusBadRequest && bytes.Contains(b, []byte(problemBadNonce)) {
		w.stats.mu.Lock()
		w.stats.badNonce++
		w.stats.mu.Unlock()
	}
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// mgmtGet fetches a path of Pebble's management interface over verified HTTPS.
func (p *pebbleServer) mgmtGet(t *testing.T, path string) (int, []byte) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(tlsCA.caPEM))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := c.Get(p.mgmtURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// mgmtCert fetches a CA certificate (e.g. /roots/0, /intermediates/1).
func (p *pebbleServer) mgmtCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	code, body := p.mgmtGet(t, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d", path, code)
	}
	block, _ := pem.Decode(body)
	if block == nil {
		t.Fatalf("GET %s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// certStatus is Pebble's view of a certificate ("Valid" or "Revoked") and its revocation reason.
func (p *pebbleServer) certStatus(t *testing.T, serial *big.Int) (string, *uint) {
	t.Helper()
	code, body := p.mgmtGet(t, "/cert-status-by-serial/"+serial.Text(16))
	if code != http.StatusOK {
		t.Fatalf("cert status %s: HTTP %d", serial.Text(16), code)
	}
	var st struct {
		Status string
		Reason *uint
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st.Status, st.Reason
}

// orders returns Pebble's orders of the account at accountURL.
func (p *pebbleServer) orders(accountURL string) []*core.Order {
	id := accountURL[strings.LastIndex(accountURL, "/")+1:]
	return p.store.GetOrdersByAccountID(id)
}

// waitSerialIndexed waits until Pebble can find the order of cert by its serial.
func (p *pebbleServer) waitSerialIndexed(t *testing.T, cert *x509.Certificate) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := p.store.GetOrderByIssuedSerial(hex.EncodeToString(cert.SerialNumber.Bytes())); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pebble never indexed serial %x", cert.SerialNumber)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// config is an issuer configuration for this Pebble with DNS-01 through testDNS.
func (p *pebbleServer) config(name string) Config {
	return Config{
		Name:         name,
		DirectoryURL: p.dirURL,
		EAB:          EAB{KeyID: p.eabKID, HMACKey: p.eabHMAC},
		Contact:      "pki@example.test",
		TLS:          TLSConfig{CABundlePEM: tlsCA.caPEM},
		DNS: DNSConfig{
			Provider:         "rfc2136",
			Settings:         dnsServer.dnsSettings(),
			Resolvers:        []string{dnsServer.addr},
			PropagationCheck: PropagationResolvers,
		},
		Timeouts: Timeouts{HTTP: 10 * time.Second, Validation: 20 * time.Second, PollInterval: 20 * time.Millisecond},
	}
}

// testKDF keeps key derivation cheap under -race; TestSealDefaultCost covers the real cost.
var testKDF = kdfParams{Time: 1, Memory: 1024, Threads: 1}

func newIssuer(t *testing.T, cfg Config, store AccountStore) *Issuer {
	t.Helper()
	iss, err := New(cfg, store, withKDF(testKDF), WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// testWriter sends logs to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randomLabel(t *testing.T) string {
	return fmt.Sprintf("%x", randomBytes(t, 4))
}

// testNames returns n DNS names in the test zone, unique to this test.
func testNames(t *testing.T, n int) []string {
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	base = strings.Trim(base, "-")
	if len(base) > 40 {
		base = base[:40]
	}
	tag := randomLabel(t)
	names := make([]string, n)
	for k := range names {
		names[k] = fmt.Sprintf("h%d.%s-%s.example.test", k, base, tag)
	}
	return names
}

// newCSR makes a key and a CSR for names, as a device would; the key stays with the test.
func newCSR(t *testing.T, cn string, dnsNames []string, ips []string) (string, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dnsNames}
	for _, s := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(s))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), key
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}
