package config

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

func TestLoadGoodConfig(t *testing.T) {
	cfg, warnings, err := Load("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	www := cfg.Certificates["www"]
	if www.Issuer != "sectigo" || www.Key != (sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}) || www.RenewBefore != 30*24*time.Hour {
		t.Errorf("defaults not applied to www: %+v", www)
	}
	if www.Subject.CommonName != "www.example.com" || www.Subject.Organization != "Example Ltd" || www.Subject.Country != "GB" {
		t.Errorf("subject of www: %+v", www.Subject)
	}
	if www.IssuerOptions["term"] != 365 || www.IssuerOptions["comments"] != "web" {
		t.Errorf("issuer options of www: %v", www.IssuerOptions)
	}
	api := cfg.Certificates["api"]
	if api.RenewFraction != 0.33 || api.Key.Bits != 3072 || api.Subject.Organization != "API Team" {
		t.Errorf("api: %+v", api)
	}
	if api.Position.Line != 40 || !strings.HasSuffix(api.Position.File, "good.yaml") {
		t.Errorf("position of api: %v", api.Position)
	}
	if cfg.State.Path != filepath.Join("testdata", "state", "certfleet.db") {
		t.Errorf("state path %q is not relative to the file", cfg.State.Path)
	}
	if cfg.Issuers["letsencrypt"].ACME.EAB.KeyID != "kid-1" || cfg.Issuers["sectigo"].SCM.OrgID != 1234 {
		t.Errorf("issuers: %+v %+v", cfg.Issuers["letsencrypt"].ACME, cfg.Issuers["sectigo"].SCM)
	}
	if cfg.Runtime.Workers != 4 || cfg.Runtime.PerIssuer != 4 || cfg.Devices["adc1"].Concurrency != 1 {
		t.Errorf("runtime: %+v", cfg.Runtime)
	}
}

// mapResolver resolves ${env:X} from a map, for tests.
type mapResolver map[string]string

func (m mapResolver) Resolve(_ context.Context, v string) (string, error) {
	out := reference.ReplaceAllStringFunc(v, func(ref string) string {
		if r, ok := m[ref]; ok {
			return r
		}
		return ref
	})
	if strings.Contains(out, "${") {
		return "", fmt.Errorf("cannot resolve %s", v)
	}
	return out, nil
}

func TestResolveReferences(t *testing.T) {
	cfg, _, err := Load("testdata/good.yaml", WithResolver(context.Background(), mapResolver{
		"${env:SCM_SECRET}": "s3cret", "${file:eab.key}": "aGVsbG8", "${env:ADC_PASSWORD}": "adc-pass",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Devices["adc1"].Credentials.Password != "adc-pass" || cfg.Issuers["sectigo"].SCM.ClientSecret != "s3cret" {
		t.Fatalf("references not resolved: %+v", cfg.Devices["adc1"].Credentials)
	}
	if s := fmt.Sprintf("%v %+v", cfg.Devices["adc1"].Credentials, cfg.Devices["adc1"]); strings.Contains(s, "adc-pass") {
		t.Errorf("a device password is printed: %s", s)
	}
	_, _, err = Load("testdata/good.yaml", WithResolver(context.Background(), mapResolver{}))
	if err == nil || !strings.Contains(err.Error(), "good.yaml:19: client_secret: cannot resolve ${env:SCM_SECRET}") {
		t.Fatalf("unresolvable reference: %v", err)
	}
}

func TestDirectoryMerge(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("10-issuers.yaml", "version: v1\nissuers:\n  ca:\n    type: acme\n    acme: {directory_url: https://ca.example/dir}\n")
	write("20-devices.yml", "version: v1\ndevices:\n  web1: {plugin: pemdir, address: /srv/tls}\n")
	write("30-certs.yaml", "version: v1\ncertificates:\n  www: {device: web1, issuer: ca, sans: {dns: [www.example.com]}, bindings: [{kind: live-link, name: www}]}\n")
	write("notes.txt", "ignored")
	cfg, _, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Files) != 3 || cfg.Certificates["www"].Device != "web1" {
		t.Fatalf("merged: %+v", cfg)
	}
	write("40-dup.yaml", "version: v1\ndevices:\n  web1: {plugin: pemdir, address: /srv/other}\n")
	_, _, err = Load(dir)
	want := filepath.Join(dir, "40-dup.yaml") + `:3: devices.web1: device "web1" is also defined at ` + filepath.Join(dir, "20-devices.yml") + ":3 (hint: names must be unique across files)"
	if err == nil || err.Error() != want {
		t.Fatalf("duplicate across files:\n got: %v\nwant: %s", err, want)
	}
}

func TestPlaintextSecretWarns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("version: v1\ndevices:\n  d: {plugin: pemdir, address: /x, credentials: {password: hunter22}}\n"), 0o600)
	_, warnings, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || warnings[0].String() != path+":3: password: a secret is written in the configuration in plain text (hint: use ${env:NAME}, ${file:/path} or a sops-encrypted file)" {
		t.Fatalf("warnings: %v", warnings)
	}
}

// TestRSAAndECDSAOnOnePlace: one certificate per key type may serve a non-SNI place.
func TestRSAAndECDSAOnOnePlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(base+"certificates:\n  a: {device: web1, issuer: ca, sans: {dns: [a.example]}, key: {type: rsa, bits: 2048}, bindings: [{kind: l, name: n}]}\n  b: {device: web1, issuer: ca, sans: {dns: [a.example]}, key: {type: ecdsa, bits: 256}, bindings: [{kind: l, name: n}]}\n"), 0o600)
	if _, _, err := Load(path); err != nil {
		t.Fatalf("an RSA and an ECDSA certificate on one place: %v", err)
	}
}

// TestPlainHTTPOptInWarnsOnEveryLoad: an http:// address with allow_plain_http loads, with a
// warning each time, and reaches no further than the device that opted in.
func TestPlainHTTPOptInWarnsOnEveryLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("version: v1\ndevices:\n  adc: {plugin: citrix-nitro, address: \"http://adc.example\", allow_plain_http: true}\n  web1: {plugin: pemdir, address: /srv/tls}\n"), 0o600)
	for range 2 {
		cfg, warnings, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.Devices["adc"].AllowPlainHTTP || cfg.Devices["web1"].AllowPlainHTTP {
			t.Fatalf("opt-in: adc %v, web1 %v", cfg.Devices["adc"].AllowPlainHTTP, cfg.Devices["web1"].AllowPlainHTTP)
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0].String(), "devices.adc.address: the device is reached over plain http") {
			t.Fatalf("warnings: %v", warnings)
		}
	}
}

// TestRemovedACMEIssuanceTimeoutStillLoads: timeouts.issuance lost its meaning when Collect
// stopped waiting (#24); a configuration that sets it loads, with a warning that says so.
func TestRemovedACMEIssuanceTimeoutStillLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("version: v1\nissuers:\n  ca:\n    type: acme\n    acme: {directory_url: https://ca.example/dir, timeouts: {issuance: 30s}}\n"), 0o600)
	_, warnings, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0].String(), "issuers.ca.acme.timeouts.issuance: is ignored") {
		t.Fatalf("warnings: %v", warnings)
	}
}

const base = `version: v1
issuers:
  ca:
    type: acme
    acme: {directory_url: https://ca.example/dir}
devices:
  web1: {plugin: pemdir, address: /srv/tls}
`

func TestBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string // each line: LINE: rest, the file name is prefixed
	}{
		{"missing version", "issuers: {}\n", []string{"1: version: is missing (hint: add `version: v1` at the top)"}},
		{"unknown version", "version: v2\n", []string{`1: version: "v2" is not a known configuration version (hint: this certfleet reads version v1)`}},
		{"syntax", "version: v1\ndevices: [\n", []string{"0: line 2: did not find expected node content (hint: fix the YAML syntax)"}},
		{"unknown top-level field", "version: v1\ncertificate: {}\n", []string{`2: certificate: unknown field "certificate" (hint: did you mean "certificates"?)`}},
		{"unknown certificate field", base + "certificates:\n  www:\n    device: web1\n    issuer: ca\n    sanz: {dns: [a.example]}\n    bindings: [{kind: live-link, name: www}]\n",
			[]string{`9: certificates.www.sans.dns: the certificate has no names: set subject.common_name or sans.dns (hint: list the names the certificate must cover)`,
				`12: certificates.www.sanz: unknown field "sanz" (hint: did you mean "sans"?)`}},
		{"bad key size", base + "certificates:\n  www: {device: web1, issuer: ca, sans: {dns: [a.example]}, key: {type: rsa, bits: 1024}, bindings: [{kind: l, name: n}]}\n",
			[]string{`9: certificates.www.key.bits: 1024 is not a supported rsa key size (hint: rsa takes 2048, 3072 or 4096)`}},
		{"bad key type", base + "certificates:\n  www: {device: web1, issuer: ca, sans: {dns: [a.example]}, key: {type: dsa}, bindings: [{kind: l, name: n}]}\n",
			[]string{`9: certificates.www.key.type: "dsa" is not a key type (hint: use rsa or ecdsa)`}},
		{"wrong type", base + "runtime: {workers: many}\n",
			[]string{`8: runtime.workers: must be a whole number, not str "many"`}},
		{"dangling device", base + "certificates:\n  www: {device: web2, issuer: ca, sans: {dns: [a.example]}, bindings: [{kind: l, name: n}]}\n",
			[]string{`9: certificates.www.device: device "web2" is not defined (hint: known devices: web1)`}},
		{"dangling issuer", base + "certificates:\n  www: {device: web1, issuer: sectigo, sans: {dns: [a.example]}, bindings: [{kind: l, name: n}]}\n",
			[]string{`9: certificates.www.issuer: issuer "sectigo" is not defined (hint: known issuers: ca)`}},
		{"bad DNS name", base + "certificates:\n  www: {device: web1, issuer: ca, sans: {dns: [\"www.*.example.com\"]}, bindings: [{kind: l, name: n}]}\n",
			[]string{`9: certificates.www.sans.dns[0]: "www.*.example.com" is not a valid DNS name (hint: letters, digits and '-' in dot-separated labels; a wildcard only as the whole leftmost label (*.example.com))`}},
		{"bad IP", base + "certificates:\n  www: {device: web1, issuer: ca, sans: {ip: [10.0.0.300]}, bindings: [{kind: l, name: n}]}\n",
			[]string{`9: certificates.www.sans.ip[0]: "10.0.0.300" is not an IP address (hint: an IPv4 or IPv6 address)`}},
		{"bad renewal", base + "certificates:\n  www: {device: web1, issuer: ca, sans: {dns: [a.example]}, renew_before: soon, bindings: [{kind: l, name: n}]}\n",
			[]string{`9: certificates.www.renew_before: "soon" is not a renewal window (hint: write days ("30d"), hours ("72h") or a share of the lifetime ("33%"))`}},
		{"bad percentage", base + "certificates:\n  www: {device: web1, issuer: ca, sans: {dns: [a.example]}, renew_before: 150%, bindings: [{kind: l, name: n}]}\n",
			[]string{`9: certificates.www.renew_before: "150%" is not a valid percentage (hint: a share of the lifetime between 0% and 100%, e.g. "33%")`}},
		{"binding without name", base + "certificates:\n  www: {device: web1, issuer: ca, sans: {dns: [a.example]}, bindings: [{kind: live-link}]}\n",
			[]string{`9: certificates.www.bindings[0].name: is missing (hint: the name of the vserver, profile or link on the device)`}},
		{"two certificates on one binding", base + "certificates:\n  a: {device: web1, issuer: ca, sans: {dns: [a.example]}, bindings: [{kind: l, name: n}]}\n  b: {device: web1, issuer: ca, sans: {dns: [b.example]}, bindings: [{kind: l, name: n}]}\n",
			[]string{`10: certificates.b.bindings[0]: l/n on device web1 is also bound by certificate "a" (FILE:9) with a rsa key (hint: a place serves one certificate per key type; use SNI bindings, separate names, or an RSA and an ECDSA certificate)`}},
		{"two ECDSA certificates on one binding", base + "certificates:\n  a: {device: web1, issuer: ca, sans: {dns: [a.example]}, key: {type: ecdsa, bits: 256}, bindings: [{kind: l, name: n}]}\n  b: {device: web1, issuer: ca, sans: {dns: [b.example]}, key: {type: ecdsa, bits: 384}, bindings: [{kind: l, name: n}]}\n",
			[]string{`10: certificates.b.bindings[0]: l/n on device web1 is also bound by certificate "a" (FILE:9) with a ecdsa key (hint: a place serves one certificate per key type; use SNI bindings, separate names, or an RSA and an ECDSA certificate)`}},
		{"plain http without the opt-in", "version: v1\ndevices:\n  adc: {plugin: citrix-nitro, address: \"http://adc.example\"}\n",
			[]string{`3: devices.adc.address: "http://adc.example" is plain http (hint: use https://, or set devices.adc.allow_plain_http: true to accept that the device's credentials cross the network unencrypted)`}},
		{"plain http opt-in in options", "version: v1\ndevices:\n  adc: {plugin: citrix-nitro, address: \"https://adc.example\", options: {allow_plain_http: true}}\n",
			[]string{`3: devices.adc.options.allow_plain_http: is set by certfleet, not in options (hint: set devices.adc.allow_plain_http: true on the device instead, so that certfleet warns about it on every run)`}},
		{"duplicate name in a file", base + "certificates:\n  a: {device: web1, issuer: ca, sans: {dns: [a.example]}, bindings: [{kind: l, name: n}]}\n  a: {device: web1, issuer: ca, sans: {dns: [b.example]}, bindings: [{kind: l, name: m}]}\n",
			[]string{`10: certificates.a: is defined twice in this file (hint: names must be unique)`}},
		{"issuer type mismatch", "version: v1\nissuers:\n  ca:\n    type: acme\n    scm: {base_url: https://x.example/api}\n    acme: {directory_url: https://ca.example/dir}\n",
			[]string{`5: issuers.ca.scm: an acme issuer takes no scm block (hint: remove it, or set type: scm)`}},
		{"scm without org and secret", "version: v1\nissuers:\n  ca:\n    type: scm\n    scm:\n      base_url: https://cert-manager.com/api/\n      client_id: x\n",
			[]string{`6: issuers.ca.scm.org_id: is missing (hint: the numeric id of the organization the certificates are ordered for)`,
				`6: issuers.ca.scm.client_secret: is missing (hint: a reference such as ${env:SCM_CLIENT_SECRET})`}},
		{"enrollment with admin fields", "version: v1\nissuers:\n  ca:\n    type: scm\n    scm:\n      api: enrollment\n      base_url: https://admin.enterprise.sectigo.com/api/\n      client_id: x\n      client_secret: ${env:S}\n      org_id: 12\n      auth: legacy\n      login: a\n      password: ${env:P}\n      customer_uri: c\n",
			[]string{`7: issuers.ca.scm.base_url: https://admin.enterprise.sectigo.com/api/ is an Admin API host, not a REST Enrollment endpoint (hint: use the REST endpoint's URL https://{customer}.enroll.{instance}.sectigo.com, or api: admin)`,
				`10: issuers.ca.scm.org_id: does not apply to api: enrollment (hint: remove it: the REST account fixes the organization, profile and term)`,
				`11: issuers.ca.scm.auth: "legacy" does not apply to api: enrollment (hint: remove it: a REST account logs in with its client_id and client_secret)`}},
		{"REST endpoint without api: enrollment", "version: v1\nissuers:\n  ca:\n    type: scm\n    scm:\n      base_url: https://acme.enroll.enterprise.sectigo.com\n      client_id: x\n      client_secret: ${env:S}\n      org_id: 1\n",
			[]string{`6: issuers.ca.scm.base_url: https://acme.enroll.enterprise.sectigo.com is a REST Enrollment endpoint, not the Admin API (hint: add api: enrollment to use this REST account)`}},
		{"unknown scm api", "version: v1\nissuers:\n  ca:\n    type: scm\n    scm:\n      api: rest\n      base_url: https://x.enroll.enterprise.sectigo.com\n      client_id: x\n      client_secret: ${env:S}\n",
			[]string{`6: issuers.ca.scm.api: "rest" is not an SCM API (hint: use admin (Admin API or login headers) or enrollment (a REST Enrollment account))`}},
		{"lookup on an admin issuer", "version: v1\nissuers:\n  ca:\n    type: scm\n    scm:\n      base_url: https://admin.enterprise.sectigo.com/api/\n      client_id: x\n      client_secret: ${env:S}\n      org_id: 1\n      lookup: {base_url: https://admin.enterprise.sectigo.com/api/, client_id: y, client_secret: z, org_id: 1}\n",
			[]string{`10: issuers.ca.scm.lookup: does not apply to api: admin (hint: remove it: only api: enrollment needs an Admin API account to look up orders)`}},
		{"acme unknown field", "version: v1\nissuers:\n  ca:\n    type: acme\n    acme:\n      directory_url: https://ca.example/dir\n      eab_kid: x\n",
			[]string{`6: issuers.ca.acme: line 7: field eab_kid not found in type acme.Config (hint: see the acme fields in examples/certfleet.yaml)`}},
		{"device without plugin", "version: v1\ndevices:\n  web1: {address: /srv}\n",
			[]string{`3: devices.web1.plugin: is missing (hint: e.g. citrix-nitro, paloalto-panos, f5-bigip or pemdir)`}},
		{"bad plugin name", "version: v1\ndevices:\n  web1: {plugin: Citrix_NITRO, address: /srv}\n",
			[]string{`3: devices.web1.plugin: "Citrix_NITRO" is not a plugin name (hint: lower-case letters, digits and '-', as in certfleet-plugin-<name>)`}},
		{"missing ca bundle", "version: v1\ndevices:\n  web1: {plugin: pemdir, address: /srv, tls: {ca_bundle: nope.pem}}\n",
			[]string{`3: devices.web1.tls.ca_bundle: cannot read DIR/nope.pem: no such file or directory (hint: give a PEM file path (relative to this file) or inline PEM)`}},
		{"bad reference", "version: v1\ndevices:\n  web1: {plugin: pemdir, address: /srv, credentials: {password: \"${vault:x}\"}}\n",
			[]string{`3: password: "${vault:x}" is not a secret reference (hint: use ${env:NAME}, ${file:/path} or ${sops:/path/file.yaml#key.path}; write $${ for a literal ${)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "certfleet.yaml")
			if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := Load(path)
			if err == nil {
				t.Fatal("accepted")
			}
			var want []string
			for _, w := range tc.want {
				line := path + ":" + strings.ReplaceAll(strings.ReplaceAll(w, "FILE", path), "DIR", dir)
				want = append(want, strings.Replace(line, path+":0: ", path+": ", 1))
			}
			if got := err.Error(); got != strings.Join(want, "\n") {
				t.Fatalf("\n got: %s\nwant: %s", got, strings.Join(want, "\n"))
			}
		})
	}
}

func TestShippedExampleValidates(t *testing.T) {
	if _, _, err := Load("../../examples/certfleet.yaml"); err != nil {
		t.Fatalf("examples/certfleet.yaml: %v", err)
	}
}

func TestSCMEnrollmentAccountAsTheAgentsHaveIt(t *testing.T) {
	t.Setenv("SCM_ID", "b8923830-11f5-4c34-951b-fc1235634972")
	t.Setenv("SCM_SECRET", "Ti]hXzuxj.!T,zg!S0rZ0StbwyDlhCP4")
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(`version: v1
issuers:
  rest:
    type: scm
    scm:
      api: enrollment
      base_url: https://example.enroll.enterprise.sectigo.com
      client_id: ${env:SCM_ID}
      client_secret: ${env:SCM_SECRET}
      initial_delay: 10s
      lookup:
        base_url: https://admin.enterprise.sectigo.com/api/
        client_id: admin-client
        client_secret: ${env:SCM_SECRET}
        org_id: 42
devices:
  web1: {plugin: pemdir, address: /srv/tls}
certificates:
  www:
    device: web1
    issuer: rest
    sans: {dns: [www.example.com]}
    bindings: [{kind: live-link, name: www}]
    issuer_options:
      custom_fields: {valid-from: 2025-01-31, cost-center: 0123, count: 12, ratio: 1.50, flag: true}
`), 0o600)
	cfg, warnings, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	s := cfg.Issuers["rest"].SCM
	if s.API != "enrollment" || s.OrgID != 0 || s.InitialDelay != 10*time.Second || s.Lookup == nil || s.Lookup.OrgID != 42 || s.Lookup.API != "admin" {
		t.Fatalf("scm: %+v", s)
	}
	fields := cfg.Certificates["www"].IssuerOptions["custom_fields"].(map[string]any)
	want := map[string]any{"valid-from": "2025-01-31", "cost-center": "0123", "count": 12, "ratio": "1.50", "flag": true}
	if fmt.Sprint(fields) != fmt.Sprint(want) {
		t.Fatalf("custom fields %#v, want them as written %#v", fields, want)
	}
}

func TestSCMHostAndLoginMismatchWarns(t *testing.T) {
	for _, tc := range []struct{ scm, want string }{
		{"base_url: https://cert-manager.com/api/\n      client_id: x\n      client_secret: ${env:S}",
			"https://cert-manager.com/api/ is the header-login host, but auth is oauth2"},
		{"base_url: https://admin.enterprise.sectigo.com/api/\n      auth: legacy\n      login: l\n      password: ${env:S}\n      customer_uri: c",
			"https://admin.enterprise.sectigo.com/api/ is the OAuth2 Admin API host, but auth is legacy"},
		{"base_url: https://admin.enterprise.sectigo.com/\n      client_id: x\n      client_secret: ${env:S}",
			"https://admin.enterprise.sectigo.com/ has no /api/ in its path"},
	} {
		path := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(path, []byte("version: v1\nissuers:\n  ca:\n    type: scm\n    scm:\n      org_id: 1\n      "+tc.scm+"\n"), 0o600)
		_, warnings, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0].String(), path+":7: issuers.ca.scm.base_url: "+tc.want) {
			t.Errorf("warnings %v, want %q", warnings, tc.want)
		}
	}
}
