package engine

import (
	"context"
	"sync"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// refreshCAView asks the CA, at most once per RevocationCheckInterval per certificate, whether a
// deployed certificate was revoked and when it suggests renewal (ARI), and records the answer on
// the deployment for the planner.
func (e *Engine) refreshCAView(ctx context.Context, names []string) error {
	if e.opts.RevocationCheckInterval < 0 {
		return nil
	}
	certs, err := e.selected(names)
	if err != nil {
		return err
	}
	deployments, err := e.opts.Store.Deployments(ctx)
	if err != nil {
		return err
	}
	e.refreshCAViewOf(ctx, certs, deployments)
	return nil
}

// refreshCAViewOf is refreshCAView for certs whose deployments are given; it returns the
// deployments it updated.
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
			res, err := iss.Collect(ctx, issuer.OrderRef(d.OrderRef))
			if err != nil {
				e.log.Warn("could not check the certificate's status at the CA", "certificate", c.Name, "error", e.opts.Redact(err.Error()))
				return
			}
			if res.State == issuer.Revoked {
				d.Revoked = true
				e.progress(c, "the CA reports the certificate revoked")
			}
			if advisor, ok := iss.(issuer.RenewalAdvisor); ok {
				if leaf, err := sdk.ParseCertificatePEM(d.CertPEM); err == nil {
					if w, err := advisor.RenewalWindow(ctx, leaf); err == nil {
						d.RenewalWindowStart, d.RenewalWindowEnd, d.RenewalInfoAt = w.Start, w.End, now
					} else {
						e.log.Warn("could not get renewal information", "certificate", c.Name, "error", e.opts.Redact(err.Error()))
					}
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
