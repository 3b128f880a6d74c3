// Package nitrosim is a Citrix ADC / NetScaler NITRO simulator: a real HTTPS server speaking the
// /nitro/v1/config endpoints the citrix-nitro plugin uses, with NITRO's JSON shapes, error bodies
// and codes (shared/reference/citrix-nitro.md), sessions that expire, admin partitions, files that
// cannot be overwritten, real keys and CSRs made "on the appliance", and one real TLS listener on
// 127.0.0.1 per SSL vserver serving its bound certificate and linked chain (SNI included). A
// binding is live as soon as it is made, as on a NetScaler: "save ns config" only makes the
// running configuration durable, so the listeners always serve the running configuration.
//
// It is as strict as the appliance where the reference knows its behaviour, and strict by
// default where the reference marks it UNCONFIRMED (each such place says so in a comment; the
// Config switches give the other plausible behaviour so the plugin is tested against both).
// Rules and their sources (docs/reference-notes/citrix-nitro.md has the list): one certkey per
// certificate on add and update (273 naming the holder); file names kept as given, relative to
// /nsconfig/ssl, and ns-server-certificate present; one RSA and one ECDSA default certificate per
// vserver; the default SSL profile mode (3740, SNI in the profile); bindings at services, service
// groups, profiles, the global VPN and SAML actions; SSL_TCP and content-switching vservers;
// fileencoding defaulting to BASE64; 278 for an attribute an operation does not take; 1540
// "Certificate does not exist"; files deleted even when in use; one SNI certificate per domain.
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
// Credentials are Config.Username/Password (DefaultConfig: nsroot / nsroot-sim). A certfleet
// device for it: plugin citrix-nitro, address sim.URL(), tls.ca_bundle a file holding
// sim.CACertPEM(), credentials {username, password}; bindings {kind: lb-vserver, name:
// vs_www_443}, {kind: lb-vserver, name: vs_api_443}, {kind: gateway-vserver, name: gw_vpn_443},
// {kind: cs-vserver, name: cs_www_443}, {kind: lb-vserver, name: vs_imaps_993} (SSL_TCP), any of
// them with sni: true; options {partition: p_tenant1} for vs_t1_443 in that partition.
package nitrosim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk/simtls"
)

// Kinds of vserver, named as their NITRO resource types. All three take SSL certificates
// (CTX224272: "SSL type virtual servers of type load balancing, content switching and Gateway").
const (
	KindLB      = "lbvserver"
	KindGateway = "vpnvserver"
	KindCS      = "csvserver"
)

// DefaultFrontendProfile is the profile every SSL vserver gets once the default SSL profiles are
// enabled ("set ssl parameter -defaultProfile ENABLED" binds the default front-end profile to all
// front-end entities: NetScaler docs "SSL profile infrastructure").
const DefaultFrontendProfile = "ns_default_ssl_profile_frontend"

// VServer is an lb or vpn (Gateway) vserver.
type VServer struct {
	Name string
	// Kind is KindLB, KindGateway or KindCS.
	Kind string
	// ServiceType is SSL (the default), SSL_TCP or e.g. HTTP; only SSL and SSL_TCP vservers take
	// certificates (both are "SSL or TCP-based SSL virtual servers", NITRO sslprofile docs).
	ServiceType string
	// Profile is the SSL profile bound to the vserver; with Config.DefaultProfile an SSL vserver
	// without one gets DefaultFrontendProfile.
	Profile string
	// Partition is the admin partition, "" for default.
	Partition string
	// SNI starts the vserver with SNI enabled.
	SNI bool
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

	// The switches below give the other plausible behaviour where the reference is UNCONFIRMED.

	// DefaultBindReplaces makes a second non-SNI binding replace the vserver's default
	// certificate instead of failing (the default, after CTX110670: one server certificate
	// without -SNICert per vserver).
	DefaultBindReplaces bool
	// AllowSNIDomainOverlap lets two SNI certificates with a common DNS name be bound to one
	// vserver. By default that fails, as Keyfactor's UpdateBindings reports ("duplicate domain").
	AllowSNIDomainOverlap bool
	// AllowDuplicateOnUpdate lets "update ssl certKey" point a certkey at a certificate another
	// certkey already holds. By default it fails as an add does (273, "certkeyName Contents"),
	// since Citrix KB 206045 reports "Certificate Already Exists" when "installing\updating".
	AllowDuplicateOnUpdate bool

	// DefaultProfile is "set ssl parameter -defaultProfile ENABLED": every SSL vserver has an SSL
	// profile, and vserver-level SSL settings fail with errorcode 3740 (terraform-provider-citrixadc
	// #164). SNI is then a profile setting (adc-nitro-go sslparameter.go: "vserver or profile bound
	// to vserver has SNI enabled").
	DefaultProfile bool
	// AllowVServerSNIWithProfile accepts PUT sslvserver {snienable} on a vserver that has a
	// profile. UNCONFIRMED: #164 shows 3740 for a cipher binding; that snienable fails the same
	// way is inferred, so the other behaviour is one switch away.
	AllowVServerSNIWithProfile bool
	// RefuseFileInUseDelete makes "rm system file" refuse a file a certkey uses. By default it is
	// deleted, as on an appliance: cleanup tools check references themselves before removing a
	// file (j81 NetScaler toolkit, Invoke-NSCleanCertKeyFiles). UNCONFIRMED either way.
	RefuseFileInUseDelete bool
	// OverwriteKeyFile lets "create ssl rsakey/ecdsakey" replace a key file that exists. No
	// source says what an appliance does then (UNCONFIRMED); by default it refuses with 1642
	// "Cannot create output file. File already exists", as an upload onto an existing systemfile
	// does.
	OverwriteKeyFile bool
	// MissingCertKeyAs258 answers a missing certkey with 404/258 "No such resource" instead of
	// 599/1540 "Certificate does not exist" (the text the oneops cookbook add_cert_key.rb matches;
	// the code is the reference's reading of 1540, UNCONFIRMED).
	MissingCertKeyAs258 bool
	// NoBuiltinCertKeys leaves out ns-server-certificate, which every appliance has.
	NoBuiltinCertKeys bool
}

// DefaultConfig has two SSL LB vservers, one Gateway vserver, one HTTP vserver, one SSL
// content-switching vserver, one SSL_TCP LB vserver and a partition with one SSL LB vserver.
func DefaultConfig() Config {
	return Config{
		Username: "nsroot", Password: "nsroot-sim", SessionTimeout: 30 * time.Minute,
		Partitions: []string{"p_tenant1"},
		VServers: []VServer{
			{Name: "vs_www_443", Kind: KindLB}, {Name: "vs_api_443", Kind: KindLB},
			{Name: "gw_vpn_443", Kind: KindGateway}, {Name: "vs_plain_80", Kind: KindLB, ServiceType: "HTTP"},
			{Name: "cs_www_443", Kind: KindCS}, {Name: "vs_imaps_993", Kind: KindLB, ServiceType: "SSL_TCP"},
			{Name: "vs_t1_443", Kind: KindLB, Partition: "p_tenant1"},
		},
		Version: "NetScaler NS14.1: Build 25.56.nc, Date: Jun 10 2026, 10:00:00   (64-bit)",
	}
}

// certKey keeps cert and key as they were given (a relative name stays relative, as
// "Cert Path: ns-server.cert" in "show ssl certKey ns-server-certificate"); loaded is what the
// appliance loaded from them at add/update time, so deleting a file does not change what is served.
type certKey struct {
	name, cert, key, link string
	loaded                *tls.Certificate // nil for a CA certificate without key
	leaf                  *x509.Certificate
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

// Places a certkey may be bound besides SSL vservers (NITRO sslcertkey_binding lists service,
// servicegroup and sslprofile bindings; vpnglobal_sslcertkey_binding and SAML actions are read
// separately, as the j81 NetScaler toolkit's cleanup does).
const (
	PlaceService      = "service"
	PlaceServiceGroup = "servicegroup"
	PlaceProfile      = "sslprofile"
	PlaceVPNGlobal    = "vpnglobal"
	PlaceSAMLAction   = "samlaction"
)

// place is a binding of a certkey outside SSL vservers.
type place struct {
	kind, name, certkey string
}

type sslProfile struct {
	name string
	sni  bool
}

type partition struct {
	files    map[string][]byte // full path -> content
	certkeys map[string]*certKey
	vservers map[string]*vserver
	profiles map[string]*sslProfile
	places   []place
	saved    int
}

type session struct {
	expires   time.Time
	partition string
}

type fault struct {
	op     string // "METHOD type", "METHOD type?action=x" or "*"
	status int
	code   int
	n      int
}

// Sim is a simulated appliance.
type Sim struct {
	cfg   Config
	ca    *simtls.Authority
	srv   *http.Server
	plain *http.Server // StartPlainHTTP's, guarded by mu
	ln    net.Listener
	wg    sync.WaitGroup
	close sync.Once

	mu        sync.Mutex
	parts     map[string]*partition
	sessions  map[string]*session
	faults    []*fault
	latency   time.Duration
	failSaves int
	calls     []string
	conns     map[net.Conn]struct{} // open connections to vserver listeners

	// servedFaults: see ServeLeafOnly and FreezeServed.
	servedFaults simtls.ServedFaults
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
	ca, err := simtls.NewAuthority("nitrosim management CA")
	if err != nil {
		return nil, err
	}
	s := &Sim{cfg: cfg, ca: ca, parts: map[string]*partition{}, sessions: map[string]*session{}, conns: map[net.Conn]struct{}{}}
	for _, p := range append([]string{"default"}, cfg.Partitions...) {
		s.parts[p] = &partition{files: map[string][]byte{}, certkeys: map[string]*certKey{}, vservers: map[string]*vserver{},
			profiles: map[string]*sslProfile{DefaultFrontendProfile: {name: DefaultFrontendProfile}}}
	}
	if !cfg.NoBuiltinCertKeys {
		if err := s.addBuiltins(s.parts["default"]); err != nil {
			return nil, err
		}
	}
	return s, nil
}

var (
	builtinOnce          sync.Once
	builtinCert, builtin []byte
	builtinErr           error
)

// addBuiltins installs ns-server-certificate as every appliance has it: files ns-server.cert and
// ns-server.key in /nsconfig/ssl, named relative to it ("add ssl certKey ns-server-certificate
// -cert ns-server.cert -key ns-server.key" in the ns.conf of every appliance).
func (s *Sim) addBuiltins(p *partition) error {
	builtinOnce.Do(func() {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			builtinErr = err
			return
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "default OWNPTQ", Organization: []string{"Citrix ANG"}},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			builtinErr = err
			return
		}
		builtinCert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		builtin = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	})
	if builtinErr != nil {
		return builtinErr
	}
	p.files[sslPath("ns-server.cert")], p.files[sslPath("ns-server.key")] = builtinCert, builtin
	ck := &certKey{name: BuiltinCertKey, cert: "ns-server.cert", key: "ns-server.key"}
	if e := ck.load(p); e != nil {
		return errors.New(e.msg)
	}
	p.certkeys[ck.name] = ck
	return nil
}

// BuiltinCertKey is the certkey every appliance has for its own management services.
const BuiltinCertKey = "ns-server-certificate"

// Start serves the management API on addr (use 127.0.0.1:0) and a TLS listener per SSL vserver.
func (s *Sim) Start(addr string) error {
	cert, err := s.ca.ServerCertificate()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("nitrosim: listen on %s: %w", addr, err)
	}
	s.ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}})
	// Clients that give up mid-handshake (a cancelled call) are normal here, not worth a log line.
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
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

// StartPlainHTTP also serves the management API without TLS on addr (use 127.0.0.1:0), as an
// appliance does on port 80 unless "set ns ip -mgmtAccess" restricts it, and returns its
// http:// URL. The seed agents' default is NITRO over http.
func (s *Sim) StartPlainHTTP(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("nitrosim: listen on %s: %w", addr, err)
	}
	s.mu.Lock()
	s.plain = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	srv := s.plain
	s.mu.Unlock()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// URL is the management API base, for Target.Address.
func (s *Sim) URL() string { return "https://" + s.ln.Addr().String() }

// Address is host:port of the management API.
func (s *Sim) Address() string { return s.ln.Addr().String() }

// CACertPEM is the CA that signed the management certificate: trust it to verify the API.
func (s *Sim) CACertPEM() string { return s.ca.CACertPEM() }

// Close stops the server and every vserver listener and waits for their goroutines.
func (s *Sim) Close() {
	s.close.Do(func() {
		if s.srv != nil {
			_ = s.srv.Close()
		}
		s.mu.Lock()
		if s.plain != nil {
			_ = s.plain.Close()
		}
		for _, p := range s.parts {
			for _, v := range p.vservers {
				if v.ln != nil {
					_ = v.ln.Close()
				}
			}
		}
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// AddVServer adds a vserver; an SSL one gets a TLS listener on 127.0.0.1.
func (s *Sim) AddVServer(v VServer) error {
	if v.Kind != KindLB && v.Kind != KindGateway && v.Kind != KindCS {
		return fmt.Errorf("nitrosim: vserver %q: kind must be %s, %s or %s", v.Name, KindLB, KindGateway, KindCS)
	}
	if v.ServiceType == "" {
		v.ServiceType = "SSL"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.parts[orDefault(v.Partition)]
	if !ok {
		return fmt.Errorf("nitrosim: vserver %q: no partition %q", v.Name, v.Partition)
	}
	if _, dup := p.vservers[v.Name]; dup {
		return fmt.Errorf("nitrosim: vserver %q exists", v.Name)
	}
	vs := &vserver{VServer: v, sni: v.SNI}
	if isSSL(v.ServiceType) {
		if v.Profile == "" && s.cfg.DefaultProfile {
			vs.Profile = DefaultFrontendProfile
		}
		if vs.Profile != "" && p.profiles[vs.Profile] == nil {
			p.profiles[vs.Profile] = &sslProfile{name: vs.Profile, sni: v.SNI}
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		vs.ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12,
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.servedFaults.Serve(orDefault(v.Partition)+"/"+v.Name, func() (*tls.Certificate, error) { return s.servedCert(p, vs, hello) })
			}})
		s.wg.Add(1)
		go s.acceptLoop(vs.ln)
	}
	p.vservers[v.Name] = vs
	return nil
}

// acceptLoop completes handshakes on a vserver listener: the certificate is all a client comes
// for. Each connection is closed once the client closes it, or after five seconds.
func (s *Sim) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				_ = c.Close()
			}()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if tc, ok := c.(*tls.Conn); ok && tc.Handshake() == nil {
				// Wait for the client's close, so it never reads a reset before its own checks.
				_, _ = tc.Read(make([]byte, 1))
			}
		}()
	}
}

// ServedAddress is the TLS listener of an SSL vserver (any partition), "" if there is none.
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

// isSSL reports whether a servicetype takes server certificates.
func isSSL(serviceType string) bool { return serviceType == "SSL" || serviceType == "SSL_TCP" }

// sniEnabled is the vserver's SNI setting, or its profile's when it has one.
func (p *partition) sniEnabled(v *vserver) bool {
	if v.Profile != "" {
		if pr := p.profiles[v.Profile]; pr != nil {
			return pr.sni
		}
	}
	return v.sni
}

// servedCert picks the certificate a handshake gets: with SNI enabled, an SNI certificate whose
// names match the client's server name; else a default (non-SNI) certificate. Among candidates
// the first the client supports is taken, so an RSA and an ECDSA default certificate can serve
// side by side (Citrix docs "ECDSA cipher suites support": the vserver "automatically selects
// the appropriate server certificate to present to the client").
func (s *Sim) servedCert(p *partition, v *vserver, hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sniCerts, defaults []*certKey
	for _, b := range v.bindings {
		ck := p.certkeys[b.certkey]
		if ck == nil || ck.loaded == nil {
			continue
		}
		switch {
		case !b.sni:
			defaults = append(defaults, ck)
		case p.sniEnabled(v) && hello.ServerName != "" && ck.leaf.VerifyHostname(hello.ServerName) == nil:
			sniCerts = append(sniCerts, ck)
		}
	}
	// With both key types bound the docs say the choice follows the vserver's cipher priority;
	// the simulator offers ECDSA first to a client that takes both, so each is reachable.
	ecdsaFirst := func(list []*certKey) {
		sort.SliceStable(list, func(i, j int) bool {
			return list[i].leaf.PublicKeyAlgorithm == x509.ECDSA && list[j].leaf.PublicKeyAlgorithm != x509.ECDSA
		})
	}
	ecdsaFirst(sniCerts)
	ecdsaFirst(defaults)
	for _, group := range [][]*certKey{sniCerts, defaults} {
		for _, ck := range group {
			out := chainOf(p, ck)
			if hello.SupportsCertificate(out) == nil {
				return out, nil
			}
		}
	}
	if len(defaults) > 0 {
		return chainOf(p, defaults[0]), nil
	}
	// The appliance has no certificate to offer: the handshake fails.
	return nil, errors.New("no server certificate bound")
}

// chainOf is a certkey's loaded certificate and key with the chain its links make, without the
// self-signed root (the appliance does not send roots: "Install, link, and update certificates").
func chainOf(p *partition, ck *certKey) *tls.Certificate {
	out := &tls.Certificate{Certificate: [][]byte{ck.leaf.Raw}, PrivateKey: ck.loaded.PrivateKey, Leaf: ck.leaf}
	seen := map[string]bool{ck.name: true}
	for link := ck.link; link != "" && !seen[link]; {
		seen[link] = true
		ca := p.certkeys[link]
		if ca == nil || ca.leaf == nil || ca.leaf.CheckSignatureFrom(ca.leaf) == nil {
			break
		}
		out.Certificate = append(out.Certificate, ca.leaf.Raw)
		link = ca.link
	}
	return out
}

// load reads a certkey's files as the appliance does on add and update.
func (ck *certKey) load(p *partition) *nitroErr {
	c, e := checkPair(p, sslPath(ck.cert), keyPath(ck.key))
	if e != nil {
		return e
	}
	ck.leaf, ck.loaded = c, nil
	if ck.key != "" {
		k, _ := parseKey(p.files[sslPath(ck.key)])
		ck.loaded = &tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
	}
	return nil
}

// keyPath resolves a key file name; "" stays "" (a CA certificate has none).
func keyPath(k string) string {
	if k == "" {
		return ""
	}
	return sslPath(k)
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

// generateKey makes the key file for sslrsakey (rsaBits > 0) or sslecdsakey (curve).
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

// ---- fault injection (goroutine-safe) ----

// SetLatency delays every management request by d.
func (s *Sim) SetLatency(d time.Duration) { s.mu.Lock(); s.latency = d; s.mu.Unlock() }

// FailNext makes the next n requests matching op fail with HTTP status and NITRO errorcode
// code. op is "METHOD type" (any action: "POST login", "POST sslcertkey",
// "PUT sslvserver_sslcertkey_binding"), "METHOD type?action=x" ("POST sslcertkey?action=update")
// or "*" for any request.
func (s *Sim) FailNext(op string, n, status, code int) {
	s.mu.Lock()
	s.faults = append(s.faults, &fault{op: op, n: n, status: status, code: code})
	s.mu.Unlock()
}

// ExpireSessions ends every session, so the next request on one gets 444.
func (s *Sim) ExpireSessions() {
	s.mu.Lock()
	for _, ss := range s.sessions {
		ss.expires = time.Now().Add(-time.Second)
	}
	s.mu.Unlock()
}

// FailSave makes the next n "save ns config" fail.
func (s *Sim) FailSave(n int) { s.mu.Lock(); s.failSaves = n; s.mu.Unlock() }

// ---- what an administrator configures by hand (CLI or GUI), for tests ----

// AdminCertKey is a certkey an administrator added, with file names as typed: relative names
// are relative to /nsconfig/ssl, as in "add ssl certKey ns-server-certificate -cert
// ns-server.cert -key ns-server.key".
type AdminCertKey struct {
	Partition       string
	Name            string
	CertFile        string
	KeyFile         string
	CertPEM, KeyPEM []byte
	BindTo          string // an SSL vserver, "" for none
	SNI             bool
	LinkTo          string // issuer certkey, "" for none
}

// AddAdminCertKey writes the files, adds the certkey and binds it, as an administrator would.
func (s *Sim) AddAdminCertKey(a AdminCertKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.parts[orDefault(a.Partition)]
	if !ok {
		return fmt.Errorf("nitrosim: no partition %q", a.Partition)
	}
	p.files[sslPath(a.CertFile)] = a.CertPEM
	if a.KeyFile != "" {
		p.files[sslPath(a.KeyFile)] = a.KeyPEM
	}
	ck := &certKey{name: a.Name, cert: a.CertFile, key: a.KeyFile, link: a.LinkTo}
	if e := ck.load(p); e != nil {
		return fmt.Errorf("nitrosim: admin certkey %s: %s", a.Name, e.msg)
	}
	p.certkeys[a.Name] = ck
	if a.BindTo != "" {
		v, e := s.sslVServer(p, a.BindTo)
		if e != nil {
			return fmt.Errorf("nitrosim: bind %s: %s", a.Name, e.msg)
		}
		if a.SNI {
			v.sni = true
			if pr := p.profiles[v.Profile]; pr != nil {
				pr.sni = true
			}
		}
		v.bindings = append(v.bindings, binding{certkey: a.Name, sni: a.SNI})
	}
	return nil
}

// BindElsewhere binds certkey at a place that is not an SSL vserver: kind is PlaceService,
// PlaceServiceGroup, PlaceProfile, PlaceVPNGlobal or PlaceSAMLAction.
func (s *Sim) BindElsewhere(partitionName, kind, name, certkey string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.parts[orDefault(partitionName)]
	if !ok {
		return fmt.Errorf("nitrosim: no partition %q", partitionName)
	}
	if _, ok := p.certkeys[certkey]; !ok {
		return fmt.Errorf("nitrosim: no certkey %q", certkey)
	}
	p.places = append(p.places, place{kind: kind, name: name, certkey: certkey})
	return nil
}

// ProfileSNI reports whether SNI is enabled on an SSL profile of the default partition.
func (s *Sim) ProfileSNI(profile string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	pr := s.parts["default"].profiles[profile]
	return pr != nil && pr.sni
}

// ---- inspection, for tests ----

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

// Calls returns the requests served since the last call as "METHOD /path?query" (no bodies)
// and clears the log.
func (s *Sim) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.calls
	s.calls = nil
	return out
}

// Saves is how many times a partition's configuration was saved ("" is default).
func (s *Sim) Saves(partitionName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.parts[orDefault(partitionName)]; p != nil {
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

// CertKeys returns the certkey names of a partition ("" is default), sorted.
func (s *Sim) CertKeys(partitionName string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if p := s.parts[orDefault(partitionName)]; p != nil {
		for n := range p.certkeys {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Files returns the full paths of a partition's files ("" is default), sorted.
func (s *Sim) Files(partitionName string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if p := s.parts[orDefault(partitionName)]; p != nil {
		for f := range p.files {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

func orDefault(p string) string {
	if p == "" {
		return "default"
	}
	return p
}
