// Package citrixnitro is the certfleet device plugin for Citrix ADC / NetScaler over NITRO REST.
//
// Target.Address is "https://host[:port]" (or "host[:port]", https assumed). Plain
// "http://" is refused unless the device sets option allow_plain_http (the seed agents default to
// NITRO over http; certfleet's config demands the same opt-in and warns on every run).
// Credentials are Username/Password of a NITRO user. Target options: partition, auth ("session"
// or "headers"), session_timeout, request_timeout, allow_plain_http, update_shared_certkeys.
// Binding kinds: lb-vserver (lbvserver), gateway-vserver (vpnvserver) and cs-vserver
// (csvserver), of servicetype SSL or SSL_TCP, each with or without SNI; binding option enable_sni.
//
// Keys and CSRs are made on the appliance (sslrsakey / sslecdsakey, sslcertreq), so no private
// key ever crosses the wire.
//
// Object names: GenerateCSR picks a base name <hint>-<base36 time><6 hex> (at most 28 chars,
// within the 31-char certkey limit reported on 12.1) used for /nsconfig/ssl/<base>.key, .csr
// and .crt and for the certkey <base>; key_ref and cert_ref are both <base>. Files are never
// overwritten (the appliance refuses, errorcode 1642). CA certificates become certkeys
// cf-ca-<sha256[:12]>, or an existing certkey holding the same certificate is reused.
//
// Renewal without a window (bind.go): the certkey a vserver is bound to is updated in place to
// the new certificate and key files, so the binding never changes. That certkey then carries
// the new certificate; Inventory reports it, and its bindings, under the cert_ref its files are
// named after, so cert refs behave as if bound directly.
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

// Binding kinds: SSL vservers, which Bind manages.
const (
	KindLB      = "lb-vserver"
	KindGateway = "gateway-vserver"
	KindCS      = "cs-vserver"
)

// Kinds Inventory reports for places a certkey is bound that Bind does not manage.
const (
	KindService      = "ssl-service"
	KindServiceGroup = "ssl-servicegroup"
	KindProfile      = "ssl-profile"
	KindVPNGlobal    = "vpn-global"
	KindSAMLAction   = "saml-action"
)

// nitroType is the NITRO resource type of each binding kind's vservers.
var nitroType = map[string]string{KindLB: "lbvserver", KindGateway: "vpnvserver", KindCS: "csvserver"}

var bindingKinds = []string{KindLB, KindGateway, KindCS}

// isSSLService reports whether a vserver's servicetype takes server certificates: SSL and
// SSL_TCP ("SSL or TCP-based SSL virtual servers", NITRO sslprofile docs).
func isSSLService(t string) bool {
	return strings.EqualFold(t, "SSL") || strings.EqualFold(t, "SSL_TCP")
}

var targetOptions = []sdk.OptionSpec{
	{Name: "partition", Type: "string", Description: "NITRO admin partition to switch to after login (default: the default partition; needs auth session)"},
	{Name: "auth", Type: "string", Description: `"session" (default: login/logout, cookie NITRO_AUTH_TOKEN) or "headers" (X-NITRO-USER/X-NITRO-PASS on every request, no session)`},
	{Name: "session_timeout", Type: "number", Description: "NITRO session timeout in seconds sent at login (default: the appliance's)"},
	{Name: "request_timeout", Type: "number", Description: "seconds one HTTP request may take (default 60; save ns config can be slow)"},
	{Name: "allow_plain_http", Type: "bool", Description: "accept an http:// address: the NITRO password and every request cross the network unencrypted (default false)"},
	{Name: "update_shared_certkeys", Type: "bool", Description: "let Bind update a certkey in place although it is also bound at places the request does not name, which then get the new certificate too (default false: Bind refuses and names them)"},
}

var bindingOptions = []sdk.OptionSpec{
	{Name: "enable_sni", Type: "bool", Description: "for an SNI binding, turn SNI on for the vserver (PUT sslvserver snienable) before binding (default true)"},
}

// Plugin implements sdk.Plugin for NITRO. It keeps no state between calls: each call logs in
// and out on its own, so one process serves any number of appliances concurrently.
type Plugin struct{}

// New returns the plugin.
func New() *Plugin { return &Plugin{} }

// Info describes the plugin.
func (*Plugin) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name: "citrix-nitro", Version: Version, Vendor: "Citrix / NetScaler",
		Description:          "Citrix ADC / NetScaler over NITRO REST: keys and CSRs made on the appliance, LB, content-switching and Gateway vservers (SSL, SSL_TCP) with and without SNI, RSA and ECDSA side by side, in-place renewal",
		ContractMinorVersion: sdk.ContractMinorVersion,
		Capabilities: sdk.Capabilities{
			KeySpecs: []sdk.KeySpec{{Type: sdk.KeyTypeRSA, Bits: 2048}, {Type: sdk.KeyTypeRSA, Bits: 3072}, {Type: sdk.KeyTypeRSA, Bits: 4096},
				{Type: sdk.KeyTypeECDSA, Bits: 256}, {Type: sdk.KeyTypeECDSA, Bits: 384}},
			BindingKinds: bindingKinds,
			NeedsCommit:  true, SupportsRollback: true, SupportsCleanup: true,
			TargetOptions: targetOptions, BindingOptions: bindingOptions,
		},
	}, nil
}

// session is one logged-in call against one appliance.
type session struct {
	c       *nitro.Client
	address string
	part    string
}

// connection is what a target's address, options and credentials say about reaching it.
type connection struct {
	base       string
	opts       nitro.Options
	reqTimeout time.Duration
}

func parseTarget(t sdk.Target) (connection, error) {
	bad := func(format string, args ...any) error {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "citrix-nitro device %q: "+format, append([]any{t.Name}, args...)...)
	}
	if unknown := t.Options.Unknown(targetOptions); len(unknown) > 0 {
		return connection{}, bad("unknown option(s) %s; the known ones are partition, auth, session_timeout, request_timeout, allow_plain_http, update_shared_certkeys", strings.Join(unknown, ", "))
	}
	plainHTTP, err := t.Options.Bool("allow_plain_http", false)
	if err != nil {
		return connection{}, bad("%v", err)
	}
	if _, err := t.Options.Bool("update_shared_certkeys", false); err != nil {
		return connection{}, bad("%v", err)
	}
	base, err := baseURL(t.Address, plainHTTP)
	if err != nil {
		return connection{}, bad("%v", err)
	}
	part, err := t.Options.String("partition", "")
	if err != nil {
		return connection{}, bad("%v", err)
	}
	authMode, err := t.Options.String("auth", "session")
	if err != nil {
		return connection{}, bad("%v", err)
	}
	mode := nitro.AuthSession
	switch authMode {
	case "session":
	case "headers":
		mode = nitro.AuthHeaders
		if part != "" && part != "default" {
			return connection{}, bad(`option partition needs auth "session": partition switching is per session`)
		}
	default:
		return connection{}, bad(`option auth must be "session" or "headers", not %q`, authMode)
	}
	sessTimeout, err := t.Options.Int("session_timeout", 0)
	if err != nil || sessTimeout < 0 {
		return connection{}, bad("option session_timeout must be a whole number of seconds")
	}
	reqTimeout, err := t.Options.Int("request_timeout", 60)
	if err != nil || reqTimeout <= 0 {
		return connection{}, bad("option request_timeout must be a positive whole number of seconds")
	}
	if t.Credentials.Username == "" || t.Credentials.Password == "" {
		return connection{}, bad("credentials need a username and a password")
	}
	return connection{
		base: base, reqTimeout: time.Duration(reqTimeout) * time.Second,
		opts: nitro.Options{Mode: mode, SessionTimeout: sessTimeout, Partition: part,
			Username: t.Credentials.Username, Password: t.Credentials.Password},
	}, nil
}

// withSession logs in, runs fn and always logs out, also when fn fails or ctx has ended.
func withSession(ctx context.Context, t sdk.Target, fn func(s *session) error) error {
	if err := sdk.FromContext(ctx); err != nil {
		return err
	}
	conn, err := parseTarget(t)
	if err != nil {
		return err
	}
	hc, err := sdk.NewHTTPClient(t, conn.reqTimeout)
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	log := sdk.Logger(ctx)
	conn.opts.HTTPClient = hc
	conn.opts.Trace = func(method, path string, status, code int, took time.Duration) {
		log.Debug("nitro request", "device", t.Name, "method", method, "path", path, "status", status, "errorcode", code, "took", took)
	}
	c := nitro.New(conn.base, conn.opts)
	if err := c.Login(ctx); err != nil {
		// A login that got as far as a failed partition switch has a session to end.
		logout(ctx, t.Name, c)
		return mapErr(ctx, conn.base, "log in to "+conn.base, err)
	}
	defer logout(ctx, t.Name, c)
	return fn(&session{c: c, address: conn.base, part: conn.opts.Partition})
}

// logout runs even after ctx has ended, bounded by its own short deadline.
func logout(ctx context.Context, device string, c *nitro.Client) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := c.Logout(lctx); err != nil {
		sdk.Logger(ctx).Warn("NITRO logout failed; the session ends at its timeout", "device", device, "error", err)
	}
}

func baseURL(addr string, plainHTTP bool) (string, error) {
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
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && plainHTTP:
		return "http://" + u.Host, nil
	case u.Scheme == "http":
		return "", fmt.Errorf("address %q: plain http sends the NITRO password unencrypted; use https://, or set option allow_plain_http: true for this device", addr)
	default:
		return "", fmt.Errorf("address %q: want https://host[:port]", addr)
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
		// The HA role is not read (the reference has no facts on hanode): reported as unknown.
		info = sdk.TargetInfo{Model: "NetScaler", SoftwareVersion: v, HARole: "unknown",
			Details: map[string]string{"partition": orDefault(s.part), "nsversion": v}}
		if m := versionRE.FindStringSubmatch(v); m != nil {
			info.SoftwareVersion = m[1] + "-" + m[2]
		}
		return nil
	})
	return info, err
}

// versionRE is Ansible's parse of nsversion (reference §1).
var versionRE = regexp.MustCompile(`NS(\d+\.\d+): Build (\d+\.\d+)`)

func orDefault(p string) string {
	if p == "" {
		return "default"
	}
	return p
}

var nameUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// maxBaseHint is how much of a hint goes into a base name.
const maxBaseHint = 14

// newBaseName is <hint>-<base36 seconds><6 hex>: unique per call, at most 28 chars, valid as a
// certkey name and a file name. For an attempt (CSRRequest.AttemptID) it is <hint>-<12 hex of the
// attempt> (sdk.AttemptName), the same on every call of the attempt; both match madeName.
func newBaseName(hint, attemptID string) string {
	h := strings.Trim(nameUnsafe.ReplaceAllString(hint, "-"), "-_")
	if h == "" || !isAlnum(h[0]) {
		h = "cf" + h
	}
	if attemptID != "" {
		return sdk.AttemptName(h, "-", attemptID, maxBaseHint+1+sdk.AttemptTagLen)
	}
	if len(h) > maxBaseHint {
		h = strings.TrimRight(h[:maxBaseHint], "-_")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return h + "-" + strconv.FormatInt(time.Now().Unix(), 36) + hex.EncodeToString(b)
}

// madeName matches the names newBaseName makes: a certkey's files named after one of them
// belong to that certfleet cert_ref, whichever certkey carries them.
var madeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,13}-[0-9a-z]{6,7}[0-9a-f]{6}$`)

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// certKeyNameRE is what the appliance allows in a certkey name (reference §5), at most 31 chars.
var certKeyNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_#. :@=-]{0,30}$`)

func sslFile(base, ext string) string { return nitro.SSLDir + "/" + base + ext }
