package simtls

import (
	"crypto/tls"
	"fmt"
	"sync"
)

// ServedFaults injects faults into what a simulator's data-plane TLS listeners serve, so that a
// client-side check of the served certificate can be shown to catch them. These are fault
// injections, not device rules; each models a failure met in the field:
//   - leaf only: the device sends the server certificate without its intermediates (a Citrix
//     certkey not linked to its issuer, a BIG-IP client-ssl profile without a chain, a PAN-OS
//     firewall without the intermediate imported); browsers that cache intermediates still
//     connect, other clients fail.
//   - frozen: the device reports the change committed, but its data plane keeps serving what it
//     served before (an HA peer that did not take the change, a process that did not reload).
//
// The zero value injects nothing. Methods are safe for concurrent use.
type ServedFaults struct {
	mu       sync.Mutex
	leafOnly bool
	frozen   bool
	last     map[string]tls.Certificate
}

// SetLeafOnly makes every listener send only the leaf, without the chain, or stops that.
func (f *ServedFaults) SetLeafOnly(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leafOnly = on
}

// SetFrozen makes every listener keep serving what it served at its last handshake before the
// call (a listener with no handshake yet serves the current certificate), or stops that.
func (f *ServedFaults) SetFrozen(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = on
}

// Serve filters what listener key serves: serve returns the certificate as the device would
// serve it.
func (f *ServedFaults) Serve(key string, serve func() (*tls.Certificate, error)) (*tls.Certificate, error) {
	return f.apply(key, serve)
}

func (f *ServedFaults) apply(key string, serve func() (*tls.Certificate, error)) (*tls.Certificate, error) {
	c, err := serve()
	if err != nil || c == nil {
		return c, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		f.last = map[string]tls.Certificate{}
	}
	if prev, ok := f.last[key]; ok && f.frozen {
		out := prev
		return f.trim(&out), nil
	}
	f.last[key] = *c
	out := *c
	return f.trim(&out), nil
}

// ServeConfig is Serve for a listener that picks a whole tls.Config per handshake (several
// certificates, e.g. RSA and ECDSA).
func (f *ServedFaults) ServeConfig(key string, serve func() (*tls.Config, error)) (*tls.Config, error) {
	cfg, err := serve()
	if err != nil || cfg == nil {
		return cfg, err
	}
	out := cfg.Clone()
	out.Certificates = nil
	for i := range cfg.Certificates {
		c, _ := f.apply(fmt.Sprintf("%s#%d", key, i), func() (*tls.Certificate, error) { return &cfg.Certificates[i], nil })
		out.Certificates = append(out.Certificates, *c)
	}
	return out, nil
}

func (f *ServedFaults) trim(c *tls.Certificate) *tls.Certificate {
	if f.leafOnly && len(c.Certificate) > 1 {
		c.Certificate = c.Certificate[:1]
	}
	return c
}
