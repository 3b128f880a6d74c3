// Package e2e drives the real certfleet binary, real plugin processes and real CA servers (the
// SCM simulator, Pebble) end to end, as an administrator would.
package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/core/state/pgtest"
	"github.com/certfleet/certfleet/plugins/sdk"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certfleet-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/certfleet/certfleet/cmd/certfleet", "github.com/certfleet/certfleet/cmd/certfleet-sops", "github.com/certfleet/certfleet/cmd/certfleet-sim",
		"github.com/certfleet/certfleet/examples/plugin-pemdir/cmd/certfleet-plugin-pemdir",
		"github.com/certfleet/certfleet/plugins/citrix-nitro/cmd/certfleet-plugin-citrix-nitro",
		"github.com/certfleet/certfleet/plugins/f5-bigip/cmd/certfleet-plugin-f5-bigip",
		"github.com/certfleet/certfleet/plugins/paloalto-panos/cmd/certfleet-plugin-paloalto-panos",
		"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/cmd/certfleet-plugin-citrix-endpoint-management",
		"github.com/certfleet/certfleet/plugins/haproxy-runtime/cmd/certfleet-plugin-haproxy-runtime")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	pgtest.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fleet is a configuration directory, pemdir devices and a state database for one test.
type fleet struct {
	t      *testing.T
	dir    string
	config string
	env    []string
	// spec is what the configuration was last written from.
	spec fleetSpec
}

// issuerBlock is the YAML of the issuers section for the test's CA.
type fleetSpec struct {
	Issuers string
	// Certificates per device name: name -> list of host names; each gets a live link of its name.
	Devices map[string][]string
	// Extra YAML appended to every certificate.
	CertExtra string
	Env       []string
	// ExtraDevices and ExtraCertificates are YAML entries for non-pemdir devices.
	ExtraDevices      string
	ExtraCertificates string
}

const fleetTemplate = `version: v1
state:
  path: state.db
runtime:
  collect_timeout: 30s
  revocation_check_interval: 1h
  verify_wait: 200ms
defaults:
  issuer: ca
  key: {type: ecdsa, bits: 256}
  renew_before: 30d
  subject: {organization: certfleet e2e, country: GB}
issuers:
{{.Issuers}}
devices:
{{- range $dev, $hosts := .Devices}}
  {{$dev}}:
    plugin: pemdir
    address: {{$.Dir}}/devices/{{$dev}}
    options: {links: [{{join $hosts ", "}}]}
{{- end}}
{{.ExtraDevices}}
certificates:
{{- range $dev, $hosts := .Devices}}{{range $hosts}}
  {{.}}:
    device: {{$dev}}
    sans: {dns: [{{.}}.example.com]}
    bindings: [{kind: live-link, name: {{.}}}]
{{- $.CertExtra}}
{{- end}}{{end}}
{{.ExtraCertificates}}
`

func newFleet(t *testing.T, spec fleetSpec) *fleet {
	t.Helper()
	dir := t.TempDir()
	f := &fleet{t: t, dir: dir, config: filepath.Join(dir, "certfleet.yaml"), env: spec.Env}
	for dev := range spec.Devices {
		if err := os.MkdirAll(filepath.Join(dir, "devices", dev), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f.writeConfig(spec)
	return f
}

func (f *fleet) writeConfig(spec fleetSpec) {
	f.t.Helper()
	f.spec = spec
	tmpl := template.Must(template.New("c").Funcs(template.FuncMap{"join": strings.Join}).Parse(fleetTemplate))
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, struct {
		fleetSpec
		Dir string
	}{spec, f.dir}); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(f.config, buf.Bytes(), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// result of one certfleet invocation.
type result struct {
	code           int
	stdout, stderr string
}

func (f *fleet) certfleet(extraEnv []string, args ...string) result {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := append([]string{"--config", f.config, "--plugin-dir", binDir, "--log-level", "debug"}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "certfleet"), full...)
	cmd.Env = append(append(append(os.Environ(), "CERTFLEET_PLUGIN_DIR="), f.env...), extraEnv...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatalf("certfleet %v: %v", args, err)
	}
	f.t.Logf("certfleet %s → exit %d\n%s", strings.Join(args, " "), code, lastLines(errOut.String(), 15))
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// run runs `certfleet run --output json` and decodes the report.
func (f *fleet) run(extraEnv []string, args ...string) (engine.Report, result) {
	f.t.Helper()
	res := f.certfleet(extraEnv, append([]string{"run", "--output", "json"}, args...)...)
	var report engine.Report
	if res.stdout != "" {
		if err := json.Unmarshal([]byte(res.stdout), &report); err != nil {
			f.t.Fatalf("run output is not a JSON report: %v\n%s", err, res.stdout)
		}
	}
	return report, res
}

func outcomes(r engine.Report) map[string]state.Outcome {
	out := map[string]state.Outcome{}
	for _, res := range r.Results {
		out[res.Certificate] = res.Outcome
	}
	return out
}

// live reads the certificate a server configured with live/<name>/fullchain.pem would serve.
func (f *fleet) live(device, name string) *x509.Certificate {
	f.t.Helper()
	data, err := os.ReadFile(filepath.Join(f.dir, "devices", device, "live", name, "fullchain.pem"))
	if err != nil {
		f.t.Fatalf("live certificate %s/%s: %v", device, name, err)
	}
	certs, err := sdk.ParseCertificatesPEM(string(data))
	if err != nil {
		f.t.Fatal(err)
	}
	return certs[0]
}

// liveChain returns the whole served chain.
func (f *fleet) liveChain(device, name string) []*x509.Certificate {
	f.t.Helper()
	data, err := os.ReadFile(filepath.Join(f.dir, "devices", device, "live", name, "fullchain.pem"))
	if err != nil {
		f.t.Fatal(err)
	}
	certs, err := sdk.ParseCertificatesPEM(string(data))
	if err != nil {
		f.t.Fatal(err)
	}
	return certs
}

// verifyChain checks a served chain up to the given root.
func verifyChain(t *testing.T, chain []*x509.Certificate, rootPEM string, name string) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(rootPEM)) {
		t.Fatal("no root PEM")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name}); err != nil {
		t.Fatalf("served chain for %s does not verify: %v", name, err)
	}
}

// keyFiles lists the private keys on a pemdir device.
func (f *fleet) keyFiles(device string) []string {
	f.t.Helper()
	m, _ := filepath.Glob(filepath.Join(f.dir, "devices", device, "keys", "*.key"))
	return m
}

// openState opens the fleet's state database (while no certfleet process runs).
func (f *fleet) openState() *state.SQLite {
	f.t.Helper()
	s, err := state.Open(context.Background(), filepath.Join(f.dir, "state.db"))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { s.Close() })
	return s
}

var netDialer = net.Dialer{Timeout: 5 * time.Second}
