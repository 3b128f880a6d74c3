// Package issuer defines what the engine needs of a certificate authority: submit a CSR and get
// an order reference, collect the chain (or hear "pending"), find an order whose submission had an
// unknown outcome, and revoke. Implementations live in sub-packages (scm, acme).
package issuer

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// ErrOutcomeUnknown marks a Submit whose request may or may not have created an order (the
// response was lost). The engine must then call Find with the same Request instead of submitting
// again, so an order is never placed twice.
var ErrOutcomeUnknown = errors.New("the CA may have accepted the order, but its answer was lost")

// ErrNotPlaced marks a Submit error that proves no order exists: the request never left (a dial
// error, a refused token, options rejected before sending) or the CA refused it with an answer.
// Only then may the engine treat the order as not sent; any other Submit error is handled as
// ErrOutcomeUnknown, so an interrupted request is looked up before another is placed.
var ErrNotPlaced = errors.New("the CA placed no order")

// NotPlaced marks err as proof that no order was placed (see ErrNotPlaced); its text is unchanged.
func NotPlaced(err error) error {
	if err == nil {
		return nil
	}
	return notPlaced{err}
}

type notPlaced struct{ err error }

func (e notPlaced) Error() string        { return e.err.Error() }
func (e notPlaced) Unwrap() error        { return e.err }
func (e notPlaced) Is(target error) bool { return target == ErrNotPlaced }

// Request is one certificate order.
type Request struct {
	// CertificateName is the certificate's name in the configuration.
	CertificateName string
	// RequestID is unique per order attempt and recorded by the engine before Submit; issuers put
	// it where Find can see it later (SCM: the order's comments; ACME: the stored order URL).
	RequestID string
	CSRPEM    string
	// CommonName and the SANs, already checked against the CSR by the engine.
	CommonName     string
	DNSNames       []string
	IPAddresses    []string
	EmailAddresses []string
	// PreviousCertPEM is the certificate this order replaces, on a renewal (ACME uses it for
	// the RFC 9773 "replaces" field).
	PreviousCertPEM string
	// Options are the certificate's issuer options from the configuration, checked by ValidateOptions.
	Options map[string]any
}

// OrderRef is an issuer's reference to an order, stored by the engine; only the issuer that made it
// interprets it.
type OrderRef string

// State is where an order stands.
type State int

const (
	// Pending: not issued yet; collect again after Result.RetryAfter.
	Pending State = iota
	// Issued: Result holds the certificate and chain.
	Issued
	// Failed: declined, rejected or invalid; the order will never issue.
	Failed
	// Revoked: issued and since revoked; a new order is needed.
	Revoked
)

func (s State) String() string {
	switch s {
	case Pending:
		return "pending"
	case Issued:
		return "issued"
	case Failed:
		return "failed"
	case Revoked:
		return "revoked"
	}
	return "unknown"
}

// Result of a Collect.
type Result struct {
	State State
	// CertPEM is the leaf; ChainPEM the certificates above it, issuer of the previous first.
	CertPEM  string
	ChainPEM []string
	// RetryAfter is the CA's suggested wait while Pending (zero: the engine's own backoff).
	RetryAfter time.Duration
	// Message explains Failed or Revoked in the CA's words.
	Message string
}

// RevokeReason is an RFC 5280 CRL reason code.
type RevokeReason int

const (
	ReasonUnspecified          RevokeReason = 0
	ReasonKeyCompromise        RevokeReason = 1
	ReasonAffiliationChanged   RevokeReason = 3
	ReasonSuperseded           RevokeReason = 4
	ReasonCessationOfOperation RevokeReason = 5
)

// Capabilities describe an issuer to the engine and to `certfleet plan`.
type Capabilities struct {
	// Type is "scm" or "acme".
	Type string
	// SupportsRevoke is false when revocation must be done elsewhere.
	SupportsRevoke bool
	// RenewalInfo is true when the issuer implements RenewalAdvisor.
	RenewalInfo bool
}

// Issuer is a certificate authority account.
type Issuer interface {
	// Name is the issuer's name in the configuration.
	Name() string
	Capabilities() Capabilities
	// ValidateOptions checks a certificate's issuer options at configuration time, without
	// contacting the CA; errors name the option and the fix.
	ValidateOptions(opts map[string]any) error
	// Submit places an order. It never retries blindly once the request may have reached the CA:
	// then it returns an error wrapping ErrOutcomeUnknown, also when ctx ended while the request
	// was in flight. Errors that prove no order exists wrap ErrNotPlaced (see NotPlaced); the
	// engine treats every other error as an unknown outcome.
	Submit(ctx context.Context, req Request) (OrderRef, error)
	// Find looks for the order a Submit of req placed; found is false when there is none.
	Find(ctx context.Context, req Request) (ref OrderRef, found bool, err error)
	// Collect returns the order's state, with the chain once issued.
	Collect(ctx context.Context, ref OrderRef) (Result, error)
	// Revoke revokes the certificate the order issued.
	Revoke(ctx context.Context, ref OrderRef, cert *x509.Certificate, reason RevokeReason) error
}

// RenewalWindow is a CA's suggestion of when to renew a certificate.
type RenewalWindow struct {
	Start, End time.Time
	// ExplanationURL is where the CA explains the suggestion, if it gave one.
	ExplanationURL string
	// RetryAfter is when to ask again.
	RetryAfter time.Duration
}

// RenewAt is the moment to renew inside the window: uniformly spread over [Start, End), as
// RFC 9773 §4.2 asks ("select a uniform random time within the suggested window"), so that the
// CA does not get every renewal at the window's start. It is derived from key (something unique
// to the certificate, e.g. its fingerprint) and the window, not drawn afresh: every run, and a
// resumed process, finds the same time until the CA moves the window. A window without a
// usable end gives Start.
func (w RenewalWindow) RenewAt(key string) time.Time {
	span := w.End.Sub(w.Start)
	if span <= 0 {
		return w.Start
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d", key, w.Start.UnixNano(), w.End.UnixNano())
	n := binary.BigEndian.Uint64(h.Sum(nil)[:8])
	// The offset is n/2^64 of the span; 128-bit arithmetic keeps it exact for any span.
	hi, _ := bits.Mul64(n, uint64(span))
	return w.Start.Add(time.Duration(hi))
}

// RenewalAdvisor is implemented by issuers that can tell when a certificate should be renewed
// (ACME Renewal Information, RFC 9773).
type RenewalAdvisor interface {
	RenewalWindow(ctx context.Context, cert *x509.Certificate) (RenewalWindow, error)
}

// Retryable is implemented by errors that say whether the same call may succeed later.
type Retryable interface {
	Retryable() bool
}

// IsRetryable reports whether err says it may succeed when tried again.
func IsRetryable(err error) bool {
	var r Retryable
	return errors.As(err, &r) && r.Retryable()
}

// RetryAfterError is implemented by errors that carry the CA's requested wait before the same
// call is tried again (a rateLimited answer's Retry-After).
type RetryAfterError interface {
	RetryAfter() time.Duration
}

// RetryAfterOf is the wait err asks for; zero when it asks for none.
func RetryAfterOf(err error) time.Duration {
	var r RetryAfterError
	if errors.As(err, &r) {
		return max(r.RetryAfter(), 0)
	}
	return 0
}

// The adaptive schedule of polls of a pending order, used when the CA gives no Retry-After: the
// first poll comes soon (most orders of an automated CA are ready within a second), later ones
// further apart, up to a cap.
const (
	DefaultPollInitial = 250 * time.Millisecond
	DefaultPollMax     = 30 * time.Second
)

// NewPollSchedule returns that schedule, starting at initial and doubling up to max (the package
// defaults for zero values); each wait varies by ±10 % so that many orders placed together are not
// polled in lock step. It never stops on its own: the caller's collect time bounds it.
func NewPollSchedule(initial, maxWait time.Duration) *backoff.ExponentialBackOff {
	if initial <= 0 {
		initial = DefaultPollInitial
	}
	if maxWait <= 0 {
		maxWait = DefaultPollMax
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     initial,
		RandomizationFactor: 0.1,
		Multiplier:          2,
		MaxInterval:         max(maxWait, initial),
	}
	b.Reset()
	return b
}
