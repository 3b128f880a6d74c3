// Package issuer defines what the engine needs of a certificate authority: submit a CSR and get
// an order reference, collect the chain (or hear "pending"), find an order whose submission had an
// unknown outcome, and revoke. Implementations live in sub-packages (scm, acme).
package issuer

import (
	"context"
	"crypto/x509"
	"errors"
	"time"
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
