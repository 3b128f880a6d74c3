// Package paloaltopanos is the certfleet device plugin for PAN-OS firewalls, over the XML API
// (package panosclient). It replaces the Sectigo Palo Alto agent.
//
// Target.Address is the management interface: "https://host[:port]" or "host[:port]" (HTTPS is
// assumed; the XML API has no plain-HTTP form). Credentials: Target.Credentials.APIKey, or
// Username and Password, exchanged for a key with keygen; the key is cached in the plugin process
// per device and user, and made again when the device answers 403 (expired or revoked key).
//
// Per renewal, GenerateCSR makes a new on-box key pair and pending certificate entry under a new
// unique name (≤ 63 characters; key_ref = cert_ref = that entry, "name" for shared or
// "vsysN/name"). ImportCert imports the signed leaf followed by its intermediates onto it, as one
// file (Palo Alto KB DOC-4289), and each CA certificate of the chain under its own name, reusing an
// identical one and skipping, with a warning, one the device refuses. Bind points SSL/TLS service
// profiles (or the profile of a GlobalProtect portal or gateway) at it, or puts it in the
// certificate list of an SSL Inbound Inspection decryption rule, in the candidate configuration.
// Commit commits — partially by default, taking only the changes of the administrator certfleet
// acts as; commit_scope: full commits everything — and waits for the job. Nothing is live before
// Commit.
package paloaltopanos

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Name of the plugin; the binary is certfleet-plugin-paloalto-panos.
const Name = "paloalto-panos"

// Version of the plugin: the release it was built for (see sdk.BuildVersion).
var Version = sdk.BuildVersion()

// Binding kinds.
const (
	// KindProfile is an SSL/TLS service profile, named by Binding.Name.
	KindProfile = "ssl-tls-service-profile"
	// KindPortal is a GlobalProtect portal: the SSL/TLS service profile it uses gets the certificate.
	KindPortal = "globalprotect-portal"
	// KindGateway is a GlobalProtect gateway, likewise through its SSL/TLS service profile.
	KindGateway = "globalprotect-gateway"
	// KindDecryption is an SSL Inbound Inspection decryption rule (in a vsys): the certificate
	// replaces the one it renews in the rule's certificate list.
	KindDecryption = "decryption-rule"
)

// keySpecs are the keys the firewall makes. ECDSA P-521 is not among them: every public source
// of the generate command (Keyfactor's orchestrator, chrisgoodwins' rollout script's menus, the
// SCM API's certificate fields) offers 256 and 384 bits only, and none shows 521.
var keySpecs = []sdk.KeySpec{
	{Type: sdk.KeyTypeRSA, Bits: 2048}, {Type: sdk.KeyTypeRSA, Bits: 3072}, {Type: sdk.KeyTypeRSA, Bits: 4096},
	{Type: sdk.KeyTypeECDSA, Bits: 256}, {Type: sdk.KeyTypeECDSA, Bits: 384},
}

var targetOptions = []sdk.OptionSpec{
	{Name: "vsys", Type: "string", Description: "the virtual system searched besides shared for certificates and binding objects (default vsys1)"},
	{Name: "commit_scope", Type: "string", Description: "partial (default): commit only the changes of the administrator that made ours; full: commit the whole candidate configuration, other administrators' pending changes included"},
	{Name: "commit_admin", Type: "string", Description: "the administrator whose changes a partial commit takes (the Sectigo agent's commit user); default: the username of the credentials, or the admin the API key belongs to (show admins, PAN-OS 10.0+)"},
	{Name: "commit_description", Type: "string", Description: "the description of certfleet's commits (the Sectigo agent's paloalto_commit_description); default: the one the core gives, naming the certificates"},
	{Name: "commit_poll_interval", Type: "number", Description: "seconds between polls of a commit job (default 2)"},
	{Name: "commit_timeout", Type: "number", Description: "seconds to wait for a commit job (default 900; the call's deadline applies too)"},
	{Name: "request_timeout", Type: "number", Description: "seconds for one XML API request (default 120)"},
	{Name: "digest", Type: "string", Description: "CSR digest: sha256, sha384 or sha512 (default sha256; sha384 for ECDSA P-384)"},
	{Name: "cleanup_commit", Type: "bool", Description: "commit right after Cleanup deleted something (default false: the deletions ride on the next run's commit, keeping one commit per device per run)"},
}

var bindingOptions = []sdk.OptionSpec{
	{Name: "vsys", Type: "string", Description: "where the bound object is: shared or vsysN (default: profiles in shared, then the device's vsys; GlobalProtect objects and decryption rules in the device's vsys)"},
}

// Plugin implements sdk.Plugin for PAN-OS. Its only state is the API key cache.
type Plugin struct {
	keys *panosclient.KeyCache
}

// New returns the plugin.
func New() *Plugin { return &Plugin{keys: panosclient.NewKeyCache()} }

// Info describes the plugin.
func (*Plugin) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:                 Name,
		Version:              Version,
		Vendor:               "Palo Alto Networks",
		Description:          "PAN-OS firewalls over the XML API: on-box keys and CSRs, SSL/TLS service profiles and GlobalProtect, commit with job wait",
		ContractMinorVersion: sdk.ContractMinorVersion,
		Capabilities: sdk.Capabilities{
			KeySpecs:         slices.Clone(keySpecs),
			BindingKinds:     []string{KindProfile, KindPortal, KindGateway, KindDecryption},
			NeedsCommit:      true,
			SupportsRollback: true,
			SupportsCleanup:  true,
			TargetOptions:    targetOptions,
			BindingOptions:   bindingOptions,
		},
	}, nil
}

// device is one call's view of a target: a client and the parsed options.
type device struct {
	target  sdk.Target
	address string
	client  *panosclient.Client
	http    *http.Client
	vsys    location
	// fullCommit is commit_scope: full; otherwise commits are partial, by commitAdmin when the
	// option or the credentials name the admin, else by the admin the API key belongs to.
	fullCommit        bool
	commitAdmin       string
	commitDescription string
	pollInterval      time.Duration
	commitTimeout     time.Duration
	digest            string
	cleanupCommit     bool
}

var vsysPattern = regexp.MustCompile(`^vsys[0-9]{1,3}$`)

// open checks the target and builds its client; close releases the connections.
func (p *Plugin) open(ctx context.Context, t sdk.Target) (*device, error) {
	if err := sdk.FromContext(ctx); err != nil {
		return nil, err
	}
	if unknown := t.Options.Unknown(targetOptions); len(unknown) > 0 {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "device %q: unknown option(s) %s; known: %s",
			t.Name, strings.Join(unknown, ", "), optionNames(targetOptions))
	}
	base, err := baseURL(t.Address)
	if err != nil {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "device %q: %v", t.Name, err)
	}
	d := &device{target: t, address: base}
	opt := func(err error) error {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "device %q: %v", t.Name, err)
	}
	vsys, err := t.Options.String("vsys", "vsys1")
	if err != nil {
		return nil, opt(err)
	}
	if !vsysPattern.MatchString(vsys) {
		return nil, opt(fmt.Errorf("option vsys %q: want vsysN such as vsys1", vsys))
	}
	d.vsys = location(vsys)
	scope, err := t.Options.String("commit_scope", "partial")
	if err != nil {
		return nil, opt(err)
	}
	switch scope {
	case "partial":
	case "full":
		d.fullCommit = true
	default:
		return nil, opt(fmt.Errorf("option commit_scope %q: want partial or full", scope))
	}
	if d.commitAdmin, err = t.Options.String("commit_admin", ""); err != nil {
		return nil, opt(err)
	}
	if d.fullCommit && d.commitAdmin != "" {
		return nil, opt(fmt.Errorf("option commit_admin %q names whose changes a partial commit takes; remove it, or commit_scope: full", d.commitAdmin))
	}
	if d.commitDescription, err = t.Options.String("commit_description", ""); err != nil {
		return nil, opt(err)
	}
	if d.pollInterval, err = durationOption(t.Options, "commit_poll_interval", 2*time.Second); err != nil {
		return nil, opt(err)
	}
	if d.commitTimeout, err = durationOption(t.Options, "commit_timeout", 15*time.Minute); err != nil {
		return nil, opt(err)
	}
	requestTimeout, err := durationOption(t.Options, "request_timeout", 2*time.Minute)
	if err != nil {
		return nil, opt(err)
	}
	if d.digest, err = t.Options.String("digest", ""); err != nil {
		return nil, opt(err)
	}
	switch d.digest {
	case "", "sha256", "sha384", "sha512":
	default:
		return nil, opt(fmt.Errorf("option digest %q: want sha256, sha384 or sha512", d.digest))
	}
	if d.cleanupCommit, err = t.Options.Bool("cleanup_commit", false); err != nil {
		return nil, opt(err)
	}
	creds := t.Credentials
	if creds.APIKey == "" && (creds.Username == "" || creds.Password == "") {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "device %q: give credentials.api_key, or credentials.username and password", t.Name)
	}
	if d.http, err = sdk.NewHTTPClient(t, requestTimeout); err != nil {
		return nil, err
	}
	d.client, err = panosclient.New(panosclient.Config{
		BaseURL: base, HTTPClient: d.http, APIKey: creds.APIKey, Username: creds.Username, Password: creds.Password, Keys: p.keys,
	})
	if err != nil {
		d.http.CloseIdleConnections()
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "device %q: %v", t.Name, err)
	}
	return d, nil
}

func (d *device) close() { d.http.CloseIdleConnections() }

// withDevice opens the target, runs fn and releases the connections on every path.
func (p *Plugin) withDevice(ctx context.Context, t sdk.Target, fn func(d *device) error) error {
	d, err := p.open(ctx, t)
	if err != nil {
		return err
	}
	defer d.close()
	return fn(d)
}

func optionNames(specs []sdk.OptionSpec) string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// baseURL turns a Target.Address into https://host[:port].
func baseURL(addr string) (string, error) {
	a := strings.TrimSpace(addr)
	if a == "" {
		return "", fmt.Errorf("address is empty; want https://host[:port] of the management interface")
	}
	if !strings.Contains(a, "://") {
		a = "https://" + a
	}
	u, err := url.Parse(a)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("address %q: want https://host[:port] of the management interface", addr)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("address %q: the XML API is served over https only", addr)
	}
	if u.User != nil || u.RawQuery != "" || (u.Path != "" && u.Path != "/" && u.Path != "/api" && u.Path != "/api/") {
		return "", fmt.Errorf("address %q: give only https://host[:port]", addr)
	}
	return "https://" + u.Host, nil
}

// durationOption reads seconds (a number) or a Go duration string ("500ms").
func durationOption(o sdk.Options, name string, def time.Duration) (time.Duration, error) {
	v, ok := o[name]
	if !ok || v == nil {
		return def, nil
	}
	var d time.Duration
	switch x := v.(type) {
	case float64:
		d = time.Duration(x * float64(time.Second))
	case int:
		d = time.Duration(x) * time.Second
	case int64:
		d = time.Duration(x) * time.Second
	case string:
		parsed, err := time.ParseDuration(x)
		if err != nil {
			return 0, fmt.Errorf("option %s %q: want seconds or a duration such as 500ms", name, x)
		}
		d = parsed
	default:
		return 0, fmt.Errorf("option %s: want seconds, got %T", name, v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("option %s must be positive", name)
	}
	return d, nil
}
