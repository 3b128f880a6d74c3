package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// RunOptions select what to run.
type RunOptions struct {
	Names   []string
	Force   bool
	DryRun  bool
	NoAdopt bool
	// Stop, when closed, stops the run at the next safe point: the step in flight finishes and
	// is recorded, changes already bound are committed, and no new step starts; what is left is
	// resumed by the next run. (Cancelling the context instead aborts the calls in flight.)
	Stop <-chan struct{}
}

// Report is what a run did.
type Report struct {
	RunID   int64          `json:"run_id,omitempty"`
	Plan    Plan           `json:"plan"`
	Results []state.Result `json:"results"`
}

// Exit codes of a run (2 is a usage or configuration error, given by the CLI).
const (
	ExitOK      = 0
	ExitFailed  = 1
	ExitPending = 3
	// ExitLocked: another certfleet process holds the state; this one did nothing.
	ExitLocked = 4
	// ExitStateLost: the state database is missing or empty next to a managed fleet; nothing done.
	ExitStateLost = 5
)

// ExitCode is 0 when every certificate is deployed or unchanged, 1 when any failed, 3 when none
// failed but an order is still pending at the CA (the next run collects it).
func (r Report) ExitCode() int {
	code := ExitOK
	for _, res := range r.Results {
		switch res.Outcome {
		case state.OutcomeFailed:
			return ExitFailed
		case state.OutcomePending:
			code = ExitPending
		}
	}
	return code
}

// errPending ends a certificate's work for this run while its order is still being processed.
var errPending = errors.New("the order is still pending at the CA")

// ErrStopped is the error of a certificate whose work ended at a safe point because the run was
// asked to stop (RunOptions.Stop); its result is pending and the next run resumes it.
var ErrStopped = errors.New("stopped at a safe point by a shutdown request; the next run resumes it")

// stopping reports whether the run was asked to stop at the next safe point.
func (e *Engine) stopping() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

// heldError: the CA asked not to be called about this operation before until (its Retry-After on
// a refusal); the run reports the certificate pending, with that time.
type heldError struct {
	until time.Time
	last  string
}

func (h *heldError) Error() string {
	return fmt.Sprintf("held until %s by the CA's Retry-After (%s)", h.until.UTC().Format(time.RFC3339), h.last)
}

func (h *heldError) Is(target error) bool { return target == errPending }

// Run plans and carries out the plan. Each certificate's failure is its own: the others go on.
func (e *Engine) Run(ctx context.Context, ro RunOptions) (Report, error) {
	if ro.DryRun {
		plan, err := e.Plan(ctx, PlanOptions{Names: ro.Names, Force: ro.Force, NoAdopt: ro.NoAdopt})
		report := Report{Plan: plan}
		for _, it := range plan.Items {
			report.Results = append(report.Results, state.Result{Certificate: it.Certificate, Device: it.Device,
				Action: string(it.Action), Reason: it.Reason, Outcome: state.OutcomePlanned, Error: it.Error})
		}
		return report, err
	}
	if e.opts.Shared != nil {
		return e.runShared(ctx, ro)
	}
	unlock, err := e.opts.Store.Lock(ctx)
	if err != nil {
		return Report{}, err
	}
	defer unlock()
	e.stop = ro.Stop
	po := PlanOptions{Names: ro.Names, Force: ro.Force, NoAdopt: ro.NoAdopt}
	in, err := e.readRunInputs(ctx, po, true)
	if err != nil {
		return Report{}, err
	}
	certs, deployments, ops := in.certs, in.deployments, in.ops
	runID, err := e.opts.Store.StartRun(ctx, false)
	if err != nil {
		return Report{}, err
	}
	report := Report{RunID: runID}
	var mu sync.Mutex
	// settled are the certificates with nothing to do on their device, recorded in batches as
	// their devices are planned; worked are the results of the others, each recorded as its
	// device finishes. Both records outlive a cancelled run.
	settled := newSettledRecorder(context.WithoutCancel(ctx), e.opts.Store, settledBatchSize, len(certs))
	var worked []state.Result
	record := func(r state.Result) {
		r.RunID = runID
		r.Error = e.opts.Redact(r.Error)
		// The record outlives a cancelled run: write it even when ctx is done.
		if err := e.opts.Store.RecordResult(context.WithoutCancel(ctx), r); err != nil {
			e.log.Error("cannot record result", "certificate", r.Certificate, "error", err)
		}
		mu.Lock()
		worked = append(worked, r)
		mu.Unlock()
	}

	// Each device is planned as its inventory comes in, and its due certificates are worked on
	// from then on, while later devices are still being inventoried (see inventories for the
	// order in which they get the workers).
	plan := Plan{Items: make([]PlanItem, len(certs))}
	var wg sync.WaitGroup
	// The day-2 CA checks due are made while the devices are inventoried; a device is planned
	// once they are done, from what the CA said. Whether a certificate may be adopted does not
	// depend on them (they change recorded deployments only), so it is decided before.
	adoptable := make([]bool, len(certs))
	for i, c := range certs {
		adoptable[i] = mayAdopt(c, deployments, ops, po)
	}
	caChecked := e.startCAChecks(ctx, certs, in.caDue, deployments, in.now)
	plan.InventoryCalls = e.inventories(ctx, certs, 0, func(i int) bool { return adoptable[i] }, caChecked, func(device string, devRank int, idx []int, inv inventory) {
		items := e.planDevice(ctx, device, &plan, certs, idx, deployments, ops, inv, po)
		var due []PlanItem
		var done []state.Result
		for _, it := range items {
			if err := e.loadWhole(ctx, it); err != nil {
				done = append(done, state.Result{RunID: runID, Certificate: it.Certificate, Device: it.Device, Action: string(it.Action),
					Reason: it.Reason, Outcome: state.OutcomeFailed, Error: e.opts.Redact(fmt.Sprintf("read the recorded deployment: %v", err))})
				continue
			}
			if r, ok := e.settle(ctx, *it); ok {
				r.RunID = runID
				done = append(done, r)
			} else {
				due = append(due, *it)
			}
		}
		settled.add(done)
		if len(due) == 0 {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range e.runDevice(ctx, e.opts.Devices[device], due, devRank) {
				record(r)
			}
		}()
	})
	<-caChecked // made, and recorded, even when no device was planned
	if len(po.Names) == 0 {
		plan.Retired = e.retiredFrom(deployments, ops)
	}
	report.Plan = plan
	settledResults, recordErr := settled.close()
	wg.Wait()
	report.Results = append(settledResults, worked...)
	sort.Slice(report.Results, func(i, j int) bool { return report.Results[i].Certificate < report.Results[j].Certificate })
	outcome := "ok"
	if ctx.Err() != nil || e.stopping() {
		outcome = "interrupted"
	} else if report.ExitCode() == ExitFailed || recordErr != nil {
		outcome = "failed"
	}
	if err := e.opts.Store.FinishRun(context.WithoutCancel(ctx), runID, outcome); err != nil {
		return report, err
	}
	if recordErr != nil {
		return report, recordErr
	}
	return report, ctx.Err()
}

// settle records a plan item that needs no work on the device (adopted, unchanged, device not
// inspected) and returns its result; ok is false for an item that must be carried out.
func (e *Engine) settle(ctx context.Context, it PlanItem) (r state.Result, ok bool) {
	r = state.Result{Certificate: it.Certificate, Device: it.Device, Action: string(it.Action), Reason: it.Reason}
	if it.adopted != nil {
		if err := e.opts.Store.SaveDeployment(ctx, *it.adopted); err != nil {
			r.Outcome, r.Error = state.OutcomeFailed, err.Error()
			return r, true
		}
		e.progress(it.cert, "adopted %s, valid until %s", it.adopted.CertRef, it.adopted.NotAfter.UTC().Format("2006-01-02"))
	}
	switch it.Action {
	case ActionAdopt:
		r.Outcome = state.OutcomeAdopted
	case ActionNone:
		r.Outcome = state.OutcomeUnchanged
	case ActionUnknown, ActionBlocked:
		r.Outcome, r.Error = state.OutcomeFailed, it.Error
	default:
		return state.Result{}, false
	}
	return r, true
}

// work is one certificate being carried through its operation on a device.
type work struct {
	item PlanItem
	op   *state.Operation
	err  error

	dev  Device
	p    sdk.Plugin
	rank rank
	// collectBy is when this run stops collecting the order (collect_timeout after the first
	// collect); poll is the schedule of collects while the CA gives no Retry-After.
	collectBy time.Time
	poll      *backoff.ExponentialBackOff
}

func (w *work) result(outcome state.Outcome) state.Result {
	r := state.Result{Certificate: w.item.Certificate, Device: w.item.Device, Action: string(w.item.Action), Reason: w.item.Reason, Outcome: outcome}
	if w.op != nil {
		r.Step = w.op.Step
	}
	if w.err != nil {
		r.Error = w.err.Error()
	}
	return r
}

// runDevice carries a device's due certificates to Bound, commits once, then verifies, cleans up
// and records each deployment.
// devRank is the device's place in the run: its calls go before those of later devices.
func (e *Engine) runDevice(ctx context.Context, dev Device, items []PlanItem, devRank int) []state.Result {
	p, info, err := e.plugin(ctx, dev)
	if err != nil {
		var out []state.Result
		for _, it := range items {
			w := &work{item: it, err: err}
			out = append(out, w.result(state.OutcomeFailed))
		}
		return out
	}
	// Every certificate goes its own way; the slots (e.slots) bound the calls in flight, and a
	// certificate waiting for its order holds none.
	works := make([]*work, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		works[i] = &work{item: it, dev: dev, p: p, rank: rank{device: devRank, cert: i}}
		wg.Add(1)
		go func(w *work) {
			defer wg.Done()
			w.err = e.carry(ctx, w)
		}(works[i])
	}
	wg.Wait()

	var toCommit, toFinish []*work
	for _, w := range works {
		if w.err == nil && w.op != nil {
			switch w.op.Step {
			case state.StepBound:
				toCommit = append(toCommit, w)
			case state.StepCommitted:
				toFinish = append(toFinish, w)
			}
		}
	}
	if len(toCommit) > 0 && ctx.Err() != nil {
		// Interrupted: the commit is the next safe point's work; the next run commits.
		for _, w := range toCommit {
			w.err = fmt.Errorf("interrupted before the commit on %s: %w", dev.Name, ctx.Err())
		}
		toCommit = nil
	}
	if len(toCommit) > 0 {
		if err := e.commit(ctx, dev, p, info, toCommit); err == nil {
			toFinish = append(toFinish, toCommit...)
		}
	}
	if len(toFinish) > 0 {
		e.finish(ctx, dev, p, info, toFinish)
	}

	var out []state.Result
	for _, w := range works {
		switch {
		case errors.Is(w.err, errPending):
			if held := (*heldError)(nil); !errors.As(w.err, &held) {
				w.err = nil
			}
			out = append(out, w.result(state.OutcomePending))
		case errors.Is(w.err, ErrStopped):
			out = append(out, w.result(state.OutcomePending))
		case w.err != nil:
			out = append(out, w.result(state.OutcomeFailed))
		case w.op != nil && w.op.Step == state.StepDone:
			out = append(out, w.result(state.OutcomeDeployed))
		default:
			w.err = fmt.Errorf("stopped at step %q", w.op.Step)
			out = append(out, w.result(state.OutcomeFailed))
		}
	}
	return out
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// operationFor returns the operation to carry: the interrupted one, or a new one.
func (e *Engine) operationFor(ctx context.Context, w *work) (*state.Operation, error) {
	it := w.item
	c := it.cert
	if op := it.op; op != nil {
		stale := op.SpecHash != specHash(c) && (op.Step == state.StepStarted || op.Step == state.StepCSR)
		if !stale {
			return op, nil
		}
		// The configuration changed before the order was placed: start over with the new names.
		e.discardKey(ctx, w, op)
		if err := e.opts.Store.AbandonOperation(ctx, op, "superseded by a configuration change"); err != nil {
			return nil, err
		}
		it.Action, it.Reason = ActionRenew, "configuration changed during an unfinished operation"
	}
	op := &state.Operation{
		ID: newID(), Certificate: c.Name, Device: c.Device, Issuer: c.Issuer, Action: string(it.Action),
		Reason: it.Reason, SpecHash: specHash(c), RequestID: newID(), Step: state.StepStarted, StartedAt: e.opts.Now().UTC(),
	}
	if it.Action == ActionRebind {
		d := it.deployment
		op.SpecHash = d.SpecHash
		op.Step, op.KeyRef, op.CertRef, op.ChainRefs, op.OrderRef = state.StepImported, d.KeyRef, d.CertRef, d.ChainRefs, d.OrderRef
		op.CertPEM, op.ChainPEM = d.CertPEM, d.ChainPEM
	}
	if err := e.opts.Store.CreateOperation(ctx, op); err != nil {
		return nil, err
	}
	return op, nil
}

// discardKey removes the key of an operation that will not be finished (best effort).
func (e *Engine) discardKey(ctx context.Context, w *work, op *state.Operation) {
	if op.KeyRef == "" {
		return
	}
	// The key is removed even when the run is being cancelled or stopped: it is nobody's otherwise.
	err := e.callDevice(context.WithoutCancel(ctx), nil, w, func(ctx context.Context) error {
		_, err := w.p.Cleanup(ctx, w.dev.Target, []sdk.ObjectRef{{KeyRef: op.KeyRef}})
		return err
	})
	if err != nil {
		e.log.Warn("could not remove the key of an abandoned operation", "certificate", op.Certificate, "key_ref", op.KeyRef, "error", e.opts.Redact(err.Error()))
	}
}

// save records op's step; failures to record stop the certificate, since going on would act
// without a record to resume from.
func (e *Engine) save(ctx context.Context, op *state.Operation) error {
	if err := e.opts.Store.SaveOperation(context.WithoutCancel(ctx), op); err != nil {
		return err
	}
	if e.opts.AfterStep != nil {
		e.opts.AfterStep(op)
	}
	return nil
}

// onDevice makes one call to w's device (bounded by stepCtx) once a worker and a slot of the
// device are free; a stop requested meanwhile ends the wait with ErrStopped.
func (e *Engine) onDevice(ctx context.Context, w *work, call func(ctx context.Context) error) error {
	return e.callDevice(ctx, e.stop, w, call)
}

func (e *Engine) callDevice(ctx context.Context, stop <-chan struct{}, w *work, call func(ctx context.Context) error) error {
	release, err := e.slots.acquire(ctx, stop, "device\x00"+w.dev.Name, w.dev.Concurrency, true, w.rank)
	if err != nil {
		return err
	}
	defer release()
	cctx, cancel := e.stepCtx(ctx)
	defer cancel()
	return call(cctx)
}

// onIssuer makes one call to the certificate's CA account once a slot of the account
// (issuers.<name>.concurrency) is free; a stop requested meanwhile ends the wait with ErrStopped.
func (e *Engine) onIssuer(ctx context.Context, w *work, call func() error) error {
	name := w.item.cert.Issuer
	release, err := e.slots.acquire(ctx, e.stop, "issuer\x00"+name, e.issuerConcurrency(name), false, w.rank)
	if err != nil {
		return err
	}
	defer release()
	return call()
}

// carry takes one certificate's operation as far as Bound (or Committed, when resuming).
func (e *Engine) carry(ctx context.Context, w *work) error {
	if e.stopping() && w.item.op == nil {
		return ErrStopped
	}
	var op *state.Operation
	var err error
	if w.item.op == nil {
		// A new operation starts when a call to its device could, so that certificates start in
		// the run's order (device by device), not in the order their goroutines reach the state.
		err = e.onDevice(ctx, w, func(context.Context) (err error) {
			op, err = e.operationFor(ctx, w)
			return err
		})
	} else {
		op, err = e.operationFor(ctx, w)
	}
	if err != nil {
		return err
	}
	w.op = op
	c := w.item.cert
	if now := e.opts.Now(); now.Before(op.RetryNotBefore) {
		e.progress(c, "held until %s by the CA's Retry-After", op.RetryNotBefore.UTC().Format(time.RFC3339))
		return &heldError{until: op.RetryNotBefore, last: op.LastError}
	}
	err = e.advance(ctx, w)
	if err != nil && !errors.Is(err, errPending) && !errors.Is(err, ErrStopped) {
		if wait := issuer.RetryAfterOf(err); wait > 0 {
			// The CA said when it will take the request again (a rate limit): no call before then.
			op.RetryNotBefore = e.opts.Now().Add(wait).UTC()
			err = fmt.Errorf("%w; next attempt after %s", err, op.RetryNotBefore.Format(time.RFC3339))
		}
		op.Attempts++
		op.LastError = e.opts.Redact(err.Error())
		if serr := e.save(ctx, op); serr != nil {
			e.log.Error("cannot record the failure", "certificate", c.Name, "error", serr)
		}
		e.progress(c, "failed at step %s: %s", op.Step, op.LastError)
	}
	return err
}

func (e *Engine) advance(ctx context.Context, w *work) error {
	op := w.op
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if op.Step != state.StepBound && op.Step != state.StepCommitted && e.stopping() {
			return ErrStopped
		}
		switch op.Step {
		case state.StepStarted:
			if err := e.generateCSR(ctx, w); err != nil {
				return err
			}
		case state.StepCSR:
			if err := e.submit(ctx, w); err != nil {
				return err
			}
		case state.StepSubmitted:
			if err := e.awaitCollect(ctx, w); err != nil {
				return err
			}
			if err := e.collect(ctx, w); err != nil {
				return err
			}
		case state.StepIssued:
			if err := e.importCert(ctx, w); err != nil {
				return err
			}
		case state.StepImported:
			if err := e.bind(ctx, w); err != nil {
				return err
			}
		case state.StepBound, state.StepCommitted:
			return nil
		default:
			return fmt.Errorf("operation %s is at unexpected step %q", op.ID, op.Step)
		}
	}
}

func (e *Engine) generateCSR(ctx context.Context, w *work) error {
	op, c, dev := w.op, w.item.cert, w.dev
	if op.KeyRef == "" || op.CSRPEM == "" {
		var csr sdk.CSR
		err := e.onDevice(ctx, w, func(ctx context.Context) (err error) {
			e.progress(c, "generating a %s key and CSR on %s", c.KeySpec, dev.Name)
			csr, err = w.p.GenerateCSR(ctx, dev.Target, csrRequest(op, c))
			return err
		})
		if err != nil {
			return fmt.Errorf("GenerateCSR on %s: %w", dev.Name, err)
		}
		// The key exists on the device from now on: record it before anything else, so an
		// interrupted run resumes with this key (or removes it) instead of leaving it behind.
		op.KeyRef, op.CSRPEM = csr.KeyRef, csr.PEM
		if err := e.save(ctx, op); err != nil {
			e.discardKey(ctx, w, op)
			return err
		}
	}
	if err := verifyCSR(op.CSRPEM, c); err != nil {
		// Never send a CA a CSR that is not exactly what was asked for; drop the key.
		e.discardKey(ctx, w, op)
		if aerr := e.opts.Store.AbandonOperation(context.WithoutCancel(ctx), op, err.Error()); aerr != nil {
			return aerr
		}
		return fmt.Errorf("the CSR made by %s does not match the request: %w", dev.Name, err)
	}
	op.Step = state.StepCSR
	return e.save(ctx, op)
}

// csrRequest asks for op's key. The attempt ID is op's ID, recorded (CreateOperation) before the
// first call: a call whose answer was lost is made again with the same ID, and the plugin removes
// (or reuses) what the lost call made instead of leaving a second key on the device. An operation
// abandoned (a CSR that failed verification, a configuration change) is replaced by one with a new
// ID, so its successor asks for a new key.
func csrRequest(op *state.Operation, c Certificate) sdk.CSRRequest {
	return sdk.CSRRequest{NameHint: c.Name, KeySpec: c.KeySpec, Subject: c.Subject, SANs: c.SANs, AttemptID: op.ID}
}

func (e *Engine) issuerFor(c Certificate) (issuer.Issuer, chan struct{}, error) {
	iss, ok := e.opts.Issuers[c.Issuer]
	if !ok {
		return nil, nil, fmt.Errorf("issuer %q is not configured", c.Issuer)
	}
	return iss, e.issuerSem[c.Issuer], nil
}

// issuerConcurrency is how many calls to the CA account may be in flight at once.
func (e *Engine) issuerConcurrency(name string) int {
	if n := e.opts.IssuerConcurrency[name]; n > 0 {
		return n
	}
	return e.opts.PerIssuer
}

func orderRequest(op *state.Operation, c Certificate, previous *state.Deployment) issuer.Request {
	req := issuer.Request{
		CertificateName: c.Name, RequestID: op.RequestID, CSRPEM: op.CSRPEM, CommonName: c.Subject.CommonName,
		DNSNames: c.SANs.DNSNames, IPAddresses: c.SANs.IPAddresses, EmailAddresses: c.SANs.EmailAddresses,
		Options: c.IssuerOptions,
	}
	// An adopted certificate came from another account (or CA): naming it would be refused.
	if previous != nil && previous.Issuer == c.Issuer && !previous.Adopted {
		req.PreviousCertPEM = previous.CertPEM
	}
	return req
}

// submit places the order exactly once. Before sending, the operation records that a request is
// on its way; if the run dies or the answer is lost, the next attempt looks the order up first.
func (e *Engine) submit(ctx context.Context, w *work) error {
	op, c := w.op, w.item.cert
	iss, _, err := e.issuerFor(c)
	if err != nil {
		return err
	}
	req := orderRequest(op, c, w.item.deployment)
	if op.SubmitState == state.SubmitSending || op.SubmitState == state.SubmitUnknown {
		e.progress(c, "looking up the order whose placement was interrupted")
		var ref issuer.OrderRef
		var found bool
		err := e.onIssuer(ctx, w, func() (err error) {
			ref, found, err = iss.Find(ctx, req)
			return err
		})
		if err != nil {
			return fmt.Errorf("look up the earlier order at %s: %w", c.Issuer, err)
		}
		if found {
			op.OrderRef, op.SubmitState, op.Step = string(ref), state.SubmitPlaced, state.StepSubmitted
			return e.save(ctx, op)
		}
	}
	var ref issuer.OrderRef
	var sent bool
	err = e.onIssuer(ctx, w, func() (err error) {
		// Recorded once the slot is held, right before the request leaves.
		e.progress(c, "submitting the CSR to %s", c.Issuer)
		op.SubmitState = state.SubmitSending
		if err := e.save(ctx, op); err != nil {
			return err
		}
		sent = true
		sctx, cancel := e.stepCtx(ctx)
		defer cancel()
		ref, err = iss.Submit(sctx, req)
		return err
	})
	if err != nil && !sent {
		return err
	}
	if err != nil {
		// Only an issuer's proof that no order exists turns "sending" back into "not sent";
		// anything else (a lost answer, an interrupted request, an error of unknown kind) is
		// looked up before another order is placed.
		if errors.Is(err, issuer.ErrNotPlaced) && !errors.Is(err, issuer.ErrOutcomeUnknown) {
			op.SubmitState = state.SubmitNone
			if serr := e.save(ctx, op); serr != nil {
				return serr
			}
			return fmt.Errorf("submit to %s: %w", c.Issuer, err)
		}
		op.SubmitState = state.SubmitUnknown
		if serr := e.save(ctx, op); serr != nil {
			return serr
		}
		if ctx.Err() == nil {
			var found bool
			ferr := e.onIssuer(ctx, w, func() (err error) {
				ref, found, err = iss.Find(ctx, req)
				return err
			})
			if ferr == nil && found {
				op.OrderRef, op.SubmitState, op.Step = string(ref), state.SubmitPlaced, state.StepSubmitted
				return e.save(ctx, op)
			}
		}
		return fmt.Errorf("submit to %s: %w (the outcome is unknown: the next run looks the order up before placing another)", c.Issuer, err)
	}
	op.OrderRef, op.SubmitState, op.Step = string(ref), state.SubmitPlaced, state.StepSubmitted
	return e.save(ctx, op)
}

// collect asks the CA once about the order. While it is pending, the time of the next collect
// (the CA's Retry-After, else the next step of w.poll) becomes the operation's NextAttemptAt and
// collect returns: the certificate waits in awaitCollect without holding a slot. That time is
// recorded (all but the engine's own short waits), so a run that dies meanwhile resumes then, not
// earlier. When it falls after the run's collect time, the order is left to the next run.
func (e *Engine) collect(ctx context.Context, w *work) error {
	op, c := w.op, w.item.cert
	iss, _, err := e.issuerFor(c)
	if err != nil {
		return err
	}
	var res issuer.Result
	err = e.onIssuer(ctx, w, func() (err error) {
		// The CA's own waits (Retry-After on a refusal) end with the run's collect time.
		cctx, cancel := context.WithDeadline(ctx, w.collectBy)
		defer cancel()
		res, err = iss.Collect(cctx, issuer.OrderRef(op.OrderRef))
		return err
	})
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		// The collect time ran out waiting on the CA: the order stays for the next run.
		op.NextAttemptAt, op.LastError = e.opts.Now().UTC(), e.opts.Redact(err.Error())
		e.progress(c, "order %s not collected before collect_timeout; the next run collects it", op.OrderRef)
		if err := e.save(ctx, op); err != nil {
			return err
		}
		return errPending
	}
	if err != nil {
		return fmt.Errorf("collect order %s from %s: %w", op.OrderRef, c.Issuer, err)
	}
	switch res.State {
	case issuer.Issued:
		if err := verifyIssued(res, op.CSRPEM, c); err != nil {
			return fmt.Errorf("certificate from %s for order %s: %w", c.Issuer, op.OrderRef, err)
		}
		op.CertPEM, op.ChainPEM, op.Step = res.CertPEM, res.ChainPEM, state.StepIssued
		op.NextAttemptAt = time.Time{}
		e.progress(c, "certificate issued by %s", c.Issuer)
		return e.save(ctx, op)
	case issuer.Failed, issuer.Revoked:
		msg := fmt.Sprintf("order %s at %s ended %s: %s", op.OrderRef, c.Issuer, res.State, res.Message)
		e.discardKey(ctx, w, op)
		if err := e.opts.Store.AbandonOperation(context.WithoutCancel(ctx), op, msg); err != nil {
			return err
		}
		return errors.New(msg + "; the next run places a new order")
	}
	next, fromCA := res.RetryAfter, res.RetryAfter > 0
	if !fromCA {
		next = w.poll.NextBackOff()
	}
	op.NextAttemptAt = e.opts.Now().Add(next).UTC()
	op.LastError = "order pending at the CA"
	if !fromCA && next < recordedWait {
		// The engine's own short waits are not written (a write per poll would make the state
		// the bottleneck of a large run): collecting one of them early after a restart costs a
		// call and breaks no request of the CA's.
		return nil
	}
	return e.save(ctx, op)
}

// recordedWait is the shortest wait of the engine's own poll schedule that is recorded in the
// state; the CA's Retry-After is always recorded.
const recordedWait = 2 * time.Second

// awaitCollect waits, holding no slot, until the order's next collect is due (its NextAttemptAt,
// also when recorded by an earlier run). It returns errPending when that is after the run's collect
// time, and ErrStopped when the run is asked to stop meanwhile.
func (e *Engine) awaitCollect(ctx context.Context, w *work) error {
	op, c := w.op, w.item.cert
	now := e.opts.Now()
	if w.collectBy.IsZero() {
		w.collectBy = now.Add(e.opts.CollectTimeout)
		w.poll = issuer.NewPollSchedule(e.opts.Backoff, e.opts.MaxBackoff)
	}
	wait := op.NextAttemptAt.Sub(now)
	if wait <= 0 {
		return nil
	}
	if op.NextAttemptAt.After(w.collectBy) {
		e.progress(c, "order %s still pending at %s; the next run collects it (not before %s)", op.OrderRef, c.Issuer, op.NextAttemptAt.UTC().Format(time.RFC3339))
		return errPending
	}
	e.progress(c, "order pending at %s; collecting again in %s", c.Issuer, wait.Round(time.Millisecond))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-e.stop:
		return ErrStopped
	case <-timer.C:
		return nil
	}
}

func (e *Engine) importCert(ctx context.Context, w *work) error {
	op, c, dev := w.op, w.item.cert, w.dev
	var res sdk.ImportResult
	err := e.onDevice(ctx, w, func(ctx context.Context) (err error) {
		e.progress(c, "installing the certificate on %s", dev.Name)
		res, err = w.p.ImportCert(ctx, dev.Target, sdk.ImportRequest{KeyRef: op.KeyRef, CertPEM: op.CertPEM, ChainPEM: op.ChainPEM, NameHint: c.Name})
		return err
	})
	if err != nil {
		return fmt.Errorf("ImportCert on %s: %w", dev.Name, err)
	}
	op.CertRef, op.ChainRefs, op.Step = res.CertRef, res.ChainRefs, state.StepImported
	return e.save(ctx, op)
}

func (e *Engine) bind(ctx context.Context, w *work) error {
	op, c, dev := w.op, w.item.cert, w.dev
	var res sdk.BindResult
	err := e.onDevice(ctx, w, func(ctx context.Context) (err error) {
		e.progress(c, "binding %s to %s", op.CertRef, strings.Join(bindingKeys(c.Bindings), ", "))
		res, err = w.p.Bind(ctx, dev.Target, sdk.BindRequest{CertRef: op.CertRef, KeyRef: op.KeyRef, Bindings: c.Bindings})
		return err
	})
	if err != nil {
		return fmt.Errorf("bind on %s: %w", dev.Name, err)
	}
	op.RollbackToken, op.PreviousCertRefs, op.Step = res.RollbackToken, res.PreviousCertRefs, state.StepBound
	return e.save(ctx, op)
}

// commit makes the device's bound changes live in one Commit. If it fails, every binding made in
// this batch is rolled back, so no service is left half-changed, and the next run binds again.
func (e *Engine) commit(ctx context.Context, dev Device, p sdk.Plugin, info sdk.Info, batch []*work) error {
	names := make([]string, 0, len(batch))
	for _, w := range batch {
		names = append(names, w.op.Certificate)
	}
	sort.Strings(names)
	var err error
	if info.Capabilities.NeedsCommit {
		for _, w := range batch {
			e.progress(w.item.cert, "committing %d certificate(s) on %s", len(batch), dev.Name)
		}
		cctx, cancel := e.stepCtx(ctx)
		_, err = p.Commit(cctx, dev.Target, sdk.CommitRequest{Description: "certfleet: " + strings.Join(names, ", ")})
		cancel()
	}
	if err == nil {
		for _, w := range batch {
			w.op.Step = state.StepCommitted
			if serr := e.save(ctx, w.op); serr != nil {
				w.err = serr
			}
		}
		return nil
	}
	commitErr := fmt.Errorf("commit on %s failed: %w", dev.Name, err)
	for _, w := range batch {
		w.err = commitErr
		if info.Capabilities.SupportsRollback && len(w.op.RollbackToken) > 0 {
			cctx, cancel := e.callCtx(context.WithoutCancel(ctx))
			rerr := p.Rollback(cctx, dev.Target, w.op.RollbackToken)
			cancel()
			if rerr != nil {
				w.err = fmt.Errorf("%w; rolling the bindings back also failed: %v", commitErr, rerr)
			} else {
				e.progress(w.item.cert, "bindings rolled back after the failed commit")
			}
		}
		w.op.Step = state.StepImported
		w.op.Attempts++
		w.op.LastError = e.opts.Redact(w.err.Error())
		if serr := e.save(ctx, w.op); serr != nil {
			e.log.Error("cannot record the failed commit", "certificate", w.op.Certificate, "error", serr)
		}
	}
	return commitErr
}

// finish verifies the committed bindings on the device, removes what the new certificates
// superseded, and records each deployment.
func (e *Engine) finish(ctx context.Context, dev Device, p sdk.Plugin, info sdk.Info, batch []*work) {
	inv := e.inventory(ctx, dev.Name, false)
	var cleanup []sdk.ObjectRef
	var verified []*work
	for _, w := range batch {
		if inv.err != nil {
			w.err = fmt.Errorf("verify after commit: %w", inv.err)
			continue
		}
		var missing []string
		for _, b := range w.item.cert.Bindings {
			if !inv.bound(b, w.op.CertRef) {
				missing = append(missing, bindingKey(b))
			}
		}
		if _, ok := inv.certs[w.op.CertRef]; !ok || len(missing) > 0 {
			w.err = fmt.Errorf("verify after commit: %s is not bound at %v on %s; it will be bound again on the next run", w.op.CertRef, missing, dev.Name)
			w.op.Step = state.StepImported
			w.op.LastError = w.err.Error()
			if serr := e.save(ctx, w.op); serr != nil {
				e.log.Error("cannot record the failed verification", "certificate", w.op.Certificate, "error", serr)
			}
			continue
		}
		verified = append(verified, w)
	}
	checks := e.verifyServedAfterCommit(ctx, dev, p, info, verified)
	var deployed []*work
	for _, w := range verified {
		if w.op.Step != state.StepCommitted { // rolled back after a failed served check
			continue
		}
		deployed = append(deployed, w)
		if c := checks[w]; c != nil && !c.OK {
			// What the device serves is not what it reports bound: keep the previous objects.
			if d := w.item.deployment; d != nil && d.CertRef != w.op.CertRef {
				e.log.Warn("superseded certificate kept on the device after a failed served check", "device", dev.Name, "cert_ref", d.CertRef)
			}
			continue
		}
		if d := w.item.deployment; d != nil && d.CertRef != w.op.CertRef {
			if d.Adopted && !w.item.cert.CleanupAdopted {
				e.log.Info("adopted object kept (set cleanup_adopted: true to let certfleet remove it)", "device", dev.Name, "cert_ref", d.CertRef)
				continue
			}
			cleanup = append(cleanup, sdk.ObjectRef{CertRef: d.CertRef, KeyRef: d.KeyRef})
		}
	}
	if len(cleanup) > 0 && info.Capabilities.SupportsCleanup {
		cctx, cancel := e.stepCtx(ctx)
		results, err := p.Cleanup(cctx, dev.Target, cleanup)
		cancel()
		if err != nil {
			e.log.Warn("cleanup of superseded objects failed; they stay on the device", "device", dev.Name, "error", e.opts.Redact(err.Error()))
		}
		for _, r := range results {
			if !r.Removed {
				e.log.Info("superseded object kept", "device", dev.Name, "cert_ref", r.Object.CertRef, "key_ref", r.Object.KeyRef, "reason", r.Reason)
			}
		}
	}
	for _, w := range deployed {
		d, err := deploymentOf(w, e.opts.Now().UTC())
		if err == nil {
			e.scheduleCACheck(&d)
			d.ServedCheck = checks[w]
			err = e.opts.Store.CompleteOperation(context.WithoutCancel(ctx), w.op, d)
		}
		if err != nil {
			w.err = err
			continue
		}
		e.progress(w.item.cert, "deployed serial %s, valid until %s", d.Serial, d.NotAfter.UTC().Format("2006-01-02"))
	}
}

func deploymentOf(w *work, now time.Time) (state.Deployment, error) {
	leaf, err := sdk.ParseCertificatePEM(w.op.CertPEM)
	if err != nil {
		return state.Deployment{}, fmt.Errorf("recorded certificate of %s: %w", w.op.Certificate, err)
	}
	desc := sdk.Describe(leaf)
	c := w.item.cert
	d := state.Deployment{
		Certificate: c.Name, Device: c.Device, Issuer: c.Issuer, CertRef: w.op.CertRef, KeyRef: w.op.KeyRef,
		ChainRefs: w.op.ChainRefs, OrderRef: w.op.OrderRef, Serial: desc.Serial, Fingerprint: desc.SHA256Fingerprint,
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, CertPEM: w.op.CertPEM, ChainPEM: w.op.ChainPEM,
		SpecHash: w.op.SpecHash, Bindings: bindingKeys(c.Bindings), DeployedAt: now, RevocationCheckedAt: now,
	}
	if prev := w.item.deployment; w.item.Action == ActionRebind && prev != nil {
		d.Rebinds, d.LastRebindAt = 1, now
		if now.Sub(prev.LastRebindAt) < fightWindow {
			d.Rebinds = prev.Rebinds + 1
		}
		d.RevocationCheckedAt, d.Revoked, d.CACheckDueAt = prev.RevocationCheckedAt, prev.Revoked, prev.CACheckDueAt
		d.RenewalWindowStart, d.RenewalWindowEnd, d.RenewalInfoAt = prev.RenewalWindowStart, prev.RenewalWindowEnd, prev.RenewalInfoAt
	}
	return d, nil
}
