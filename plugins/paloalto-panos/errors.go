package paloaltopanos

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// fail maps an error of the XML API client to the contract; what says what was being done.
func (d *device) fail(ctx context.Context, err error, format string, args ...any) *sdk.Error {
	what := fmt.Sprintf(format, args...)
	var se *sdk.Error
	if errors.As(err, &se) {
		return se
	}
	if cerr := sdk.FromContext(ctx); cerr != nil {
		cerr.Message = what + ": " + cerr.Message
		return cerr.WithCause(err)
	}
	var te *panosclient.TransportError
	if errors.As(err, &te) {
		e := sdk.TransportError(ctx, d.address, te.Err)
		e.Message = what + ": " + e.Message
		return e
	}
	var he *panosclient.HTTPError
	if errors.As(err, &he) {
		vendor := fmt.Sprint(he.StatusCode)
		if he.StatusCode >= 500 || he.StatusCode == http.StatusTooManyRequests {
			return sdk.Unavailable("%s: %s answered HTTP %d (management server busy or restarting)", what, d.address, he.StatusCode).WithVendor(vendor, he.Snippet)
		}
		return sdk.Internal(sdk.ReasonDeviceError, "%s: %s answered HTTP %d; is it the management interface of a PAN-OS device?", what, d.address, he.StatusCode).WithVendor(vendor, he.Snippet)
	}
	var ae *panosclient.APIError
	if errors.As(err, &ae) {
		code, msg := ae.VendorCode(), ae.Message()
		switch {
		case ae.Forbidden():
			return sdk.Unauthenticated("%s: %s rejected the credentials of device %q (wrong API key or password, an expired key, or an admin without XML API rights)", what, d.address, d.target.Name).WithVendor(code, msg)
		case ae.Code == "15" || ae.Code == "16":
			return sdk.PermissionDenied("%s: the admin may not do this on %s; grant the XML API rights (configuration, operational requests, commit, import, export)", what, d.address).WithVendor(code, msg)
		case ae.NotFound():
			return sdk.NotFound("%s: not found on %s", what, d.address).WithVendor(code, msg)
		case ae.Code == "10":
			return sdk.FailedPrecondition(sdk.ReasonStillBound, "%s: still referenced on %s", what, d.address).WithVendor(code, msg)
		case ae.Code == "8":
			return sdk.AlreadyExists("%s: already exists on %s", what, d.address).WithVendor(code, msg)
		case ae.Code == "21" || ae.Code == "22":
			return sdk.Unavailable("%s: %s is busy or timed the session out; try again", what, d.address).WithVendor(code, msg)
		case ae.Code == "6" || ae.Code == "12" || ae.Code == "17" || ae.Code == "18" || ae.Code == "400":
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "%s: %s refused the request", what, d.address).WithVendor(code, msg)
		}
		return sdk.Internal(sdk.ReasonDeviceError, "%s: %s answered an error", what, d.address).WithVendor(code, msg)
	}
	return sdk.Internal(sdk.ReasonDeviceError, "%s on %s", what, d.address).WithCause(err)
}

// notFound reports whether err is the device saying an object is absent.
func notFound(err error) bool {
	var ae *panosclient.APIError
	return errors.As(err, &ae) && ae.NotFound()
}
