package engine

import (
	"context"
	"crypto/x509"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// refreshCAViewOf asks the CA, at most once per RevocationCheckInterval per certificate, whether a
// deployed certificate was revoked and when it suggests renewal (ARI), and records the answer on
// the deployment for the planner. It returns the deployments it updated (read whole).
func (e *Engine) refreshCAViewOf(ctx context.Context, certs []Certificate, deployments map[string]state.Deployment) map[string]state.Deployment {
	now := e.opts.Now()
	var mu sync.Mutex
	updated := map[string]state.Deployment{}
	var wg sync.WaitGroup
	for _, c := range certs {
		d, ok := deployments[c.Name]
		if !ok || d.OrderRef == "" || d.Revoked || now.Sub(d.RevocationCheckedAt) < e.opts.RevocationCheckInterval {
			continue
		}
		iss, sem, err := e.issuerFor(c)
		if err != nil || d.Issuer != c.Issuer {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if acquire(ctx, sem) != nil {
				return
			}
			defer release(sem)
			if d.Summary {
				whole, ok, err := e.opts.Store.Deployment(ctx, c.Name)
				if err != nil || !ok {
					e.log.Warn("could not read the deployment", "certificate", c.Name, "error", err)
					return
				}
				d = whole
			}
			res, err := iss.Collect(ctx, issuer.OrderRef(d.OrderRef))
			if err != nil {
				e.log.Warn("could not check the certificate's status at the CA", "certificate", c.Name, "error", e.opts.Redact(err.Error()))
				return
			}
			if res.State == issuer.Revoked {
				d.Revoked = true
				e.progress(c, "the CA reports the certificate revoked")
			}
			if advisor, ok := iss.(issuer.RenewalAdvisor); ok && !now.Before(d.RenewalInfoRetryAt) {
				if leaf, err := sdk.ParseCertificatePEM(d.CertPEM); err == nil {
					e.recordRenewalInfo(ctx, advisor, leaf, &d, now)
				}
			}
			d.RevocationCheckedAt = now
			if err := e.opts.Store.SaveDeployment(ctx, d); err != nil {
				e.log.Warn("could not record the CA's answer", "certificate", c.Name, "error", err)
				return
			}
			mu.Lock()
			updated[c.Name] = d
			mu.Unlock()
		}()
	}
	wg.Wait()
	return updated
}

// recordRenewalInfo asks the CA when to renew (ARI) and records the window, the time chosen
// inside it and when the CA may be asked again. A CA's Retry-After is kept even when it
// refuses (RFC 9773 §4.3: no request before it).
func (e *Engine) recordRenewalInfo(ctx context.Context, advisor issuer.RenewalAdvisor, leaf *x509.Certificate, d *state.Deployment, now time.Time) {
	w, err := advisor.RenewalWindow(ctx, leaf)
	if err != nil {
		if wait := issuer.RetryAfterOf(err); wait > 0 {
			d.RenewalInfoRetryAt = now.Add(wait)
		}
		e.log.Warn("could not get renewal information", "certificate", d.Certificate, "error", e.opts.Redact(err.Error()))
		return
	}
	d.RenewalWindowStart, d.RenewalWindowEnd, d.RenewalInfoAt = w.Start, w.End, now
	d.RenewalAt = w.RenewAt(d.Fingerprint)
	d.RenewalInfoRetryAt = now.Add(w.RetryAfter)
}
