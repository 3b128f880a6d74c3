package f5bigip

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/certfleet/certfleet/plugins/f5-bigip/icontrol"
	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

// Reasons this plugin adds to the SDK's.
const (
	// ReasonBadPassphrase: the device could not open a key with the passphrase it was given.
	ReasonBadPassphrase = "BAD_PASSPHRASE"
	// ReasonTokenLimit: the user holds the most tokens BIG-IP allows (100); retry later.
	ReasonTokenLimit = "TOKEN_LIMIT"
	// ReasonKeyNotProtected: PCI mode asked for a passphrase-protected key and the device made
	// another kind.
	ReasonKeyNotProtected = "KEY_NOT_PROTECTED"
	// ReasonRollbackImpossible: the change would edit a profile whose key certfleet could never
	// put back (a passphrase-protected key whose passphrase certfleet does not have).
	ReasonRollbackImpossible = "ROLLBACK_IMPOSSIBLE"
	// ReasonNotActive: the unit is not the active one of its HA pair.
	ReasonNotActive = "NOT_ACTIVE_UNIT"
	// ReasonSyncIncomplete: config-sync did not bring the device group to "In Sync" in time.
	ReasonSyncIncomplete = "SYNC_INCOMPLETE"
)

// deviceError maps an error from the iControl client to the contract: the device's message id
// and (scrubbed) message as the vendor part, a code the core can act on, and what to do.
func (d *device) deviceError(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := sdk.FromContext(ctx); cerr != nil {
		return cerr.WithCause(fmt.Errorf("%s: %w", what, err))
	}
	var se *sdk.Error
	if errors.As(err, &se) {
		return se
	}
	var ae *icontrol.Error
	if !errors.As(err, &ae) {
		return sdk.TransportError(ctx, d.address, fmt.Errorf("%s: %w", what, err))
	}
	var out *sdk.Error
	switch {
	case icontrol.IsAuthFailure(err):
		out = sdk.Unauthenticated("%s: %s rejected the credentials of user %q (login provider %s)", what, d.address, d.t.Credentials.Username, d.loginProvider)
	case icontrol.IsForbidden(err):
		out = sdk.PermissionDenied("%s: user %q may not %s %s on %s; give it a role that may (certfleet needs to manage keys, certificates, client-ssl profiles and virtual servers)",
			what, d.t.Credentials.Username, ae.Method, ae.Path, d.address)
	case icontrol.IsTokenLimit(err):
		out = &sdk.Error{Code: codes.ResourceExhausted, Reason: ReasonTokenLimit,
			Message: fmt.Sprintf("%s: user %q holds the most login tokens %s allows; they expire after 20 minutes (or delete them), or use option auth: basic", what, d.t.Credentials.Username, d.address)}
	case icontrol.IsBadPassphrase(err):
		out = sdk.FailedPrecondition(ReasonBadPassphrase,
			"%s: the device could not open a passphrase-protected key; certfleet never has the passphrase of a key it did not just make (PCI mode keeps it only in the key's own profile)", what)
	case strings.Contains(ae.Message, "do not match"):
		out = sdk.InvalidArgument(sdk.ReasonKeyMismatch, "%s: the device says the certificate and key do not match", what)
	case icontrol.IsNotFound(err):
		out = sdk.NotFound("%s: %s", what, ae.Message)
	case icontrol.IsAlreadyExists(err):
		out = sdk.AlreadyExists("%s: %s", what, ae.Message)
	case icontrol.IsRetryable(err) || ae.Status >= 500:
		out = sdk.Unavailable("%s: %s is busy or failing (HTTP %d)", what, d.address, ae.Status)
	default:
		out = sdk.FailedPrecondition(sdk.ReasonDeviceError, "%s: %s refused it", what, d.address)
	}
	code := ae.ID()
	if code == "" {
		code = strconv.Itoa(ae.Status)
	}
	msg := ae.Message
	if msg == "" {
		msg = http.StatusText(ae.Status)
	}
	return out.WithVendor(code, msg).WithCause(fmt.Errorf("%s %s: HTTP %d", ae.Method, ae.Path, ae.Status))
}
