package engine

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Revoke asks the CA to revoke a certificate's deployed certificate and records it as revoked,
// so that the next run replaces it with a new key.
func (e *Engine) Revoke(ctx context.Context, name string, reason issuer.RevokeReason) error {
	certs, err := e.selected([]string{name})
	if err != nil {
		return err
	}
	c := certs[0]
	unlock, err := e.opts.Store.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	d, ok, err := e.opts.Store.Deployment(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("certificate %q has nothing deployed to revoke", name)
	}
	if d.Revoked {
		return fmt.Errorf("certificate %q (serial %s) is already recorded as revoked; run `certfleet run %s` to replace it", name, d.Serial, name)
	}
	iss, ok := e.opts.Issuers[d.Issuer]
	if !ok {
		return fmt.Errorf("certificate %q was issued by %q, which is no longer configured", name, d.Issuer)
	}
	if !iss.Capabilities().SupportsRevoke {
		return fmt.Errorf("issuer %q cannot revoke; revoke serial %s at the CA", d.Issuer, d.Serial)
	}
	leaf, err := sdk.ParseCertificatePEM(d.CertPEM)
	if err != nil {
		return fmt.Errorf("recorded certificate of %s: %w", name, err)
	}
	if err := iss.Revoke(ctx, issuer.OrderRef(d.OrderRef), leaf, reason); err != nil {
		return fmt.Errorf("revoke %s (serial %s) at %s: %w", name, d.Serial, d.Issuer, err)
	}
	d.Revoked = true
	e.progress(c, "revoked serial %s at %s", d.Serial, d.Issuer)
	return e.opts.Store.SaveDeployment(context.WithoutCancel(ctx), d)
}
