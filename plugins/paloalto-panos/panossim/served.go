package panossim

import (
	"bytes"
	"context"
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
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// servedListener serves one SSL/TLS service profile of the running configuration.
type servedListener struct {
	ln  net.Listener
	srv *http.Server
}

func (l *servedListener) close(context.Context) { _ = l.srv.Close() }

func listenerKey(vsys, profile string) string {
	if vsys == "" {
		vsys = "shared"
	}
	return vsys + "/" + profile
}

// reconcileListenersLocked starts a listener for every profile of the running configuration that
// has none. A listener stays when its profile goes (handshakes then fail), so addresses are stable.
func (s *Sim) reconcileListenersLocked() error {
	if !s.started || s.closed {
		return nil
	}
	for _, p := range profilesOf(s.running) {
		key := listenerKey(p.vsys, p.node.name)
		if _, ok := s.listeners[key]; ok {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("panossim: listener for %s: %w", key, err)
		}
		vsys, name := p.vsys, p.node.name
		cfg := &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.servedFaults.Serve(vsys+"/"+name, func() (*tls.Certificate, error) { return s.servedCertificate(vsys, name) })
			},
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintf(w, "panossim: ssl-tls-service-profile %s\n", name)
			}),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          log.New(io.Discard, "", 0),
		}
		s.listeners[key] = &servedListener{ln: ln, srv: srv}
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			_ = srv.Serve(tls.NewListener(ln, cfg))
		}()
	}
	return s.reconcileRuleListenersLocked()
}

// parsedLocked parses the certificates of an entry's public-key: the entry's own certificate,
// then whatever chain was imported with it.
func (s *Sim) parsedLocked(pemText string) ([]*x509.Certificate, error) {
	if c, ok := s.certCache[pemText]; ok {
		return c, nil
	}
	certs, err := sdk.ParseCertificatesPEM(pemText)
	if err != nil {
		return nil, err
	}
	s.certCache[pemText] = certs
	return certs, nil
}

// servedCertificate is what the profile serves now: its certificate in the running
// configuration, with the key and the chain (see tlsCertificateLocked).
func (s *Sim) servedCertificate(vsys, profile string) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	p := location(s.running, vsys).child("ssl-tls-service-profile").entry(profile)
	if p == nil {
		return nil, fmt.Errorf("profile %s no longer exists", profile)
	}
	c, err := s.tlsCertificateLocked(vsys, p.value("certificate"))
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", profile, err)
	}
	return c, nil
}

// tlsCertificateLocked is certificate name as referenced from vsys in the running
// configuration, with its key, and the chain exactly as imported onto the entry (DOC-4289: the
// signed certificate followed by its intermediates, one file). With ChainFromCAEntries the
// intermediates still missing are taken from CA entries installed on their own [UNCONFIRMED].
func (s *Sim) tlsCertificateLocked(vsys, name string) (*tls.Certificate, error) {
	ref, ok := s.resolveCertificate(s.running, vsys, name)
	if !ok {
		return nil, fmt.Errorf("certificate %q not found", name)
	}
	certs, err := s.parsedLocked(ref.node.value("public-key"))
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", name, err)
	}
	key, ok := s.privateKeys[ref.node.value("private-key")]
	if !ok {
		return nil, fmt.Errorf("certificate %q has no key", name)
	}
	out := &tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, c := range certs {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	if s.cfg.ChainFromCAEntries {
		for _, c := range s.chainFromEntriesLocked(certs[len(certs)-1]) {
			out.Certificate = append(out.Certificate, c.Raw)
		}
	}
	return out, nil
}

// chainFromEntriesLocked finds the intermediates above cert among the running configuration's CA
// entries, stopping below the self-signed root.
func (s *Sim) chainFromEntriesLocked(cert *x509.Certificate) []*x509.Certificate {
	var pool []*x509.Certificate
	add := func(loc *node) {
		for _, e := range loc.child("certificate").entries() {
			if certs, err := s.parsedLocked(e.value("public-key")); err == nil && certs[0].IsCA {
				pool = append(pool, certs[0])
			}
		}
	}
	add(location(s.running, ""))
	for _, v := range vsysNames(s.running) {
		add(location(s.running, v))
	}
	var chain []*x509.Certificate
	cur := cert
	for depth := 0; depth < 8; depth++ {
		if bytes.Equal(cur.RawSubject, cur.RawIssuer) {
			break
		}
		var parent *x509.Certificate
		for _, c := range pool {
			if bytes.Equal(c.RawSubject, cur.RawIssuer) && cur.CheckSignatureFrom(c) == nil {
				parent = c
				break
			}
		}
		if parent == nil || bytes.Equal(parent.RawSubject, parent.RawIssuer) {
			break
		}
		chain = append(chain, parent)
		cur = parent
	}
	return chain
}

// ServedAddress is host:port of the TLS listener of SSL/TLS service profile name (shared first,
// then the vsys in name order); "" when there is none.
func (s *Sim) ServedAddress(profile string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.listeners[listenerKey("", profile)]; ok {
		return l.ln.Addr().String()
	}
	keys := make([]string, 0, len(s.listeners))
	for k := range s.listeners {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasSuffix(k, "/"+profile) && !strings.HasPrefix(k, "shared/") {
			return s.listeners[k].ln.Addr().String()
		}
	}
	return ""
}

// ServedAddressIn is the listener of profile in vsys ("" = shared).
func (s *Sim) ServedAddressIn(vsys, profile string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.listeners[listenerKey(vsys, profile)]; ok {
		return l.ln.Addr().String()
	}
	return ""
}

// GlobalProtectAddress is the listener of the profile a GlobalProtect portal or gateway (kind
// "portal" or "gateway") uses in the running configuration.
func (s *Sim) GlobalProtectAddress(kind, name string) (string, error) {
	tag := map[string]string{"portal": "global-protect-portal", "gateway": "global-protect-gateway"}[kind]
	if tag == "" {
		return "", errors.New("panossim: kind must be portal or gateway")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	for _, g := range globalProtectOf(s.running) {
		if g.kind != tag || g.node.name != name {
			continue
		}
		ref, ok := s.resolveProfile(s.running, g.vsys, g.profile())
		if !ok {
			return "", fmt.Errorf("panossim: %s %s uses missing profile %q", kind, name, g.profile())
		}
		if l, ok := s.listeners[listenerKey(ref.vsys, ref.node.name)]; ok {
			return l.ln.Addr().String(), nil
		}
		return "", fmt.Errorf("panossim: profile %q is not served", ref.node.name)
	}
	return "", fmt.Errorf("panossim: no %s %q in the running configuration", kind, name)
}
