// Package panossim is a PAN-OS firewall simulator: a real HTTPS server for the XML API (/api/)
// as the team's PAN-OS XML API reference note (panos-xmlapi.md) documents it. It keeps a
// candidate and a running configuration (nothing is live until a commit job finishes), answers
// with the PAN-OS response envelope and codes (403, 6, 7, 10, 12, 17, 19, 20, 400, ...), runs
// xpath-based config get/show/set/edit/delete on the parts certfleet uses, keygen, on-box key pairs
// and CSRs (request certificate generate), export (pkcs10/pem), multipart import checked against
// the pending key, commits (full or partial by admin) as jobs that take time and can fail with
// messages, and serves every SSL/TLS service profile of the running configuration on a real TLS
// listener on 127.0.0.1, so any TLS client sees what is live: the profile's certificate followed by
// exactly the chain imported onto its entry. Faults can be injected.
//
// Facts the reference marks unconfirmed are marked [UNCONFIRMED] here; where two behaviours are
// plausible, Config switches between them so the plugin is tested against both.
//
// certfleet-sim starts it like this:
//
//	sim, err := panossim.New(panossim.DefaultConfig())
//	err = sim.Start("127.0.0.1:0")          // or a fixed port
//	fmt.Println(sim.URL())                  // https://127.0.0.1:port: the device address
//	os.WriteFile("panos-ca.pem", []byte(sim.CACertPEM()), 0o644) // tls.ca_bundle for the device
//	addr := sim.ServedAddress("web-tls")    // TLS listener of SSL/TLS service profile web-tls
//	defer sim.Close()
//
// DefaultConfig has admins "admin" / "admin-sim-password" and "certfleet" /
// "certfleet-sim-password", vsys1, a self-signed certificate bound to the shared SSL/TLS service
// profile "web-tls", and, in vsys1, profile "gp-tls" used by GlobalProtect portal "gp-portal" and
// gateway "gp-gateway", and the SSL Inbound Inspection decryption rule "inbound-app" with
// certificate "sim-factory-app" (DecryptionRuleAddress("vsys1", "inbound-app") serves it).
// Commits take CommitDuration (1 s by default).
package panossim

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk/simtls"
)

// deviceEntry is the one device entry of a firewall's configuration.
const deviceEntry = "localhost.localdomain"

// Admin is an administrator account.
type Admin struct {
	Name     string
	Password string
}

// CertSpec is a certificate made at start: a self-signed ECDSA certificate with its key.
type CertSpec struct {
	Name string
	// Vsys is "" for shared.
	Vsys       string
	CommonName string
}

// ProfileSpec is an SSL/TLS service profile made at start.
type ProfileSpec struct {
	Name string
	// Vsys is "" for shared.
	Vsys string
	// Certificate names the certificate the profile serves.
	Certificate string
}

// GlobalProtectSpec is a GlobalProtect portal or gateway made at start (in a vsys).
type GlobalProtectSpec struct {
	Name string
	// Vsys is vsys1 when empty.
	Vsys string
	// Profile is the SSL/TLS service profile it uses.
	Profile string
}

// Config of a simulated firewall.
type Config struct {
	Hostname  string
	Model     string
	SWVersion string
	Serial    string
	Admins    []Admin
	// Vsys lists the virtual systems; vsys1 when empty. More than one makes the device multi-vsys.
	Vsys         []string
	Certificates []CertSpec
	Profiles     []ProfileSpec
	Portals      []GlobalProtectSpec
	Gateways     []GlobalProtectSpec
	// DecryptionRules are SSL Inbound Inspection decryption rules.
	DecryptionRules []DecryptionRuleSpec
	// HAState is "" (HA disabled), "active" or "passive".
	HAState string

	// GenerateInto is where "request certificate generate" puts the new entry: "" for shared, or a
	// vsys. pan-os-ansible issue #592 records a device that put it in vsys1 [UNCONFIRMED cause].
	GenerateInto string
	// AddCommonNameSAN makes generate add the common name as a DNS SAN when the request's
	// hostname list lacks it. Whether PAN-OS does this is [UNCONFIRMED]; off by default.
	AddCommonNameSAN bool
	// GenerateOverwrites makes "request certificate generate" onto a certificate name that
	// exists replace that entry (key, CSR and certificate) instead of failing. Whether PAN-OS
	// overwrites is [UNCONFIRMED]; off by default: the simulator refuses ("already exists").
	GenerateOverwrites bool
	// KeygenRevokesPrevious makes keygen invalidate the admin's earlier keys, as pango's comment
	// says it does [UNCONFIRMED: version dependent]. Off by default: earlier keys stay valid.
	KeygenRevokesPrevious bool
	// ChainFromCAEntries makes the served chain also take intermediates from CA certificate
	// entries installed on their own. Whether PAN-OS sends such entries to clients is
	// [UNCONFIRMED]; Palo Alto's KB DOC-4289 ("How to Install a Chained Certificate Signed by a
	// Public CA") has the intermediates imported with the signed certificate as one file so that
	// clients get them, which suggests it does not. Off by default: a profile serves exactly what
	// was imported onto its certificate entry.
	ChainFromCAEntries bool
	// RefuseCAImport makes the import of a certificate under a name that holds no pending key fail
	// with "Import of NAME failed. private key doesn't exist for csr", as pan-os-ansible issue #555
	// reports for CA certificates (Panorama 10.1.10-h5) and #399 for keypairs on 10.1+
	// [single-source; which versions do it is UNCONFIRMED].
	RefuseCAImport bool
	// RefuseChainOnKeyEntry makes an import of more than one certificate onto an entry that holds
	// a private key fail as a key mismatch. psiri/letsencrypt_paloalto PR #1 reports PAN-OS 11.x
	// and later 10.x refusing PKCS#12 files built with the chain ("private key mismatch") and
	// switches to the leaf alone; whether PEM imports behave so is [UNCONFIRMED].
	RefuseChainOnKeyEntry bool
	// ShowAdminsWithoutSelf leaves the <self/> marker out of "show admins", as before PAN-OS 10.0
	// (pan-os-python's whoami: "NOTE: PAN-OS 10.0+").
	ShowAdminsWithoutSelf bool
	// KeyLifetime expires API keys this long after keygen (PAN-OS "API key lifetime"); 0 = never.
	KeyLifetime time.Duration
	// CommitDuration is how long a commit job runs; 1 s when zero.
	CommitDuration time.Duration
	// RSAPoolSize is how many RSA-2048 keys are made ahead of time to keep tests quick (each
	// generate still takes a fresh key from the pool, never reused); 2 when zero, none if negative.
	RSAPoolSize int
}

// DefaultConfig is a small single-vsys firewall with objects to bind to.
func DefaultConfig() Config {
	return Config{
		Hostname:  "pa-sim-fw1",
		Model:     "PA-VM",
		SWVersion: "10.2.9",
		Serial:    "007951000123456",
		Admins: []Admin{
			{Name: "admin", Password: "admin-sim-password"},
			{Name: "certfleet", Password: "certfleet-sim-password"},
		},
		Vsys: []string{"vsys1"},
		Certificates: []CertSpec{
			{Name: "sim-factory-web", CommonName: "pa-sim-fw1.sim.local"},
			{Name: "sim-factory-gp", Vsys: "vsys1", CommonName: "gp.sim.local"},
			{Name: "sim-factory-app", Vsys: "vsys1", CommonName: "app.sim.local"},
		},
		Profiles: []ProfileSpec{
			{Name: "web-tls", Certificate: "sim-factory-web"},
			{Name: "gp-tls", Vsys: "vsys1", Certificate: "sim-factory-gp"},
		},
		Portals:         []GlobalProtectSpec{{Name: "gp-portal", Vsys: "vsys1", Profile: "gp-tls"}},
		Gateways:        []GlobalProtectSpec{{Name: "gp-gateway", Vsys: "vsys1", Profile: "gp-tls"}},
		DecryptionRules: []DecryptionRuleSpec{{Name: "inbound-app", Vsys: "vsys1", Certificates: []string{"sim-factory-app"}}},
	}
}

// Sim is a simulated firewall. Its methods are safe for concurrent use.
type Sim struct {
	cfg Config
	// servedFaults: see ServeLeafOnly and FreezeServed.
	servedFaults simtls.ServedFaults

	mu        sync.Mutex
	candidate *node
	running   *node
	// changes are the uncommitted changes, oldest first, for partial commits by admin.
	changes    []*change
	nextChange int
	apiKeys    map[string]apiKey
	// privateKeys maps the opaque <private-key> value of a config entry to the key, which
	// never leaves the simulator.
	privateKeys    map[string]crypto.Signer
	jobs           []*job
	commitDuration time.Duration
	faults         faults
	listeners      map[string]*servedListener
	certCache      map[string][]*x509.Certificate
	keygens        int
	// seen is when each admin last made an authenticated request, for "show admins".
	seen    map[string]time.Time
	started bool
	closed  bool

	rsaPool  chan *rsa.PrivateKey
	stop     chan struct{}
	bg       sync.WaitGroup
	requests atomic.Int64
	calls    callLog

	caPEM  string
	mgmtLn net.Listener
	srv    *http.Server
}

// New makes a simulator from cfg; Start serves it.
func New(cfg Config) (*Sim, error) {
	if len(cfg.Vsys) == 0 {
		cfg.Vsys = []string{"vsys1"}
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "pa-sim"
	}
	if cfg.Model == "" {
		cfg.Model = "PA-VM"
	}
	if cfg.SWVersion == "" {
		cfg.SWVersion = "10.2.9"
	}
	if len(cfg.Admins) == 0 {
		return nil, errors.New("panossim: Config.Admins is empty")
	}
	if cfg.GenerateInto != "" && !contains(cfg.Vsys, cfg.GenerateInto) {
		return nil, fmt.Errorf("panossim: GenerateInto %q is not a vsys of %v", cfg.GenerateInto, cfg.Vsys)
	}
	s := &Sim{
		cfg:            cfg,
		apiKeys:        make(map[string]apiKey),
		privateKeys:    make(map[string]crypto.Signer),
		listeners:      make(map[string]*servedListener),
		certCache:      make(map[string][]*x509.Certificate),
		seen:           make(map[string]time.Time),
		commitDuration: cfg.CommitDuration,
		stop:           make(chan struct{}),
	}
	if s.commitDuration == 0 {
		s.commitDuration = time.Second
	}
	s.candidate = s.baseConfig()
	for _, c := range cfg.Certificates {
		if err := s.addCertificate(c); err != nil {
			return nil, err
		}
	}
	for _, p := range cfg.Profiles {
		if err := s.addProfile(p); err != nil {
			return nil, err
		}
	}
	for _, p := range cfg.Portals {
		if err := s.addGlobalProtect("global-protect-portal", p); err != nil {
			return nil, err
		}
	}
	for _, g := range cfg.Gateways {
		if err := s.addGlobalProtect("global-protect-gateway", g); err != nil {
			return nil, err
		}
	}
	for _, r := range cfg.DecryptionRules {
		if err := s.addDecryptionRule(r); err != nil {
			return nil, err
		}
	}
	if err := validateConfig(s.candidate); err != nil {
		return nil, fmt.Errorf("panossim: initial configuration: %w", err)
	}
	if problems := s.referenceProblems(s.candidate); len(problems) > 0 {
		return nil, fmt.Errorf("panossim: initial configuration: %s", strings.Join(problems, "; "))
	}
	s.running = s.candidate.clone()
	size := cfg.RSAPoolSize
	if size == 0 {
		size = 2
	}
	if size > 0 {
		s.rsaPool = make(chan *rsa.PrivateKey, size)
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			fillRSAPool(s.rsaPool, s.stop)
		}()
	}
	return s, nil
}

func (s *Sim) baseConfig() *node {
	users := elem("users")
	for _, a := range s.cfg.Admins {
		users.children = append(users.children, entry(a.Name, elem("permissions", elem("role-based", leaf("superuser", "yes")))))
	}
	vsys := elem("vsys")
	for _, v := range s.cfg.Vsys {
		vsys.children = append(vsys.children, entry(v, elem("certificate"), elem("ssl-tls-service-profile")))
	}
	return elem("config",
		elem("mgt-config", users),
		elem("shared", elem("certificate"), elem("ssl-tls-service-profile")),
		elem("devices", entry(deviceEntry,
			elem("deviceconfig", elem("system", leaf("hostname", s.cfg.Hostname))),
			vsys,
		)),
	)
}

// location returns the node holding a location's objects ("" = shared), nil if absent.
func location(root *node, vsys string) *node {
	if vsys == "" {
		return root.child("shared")
	}
	return root.path("devices").entry(deviceEntry).child("vsys").entry(vsys)
}

// vsysNames lists the vsys of a configuration.
func vsysNames(root *node) []string {
	var out []string
	for _, e := range root.path("devices").entry(deviceEntry).child("vsys").entries() {
		out = append(out, e.name)
	}
	return out
}

func (s *Sim) multiVsys() bool { return len(s.cfg.Vsys) > 1 }

// Start serves the XML API on addr (e.g. "127.0.0.1:0") with a certificate from the simulator's
// own CA (CACertPEM), and starts a TLS listener for each SSL/TLS service profile.
func (s *Sim) Start(addr string) error {
	caPEM, serverCert, err := managementPKI()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("panossim: listen %s: %w", addr, err)
	}
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		ln.Close()
		return errors.New("panossim: Start called twice or after Close")
	}
	s.caPEM = caPEM
	s.mgmtLn = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12},
		// HTTP/1.1 only, like the device's management server; it also lets faults drop connections.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	s.started = true
	err = s.reconcileListenersLocked()
	s.mu.Unlock()
	if err != nil {
		s.Close()
		return err
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		_ = s.srv.ServeTLS(ln, "", "")
	}()
	return nil
}

// Address is host:port of the management API.
func (s *Sim) Address() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mgmtLn == nil {
		return ""
	}
	return s.mgmtLn.Addr().String()
}

// URL is https://host:port, the device address a certfleet config uses.
func (s *Sim) URL() string { return "https://" + s.Address() }

// CACertPEM is the CA that issued the management certificate (for 127.0.0.1 and localhost).
func (s *Sim) CACertPEM() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caPEM
}

// Close stops every listener and background goroutine.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	srv := s.srv
	listeners := s.listeners
	s.listeners = map[string]*servedListener{}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if srv != nil {
		_ = srv.Shutdown(ctx)
	}
	for _, l := range listeners {
		l.close(ctx)
	}
	s.bg.Wait()
	return nil
}

// AddCertificate adds a self-signed certificate with its key to both configurations, as if
// committed long ago.
func (s *Sim) AddCertificate(spec CertSpec) error {
	return s.addCommitted(func() error { return s.addCertificate(spec) })
}

// AddProfile adds an SSL/TLS service profile to both configurations and serves it.
func (s *Sim) AddProfile(spec ProfileSpec) error {
	return s.addCommitted(func() error { return s.addProfile(spec) })
}

// AddPortal adds a GlobalProtect portal to both configurations.
func (s *Sim) AddPortal(spec GlobalProtectSpec) error {
	return s.addCommitted(func() error { return s.addGlobalProtect("global-protect-portal", spec) })
}

// AddGateway adds a GlobalProtect gateway to both configurations.
func (s *Sim) AddGateway(spec GlobalProtectSpec) error {
	return s.addCommitted(func() error { return s.addGlobalProtect("global-protect-gateway", spec) })
}

// addCommitted applies add to the running configuration and carries it into the candidate.
func (s *Sim) addCommitted(add func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	saved := s.candidate
	s.candidate = s.running.clone()
	if err := add(); err != nil {
		s.candidate = saved
		return err
	}
	if err := validateConfig(s.candidate); err != nil {
		s.candidate = saved
		return err
	}
	if problems := s.referenceProblems(s.candidate); len(problems) > 0 {
		s.candidate = saved
		return errors.New(strings.Join(problems, "; "))
	}
	added := s.candidate
	s.running = added.clone()
	// Pending changes stay pending: replay them onto the new base.
	s.candidate = added.clone()
	for _, ch := range s.changes {
		next := s.candidate.clone()
		if err := ch.apply(next); err == nil {
			s.candidate = next
		}
	}
	return s.reconcileListenersLocked()
}

func (s *Sim) addCertificate(spec CertSpec) error {
	loc := location(s.candidate, spec.Vsys)
	if loc == nil {
		return fmt.Errorf("panossim: certificate %q: no vsys %q", spec.Name, spec.Vsys)
	}
	cert, key, err := selfSigned(spec.CommonName)
	if err != nil {
		return err
	}
	handle, err := s.storeKey(key)
	if err != nil {
		return err
	}
	e := certificateEntry(spec.Name, []*x509.Certificate{cert})
	e.children = append(e.children, leaf("private-key", handle))
	putEntry(loc.ensure("certificate"), e)
	return nil
}

func (s *Sim) addProfile(spec ProfileSpec) error {
	loc := location(s.candidate, spec.Vsys)
	if loc == nil {
		return fmt.Errorf("panossim: profile %q: no vsys %q", spec.Name, spec.Vsys)
	}
	putEntry(loc.ensure("ssl-tls-service-profile"), entry(spec.Name,
		leaf("certificate", spec.Certificate),
		elem("protocol-settings", leaf("min-version", "tls1-2"), leaf("max-version", "max")),
	))
	return nil
}

func (s *Sim) addGlobalProtect(kind string, spec GlobalProtectSpec) error {
	vsys := spec.Vsys
	if vsys == "" {
		vsys = "vsys1"
	}
	loc := location(s.candidate, vsys)
	if loc == nil {
		return fmt.Errorf("panossim: %s %q: no vsys %q", kind, spec.Name, vsys)
	}
	var e *node
	if kind == "global-protect-portal" {
		e = entry(spec.Name, elem("portal-config", leaf("ssl-tls-service-profile", spec.Profile)))
	} else {
		e = entry(spec.Name, leaf("ssl-tls-service-profile", spec.Profile))
	}
	putEntry(loc.ensure("global-protect").ensure(kind), e)
	return nil
}

// putEntry adds e to list, replacing an entry of the same name.
func putEntry(list *node, e *node) {
	for i, c := range list.children {
		if c.tag == "entry" && c.name == e.name {
			list.children[i] = e
			return
		}
	}
	list.children = append(list.children, e)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// --- inspection, for tests and the demo ---

// Candidate returns the candidate configuration at xpath, serialized; "" when absent.
func (s *Sim) Candidate(xpath string) string { return s.dump(xpath, false) }

// Running returns the running configuration at xpath, serialized; "" when absent.
func (s *Sim) Running(xpath string) string { return s.dump(xpath, true) }

func (s *Sim) dump(xpath string, running bool) string {
	steps, err := parseXPath(xpath)
	if err != nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	root := s.candidate
	if running {
		root = s.running
	}
	found, _ := selectNodes(root, steps)
	var b strings.Builder
	for _, n := range found {
		n.write(&b)
	}
	return b.String()
}

// CertificateNames lists the certificate entries of the candidate (or running) configuration as
// "name" (shared) or "vsysN/name", sorted.
func (s *Sim) CertificateNames(running bool) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	root := s.candidate
	if running {
		root = s.running
	}
	var out []string
	for _, e := range location(root, "").child("certificate").entries() {
		out = append(out, e.name)
	}
	for _, v := range vsysNames(root) {
		for _, e := range location(root, v).child("certificate").entries() {
			out = append(out, v+"/"+e.name)
		}
	}
	sort.Strings(out)
	return out
}

// PendingChanges is the number of uncommitted changes.
func (s *Sim) PendingChanges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	return len(s.changes)
}

// PendingChangesBy is the number of uncommitted changes admin made.
func (s *Sim) PendingChangesBy(admin string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	n := 0
	for _, ch := range s.changes {
		if ch.admin == admin {
			n++
		}
	}
	return n
}

// StageAs makes a config set of element at xpath in the candidate configuration as admin, as
// another administrator's unfinished work in the web interface would be: pending until a commit
// that includes admin's changes.
func (s *Sim) StageAs(admin, xpath, element string) error {
	if _, ok := s.admin(admin); !ok {
		return fmt.Errorf("panossim: no admin %q", admin)
	}
	steps, err := parseXPath(xpath)
	if err != nil {
		return err
	}
	elems, err := parseFragment(element)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	if aerr := s.setLocked(admin, xpath, steps, elems); aerr != nil {
		return aerr
	}
	return nil
}

// Keygens counts successful keygen calls.
func (s *Sim) Keygens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keygens
}

// Requests counts API requests received.
func (s *Sim) Requests() int64 { return s.requests.Load() }
