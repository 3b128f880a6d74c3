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
	in, err := e.readRunInputs(ctx, po, false)
	if err != nil {
		return Plan{}, err
	}
	plan := e.planFrom(ctx, in.certs, in.deployments, in.ops, po, 0)
	if len(po.Names) == 0 {
		plan.Retired = e.retiredFrom(in.deployments, in.ops)
	}
	return plan, nil
}

// runInputs is what Run and Plan plan from.
type runInputs struct {
	certs []Certificate
	// deployments are the recorded deployments, without their PEM bodies.
	deployments map[string]state.Deployment
	ops         map[string]*state.Operation
	// caDue are the deployments whose day-2 CA check is due (whole); the run makes the checks
	// while its devices are inventoried, and plans from what the CA said.
	caDue map[string]state.Deployment
	now   time.Time
}

// readRunInputs reads what Run and Plan plan from (with caChecks, the day-2 CA checks due, which
// only a run makes), then waits for Options.Ready.
func (e *Engine) readRunInputs(ctx context.Context, po PlanOptions, caChecks bool) (runInputs, error) {
	in := runInputs{now: e.opts.Now()}
	var err error
	if in.certs, err = e.selected(po.Names); err != nil {
		return in, err
	}
	if in.deployments, err = e.opts.Store.DeploymentSummaries(ctx); err != nil {
		return in, err
	}
	if in.ops, err = e.opts.Store.OpenOperations(ctx); err != nil {
		return in, err
	}
	if caChecks && e.opts.RevocationCheckInterval >= 0 {
		if in.caDue, err = e.caChecksDue(ctx, in.now); err != nil {
			return in, err
		}
	}
	return in, e.ready(ctx)
}

// loadWhole reads, for an item that will be worked on, the deployment with its PEM bodies (a
// renewal sends the previous certificate to the CA; a deployment is saved again): the plan was
// made from summaries, and the others never need them.
func (e *Engine) loadWhole(ctx context.Context, it *PlanItem) error {
	if it.deployment == nil || !it.deployment.Summary {
		return nil
	}
	switch it.Action {
	case ActionNone, ActionUnknown, ActionBlocked, ActionAdopt:
		return nil
	}
	d, ok, err := e.opts.Store.Deployment(ctx, it.Certificate)
	if err != nil {
		return err
	}
	if ok {
		it.deployment = &d
	}
	return nil
}

// planFrom plans certs from the recorded deployments and open operations given; the devices'
// places in the run (their ranks for the slots) start at rankBase.
func (e *Engine) planFrom(ctx context.Context, certs []Certificate, deployments map[string]state.Deployment, ops map[string]*state.Operation, po PlanOptions, rankBase int) Plan {
	plan := Plan{Items: make([]PlanItem, len(certs))}
	mayAdopt := func(i int) bool { return mayAdopt(certs[i], deployments, ops, po) }
	plan.InventoryCalls = e.inventories(ctx, certs, rankBase, mayAdopt, nil, func(device string, _ int, idx []int, inv inventory) {
		e.planDevice(ctx, device, &plan, certs, idx, deployments, ops, inv, po)
	})
	return plan
}

// planDevice decides the items (at idx in certs and plan.Items) of one device from its inventory,
// and runs their pre-flight; it returns the device's items.
func (e *Engine) planDevice(ctx context.Context, device string, plan *Plan, certs []Certificate, idx []int,
	deployments map[string]state.Deployment, ops map[string]*state.Operation, inv inventory, po PlanOptions) []*PlanItem {
	now := e.opts.Now()
	items := make([]*PlanItem, len(idx))
	for k, i := range idx {
		plan.Items[i] = e.planItem(certs[i], deployments, ops, inv, po, now)
		items[k] = &plan.Items[i]
	}
	e.preflightDevice(ctx, device, items)
	return items
}

// planItem decides the action for one certificate, given what its device holds.
func (e *Engine) planItem(c Certificate, deployments map[string]state.Deployment, ops map[string]*state.Operation, inv inventory, po PlanOptions, now time.Time) PlanItem {
	item := PlanItem{Certificate: c.Name, Device: c.Device, Issuer: c.Issuer, cert: c}
	// The deployment is decided on in place and kept on the item only when the item is worked
	// on: a fleet's steady-state plan is mostly "nothing to do", whose copy nobody reads again.
	d, deployed := deployments[c.Name]
	var recorded *state.Deployment
	if deployed {
		recorded = &d
		item.NotAfter = d.NotAfter
	}
	item.op = ops[c.Name]
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
	case mayAdopt(c, deployments, ops, po) && planAdoption(&item, inv, po.Force, now):
	default:
		item.Action, item.Reason = decide(c, recorded, inv, po.Force, now)
		if item.Action == ActionUnknown {
			item.Error, item.Reason = item.Reason, "the renewal policy cannot act"
		}
	}
	if deployed && item.Action != ActionNone {
		kept := d
		item.deployment = &kept
	}
	return item
}

// inventories asks each device of certs once for what it holds and hands each answer to use as
// soon as it arrives, with the device's rank and the indexes (in certs) of its certificates; it
// returns the number of devices asked. An answer is dropped once used: a fleet's inventories are
// never all held at once. A device is asked for everything it knows of its certificates only
// when mayAdopt(i) holds for one of them; otherwise for fingerprints and bindings (see inventory).
//
// The devices are ranked in the order their first certificate comes in certs, from rankBase on.
// Each Inventory call, and use with it, holds a worker and a slot of the device (the run's
// slots), ranked before the work on the same device and after the work on every device ranked
// before it: a run starts on a device as soon as its inventory is in, the workers go to the
// devices already being worked first, and the later devices are inventoried as workers come free.
// use is called from several goroutines at once, each time with another device, and only once
// planGate (if not nil) is closed: an answer that comes before gives its slots back while it waits.
func (e *Engine) inventories(ctx context.Context, certs []Certificate, rankBase int, mayAdopt func(i int) bool, planGate <-chan struct{},
	use func(device string, devRank int, idx []int, inv inventory)) int {
	byDevice := map[string][]int{}
	var order []string
	for i, c := range certs {
		if _, seen := byDevice[c.Device]; !seen {
			order = append(order, c.Device)
		}
		byDevice[c.Device] = append(byDevice[c.Device], i)
	}
	var wg sync.WaitGroup
	for k, name := range order {
		devRank := rankBase + k
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := e.opts.Devices[name]
			// Waiting for a slot ends with the context only: a plan is read-only, and a run asked to
			// stop still reports every certificate.
			key, r := "device\x00"+name, rank{device: devRank, cert: -1}
			release, err := e.slots.acquire(ctx, nil, key, dev.Concurrency, true, r)
			if err != nil {
				use(name, devRank, byDevice[name], inventory{err: err})
				return
			}
			defer func() { release() }()
			idx := byDevice[name]
			inv := e.inventory(ctx, name, slices.ContainsFunc(idx, mayAdopt))
			if planGate != nil && !closed(planGate) {
				// Planning waits (for the day-2 CA checks): the worker and the device go back
				// meanwhile, and the device's planning (which may call it) takes them again.
				release()
				release = func() {}
				<-planGate
				if release, err = e.slots.acquire(ctx, nil, key, dev.Concurrency, true, r); err != nil {
					release = func() {}
					inv = inventory{err: err}
				}
			}
			use(name, devRank, idx, inv)
		}()
	}
	wg.Wait()
	return len(order)
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// inventory asks the device what it holds. Adoption reads a certificate's every field (names,
// key, PEM); everything else reads only its cert_ref, fingerprint and bindings, so unless whole
// the device is asked for those alone: a fraction of the answer, and a plugin may save parsing,
// encoding and reading key refs.
func (e *Engine) inventory(ctx context.Context, deviceName string, whole bool) inventory {
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
	if !whole {
		cctx = sdk.WithFingerprintsOnly(cctx)
	}
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

// fightWindow and maxRebinds: a binding repaired maxRebinds times, each within fightWindow of the
// last, is being managed by someone else too.
const (
	fightWindow = 24 * time.Hour
	maxRebinds  = 3
)

// renewAt is when a certificate with the given validity becomes due.
func renewAt(c Certificate, notBefore, notAfter time.Time) time.Time {
	if c.RenewFraction > 0 {
		lifetime := notAfter.Sub(notBefore)
		return notAfter.Add(-time.Duration(float64(lifetime) * c.RenewFraction))
	}
	return notAfter.Add(-c.RenewBefore)
}

func days(d time.Duration) int { return int(math.Floor(d.Hours() / 24)) }

// decideFromState is the part of the renewal policy that needs no inventory: revocation,
// configuration and time. ActionNone (with no reason) when none of them calls for action.
func decideFromState(c Certificate, d *state.Deployment, now time.Time) (Action, string) {
	switch {
	case d.Revoked:
		return ActionRenew, "revoked by the CA"
	case d.SpecHash != specHash(c):
		return ActionRenew, "subject, names or key changed in the configuration"
	case !now.Before(d.NotAfter):
		return ActionRenew, fmt.Sprintf("expired on %s", d.NotAfter.UTC().Format("2006-01-02"))
	}
	if due := renewAt(c, d.NotBefore, d.NotAfter); !now.Before(due) {
		if lifetime := d.NotAfter.Sub(d.NotBefore); c.RenewFraction == 0 && c.RenewBefore >= lifetime {
			// The new certificate would be due the moment it is issued: every run would order again.
			return ActionUnknown, fmt.Sprintf("renew_before %dd is not shorter than the certificate's lifetime of %d days, so every run would order it again; nothing is ordered until renew_before is shorter (e.g. %dd)",
				days(c.RenewBefore), days(lifetime), max(1, days(lifetime)/3))
		}
		return ActionRenew, fmt.Sprintf("expires in %d days (renewal window opened %s)", days(d.NotAfter.Sub(now)), due.UTC().Format("2006-01-02"))
	}
	if at := ariRenewAt(d); !at.IsZero() && !now.Before(at) {
		return ActionRenew, fmt.Sprintf("the CA suggests renewal between %s and %s (ARI); the time chosen in it, %s, has come",
			d.RenewalWindowStart.UTC().Format(time.RFC3339), d.RenewalWindowEnd.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	return ActionNone, ""
}

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
	}
	if action, reason := decideFromState(c, d, now); action != ActionNone {
		return action, reason
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
		reason := "drift: " + strings.Join(drift, ", ") + " instead of " + d.CertRef
		if d.Rebinds > 0 && now.Sub(d.LastRebindAt) < fightWindow {
			if d.Rebinds >= maxRebinds {
				// Two managers of one binding undo each other on every run; stop fighting.
				return ActionUnknown, fmt.Sprintf("%s; certfleet rebound it %d times in a day and something keeps pointing it elsewhere: another certfleet installation or tool manages this binding. Nothing is rebound until one of them stops (then the next run repairs it)",
					reason, d.Rebinds)
			}
			reason += fmt.Sprintf(" (rebound %d time(s) in the last day already: is another certfleet installation or tool managing this binding?)", d.Rebinds)
		}
		return ActionRebind, reason
	}
	return ActionNone, fmt.Sprintf("valid for %d more days", days(d.NotAfter.Sub(now)))
}
