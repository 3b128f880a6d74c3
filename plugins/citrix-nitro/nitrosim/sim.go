// Package nitrosim is a Citrix ADC / NetScaler NITRO simulator: a real HTTPS server speaking the
// /nitro/v1/config endpoints the citrix-nitro plugin uses, with NITRO's JSON shapes, error bodies
// and codes (shared/reference/citrix-nitro.md), sessions that expire, files that cannot be
// overwritten, real keys and CSRs made "on the appliance", and one real TLS listener on 127.0.0.1
// per SSL vserver serving its bound certificate and linked chain (SNI included), live as soon as
// it is bound, as on a NetScaler (save only makes the running config durable).
//
// How cmd/certfleet-sim uses it:
//
//	sim, err := nitrosim.New(nitrosim.DefaultConfig())
//	err = sim.Start("127.0.0.1:0")          // management API (HTTPS, its own CA)
//	sim.URL()                               // Target.Address, e.g. https://127.0.0.1:41234
//	sim.CACertPEM()                         // Target.TLS.CABundlePEM (verification stays on)
//	sim.ServedAddress("vs_www_443")         // 127.0.0.1:port of that vserver's TLS listener
//	sim.AddVServer(nitrosim.VServer{...})   // more vservers at run time
//	sim.SetLatency / FailNext / ExpireSessions / FailSave   // fault injection
//	sim.Close()
//
// Credentials are Config.Username/Password (DefaultConfig: nsroot / nsroot-sim).
package nitrosim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/certfleet/certfleet/plugins/sdk/simtls"
	"math/big"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Kinds of vserver.
const (
	KindLB      = "lbvserver"
	KindGateway = "vpnvserver"
)

// VServer is an lb or vpn (Gateway) vserver.
type VServer struct {
	Name string
	// Kind is KindLB or KindGateway.
	Kind string
	// ServiceType is SSL (default) or e.g. HTTP; only SSL vservers take certificates.
	ServiceType string
	// Partition, "" for default.
	Partition string
}

// Config of a simulator.
type Config struct {
	Username, Password string
	// SessionTimeout is the default session life (NetScaler: 30 min).
	SessionTimeout time.Duration
	// Partitions besides "default".
	Partitions []string
	VServers   []VServer
	// DaysAsString sends daystoexpiration as a string (adc-nitro-go's type) instead of a number.
	DaysAsString bool
	// Version is what nsversion reports.
	Version string
}

// DefaultConfig has two SSL LB vservers, one Gateway vserver, one HTTP vserver and a partition.
func DefaultConfig() Config {
	return Config{
		Username: "nsroot", Password: "nsroot-sim", SessionTimeout: 30 * time.Minute,
		Partitions: []string{"p_tenant1"},
		VServers: []VServer{
			{Name: "vs_www_443", Kind: KindLB}, {Name: "vs_api_443", Kind: KindLB},
			{Name: "gw_vpn_443", Kind: KindGateway}, {Name: "vs_plain_80", Kind: KindLB, ServiceType: "HTTP"},
			{Name: "vs_t1_443", Kind: KindLB, Partition: "p_tenant1"},
		},
		Version: "NetScaler NS14.1: Build 25.56.nc, Date: Jun 10 2026, 10:00:00   (64-bit)",
	}
}

type certKey struct {
	name, cert, key, link string
}

type binding struct {
	certkey string
	sni     bool
}

type vserver struct {
	VServer
	sni      bool
	bindings []binding
	ln       net.Listener
}

type partition struct {
	files    map[string][]byte // full path -> content
	certkeys map[string]*certKey
	vservers map[string]*vserver
	saved    int
}

type session struct {
	expires   time.Time
	partition string
}

type fault struct {
	op     string // "METHOD type" e.g. "POST sslcertkey", "*" for any
	code   int
	status int
	n      int
}

// Sim is a running simulator.
type Sim struct {
	cfg Config
	// servedFaults: see ServeLeafOnly and FreezeServed.
	servedFaults simtls.ServedFaults
	ca           *x509.Certificate
	// caKey signs the management server certificate.
	caKey *ecdsa.PrivateKey
	srv   *http.Server
	ln    net.Listener

	mu        sync.Mutex
	parts     map[string]*partition
	sessions  map[string]*session
	faults    []*fault
	latency   time.Duration
	failSaves int
	calls     []string
	wg        sync.WaitGroup
}

// New builds a simulator from cfg; Start runs it.
func New(cfg Config) (*Sim, error) {
	if cfg.Username == "" || cfg.Password == "" {
		return nil, errors.New("nitrosim: Config.Username and Password are required")
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = 30 * time.Minute
	}
	if cfg.Version == "" {
		cfg.Version = DefaultConfig().Version
	}
	s := &Sim{cfg: cfg, parts: map[string]*partition{}, sessions: map[string]*session{}}
	for _, p := range append([]string{"default"}, cfg.Partitions...) {
		s.parts[p] = &partition{files: map[string][]byte{}, certkeys: map[string]*certKey{}, vservers: map[string]*vserver{}}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nitrosim management CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	s.ca, _ = x509.ParseCertificate(der)
	s.caKey = key
	return s, nil
}

// Start serves the management API on addr (use 127.0.0.1:0) and a TLS listener per SSL vserver.
func (s *Sim) Start(addr string) error {
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nitrosim"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca, leafKey.Public(), s.caKey)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("nitrosim: listen %s: %w", addr, err)
	}
	s.ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: leafKey}}})
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	for _, v := range s.cfg.VServers {
		if err := s.AddVServer(v); err != nil {
			s.Close()
			return err
		}
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = s.srv.Serve(s.ln) }()
	return nil
}

// URL is the management API base, for Target.Address.
func (s *Sim) URL() string { return "https://" + s.ln.Addr().String() }

// Address is host:port of the management API.
func (s *Sim) Address() string { return s.ln.Addr().String() }

// CACertPEM is the CA that signed the management certificate.
func (s *Sim) CACertPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ca.Raw}))
}

// Close stops the server and every vserver listener.
func (s *Sim) Close() {
	if s.srv != nil {
		_ = s.srv.Close()
	}
	s.mu.Lock()
	for _, p := range s.parts {
		for _, v := range p.vservers {
			if v.ln != nil {
				_ = v.ln.Close()
			}
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// AddVServer adds a vserver; an SSL one gets a TLS listener on 127.0.0.1.
func (s *Sim) AddVServer(v VServer) error {
	if v.Kind != KindLB && v.Kind != KindGateway {
		return fmt.Errorf("nitrosim: vserver %q: kind must be %s or %s", v.Name, KindLB, KindGateway)
	}
	if v.ServiceType == "" {
		v.ServiceType = "SSL"
	}
	part := v.Partition
	if part == "" {
		part = "default"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.parts[part]
	if !ok {
		return fmt.Errorf("nitrosim: vserver %q: no partition %q", v.Name, part)
	}
	if _, dup := p.vservers[v.Name]; dup {
		return fmt.Errorf("nitrosim: vserver %q exists", v.Name)
	}
	vs := &vserver{VServer: v}
	if v.ServiceType == "SSL" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		vs.ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12,
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.servedFaults.Serve(part+"/"+v.Name, func() (*tls.Certificate, error) { return s.servedCert(p, vs, hello.ServerName) })
			}})
		s.wg.Add(1)
		go s.acceptLoop(vs.ln)
	}
	p.vservers[v.Name] = vs
	return nil
}

func (s *Sim) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if tc, ok := c.(*tls.Conn); ok {
				_ = tc.Handshake()
			}
		}()
	}
}

// ServedAddress is the TLS listener of an SSL vserver (any partition), "" if none.
func (s *Sim) ServedAddress(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.parts {
		if v, ok := p.vservers[name]; ok && v.ln != nil {
			return v.ln.Addr().String()
		}
	}
	return ""
}

// servedCert picks the certificate a handshake gets: an SNI certificate whose names match the
// client's server name when SNI is enabled, else the default (non-SNI) certificate.
func (s *Sim) servedCert(p *partition, v *vserver, serverName string) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var def *certKey
	for _, b := range v.bindings {
		ck := p.certkeys[b.certkey]
		if ck == nil {
			continue
		}
		if !b.sni {
			def = ck
			continue
		}
		if v.sni && serverName != "" {
			if leaf, err := parseCert(p.files[ck.cert]); err == nil && leaf.VerifyHostname(serverName) == nil {
				return s.tlsCert(p, ck)
			}
		}
	}
	if def == nil {
		return nil, errors.New("no certificate bound") // "No usable ciphers configured on the SSL vserver"
	}
	return s.tlsCert(p, def)
}

func (s *Sim) tlsCert(p *partition, ck *certKey) (*tls.Certificate, error) {
	leaf, err := parseCert(p.files[ck.cert])
	if err != nil {
		return nil, err
	}
	key, err := parseKey(p.files[ck.key])
	if err != nil {
		return nil, err
	}
	out := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	seen := map[string]bool{ck.name: true}
	for link := ck.link; link != "" && !seen[link]; {
		seen[link] = true
		ca := p.certkeys[link]
		if ca == nil {
			break
		}
		c, err := parseCert(p.files[ca.cert])
		if err != nil {
			break
		}
		out.Certificate = append(out.Certificate, c.Raw)
		link = ca.link
	}
	return out, nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKey(b []byte) (any, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("not a PEM key")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	}
	return x509.ParsePKCS8PrivateKey(block.Bytes)
}

// ---- fault injection ----

// SetLatency delays every management request by d.
func (s *Sim) SetLatency(d time.Duration) { s.mu.Lock(); s.latency = d; s.mu.Unlock() }

// FailNext makes the next n requests matching op ("POST sslcertkey", "PUT sslvserver_sslcertkey_binding",
// "*") fail with NITRO errorcode code and HTTP status.
func (s *Sim) FailNext(op string, n, status, code int) {
	s.mu.Lock()
	s.faults = append(s.faults, &fault{op: op, n: n, status: status, code: code})
	s.mu.Unlock()
}

// ExpireSessions ends every session, so the next request gets 444.
func (s *Sim) ExpireSessions() {
	s.mu.Lock()
	for _, ss := range s.sessions {
		ss.expires = time.Now().Add(-time.Second)
	}
	s.mu.Unlock()
}

// FailSave makes the next n "save ns config" fail.
func (s *Sim) FailSave(n int) { s.mu.Lock(); s.failSaves = n; s.mu.Unlock() }

// Sessions is the number of open (unexpired) sessions: a client that always logs out leaves 0.
func (s *Sim) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ss := range s.sessions {
		if time.Now().Before(ss.expires) {
			n++
		}
	}
	return n
}

// Calls returns the requests served so far as "METHOD /path?query" (no bodies) and clears the log.
func (s *Sim) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.calls
	s.calls = nil
	return out
}

// Saves is how many times the partition's config was saved.
func (s *Sim) Saves(partitionName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if partitionName == "" {
		partitionName = "default"
	}
	if p := s.parts[partitionName]; p != nil {
		return p.saved
	}
	return 0
}

// BoundCertKeys returns "certkey" or "certkey(sni)" for each binding of a vserver, sorted.
func (s *Sim) BoundCertKeys(vs string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.parts {
		if v, ok := p.vservers[vs]; ok {
			for _, b := range v.bindings {
				if b.sni {
					out = append(out, b.certkey+"(sni)")
				} else {
					out = append(out, b.certkey)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func serialHex(c *x509.Certificate) string {
	return strings.ToUpper(hex.EncodeToString(c.SerialNumber.Bytes()))
}

// generateKey makes the key for sslrsakey/sslecdsakey.
func generateKey(rsaBits int, curve string) ([]byte, error) {
	if rsaBits > 0 {
		k, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), nil
	}
	c := elliptic.P256()
	if curve == "P_384" {
		c = elliptic.P384()
	}
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}
