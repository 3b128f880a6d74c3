// Package skeletonsim is the simulator skeleton of the template plugin: a real HTTPS server on
// 127.0.0.1 speaking a small JSON API (keys made on the device, certificates, services that serve
// one certificate, a commit). Replace it with your device's API as its documentation describes it,
// and cite the source of every rule and answer in a comment next to it.
package skeletonsim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/simtls"
)

// Username and Password are the simulator's only account.
const (
	Username = "certfleet"
	Password = "skeleton-secret"
)

// Key is a key pair the device made.
type Key struct {
	Name string `json:"name"`
	key  crypto.Signer
}

// Certificate is an installed certificate.
type Certificate struct {
	Name  string   `json:"name"`
	Key   string   `json:"key"`
	PEM   string   `json:"pem"`
	Chain []string `json:"chain,omitempty"`
}

// Service serves one certificate: Staged until a commit makes it Active.
type Service struct {
	Name   string `json:"name"`
	Staged string `json:"certificate"`
	Active string `json:"active_certificate"`
}

// Sim is a running simulator.
type Sim struct {
	URL   string
	CAPEM string

	mu       sync.Mutex
	keys     map[string]*Key
	certs    map[string]*Certificate
	services map[string]*Service
	stall    chan struct{}
	waiting  int
}

func (s *Sim) stalledRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting
}

// Start runs a simulator with the named services until the test ends.
func Start(t testing.TB, services ...string) *Sim {
	caPEM, cert, err := simtls.ServerIdentity("skeletonsim")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sim{CAPEM: caPEM, keys: map[string]*Key{}, certs: map[string]*Certificate{}, services: map[string]*Service{}}
	for _, name := range services {
		s.services[name] = &Service{Name: name}
	}
	srv := httptest.NewUnstartedServer(s.handler())
	srv.Listener.Close()
	srv.Listener, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Target is the simulator as a device, with good credentials.
func (s *Sim) Target() sdk.Target {
	return sdk.Target{Name: "skeletonsim", Address: s.URL, TLS: sdk.TLSConfig{CABundlePEM: s.CAPEM},
		Credentials: sdk.Credentials{Username: Username, Password: Password}}
}

// Stall holds every request until release is called, as a device that stops answering.
func (s *Sim) Stall(context.Context) (func(), error) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.stall = ch
	s.mu.Unlock()
	return func() {
		// Give the requests whose clients have gone time to notice, so that only those still
		// wanted are served. Up to ten seconds: a loaded test machine can be slow to run the
		// plugin's deadline; a client without a deadline is still waiting after it.
		for i := 0; i < 1000 && s.stalledRequests() > 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		s.mu.Lock()
		s.stall = nil
		s.mu.Unlock()
		close(ch)
	}, nil
}

// ActiveCertificate is the name of the certificate service serves after the last commit.
func (s *Sim) ActiveCertificate(service string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc := s.services[service]; svc != nil {
		return svc.Active
	}
	return ""
}

// Served is the certificate a service serves now, for conformance.Config.Served.
func (s *Sim) Served(_ context.Context, b sdk.Binding) (*x509.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[b.Name]
	if svc == nil || s.certs[svc.Active] == nil {
		return nil, &net.AddrError{Err: "service serves nothing", Addr: b.Name}
	}
	return sdk.ParseCertificatePEM(s.certs[svc.Active].PEM)
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	reply(w, status, apiError{Code: code, Message: msg})
}

func (s *Sim) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/system", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, 200, map[string]string{"hostname": "skeletonsim", "version": "1.0"})
	})
	mux.HandleFunc("POST /v1/keys", s.makeKey)
	mux.HandleFunc("DELETE /v1/keys/{name}", s.deleteKey)
	mux.HandleFunc("GET /v1/certificates", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := []*Certificate{}
		for _, c := range s.certs {
			out = append(out, c)
		}
		reply(w, 200, out)
	})
	mux.HandleFunc("POST /v1/certificates", s.importCert)
	mux.HandleFunc("DELETE /v1/certificates/{name}", s.deleteCert)
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := []*Service{}
		for _, svc := range s.services {
			out = append(out, svc)
		}
		reply(w, 200, out)
	})
	mux.HandleFunc("PUT /v1/services/{name}", s.setService)
	mux.HandleFunc("POST /v1/commit", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, svc := range s.services {
			svc.Active = svc.Staged
		}
		reply(w, 200, map[string]bool{"ok": true})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		stall := s.stall
		s.mu.Unlock()
		if stall != nil {
			// A stalled device processes nothing its client gave up on; a request still waiting
			// when the stall ends is served. Reading the body first lets the server notice a
			// client that closes its connection.
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			s.mu.Lock()
			s.waiting++
			s.mu.Unlock()
			select {
			case <-stall:
			case <-r.Context().Done():
			}
			s.mu.Lock()
			s.waiting--
			s.mu.Unlock()
			if r.Context().Err() != nil {
				return
			}
		}
		user, pass, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user+":"+pass), []byte(Username+":"+Password)) != 1 {
			fail(w, 401, "E_AUTH", "bad username or password")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

type keyRequest struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Bits    int      `json:"bits"`
	Subject Subject  `json:"subject"`
	DNS     []string `json:"dns"`
	IPs     []string `json:"ips"`
}

// Subject is the CSR subject the API takes.
type Subject struct {
	CN, O, OU, L, ST, C string
}

func (s *Sim) makeKey(w http.ResponseWriter, r *http.Request) {
	var req keyRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" {
		fail(w, 400, "E_REQUEST", "a JSON body with a name is required")
		return
	}
	var key crypto.Signer
	var err error
	switch {
	case req.Type == "rsa" && (req.Bits == 2048 || req.Bits == 3072 || req.Bits == 4096):
		key, err = rsa.GenerateKey(rand.Reader, req.Bits)
	case req.Type == "ec" && req.Bits == 256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case req.Type == "ec" && req.Bits == 384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		fail(w, 400, "E_KEYTYPE", "unsupported key "+req.Type)
		return
	}
	if err != nil {
		fail(w, 500, "E_INTERNAL", err.Error())
		return
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: req.Subject.CN}, DNSNames: req.DNS}
	for field, v := range map[*[]string]string{&tmpl.Subject.Organization: req.Subject.O, &tmpl.Subject.OrganizationalUnit: req.Subject.OU,
		&tmpl.Subject.Locality: req.Subject.L, &tmpl.Subject.Province: req.Subject.ST, &tmpl.Subject.Country: req.Subject.C} {
		if v != "" {
			*field = []string{v}
		}
	}
	for _, ip := range req.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		fail(w, 400, "E_CSR", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[req.Name]; ok {
		fail(w, 409, "E_EXISTS", "key "+req.Name+" exists")
		return
	}
	s.keys[req.Name] = &Key{Name: req.Name, key: key}
	reply(w, 201, map[string]string{"name": req.Name, "csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
}

func (s *Sim) importCert(w http.ResponseWriter, r *http.Request) {
	var req Certificate
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" {
		fail(w, 400, "E_REQUEST", "a JSON body with a name is required")
		return
	}
	cert, err := sdk.ParseCertificatePEM(req.PEM)
	if err != nil {
		fail(w, 400, "E_CERT", "not a certificate: "+err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[req.Key]
	if k == nil {
		fail(w, 404, "E_NOKEY", "no key "+req.Key)
		return
	}
	if !sdk.PublicKeysEqual(k.key.Public(), cert.PublicKey) {
		fail(w, 400, "E_KEYMISMATCH", "the certificate is not for key "+req.Key)
		return
	}
	if _, ok := s.certs[req.Name]; ok {
		fail(w, 409, "E_EXISTS", "certificate "+req.Name+" exists")
		return
	}
	s.certs[req.Name] = &req
	reply(w, 201, map[string]string{"name": req.Name})
}

// inUse names the service that stages or serves certificate name, or "".
func (s *Sim) inUse(name string) string {
	for _, svc := range s.services {
		if svc.Staged == name || svc.Active == name {
			return svc.Name
		}
	}
	return ""
}

func (s *Sim) deleteCert(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.certs[name] == nil {
		fail(w, 404, "E_NOTFOUND", "no certificate "+name)
		return
	}
	if svc := s.inUse(name); svc != "" {
		fail(w, 409, "E_INUSE", "certificate "+name+" is used by service "+svc)
		return
	}
	delete(s.certs, name)
	reply(w, 200, map[string]bool{"ok": true})
}

func (s *Sim) deleteKey(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys[name] == nil {
		fail(w, 404, "E_NOTFOUND", "no key "+name)
		return
	}
	for _, c := range s.certs {
		if c.Key == name {
			fail(w, 409, "E_INUSE", "key "+name+" is used by certificate "+c.Name)
			return
		}
	}
	delete(s.keys, name)
	reply(w, 200, map[string]bool{"ok": true})
}

func (s *Sim) setService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req struct {
		Certificate string `json:"certificate"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, 400, "E_REQUEST", "a JSON body is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[name]
	if svc == nil {
		fail(w, 404, "E_NOTFOUND", "no service "+name)
		return
	}
	if req.Certificate != "" && s.certs[req.Certificate] == nil {
		fail(w, 404, "E_NOTFOUND", "no certificate "+req.Certificate)
		return
	}
	svc.Staged = strings.TrimSpace(req.Certificate)
	reply(w, 200, svc)
}
