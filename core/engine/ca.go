package engine

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// The day-2 CA check asks the CA, once per RevocationCheckInterval per certificate, whether it
// revoked a deployed certificate and when it suggests renewal (ACME ARI), and records the answer
// on the deployment for the planner. The checks of a fleet are spread over the interval: each
// certificate has its own slot in it (nextCACheck), the store keeps when each check is next due
// in an index, and a run reads only the deployments due (Store.DueCAChecks). Where the CA can
// answer for many certificates at once (SCM's list of revoked certificates) it is asked once.

// caChecksDue reads only the deployments whose check is due, whole: the checks need the
// certificate and save what they learn.
func (e *Engine) caChecksDue(ctx context.Context, now time.Time) (map[string]state.Deployment, error) {
	due, err := e.opts.Store.DueCAChecks(ctx, now, now.Add(e.opts.RevocationCheckInterval))
	if err != nil {
		return nil, err
	}
	byName := make(map[string]state.Deployment, len(due))
	for _, d := range due {
		byName[d.Certificate] = d
	}
	return byName, nil
}

// scheduleCACheck gives a deployment about to be recorded its first check's time, if it has none:
// the first run after a large enrollment then reads none of the new deployments to schedule them.
func (e *Engine) scheduleCACheck(d *state.Deployment) {
	if e.opts.RevocationCheckInterval > 0 && d.CACheckDueAt.IsZero() && d.CACheckable() {
		d.CACheckDueAt = nextCACheck(d.Certificate, lastCACheck(*d), e.opts.RevocationCheckInterval)
	}
}

// startCAChecks makes the checks in due in the background and writes the deployments they update
// into deployments; the returned channel is closed once that is done (at once when nothing is
// due). deployments must not be read until then.
func (e *Engine) startCAChecks(ctx context.Context, certs []Certificate, due, deployments map[string]state.Deployment, now time.Time) <-chan struct{} {
	done := make(chan struct{})
	if len(due) == 0 {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		for name, d := range e.checkCA(ctx, certs, due, now) {
			deployments[name] = d
		}
	}()
	return done
}

// refreshCAViewOf runs the checks due among certs whose deployments are already read whole (a
// shared run reads a claimed device's); it returns the deployments it updated.
func (e *Engine) refreshCAViewOf(ctx context.Context, certs []Certificate, deployments map[string]state.Deployment) map[string]state.Deployment {
	now := e.opts.Now()
	horizon := now.Add(e.opts.RevocationCheckInterval)
	due := map[string]state.Deployment{}
	for _, c := range certs {
		if d, ok := deployments[c.Name]; ok && state.CACheckDue(d, now, horizon) {
			due[c.Name] = d
		}
	}
	return e.checkCA(ctx, certs, due, now)
}

// caCheck is one certificate's check in progress.
type caCheck struct {
	cert Certificate
	d    state.Deployment
	// answered: every question due was answered (or had nothing to ask), so the next check can
	// be scheduled; a check the CA could not answer stays due for the next run.
	answered bool
	// changed: d holds something to record even if not answered (an ARI Retry-After).
	changed bool
}

// checkCA checks the certificates of certs whose deployments are in due, records what it learnt
// and when each certificate's next check is due, and returns the deployments it updated.
func (e *Engine) checkCA(ctx context.Context, certs []Certificate, due map[string]state.Deployment, now time.Time) map[string]state.Deployment {
	interval := e.opts.RevocationCheckInterval
	var record []state.Deployment
	byIssuer := map[string][]*caCheck{}
	for _, c := range certs {
		d, ok := due[c.Name]
		if !ok || !d.CACheckable() {
			continue
		}
		if _, _, err := e.issuerFor(c); err != nil || d.Issuer != c.Issuer {
			// Not this configuration's CA (the issuer changed, and the plan renews it): nothing
			// to ask now; look again at its next slot.
			d.CACheckDueAt = nextCACheck(c.Name, now, interval)
			record = append(record, d)
			continue
		}
		if d.CACheckDueAt.IsZero() || d.CACheckDueAt.After(now.Add(interval)) {
			// Never scheduled (newly deployed, or recorded before the schedule existed), or
			// scheduled under a longer interval than today's: the check falls at the
			// certificate's first slot after its last check (or its deployment).
			if first := nextCACheck(c.Name, lastCACheck(d), interval); first.After(now) {
				d.CACheckDueAt = first
				record = append(record, d)
				continue
			}
		}
		byIssuer[c.Issuer] = append(byIssuer[c.Issuer], &caCheck{cert: c, d: d})
	}
	var wg sync.WaitGroup
	for name, checks := range byIssuer {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.checkAtIssuer(ctx, e.opts.Issuers[name], e.issuerSem[name], checks, now)
		}()
	}
	wg.Wait()
	updated := map[string]state.Deployment{}
	for _, checks := range byIssuer {
		for _, ck := range checks {
			if ck.answered {
				ck.d.RevocationCheckedAt = now
				ck.d.CACheckDueAt = nextCACheck(ck.cert.Name, now, interval)
			}
			if ck.answered || ck.changed {
				record = append(record, ck.d)
			}
		}
	}
	if len(record) == 0 {
		return updated
	}
	// What the CA said is recorded even when the run is being stopped: asking again costs calls.
	if err := e.opts.Store.SaveDeployments(context.WithoutCancel(ctx), record); err != nil {
		e.log.Warn("could not record the CA's answers; the next run asks again", "certificates", len(record), "error", err)
		return updated
	}
	for _, d := range record {
		updated[d.Certificate] = d
	}
	return updated
}

// checkAtIssuer asks one CA about its certificates: whether it revoked them (in one listing
// where it can, else one Collect each, where an order says so at all), then for renewal
// information where it offers it. Calls in flight stay within the issuer's concurrency limit.
func (e *Engine) checkAtIssuer(ctx context.Context, iss issuer.Issuer, sem chan struct{}, checks []*caCheck, now time.Time) {
	for _, ck := range checks {
		ck.answered = true
	}
	if iss.Capabilities().RevocationStatus {
		e.checkRevocation(ctx, iss, sem, checks)
	}
	advisor, ok := iss.(issuer.RenewalAdvisor)
	if !ok {
		return
	}
	if acquire(ctx, sem) != nil {
		return
	}
	offered, err := advisor.OffersRenewalInfo(ctx)
	release(sem)
	if err != nil {
		e.log.Warn("could not learn whether the CA offers renewal information", "issuer", iss.Name(), "error", e.opts.Redact(err.Error()))
		for _, ck := range checks {
			ck.answered = false
		}
		return
	}
	if !offered {
		return
	}
	e.eachAtIssuer(ctx, sem, checks, func(ck *caCheck) {
		if ck.d.Revoked || now.Before(ck.d.RenewalInfoRetryAt) {
			return // renewed anyway, or the CA asked not to be asked yet (RFC 9773 §4.3)
		}
		leaf, err := sdk.ParseCertificatePEM(ck.d.CertPEM)
		if err != nil {
			e.log.Warn("the recorded certificate does not parse; no renewal information asked", "certificate", ck.cert.Name, "error", err)
			return
		}
		ck.answered = e.recordRenewalInfo(ctx, advisor, leaf, &ck.d, now) && ck.answered
		ck.changed = true
	})
}

// checkRevocation learns which certificates the CA revoked: from one listing when the issuer
// can list them, by Collect for those it could not answer for.
func (e *Engine) checkRevocation(ctx context.Context, iss issuer.Issuer, sem chan struct{}, checks []*caCheck) {
	perCertificate := checks
	if lister, ok := iss.(issuer.RevocationLister); ok && acquire(ctx, sem) == nil {
		byRef := make(map[issuer.OrderRef]*caCheck, len(checks))
		refs := make([]issuer.OrderRef, 0, len(checks))
		for _, ck := range checks {
			ref := issuer.OrderRef(ck.d.OrderRef)
			byRef[ref] = ck
			refs = append(refs, ref)
		}
		revoked, unanswered, err := lister.RevokedAmong(ctx, refs)
		release(sem)
		switch {
		case err != nil && (issuer.IsRetryable(err) || ctx.Err() != nil):
			// The CA is unreachable or busy: asking about each certificate would only multiply
			// the failures. The checks stay due for the next run.
			e.log.Warn("could not list the certificates the CA revoked; the next run asks again", "issuer", iss.Name(), "certificates", len(checks), "error", e.opts.Redact(err.Error()))
			for _, ck := range checks {
				ck.answered = false
			}
			return
		case err != nil:
			e.log.Warn("could not list the certificates the CA revoked; asking about each", "issuer", iss.Name(), "error", e.opts.Redact(err.Error()))
		default:
			for ref, msg := range revoked {
				if ck := byRef[ref]; ck != nil {
					e.revoked(ck, msg)
				}
			}
			perCertificate = perCertificate[:0:0]
			for _, ref := range unanswered {
				if ck := byRef[ref]; ck != nil {
					perCertificate = append(perCertificate, ck)
				}
			}
		}
	}
	e.eachAtIssuer(ctx, sem, perCertificate, func(ck *caCheck) {
		res, err := iss.Collect(ctx, issuer.OrderRef(ck.d.OrderRef))
		if err != nil {
			e.log.Warn("could not check the certificate's status at the CA", "certificate", ck.cert.Name, "error", e.opts.Redact(err.Error()))
			ck.answered = false
			return
		}
		if res.State == issuer.Revoked {
			e.revoked(ck, res.Message)
		}
	})
}

// revoked records that the CA revoked the check's certificate: the planner renews it.
func (e *Engine) revoked(ck *caCheck, msg string) {
	ck.d.Revoked = true
	e.progress(ck.cert, "the CA reports the certificate revoked")
	e.log.Debug("revoked at the CA", "certificate", ck.cert.Name, "message", msg)
}

// eachAtIssuer runs fn for every check, as many at once as the issuer's limit allows; checks
// not started when ctx ends are left unanswered.
func (e *Engine) eachAtIssuer(ctx context.Context, sem chan struct{}, checks []*caCheck, fn func(*caCheck)) {
	var wg sync.WaitGroup
	for _, ck := range checks {
		if acquire(ctx, sem) != nil {
			ck.answered = false
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer release(sem)
			fn(ck)
		}()
	}
	wg.Wait()
}

// recordRenewalInfo asks the CA when to renew (ARI) and records the window, the time chosen
// inside it and when the CA may be asked again. A CA's Retry-After is kept even when it
// refuses (RFC 9773 §4.3: no request before it). It reports whether the CA answered.
func (e *Engine) recordRenewalInfo(ctx context.Context, advisor issuer.RenewalAdvisor, leaf *x509.Certificate, d *state.Deployment, now time.Time) bool {
	w, err := advisor.RenewalWindow(ctx, leaf)
	if err != nil {
		if wait := issuer.RetryAfterOf(err); wait > 0 {
			d.RenewalInfoRetryAt = now.Add(wait)
		}
		e.log.Warn("could not get renewal information", "certificate", d.Certificate, "error", e.opts.Redact(err.Error()))
		return false
	}
	d.RenewalWindowStart, d.RenewalWindowEnd, d.RenewalInfoAt = w.Start, w.End, now
	d.RenewalAt = w.RenewAt(d.Fingerprint)
	d.RenewalInfoRetryAt = now.Add(w.RetryAfter)
	return true
}

// lastCACheck is when the CA was last asked about d, or when d was deployed if never.
func lastCACheck(d state.Deployment) time.Time {
	if !d.RevocationCheckedAt.IsZero() {
		return d.RevocationCheckedAt
	}
	return d.DeployedAt
}

// nextCACheck is the certificate's first CA-check slot after `after`. Each certificate's slots
// are one interval apart, at a phase within the interval derived from its name: the checks of
// a fleet fall evenly over the interval (a run every hour with a 24 h interval checks about
// 1/24 of the certificates), each stays in its place from run to run and across renewals, and
// a run that comes late checks what fell due meanwhile. Phases are whole seconds when the
// interval is, so every store keeps the slot exactly.
func nextCACheck(name string, after time.Time, interval time.Duration) time.Time {
	unit := time.Second
	if interval < time.Second || interval%time.Second != 0 {
		unit = time.Nanosecond
	}
	period := int64(interval / unit)
	if period <= 0 {
		return after
	}
	sum := sha256.Sum256([]byte(name))
	phase := int64(binary.BigEndian.Uint64(sum[:8]) % uint64(period))
	epoch := time.Unix(0, 0)
	if after.Before(epoch) {
		after = epoch
	}
	// after in units since the epoch, rounded down (the slot must come strictly after it).
	var since int64
	if unit == time.Second {
		since = after.Unix()
	} else {
		since = after.UnixNano()
	}
	k := (since - phase) / period
	if (since-phase)%period < 0 {
		k-- // floor, for an `after` before the first slot
	}
	slot := phase + (k+1)*period
	if unit == time.Second {
		return time.Unix(slot, 0).UTC()
	}
	return time.Unix(0, slot).UTC()
}
