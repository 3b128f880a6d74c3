package migrate

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/certfleet/certfleet/core/secret/sopstest"
)

// TestMain builds the certfleet-sops helper: migration encrypts the credentials it finds with sops.
func TestMain(m *testing.M) { sopstest.Main(m) }

// plaintexts are the secrets in the agent fixtures (testdata/plain): none may appear in any file
// migrate writes.
var plaintexts = []string{"citrix-Client-Secret-1", "citrix-Client-Secret-2", "john_1234", "john_jr_1234", "citrix-Creds-Pass-3",
	"gJlQWE56987nBxIqyfa62sZeRtYuIo2BgzEA9UOnlZBhU==", "Ti]hXzuxj.!T,zg!S0rZ0StbwyDlhCP4", "f5-Secret-Pass-9", "f5-Hmac-Key-Secret-0"}

// gnupgHome imports the test PGP key into a fresh GnuPG home and points GNUPGHOME at it.
func gnupgHome(t *testing.T) {
	t.Helper()
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		t.Skip("gpg is not installed (apt-get install -y gnupg)")
	}
	home, err := os.MkdirTemp("", "cfmig")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(home, 0o700)
	t.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		_ = os.RemoveAll(home)
	})
	if out, err := exec.Command(gpg, "--homedir", home, "--batch", "--import", filepath.Join("testdata", "keys", "pgp-test.sec.asc")).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	t.Setenv("GNUPGHOME", home)
}

// migrateFixtures migrates testdata/agents/<agent>, writes the result and loads it as validate
// does, then with every reference resolved.
func migrateFixtures(t *testing.T, agent string) (*Result, *config.Config, string) {
	t.Helper()
	gnupgHome(t)
	ctx := context.Background()
	res, err := Migrate(ctx, Options{From: agent, Inputs: []string{filepath.Join("testdata", "agents", agent)}})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	for name, data := range res.Files {
		p := filepath.Join(out, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, s := range plaintexts {
			if strings.Contains(string(data), s) {
				t.Fatalf("%s holds the plaintext secret %q", name, s)
			}
		}
	}
	if _, _, err := config.Load(out); err != nil {
		t.Fatalf("the migrated configuration does not pass validate: %v\n%s", err, res.Files["certfleet.yaml"])
	}
	resolved, _, err := config.Load(out, config.WithResolver(ctx, &secret.Resolver{BaseDir: out}))
	if err != nil {
		t.Fatalf("the migrated configuration's secrets do not resolve: %v\n%s", err, res.Files["certfleet.yaml"])
	}
	return res, resolved, out
}

func reportHas(t *testing.T, lines []Line, source, text string) {
	t.Helper()
	for _, l := range lines {
		if strings.Contains(l.Source, source) && strings.Contains(l.Target+" "+l.Note, text) {
			return
		}
	}
	t.Errorf("the report has no line for %q with %q", source, text)
}

func TestMigrateCitrix(t *testing.T) {
	res, cfg, _ := migrateFixtures(t, Citrix)
	// scm.yaml: one REST Enrollment issuer per account, secrets re-encrypted.
	def := cfg.Issuers["default"].SCM
	if def.API != "enrollment" || def.BaseURL != "https://customer.enroll.enterprise.sectigo.com" || def.ClientSecret != "citrix-Client-Secret-1" || def.ClientID != "b8923830-11f5-4c34-951b-fc1235634972" {
		t.Fatalf("issuer default: %+v", def)
	}
	if cfg.Issuers["second"].SCM.ClientSecret != "citrix-Client-Secret-2" {
		t.Fatal("issuer second: wrong secret")
	}
	www := cfg.Certificates["example_cert_config"]
	if www.Device != "adc1.example.net" || www.Issuer != "default" || www.Key.Bits != 4096 || www.RenewBefore.Hours() != 30*24 ||
		strings.Join(www.SANs.DNSNames, ",") != "www.example.com,example.com" || len(www.Bindings) != 3 || www.Bindings[0].Name != "vs_name1" || www.Bindings[0].SNI {
		t.Fatalf("certificate www: %+v", www)
	}
	adc1 := cfg.Devices["adc1.example.net"]
	if adc1.Address != "http://adc1.example.net" || !adc1.AllowPlainHTTP || adc1.Credentials.Password != "john_1234" || adc1.Credentials.Username != "admin" {
		t.Fatalf("device adc1: %+v", adc1)
	}
	portal := cfg.Certificates["portal-1"]
	if portal.Key.Type.String() != "ecdsa" || portal.Key.Bits != 256 || !portal.Bindings[0].SNI || portal.Issuer != "second" || portal.RenewBefore.Hours() != 45*24 {
		t.Fatalf("certificate portal: %+v", portal)
	}
	// Credentials file entries by host; verify_ssl: yes, /path.
	adc2, adc3 := cfg.Devices["adc2.example.net"], cfg.Devices["adc3.example.net"]
	if adc2.Credentials.Password != "john_jr_1234" || adc2.TLS.InsecureSkipVerify || adc2.Address != "https://adc2.example.net" {
		t.Fatalf("device adc2: %+v", adc2)
	}
	if adc3.Credentials.Password != "citrix-Creds-Pass-3" || adc3.Credentials.Username != "nsroot" || adc3.Address != "https://adc3.example.net:8443" || adc3.TLS.CABundlePEM == "" {
		t.Fatalf("device adc3: %+v", adc3)
	}
	reportHas(t, res.Report.Mapped, "scm", "re-encrypted with sops")
	reportHas(t, res.Report.NoEquivalent, "example_cert_config: certificates[0].verify_ssl", "no effect with protocol http")
	reportHas(t, res.Report.Decisions, "example_cert_config", "allow_plain_http")
	reportHas(t, res.Report.Decisions, "virtual_servers", "gateway-vserver")
}

func TestMigratePaloAlto(t *testing.T) {
	res, cfg, _ := migrateFixtures(t, PaloAlto)
	iss := cfg.Issuers["SCMDV"].SCM
	if iss.API != "enrollment" || iss.ClientSecret != "Ti]hXzuxj.!T,zg!S0rZ0StbwyDlhCP4" || iss.InitialDelay.Seconds() != 1 || iss.BaseURL != "https://customer.enroll.enterprise.sectigo.com" {
		t.Fatalf("issuer SCMDV: %+v", iss)
	}
	fw := cfg.Devices["paloalto_config"]
	if fw.Plugin != "paloalto-panos" || fw.Address != "https://fw1.example.net" || fw.Credentials.APIKey != "gJlQWE56987nBxIqyfa62sZeRtYuIo2BgzEA9UOnlZBhU==" || fw.Options["commit_admin"] != "admin" {
		t.Fatalf("device: %+v", fw)
	}
	if cfg.Logging.Level != "debug" {
		t.Fatalf("logging: %+v", cfg.Logging)
	}
	// The certificate waits for its bindings, commented out, with everything else mapped.
	conf := string(res.Files["certfleet.yaml"])
	for _, want := range []string{"#     device: paloalto_config", "#       common_name: fw.example.com", "#         - api.fw.example.com", "#       bits: 3072",
		"#       external_requester: pki@example.com,ops@example.com", "#       comments: Certificate for Palo Alto Firewall", "#       country: CA", "#       email: john@example.com"} {
		if !strings.Contains(conf, want) {
			t.Errorf("certfleet.yaml lacks %q:\n%s", want, conf)
		}
	}
	reportHas(t, res.Report.Mapped, "sectigo_credentials", "was plain in sectigo_credentials; encrypted with sops")
	reportHas(t, res.Report.Decisions, "certificate", "binds it nowhere")
	reportHas(t, res.Report.Decisions, "sectigo_ssl_cert_type: DV", "fixes the profile")
	reportHas(t, res.Report.NoEquivalent, "config: sectigo_log_path", "logs to stderr")
	reportHas(t, res.Report.NoEquivalent, "fw_paloalto_config: paloalto_commit_description", "describes each commit")
}

func TestMigrateF5(t *testing.T) {
	res, cfg, _ := migrateFixtures(t, F5)
	acme := cfg.Issuers["acme-kid-123"].ACME
	if acme.DirectoryURL != "https://acme.sectigo.com/v2/OV" || acme.EAB.KeyID != "kid-123" || acme.EAB.HMACKey != "f5-Hmac-Key-Secret-0" || acme.Contact != "pki@example.com" {
		t.Fatalf("issuer: %+v", acme)
	}
	lb := cfg.Devices["bigip1.example.net"]
	if lb.Plugin != "f5-bigip" || lb.Credentials.Password != "f5-Secret-Pass-9" || lb.Credentials.APIKey != "" || lb.Options["pci_mode"] != true || lb.Options["partition"] != "Common" {
		t.Fatalf("device: %+v", lb)
	}
	shop := cfg.Certificates["shop"]
	if shop.Key.Bits != 384 || shop.RenewBefore.Hours() != 21*24 || shop.Bindings[0].Kind != "virtual" || shop.Bindings[0].Name != "vs_shop_443" || shop.Bindings[0].Options["profile"] != "shop_clientssl" ||
		strings.Join(shop.SANs.DNSNames, ",") != "shop.example.com,www.shop.example.com" {
		t.Fatalf("certificate: %+v", shop)
	}
	reportHas(t, res.Report.Mapped, "PCI", "pci_mode: true")
}

// A plain secret with no recipient anywhere is never written: it becomes an ${env:} reference and
// a decision.
func TestMigratePlainSecretWithoutRecipient(t *testing.T) {
	res, err := Migrate(context.Background(), Options{From: Citrix, Inputs: []string{filepath.Join("testdata", "plain", "citrix", "example_cert_config.yaml")}})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range res.Files {
		if strings.Contains(string(data), "john_1234") {
			t.Fatalf("%s holds the plaintext password", name)
		}
	}
	if !strings.Contains(string(res.Files["certfleet.yaml"]), "${env:CERTFLEET_ADC1_EXAMPLE_NET_PASSWORD}") {
		t.Fatalf("no env reference:\n%s", res.Files["certfleet.yaml"])
	}
	reportHas(t, res.Report.Decisions, "password", "no recipient")
}

func TestMigrateBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: v1\ncertificates:\n  - common_name: a.example.com\n    host: adc\n    key_type: dsa\n    virtual_servers: [{name: vs}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Migrate(context.Background(), Options{From: Citrix, Inputs: []string{bad}})
	if err == nil || !strings.Contains(err.Error(), "bad.yaml") || !strings.Contains(err.Error(), "key_type") || !strings.Contains(err.Error(), "rsa or ecdsa") {
		t.Fatalf("error %v: want one naming the file, the field and the fix", err)
	}
}
