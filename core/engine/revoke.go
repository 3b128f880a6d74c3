package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/state"
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
	if err := e.revokeDeployment(ctx, d, reason); err != nil {
		return err
	}
	d.Revoked = true
	e.progress(c, "revoked serial %s at %s", d.Serial, d.Issuer)
	return e.opts.Store.SaveDeployment(context.WithoutCancel(ctx), d)
}

// RevokeAndReplace revokes a certificate and deploys its replacement in one go, so the device does
// not serve a revoked certificate until the next run. For key compromise the old certificate is
// revoked first (its key must stop being trusted at once, even if the replacement then fails);
// for every other reason the replacement is deployed first and the old certificate revoked only
// once it is no longer served, so clients never meet a revoked certificate.
func (e *Engine) RevokeAndReplace(ctx context.Context, name string, reason issuer.RevokeReason) (Report, error) {
	if reason == issuer.ReasonKeyCompromise {
		if err := e.Revoke(ctx, name, reason); err != nil {
			return Report{}, err
		}
		return e.Run(ctx, RunOptions{Names: []string{name}})
	}
	if _, err := e.selected([]string{name}); err != nil {
		return Report{}, err
	}
	old, ok, err := e.opts.Store.Deployment(ctx, name)
	if err != nil {
		return Report{}, err
	}
	if !ok {
		return Report{}, fmt.Errorf("certificate %q: %w", name, errNothingToReplace)
	}
	if old.Revoked {
		return Report{}, fmt.Errorf("certificate %q (serial %s) is already recorded as revoked; run `certfleet run %s` to replace it", name, old.Serial, name)
	}
	report, err := e.Run(ctx, RunOptions{Names: []string{name}, Force: true})
	if err != nil {
		return report, err
	}
	for _, r := range report.Results {
		if r.Certificate == name && r.Outcome != state.OutcomeDeployed {
			return report, fmt.Errorf("the replacement of %s was not deployed (%s), so serial %s was not revoked: %w", name, r.Outcome, old.Serial, errors.New(r.Error))
		}
	}
	if err := e.revokeDeployment(ctx, old, reason); err != nil {
		return report, fmt.Errorf("the replacement of %s is deployed, but revoking the old serial %s failed: %w", name, old.Serial, err)
	}
	e.progress(Certificate{Name: name, Device: old.Device}, "revoked the replaced serial %s at %s", old.Serial, old.Issuer)
	return report, nil
}
