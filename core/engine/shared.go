package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/state"
)

// Sharing is how an instance shares the fleet with others on one PostgreSQL state. Instead of
// the whole state's Lock, a run claims each device before it inspects or changes it (core/lease),
// works on it under the claim's fence and releases it; devices other instances hold are tried
// again until Wait has passed, so the claims of an instance that died (and stopped renewing them)
// expire and are taken over within the same run.
type Sharing struct {
	// ClaimDevice claims a device: the returned context carries the claim's fence and ends when the
	// claim is lost; release gives it up. An error that is state.ErrClaimedElsewhere means another
	// live instance holds it.
	ClaimDevice func(ctx context.Context, device string) (claimed context.Context, release func(), err error)
	// Wait is how long a run keeps trying a device that a live instance holds (one that keeps
	// renewing its claim) before leaving it to that instance; a claim that is not renewed is waited
	// for until it expires and is taken over. Retry is the pause between tries.
	Wait  time.Duration
	Retry time.Duration
}

// onSite keeps the certificates of the engine's site (all when no site is set).
func (e *Engine) onSite(certs []Certificate) []Certificate {
	if e.opts.Site == "" {
		return certs
	}
	out := make([]Certificate, 0, len(certs))
	for _, c := range certs {
		if e.opts.Devices[c.Device].Site == e.opts.Site {
			out = append(out, c)
		}
	}
	return out
}

// checkSite refuses named certificates of another site.
func (e *Engine) checkSite(names []string, byName map[string]Certificate) error {
	if e.opts.Site == "" {
		return nil
	}
	for _, n := range names {
		if c, ok := byName[n]; ok {
			if site := e.opts.Devices[c.Device].Site; site != e.opts.Site {
				return fmt.Errorf("certificate %q is on device %q of site %q; this instance works only on site %q (--site)", n, c.Device, site, e.opts.Site)
			}
		}
	}
	return nil
}

// runShared is Run for an instance sharing the fleet: device by device, each under its claim.
func (e *Engine) runShared(ctx context.Context, ro RunOptions) (Report, error) {
	sh := e.opts.Shared
	wait, retry := sh.Wait, sh.Retry
	if wait <= 0 {
		wait = 2 * time.Minute
	}
	if retry <= 0 {
		retry = time.Second
	}
	certs, err := e.selected(ro.Names)
	if err != nil {
		return Report{}, err
	}
	byDevice := map[string][]Certificate{}
	for _, c := range certs {
		byDevice[c.Device] = append(byDevice[c.Device], c)
	}
	pending := make([]string, 0, len(byDevice))
	for d := range byDevice {
		pending = append(pending, d)
	}
	// Instances started together should not all queue for the same devices first.
	rand.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })

	if err := e.ready(ctx); err != nil {
		return Report{}, err
	}
	runID, err := e.opts.Store.StartRun(ctx, false)
	if err != nil {
		return Report{}, err
	}
	report := Report{RunID: runID}
	var mu sync.Mutex
	held := map[string]error{}
	watched := map[string]*heldClaim{}
	var skippedDevices []string
	sem := make(chan struct{}, e.opts.Workers)
	for len(pending) > 0 && ctx.Err() == nil {
		var wg sync.WaitGroup
		var again []string
		for _, device := range pending {
			if acquire(ctx, sem) != nil {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer release(sem)
				plan, results, err := e.runClaimed(ctx, runID, device, byDevice[device], PlanOptions{Force: ro.Force, NoAdopt: ro.NoAdopt})
				mu.Lock()
				defer mu.Unlock()
				if errors.Is(err, state.ErrClaimedElsewhere) {
					held[device] = err
					if watched[device] == nil {
						watched[device] = &heldClaim{firstSeen: time.Now()}
					}
					again = append(again, device)
					return
				}
				delete(held, device)
				report.Plan.Items = append(report.Plan.Items, plan.Items...)
				report.Plan.InventoryCalls += plan.InventoryCalls
				report.Results = append(report.Results, results...)
			}()
		}
		wg.Wait()
		pending = nil
		now := time.Now()
		for _, device := range again {
			if watched[device].giveUp(held[device], now, wait) {
				skippedDevices = append(skippedDevices, device)
			} else {
				pending = append(pending, device)
			}
		}
		if len(pending) == 0 {
			break
		}
		e.log.Debug("devices held by other instances; trying again", "devices", len(pending))
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
	// Devices another live instance kept for the whole wait are its business this time.
	var skipped []state.Result
	for _, device := range append(skippedDevices, pending...) {
		reason := "device not reached before the run ended"
		if err := held[device]; err != nil {
			reason = err.Error()
		}
		for _, c := range byDevice[device] {
			skipped = append(skipped, state.Result{RunID: runID, Certificate: c.Name, Device: device, Outcome: state.OutcomeSkipped, Reason: reason})
		}
	}
	// They are reported, not recorded: the instance that works on them records their outcome,
	// which status and history must show rather than this run's "skipped".
	report.Results = append(report.Results, skipped...)
	sort.Slice(report.Plan.Items, func(i, j int) bool { return report.Plan.Items[i].Certificate < report.Plan.Items[j].Certificate })
	sort.Slice(report.Results, func(i, j int) bool { return report.Results[i].Certificate < report.Results[j].Certificate })
	outcome := "ok"
	if ctx.Err() != nil {
		outcome = "interrupted"
	} else if report.ExitCode() == ExitFailed {
		outcome = "failed"
	}
	if err := e.opts.Store.FinishRun(context.WithoutCancel(ctx), runID, outcome); err != nil {
		return report, err
	}
	return report, ctx.Err()
}

// runClaimed claims a device, then plans and runs its certificates under the claim: the CA view
// refresh, the inventory, every step and the commit. It returns state.ErrClaimedElsewhere when
// another instance holds the device.
func (e *Engine) runClaimed(ctx context.Context, runID int64, device string, certs []Certificate, po PlanOptions) (Plan, []state.Result, error) {
	claimed, releaseClaim, err := e.opts.Shared.ClaimDevice(ctx, device)
	if errors.Is(err, state.ErrClaimedElsewhere) {
		return Plan{}, nil, err
	}
	var results []state.Result
	var plan Plan
	if err != nil {
		for _, c := range certs {
			results = append(results, state.Result{RunID: runID, Certificate: c.Name, Device: device, Outcome: state.OutcomeFailed,
				Reason: "device could not be claimed", Error: e.opts.Redact(err.Error())})
		}
	} else {
		plan, results = e.runDeviceNow(claimed, runID, device, certs, po)
		releaseClaim()
	}
	for i := range results {
		results[i].RunID = runID
		results[i].Error = e.opts.Redact(results[i].Error)
	}
	if err := e.opts.Store.RecordResults(context.WithoutCancel(ctx), results); err != nil {
		e.log.Error("cannot record results", "device", device, "error", err)
	}
	return plan, results, nil
}

// runDeviceNow does, for one claimed device, what Run does for the whole fleet.
func (e *Engine) runDeviceNow(ctx context.Context, runID int64, device string, certs []Certificate, po PlanOptions) (Plan, []state.Result) {
	fail := func(err error) []state.Result {
		var out []state.Result
		for _, c := range certs {
			out = append(out, state.Result{RunID: runID, Certificate: c.Name, Device: device, Outcome: state.OutcomeFailed, Error: err.Error()})
		}
		return out
	}
	// The device's records are read after claiming it: another instance may just have changed them.
	// Only its certificates are read, so a run over many devices stays linear in the fleet.
	deployments := make(map[string]state.Deployment, len(certs))
	ops := map[string]*state.Operation{}
	for _, c := range certs {
		d, ok, err := e.opts.Store.Deployment(ctx, c.Name)
		if err != nil {
			return Plan{}, fail(err)
		}
		if ok {
			deployments[c.Name] = d
		}
		op, err := e.opts.Store.OpenOperation(ctx, c.Name)
		if err != nil {
			return Plan{}, fail(err)
		}
		if op != nil {
			ops[c.Name] = op
		}
	}
	if e.opts.RevocationCheckInterval >= 0 {
		for name, d := range e.refreshCAViewOf(ctx, certs, deployments) {
			deployments[name] = d
		}
	}
	// Devices claimed earlier go first: each is worked to its Commit before later ones.
	devRank := int(e.claimed.Add(1))
	plan := e.planFrom(ctx, certs, deployments, ops, po, devRank)
	var results []state.Result
	var due []PlanItem
	for _, it := range plan.Items {
		if r, ok := e.settle(ctx, it); ok {
			results = append(results, r)
		} else {
			due = append(due, it)
		}
	}
	if len(due) > 0 {
		results = append(results, e.runDevice(ctx, e.opts.Devices[device], due, devRank)...)
	}
	return plan, results
}

// heldClaim follows a device another instance holds, to tell a live holder from a dead one.
type heldClaim struct {
	firstSeen time.Time
	until     time.Time // the claim's expiry when last seen
}

// giveUp says whether to leave the device to its holder: only once it has been held for wait and
// the holder is alive, i.e. renewed its claim since the last look. A holder that stopped renewing
// (it died) is waited for until its claim expires and this run takes the device over.
func (h *heldClaim) giveUp(err error, now time.Time, wait time.Duration) bool {
	var until interface{ HeldUntil() time.Time }
	renewed := true // without the claim's expiry, treat the holder as alive
	if errors.As(err, &until) {
		renewed = !h.until.IsZero() && !until.HeldUntil().Equal(h.until)
		h.until = until.HeldUntil()
	}
	return renewed && now.Sub(h.firstSeen) >= wait
}
