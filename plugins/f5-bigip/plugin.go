// Package f5bigip is the certfleet device plugin for F5 BIG-IP, over iControl REST (our own small
// client, package icontrol). It replaces the Sectigo F5 agent, including its PCI mode: keys are
// generated on the BIG-IP, protected by a random passphrase that exists only in memory during
// GenerateCSR and is never stored, logged or returned, and never exported (see pci.go).
//
// Target.Address is the management interface: "https://host[:port]" or "host[:port]" (port 443
// by default). Credentials.Username/Password log in (token auth by default, basic as an option).
// Credentials.APIKey is not used (it was the PCI secret of version 1).
//
// Objects: every GenerateCSR makes a new key "<hint>_<yymmddHHMMSS>_<random>.key" and its CSR
// (".csr") in the target's partition. In PCI mode it also makes the key's own client-ssl profile
// "<stem>_clientssl" holding the key (with its passphrase) and a placeholder "<stem>.crt" and
// "<stem>_chain.crt", which ImportCert replaces in place with the CA-issued certificate and chain.
// Without PCI mode ImportCert installs the leaf as "<stem>_<fingerprint>.crt" and the chain as
// "<stem>_<fingerprint>_chain.crt". key_ref is "<key path>#<SHA-256 of the public key>" (so
// ImportCert checks the certificate against the key before touching the device); cert_ref is the
// certificate's full path.
//
// Bindings (names short, in the target's partition, or full paths; Inventory reports them the
// same way):
//   - "virtual": a virtual server. A PCI key's own profile is attached in place of the
//     virtual's client-ssl profile, which becomes its parent (defaultsFrom), so ciphers, options,
//     client authentication and renegotiation settings are kept; the replaced profile and its key
//     are left untouched. Without PCI mode certfleet keeps a profile for the virtual (option
//     profile, default certfleet_<virtual>, created inheriting from the profile it replaces) and
//     updates its pair in place.
//   - "client-ssl-profile" (not with a PCI key: it would need the passphrase): an existing
//     client-ssl profile (or a new one with option create), updated in place and attached to the
//     virtual servers in option virtuals.
//
// Bind changes every profile and virtual server of the request in one iControl transaction, and
// always switches certificate, key and chain together, so a virtual server never serves a pair
// that does not match; it refuses, before changing anything, to edit a profile whose current key
// is passphrase-protected (certfleet could never put that key back). Commit saves sys config and,
// with option sync_device_group, runs config-sync to that group and waits for "In Sync". Every
// call that changes the device refuses a unit that is not the active one (option standalone
// turns the check off).
package f5bigip

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/f5-bigip/icontrol"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Version of the plugin: the release it was built for (see sdk.BuildVersion).
var Version = sdk.BuildVersion()

// Binding kinds.
const (
	KindVirtual          = "virtual"
	KindClientSSLProfile = "client-ssl-profile"
)

const (
	requestTimeout   = 60 * time.Second
	logoutTimeout    = 10 * time.Second
	defaultParent    = "/Common/clientssl"
	defaultPartition = "Common"
)

var targetOptions = []sdk.OptionSpec{
	{Name: "partition", Type: "string", Description: "partition for the keys, certificates and profiles certfleet makes, and of short binding names (default Common)"},
	{Name: "auth", Type: "string", Description: "token (default: log in for a token and delete it after each call) or basic (local users only)"},
	{Name: "login_provider", Type: "string", Description: "loginProviderName for token auth: tmos (default, local users) or the remote provider's name (LDAP, RADIUS, TACACS+)"},
	{Name: "pci_mode", Type: "bool", Description: "make password-protected keys (default true) with a random passphrase that is never stored; each key gets its own client-ssl profile"},
	{Name: "standalone", Type: "bool", Description: "skip the check that the unit is the active one of its HA pair (default false)"},
	{Name: "sync_device_group", Type: "string", Description: "device group to config-sync to after save sys config on Commit (HA pairs)"},
	{Name: "parent_profile", Type: "string", Description: "parent (defaultsFrom) of the client-ssl profiles certfleet creates when there is no profile to inherit from (default /Common/clientssl)"},
}

var bindingOptions = []sdk.OptionSpec{
	{Name: "profile", Type: "string", Description: "kind virtual, keys made without PCI mode: the client-ssl profile certfleet keeps for the virtual server (default certfleet_<virtual>); a PCI key always uses its own profile"},
	{Name: "virtuals", Type: "list", Description: "kind client-ssl-profile: virtual servers to attach the profile to"},
	{Name: "create", Type: "bool", Description: "kind client-ssl-profile: create the profile when it does not exist (default false)"},
	{Name: "parent", Type: "string", Description: "parent (defaultsFrom) whose TLS settings certfleet's profile inherits (default: the client-ssl profile the binding replaces on the virtual server, else the device's parent_profile); needed when a virtual server carries several"},
	{Name: "server_name", Type: "string", Description: "SNI bindings: the server name of the profile (default the certificate's common name)"},
}

var keySpecs = []sdk.KeySpec{
	{Type: sdk.KeyTypeRSA, Bits: 2048}, {Type: sdk.KeyTypeRSA, Bits: 3072}, {Type: sdk.KeyTypeRSA, Bits: 4096},
	{Type: sdk.KeyTypeECDSA, Bits: 256}, {Type: sdk.KeyTypeECDSA, Bits: 384},
}

// Plugin implements sdk.Plugin for BIG-IP. It keeps no state between calls.
type Plugin struct{}

// New returns the plugin.
func New() *Plugin { return &Plugin{} }

// Info describes the plugin.
func (*Plugin) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:                 "f5-bigip",
		Version:              Version,
		Vendor:               "F5",
		Description:          "F5 BIG-IP over iControl REST: keys made on the box (PCI mode: passphrase-protected), client-ssl profiles on virtual servers, transactional swaps",
		ContractMinorVersion: sdk.ContractMinorVersion,
		Capabilities: sdk.Capabilities{
			KeySpecs:         keySpecs,
			BindingKinds:     []string{KindVirtual, KindClientSSLProfile},
			NeedsCommit:      true,
			SupportsRollback: true,
			SupportsCleanup:  true,
			TargetOptions:    targetOptions,
			BindingOptions:   bindingOptions,
		},
	}, nil
}

// device is one call's session with one BIG-IP.
type device struct {
	t             sdk.Target
	c             *icontrol.Client
	address       string
	partition     string
	auth          string
	loginProvider string
	pci           bool
	standalone    bool
	syncGroup     string
	parent        string
	transport     interface{ CloseIdleConnections() }
}

var partitionName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)

// parseOptions reads and checks the target's options; it needs no network.
func parseOptions(t sdk.Target) (*device, error) {
	if unknown := t.Options.Unknown(targetOptions); len(unknown) > 0 {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "unknown option(s) %s for BIG-IP device %q; known: partition, auth, login_provider, pci_mode, standalone, sync_device_group, parent_profile",
			strings.Join(unknown, ", "), t.Name)
	}
	bad := func(err error) error {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "BIG-IP device %q: %v", t.Name, err)
	}
	d := &device{t: t}
	var err error
	if d.address, err = baseURL(t.Address); err != nil {
		return nil, bad(err)
	}
	if d.partition, err = t.Options.String("partition", defaultPartition); err != nil {
		return nil, bad(err)
	}
	if !partitionName.MatchString(d.partition) {
		return nil, bad(fmt.Errorf("option partition %q is not a partition name", d.partition))
	}
	if d.auth, err = t.Options.String("auth", "token"); err != nil {
		return nil, bad(err)
	}
	if d.auth != "token" && d.auth != "basic" {
		return nil, bad(fmt.Errorf("option auth must be token or basic, not %q", d.auth))
	}
	if d.loginProvider, err = t.Options.String("login_provider", "tmos"); err != nil {
		return nil, bad(err)
	}
	if d.auth == "basic" && d.loginProvider != "tmos" {
		return nil, bad(fmt.Errorf("basic auth works for local users only; remove login_provider or use auth: token"))
	}
	if d.pci, err = t.Options.Bool("pci_mode", true); err != nil {
		return nil, bad(err)
	}
	if d.standalone, err = t.Options.Bool("standalone", false); err != nil {
		return nil, bad(err)
	}
	if d.syncGroup, err = t.Options.String("sync_device_group", ""); err != nil {
		return nil, bad(err)
	}
	if d.syncGroup != "" && !partitionName.MatchString(d.syncGroup) {
		return nil, bad(fmt.Errorf("option sync_device_group %q is not a device group name", d.syncGroup))
	}
	parent, err := t.Options.String("parent_profile", defaultParent)
	if err != nil {
		return nil, bad(err)
	}
	if d.parent, err = d.resolve(parent); err != nil {
		return nil, bad(fmt.Errorf("option parent_profile: %w", err))
	}
	if t.Credentials.Username == "" || t.Credentials.Password == "" {
		return nil, bad(fmt.Errorf("credentials.username and credentials.password are required"))
	}
	return d, nil
}

// baseURL accepts "https://host[:port]" or "host[:port]".
func baseURL(address string) (string, error) {
	if address == "" {
		return "", fmt.Errorf("address is empty; want https://host[:port] or host[:port]")
	}
	if !strings.Contains(address, "://") {
		address = "https://" + address
	}
	u, err := url.Parse(address)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("address %q: want https://host[:port] or host[:port]", address)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("address %q: iControl REST is HTTPS only", address)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		u.Host = net.JoinHostPort(strings.Trim(u.Hostname(), "[]"), "443")
	}
	return "https://" + u.Host, nil
}

// open checks the target, logs in and returns the session; the caller must close it.
func open(ctx context.Context, t sdk.Target) (*device, error) {
	if err := sdk.FromContext(ctx); err != nil {
		return nil, err
	}
	d, err := parseOptions(t)
	if err != nil {
		return nil, err
	}
	httpClient, err := sdk.NewHTTPClient(t, requestTimeout)
	if err != nil {
		return nil, err
	}
	if tr, ok := httpClient.Transport.(interface{ CloseIdleConnections() }); ok {
		d.transport = tr
	}
	d.c, err = icontrol.New(icontrol.Config{
		BaseURL: d.address, HTTPClient: httpClient, Username: t.Credentials.Username, Password: t.Credentials.Password,
		LoginProvider: d.loginProvider, BasicAuth: d.auth == "basic", Logger: sdk.Logger(ctx),
	})
	if err != nil {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "BIG-IP device %q: %v", t.Name, err)
	}
	d.c.AddSecret(t.Credentials.APIKey)
	if err := d.c.Login(ctx); err != nil {
		d.close(ctx)
		return nil, d.deviceError(ctx, "log in", err)
	}
	return d, nil
}

// close deletes the token, also when the call's context is over.
func (d *device) close(ctx context.Context) {
	if d.c != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logoutTimeout)
		if err := d.c.Logout(lctx); err != nil {
			sdk.Logger(ctx).Warn("could not delete the login token; it expires by itself", "device", d.t.Name, "error", err.Error())
		}
		cancel()
	}
	if d.transport != nil {
		d.transport.CloseIdleConnections()
	}
}

// withDevice opens a session, runs fn and always logs out.
func withDevice(ctx context.Context, t sdk.Target, fn func(d *device) error) error {
	d, err := open(ctx, t)
	if err != nil {
		return err
	}
	defer d.close(ctx)
	return fn(d)
}

// CheckTarget logs in and reports the device, its HA role and whether the partition exists.
func (*Plugin) CheckTarget(ctx context.Context, t sdk.Target) (sdk.TargetInfo, error) {
	var info sdk.TargetInfo
	err := withDevice(ctx, t, func(d *device) error {
		devices, err := icontrol.List[icontrol.Device](ctx, d.c, icontrol.PathDevice, nil)
		if err != nil {
			return d.deviceError(ctx, "read cm device", err)
		}
		var self icontrol.Device
		for _, dev := range devices {
			if dev.SelfDevice == "true" {
				self = dev
			}
		}
		if err := d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathFolder, "/"+d.partition), nil); err != nil {
			if icontrol.IsNotFound(err) {
				return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "partition %q does not exist on %s; create it or fix option partition", d.partition, d.address)
			}
			return d.deviceError(ctx, "read partition "+d.partition, err)
		}
		role := "standalone"
		if len(devices) > 1 {
			role = self.FailoverState
		}
		info = sdk.TargetInfo{
			Hostname: self.Hostname, Model: self.MarketingName, SoftwareVersion: strings.TrimSpace(self.Version + " " + self.Build),
			SerialNumber: self.ChassisID, HARole: role,
			Details: map[string]string{"partition": d.partition, "auth": d.auth, "pci_mode": fmt.Sprint(d.pci), "management_ip": self.ManagementIP},
		}
		if d.syncGroup != "" {
			info.Details["sync_device_group"] = d.syncGroup
		}
		return nil
	})
	return info, err
}
