package bigipsim

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// virtualListener serves one virtual server: TLS with whatever its client-ssl profiles hold in the
// running configuration at the moment of each handshake, then a one-line HTTP answer.
type virtualListener struct {
	addr string
	srv  *http.Server
	ln   net.Listener
}

func (l *virtualListener) close() {
	_ = l.srv.Close()
	_ = l.ln.Close()
}

// listenVirtualLocked opens the listener of a virtual server; s.mu is held.
func (s *Sim) listenVirtualLocked(path string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bigipsim: listener for %s: %w", path, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	for _, st := range []*state{s.running, s.saved} {
		if v, ok := st.virtuals[path]; ok {
			v.port = port
			st.virtuals[path] = v
		}
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			return s.servedFaults.ServeConfig(path, func() (*tls.Config, error) { return s.servedConfig(path, hello.ServerName) })
		},
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "bigipsim virtual server "+path+"\n")
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          quietLog(),
	}
	l := &virtualListener{addr: ln.Addr().String(), srv: srv, ln: ln}
	s.listeners[path] = l
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = srv.Serve(tls.NewListener(ln, cfg))
	}()
	return nil
}

// servedConfig picks the client-ssl profile for a handshake (the one whose server name matches
// the SNI, else the SNI default, else the only one) and serves all of its pairs, so a client gets
// the RSA or the ECDSA certificate it supports. The key is the key object as it is now: a
// certificate replaced in place under a profile serves with the old key, and the handshake fails.
func (s *Sim) servedConfig(path, sni string) (*tls.Config, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.running.virtuals[path]
	if !ok {
		return nil, errors.New("virtual server deleted")
	}
	profiles := s.running.clientSSLOf(v)
	if len(profiles) == 0 {
		return nil, fmt.Errorf("virtual server %s has no client-ssl profile", path)
	}
	chosen := profiles[0]
	if len(profiles) > 1 {
		found := false
		for _, p := range profiles {
			if sni != "" && strings.EqualFold(p.serverName, sni) {
				chosen, found = p, true
				break
			}
		}
		for _, p := range profiles {
			if !found && p.sniDefault {
				chosen, found = p, true
			}
		}
	}
	var certs []tls.Certificate
	for _, e := range chosen.entries {
		c, ok1 := s.running.certs[e.cert]
		k, ok2 := s.running.keys[e.key]
		if !ok1 || !ok2 {
			continue
		}
		tc := tls.Certificate{PrivateKey: k.signer, Leaf: c.certs[0]}
		tc.Certificate = append(tc.Certificate, c.certs[0].Raw)
		if chain, ok := s.running.certs[e.chain]; ok {
			for _, x := range chain.certs {
				tc.Certificate = append(tc.Certificate, x.Raw)
			}
		}
		certs = append(certs, tc)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("client-ssl profile %s has no usable certificate", chosen.path)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: certs}
	s.applySettings(cfg, s.running.effectiveSettings(chosen))
	return cfg, nil
}

// applySettings makes the listener honour the profile's client-certificate authentication and
// protocol options, so a test can see by a handshake that a virtual server kept them:
// peerCertMode require or request with caFile as the trusted client CAs (DevCentral "Client
// SSL Authentication on BIG-IP as in-depth as it can go"; f5-ansible client_certificate), and
// tmOptions no-tlsv1.2 / no-tlsv1.3. Cipher strings are kept and listed, not enforced.
func (s *Sim) applySettings(cfg *tls.Config, set map[string]any) {
	mode, _ := set["peerCertMode"].(string)
	if mode == "require" || mode == "request" {
		pool := x509.NewCertPool()
		if ca, _ := set["caFile"].(string); ca != "" {
			for _, c := range s.running.certs[ca].certs {
				pool.AddCert(c)
			}
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if mode == "require" {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	opts, _ := set["tmOptions"].([]any)
	for _, o := range opts {
		switch o {
		case "no-tlsv1.3":
			cfg.MaxVersion = tls.VersionTLS12
		case "no-tlsv1.2":
			cfg.MinVersion = tls.VersionTLS13
		}
	}
}
