package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
)

// ACME problem types (RFC 8555 §6.7, RFC 9773) this package acts on.
const (
	problemNS                  = "urn:ietf:params:acme:error:"
	problemAccountDoesNotExist = problemNS + "accountDoesNotExist"
	problemAlreadyRevoked      = problemNS + "alreadyRevoked"
	problemBadNonce            = problemNS + "badNonce"
	problemRateLimited         = problemNS + "rateLimited"
	problemServerInternal      = problemNS + "serverInternal"
	problemOrderNotReady       = problemNS + "orderNotReady"
	problemExternalAccountReq  = problemNS + "externalAccountRequired"
	problemUnauthorized        = problemNS + "unauthorized"
	problemMalformed           = problemNS + "malformed"
	problemUserActionRequired  = problemNS + "userActionRequired"
)

// defaultRateLimitWait is used when the CA says rateLimited without a Retry-After.
const defaultRateLimitWait = time.Minute

// Error is an ACME issuer failure. It says whether the same call may succeed later
// (issuer.IsRetryable) and, for rate limits, how long to wait.
type Error struct {
	// Op is what was being done, e.g. "new order".
	Op string
	// ProblemType is the CA's problem type (urn:ietf:params:acme:error:...), if it sent one.
	ProblemType string
	// Status is the HTTP status of the CA's answer, if any.
	Status int
	// Detail explains the failure and, where one exists, the fix.
	Detail     string
	retryable  bool
	retryAfter time.Duration
	cause      error
}

func (e *Error) Error() string {
	msg := e.Op + ": " + e.Detail
	if e.ProblemType != "" {
		msg += " (" + strings.TrimPrefix(e.ProblemType, problemNS)
		if e.Status != 0 {
			msg += fmt.Sprintf(", HTTP %d", e.Status)
		}
		msg += ")"
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.cause }

// Retryable reports whether the same call may succeed later.
func (e *Error) Retryable() bool { return e.retryable }

// RetryAfter is the CA's requested wait before trying again (zero: the caller's own backoff).
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

// problemOf returns the CA's problem document inside err, if any.
func problemOf(err error) *legoacme.ProblemDetails {
	var pd *legoacme.ProblemDetails
	if errors.As(err, &pd) {
		return pd
	}
	return nil
}

func isProblem(err error, problemType string) bool {
	pd := problemOf(err)
	return pd != nil && pd.Type == problemType
}

// classify turns an error from the ACME library into an *Error. hint, when not empty, replaces
// the generic explanation for CA refusals.
func classify(op string, err error) *Error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return already
	}
	e := &Error{Op: op, cause: err, Detail: err.Error()}

	var rl *legoacme.RateLimitedError
	if errors.As(err, &rl) {
		e.ProblemType, e.Status, e.Detail = rl.Type, rl.HTTPStatus, "rate limited by the CA: "+rl.Detail
		e.retryable, e.retryAfter = true, rl.RetryAfter
		if e.retryAfter <= 0 {
			e.retryAfter = defaultRateLimitWait
		}
		return e
	}
	if pd := problemOf(err); pd != nil {
		e.ProblemType, e.Status, e.Detail = pd.Type, pd.HTTPStatus, describeProblem(pd)
		switch {
		case pd.Type == problemRateLimited || pd.HTTPStatus == http.StatusTooManyRequests:
			e.retryable, e.retryAfter = true, defaultRateLimitWait
		case pd.Type == problemBadNonce, pd.Type == problemServerInternal, pd.HTTPStatus >= 500:
			e.retryable = true
		}
		return e
	}
	if hint := tlsHint(err); hint != "" {
		e.Detail = hint + ": " + err.Error()
		return e
	}
	// Transport failures, timeouts, cancellations and unparsable answers (a proxy's error page)
	// may all pass.
	e.retryable = true
	if errors.Is(err, context.Canceled) {
		e.Detail = "cancelled: " + err.Error()
	}
	return e
}

// withRateLimitWait puts the Retry-After of a rateLimited answer into err's wait. The ACME
// library reads Retry-After only for HTTP 429; RFC 8555 §6.6 names no status for rateLimited,
// so the header is taken from the observed answer whatever its status. err is returned.
func withRateLimitWait(obs *callObserver, err error) error {
	var e *Error
	pd := problemOf(err)
	if obs == nil || pd == nil || !errors.As(err, &e) || e.ProblemType != problemRateLimited {
		return err
	}
	if wait := obs.retryAfterFor(pd.URL); wait > 0 {
		e.retryAfter = wait
	}
	return err
}

// tlsHint explains certificate verification failures, which no retry fixes.
func tlsHint(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknown), errors.As(err, &verify):
		return "the CA's HTTPS certificate is not trusted; add its issuing CA to tls.ca_bundle"
	case errors.As(err, &hostname):
		return "the CA's HTTPS certificate does not match the host in directory_url"
	case errors.As(err, &invalid):
		return "the CA's HTTPS certificate is invalid (expired or not valid for TLS)"
	}
	return ""
}

// describeProblem renders a problem document, with its subproblems and any user action link.
func describeProblem(pd *legoacme.ProblemDetails) string {
	var b strings.Builder
	b.WriteString(pd.Detail)
	if pd.Detail == "" {
		b.WriteString(strings.TrimPrefix(pd.Type, problemNS))
	}
	for _, sp := range pd.SubProblems {
		fmt.Fprintf(&b, "; %s %s: %s", sp.Identifier.Type, sp.Identifier.Value, sp.Detail)
	}
	if pd.Type == problemUserActionRequired && pd.Instance != "" {
		fmt.Fprintf(&b, "; visit %s", pd.Instance)
	}
	return b.String()
}

// configError is a problem only a configuration change fixes.
func configError(op, format string, args ...any) *Error {
	return &Error{Op: op, Detail: fmt.Sprintf(format, args...)}
}
