// Package cemsim simulates the public REST API of a XenMobile Server or a Citrix Endpoint
// Management tenant, as far as certificates go, over real HTTPS, and serves the SSL listener
// certificate on a real TLS port.
//
// Every rule and answer comes from /work/shared/reference/citrix-endpoint-management.md (cited by
// section as "ref §N", with the documents it names: PDF-2021, PDF-10.4, WEB-10.3, SEED = seed 003).
// What those sources leave open is marked UNCONFIRMED and has a switch in Config, so the plugin is
// tested both ways.
package cemsim

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk/simtls"
)

// Duplicate-key behaviours: SEED says the server "only allows one certificate per public key" and
// the console offers to replace the existing entry or delete it; what the API does is UNCONFIRMED
// (ref §3), so both are simulated.
const (
	DuplicateRefuse  = "refuse"
	DuplicateReplace = "replace"
)

// Config is the simulated server. Zero values of the switches are the strict choice.
type Config struct {
	Username string
	Password string
	// Cloud makes the server a Citrix Endpoint Management tenant: GET /environment answers 200
	// (PDF-2021 §3.24), /authentication/login/cloud accepts CloudBearer (PDF-2021 §3.3.2), and the
	// SSL listener certificate is managed by Citrix (SEED), so listener imports are refused
	// (the refusal's wording is UNCONFIRMED).
	Cloud       bool
	CloudBearer string
	// DuplicateKey is DuplicateRefuse (default) or DuplicateReplace. UNCONFIRMED (ref §3).
	DuplicateKey string
	// LegacyDeletePath serves DELETE only at /publicapi/certificates, as WEB-10.3 and PDF-10.4
	// print it; the default is /certificates (PDF-2021). Which one a given version has is
	// UNCONFIRMED (ref §2, "Delete").
	LegacyDeletePath bool
	// RefuseDeleteActive refuses deleting the active listener or SAML certificate. UNCONFIRMED:
	// SEED says only that after a replacement "you can't delete the old certificate".
	RefuseDeleteActive bool
	// ListenerRestartRequired keeps serving the previous listener certificate until POST
	// /sim/restart. UNCONFIRMED (ref §3: no public source says whether an import is live at once).
	ListenerRestartRequired bool
	// PrettyExport breaks the exported PEM into lines; the default prints it on one line, as
	// PDF-2021's only sample does (ref §2, "Export").
	PrettyExport bool
}

// DefaultConfig is an on-premises XenMobile Server with an administrator allowed the public API.
func DefaultConfig() Config {
	return Config{Username: "certfleet-api", Password: "cem-sim-password", DuplicateKey: DuplicateRefuse}
}

// entry is one row of the certificate table.
type entry struct {
	id          int64
	cert        *x509.Certificate
	key         crypto.Signer // nil when the server has no private key for it
	role        string        // none (server), saml, listener, apns
	description string
	active      bool
}

// Sim is a running simulator.
type Sim struct {
	cfg Config

	mu       sync.Mutex
	entries  map[int64]*entry
	nextID   int64
	sessions map[string]string // token → user
	served   *entry            // what the listener port serves
	latency  time.Duration
	faults   map[string][]int // "METHOD path" → queued HTTP statuses to answer instead
	requests map[string]int   // "METHOD path" → count

	api, listener *http.Server
	apiLn, lisLn  net.Listener
	caPEM         string
	identity      tls.Certificate
}

// New makes a simulator with an empty certificate table.
func New(cfg Config) (*Sim, error) {
	if cfg.DuplicateKey == "" {
		cfg.DuplicateKey = DuplicateRefuse
	}
	if cfg.DuplicateKey != DuplicateRefuse && cfg.DuplicateKey != DuplicateReplace {
		return nil, fmt.Errorf("cemsim: DuplicateKey %q: want %q or %q", cfg.DuplicateKey, DuplicateRefuse, DuplicateReplace)
	}
	caPEM, identity, err := simtls.ServerIdentity("certfleet cemsim management CA")
	if err != nil {
		return nil, err
	}
	return &Sim{
		cfg: cfg, entries: map[int64]*entry{}, nextID: 300, sessions: map[string]string{},
		faults: map[string][]int{}, requests: map[string]int{}, caPEM: caPEM, identity: identity,
	}, nil
}

// Start listens on addr (use 127.0.0.1:0) for the API and on another loopback port for the listener.
func (s *Sim) Start(addr string) error {
	apiLn, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	lisLn, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		apiLn.Close()
		return err
	}
	s.apiLn, s.lisLn = apiLn, lisLn
	s.api = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{s.identity}, MinVersion: tls.VersionTLS12}}
	s.listener = &http.Server{ReadHeaderTimeout: 10 * time.Second,
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("XenMobile\n")) }),
		TLSConfig: &tls.Config{GetCertificate: s.listenerCertificate, MinVersion: tls.VersionTLS12}}
	go func() { _ = s.api.ServeTLS(apiLn, "", "") }()
	go func() { _ = s.listener.ServeTLS(lisLn, "", "") }()
	return nil
}

// Close stops both servers.
func (s *Sim) Close() error {
	return errors.Join(s.api.Close(), s.listener.Close())
}

// URL is the management address to configure: https://127.0.0.1:port.
func (s *Sim) URL() string { return "https://" + s.apiLn.Addr().String() }

// CACertPEM is the CA of the management interface's TLS certificate.
func (s *Sim) CACertPEM() string { return s.caPEM }

// ListenerAddress is where the SSL listener certificate is served.
func (s *Sim) ListenerAddress() string { return s.lisLn.Addr().String() }

// SetLatency delays every API answer.
func (s *Sim) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// FailNext makes the next n requests of call ("METHOD /path" under the API base, e.g. "POST
// /certificates/export") answer httpStatus with a status -1 envelope (PDF-2021 shows status -1 for
// failed actions, ref §0); httpStatus 0 lets them through, to aim at a later request. A 401 also
// ends the session that sent it.
func (s *Sim) FailNext(call string, n, httpStatus int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.faults[call] = append(s.faults[call], httpStatus)
	}
}

// ExpireSessions ends every session, as a static or inactivity timeout would (ref §1).
func (s *Sim) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions = map[string]string{}
}

// ActiveSessions counts sessions not logged out.
func (s *Sim) ActiveSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Requests returns how many times "METHOD /path" (under the API base) was called.
func (s *Sim) Requests(methodPath string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[methodPath]
}

// Restart makes the newest listener certificate the one served, as restarting every node would.
func (s *Sim) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.served = s.activeLocked("listener")
}

// Entry is a row of the table as a test sees it.
type Entry struct {
	ID   int64
	Cert *x509.Certificate
	// Key is the private key the server holds, for tests that look for it where it must not be.
	Key         crypto.Signer
	HasKey      bool
	Role        string
	Description string
	Active      bool
}

// Entries returns the table, by id.
func (s *Sim) Entries() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, 0, len(s.entries))
	for _, e := range s.sortedLocked() {
		out = append(out, Entry{ID: e.id, Cert: e.cert, Key: e.key, HasKey: e.key != nil, Role: e.role, Description: e.description, Active: e.active})
	}
	return out
}

// AddEntry puts a certificate in the table as an administrator would through the console.
func (s *Sim) AddEntry(cert *x509.Certificate, key crypto.Signer, role, description string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.addLocked(cert, key, role, description)
	if role == "listener" || role == "saml" {
		s.activateLocked(e)
	}
	return e.id
}

func (s *Sim) sortedLocked() []*entry {
	out := make([]*entry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (s *Sim) addLocked(cert *x509.Certificate, key crypto.Signer, role, description string) *entry {
	s.nextID++
	e := &entry{id: s.nextID, cert: cert, key: key, role: role, description: description}
	s.entries[e.id] = e
	return e
}

// activateLocked makes e the active certificate of its role. ASSUMPTION (ref §6): the newest
// listener or SAML import becomes isActive:true and the previous one false; the samples only
// ever show false.
func (s *Sim) activateLocked(e *entry) {
	for _, other := range s.entries {
		if other.role == e.role {
			other.active = false
		}
	}
	e.active = true
	if e.role == "listener" && (!s.cfg.ListenerRestartRequired || s.served == nil) {
		s.served = e
	}
}

func (s *Sim) activeLocked(role string) *entry {
	for _, e := range s.entries {
		if e.role == role && e.active {
			return e
		}
	}
	return nil
}

// chainLocked returns the CA entries that issued e, nearest first.
func (s *Sim) chainLocked(e *entry) []*x509.Certificate {
	var chain []*x509.Certificate
	cur := e.cert
	for i := 0; i < 8; i++ {
		var parent *x509.Certificate
		for _, other := range s.sortedLocked() {
			if other.cert.IsCA && !other.cert.Equal(cur) && cur.CheckSignatureFrom(other.cert) == nil {
				parent = other.cert
				break
			}
		}
		if parent == nil {
			break
		}
		chain = append(chain, parent)
		if parent.CheckSignatureFrom(parent) == nil {
			break
		}
		cur = parent
	}
	return chain
}

func (s *Sim) listenerCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.served
	if e == nil || e.key == nil {
		return nil, errors.New("cemsim: no SSL listener certificate")
	}
	out := &tls.Certificate{Certificate: [][]byte{e.cert.Raw}, PrivateKey: e.key, Leaf: e.cert}
	for _, c := range s.chainLocked(e) {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, nil
}

func newToken() string {
	a, b := make([]byte, 16), make([]byte, 16)
	_, _ = rand.Read(a)
	_, _ = rand.Read(b)
	// The documents show tokens shaped "<random>:<random>" (ref §1).
	return hex.EncodeToString(a) + ":" + hex.EncodeToString(b)
}
