package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"

	devicev1 "github.com/certfleet/certfleet/proto/certfleet/device/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Well-known error reasons. Plugins may add their own, in UPPER_SNAKE_CASE.
const (
	ReasonBadCredentials   = "BAD_CREDENTIALS"
	ReasonPermission       = "PERMISSION_DENIED"
	ReasonTLSVerify        = "TLS_VERIFY_FAILED"
	ReasonUnreachable      = "DEVICE_UNREACHABLE"
	ReasonTimeout          = "TIMEOUT"
	ReasonCanceled         = "CANCELED"
	ReasonInvalidRequest   = "INVALID_REQUEST"
	ReasonUnknownBinding   = "UNKNOWN_BINDING"
	ReasonUnsupported      = "UNSUPPORTED"
	ReasonNotFound         = "NOT_FOUND"
	ReasonAlreadyExists    = "ALREADY_EXISTS"
	ReasonKeyMismatch      = "KEY_MISMATCH"
	ReasonStillBound       = "STILL_BOUND"
	ReasonCommitFailed     = "COMMIT_FAILED"
	ReasonDeviceError      = "DEVICE_ERROR"
	ReasonPluginCrashed    = "PLUGIN_CRASHED"
	ReasonBadRollbackToken = "BAD_ROLLBACK_TOKEN"
)

// Error is a contract error: a gRPC code, a machine-readable reason, and the device's own code and
// message when it gave one. It crosses the process boundary intact.
type Error struct {
	Code          codes.Code
	Reason        string
	Message       string
	VendorCode    string
	VendorMessage string
	// Err is the cause inside the plugin; only its text crosses the boundary.
	Err error
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Err != nil {
		if msg == "" {
			msg = e.Err.Error()
		} else {
			msg += ": " + e.Err.Error()
		}
	}
	if e.VendorCode != "" || e.VendorMessage != "" {
		msg += fmt.Sprintf(" (device error %s: %s)", e.VendorCode, e.VendorMessage)
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the same call may succeed later unchanged.
func (e *Error) Retryable() bool {
	return e.Code == codes.Unavailable || e.Code == codes.DeadlineExceeded || e.Code == codes.Aborted ||
		e.Code == codes.ResourceExhausted
}

// WithVendor records the device's own error code and message.
func (e *Error) WithVendor(code, message string) *Error {
	e.VendorCode, e.VendorMessage = code, message
	return e
}

// WithCause records the underlying error.
func (e *Error) WithCause(err error) *Error {
	e.Err = err
	return e
}

// GRPCStatus lets grpc send the error as a status with an ErrorDetail.
func (e *Error) GRPCStatus() *status.Status {
	st := status.New(e.Code, e.Error())
	detailed, err := st.WithDetails(&devicev1.ErrorDetail{
		Reason: e.Reason, VendorCode: e.VendorCode, VendorMessage: e.VendorMessage,
	})
	if err != nil {
		return st
	}
	return detailed
}

func newError(code codes.Code, reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Unauthenticated: the device rejected the credentials.
func Unauthenticated(format string, args ...any) *Error {
	return newError(codes.Unauthenticated, ReasonBadCredentials, format, args...)
}

// PermissionDenied: logged in, but not allowed to do this.
func PermissionDenied(format string, args ...any) *Error {
	return newError(codes.PermissionDenied, ReasonPermission, format, args...)
}

// InvalidArgument: the request itself is wrong; retrying will not help.
func InvalidArgument(reason, format string, args ...any) *Error {
	return newError(codes.InvalidArgument, reason, format, args...)
}

// NotFound: a referenced object does not exist on the device.
func NotFound(format string, args ...any) *Error {
	return newError(codes.NotFound, ReasonNotFound, format, args...)
}

// UnknownBinding: a binding names an object (vserver, profile, ...) the device does not have.
func UnknownBinding(format string, args ...any) *Error {
	return newError(codes.NotFound, ReasonUnknownBinding, format, args...)
}

// AlreadyExists: an object of that name exists.
func AlreadyExists(format string, args ...any) *Error {
	return newError(codes.AlreadyExists, ReasonAlreadyExists, format, args...)
}

// FailedPrecondition: the device is not in a state that allows this (still bound, pending commit, ...).
func FailedPrecondition(reason, format string, args ...any) *Error {
	return newError(codes.FailedPrecondition, reason, format, args...)
}

// Unavailable: the device could not be reached or is busy; retryable.
func Unavailable(format string, args ...any) *Error {
	return newError(codes.Unavailable, ReasonUnreachable, format, args...)
}

// Unimplemented: the plugin does not support this call or option.
func Unimplemented(format string, args ...any) *Error {
	return newError(codes.Unimplemented, ReasonUnsupported, format, args...)
}

// Internal: the device answered something the plugin cannot make sense of.
func Internal(reason, format string, args ...any) *Error {
	return newError(codes.Internal, reason, format, args...)
}

// FromContext turns a context's end into the contract's error, or nil while ctx is live.
func FromContext(ctx context.Context) *Error {
	err := ctx.Err()
	if deadline, ok := ctx.Deadline(); ok && err == nil && !time.Now().Before(deadline) {
		// Passed, though ctx's timer has not fired yet: a network call given the same deadline
		// (a dial's "i/o timeout") can return in between, and its failure is the deadline's.
		err = context.DeadlineExceeded
	}
	switch err {
	case context.DeadlineExceeded:
		return newError(codes.DeadlineExceeded, ReasonTimeout, "deadline exceeded")
	case context.Canceled:
		return newError(codes.Canceled, ReasonCanceled, "canceled")
	}
	return nil
}

// AsError returns err as a contract *Error: itself when it is one, a reconstruction when it is a
// gRPC status from the other side of the boundary, a context error mapped to its code, and
// otherwise Internal.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: codes.DeadlineExceeded, Reason: ReasonTimeout, Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Code: codes.Canceled, Reason: ReasonCanceled, Err: err}
	}
	if st, ok := status.FromError(err); ok {
		out := &Error{Code: st.Code(), Message: st.Message()}
		for _, d := range st.Details() {
			if detail, ok := d.(*devicev1.ErrorDetail); ok {
				out.Reason, out.VendorCode, out.VendorMessage = detail.Reason, detail.VendorCode, detail.VendorMessage
				// The message already includes the vendor part; keep it once.
				out.Message = stripVendorSuffix(out.Message, detail.VendorCode, detail.VendorMessage)
			}
		}
		if out.Reason == "" {
			out.Reason = defaultReason(st.Code())
		}
		return out
	}
	return &Error{Code: codes.Internal, Reason: ReasonDeviceError, Err: err}
}

// CodeOf returns the gRPC code of err as the contract sees it.
func CodeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	return AsError(err).Code
}

// IsRetryable reports whether err is one the contract calls retryable.
func IsRetryable(err error) bool { return err != nil && AsError(err).Retryable() }

func stripVendorSuffix(msg, code, vmsg string) string {
	if code == "" && vmsg == "" {
		return msg
	}
	suffix := fmt.Sprintf(" (device error %s: %s)", code, vmsg)
	if len(msg) >= len(suffix) && msg[len(msg)-len(suffix):] == suffix {
		return msg[:len(msg)-len(suffix)]
	}
	return msg
}

func defaultReason(c codes.Code) string {
	switch c {
	case codes.Unauthenticated:
		return ReasonBadCredentials
	case codes.PermissionDenied:
		return ReasonPermission
	case codes.NotFound:
		return ReasonNotFound
	case codes.AlreadyExists:
		return ReasonAlreadyExists
	case codes.Unavailable:
		return ReasonUnreachable
	case codes.DeadlineExceeded:
		return ReasonTimeout
	case codes.Canceled:
		return ReasonCanceled
	case codes.Unimplemented:
		return ReasonUnsupported
	case codes.InvalidArgument:
		return ReasonInvalidRequest
	}
	return ReasonDeviceError
}
