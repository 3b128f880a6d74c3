// Package haproxysim simulates HAProxy's Runtime API (the stats socket on TCP 127.0.0.1, in its
// non-interactive mode) for the certificate commands, and serves each crt-list's committed
// certificates on a real TLS frontend. Every rule and answer cites its source:
//
//   - [MG]   HAProxy management guide (doc/management.txt, 3.x), section 9.3;
//   - [CKCH] src/ssl_ckch.c, [CRTL] src/ssl_crtlist.c, [CLI] src/cli.c (haproxy/haproxy, 3.1+);
//   - [CFG]  HAProxy configuration manual (doc/configuration.txt), "crt-list";
//   - [ACME] acme.sh deploy/haproxy.sh, an independent client of the same commands.
//
// Behaviours no source settles are UNCONFIRMED and have a switch in Options.
package haproxysim

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/simtls"
)

// Options shape the simulated HAProxy.
type Options struct {
	// Version printed by "show info"; "dump ssl cert" exists from 3.1 (git: 021ac6a10,
	// "MEDIUM: ssl/cli: dump ssl cert", first in v3.1-dev8). Default "3.1.0".
	Version string
	// OperatorLevel binds the socket at "level operator": certificate changes answer
	// "Permission denied" ([CLI] cli_has_level, [MG] "level" of the bind line).
	OperatorLevel bool
	// TraditionalKeyPEM: UNCONFIRMED. "dump ssl cert" prints the key with OpenSSL's
	// PEM_write_bio_PrivateKey ([CKCH] cli_io_handler_dump_cert), which writes PKCS#8 ("PRIVATE
	// KEY") on OpenSSL 1.1+/3; builds on other libraries (AWS-LC, wolfSSL, old OpenSSL) may print
	// the traditional "RSA/EC PRIVATE KEY" form. True prints the traditional form.
	TraditionalKeyPEM bool
	// TLS binds the stats socket with "ssl crt ...": "All parameters supported by bind lines are
	// supported" on a stats socket ([CFG] "stats socket"). Address is then tls://127.0.0.1:port
	// and SocketCAPEM verifies it.
	TLS bool
	// CrtLists are the crt-lists of the configuration, each served by a TLS frontend of its own
	// and starting with one administrator's certificate (its default certificate).
	CrtLists []string
}

// store is a certificate store ("ckch_store"): key, leaf and chain under a file name.
type store struct {
	key   crypto.Signer
	cert  *x509.Certificate
	chain []*x509.Certificate
	// fromConfig: referenced by a "crt" directive of the configuration ([CKCH] del ssl cert:
	// "The deletion doesn't work with a certificate referenced directly with the crt directive").
	fromConfig bool
}

type entry struct {
	store   string
	line    string   // the line without the store name: options and filters, as given
	filters []string // SNI filters ([CFG] crt-list "snifilter")
	linenum int
	// isDefault: the first certificate of a bind line is its default certificate ([CFG]
	// crt-list: "The first declared certificate of a bind line is used as a default
	// certificate"); only entries loaded with the configuration get it ([CRTL] the loader sets
	// is_default, "add ssl crt-list" does not).
	isDefault bool
}

type crtList struct {
	name      string
	entries   []*entry
	linecount int
	frontend  net.Listener
}

// transaction is the one certificate transaction HAProxy holds at a time ([CKCH] the global
// ckchs_transaction; [MG] set ssl cert).
type transaction struct {
	path string
	data *store
}

// Sim is a running simulator.
type Sim struct {
	opts Options
	// Address is the stats socket, tcp://127.0.0.1:port.
	Address string
	// CAPEM is the CA of the administrators' certificates served at startup.
	CAPEM string
	// SocketCAPEM verifies the stats socket's certificate when Options.TLS is set.
	SocketCAPEM string

	mu     sync.Mutex
	stores map[string]*store
	lists  map[string]*crtList
	txn    *transaction
	stall  chan struct{}
	// waiting counts stalled commands; commands counts every command received (for tests).
	waiting  int
	commands []string

	// startup is the configuration's stores and crt-lists, what a reload goes back to.
	startupStores map[string]*store
	startupLists  map[string][]*entry

	ln net.Listener
	wg sync.WaitGroup
}

// Start runs a simulator until Close.
func Start(opts Options) (*Sim, error) {
	if opts.Version == "" {
		opts.Version = "3.1.0"
	}
	s := &Sim{opts: opts, stores: map[string]*store{}, lists: map[string]*crtList{}}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "haproxysim administrators' CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	s.CAPEM = sdk.EncodeCertificatePEM(ca)
	for i, name := range opts.CrtLists {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		host := fmt.Sprintf("admin-%d.haproxysim.test", i+1)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(100 + i)), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			return nil, err
		}
		cert, _ := x509.ParseCertificate(der)
		path := fmt.Sprintf("/etc/haproxy/certs/admin-%d.pem", i+1)
		s.stores[path] = &store{key: key, cert: cert, chain: []*x509.Certificate{ca}, fromConfig: true}
		l := &crtList{name: name, linecount: 1, entries: []*entry{{store: path, linenum: 1, isDefault: true}}}
		s.lists[name] = l
	}
	s.startupStores, s.startupLists = map[string]*store{}, map[string][]*entry{}
	for name, st := range s.stores {
		s.startupStores[name] = st
	}
	for name, l := range s.lists {
		s.startupLists[name] = slices.Clone(l.entries)
	}
	s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.Address = "tcp://" + s.ln.Addr().String()
	if opts.TLS {
		caPEM, cert, err := simtls.ServerIdentity("127.0.0.1")
		if err != nil {
			s.ln.Close()
			return nil, err
		}
		s.SocketCAPEM = caPEM
		s.ln = tls.NewListener(s.ln, &tls.Config{Certificates: []tls.Certificate{cert}})
		s.Address = "tls://" + s.ln.Addr().String()
	}
	for _, l := range s.lists {
		if l.frontend, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			s.Close()
			return nil, err
		}
		s.serveFrontend(l)
	}
	s.wg.Add(1)
	go s.acceptCLI()
	return s, nil
}

// Close stops the socket and the frontends.
func (s *Sim) Close() {
	s.ln.Close()
	for _, l := range s.lists {
		if l.frontend != nil {
			l.frontend.Close()
		}
	}
	s.mu.Lock()
	if s.stall != nil {
		close(s.stall)
		s.stall = nil
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Target is the simulator as a certfleet device.
func (s *Sim) Target() sdk.Target {
	return sdk.Target{Name: "haproxysim", Address: s.Address, TLS: sdk.TLSConfig{CABundlePEM: s.SocketCAPEM}}
}

// FrontendAddr is the TLS address serving a crt-list.
func (s *Sim) FrontendAddr(list string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.lists[list]; l != nil && l.frontend != nil {
		return l.frontend.Addr().String()
	}
	return ""
}

// Reload is HAProxy reloaded: it reads the configuration and its files again, so everything
// changed through the Runtime API is gone ("your changes take effect in the memory of the running
// load balancer, but are not stored on disk. They will therefore be lost when the load balancer
// stops", HAProxy's "set ssl cert" reference).
func (s *Sim) Reload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stores = map[string]*store{}
	for name, st := range s.startupStores {
		s.stores[name] = st
	}
	for name, l := range s.lists {
		l.entries = slices.Clone(s.startupLists[name])
		l.linecount = len(l.entries)
	}
	s.txn = nil
}

// Commands returns the commands received so far (verbs and arguments, never payloads).
func (s *Sim) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commands)
}

// Stall holds every command until release is called, as a HAProxy that stops answering. A
// command whose client has gone when the stall ends is not processed.
func (s *Sim) Stall(context.Context) (func(), error) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.stall = ch
	s.mu.Unlock()
	return func() {
		// Commands whose clients have gone are dropped once they notice. Wait up to ten
		// seconds for that: a loaded test machine can be slow to run the plugin's deadline.
		for i := 0; i < 1000 && s.stalled() > 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		s.mu.Lock()
		if s.stall == ch {
			s.stall = nil
			close(ch)
		}
		s.mu.Unlock()
	}, nil
}

func (s *Sim) stalled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting
}

// NewestEntryName is the first DNS name of the certificate on a crt-list's newest line: entries
// are appended ([CRTL] linenum = ++linecount), so after a Bind it names the certificate that
// Bind added, and a client asking for it over TLS gets what the frontend serves for it.
func (s *Sim) NewestEntryName(list string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.lists[list]; l != nil && len(l.entries) > 0 {
		if st := s.stores[l.entries[len(l.entries)-1].store]; st != nil && st.cert != nil && len(st.cert.DNSNames) > 0 {
			return st.cert.DNSNames[0]
		}
	}
	return ""
}

// serveFrontend serves a crt-list over TLS: the certificate whose names (or SNI filters) match
// the client's SNI, else the default certificate ([CFG] crt-list "snifilter": exact names first,
// then wildcards; "If no SNI is presented by the client or if no certificate matched, this will
// fallback to one of the default certificate").
func (s *Sim) serveFrontend(l *crtList) {
	cfg := &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		st := s.selectCert(l, strings.ToLower(hello.ServerName))
		if st == nil {
			return nil, errors.New("no certificate")
		}
		tc := &tls.Certificate{PrivateKey: st.key, Leaf: st.cert, Certificate: [][]byte{st.cert.Raw}}
		for _, c := range st.chain {
			tc.Certificate = append(tc.Certificate, c.Raw)
		}
		return tc, nil
	}}
	ln := l.frontend
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				tc := tls.Server(conn, cfg)
				_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
				if tc.Handshake() == nil {
					_, _ = io.Copy(io.Discard, tc)
				}
			}()
		}
	}()
}

func (s *Sim) selectCert(l *crtList, sni string) *store {
	names := func(e *entry) []string {
		if len(e.filters) > 0 {
			return e.filters
		}
		st := s.stores[e.store]
		if st == nil || st.cert == nil {
			return nil
		}
		return append([]string{st.cert.Subject.CommonName}, st.cert.DNSNames...)
	}
	if sni != "" {
		for _, wildcard := range []bool{false, true} {
			for _, e := range l.entries {
				for _, n := range names(e) {
					n = strings.ToLower(n)
					if !wildcard && n == sni || wildcard && strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:]) {
						return s.stores[e.store]
					}
				}
			}
		}
	}
	for _, e := range l.entries {
		if e.isDefault || slices.Contains(e.filters, "*") {
			return s.stores[e.store]
		}
	}
	return nil
}

func (s *Sim) acceptCLI() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			s.serveCLI(conn)
		}()
	}
}

// serveCLI is one non-interactive connection: "a single line may be sent. It is processed as a
// whole, responses are sent back, and the connection closes after the end of the response"
// [MG 9.3]. A command line ending in "<<" takes a payload up to the next empty line [MG 9.3].
func (s *Sim) serveCLI(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	line = strings.TrimRight(line, "\r\n")
	var payload string
	if strings.HasSuffix(line, " <<") {
		line = strings.TrimSuffix(line, " <<")
		var b strings.Builder
		for {
			pl, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.TrimRight(pl, "\r\n") == "" {
				break
			}
			b.WriteString(pl)
		}
		payload = b.String()
		if len(payload) > 128<<10 {
			// "The payload size is limited to 128KB by default" [MG 9.3].
			_, _ = io.WriteString(conn, "payload too large\n\n")
			return
		}
	}
	s.mu.Lock()
	s.commands = append(s.commands, line)
	stall := s.stall
	if stall != nil {
		s.waiting++
	}
	s.mu.Unlock()
	if stall != nil {
		// The client has nothing more to send: a read that returns means it closed.
		gone := make(chan struct{})
		go func() {
			_, _ = r.ReadByte()
			close(gone)
		}()
		select {
		case <-stall:
		case <-gone:
		}
		s.mu.Lock()
		s.waiting--
		s.mu.Unlock()
		select {
		case <-gone:
			return
		default:
		}
	}
	answer := s.execute(strings.Fields(line), payload)
	// Each answer ends with an empty line [MG 9.3].
	_, _ = io.WriteString(conn, strings.TrimRight(answer, "\n")+"\n\n")
}

func (s *Sim) execute(args []string, payload string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := strings.Join(args[:min(3, len(args))], " ")
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	changes := map[string]bool{"new ssl cert": true, "set ssl cert": true, "commit ssl cert": true, "abort ssl cert": true,
		"del ssl cert": true, "add ssl crt-list": true, "del ssl crt-list": true, "dump ssl cert": true}
	if changes[cmd] && s.opts.OperatorLevel {
		return "Permission denied\n" // [CLI] cli_has_level
	}
	switch {
	case cmd == "show info":
		return fmt.Sprintf("Name: HAProxy\nVersion: %s\nRelease_date: 2025/01/01\nNbthread: 2\nPid: 4242\nnode: haproxysim\ndescription:\n", s.opts.Version)
	case cmd == "show version":
		return s.opts.Version + "\n"
	case cmd == "show ssl cert":
		return s.showCert(arg(3))
	case cmd == "new ssl cert":
		return s.newCert(arg(3))
	case cmd == "set ssl cert":
		return s.setCert(arg(3), payload)
	case cmd == "commit ssl cert":
		return s.commitCert(arg(3))
	case cmd == "abort ssl cert":
		return s.abortCert(arg(3))
	case cmd == "dump ssl cert" && s.versionAtLeast(3, 1):
		return s.dumpCert(arg(3))
	case cmd == "del ssl cert":
		return s.delCert(arg(3))
	case cmd == "show ssl crt-list":
		return s.showCrtList(args[3:])
	case cmd == "add ssl crt-list":
		return s.addCrtList(arg(3), arg(4), payload)
	case cmd == "del ssl crt-list":
		return s.delCrtList(arg(3), arg(4))
	}
	// [CLI] cli_gen_usage_msg: "Unknown command: '<verb>', but maybe one of the following ...".
	return fmt.Sprintf("Unknown command: '%s', but maybe one of the following ones is a better match:\n  help           : full commands list\n", strings.Join(args, " "))
}

func (s *Sim) versionAtLeast(major, minor int) bool {
	var ma, mi int
	_, _ = fmt.Sscanf(s.opts.Version, "%d.%d", &ma, &mi)
	return ma > major || ma == major && mi >= minor
}

// showCert lists the stores, transaction first, or shows one ([MG] "show ssl cert", [CKCH]
// cli_io_handler_show_cert_detail for the field names and order).
func (s *Sim) showCert(name string) string {
	if name == "" {
		var b strings.Builder
		if s.txn != nil {
			b.WriteString("# transaction\n*" + s.txn.path + "\n")
		}
		b.WriteString("# filename\n")
		for _, n := range sortedKeys(s.stores) {
			b.WriteString(n + "\n")
		}
		return b.String()
	}
	st, path, status := s.stores[name], name, ""
	switch {
	case strings.HasPrefix(name, "*"):
		if s.txn == nil || s.txn.path != name[1:] {
			st = nil
		} else {
			st, status = s.txn.data, "Uncommitted"
		}
	case strings.HasPrefix(name, `\*`):
		path = name[1:]
		st = s.stores[path]
	}
	if st == nil {
		return "Can't display the certificate: Not found or the certificate is a bundle!\n"
	}
	if status == "" {
		switch {
		case st.cert == nil:
			status = "Empty"
		case s.inUse(path):
			status = "Used"
		default:
			status = "Unused"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Filename: %s\nStatus: %s\n", name, status)
	if st.cert == nil {
		return b.String()
	}
	c := st.cert
	// The serial's bytes as dump_binary prints them: upper-case hex of the DER integer content.
	serial := c.SerialNumber.Bytes()
	if len(serial) > 0 && serial[0]&0x80 != 0 {
		serial = append([]byte{0}, serial...)
	}
	fmt.Fprintf(&b, "Serial: %s\n", strings.ToUpper(hex.EncodeToString(serial)))
	fmt.Fprintf(&b, "notBefore: %s\n", c.NotBefore.UTC().Format("Jan _2 15:04:05 2006 GMT"))
	fmt.Fprintf(&b, "notAfter: %s\n", c.NotAfter.UTC().Format("Jan _2 15:04:05 2006 GMT"))
	var sans []string
	for _, d := range c.DNSNames {
		sans = append(sans, "DNS:"+d)
	}
	fmt.Fprintf(&b, "Subject Alternative Name: %s\n", strings.Join(sans, ", "))
	fmt.Fprintf(&b, "Algorithm: %s\n", algorithm(c))
	fmt.Fprintf(&b, "SHA1 FingerPrint: %X\n", sha1Sum(c.Raw))
	fmt.Fprintf(&b, "Subject: %s\nIssuer: %s\n", oneline(c.Subject), oneline(c.Issuer))
	for _, ca := range st.chain {
		fmt.Fprintf(&b, "Chain Subject: %s\nChain Issuer: %s\n", oneline(ca.Subject), oneline(ca.Issuer))
	}
	return b.String()
}

// oneline is OpenSSL's X509_NAME_oneline form, "/C=GB/O=certfleet/CN=host".
func oneline(n pkix.Name) string {
	var b strings.Builder
	add := func(k string, vs []string) {
		for _, v := range vs {
			b.WriteString("/" + k + "=" + v)
		}
	}
	add("C", n.Country)
	add("ST", n.Province)
	add("L", n.Locality)
	add("O", n.Organization)
	add("OU", n.OrganizationalUnit)
	if n.CommonName != "" {
		add("CN", []string{n.CommonName})
	}
	return b.String()
}

// algorithm is cert_get_pkey_algo's "RSA2048" / "EC256" (src/ssl_utils.c).
func algorithm(c *x509.Certificate) string {
	spec := sdk.KeySpecOf(c)
	if spec.Type == sdk.KeyTypeECDSA {
		return fmt.Sprintf("EC%d", spec.Bits)
	}
	return fmt.Sprintf("RSA%d", spec.Bits)
}

func (s *Sim) inUse(path string) bool {
	for _, l := range s.lists {
		for _, e := range l.entries {
			if e.store == path {
				return true
			}
		}
	}
	return false
}

// newCert: [CKCH] "New empty certificate store '%s'!", "Certificate '%s' already exists!".
func (s *Sim) newCert(path string) string {
	if path == "" {
		return "'new ssl cert' expects a filename\n"
	}
	if s.stores[path] != nil {
		return fmt.Sprintf("Certificate '%s' already exists!\n", path)
	}
	s.stores[path] = &store{}
	return fmt.Sprintf("New empty certificate store '%s'!\n", path)
}

// setCert: [CKCH] ckch_store_load_payload. One transaction at a time: a set for another file
// while one is open is refused; a set for the same file updates the transaction. The PEM payload
// replaces key, certificate and chain together (ssl_sock_load_pem_into_ckch swaps all three, so
// a payload without a key leaves the store without one).
func (s *Sim) setCert(path, payload string) string {
	if path == "" || payload == "" {
		return "'set ssl cert' expects a filename and a certificate as a payload\n"
	}
	if s.txn != nil && s.txn.path != path {
		return fmt.Sprintf("The ongoing transaction is about '%s' but you are trying to set '%s'\nCan't update %s!\n", s.txn.path, path, path)
	}
	if s.txn == nil && s.stores[path] == nil {
		return fmt.Sprintf("Can't replace a certificate which is not referenced by the configuration!\nCan't update %s!\n", path)
	}
	data, err := parsePEM(payload)
	if err != nil {
		return fmt.Sprintf("unable to load certificate from file '%s': %v.\nCan't load the payload\nCan't update %s!\n", path, err, path)
	}
	if s.txn != nil {
		s.txn.data = data
		return fmt.Sprintf("Transaction updated for certificate %s!\n", path)
	}
	s.txn = &transaction{path: path, data: data}
	return fmt.Sprintf("Transaction created for certificate %s!\n", path)
}

func parsePEM(payload string) (*store, error) {
	st := &store{}
	rest := []byte(payload)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, err
			}
			if st.cert == nil {
				st.cert = c
			} else {
				st.chain = append(st.chain, c)
			}
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			st.key = k.(crypto.Signer)
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			st.key = k
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			st.key = k
		}
	}
	if st.cert == nil {
		// "The PEM must contain at least a Certificate" ([CKCH] ssl_sock_load_pem_into_ckch).
		return nil, errors.New("no certificate found")
	}
	return st, nil
}

// commitCert: [CKCH] ckch_store_update_init / ckch_store_update_process. A key that does not
// match the certificate fails the commit, and the failed transaction stays open (the error path
// does not clear ckchs_transaction): only "abort ssl cert" ends it.
func (s *Sim) commitCert(path string) string {
	if path == "" {
		return "'commit ssl cert' expects a filename\n"
	}
	if s.txn == nil {
		return fmt.Sprintf("No ongoing transaction! !\nCan't commit %s!\n", path)
	}
	if s.txn.path != path {
		return fmt.Sprintf("The ongoing transaction is about '%s' but you are trying to set '%s'\nCan't commit %s!\n", s.txn.path, path, path)
	}
	d := s.txn.data
	if d.key != nil && !sdk.PublicKeysEqual(d.key.Public(), d.cert.PublicKey) {
		return fmt.Sprintf("inconsistencies between private key and certificate loaded '%s'.\nCan't commit %s!\n", path, path)
	}
	if d.key == nil && s.inUse(path) {
		// Rebuilding a frontend's SSL context needs the key.
		return fmt.Sprintf("Committing %s\nunable to load the private key of '%s'.\nFailed!\n", path, path)
	}
	old := s.stores[path]
	d.fromConfig = old != nil && old.fromConfig
	s.stores[path] = d
	s.txn = nil
	dots := ""
	for _, l := range s.lists {
		for _, e := range l.entries {
			if e.store == path {
				dots += "." // one dot per rebuilt instance
			}
		}
	}
	return fmt.Sprintf("Committing %s%s\nSuccess!\n", path, dots)
}

// abortCert: [CKCH] cli_parse_abort_cert.
func (s *Sim) abortCert(path string) string {
	if s.txn == nil {
		return "No ongoing transaction!\n"
	}
	if s.txn.path != path {
		return fmt.Sprintf("The ongoing transaction is about '%s' but you are trying to abort a transaction for '%s'\n", s.txn.path, path)
	}
	s.txn = nil
	return fmt.Sprintf("Transaction aborted for certificate '%s'!\n", path)
}

// dumpCert: [MG] "dump ssl cert": the private key, then the leaf, then the chain, in PEM; a
// transaction with a leading '*'.
func (s *Sim) dumpCert(name string) string {
	st := s.stores[name]
	if strings.HasPrefix(name, "*") {
		st = nil
		if s.txn != nil && s.txn.path == name[1:] {
			st = s.txn.data
		}
	}
	if st == nil || st.cert == nil {
		return "Can't display the certificate: Not found or the certificate is a bundle!\n"
	}
	var b strings.Builder
	if st.key != nil {
		b.WriteString(s.keyPEM(st.key))
	}
	b.WriteString(sdk.EncodeCertificatePEM(st.cert))
	for _, c := range st.chain {
		b.WriteString(sdk.EncodeCertificatePEM(c))
	}
	return b.String()
}

func (s *Sim) keyPEM(key crypto.Signer) string {
	if s.opts.TraditionalKeyPEM {
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			der, _ := x509.MarshalECPrivateKey(k)
			return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
		case *rsa.PrivateKey:
			return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
		}
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func sha1Sum(b []byte) []byte {
	sum := sha1.Sum(b)
	return sum[:]
}

// delCert: [CKCH] cli_parse_del_cert: the store must have no transaction, be unused, and not
// come from the configuration.
func (s *Sim) delCert(path string) string {
	if s.txn != nil && s.txn.path == path {
		return fmt.Sprintf("Can't remove the certificate: ongoing transaction for the certificate '%s'\n", path)
	}
	st := s.stores[path]
	if st == nil {
		return fmt.Sprintf("Can't remove the certificate: certificate '%s' doesn't exist!\n", path)
	}
	if st.fromConfig || s.inUse(path) {
		return fmt.Sprintf("Can't remove the certificate: certificate '%s' in use, can't be deleted!\n", path)
	}
	delete(s.stores, path)
	return fmt.Sprintf("Certificate '%s' deleted!\n", path)
}

// showCrtList: [CRTL] cli_io_handler_dump_crtlist / _entries ("-n" adds ":<line>").
func (s *Sim) showCrtList(args []string) string {
	numbered := len(args) > 0 && args[0] == "-n"
	if numbered {
		args = args[1:]
	}
	if len(args) == 0 {
		if numbered {
			return "'show ssl crt-list -n' expects a filename or a directory\n"
		}
		var b strings.Builder
		for _, n := range sortedKeys(s.lists) {
			b.WriteString(n + "\n")
		}
		return b.String()
	}
	l := s.lists[args[0]]
	if l == nil {
		return "didn't find the specified filename\n"
	}
	var b strings.Builder
	b.WriteString("# " + l.name + "\n")
	for _, e := range l.entries {
		b.WriteString(e.store)
		if numbered {
			fmt.Fprintf(&b, ":%d", e.linenum)
		}
		if e.line != "" {
			b.WriteString(" " + e.line)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// addCrtList: [CRTL] cli_parse_add_crtlist / cli_io_handler_add_crtlist. The certificate must be
// a committed, non-empty store; a crt-list may hold one store on several lines ([CFG] "It is
// possible to use the same <crtfile> on multiple lines"), so a second add adds a second line.
func (s *Sim) addCrtList(list, cert, payload string) string {
	if list == "" || (cert == "" && payload == "") {
		return "'add ssl crtlist' expects a filename and a certificate name\n"
	}
	l := s.lists[list]
	if l == nil {
		return fmt.Sprintf("Can't edit the crt-list: crt-list '%s' does not exist!\n", list)
	}
	rest := ""
	if payload != "" {
		lines := strings.Split(strings.TrimRight(payload, "\n"), "\n")
		if len(lines) > 1 {
			return "Can't edit the crt-list: only one line of payload is supported!\n"
		}
		f := strings.Fields(lines[0])
		if len(f) == 0 {
			return "Can't edit the crt-list: 'add ssl crtlist' should contain the certificate name in the payload\n"
		}
		cert, rest = f[0], strings.Join(f[1:], " ")
	}
	st := s.stores[cert]
	if st == nil {
		return fmt.Sprintf("Can't edit the crt-list: certificate '%s' does not exist!\n", cert)
	}
	if st.cert == nil {
		return fmt.Sprintf("Can't edit the crt-list: certificate '%s' is empty!\n", cert)
	}
	if st.key == nil {
		return fmt.Sprintf("Inserting certificate '%s' in crt-list '%s'\nunable to load the private key.\nFailed!\n", cert, list)
	}
	var filters []string
	for _, f := range strings.Fields(rest) {
		if !strings.HasPrefix(f, "[") && !strings.HasSuffix(f, "]") {
			filters = append(filters, f)
		}
	}
	l.linecount++
	l.entries = append(l.entries, &entry{store: cert, line: rest, filters: filters, linenum: l.linecount})
	return fmt.Sprintf("Inserting certificate '%s' in crt-list '%s'.\nSuccess!\n", cert, list)
}

// delCrtList: [CRTL] cli_parse_del_crtlist: "<cert>[:line]"; several lines of one store need the
// line; a default certificate is never removed (unless strict-sni, which this simulator has not).
func (s *Sim) delCrtList(list, spec string) string {
	if list == "" || spec == "" {
		return "'del ssl crtlist' expects a filename and a certificate name\n"
	}
	cert, lineText, hasLine := strings.Cut(spec, ":")
	line := 0
	if hasLine {
		n, err := strconv.Atoi(lineText)
		if err != nil {
			return fmt.Sprintf("Can't delete the entry: wrong line number after colons in '%s'!\n", spec)
		}
		line = n
	}
	l := s.lists[list]
	if l == nil {
		return fmt.Sprintf("Can't delete the entry: crt-list '%s' does not exist!\n", list)
	}
	if s.stores[cert] == nil {
		return fmt.Sprintf("Can't delete the entry: certificate '%s' does not exist!\n", cert)
	}
	var matches []int
	for i, e := range l.entries {
		if e.store == cert && (line == 0 || e.linenum == line) {
			matches = append(matches, i)
		}
	}
	switch {
	case len(matches) == 0:
		return fmt.Sprintf("Can't delete the entry: certificate '%s' can't be found in crt-list '%s'!\n", cert, list)
	case len(matches) > 1:
		return fmt.Sprintf("Can't delete the entry: found the certificate '%s' in several entries, please specify a line number preceded by colons!\n", cert)
	}
	e := l.entries[matches[0]]
	if e.isDefault {
		return fmt.Sprintf("Can't delete the entry: certificate '%s' cannot be deleted, it is used as default certificate by the following frontends:\n\t- haproxy.cfg:%d\n", cert, 40+matches[0])
	}
	l.entries = slices.Delete(l.entries, matches[0], matches[0]+1)
	return fmt.Sprintf("Entry '%s' deleted in crtlist '%s'!\n", cert, list)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// StoreInfo is what a test may inspect of a store: its certificate and, to look for leaks, its key.
type StoreInfo struct {
	Name string
	Cert *x509.Certificate
	Key  crypto.Signer
	Used bool
}

// Stores lists the committed stores.
func (s *Sim) Stores() []StoreInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []StoreInfo
	for _, name := range sortedKeys(s.stores) {
		st := s.stores[name]
		out = append(out, StoreInfo{Name: name, Cert: st.cert, Key: st.key, Used: s.inUse(name)})
	}
	return out
}

// Transaction names the open certificate transaction, or "".
func (s *Sim) Transaction() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.txn == nil {
		return ""
	}
	return s.txn.path
}
