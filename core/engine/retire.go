package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// RetiredItem is a certificate the state database holds but the configuration no longer has:
// its objects may still be on the device and its certificate valid at the CA.
type RetiredItem struct {
	Certificate string    `json:"certificate"`
	Device      string    `json:"device"`
	Issuer      string    `json:"issuer"`
	Serial      string    `json:"serial,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	Revoked     bool      `json:"revoked,omitempty"`
	// OpenStep is the step of an unfinished operation, when one is left.
	OpenStep state.Step `json:"open_step,omitempty"`
	Reason   string     `json:"reason"`
}

// configured reports whether name is in the configuration (enabled or not).
func (e *Engine) configured(name string) bool {
	if slices.Contains(e.opts.Disabled, name) {
		return true
	}
	return slices.ContainsFunc(e.opts.Certificates, func(c Certificate) bool { return c.Name == name })
}

// Retired lists the certificates in the state that are no longer configured.
func (e *Engine) Retired(ctx context.Context) ([]RetiredItem, error) {
	deployments, err := e.opts.Store.DeploymentSummaries(ctx)
	if err != nil {
		return nil, err
	}
	ops, err := e.opts.Store.OpenOperations(ctx)
	if err != nil {
		return nil, err
	}
	return e.retiredFrom(deployments, ops), nil
}

// retiredFrom is Retired from deployments and open operations already read.
func (e *Engine) retiredFrom(deployments map[string]state.Deployment, ops map[string]*state.Operation) []RetiredItem {
	// A set, not configured() per name: that is a scan of the configuration per certificate.
	configured := make(map[string]bool, len(e.opts.Certificates)+len(e.opts.Disabled))
	for _, c := range e.opts.Certificates {
		configured[c.Name] = true
	}
	for _, name := range e.opts.Disabled {
		configured[name] = true
	}
	byName := map[string]*RetiredItem{}
	for name, d := range deployments {
		if !configured[name] {
			byName[name] = &RetiredItem{Certificate: name, Device: d.Device, Issuer: d.Issuer, Serial: d.Serial, NotAfter: d.NotAfter, Revoked: d.Revoked}
		}
	}
	for name, op := range ops {
		if configured[name] {
			continue
		}
		it := byName[name]
		if it == nil {
			it = &RetiredItem{Certificate: name, Device: op.Device, Issuer: op.Issuer}
			byName[name] = it
		}
		it.OpenStep = op.Step
	}
	out := make([]RetiredItem, 0, len(byName))
	for _, it := range byName {
		var what []string
		if it.Serial != "" {
			state := "still valid at the CA"
			if it.Revoked {
				state = "revoked"
			}
			what = append(what, fmt.Sprintf("serial %s deployed on %s, %s", it.Serial, it.Device, state))
		}
		if it.OpenStep != "" {
			what = append(what, fmt.Sprintf("an unfinished operation stopped after %q", it.OpenStep))
		}
		it.Reason = fmt.Sprintf("retired: no longer in the configuration (%s); `certfleet retire %s [--revoke] [--cleanup]`", strings.Join(what, "; "), it.Certificate)
		out = append(out, *it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Certificate < out[j].Certificate })
	return out
}

// RetireOptions say what else retiring a certificate does.
type RetireOptions struct {
	// Revoke revokes its deployed certificate at the CA.
	Revoke bool
	Reason issuer.RevokeReason
	// Cleanup removes its objects from the device, except any that is still bound.
	Cleanup bool
}

// RetireReport says what Retire did.
type RetireReport struct {
	Revoked bool     `json:"revoked"`
	Removed []string `json:"removed,omitempty"`
	// Kept are device objects left in place, with the reason.
	Kept []string `json:"kept,omitempty"`
}

// Retire forgets a certificate that is no longer configured: optionally revokes it and removes
// its unbound objects from the device, then ends its open operation and deletes its deployment.
// A step that fails stops before the state is changed, so the command can be run again.
func (e *Engine) Retire(ctx context.Context, name string, ro RetireOptions) (RetireReport, error) {
	var rep RetireReport
	if e.configured(name) {
		return rep, fmt.Errorf("certificate %q is still in the configuration: remove it there first (or set enabled: false to keep it without managing it)", name)
	}
	unlock, err := e.opts.Store.Lock(ctx)
	if err != nil {
		return rep, err
	}
	defer unlock()
	d, deployed, err := e.opts.Store.Deployment(ctx, name)
	if err != nil {
		return rep, err
	}
	op, err := e.opts.Store.OpenOperation(ctx, name)
	if err != nil {
		return rep, err
	}
	if !deployed && op == nil {
		return rep, fmt.Errorf("the state database has no certificate %q", name)
	}
	if ro.Revoke && deployed && !d.Revoked {
		if err := e.revokeDeployment(ctx, d, ro.Reason); err != nil {
			return rep, err
		}
		d.Revoked, rep.Revoked = true, true
		if err := e.opts.Store.SaveDeployment(context.WithoutCancel(ctx), d); err != nil {
			return rep, err
		}
	}
	if ro.Cleanup {
		device := d.Device
		if !deployed {
			device = op.Device
		}
		var objects []sdk.ObjectRef
		if deployed {
			objects = append(objects, sdk.ObjectRef{CertRef: d.CertRef, KeyRef: d.KeyRef})
		}
		if op != nil && (op.CertRef != "" || op.KeyRef != "") && (!deployed || op.CertRef != d.CertRef) {
			objects = append(objects, sdk.ObjectRef{CertRef: op.CertRef, KeyRef: op.KeyRef})
		}
		if rep.Removed, rep.Kept, err = e.cleanupUnbound(ctx, device, objects); err != nil {
			return rep, err
		}
	}
	if op != nil {
		if err := e.opts.Store.AbandonOperation(context.WithoutCancel(ctx), op, "the certificate was retired"); err != nil {
			return rep, err
		}
	}
	if deployed {
		if err := e.opts.Store.DeleteDeployment(context.WithoutCancel(ctx), name); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// cleanupUnbound removes objects from a device, never one that Inventory shows bound.
func (e *Engine) cleanupUnbound(ctx context.Context, deviceName string, objects []sdk.ObjectRef) (removed, kept []string, err error) {
	dev, ok := e.opts.Devices[deviceName]
	if !ok {
		return nil, nil, fmt.Errorf("device %q is no longer configured, so its objects cannot be removed; retire without --cleanup and remove them by hand", deviceName)
	}
	p, info, err := e.plugin(ctx, dev)
	if err != nil {
		return nil, nil, err
	}
	if !info.Capabilities.SupportsCleanup {
		return nil, nil, fmt.Errorf("plugin %s cannot remove objects; retire without --cleanup", dev.Plugin)
	}
	inv := e.inventory(ctx, deviceName, false)
	if inv.err != nil {
		return nil, nil, inv.err
	}
	var todo []sdk.ObjectRef
	for _, o := range objects {
		if dc, ok := inv.certs[o.CertRef]; ok && len(dc.Bindings) > 0 {
			var where []string
			for _, b := range dc.Bindings {
				where = append(where, bindingKey(b))
			}
			kept = append(kept, fmt.Sprintf("%s (still bound at %s)", o.CertRef, strings.Join(where, ", ")))
			continue
		}
		todo = append(todo, o)
	}
	if len(todo) == 0 {
		return nil, kept, nil
	}
	cctx, cancel := e.callCtx(ctx)
	results, err := p.Cleanup(cctx, dev.Target, todo)
	cancel()
	if err != nil {
		return nil, kept, fmt.Errorf("cleanup on %s: %w", deviceName, err)
	}
	for _, r := range results {
		ref := r.Object.CertRef
		if ref == "" {
			ref = r.Object.KeyRef
		}
		if r.Removed {
			removed = append(removed, ref)
		} else {
			kept = append(kept, fmt.Sprintf("%s (%s)", ref, r.Reason))
		}
	}
	if info.Capabilities.NeedsCommit && len(removed) > 0 {
		cctx, cancel := e.callCtx(ctx)
		_, err := p.Commit(cctx, dev.Target, sdk.CommitRequest{Description: "certfleet: remove retired certificate objects"})
		cancel()
		if err != nil {
			return removed, kept, fmt.Errorf("commit the removal on %s: %w", deviceName, err)
		}
	}
	return removed, kept, nil
}

// revokeDeployment revokes d's certificate at its issuer.
func (e *Engine) revokeDeployment(ctx context.Context, d state.Deployment, reason issuer.RevokeReason) error {
	iss, ok := e.opts.Issuers[d.Issuer]
	if !ok {
		return fmt.Errorf("certificate %q was issued by %q, which is no longer configured; revoke serial %s at the CA", d.Certificate, d.Issuer, d.Serial)
	}
	if !iss.Capabilities().SupportsRevoke {
		return fmt.Errorf("issuer %q cannot revoke; revoke serial %s at the CA", d.Issuer, d.Serial)
	}
	leaf, err := sdk.ParseCertificatePEM(d.CertPEM)
	if err != nil {
		return fmt.Errorf("recorded certificate of %s: %w", d.Certificate, err)
	}
	if err := iss.Revoke(ctx, issuer.OrderRef(d.OrderRef), leaf, reason); err != nil {
		return fmt.Errorf("revoke %s (serial %s) at %s: %w", d.Certificate, d.Serial, d.Issuer, err)
	}
	return nil
}

var errNothingToReplace = errors.New("nothing deployed to replace")
