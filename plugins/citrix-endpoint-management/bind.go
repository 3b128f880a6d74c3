package cem

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// rollbackToken records, per binding, which certificate held it before Bind.
type rollbackToken struct {
	Version  int              `json:"v"`
	Bindings []rollbackRecord `json:"bindings"`
}

type rollbackRecord struct {
	Role string `json:"role"`
	Name string `json:"name"`
	// PreviousCertRef is empty when nothing certfleet imported held the binding before.
	PreviousCertRef string `json:"previous_cert_ref,omitempty"`
}

const tokenVersion = 1

// checkBindings validates a request's bindings before anything changes: one binding per
// certificate (the server keeps one entry per public key, so one certificate has one role: SEED),
// the listener and SAML bindings named "default", and no SSL listener on a cloud tenant.
func (s *session) checkBindings(ctx context.Context, bindings []sdk.Binding) error {
	if len(bindings) != 1 {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "a certificate takes exactly one binding here, got %d: the server keeps one entry per public key, so one certificate cannot be both e.g. the SSL listener and the SAML certificate; use one certificate per role", len(bindings))
	}
	b := bindings[0]
	role, ok := roleOfKind(b.Kind)
	if !ok {
		return sdk.InvalidArgument(sdk.ReasonUnknownBinding, "binding kind %q: this plugin binds %s, %s or %s", b.Kind, KindServer, KindListener, KindSAML)
	}
	if role != roleServer && b.Name != defaultBindingName {
		return sdk.UnknownBinding("binding %v: the server has one %s certificate, named %q", b, b.Kind, defaultBindingName)
	}
	if b.Name == "" {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v needs a name", b)
	}
	if role == roleListener {
		cloud, err := s.isCloud(ctx)
		if err != nil {
			return err
		}
		if cloud {
			return sdk.FailedPrecondition(sdk.ReasonUnsupported, "on Citrix Endpoint Management the SSL listener certificate is managed by Citrix: send the PFX to Citrix Support (the server, SAML and CA certificates stay yours)")
		}
	}
	return nil
}

// Bind makes the certificate the holder of its binding: the entry is exported with its key and
// imported again under the binding's role (reference §5, "Bind").
func (p *Plugin) Bind(ctx context.Context, t sdk.Target, req sdk.BindRequest) (sdk.BindResult, error) {
	s, err := p.open(ctx, t)
	if err != nil {
		return sdk.BindResult{}, err
	}
	defer s.close(ctx)
	if err := s.checkBindings(ctx, req.Bindings); err != nil {
		return sdk.BindResult{}, err
	}
	b := req.Bindings[0]
	role, _ := roleOfKind(b.Kind)

	tb, err := s.table(ctx)
	if err != nil {
		return sdk.BindResult{}, err
	}
	entry, ok := tb.byRef(req.CertRef)
	if !ok {
		return sdk.BindResult{}, sdk.NotFound("certificate %s is not on the server", req.CertRef)
	}
	if entry.keyID == "" {
		return sdk.BindResult{}, sdk.FailedPrecondition(sdk.ReasonInvalidRequest, "certificate %s was not imported by certfleet (its description has no certfleet tag); it cannot be bound by certfleet", req.CertRef)
	}
	token := rollbackToken{Version: tokenVersion, Bindings: []rollbackRecord{{Role: role, Name: b.Name}}}
	var result sdk.BindResult
	prev, hasPrev := tb.holder(role, b.Name)
	if hasPrev && prev.ID == entry.ID {
		// Bound already (a retried call): nothing to change, and nothing to roll back to.
		return sdk.BindResult{RollbackToken: mustToken(token)}, nil
	}
	if hasPrev {
		token.Bindings[0].PreviousCertRef = prev.certRef
		result.PreviousCertRefs = append(result.PreviousCertRefs, prev.certRef)
	}
	if err := s.rebind(ctx, tb, entry, role, b.Name); err != nil {
		return sdk.BindResult{}, err
	}
	if role == roleListener {
		// Whether an imported listener certificate is served at once or after a restart of every
		// node is unconfirmed, and the API cannot restart the server (reference §3).
		s.log.Warn("the SSL listener certificate was replaced; XenMobile may serve it only after every node is restarted", "cert_ref", req.CertRef)
	}
	result.RollbackToken = mustToken(token)
	return result, nil
}

// rebind imports entry's certificate and key again under role and name, in place of the entry.
func (s *session) rebind(ctx context.Context, tb table, entry row, role, name string) error {
	key, cert, err := s.exportWithKey(ctx, entry.ID)
	if err != nil {
		return err
	}
	chain, err := s.chainOf(ctx, tb, cert)
	if err != nil {
		return err
	}
	password := randomPassword()
	p12, err := keystoreEncoder.Encode(key, cert, chain, password)
	if err != nil {
		return sdk.Internal(sdk.ReasonDeviceError, "encode keystore").WithCause(err)
	}
	if err := s.install(ctx, tb, entry.keyID, role, name, p12, password); err != nil {
		return err
	}
	// A server that neither refused nor replaced the duplicate keeps the old entry: remove it so
	// one entry per key remains, as the console leaves it (SEED).
	after, err := s.table(ctx)
	if err != nil {
		return err
	}
	for _, r := range after.withKey(entry.keyID) {
		if r.ID == entry.ID {
			return s.remove(ctx, r.ID)
		}
	}
	return nil
}

// chainOf returns the CA certificates on the server that issued cert, nearest first, read by
// export (the list has no PEM).
func (s *session) chainOf(ctx context.Context, tb table, cert *x509.Certificate) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	cur := cert
	for depth := 0; depth < 8; depth++ {
		var parent *x509.Certificate
		for _, r := range tb {
			if r.keyID != "" || r.CertDetails.SubjectName.CommonName != cur.Issuer.CommonName {
				continue
			}
			c, err := s.exportCert(ctx, r.ID)
			if err != nil {
				return nil, err
			}
			if c.IsCA && cur.CheckSignatureFrom(c) == nil {
				parent = c
				break
			}
		}
		if parent == nil || parent.Equal(cur) {
			break
		}
		chain = append(chain, parent)
		if parent.CheckSignatureFrom(parent) == nil {
			break
		}
		cur = parent
	}
	return chain, nil
}

func mustToken(t rollbackToken) []byte {
	data, err := json.Marshal(t)
	if err != nil {
		panic(fmt.Sprintf("rollback token: %v", err)) // plain strings only: cannot fail
	}
	return data
}

// Rollback makes each recorded previous certificate the holder of its binding again.
func (p *Plugin) Rollback(ctx context.Context, t sdk.Target, raw []byte) error {
	var token rollbackToken
	if err := json.Unmarshal(raw, &token); err != nil || token.Version != tokenVersion {
		return sdk.InvalidArgument(sdk.ReasonBadRollbackToken, "rollback token is not one this plugin made")
	}
	s, err := p.open(ctx, t)
	if err != nil {
		return err
	}
	defer s.close(ctx)
	for _, rec := range token.Bindings {
		if rec.PreviousCertRef == "" {
			s.log.Warn("nothing certfleet imported held this binding before; the new certificate stays", "role", rec.Role, "name", rec.Name)
			continue
		}
		tb, err := s.table(ctx)
		if err != nil {
			return err
		}
		prev, ok := tb.byRef(rec.PreviousCertRef)
		if !ok {
			return sdk.NotFound("the previous certificate %s of %s/%s is no longer on the server; it cannot be restored", rec.PreviousCertRef, kindOfRole(rec.Role), rec.Name)
		}
		if tb.holds(prev) && prev.role == rec.Role && prev.name == rec.Name {
			continue // restored already
		}
		if err := s.rebind(ctx, tb, prev, rec.Role, rec.Name); err != nil {
			return err
		}
	}
	return nil
}

// Commit has nothing to do: an import is stored and live at once (there is no save or restart
// call in the public API, reference §2).
func (p *Plugin) Commit(context.Context, sdk.Target, sdk.CommitRequest) (sdk.CommitResult, error) {
	return sdk.CommitResult{Changed: false, Message: "nothing to commit: imports take effect on the server at once"}, nil
}
