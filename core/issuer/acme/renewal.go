package acme

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"

	"github.com/certfleet/certfleet/core/issuer"
)

// ErrNoRenewalInfo: the CA's directory has no renewalInfo resource (RFC 9773); the engine falls
// back to its own renewal window.
var ErrNoRenewalInfo = errors.New("the CA does not offer ACME Renewal Information")

// RFC 9773 §4.3: clients should keep their polling between a minute and a day, and poll every
// six hours when the CA gives no Retry-After.
const (
	ariDefaultRetry = 6 * time.Hour
	ariMinRetry     = time.Minute
	ariMaxRetry     = 24 * time.Hour
)

// OffersRenewalInfo reports whether the CA's directory has a renewalInfo resource (RFC 9773
// §3). It reads the directory fetched with the account, so it costs a call only when the account
// is not loaded yet.
func (i *Issuer) OffersRenewalInfo(ctx context.Context) (bool, error) {
	core, err := i.account(ctx)
	if err != nil {
		return false, err
	}
	return core.GetDirectory().RenewalInfo != "", nil
}

// RenewalWindow asks the CA when cert should be renewed (RFC 9773 renewalInfo). A revoked
// certificate typically gets a window that has already begun.
func (i *Issuer) RenewalWindow(ctx context.Context, cert *x509.Certificate) (issuer.RenewalWindow, error) {
	const op = "renewal information"
	id, err := CertID(cert)
	if err != nil {
		return issuer.RenewalWindow{}, &Error{Op: op, Detail: err.Error(), cause: err}
	}
	ctx, obs := withObserver(ctx)
	var info *legoacme.ExtendedRenewalInfo
	err = i.withAccount(ctx, func(core *api.Core) error {
		var err error
		info, err = core.Certificates.GetRenewalInfo(ctx, id)
		return err
	})
	if errors.Is(err, api.ErrNoARI) {
		return issuer.RenewalWindow{}, &Error{Op: op, Detail: ErrNoRenewalInfo.Error(), cause: ErrNoRenewalInfo}
	}
	if err != nil {
		e := classify(op, err)
		_ = withRateLimitWait(obs, e)
		if pd := problemOf(err); pd != nil && pd.HTTPStatus == http.StatusNotFound {
			e.Detail = fmt.Sprintf("the CA does not know certificate %s (serial %s): %s", id, cert.SerialNumber.Text(16), e.Detail)
		}
		return issuer.RenewalWindow{}, e
	}
	w := info.SuggestedWindow
	if w.Start.IsZero() || w.End.Before(w.Start) {
		return issuer.RenewalWindow{}, &Error{Op: op, retryable: true,
			Detail: fmt.Sprintf("the CA's suggested window (%s – %s) is not usable", w.Start, w.End)}
	}
	retry := info.RetryAfter
	switch {
	case retry <= 0:
		retry = ariDefaultRetry
	case retry < ariMinRetry:
		retry = ariMinRetry
	case retry > ariMaxRetry:
		retry = ariMaxRetry
	}
	return issuer.RenewalWindow{Start: w.Start, End: w.End, ExplanationURL: info.ExplanationURL, RetryAfter: retry}, nil
}

// Revoke revokes the certificate with the account key (RFC 8555 §7.6). cert may be nil: the
// certificate the order issued is then fetched. A certificate already revoked is not an error.
func (i *Issuer) Revoke(ctx context.Context, ref issuer.OrderRef, cert *x509.Certificate, reason issuer.RevokeReason) error {
	const op = "revoke certificate"
	switch reason {
	case issuer.ReasonUnspecified, issuer.ReasonKeyCompromise, issuer.ReasonAffiliationChanged,
		issuer.ReasonSuperseded, issuer.ReasonCessationOfOperation:
	default:
		return configError(op, "revocation reason %d is not one ACME CAs accept (0, 1, 3, 4, 5)", reason)
	}
	if cert == nil {
		var err error
		if cert, err = i.issuedCertificate(ctx, ref); err != nil {
			return err
		}
	}
	code := uint(reason)
	msg := legoacme.RevokeCertMessage{Certificate: base64.RawURLEncoding.EncodeToString(cert.Raw), Reason: &code}
	err := i.withAccount(ctx, func(core *api.Core) error { return core.Certificates.Revoke(ctx, msg) })
	if isProblem(err, problemAlreadyRevoked) {
		return nil
	}
	if err != nil {
		return classify(op, err)
	}
	i.log.Info("certificate revoked", "issuer", i.cfg.Name, "serial", cert.SerialNumber.Text(16), "reason", int(reason))
	return nil
}

// issuedCertificate downloads the leaf of a valid order.
func (i *Issuer) issuedCertificate(ctx context.Context, ref issuer.OrderRef) (*x509.Certificate, error) {
	const op = "fetch the certificate to revoke"
	r, err := decodeRef(ref)
	if err != nil {
		return nil, err
	}
	var leaf *x509.Certificate
	err = i.withAccount(ctx, func(core *api.Core) error {
		order, err := core.Orders.Get(ctx, r.OrderURL)
		if err != nil {
			return err
		}
		if order.Status != legoacme.StatusValid || order.Certificate == "" {
			return &Error{Op: op, Detail: fmt.Sprintf("the order is %s, it has no certificate", order.Status)}
		}
		raw, err := core.Certificates.Get(ctx, order.Certificate, false)
		if err != nil {
			return err
		}
		chain, err := parseChain(raw.Cert)
		if err != nil {
			return err
		}
		leaf = chain[0]
		return nil
	})
	if err != nil {
		return nil, classify(op, err)
	}
	return leaf, nil
}
