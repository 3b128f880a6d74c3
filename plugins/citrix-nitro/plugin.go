// Package citrixnitro is the certfleet device plugin for Citrix ADC / NetScaler over NITRO REST.
//
// Target.Address is "https://host[:port]" (or "host[:port]", https assumed). Credentials are
// Username/Password of a NITRO user. Keys and CSRs are made on the appliance (sslrsakey /
// sslecdsakey, sslcertreq), so no private key ever crosses the wire.
//
// Object names: GenerateCSR picks a base name <hint>-<time><rand> (≤ 27 chars, within the 31-char
// certkey limit reported on 12.1) used for /nsconfig/ssl/<base>.key, .csr, .crt and the server
// certkey <base>; key_ref and cert_ref are both <base>. CA certificates become certkeys
// cf-ca-<sha256[:12]> (or an existing certkey holding the same certificate is reused).
//
// Renewal without a window: a vserver can hold one non-SNI server certificate, and rebinding
// (unbind old, bind new) leaves it without one for a moment. So when the certkey a binding points
// at is bound only at places this Bind request covers, Bind updates that certkey in place
// (sslcertkey?action=update, nodomaincheck) to the new certificate and key files: the vserver's
// binding never changes. That certkey is then a "slot" carrying another certkey's files; Inventory
// reports its bindings under the certkey that owns those files (<base>.crt belongs to <base>), so
// cert refs behave as if bound directly. Otherwise (the old certkey is also bound elsewhere) Bind
// falls back to bind-new-then-unbind-old for SNI and unbind-then-bind for a default certificate.
package citrixnitro

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitro"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Version of the plugin: the release it was built for (see sdk.BuildVersion).
var Version = sdk.BuildVersion()

// Binding kinds.
const (
	KindLB      = "lb-vserver"
	KindGateway = "gateway-vserver"
)

var nitroType = map[string]string{KindLB: "lbvserver", KindGateway: "vpnvserver"}

var targetOptions = []sdk.OptionSpec{
	{Name: "partition", Type: "string", Description: "NITRO admin partition to switch to after login (default: the default partition)"},
	{Name: "auth", Type: "string", Description: `"session" (default: login/logout, cookie NITRO_AUTH_TOKEN) or "headers" (X-NITRO-USER/X-NITRO-PASS per request)`},
	{Name: "session_timeout", Type: "number", Description: "NITRO session timeout in seconds sent at login (default: the appliance's)"},
	{Name: "request_timeout", Type: "number", Description: "seconds one HTTP request may take (default 60; save ns config can be slow)"},
}

var bindingOptions = []sdk.OptionSpec{
	{Name: "enable_sni", Type: "bool", Description: "for an SNI binding, turn SNI on for the vserver (PUT sslvserver snienable) when binding (default true)"},
}

// Plugin implements sdk.Plugin for NITRO.
type Plugin struct{}

// New returns the plugin.
func New() *Plugin { return &Plugin{} }

// Info describes the plugin.
func (*Plugin) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name: "citrix-nitro", Version: Version, Vendor: "Citrix / NetScaler",
		Description:          "Citrix ADC / NetScaler over NITRO REST: on-box keys and CSRs, LB and Gateway vservers, SNI",
		ContractMinorVersion: sdk.ContractMinorVersion,
		Capabilities: sdk.Capabilities{
			KeySpecs: []sdk.KeySpec{{Type: sdk.KeyTypeRSA, Bits: 2048}, {Type: sdk.KeyTypeRSA, Bits: 3072}, {Type: sdk.KeyTypeRSA, Bits: 4096},
				{Type: sdk.KeyTypeECDSA, Bits: 256}, {Type: sdk.KeyTypeECDSA, Bits: 384}},
			BindingKinds: []string{KindLB, KindGateway},
			NeedsCommit:  true, SupportsRollback: true, SupportsCleanup: true,
			TargetOptions: targetOptions, BindingOptions: bindingOptions,
		},
	}, nil
}

// session is one logged-in call against one target.
type session struct {
	c       *nitro.Client
	address string
	part    string
}

// withSession logs in, runs fn and always logs out, also when fn fails or ctx ended.
func withSession(ctx context.Context, t sdk.Target, fn func(s *session) error) error {
	if err := sdk.FromContext(ctx); err != nil {
		return err
	}
	if unknown := t.Options.Unknown(targetOptions); len(unknown) > 0 {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "unknown option(s) %s for citrix-nitro device %q; known: partition, auth, session_timeout, request_timeout", strings.Join(unknown, ", "), t.Name)
	}
	base, err := baseURL(t.Address)
	if err != nil {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "device %q: %v", t.Name, err)
	}
	opt := func(err error) error {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "device %q: %v", t.Name, err)
	}
	part, err := t.Options.String("partition", "")
	if err != nil {
		return opt(err)
	}
	authMode, err := t.Options.String("auth", "session")
	if err != nil {
		return opt(err)
	}
	mode := nitro.AuthSession
	switch authMode {
	case "session":
	case "headers":
		mode = nitro.AuthHeaders
		if part != "" && part != "default" {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, `device %q: option partition needs auth "session" (partition switching is per session)`, t.Name)
		}
	default:
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, `device %q: option auth must be "session" or "headers", got %q`, t.Name, authMode)
	}
	sessTimeout, err := t.Options.Int("session_timeout", 0)
	if err != nil {
		return opt(err)
	}
	reqTimeout, err := t.Options.Int("request_timeout", 60)
	if err != nil || reqTimeout <= 0 {
		return opt(fmt.Errorf("option request_timeout must be a positive number of seconds"))
	}
	if t.Credentials.Username == "" || t.Credentials.Password == "" {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "device %q: credentials need a username and a password", t.Name)
	}
	hc, err := sdk.NewHTTPClient(t, time.Duration(reqTimeout)*time.Second)
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	c := nitro.New(base, nitro.Options{Mode: mode, SessionTimeout: sessTimeout, Partition: part, HTTPClient: hc,
		Username: t.Credentials.Username, Secret: t.Credentials.Password})
	if err := c.Login(ctx); err != nil {
		_ = logout(ctx, c)
		return mapErr(ctx, base, "login to "+base, err)
	}
	defer func() {
		if err := logout(ctx, c); err != nil {
			sdk.Logger(ctx).Warn("NITRO logout failed", "device", t.Name, "error", err)
		}
	}()
	return fn(&session{c: c, address: base, part: part})
}

// logout runs even after ctx ended, bounded by its own short deadline.
func logout(ctx context.Context, c *nitro.Client) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return c.Logout(lctx)
}

func baseURL(addr string) (string, error) {
	if addr == "" {
		return "", fmt.Errorf("address is empty; want https://host[:port]")
	}
	if !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("address %q: want https://host[:port]", addr)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("address %q: NITRO must be reached over https", addr)
	}
	return "https://" + u.Host, nil
}

func (s *session) fail(ctx context.Context, what string, err error) error {
	return mapErr(ctx, s.address, what, err)
}

// CheckTarget logs in and reads nsversion.
func (*Plugin) CheckTarget(ctx context.Context, t sdk.Target) (sdk.TargetInfo, error) {
	var info sdk.TargetInfo
	err := withSession(ctx, t, func(s *session) error {
		v, err := s.c.Version(ctx)
		if err != nil {
			return s.fail(ctx, "read nsversion", err)
		}
		info = sdk.TargetInfo{Model: "NetScaler", SoftwareVersion: v, HARole: "unknown",
			Details: map[string]string{"partition": orDefault(s.part)}}
		if m := versionRE.FindStringSubmatch(v); m != nil {
			info.SoftwareVersion = m[1] + "-" + m[2]
		}
		return nil
	})
	return info, err
}

var versionRE = regexp.MustCompile(`NS(\d+\.\d+): Build (\d+\.\d+)`)

func orDefault(p string) string {
	if p == "" {
		return "default"
	}
	return p
}

var nameUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// newBaseName is <hint>-<base36 seconds><4 hex>: unique per call, ≤ 27 chars, certkey-safe.
func newBaseName(hint string) string {
	h := strings.Trim(nameUnsafe.ReplaceAllString(hint, "-"), "-")
	if h == "" || !isAlnum(h[0]) {
		h = "cf" + h
	}
	if len(h) > 14 {
		h = strings.TrimRight(h[:14], "-")
	}
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return h + "-" + strconv.FormatInt(time.Now().Unix(), 36) + hex.EncodeToString(b)
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

var refRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,30}$`)

func sslFile(base, ext string) string { return nitro.SSLDir + "/" + base + ext }
