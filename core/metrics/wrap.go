package metrics

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// WrapIssuer measures every call to iss. It keeps the optional interfaces iss implements.
func (m *Metrics) WrapIssuer(name string, iss issuer.Issuer) issuer.Issuer {
	w := &timedIssuer{Issuer: iss, m: m, name: name}
	adv, isAdvisor := iss.(issuer.RenewalAdvisor)
	lister, isLister := iss.(issuer.RevocationLister)
	switch {
	case isAdvisor && isLister:
		return &struct {
			*timedIssuer
			timedAdvisor
			timedLister
		}{w, timedAdvisor{w, adv}, timedLister{w, lister}}
	case isAdvisor:
		return &struct {
			*timedIssuer
			timedAdvisor
		}{w, timedAdvisor{w, adv}}
	case isLister:
		return &struct {
			*timedIssuer
			timedLister
		}{w, timedLister{w, lister}}
	}
	return w
}

type timedIssuer struct {
	issuer.Issuer
	m    *Metrics
	name string
}

func (t *timedIssuer) observe(op string, start time.Time, err error) {
	t.m.caDuration.WithLabelValues(t.name, op).Observe(time.Since(start).Seconds())
	if err != nil {
		t.m.caErrors.WithLabelValues(t.name, op, caReason(err)).Inc()
	}
}

func (t *timedIssuer) Submit(ctx context.Context, req issuer.Request) (ref issuer.OrderRef, err error) {
	defer func(start time.Time) { t.observe("submit", start, err) }(time.Now())
	return t.Issuer.Submit(ctx, req)
}

func (t *timedIssuer) Find(ctx context.Context, req issuer.Request) (ref issuer.OrderRef, found bool, err error) {
	defer func(start time.Time) { t.observe("find", start, err) }(time.Now())
	return t.Issuer.Find(ctx, req)
}

func (t *timedIssuer) Collect(ctx context.Context, ref issuer.OrderRef) (res issuer.Result, err error) {
	defer func(start time.Time) { t.observe("collect", start, err) }(time.Now())
	return t.Issuer.Collect(ctx, ref)
}

func (t *timedIssuer) Revoke(ctx context.Context, ref issuer.OrderRef, cert *x509.Certificate, reason issuer.RevokeReason) (err error) {
	defer func(start time.Time) { t.observe("revoke", start, err) }(time.Now())
	return t.Issuer.Revoke(ctx, ref, cert, reason)
}

// timedAdvisor and timedLister measure the optional interfaces; WrapIssuer puts them beside the
// timedIssuer of the same issuer.
type timedAdvisor struct {
	timed *timedIssuer
	adv   issuer.RenewalAdvisor
}

func (t timedAdvisor) RenewalWindow(ctx context.Context, cert *x509.Certificate) (w issuer.RenewalWindow, err error) {
	defer func(start time.Time) { t.timed.observe("renewal_info", start, err) }(time.Now())
	return t.adv.RenewalWindow(ctx, cert)
}

func (t timedAdvisor) OffersRenewalInfo(ctx context.Context) (offered bool, err error) {
	defer func(start time.Time) { t.timed.observe("renewal_info_offered", start, err) }(time.Now())
	return t.adv.OffersRenewalInfo(ctx)
}

type timedLister struct {
	timed  *timedIssuer
	lister issuer.RevocationLister
}

func (t timedLister) RevokedAmong(ctx context.Context, refs []issuer.OrderRef) (revoked map[issuer.OrderRef]string, unanswered []issuer.OrderRef, err error) {
	defer func(start time.Time) { t.timed.observe("list_revoked", start, err) }(time.Now())
	return t.lister.RevokedAmong(ctx, refs)
}

// caReason is a short, bounded label for a CA error.
func caReason(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, issuer.ErrOutcomeUnknown):
		return "outcome_unknown"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &netErr):
		return "unreachable"
	case issuer.IsRetryable(err):
		return "retryable"
	}
	return "error"
}

// WrapPlugin measures every device call made through p. Methods added to sdk.Plugin later pass
// through unmeasured until they are added here.
func (m *Metrics) WrapPlugin(name string, p sdk.Plugin) sdk.Plugin {
	return &timedPlugin{Plugin: p, m: m, name: name}
}

type timedPlugin struct {
	sdk.Plugin
	m    *Metrics
	name string
}

func (t *timedPlugin) observe(op string, target sdk.Target, start time.Time, err error) {
	t.m.devDuration.WithLabelValues(t.name, op).Observe(time.Since(start).Seconds())
	if err != nil {
		reason := strings.ToLower(sdk.AsError(err).Reason)
		if reason == "" {
			reason = "error"
		}
		t.m.devErrors.WithLabelValues(t.name, target.Name, op, reason).Inc()
	}
}

func (t *timedPlugin) CheckTarget(ctx context.Context, tg sdk.Target) (r sdk.TargetInfo, err error) {
	defer func(start time.Time) { t.observe("check_target", tg, start, err) }(time.Now())
	return t.Plugin.CheckTarget(ctx, tg)
}

func (t *timedPlugin) Inventory(ctx context.Context, tg sdk.Target) (r []sdk.DeviceCertificate, err error) {
	defer func(start time.Time) { t.observe("inventory", tg, start, err) }(time.Now())
	return t.Plugin.Inventory(ctx, tg)
}

func (t *timedPlugin) GenerateCSR(ctx context.Context, tg sdk.Target, req sdk.CSRRequest) (r sdk.CSR, err error) {
	defer func(start time.Time) { t.observe("generate_csr", tg, start, err) }(time.Now())
	return t.Plugin.GenerateCSR(ctx, tg, req)
}

func (t *timedPlugin) ImportCert(ctx context.Context, tg sdk.Target, req sdk.ImportRequest) (r sdk.ImportResult, err error) {
	defer func(start time.Time) { t.observe("import_cert", tg, start, err) }(time.Now())
	return t.Plugin.ImportCert(ctx, tg, req)
}

func (t *timedPlugin) Bind(ctx context.Context, tg sdk.Target, req sdk.BindRequest) (r sdk.BindResult, err error) {
	defer func(start time.Time) { t.observe("bind", tg, start, err) }(time.Now())
	return t.Plugin.Bind(ctx, tg, req)
}

func (t *timedPlugin) Commit(ctx context.Context, tg sdk.Target, req sdk.CommitRequest) (r sdk.CommitResult, err error) {
	defer func(start time.Time) { t.observe("commit", tg, start, err) }(time.Now())
	return t.Plugin.Commit(ctx, tg, req)
}

func (t *timedPlugin) Rollback(ctx context.Context, tg sdk.Target, token []byte) (err error) {
	defer func(start time.Time) { t.observe("rollback", tg, start, err) }(time.Now())
	return t.Plugin.Rollback(ctx, tg, token)
}

func (t *timedPlugin) Cleanup(ctx context.Context, tg sdk.Target, objects []sdk.ObjectRef) (r []sdk.CleanupResult, err error) {
	defer func(start time.Time) { t.observe("cleanup", tg, start, err) }(time.Now())
	return t.Plugin.Cleanup(ctx, tg, objects)
}
