package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/issuer/acme/pebblesim"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/paloalto-panos/panossim"
	"gopkg.in/yaml.v3"
)

// planIsClean fails the test unless `validate` passes and `plan` decides an action for every
// certificate without a blocked or unknown one.
func planIsClean(t *testing.T, f *fleet) {
	t.Helper()
	res := f.certfleet(nil, "validate")
	if res.code != 0 || !strings.Contains(res.stdout, "configuration OK") || !strings.Contains(res.stdout, "checked against") {
		t.Fatalf("validate: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	res = f.certfleet(nil, "plan", "--output", "json")
	if res.code != 0 {
		t.Fatalf("plan: exit %d\n%s", res.code, res.stderr)
	}
	var plan engine.Plan
	if err := yaml.Unmarshal([]byte(res.stdout), &plan); err != nil {
		t.Fatalf("plan output: %v", err)
	}
	if len(plan.Items) == 0 {
		t.Fatal("plan has no items")
	}
	for _, it := range plan.Items {
		if it.Action == engine.ActionBlocked || it.Action == engine.ActionUnknown || it.Error != "" {
			t.Errorf("plan: %s is %s: %s %s", it.Certificate, it.Action, it.Reason, it.Error)
		}
	}
}

// TestExampleConfigurationPassesValidateAndPlan takes examples/certfleet.yaml as shipped and
// points only its addresses, trust bundles and credentials at the simulators: every certificate,
// binding, option and issuer option stays as a new user reads it.
func TestExampleConfigurationPassesValidateAndPlan(t *testing.T) {
	raw, err := os.ReadFile("../examples/certfleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bundle := func(name, pem string) string {
		p := filepath.Join(dir, name+".pem")
		if err := os.WriteFile(p, []byte(pem), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	section := func(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

	scmCfg := scmsim.DefaultConfig()
	scm, err := scmsim.New(scmCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := scm.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(scm.Close)
	pebble, err := pebblesim.Start(pebblesim.Config{ValidityDays: 90})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pebble.Close)
	kid, hmac := pebble.EAB()
	issuers := section(doc, "issuers")
	s := section(section(issuers, "sectigo"), "scm")
	s["base_url"], s["token_url"], s["client_id"] = scm.URL(), scm.TokenURL(), "certfleet-sim"
	delete(s, "customer_uri")
	s["client_secret"], s["org_id"] = "${env:SCM_CLIENT_SECRET}", 1234
	s["tls"] = map[string]any{"ca_bundle": bundle("scm", scm.TLSCACertPEM())}
	rest := section(section(issuers, "sectigo-rest"), "scm")
	rest["base_url"], rest["client_id"], rest["client_secret"] = scm.URL(), "certfleet-sim", "${env:SCM_CLIENT_SECRET}"
	rest["tls"] = map[string]any{"ca_bundle": bundle("scm-rest", scm.TLSCACertPEM())}
	lookup := section(rest, "lookup")
	lookup["base_url"], lookup["token_url"] = scm.URL(), scm.TokenURL()
	lookup["client_id"], lookup["org_id"] = "certfleet-sim", 1234
	lookup["tls"] = map[string]any{"ca_bundle": bundle("scm-lookup", scm.TLSCACertPEM())}
	a := section(section(issuers, "sectigo-acme"), "acme")
	a["directory_url"], a["eab"] = pebble.DirectoryURL(), map[string]any{"key_id": kid, "hmac_key": "${env:SECTIGO_EAB_HMAC}"}
	a["tls"] = map[string]any{"ca_bundle": bundle("pebble", pebble.TLSCACertPEM())}

	nitroCfg := nitrosim.DefaultConfig()
	nitro, err := nitrosim.New(nitroCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := nitro.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nitro.Close)
	panosCfg := panossim.DefaultConfig()
	panosCfg.Profiles = append(panosCfg.Profiles, panossim.ProfileSpec{Name: "portal-profile", Vsys: "vsys1", Certificate: "sim-factory-gp"})
	panos, err := panossim.New(panosCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := panos.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { panos.Close() })
	bigipCfg := bigipsim.DefaultConfig()
	bigipCfg.Virtuals = append(bigipCfg.Virtuals, bigipsim.VirtualSpec{Name: "vs_shop_443", Profiles: []string{"/Common/tcp", "/Common/http"}})
	bigip, err := bigipsim.New(bigipCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := bigip.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bigip.Close() })

	devices := section(doc, "devices")
	point := func(name, address, caPEM string, creds map[string]any) {
		d := section(devices, name)
		d["address"], d["tls"] = address, map[string]any{"ca_bundle": bundle(name, caPEM)}
		if creds != nil {
			d["credentials"] = creds
		}
	}
	point("adc1", nitro.URL(), nitro.CACertPEM(), map[string]any{"username": nitroCfg.Username, "password": "${env:ADC1_PASSWORD}"})
	point("fw1", panos.URL(), panos.CACertPEM(), map[string]any{"username": "certfleet", "password": "${env:FW1_PASSWORD}"})
	point("lb1", bigip.URL(), bigip.CACertPEM(), nil)
	web1 := section(devices, "web1")
	web1["address"] = filepath.Join(dir, "web1")
	if err := os.MkdirAll(web1["address"].(string), 0o700); err != nil {
		t.Fatal(err)
	}
	section(doc, "state")["path"] = filepath.Join(dir, "state.db")
	delete(doc, "plugins")

	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, dir: dir, config: filepath.Join(dir, "certfleet.yaml"), env: []string{
		"SCM_CLIENT_SECRET=" + scmCfg.Clients["certfleet-sim"], "SECTIGO_EAB_KID=" + kid, "SECTIGO_EAB_HMAC=" + hmac,
		"ADC1_PASSWORD=" + nitroCfg.Password, "FW1_PASSWORD=certfleet-sim-password",
		"LB1_PASSWORD=certfleet-sim-password", "LB1_PCI_SECRET=example-pci-secret-0123456789abcdef",
	}}
	if err := os.WriteFile(f.config, out, 0o600); err != nil {
		t.Fatal(err)
	}
	planIsClean(t, f)
}

// TestSimulatorConfigurationsPassValidateAndPlan runs certfleet-sim with each CA and checks that
// the configuration it writes passes validate and plan.
func TestSimulatorConfigurationsPassValidateAndPlan(t *testing.T) {
	for _, ca := range []string{"scm", "acme"} {
		t.Run(ca, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sim := exec.CommandContext(ctx, filepath.Join(binDir, "certfleet-sim"), "--out", dir, "--ca", ca, "--ready-file", filepath.Join(dir, "ready.json"))
			sim.Stdout, sim.Stderr = nil, os.Stderr
			if err := sim.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cancel(); _ = sim.Wait() }()
			deadline := time.Now().Add(60 * time.Second)
			for {
				if st, err := os.Stat(filepath.Join(dir, "ready.json")); err == nil && st.Size() > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("certfleet-sim did not get ready")
				}
				time.Sleep(100 * time.Millisecond)
			}
			f := &fleet{t: t, dir: dir, config: filepath.Join(dir, "certfleet.yaml"), env: readSimEnv(t, filepath.Join(dir, "sim.env"))}
			planIsClean(t, f)
		})
	}
}

// readSimEnv reads the `export NAME="value"` lines certfleet-sim writes.
func readSimEnv(t *testing.T, path string) []string {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var env []string
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		name, value, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if !ok {
			continue
		}
		if v, err := strconv.Unquote(value); err == nil {
			value = v
		}
		env = append(env, name+"="+value)
	}
	return env
}
