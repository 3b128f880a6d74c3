package engine

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// PlanItem is the decision for one certificate.
type PlanItem struct {
	Certificate string    `json:"certificate"`
	Device      string    `json:"device"`
	Issuer      string    `json:"issuer"`
	Action      Action    `json:"action"`
	Reason      string    `json:"reason"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	// Step is where an interrupted operation stopped (resume).
	Step state.Step `json:"step,omitempty"`
	// Error says why the device could not be inspected (ActionUnknown).
	Error string `json:"error,omitempty"`

	cert       Certificate
	deployment *state.Deployment
	op         *state.Operation
	// adopted is the deployment a run records first, for a certificate found live (ActionAdopt,
	// or a renewal of what was found).
	adopted *state.Deployment
}

// Plan is what a run would do.
type Plan struct {
	Items []PlanItem `json:"items"`
	// InventoryCalls counts the device Inventory calls made to build it (one per device).
	InventoryCalls int `json:"inventory_calls"`
	// Retired are certificates the state holds but the configuration no longer has.
	Retired []RetiredItem `json:"retired,omitempty"`
}

// Due returns the items whose action changes something.
func (p Plan) Due() []PlanItem {
	var out []PlanItem
	for _, it := range p.Items {
		if it.Action != ActionNone && it.Action != ActionUnknown && it.Action != ActionBlocked {
			out = append(out, it)
		}
	}
	return out
}

// PlanOptions select what to plan.
type PlanOptions struct {
	// Names limits the plan to these certificates (all when empty).
	Names []string
	// Force renews every selected certificate.
	Force bool
	// NoAdopt enrolls certificates with nothing recorded even when a matching one is live.
	NoAdopt bool
}

// inventory is what one device holds.
type inventory struct {
	certs map[string]sdk.DeviceCertificate // by cert_ref
	// boundAt maps "kind/name" to the cert_refs bound there (several with SNI).
	boundAt map[string][]string
	err     error
}

// Plan decides an action per certificate, contacting each device once (Inventory, read-only) and
// no CA.
func (e *Engine) Plan(ctx context.Context, po PlanOptions) (Plan, error) {
	certs, err := e.selected(po.Names)
	if err != nil {
		return Plan{}, err
	}
	deployments, err := e.opts.Store.Deployments(ctx)
	if err != nil {
		return Plan{}, err
	}
	ops, err := e.opts.Store.OpenOperations(ctx)
	if err != nil {
		return Plan{}, err
	}
	devices := map[string]bool{}
	for _, c := range certs {
		devices[c.Device] = true
	}
	invs := e.inventories(ctx, devices)
	plan := Plan{InventoryCalls: len(invs)}
	now := e.opts.Now()
	for _, c := range certs {
		item := PlanItem{Certificate: c.Name, Device: c.Device, Issuer: c.Issuer, cert: c}
		if d, ok := deployments[c.Name]; ok {
			item.deployment = &d
			item.NotAfter = d.NotAfter
		}
		item.op = ops[c.Name]
		inv := invs[c.Device]
		switch {
		case item.op != nil:
			item.Action, item.Step = ActionResume, item.op.Step
			item.Reason = fmt.Sprintf("%s interrupted after step %q", item.op.Action, item.op.Step)
			if item.op.LastError != "" {
				item.Reason += ": " + item.op.LastError
			}
			if now.Before(item.op.RetryNotBefore) {
				item.Reason = fmt.Sprintf("%s held until %s by the CA's Retry-After: %s", item.op.Action,
					item.op.RetryNotBefore.UTC().Format(time.RFC3339), item.op.LastError)
			}
		case inv.err != nil:
			item.Action, item.Error = ActionUnknown, e.opts.Redact(inv.err.Error())
			item.Reason = "device could not be inspected"
		case item.deployment == nil && !po.NoAdopt && planAdoption(&item, inv, po.Force, now):
		default:
			item.Action, item.Reason = decide(c, item.deployment, inv, po.Force, now)
		}
		plan.Items = append(plan.Items, item)
	}
	e.preflightItems(ctx, plan.Items)
	if len(po.Names) == 0 {
		if plan.Retired, err = e.Retired(ctx); err != nil {
			return plan, err
		}
	}
	return plan, nil
}

// inventories asks each device once for what it holds, a few devices at a time.
func (e *Engine) inventories(ctx context.Context, devices map[string]bool) map[string]inventory {
	out := make(map[string]inventory, len(devices))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, e.opts.Workers)
	for name := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inv inventory
			if err := acquire(ctx, sem); err != nil {
				inv.err = err
			} else {
				inv = e.inventory(ctx, name)
				release(sem)
			}
			mu.Lock()
			out[name] = inv
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (e *Engine) inventory(ctx context.Context, deviceName string) inventory {
	dev, ok := e.opts.Devices[deviceName]
	if !ok {
		return inventory{err: fmt.Errorf("device %q is not configured", deviceName)}
	}
	p, _, err := e.plugin(ctx, dev)
	if err != nil {
		return inventory{err: err}
	}
	cctx, cancel := e.callCtx(ctx)
	defer cancel()
	list, err := p.Inventory(cctx, dev.Target)
	if err != nil {
		return inventory{err: fmt.Errorf("inventory of %s: %w", deviceName, err)}
	}
	inv := inventory{certs: make(map[string]sdk.DeviceCertificate, len(list)), boundAt: map[string][]string{}}
	for _, dc := range list {
		inv.certs[dc.CertRef] = dc
		for _, b := range dc.Bindings {
			inv.boundAt[bindingKey(b)] = append(inv.boundAt[bindingKey(b)], dc.CertRef)
		}
	}
	return inv
}

// bound reports whether certRef is bound at b.
func (inv inventory) bound(b sdk.Binding, certRef string) bool {
	return slices.Contains(inv.boundAt[bindingKey(b)], certRef)
}

// ariRenewAt is when the CA's renewal window (ARI) makes the deployment due: the time chosen in
// the window (RFC 9773 §4.2), or the time it would choose for a record that predates the choice.
func ariRenewAt(d *state.Deployment) time.Time {
	if d.RenewalWindowStart.IsZero() || !d.RenewalAt.IsZero() {
		return d.RenewalAt
	}
	return issuer.RenewalWindow{Start: d.RenewalWindowStart, End: d.RenewalWindowEnd}.RenewAt(d.Fingerprint)
}

// renewAt is when a certificate with the given validity becomes due.
func renewAt(c Certificate, notBefore, notAfter time.Time) time.Time {
	if c.RenewFraction > 0 {
		lifetime := notAfter.Sub(notBefore)
		return notAfter.Add(-time.Duration(float64(lifetime) * c.RenewFraction))
	}
	return notAfter.Add(-c.RenewBefore)
}

func days(d time.Duration) int { return int(math.Floor(d.Hours() / 24)) }

// decide is the renewal policy for a certificate without an operation in progress.
func decide(c Certificate, d *state.Deployment, inv inventory, force bool, now time.Time) (Action, string) {
	if d == nil {
		return ActionEnroll, "no certificate deployed"
	}
	if force {
		return ActionRenew, "renewal forced"
	}
	dc, onDevice := inv.certs[d.CertRef]
	switch {
	case !onDevice:
		return ActionRenew, fmt.Sprintf("drift: the deployed certificate %s is no longer on the device", d.CertRef)
	case dc.SHA256Fingerprint != "" && d.Fingerprint != "" && dc.SHA256Fingerprint != d.Fingerprint:
		return ActionRenew, fmt.Sprintf("drift: %s on the device is not the certificate that was deployed", d.CertRef)
	case d.Revoked:
		return ActionRenew, "revoked by the CA"
	case d.SpecHash != specHash(c):
		return ActionRenew, "subject, names or key changed in the configuration"
	case !now.Before(d.NotAfter):
		return ActionRenew, fmt.Sprintf("expired on %s", d.NotAfter.UTC().Format("2006-01-02"))
	}
	if due := renewAt(c, d.NotBefore, d.NotAfter); !now.Before(due) {
		return ActionRenew, fmt.Sprintf("expires in %d days (renewal window opened %s)", days(d.NotAfter.Sub(now)), due.UTC().Format("2006-01-02"))
	}
	if at := ariRenewAt(d); !at.IsZero() && !now.Before(at) {
		return ActionRenew, fmt.Sprintf("the CA suggests renewal between %s and %s (ARI); the time chosen in it, %s, has come",
			d.RenewalWindowStart.UTC().Format(time.RFC3339), d.RenewalWindowEnd.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	var drift []string
	for _, b := range c.Bindings {
		if !inv.bound(b, d.CertRef) {
			got := strings.Join(inv.boundAt[bindingKey(b)], "+")
			if got == "" {
				got = "nothing"
			}
			drift = append(drift, fmt.Sprintf("%s serves %s", bindingKey(b), got))
		}
	}
	if len(drift) > 0 {
		sort.Strings(drift)
		return ActionRebind, "drift: " + strings.Join(drift, ", ") + " instead of " + d.CertRef
	}
	return ActionNone, fmt.Sprintf("valid for %d more days", days(d.NotAfter.Sub(now)))
}
