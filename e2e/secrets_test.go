package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/core/issuer/acme/pebblesim"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
)

const testAgeRecipient = "age1gn8py07qstr5j04ta5zwsqr6vlydgccz7xyddwlyndyzv35fyews3mfzah"

func randomSecret(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "s3cr3t-" + hex.EncodeToString(b)
}

// TestEncryptedSecretsNeverLeak runs against the simulators with every secret in sops files —
// the device password inside the partly encrypted configuration itself, the EAB HMAC key in a
// separate encrypted file referenced with ${sops:...} — at debug level, then scans every log,
// output, the state database and the pins file for each secret value.
func TestEncryptedSecretsNeverLeak(t *testing.T) {
	ctx := context.Background()
	adcPassword := randomSecret(t)
	simCfg := nitrosim.DefaultConfig()
	simCfg.Password = adcPassword
	sim, err := nitrosim.New(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	pebble, err := pebblesim.Start(pebblesim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pebble.Close)
	kid, hmac := pebble.EAB()

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// certfleet finds certfleet-sops beside itself; this process, which encrypts the files, is told.
	t.Setenv(secret.SopsHelperEnv, filepath.Join(binDir, secret.SopsHelperName))
	encrypt := func(name, plain, regex string) {
		enc, err := secret.Encrypt(ctx, []byte(plain), "yaml", secret.EncryptOptions{AgeRecipients: []string{testAgeRecipient}, EncryptedRegex: regex})
		if err != nil {
			t.Fatal(err)
		}
		write(name, string(enc))
	}
	adcBundle := write("adc-tls.pem", sim.CACertPEM())
	pebbleBundle := write("pebble-tls.pem", pebble.TLSCACertPEM())
	encrypt("ca-secrets.yaml", fmt.Sprintf("acme:\n  eab_hmac: %s\n", hmac), "")
	encrypt("certfleet.yaml", fmt.Sprintf(`version: v1
state: {path: state.db}
defaults:
  issuer: ca
  key: {type: ecdsa, bits: 256}
  subject: {organization: certfleet e2e, locality: Leeds, state: West Yorkshire, country: GB}
issuers:
  ca:
    type: acme
    acme:
      directory_url: %s
      eab: {key_id: %s, hmac_key: "${sops:ca-secrets.yaml#acme.eab_hmac}"}
      tls: {ca_bundle: %s}
devices:
  adc1:
    plugin: citrix-nitro
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: %s, password: %s}
certificates:
  www:
    device: adc1
    sans: {dns: [www.example.com]}
    bindings: [{kind: lb-vserver, name: vs_www_443}]
`, pebble.DirectoryURL(), kid, pebbleBundle, sim.URL(), adcBundle, simCfg.Username, adcPassword), "^password$")

	raw, _ := os.ReadFile(filepath.Join(dir, "certfleet.yaml"))
	if bytes.Contains(raw, []byte(adcPassword)) {
		t.Fatal("the configuration on disk holds the password in clear")
	}
	keyFile, err := filepath.Abs("../core/secret/testdata/keys/age-test.txt")
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, dir: dir, config: filepath.Join(dir, "certfleet.yaml"), env: []string{"SOPS_AGE_KEY_FILE=" + keyFile}}

	var outputs []string
	for _, args := range [][]string{{"validate"}, {"secrets", "check"}, {"plan"}, {"run"}, {"run", "--force"}, {"status", "--output", "json"}} {
		res := f.certfleet(nil, args...)
		if res.code != 0 {
			t.Fatalf("certfleet %v: exit %d\n%s", args, res.code, res.stderr)
		}
		// The password is sops-encrypted in the file: it is not "in plain text".
		if strings.Contains(res.stderr, "in plain text") {
			t.Errorf("certfleet %v warns falsely about a plain text secret:\n%s", args, res.stderr)
		}
		outputs = append(outputs, res.stdout, res.stderr)
	}
	// A failing call whose error text could echo credentials: a wrong password in a run.
	sim.FailNext("POST login", 1, 401, 354)
	res := f.certfleet(nil, "run", "--force")
	outputs = append(outputs, res.stdout, res.stderr)

	st := f.openState()
	deployments, _ := st.Deployments(ctx)
	if deployments["www"].Fingerprint == "" {
		t.Fatal("nothing was deployed")
	}
	last, _ := st.LastResults(ctx)
	if last["www"].Outcome == state.OutcomeDeployed && res.code != 0 {
		t.Fatal("inconsistent outcome")
	}
	st.Close()
	for _, name := range []string{"state.db", "state.db-wal", "plugins.lock.json"} {
		if data, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			outputs = append(outputs, string(data))
		}
	}
	debugLines := 0
	for _, o := range outputs {
		debugLines += strings.Count(o, "[DEBUG]")
	}
	if debugLines < 20 {
		t.Fatalf("only %d debug lines captured: the scan would prove little", debugLines)
	}
	for what, value := range map[string]string{"device password": adcPassword, "EAB HMAC key": hmac} {
		for i, o := range outputs {
			if strings.Contains(o, value) {
				t.Errorf("the %s appears in captured output %d:\n%s", what, i, excerpt(o, value))
			}
		}
	}
}

func excerpt(s, needle string) string {
	i := strings.Index(s, needle)
	start, end := max(0, i-200), min(len(s), i+len(needle)+100)
	return s[start:end]
}
