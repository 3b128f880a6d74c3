package skeleton

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

// client speaks the device's API for one call. Replace it with your device's API client: small,
// hand-written, every request bound to the call's ctx.
type client struct {
	t    sdk.Target
	base string
	http *http.Client
}

func newClient(t sdk.Target) (*client, error) {
	u, err := url.Parse(t.Address)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "device %s: address %q must be https://host[:port]", t.Name, t.Address)
	}
	hc, err := sdk.NewHTTPClient(t, 60*time.Second)
	if err != nil {
		return nil, err
	}
	return &client{t: t, base: strings.TrimSuffix(t.Address, "/"), http: hc}, nil
}

// apiError is the device's error body.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// do sends a JSON request and decodes a JSON answer into out (when not nil); a device error
// becomes the contract's error with the device's code and message.
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "encode %s %s", method, path).WithCause(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return sdk.Internal(sdk.ReasonDeviceError, "%s %s", method, path).WithCause(err)
	}
	req.SetBasicAuth(c.t.Credentials.Username, c.t.Credentials.Password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return sdk.TransportError(ctx, c.t.Address, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return sdk.TransportError(ctx, c.t.Address, err)
	}
	if resp.StatusCode >= 300 {
		var e apiError
		_ = json.Unmarshal(data, &e)
		return deviceError(resp.StatusCode, e).WithVendor(e.Code, e.Message)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "%s %s: unreadable answer", method, path).WithCause(err)
		}
	}
	return nil
}

// deviceError maps the device's HTTP status to the contract's codes.
func deviceError(status int, e apiError) *sdk.Error {
	switch {
	case status == http.StatusUnauthorized:
		return sdk.Unauthenticated("the device refused the credentials")
	case status == http.StatusForbidden:
		return sdk.PermissionDenied("the device refused the request")
	case status == http.StatusNotFound:
		return sdk.NotFound("not found on the device")
	case status == http.StatusConflict:
		return sdk.FailedPrecondition(sdk.ReasonAlreadyExists, "the device refused: conflict")
	case status == http.StatusBadRequest && e.Code == "E_KEYMISMATCH":
		return sdk.InvalidArgument(sdk.ReasonKeyMismatch, "the certificate is not for that key")
	case status == http.StatusBadRequest:
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "the device refused the request")
	case status == http.StatusTooManyRequests || status >= 500:
		return sdk.Unavailable("the device is busy or failing (HTTP %d)", status)
	}
	return sdk.Internal(sdk.ReasonDeviceError, "unexpected HTTP %d", status)
}

// deviceCert is a certificate object on the device.
type deviceCert struct {
	Name  string   `json:"name"`
	Key   string   `json:"key"`
	PEM   string   `json:"pem"`
	Chain []string `json:"chain,omitempty"`
}

// service is a place that serves one certificate.
type service struct {
	Name   string `json:"name"`
	Staged string `json:"certificate"`
	Active string `json:"active_certificate"`
}

func (c *client) certificates(ctx context.Context) ([]deviceCert, error) {
	var out []deviceCert
	return out, c.do(ctx, "GET", "/v1/certificates", nil, &out)
}

func (c *client) services(ctx context.Context) (map[string]*service, error) {
	var list []*service
	if err := c.do(ctx, "GET", "/v1/services", nil, &list); err != nil {
		return nil, err
	}
	out := make(map[string]*service, len(list))
	for _, s := range list {
		out[s.Name] = s
	}
	return out, nil
}

func (c *client) setService(ctx context.Context, name, cert string) error {
	err := c.do(ctx, "PUT", "/v1/services/"+url.PathEscape(name), map[string]string{"certificate": cert}, nil)
	if sdk.CodeOf(err) == codes.NotFound {
		return sdk.UnknownBinding("the device has no service %q (or no certificate %q)", name, cert)
	}
	return err
}

// remove deletes a certificate and then its key; in use or already gone is a reason, not an error.
func (c *client) remove(ctx context.Context, o sdk.ObjectRef) (bool, string, error) {
	removed := false
	var reasons []string
	for _, obj := range []struct{ kind, name string }{{"certificates", o.CertRef}, {"keys", o.KeyRef}} {
		if obj.name == "" {
			continue
		}
		err := c.do(ctx, "DELETE", "/v1/"+obj.kind+"/"+url.PathEscape(obj.name), nil, nil)
		e := sdk.AsError(err)
		switch {
		case err == nil:
			removed = true
		case e.Code == codes.NotFound:
			reasons = append(reasons, obj.name+" not found")
		case e.Reason == sdk.ReasonAlreadyExists:
			return false, fmt.Sprintf("%s is in use: %s", obj.name, e.VendorMessage), nil
		default:
			return false, "", err
		}
	}
	if removed {
		return true, "", nil
	}
	return false, strings.Join(reasons, "; "), nil
}
