// Package bigipsim is an F5 BIG-IP simulator: a real HTTPS server for the iControl REST endpoints
// certfleet uses, with the same JSON and error shapes (404 01020036, 409 01020066, bad passphrase
// 01070313, ...), token authentication with the per-user token limit, basic authentication for
// local users, transactions, keys generated on the box (optionally passphrase-protected), CSRs,
// certificate installation from uploaded files, client-ssl profiles, virtual servers, save sys
// config, config-sync, and fault injection. Every virtual server is also a real TLS listener on
// 127.0.0.1 serving the certificate, chain and key of its client-ssl profile(s) from the running
// configuration, so any TLS client can check what is deployed.
//
// What the iControl reference (shared/reference/f5-icontrol.md) marks as unconfirmed is marked
// [UNCONFIRMED] here; where two behaviours are plausible, Config switches between them so the
// plugin is tested against both.
//
// certfleet-sim starts it like this:
//
//	sim, err := bigipsim.New(bigipsim.DefaultConfig())
//	err = sim.Start("127.0.0.1:0")            // or a fixed port
//	fmt.Println(sim.URL())                    // https://127.0.0.1:port: the device address
//	os.WriteFile("bigip-ca.pem", []byte(sim.CACertPEM()), 0o644) // trust anchor (tls.ca_bundle)
//	addr := sim.ServedAddress("vs_www")       // TLS listener of virtual server /Common/vs_www
//	defer sim.Close()
//
// DefaultConfig has user "admin" / "admin-sim-password" (role admin), user "certfleet" /
// "certfleet-sim-password" (role resource-admin: everything but util/bash), partitions Common and
// Tenant1, virtual servers /Common/vs_www (with the factory clientssl profile) and /Common/vs_api
// (plain HTTP), /Tenant1/vs_shop, client-ssl profile /Common/api_clientssl, and device group
// dg_failover.
package bigipsim

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/simtls"
)

// User is a BIG-IP user account.
type User struct {
	Name     string
	Password string
	// Role: "admin" (everything, including util/bash), "resource-admin" (everything but
	// util/bash), "operator" or "guest" (read only). Which roles may run util/bash on a real
	// device is [UNCONFIRMED]; the sim gives it to admin only.
	Role string
	// Provider is the login provider: "tmos" (local, the default) or a remote provider's name
	// ("ldap", ...). Remote users log in only with that loginProviderName and never with basic auth.
	Provider string
}

// VirtualSpec is a virtual server made at start.
type VirtualSpec struct {
	// Name: short (in Common) or /Partition/name.
	Name string
	// Profiles attached, by name or path; client-ssl profiles get context clientside, the others all.
	Profiles []string
}

// ProfileSpec is a client-ssl profile made at start; it inherits its parent's certificate.
type ProfileSpec struct {
	Name string
	// DefaultsFrom is the parent; /Common/clientssl when empty.
	DefaultsFrom string
	ServerName   string
	SNIDefault   bool
	// Settings set on the profile itself, by REST property name ("ciphers", "tmOptions",
	// "peerCertMode", "caFile", ...; see profileSettings); the others are inherited.
	Settings map[string]any
	// Entries replaces the inherited certificate/key pairs (the keys must exist, see AddKey).
	Entries     []ProfileEntry
	Description string
}

// ProfileEntry is one certKeyChain entry of a ProfileSpec.
type ProfileEntry struct {
	Name, Cert, Key, Chain string
}

// Config of a simulated device.
type Config struct {
	Hostname string
	Version  string
	Users    []User
	// Partitions besides Common.
	Partitions        []string
	Virtuals          []VirtualSpec
	ClientSSLProfiles []ProfileSpec
	// DeviceGroups are sync-failover groups; with one, the device is the active member of a pair.
	DeviceGroups []string
	// TokenLimit per user (the built-in admin is exempt); 100 when zero.
	TokenLimit int
	// TokenTimeout of a new token; 1200s when zero.
	TokenTimeout time.Duration
	// MaxUploadChunk is the largest upload request body; 1 MiB when zero [UNCONFIRMED].
	MaxUploadChunk int
	// CSRNeedsPassphrase makes "create sys crypto csr" from a password-protected key require the
	// key's passphrase. Whether a real device needs it is [UNCONFIRMED] (the key object stores the
	// passphrase encrypted, so probably not: the default).
	CSRNeedsPassphrase bool
	// CSRHyphenatedFields makes sys/crypto/csr accept only tmsh-style names ("common-name", ...)
	// and reject the camelCase ones, which are [UNCONFIRMED] beyond commonName and key.
	CSRHyphenatedFields bool
	// KeyCreateIgnoresProtection makes "create sys crypto key" accept securityType and passphrase
	// but make an unprotected key. Whether BIG-IP honours those properties on create is
	// [UNCONFIRMED]: no public client sends them (reference §13); they are the names GET shows.
	KeyCreateIgnoresProtection bool
	// ParentImmutable makes the device refuse a change of a client-ssl profile's defaultsFrom.
	// Sources conflict, so it is [UNCONFIRMED]: f5-ansible's bigip_profile_client_ssl documents
	// parent as "Once this value has been set, it cannot be changed", yet lists parent among its
	// updatables and sends defaultsFrom on update.
	ParentImmutable bool
	// CertFromKeyNeedsPassphrase makes "create sys crypto cert" from a password-protected key
	// (a self-signed certificate made on the box) require the key's passphrase [UNCONFIRMED:
	// no public client makes a certificate from a protected key over REST].
	CertFromKeyNeedsPassphrase bool
	// FailoverState of this unit ("active" when empty; "standby", "offline", ...), as cm/device
	// reports it; certbot-bigip (_get_active_bigip) looks for the unit whose failoverState is active.
	FailoverState string
	// RSAPoolSize is how many RSA-2048 keys are generated ahead once the first one is asked for
	// (each is handed out once); 2 when zero, none when negative.
	RSAPoolSize int
}

// DefaultConfig is a small standalone-or-HA device with objects to bind to.
func DefaultConfig() Config {
	return Config{
		Hostname: "bigip1.sim.local",
		Version:  "15.1.8",
		Users: []User{
			{Name: "admin", Password: "admin-sim-password", Role: "admin"},
			{Name: "certfleet", Password: "certfleet-sim-password", Role: "resource-admin"},
		},
		Partitions: []string{"Tenant1"},
		Virtuals: []VirtualSpec{
			{Name: "vs_www", Profiles: []string{"/Common/tcp", "/Common/http", "/Common/clientssl"}},
			{Name: "vs_api", Profiles: []string{"/Common/tcp", "/Common/http"}},
			{Name: "/Tenant1/vs_shop", Profiles: []string{"/Common/tcp", "/Common/http"}},
		},
		ClientSSLProfiles: []ProfileSpec{{Name: "api_clientssl"}},
		DeviceGroups:      []string{"dg_failover"},
	}
}

// Sim is one simulated BIG-IP.
type Sim struct {
	cfg Config
	// servedFaults: see ServeLeafOnly and FreezeServed.
	servedFaults simtls.ServedFaults

	mu      sync.RWMutex
	running *state
	saved   *state
	tokens  map[string]*token
	txns    map[int64]*transaction
	nextTxn int64
	files   map[string][]byte
	faults  []*Fault
	latency time.Duration
	synced  map[string]int64
	// syncDisconnected: the peer cannot be reached; config-sync never completes.
	syncDisconnected bool
	saves            int
	listeners        map[string]*virtualListener
	opID             int64
	// secretsSeen: every passphrase received and token issued, for leak tests.
	passphrasesSeen map[string]bool
	tokensIssued    []string

	caPEM      string
	mgmtCert   tls.Certificate
	srv        *http.Server
	ln         net.Listener
	rsaPool    chan *rsa.PrivateKey
	poolDemand chan struct{}
	poolOnce   sync.Once
	stop       chan struct{}
	wg         sync.WaitGroup
	started    bool
	closed     bool
}

// New builds a simulator from cfg; nothing listens until Start.
func New(cfg Config) (*Sim, error) {
	if cfg.Hostname == "" {
		cfg.Hostname = "bigip1.sim.local"
	}
	if cfg.Version == "" {
		cfg.Version = "15.1.8"
	}
	if cfg.TokenLimit == 0 {
		cfg.TokenLimit = 100
	}
	if cfg.TokenTimeout == 0 {
		cfg.TokenTimeout = 1200 * time.Second
	}
	if cfg.MaxUploadChunk == 0 {
		cfg.MaxUploadChunk = 1 << 20
	}
	if cfg.FailoverState == "" {
		cfg.FailoverState = "active"
	}
	if cfg.RSAPoolSize == 0 {
		cfg.RSAPoolSize = 2
	}
	if len(cfg.Users) == 0 {
		return nil, errors.New("bigipsim: at least one user is needed")
	}
	s := &Sim{
		cfg: cfg, tokens: map[string]*token{}, txns: map[int64]*transaction{}, nextTxn: time.Now().UnixNano() / 1000,
		files: map[string][]byte{}, synced: map[string]int64{}, listeners: map[string]*virtualListener{},
		stop: make(chan struct{}), passphrasesSeen: map[string]bool{},
		rsaPool: make(chan *rsa.PrivateKey, max(cfg.RSAPoolSize, 0)), poolDemand: make(chan struct{}),
	}
	var err error
	if s.caPEM, s.mgmtCert, err = managementPKI(); err != nil {
		return nil, fmt.Errorf("bigipsim: management certificate: %w", err)
	}
	st := newState()
	for _, p := range cfg.Partitions {
		if !objectName.MatchString(p) {
			return nil, fmt.Errorf("bigipsim: partition name %q", p)
		}
		st.folders[p] = true
	}
	cert, key, err := selfSigned("localhost.localdomain")
	if err != nil {
		return nil, err
	}
	now := time.Now()
	st.keys["/Common/default.key"] = keyObj{path: "/Common/default.key", signer: key, keyType: "ec-private", keySize: 256, curve: "prime256v1", created: now}
	st.certs["/Common/default.crt"] = certObj{path: "/Common/default.crt", certs: []*x509.Certificate{cert}, created: now, updated: now}
	st.clientSSL["/Common/clientssl"] = profileObj{path: "/Common/clientssl", settings: factoryClientSSL(),
		entries: []chainEntry{{name: "default", cert: "/Common/default.crt", key: "/Common/default.key"}}}
	for _, ps := range cfg.ClientSSLProfiles {
		if err := addProfile(st, ps); err != nil {
			return nil, err
		}
	}
	for _, vs := range cfg.Virtuals {
		if err := addVirtual(st, vs); err != nil {
			return nil, err
		}
	}
	s.running, s.saved = st, st.clone()
	return s, nil
}

func addProfile(st *state, ps ProfileSpec) error {
	path, err := fullPath(ps.Name, "")
	if err != nil {
		return fmt.Errorf("bigipsim: client-ssl profile: %w", err)
	}
	parent := ps.DefaultsFrom
	if parent == "" {
		parent = "/Common/clientssl"
	}
	pp, ok := st.clientSSL[parent]
	if !ok {
		return fmt.Errorf("bigipsim: client-ssl profile %s: parent %s does not exist", path, parent)
	}
	if p, _ := splitPath(path); !st.folders[p] {
		return fmt.Errorf("bigipsim: client-ssl profile %s: partition %s does not exist", path, p)
	}
	p := profileObj{path: path, defaultsFrom: parent, entries: pp.entries, serverName: ps.ServerName, sniDefault: ps.SNIDefault,
		description: ps.Description, settings: map[string]any{}}
	for k, v := range ps.Settings {
		if !slices.Contains(profileSettings, k) {
			return fmt.Errorf("bigipsim: client-ssl profile %s: setting %s is not simulated", path, k)
		}
		p.settings[k] = v
	}
	if len(ps.Entries) > 0 {
		p.entries = nil
		for _, e := range ps.Entries {
			ce := chainEntry{name: e.Name, cert: e.Cert, key: e.Key, chain: e.Chain}
			c, k := st.certs[ce.cert], st.keys[ce.key]
			if c.path == "" || k.path == "" || (ce.chain != "" && st.certs[ce.chain].path == "") {
				return fmt.Errorf("bigipsim: client-ssl profile %s: entry %+v names a missing object", path, e)
			}
			if !publicKeysMatch(c.certs[0], k.signer) {
				return fmt.Errorf("bigipsim: client-ssl profile %s: %s is not for %s", path, ce.cert, ce.key)
			}
			p.entries = append(p.entries, ce)
		}
	}
	st.clientSSL[path] = p
	return nil
}

func addVirtual(st *state, vs VirtualSpec) error {
	path, err := fullPath(vs.Name, "")
	if err != nil {
		return fmt.Errorf("bigipsim: virtual server: %w", err)
	}
	if p, _ := splitPath(path); !st.folders[p] {
		return fmt.Errorf("bigipsim: virtual server %s: partition %s does not exist", path, p)
	}
	if _, ok := st.virtuals[path]; ok {
		return fmt.Errorf("bigipsim: virtual server %s exists", path)
	}
	v := virtualObj{path: path}
	for _, name := range vs.Profiles {
		pp, err := fullPath(name, "")
		if err != nil {
			return err
		}
		switch {
		case st.clientSSL[pp].path != "":
			v.profiles = append(v.profiles, attachedProfile{path: pp, context: "clientside"})
		case st.otherProfiles[pp] != "":
			v.profiles = append(v.profiles, attachedProfile{path: pp, context: "all"})
		default:
			return fmt.Errorf("bigipsim: virtual server %s: profile %s does not exist", path, pp)
		}
	}
	st.virtuals[path] = v
	return nil
}

// Start listens on addr (e.g. "127.0.0.1:0") for the management API, and on 127.0.0.1 for each
// virtual server.
func (s *Sim) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("bigipsim: already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bigipsim: listen %s: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{s.mgmtCert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          quietLog(),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.srv.ServeTLS(ln, "", "")
	}()
	paths := make([]string, 0, len(s.running.virtuals))
	for p := range s.running.virtuals {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := s.listenVirtualLocked(p); err != nil {
			return err
		}
	}
	if s.cfg.RSAPoolSize > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			fillRSAPool(s.rsaPool, s.poolDemand, s.stop)
		}()
	}
	s.started = true
	return nil
}

// URL is the management address, https://127.0.0.1:port.
func (s *Sim) URL() string { return "https://" + s.Address() }

// Address is host:port of the management API.
func (s *Sim) Address() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// CACertPEM is the CA that issued the management certificate (valid for 127.0.0.1 and localhost).
func (s *Sim) CACertPEM() string { return s.caPEM }

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
	s.listeners = map[string]*virtualListener{}
	s.mu.Unlock()
	var first error
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			first = err
		}
	}
	for _, l := range listeners {
		l.close()
	}
	s.wg.Wait()
	return first
}

// AddVirtual adds a virtual server (to the running and the saved configuration) and, once the
// sim is started, its TLS listener.
func (s *Sim) AddVirtual(spec VirtualSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := addVirtual(s.running, spec); err != nil {
		return err
	}
	path, _ := fullPath(spec.Name, "")
	s.saved.virtuals[path] = s.running.virtuals[path]
	if s.started {
		return s.listenVirtualLocked(path)
	}
	return nil
}

// AddClientSSLProfile adds a client-ssl profile (to the running and the saved configuration).
func (s *Sim) AddClientSSLProfile(spec ProfileSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := addProfile(s.running, spec); err != nil {
		return err
	}
	path, _ := fullPath(spec.Name, "")
	s.saved.clientSSL[path] = s.running.clientSSL[path]
	return nil
}

// ServedAddress is the TLS address (127.0.0.1:port) where a virtual server is served; for a
// client-ssl profile, that of the first virtual server (by path) it is attached to. Names are
// short (Common) or full paths; "" when there is no such listener.
func (s *Sim) ServedAddress(name string) string {
	path, err := fullPath(name, "")
	if err != nil {
		return ""
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if l, ok := s.listeners[path]; ok {
		return l.addr
	}
	if _, ok := s.running.clientSSL[path]; ok {
		for _, v := range s.running.profileInUse(path) {
			if l, ok := s.listeners[v]; ok {
				return l.addr
			}
		}
	}
	return ""
}

// KeyPassphrase is the passphrase of a password-protected key, as only the device knows it; for
// tests that check it never leaks.
func (s *Sim) KeyPassphrase(path string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.running.keys[path]
	if !ok || k.passphrase == "" {
		return "", false
	}
	return k.passphrase, true
}

// KeyPaths lists the keys in the running configuration.
func (s *Sim) KeyPaths() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.running.keys))
	for p := range s.running.keys {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// PassphrasesReceived lists every key passphrase any request carried (right or wrong), as the
// device saw them; for tests that check none of them leaks.
func (s *Sim) PassphrasesReceived() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.passphrasesSeen))
	for p := range s.passphrasesSeen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// TokensIssued lists every login token the device handed out.
func (s *Sim) TokensIssued() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]string(nil), s.tokensIssued...)
}

// notePassphrases records the values of "passphrase" properties anywhere in a JSON body.
func (s *Sim) notePassphrases(body []byte) {
	if !bytes.Contains(body, []byte(`"passphrase"`)) {
		return
	}
	var v any
	if json.Unmarshal(body, &v) != nil {
		return
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if p, ok := e.(string); ok && k == "passphrase" && p != "" {
					s.passphrasesSeen[p] = true
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	s.mu.Lock()
	walk(v)
	s.mu.Unlock()
}

// ActiveTokens counts the live tokens of a user.
func (s *Sim) ActiveTokens(user string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	now := time.Now()
	for _, t := range s.tokens {
		if t.user == user && now.Before(t.expires) {
			n++
		}
	}
	return n
}

// Saves counts successful "save sys config" calls.
func (s *Sim) Saves() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.saves
}

// Unsaved reports whether the running configuration has changes that were not saved.
func (s *Sim) Unsaved() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.running.generation != s.saved.generation
}

// InSync reports whether the last config-sync to group carried the current configuration.
func (s *Sim) InSync(group string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.synced[group]
	return ok && g == s.running.generation
}

// Restart reboots the device: the running configuration becomes the saved one again and every
// token is gone. Uploaded files stay (they are on disk).
func (s *Sim) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = s.saved.clone()
	s.tokens = map[string]*token{}
	s.txns = map[int64]*transaction{}
}

// FileExists reports whether a file exists on the device's disk (uploads, bulk, CSR files).
func (s *Sim) FileExists(path string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.files[path]
	return ok
}

func (s *Sim) user(name string) (User, bool) {
	for _, u := range s.cfg.Users {
		if u.Name == name {
			if u.Provider == "" {
				u.Provider = "tmos"
			}
			return u, true
		}
	}
	return User{}, false
}

func passwordsEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (s *Sim) nextOpID() int64 {
	s.opID++
	return s.opID
}

// KeyPairSpec is a key with a self-signed certificate for it, as another tool leaves them on a
// device (the Sectigo PCI agent: a password-protected key whose passphrase certfleet never knew).
type KeyPairSpec struct {
	Key, Cert  string // names or full paths
	CommonName string
	// Passphrase protects the key (securityType password) when set.
	Passphrase string
}

// AddKeyPair adds a key (ECDSA P-256) and a certificate for it, to the running and saved
// configuration.
func (s *Sim) AddKeyPair(spec KeyPairSpec) error {
	keyPath, err := fullPath(spec.Key, "")
	if err != nil {
		return err
	}
	certPath, err := fullPath(spec.Cert, "")
	if err != nil {
		return err
	}
	cert, key, err := selfSigned(spec.CommonName)
	if err != nil {
		return err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range []*state{s.running, s.saved} {
		st.keys[keyPath] = keyObj{path: keyPath, signer: key, keyType: "ec-private", keySize: 256, curve: "prime256v1", passphrase: spec.Passphrase, created: now}
		st.certs[certPath] = certObj{path: certPath, certs: []*x509.Certificate{cert}, created: now, updated: now}
	}
	return nil
}

// SetFailoverState changes this unit's failoverState ("active", "standby", ...).
func (s *Sim) SetFailoverState(state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.FailoverState = state
}

// SetSyncDisconnected makes the device group lose (true) or regain its peer: while disconnected,
// cm/sync-status reports "Disconnected" and config-sync changes nothing on the peer.
func (s *Sim) SetSyncDisconnected(disconnected bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncDisconnected = disconnected
}

// ProfileSettings returns a client-ssl profile's effective TLS settings (its own and inherited),
// its parent and its description; ok is false when there is no such profile.
func (s *Sim) ProfileSettings(name string) (settings map[string]any, parent string, ok bool) {
	path, err := fullPath(name, "")
	if err != nil {
		return nil, "", false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.running.clientSSL[path]
	if !ok {
		return nil, "", false
	}
	return s.running.effectiveSettings(p), p.defaultsFrom, true
}

// ClientSSLOf lists the client-ssl profiles a virtual server carries now, in order.
func (s *Sim) ClientSSLOf(virtual string) []string {
	path, err := fullPath(virtual, "")
	if err != nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for _, p := range s.running.clientSSLOf(s.running.virtuals[path]) {
		out = append(out, p.path)
	}
	return out
}

// AddCert adds a certificate object (PEM, one or more certificates: a CA bundle for a profile's
// caFile, say) to the running and saved configuration.
func (s *Sim) AddCert(name, pemData string) error {
	path, err := fullPath(name, "")
	if err != nil {
		return err
	}
	certs, err := sdk.ParseCertificatesPEM(pemData)
	if err != nil {
		return err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range []*state{s.running, s.saved} {
		st.certs[path] = certObj{path: path, certs: certs, created: now, updated: now}
	}
	return nil
}

// ProfileEntries lists a client-ssl profile's pairs as "cert key chain" strings.
func (s *Sim) ProfileEntries(name string) []string {
	path, err := fullPath(name, "")
	if err != nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for _, e := range s.running.clientSSL[path].entries {
		out = append(out, strings.TrimSpace(e.cert+" "+e.key+" "+e.chain))
	}
	return out
}

// CertPEM is the PEM of a certificate object ("" when there is none).
func (s *Sim) CertPEM(name string) string {
	path, err := fullPath(name, "")
	if err != nil {
		return ""
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var b strings.Builder
	for _, c := range s.running.certs[path].certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.String()
}

// CertPaths lists the certificate objects in the running configuration.
func (s *Sim) CertPaths() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.running.certs))
	for p := range s.running.certs {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
