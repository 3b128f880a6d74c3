package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofrs/flock"
)

// validateBase is a configuration that passes validate: an SCM and an ACME issuer, a pemdir
// device and a Citrix ADC. Each case below changes one thing.
const validateBase = `version: v1
state: {path: state.db}
defaults:
  issuer: scm
  subject: {organization: Example, locality: Leeds, state: West Yorkshire, country: GB}
issuers:
  scm:
    type: scm
    scm: {base_url: "https://scm.invalid/api/", customer_uri: c, auth: oauth2, client_id: id, client_secret: "${env:S}", org_id: 1}
  acme:
    type: acme
    acme: {directory_url: "https://acme.invalid/dir", contact: ops@example.com}
devices:
  web1:
    plugin: pemdir
    address: /srv/tls
    options: {links: [www]}
  adc1:
    plugin: citrix-nitro
    address: https://adc1.invalid
    credentials: {username: u, password: "${env:P}"}
certificates:
  www:
    device: web1
    sans: {dns: [www.example.com]}
    issuer_options: {cert_type: OV SSL, term: 365}
    bindings: [{kind: live-link, name: www}]
  vpn:
    device: adc1
    issuer: acme
    sans: {dns: [vpn.example.com]}
    bindings: [{kind: gateway-vserver, name: gw_vpn_443}]
`

func writeValidateConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "certfleet.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestValidateAcceptsTheBase(t *testing.T) {
	code, out, errOut := certfleet(t, "--config", writeValidateConfig(t, validateBase), "validate")
	if code != 0 || !strings.Contains(out, "checked against 2 plugin(s)") {
		t.Fatalf("validate: code %d\n%s%s", code, out, errOut)
	}
}

// TestValidateRejects lists configurations validate must now reject, each with its message: what
// only the plugins' declared capabilities and the issuer types can tell, with no device, CA or
// secret involved. Before, each of them passed validate.
func TestValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string
		want     string
	}{
		{"scm options without cert_type", "issuer_options: {cert_type: OV SSL, term: 365}", "issuer_options: {term: 365}",
			"certificates.www.issuer_options: issuer option cert_type is missing"},
		{"an scm option merged from defaults into an acme certificate", "  subject: {organization:", "  issuer_options: {term: 365}\n  subject: {organization:",
			`certificates.vpn.issuer_options: unknown ACME issuer option "term"`},
		{"a key the plugin cannot make", "    issuer: acme\n", "    issuer: acme\n    key: {type: ecdsa, bits: 521}\n",
			"certificates.vpn.key: plugin citrix-nitro cannot make ecdsa-521 keys"},
		{"a binding kind the plugin does not have", "kind: live-link", "kind: ssl-tls-profile",
			`certificates.www.bindings[0].kind: plugin pemdir has no binding kind "ssl-tls-profile"`},
		{"an unknown device option", "options: {links: [www]}", "options: {links: [www], reload: [nginx]}",
			`devices.web1.options.reload: plugin pemdir has no option "reload"`},
		{"a device option of the wrong type", "options: {links: [www]}", "options: {links: www}",
			"devices.web1.options.links: must be a list, not string"},
		{"an unknown binding option", "{kind: gateway-vserver, name: gw_vpn_443}", "{kind: gateway-vserver, name: gw_vpn_443, options: {sni: true}}",
			`certificates.vpn.bindings[0].options.sni: plugin citrix-nitro has no option "sni"`},
		{"a binding option of the wrong type", "{kind: gateway-vserver, name: gw_vpn_443}", "{kind: gateway-vserver, name: gw_vpn_443, options: {enable_sni: \"yes\"}}",
			"certificates.vpn.bindings[0].options.enable_sni: must be a bool, not string"},
		{"a device whose plugin is not installed", "plugin: pemdir", "plugin: nginx-files",
			`devices.web1.plugin: plugin "nginx-files" not found`},
		{"a verify address without a port", "    bindings: [{kind: live-link, name: www}]", "    bindings: [{kind: live-link, name: www}]\n    verify: {address: www.example.com}",
			`certificates.www.verify.address: "www.example.com" is not host:port`},
		{"an unknown on_verify_failure", "    bindings: [{kind: live-link, name: www}]", "    bindings: [{kind: live-link, name: www}]\n    on_verify_failure: retry",
			`certificates.www.on_verify_failure: "retry" is not keep or rollback`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(validateBase, tc.old) {
				t.Fatalf("the base has no %q", tc.old)
			}
			cfg := writeValidateConfig(t, strings.Replace(validateBase, tc.old, tc.new, 1))
			code, out, errOut := certfleet(t, "--config", cfg, "validate")
			if code != 2 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, cfg) {
				t.Fatalf("validate: code %d, stdout %q\nstderr %s\nwant exit 2 and %q with the file name", code, out, errOut, tc.want)
			}
		})
	}
}

// TestValidateOffline: --offline starts no plugin, so what only a plugin knows is not checked.
func TestValidateOffline(t *testing.T) {
	cfg := writeValidateConfig(t, strings.Replace(validateBase, "kind: live-link", "kind: ssl-tls-profile", 1))
	code, out, errOut := certfleet(t, "--config", cfg, "validate", "--offline")
	if code != 0 || !strings.Contains(out, "plugins not started (--offline)") {
		t.Fatalf("validate --offline: code %d\n%s%s", code, out, errOut)
	}
}

// TestRunAndPlanRefuseWhatThePluginsRefuse: run and plan start the plugins while they read the
// state, and wait for the plugins' check before any CA or device call. A configuration the plugin
// refuses still ends them with exit 2 and the configuration's error (file and field), and no run
// is recorded. The ACME directory is a closed loopback port: a CA call would fail differently.
func TestRunAndPlanRefuseWhatThePluginsRefuse(t *testing.T) {
	dir := t.TempDir()
	cfg := writeValidateConfig(t, `version: v1
state: {path: `+filepath.Join(dir, "state.db")+`}
issuers:
  acme: {type: acme, acme: {directory_url: "https://127.0.0.1:1/dir", contact: ops@example.com, account_key_passphrase: "${env:CERTFLEET_TEST_ACCOUNT_PASSPHRASE}"}}
devices:
  web1: {plugin: pemdir, address: `+filepath.Join(dir, "web1")+`, options: {links: [www], reload: [nginx]}}
certificates:
  www: {device: web1, issuer: acme, sans: {dns: [www.example.com]}, bindings: [{kind: live-link, name: www}]}
`)
	t.Setenv("CERTFLEET_TEST_ACCOUNT_PASSPHRASE", "correct horse battery staple")
	want := `devices.web1.options.reload: plugin pemdir has no option "reload"`
	for _, cmd := range [][]string{{"plan"}, {"run"}, {"run", "--dry-run"}} {
		code, out, errOut := certfleet(t, append([]string{"--config", cfg}, cmd...)...)
		if code != 2 || !strings.Contains(errOut, want) || !strings.Contains(errOut, cfg) {
			t.Errorf("%v: code %d, stdout %q\nstderr %s\nwant exit 2 and %q with the file name", cmd, code, out, errOut, want)
		}
	}
	code, out, errOut := certfleet(t, "--config", cfg, "history", "--output", "json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("history after the refused runs: code %d\n%s%s", code, out, errOut)
	}
	// Another run holding the state's lock: the configuration error is still the one reported
	// (the lock is tried while the plugins are being checked).
	lock := flock.New(filepath.Join(dir, "state.db.lock"))
	if ok, err := lock.TryLock(); !ok || err != nil {
		t.Fatalf("take the run lock: %v %v", ok, err)
	}
	defer lock.Unlock()
	if code, out, errOut := certfleet(t, "--config", cfg, "run"); code != 2 || !strings.Contains(errOut, want) {
		t.Errorf("run while another holds the lock: code %d, stdout %q\nstderr %s\nwant exit 2 and %q", code, out, errOut, want)
	}
}
