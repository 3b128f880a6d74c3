package citrixnitro

import (
	"context"
	"errors"
	"strconv"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitro"
	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

// Reasons this plugin adds to the SDK's.
const (
	reasonNotSSL = "NOT_SSL_VSERVER"
	// reasonSharedCertKey: the certkey to update in place is bound at places the request does not name.
	reasonSharedCertKey = "SHARED_CERTKEY"
	// reasonSNIOff: SNI is off in a shared SSL profile and the plugin will not change it.
	reasonSNIOff = "SNI_DISABLED"
)

// mapErr turns a client error into the contract's error; what names the operation and object.
func mapErr(ctx context.Context, address, what string, err error) error {
	if err == nil {
		return nil
	}
	var se *sdk.Error
	if errors.As(err, &se) {
		return se
	}
	if cerr := sdk.FromContext(ctx); cerr != nil {
		return cerr.WithCause(err)
	}
	var te *nitro.TransportErr
	if errors.As(err, &te) {
		return sdk.TransportError(ctx, address, te.Err)
	}
	var ne *nitro.Error
	if !errors.As(err, &ne) {
		return sdk.Internal(sdk.ReasonDeviceError, "%s", what).WithCause(err)
	}
	var out *sdk.Error
	switch {
	case ne.Code == nitro.CodeBadLogin || ne.Code == nitro.CodeSessionExpired || ne.Code == nitro.CodeAuthTimeout || ne.HTTPStatus == 401:
		out = sdk.Unauthenticated("%s: the appliance rejected the credentials; check the device's username and password", what)
	case ne.HTTPStatus == 403:
		out = sdk.PermissionDenied("%s: the NITRO user lacks the command policy for this", what)
	case ne.Code == nitro.CodeVServerMissing:
		out = sdk.UnknownBinding("%s: no such vserver on the appliance", what)
	case ne.Code == nitro.CodeResourceMissing:
		out = sdk.NotFound("%s: not found on the appliance", what)
	case ne.Code == nitro.CodeNotSSLVServer:
		out = sdk.FailedPrecondition(reasonNotSSL, "%s: the vserver is not of type SSL", what)
	case ne.Code == nitro.CodeAlreadyExists || ne.Code == nitro.CodeFileExists:
		out = sdk.AlreadyExists("%s: already exists on the appliance", what)
	case ne.Code == nitro.CodeBadPrivateKey:
		out = sdk.InvalidArgument(sdk.ReasonKeyMismatch, "%s: the appliance rejected the key/certificate pair", what)
	case ne.Code == nitro.CodeDefaultProfile:
		out = sdk.FailedPrecondition(reasonSNIOff, "%s: the default SSL profile is enabled, so this is a profile setting on the appliance", what)
	case ne.Code == nitro.CodeInvalidArgument:
		out = sdk.Internal(sdk.ReasonDeviceError, "%s: the appliance does not know an attribute this plugin sent (this firmware differs); report it", what)
	case ne.HTTPStatus == 503 || ne.HTTPStatus == 502 || ne.HTTPStatus == 504:
		out = sdk.Unavailable("%s: appliance busy", what)
	case ne.HTTPStatus == 400:
		out = sdk.InvalidArgument(sdk.ReasonInvalidRequest, "%s: the appliance rejected the request", what)
	default:
		out = sdk.FailedPrecondition(sdk.ReasonDeviceError, "%s: the appliance refused", what)
	}
	return out.WithVendor(strconv.Itoa(ne.Code), ne.Message).WithCause(err)
}

func commitFailed(err error) *sdk.Error {
	e := &sdk.Error{Code: codes.Aborted, Reason: sdk.ReasonCommitFailed, Message: "save ns config failed; the running config is live but not saved, retry Commit", Err: err}
	var ne *nitro.Error
	if errors.As(err, &ne) {
		e.WithVendor(strconv.Itoa(ne.Code), ne.Message)
	}
	return e
}
