// Package cem is the certfleet device plugin for Citrix Endpoint Management and XenMobile Server,
// over their public REST API (package xms). It is built on plugins/sdk alone, as a third party's
// plugin would be. README.md beside this file states the design, the key handling and its security
// argument, and every behaviour of the server that is unconfirmed with what the plugin does in
// each case.
package cem

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/xms"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/hashicorp/go-hclog"
)

// Version of the plugin: the release it was built for (see sdk.BuildVersion).
var Version = sdk.BuildVersion()

// Binding kinds: the roles the API lets a keystore be imported as (reference §2 and §5).
const (
	KindServer   = "server"
	KindListener = "ssl-listener"
	KindSAML     = "saml"
)

// defaultBindingName is the only name of the listener and SAML bindings: a server has one of each.
const defaultBindingName = "default"

const (
	defaultPort    = "4443" // reference §0: the API listens on 4443 unless the admin moved it
	requestTimeout = 60 * time.Second
	logoutTimeout  = 10 * time.Second
)

// Target options.
const (
	optLogin  = "login"
	optFlavor = "flavor"
)

var targetOptions = []sdk.OptionSpec{
	{Name: optLogin, Type: "string", Description: `"password" (default: credentials.username and password, a local administrator with Public API Access) or "cloud" (credentials.token is a Citrix Cloud bearer token)`},
	{Name: optFlavor, Type: "string", Description: `"auto" (default: asks GET /environment), "xms" (XenMobile Server, on premises) or "cem" (Citrix Endpoint Management, cloud)`},
}

// Plugin implements sdk.Plugin. It keeps no state between calls: every call logs in and out.
type Plugin struct{}

// New returns the plugin.
func New() *Plugin { return &Plugin{} }

var _ sdk.Plugin = (*Plugin)(nil)

// Info describes the plugin.
func (p *Plugin) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:                 "citrix-endpoint-management",
		Version:              Version,
		Vendor:               "certfleet",
		Description:          "Citrix Endpoint Management / XenMobile Server certificates (server, SSL listener, SAML) over the public REST API",
		ContractMinorVersion: sdk.ContractMinorVersion,
		Capabilities: sdk.Capabilities{
			// RSA only until a lab shows EC keystores import and serve (reference §3 B.5).
			KeySpecs: []sdk.KeySpec{
				{Type: sdk.KeyTypeRSA, Bits: 2048}, {Type: sdk.KeyTypeRSA, Bits: 3072}, {Type: sdk.KeyTypeRSA, Bits: 4096},
			},
			BindingKinds: []string{KindServer, KindListener, KindSAML},
			// Nothing is staged: an import is stored at once and there is no save or restart call.
			NeedsCommit:      false,
			SupportsRollback: true,
			SupportsCleanup:  true,
			TargetOptions:    targetOptions,
		},
	}, nil
}

// settings are a target's parsed options.
type settings struct {
	baseURL    string
	cloudLogin bool
	flavor     string // auto, xms or cem
}

func parseTarget(t sdk.Target) (settings, error) {
	var s settings
	if unknown := t.Options.Unknown(targetOptions); len(unknown) > 0 {
		return s, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "unknown option(s) %s; this plugin knows %s and %s", strings.Join(unknown, ", "), optLogin, optFlavor)
	}
	login, err := t.Options.String(optLogin, "password")
	if err != nil {
		return s, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "%v", err)
	}
	switch login {
	case "password":
		if t.Credentials.Username == "" || t.Credentials.Password == "" {
			return s, sdk.Unauthenticated("login password needs credentials.username and credentials.password")
		}
	case "cloud":
		if t.Credentials.Token == "" {
			return s, sdk.Unauthenticated("login cloud needs credentials.token (a Citrix Cloud bearer token)")
		}
		s.cloudLogin = true
	default:
		return s, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "option login is %q; use password or cloud", login)
	}
	if s.flavor, err = t.Options.String(optFlavor, "auto"); err != nil {
		return s, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "%v", err)
	}
	if s.flavor != "auto" && s.flavor != "xms" && s.flavor != "cem" {
		return s, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "option flavor is %q; use auto, xms or cem", s.flavor)
	}
	if s.baseURL, err = baseURL(t.Address); err != nil {
		return s, err
	}
	return s, nil
}

// baseURL accepts "https://host[:port]" or "host[:port]"; the port defaults to 4443.
func baseURL(address string) (string, error) {
	raw := address
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", sdk.InvalidArgument(sdk.ReasonInvalidRequest, "address %q is not host[:port] or https://host[:port]", address)
	}
	if u.Scheme != "https" {
		return "", sdk.InvalidArgument(sdk.ReasonInvalidRequest, "address %q: the public API is served over https only", address)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), defaultPort)
	}
	return "https://" + u.Host, nil
}

// session is one logged-in conversation with a server, for one RPC.
type session struct {
	t        sdk.Target
	set      settings
	c        *xms.Client
	log      hclog.Logger
	cloud    *bool
	relogged bool
}

// open logs in; the caller must defer close.
func (p *Plugin) open(ctx context.Context, t sdk.Target) (*session, error) {
	set, err := parseTarget(t)
	if err != nil {
		return nil, err
	}
	if cerr := sdk.FromContext(ctx); cerr != nil {
		return nil, cerr
	}
	hc, err := sdk.NewHTTPClient(t, requestTimeout)
	if err != nil {
		return nil, err
	}
	s := &session{t: t, set: set, c: xms.New(set.baseURL, hc), log: hclog.FromContext(ctx)}
	if err := s.login(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *session) login(ctx context.Context) error {
	var err error
	if s.set.cloudLogin {
		err = s.c.LoginCloud(ctx, s.t.Credentials.Token)
	} else {
		err = s.c.Login(ctx, s.t.Credentials.Username, s.t.Credentials.Password)
	}
	return s.mapErr(ctx, "log in", err)
}

// close logs out even when the call's context has ended, so no session is left on the server.
func (s *session) close(ctx context.Context) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logoutTimeout)
	defer cancel()
	if err := s.c.Logout(lctx); err != nil {
		s.log.Warn("logout failed; the session ends with the server's timeout", "error", err)
	}
}

// retry runs fn, and once more after logging in again when the server says the session ended
// (reference §1: log in per RPC; on 401/403 re-login once and retry once).
func (s *session) retry(ctx context.Context, what string, fn func() error) error {
	err := fn()
	var apiErr *xms.Error
	if errors.As(err, &apiErr) && apiErr.HTTPStatus == 401 && !s.relogged {
		s.relogged = true
		if lerr := s.login(ctx); lerr != nil {
			return lerr
		}
		err = fn()
	}
	return s.mapErr(ctx, what, err)
}

// isCloud reports whether the server is a Citrix Endpoint Management tenant (option flavor, or GET
// /environment, which only a cloud tenant answers: PDF-2021 §3.24).
func (s *session) isCloud(ctx context.Context) (bool, error) {
	if s.cloud != nil {
		return *s.cloud, nil
	}
	var cloud bool
	switch s.set.flavor {
	case "cem":
		cloud = true
	case "xms":
		cloud = false
	default:
		err := s.retry(ctx, "probe GET /environment", func() error {
			var err error
			cloud, err = s.c.Environment(ctx)
			return err
		})
		if err != nil {
			return false, err
		}
	}
	s.cloud = &cloud
	return cloud, nil
}

// mapErr turns a client error into the contract's error (reference §5, "Errors").
func (s *session) mapErr(ctx context.Context, what string, err error) error {
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
	var te *xms.TransportError
	if errors.As(err, &te) {
		return sdk.TransportError(ctx, s.t.Address, te.Err)
	}
	var ae *xms.Error
	if !errors.As(err, &ae) {
		return sdk.Internal(sdk.ReasonDeviceError, "%s", what).WithCause(err)
	}
	var out *sdk.Error
	switch {
	case ae.Op == "login" && (ae.HTTPStatus == 400 || ae.HTTPStatus == 401 || ae.Status != 0):
		out = sdk.Unauthenticated("%s: the server rejected the credentials; check the device's username and password (or the Citrix Cloud token with login: cloud)", what)
	case ae.HTTPStatus == 401:
		out = sdk.Unauthenticated("%s: the server ended the session", what)
	case ae.HTTPStatus == 403:
		out = sdk.PermissionDenied("%s: the API user needs the Public API Access permission or super user", what)
	case ae.HTTPStatus >= 500:
		out = sdk.Unavailable("%s: the server failed (HTTP %d)", what, ae.HTTPStatus)
	case ae.HTTPStatus == 404:
		out = sdk.NotFound("%s: the server has no such endpoint or object (HTTP 404)", what)
	default:
		out = sdk.FailedPrecondition(sdk.ReasonDeviceError, "%s: the server refused", what)
	}
	return out.WithVendor(fmt.Sprint(ae.Status), ae.Message).WithCause(err)
}
