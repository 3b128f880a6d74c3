package config

import (
	"net"
	"strconv"

	"gopkg.in/yaml.v3"
)

// VerifyEndpoint is where the core checks, over TLS, what a certificate's device serves, when the
// device's plugin does not report it.
type VerifyEndpoint struct {
	// Address is host:port.
	Address string
	// ServerName is sent as SNI; the certificate's common name when empty.
	ServerName string
}

// What to do when the served certificate check fails after a deployment.
const (
	// OnVerifyKeep leaves the new certificate bound and reports the failure (the default).
	OnVerifyKeep = "keep"
	// OnVerifyRollback restores the previous bindings and commits that; the next run binds again.
	OnVerifyRollback = "rollback"
)

func (w *walker) verifyEndpoint(n *yaml.Node, path string) *VerifyEndpoint {
	v := &VerifyEndpoint{}
	var addrNode *yaml.Node
	w.object(n, path, fields{
		"address":     func(n *yaml.Node, p string) { v.Address, addrNode = w.str(n, p), n },
		"server_name": func(n *yaml.Node, p string) { v.ServerName = w.str(n, p) },
	})
	if v.Address == "" {
		w.errs.add(w.pos(n), join(path, "address"), "host:port where clients reach the service, e.g. www.example.com:443", "is missing")
		return v
	}
	host, port, err := net.SplitHostPort(v.Address)
	if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
		w.errs.add(w.pos(addrNode), join(path, "address"), "host:port, e.g. www.example.com:443 or [2001:db8::1]:443", "%q is not host:port", v.Address)
	}
	return v
}

func (w *walker) onVerifyFailure(n *yaml.Node, path string) string {
	s := w.str(n, path)
	if s != OnVerifyKeep && s != OnVerifyRollback {
		w.errs.add(w.pos(n), path, "keep (leave the new certificate bound, report the failure) or rollback (restore the previous bindings)", "%q is not keep or rollback", s)
	}
	return s
}
