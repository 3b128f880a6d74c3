package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/inventory"
	"github.com/certfleet/certfleet/core/issuer/acme/pebblesim"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/core/report"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/paloalto-panos/panossim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// sopsCLI is the real sops binary (`make tools` puts it in .tools/bin).
func sopsCLI(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs(filepath.Join("..", ".tools", "bin", "sops")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("sops")
	if err != nil {
		t.Skip("the sops CLI is not installed (make tools)")
	}
	return p
}

// agentGnuPG makes a GnuPG home with a key made the way the agents' manuals say
// (gpg --batch --passphrase ” --quick-gen-key USER default default) and returns it and the key's
// fingerprint.
func agentGnuPG(t *testing.T) (home, fpr string) {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg is not installed (apt-get install -y gnupg)")
	}
	home, err := os.MkdirTemp("", "cfag")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(home, 0o700)
	t.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		_ = os.RemoveAll(home)
	})
	gpg := func(args ...string) string {
		out, err := exec.Command("gpg", append([]string{"--homedir", home, "--batch"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	gpg("--passphrase", "", "--quick-gen-key", "sectigo-agent", "default", "default")
	for _, line := range strings.Split(gpg("--list-keys", "--with-colons"), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			return home, f[9]
		}
	}
	t.Fatal("no fingerprint in gpg --list-keys")
	return "", ""
}

// agentCertificate installs on the ADC, as the Citrix agent leaves it, a certkey for key/names
// issued earlier, bound to vs.
func agentCertificate(t *testing.T, sim *nitrosim.Sim, ca *conformance.TestCA, name, vs string, names []string, validity time.Duration) *x509.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Sign(key.Public(), pkix.Name{CommonName: names[0], Organization: []string{"Validated Org"}}, names, nil, validity)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.AddAdminCertKey(nitrosim.AdminCertKey{Name: name, CertFile: name + ".crt", KeyFile: name + ".key",
		CertPEM: []byte(sdk.EncodeCertificatePEM(leaf)), KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		BindTo: vs}); err != nil {
		t.Fatal(err)
	}
	return leaf
}

// TestMigrateAdoptInventoryReport: an ADC with certificates a Sectigo Citrix agent left (and one
// an administrator added), the agent's scm.yaml and certificate profile encrypted with sops and a
// PGP key as its manual says → migrate → plan adopts → run records it with zero CA orders →
// inventory and the HTML report show the unmanaged one → a forced renewal orders once and leaves
// the adopted object alone.
func TestMigrateAdoptInventoryReport(t *testing.T) {
	sops := sopsCLI(t)
	gnupg, fpr := agentGnuPG(t)
	scm, err := scmsim.New(scmsim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := scm.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(scm.Close)
	adcCfg := nitrosim.DefaultConfig()
	adc, err := nitrosim.New(adcCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := adc.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adc.Close)
	for _, vs := range []string{"vs_www", "vs_api", "vs_legacy"} {
		if err := adc.AddVServer(nitrosim.VServer{Name: vs, Kind: nitrosim.KindLB}); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	agentLeaf := agentCertificate(t, adc, ca, "www.example.com", "vs_www", []string{"www.example.com", "example.com"}, 200*24*time.Hour)
	agentCertificate(t, adc, ca, "api.example.com", "vs_api", []string{"api.example.com"}, 150*24*time.Hour)
	agentCertificate(t, adc, ca, "legacy_admin", "vs_legacy", []string{"legacy.example.com"}, 20*24*time.Hour)

	dir := t.TempDir()
	bundle := filepath.Join(dir, "trust.pem")
	if err := os.WriteFile(bundle, []byte(adc.CACertPEM()+scm.TLSCACertPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	restSecret := scmsim.DefaultConfig().EnrollAccounts["certfleet-sim-rest"].Secret
	agent := filepath.Join(dir, "sectigo")
	if err := os.MkdirAll(agent, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string, sopsArgs ...string) {
		p := filepath.Join(agent, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sops, append(append([]string{"--encrypt", "--in-place", "--pgp", fpr}, sopsArgs...), p)...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+gnupg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sops --encrypt %s: %v\n%s", name, err, out)
		}
	}
	write("scm.yaml", fmt.Sprintf("default:\n  url: %q\n  token_url: %q\n  client_id: certfleet-sim-rest\n  client_secret: %q\n", scm.EnrollURL(), scm.TokenURL(), restSecret))
	profile := func(file, cn, sans, vs string) {
		write(file, fmt.Sprintf(`version: v1
certificates:
  - common_name: %s
    subject_alt_names: [%s]
    key_type: rsa
    key_size: 2048
    expiry_window: 30
    enrollment_profile: default
    protocol: https
    host: 127.0.0.1
    port: %s
    verify_ssl: %s
    username: %s
    password: %s
    virtual_servers:
      - name: %s
        sni: no
`, cn, sans, strings.TrimPrefix(adc.Address(), "127.0.0.1:"), bundle, adcCfg.Username, adcCfg.Password, vs), "--encrypted-regex", "^password$")
	}
	profile("www.yaml", "www.example.com", "example.com", "vs_www")
	profile("api.yaml", "api.example.com", "", "vs_api")

	out := filepath.Join(dir, "certfleet")
	f := &fleet{t: t, dir: out, config: out, env: []string{"GNUPGHOME=" + gnupg, "SSL_CERT_FILE=" + bundle}}
	res := f.certfleet(nil, "migrate", "--from", "citrix", "--out", out, "--state", "state.db", agent)
	if res.code != 0 || !strings.Contains(res.stdout, "passes validate") {
		t.Fatalf("migrate: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	scanForSecrets(t, out, restSecret, adcCfg.Password)
	if strings.Contains(res.stdout+res.stderr, restSecret) || strings.Contains(res.stdout+res.stderr, adcCfg.Password) {
		t.Fatal("migrate printed a secret")
	}
	if !strings.Contains(res.stdout, "defaults.subject") {
		t.Fatalf("the report does not ask for the subject NITRO's CSRs need:\n%s", res.stdout)
	}
	// The administrator lets certfleet remove the agent's objects of api once it has replaced them.
	conf, err := os.ReadFile(filepath.Join(out, "certfleet.yaml"))
	if err != nil || !bytes.Contains(conf, []byte("\n  api:\n")) {
		t.Fatalf("certfleet.yaml: %v\n%s", err, conf)
	}
	if err := os.WriteFile(filepath.Join(out, "certfleet.yaml"), bytes.Replace(conf, []byte("\n  api:\n"), []byte("\n  api:\n    cleanup_adopted: true\n"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	// The administrator acts on that decision.
	conf, err = os.ReadFile(filepath.Join(out, "certfleet.yaml"))
	if err != nil || !bytes.Contains(conf, []byte("\ndefaults:\n  issuer: default\n")) {
		t.Fatalf("certfleet.yaml: %v\n%s", err, conf)
	}
	conf = bytes.Replace(conf, []byte("\ndefaults:\n"), []byte("\ndefaults:\n  subject: {organization: Example Ltd, state: West Yorkshire, country: GB}\n"), 1)
	if err := os.WriteFile(filepath.Join(out, "certfleet.yaml"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	if res := f.certfleet(nil, "validate"); res.code != 0 {
		t.Fatalf("validate: exit %d\n%s", res.code, res.stderr)
	}

	planOf := func(args ...string) engine.Plan {
		res := f.certfleet(nil, append([]string{"plan", "--output", "json"}, args...)...)
		var p engine.Plan
		if err := json.Unmarshal([]byte(res.stdout), &p); err != nil || res.code != 0 {
			t.Fatalf("plan %v: exit %d, %v\n%s", args, res.code, err, res.stderr)
		}
		return p
	}
	if p := planOf(); len(p.Items) != 2 || p.Items[0].Action != engine.ActionAdopt || p.Items[1].Action != engine.ActionAdopt {
		t.Fatalf("plan: %+v, want adopt twice", p.Items)
	}
	if p := planOf("--no-adopt"); p.Items[0].Action != engine.ActionEnroll || p.Items[1].Action != engine.ActionEnroll {
		t.Fatalf("plan --no-adopt: %+v, want enroll", p.Items)
	}

	report1, res := f.run(nil)
	if res.code != 0 || outcomes(report1)["www"] != state.OutcomeAdopted || outcomes(report1)["api"] != state.OutcomeAdopted || len(scm.Orders()) != 0 {
		t.Fatalf("first run: exit %d, %+v, %d CA orders (want adopted, none)", res.code, report1.Results, len(scm.Orders()))
	}
	if report2, res := f.run(nil); res.code != 0 || outcomes(report2)["www"] != state.OutcomeUnchanged || len(scm.Orders()) != 0 {
		t.Fatalf("second run: exit %d, %+v, %d CA orders", res.code, report2.Results, len(scm.Orders()))
	}

	// inventory: the adopted certificate is managed, the administrator's is not.
	var fleetInv inventory.Fleet
	res = f.certfleet(nil, "inventory", "--output", "json")
	if err := json.Unmarshal([]byte(res.stdout), &fleetInv); err != nil || res.code != 0 {
		t.Fatalf("inventory: exit %d, %v\n%s", res.code, err, res.stderr)
	}
	managed := map[string]bool{}
	for _, r := range fleetInv.Rows {
		managed[r.Object] = r.Managed
	}
	if !managed["www.example.com"] || !managed["api.example.com"] || managed["legacy_admin"] {
		t.Fatalf("inventory managed flags: %v", managed)
	}
	res = f.certfleet(nil, "inventory", "--unmanaged", "--expiring", "30d", "--output", "csv")
	if res.code != 0 || !strings.Contains(res.stdout, "adc-") && !strings.Contains(res.stdout, "legacy_admin") || strings.Contains(res.stdout, "www.example.com,") {
		t.Fatalf("inventory --unmanaged --expiring 30d: exit %d\n%s", res.code, res.stdout)
	}
	res = f.certfleet(nil, "inventory", "--unmanaged", "--suggest")
	for _, want := range []string{"legacy_admin:", "kind: lb-vserver", "name: vs_legacy", "- legacy.example.com", "bits: 2048"} {
		if !strings.Contains(res.stdout, want) {
			t.Fatalf("inventory --suggest lacks %q:\n%s", want, res.stdout)
		}
	}

	html := filepath.Join(dir, "fleet.html")
	if res := f.certfleet(nil, "report", "--html", html); res.code != 0 {
		t.Fatalf("report: exit %d\n%s", res.code, res.stderr)
	}
	checkReportInBrowser(t, html, []string{"www.example.com", "legacy_admin"})

	// A forced renewal orders once, serves the new certificate and keeps the agent's object.
	report3, res := f.run(nil, "--force")
	if res.code != 0 || outcomes(report3)["www"] != state.OutcomeDeployed || outcomes(report3)["api"] != state.OutcomeDeployed || len(scm.Orders()) != 2 {
		t.Fatalf("forced renewal: exit %d, %+v, %d CA orders", res.code, report3.Results, len(scm.Orders()))
	}
	chain, err := served(adc.ServedAddress("vs_www"), "www.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if chain[0].Equal(agentLeaf) || (!chain[0].Equal(scm.Orders()[0].Cert) && !chain[0].Equal(scm.Orders()[1].Cert)) {
		t.Fatal("vs_www does not serve the renewed certificate")
	}
	verifyChain(t, chain, scm.RootPEM(), "www.example.com")
	if report4, res := f.run(nil); res.code != 0 || outcomes(report4)["www"] != state.OutcomeUnchanged || len(scm.Orders()) != 2 {
		t.Fatalf("after renewal: exit %d, %+v", res.code, report4.Results)
	}
	// The agent's files of www stay (adopted, not certfleet's); those of api went, as allowed.
	files := strings.Join(adc.Files(""), " ")
	if !strings.Contains(files, "www.example.com.key") || !strings.Contains(files, "www.example.com.crt") {
		t.Fatalf("the adopted www objects were removed: %s", files)
	}
	if strings.Contains(files, "api.example.com.key") {
		t.Fatalf("the adopted api objects stayed although cleanup_adopted is set: %s", files)
	}
	st := f.openState()
	d, ok, err := st.Deployment(context.Background(), "www")
	if err != nil || !ok || d.Adopted {
		t.Fatalf("deployment after renewal: %+v, %v", d, err)
	}
}

// scanForSecrets fails when any file under dir holds one of the secrets.
func scanForSecrets(t *testing.T, dir string, secrets ...string) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds a plaintext secret", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkReportInBrowser opens the report in headless Chromium: the DOM it builds must hold a
// timeline bar per certificate, and the screenshot must show bars in the managed and expiring
// colours. Without Chromium the check is skipped (apt-get install -y chromium).
func checkReportInBrowser(t *testing.T, html string, objects []string) {
	t.Helper()
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		if os.Getenv("CERTFLEET_REQUIRE_BROWSER") != "" {
			t.Fatal("no Chromium on PATH (apt-get install -y chromium) and CERTFLEET_REQUIRE_BROWSER is set")
		}
		t.Log("no Chromium on PATH: the report is not checked in a browser (core/report's test parses it)")
		return
	}
	profile := t.TempDir()
	run := func(args ...string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
			"--disable-sync", "--no-first-run", "--user-data-dir=" + profile, "--window-size=1200,900"}
		cmd := exec.CommandContext(ctx, browser, append(base, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
		}
		return stdout.Bytes()
	}
	dom := string(run("--dump-dom", "file://"+html))
	if !strings.Contains(dom, `<svg id="timeline"`) || !strings.Contains(dom, `id="today"`) {
		t.Fatalf("the browser's DOM has no timeline:\n%s", dom)
	}
	for _, o := range objects {
		if !strings.Contains(dom, `data-object="`+o+`"`) {
			t.Fatalf("the browser's DOM has no timeline bar for %s", o)
		}
	}
	shot := filepath.Join(t.TempDir(), "report.png")
	run("--screenshot="+shot, "file://"+html)
	fh, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	count := map[string]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			hex := fmt.Sprintf("#%02x%02x%02x", r>>8, g>>8, bl>>8)
			count[hex]++
		}
	}
	// A bar is at least 2 px wide and 14 px high; the legend swatches alone are 14x10.
	if count[report.ColourManaged] < 200 || count[report.ColourExpiring] < 2*14 {
		t.Fatalf("the screenshot shows no timeline bars: %d managed, %d expiring pixels", count[report.ColourManaged], count[report.ColourExpiring])
	}
	t.Logf("report rendered by %s: %d managed and %d expiring bar pixels", filepath.Base(browser), count[report.ColourManaged], count[report.ColourExpiring])
}

// TestMigratePaloAltoAdoptThroughSuggest: the Palo Alto agent's files (config.yaml, a certificate
// profile, an fw_ profile with its API key sops-encrypted, sectigo_credentials.yaml plain and
// encrypted on migration to the config's sectigo_gnu_key) → migrate, which cannot know where the
// agent's certificate is used → `inventory --unmanaged --suggest` prints it with the SSL/TLS
// service profile that serves it → with that snippet, plan and run adopt it without a CA order.
func TestMigratePaloAltoAdoptThroughSuggest(t *testing.T) {
	sops := sopsCLI(t)
	gnupg, fpr := agentGnuPG(t)
	scm, err := scmsim.New(scmsim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := scm.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(scm.Close)
	// What the agent left: the certificate named after its profile file, which an administrator
	// then chose for an SSL/TLS service profile.
	fwCfg := panossim.DefaultConfig()
	fwCfg.Certificates = append(fwCfg.Certificates, panossim.CertSpec{Name: "fw-web", CommonName: "fw.example.com"})
	fwCfg.Profiles = append(fwCfg.Profiles, panossim.ProfileSpec{Name: "fw-tls", Certificate: "fw-web"})
	fw, err := panossim.New(fwCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	apiKey, err := fw.IssueKey("certfleet")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bundle := filepath.Join(dir, "trust.pem")
	if err := os.WriteFile(bundle, []byte(fw.CACertPEM()+scm.TLSCACertPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	restSecret := scmsim.DefaultConfig().EnrollAccounts["certfleet-sim-rest"].Secret
	agent := filepath.Join(dir, "profiles")
	if err := os.MkdirAll(agent, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string, sopsArgs ...string) {
		p := filepath.Join(agent, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if sopsArgs == nil {
			return
		}
		cmd := exec.Command(sops, append(append([]string{"--encrypt", "--in-place", "--pgp", fpr}, sopsArgs...), p)...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+gnupg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sops --encrypt %s: %v\n%s", name, err, out)
		}
	}
	write("config.yaml", fmt.Sprintf("sectigo_log_file : \"sectigo_pycert.log\"\nsectigo_log_path : \"/opt/sectigo/paloaltowf/logs\"\ncert_profile_path : %q\nsectigo_scm_url : %q\nsectigo_log_level : debug\nsectigo_log_size_mb : 1\nSectigo_logger_count : 10\nsectigo_sleep_download : 1\nsectigo_encrypt_credentials : True\nsectigo_gnu_key : %q\n", agent, scm.EnrollURL(), fpr))
	write("sectigo_credentials.yaml", fmt.Sprintf("SCMDV:\n    sectigo_cm_user_id      : \"certfleet-sim-rest\"\n    sectigo_cm_user_secret  : %q\n    token_url: %q\n", restSecret, scm.TokenURL()))
	write("fw_web.yaml", fmt.Sprintf("paloalto_url : %q\npaloalto_api_key : %q\npaloalto_commit_description : \"Sectigo Palo Alto commit\"\npaloalto_commit_user : \"certfleet\"\n", fw.Address(), apiKey), "--encrypted-regex", "^paloalto_api_key$")
	write("fw-web.yaml", `paloalto_fw_profile: "fw_web"
scm_credential_detail : "SCMDV"
sectigo_ssl_cert_type: DV
sectigo_ssl_cert_comments: Certificate for Palo Alto Firewall
sectigo_csr_domain: "fw.example.com"
sectigo_csr_country: "CA"
sectigo_csr_state: "ON"
sectigo_csr_location: "Ottawa"
sectigo_csr_organization: "JohnDoe"
sectigo_csr_key_type: "EC"
sectigo_csr_key_size: "256"
sectigo_force_renewal: False
sectigo_expiry_window: 30
sectigo_auto_renew: true
`)
	out := filepath.Join(dir, "certfleet")
	f := &fleet{t: t, dir: out, config: out, env: []string{"GNUPGHOME=" + gnupg, "SSL_CERT_FILE=" + bundle}}
	res := f.certfleet(nil, "migrate", "--from", "paloalto", "--out", out, "--state", "state.db", filepath.Join(agent, "config.yaml"))
	if res.code != 0 || !strings.Contains(res.stdout, "passes validate") || !strings.Contains(res.stdout, "binds it nowhere") {
		t.Fatalf("migrate: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	scanForSecrets(t, out, restSecret, apiKey)

	res = f.certfleet(nil, "inventory", "--unmanaged", "--suggest")
	if res.code != 0 || !strings.Contains(res.stdout, "fw-web:") || !strings.Contains(res.stdout, "kind: ssl-tls-service-profile") || !strings.Contains(res.stdout, "name: fw-tls") {
		t.Fatalf("inventory --suggest: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if err := os.WriteFile(filepath.Join(out, "adopted.yaml"), []byte("version: v1\n"+res.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	report1, res := f.run(nil)
	if res.code != 0 || outcomes(report1)["fw-web"] != state.OutcomeAdopted || len(scm.Orders()) != 0 {
		t.Fatalf("run: exit %d, %+v, %d CA orders (want adopted, none)", res.code, report1.Results, len(scm.Orders()))
	}
	if len(fw.Commits()) != 0 {
		t.Fatalf("adoption committed on the firewall: %+v", fw.Commits())
	}
}

// TestMigrateF5AdoptsAgentPCICertificate: the F5 agent's YAML in /etc/sectigo (BIG-IP login,
// Sectigo ACME server and EAB account, names, key, virtual server and client-ssl profile),
// sops-encrypted → migrate → plan adopts the password-protected pair the agent left on vs_legacy →
// run records it with zero ACME orders and changes nothing on the BIG-IP.
func TestMigrateF5AdoptsAgentPCICertificate(t *testing.T) {
	sops := sopsCLI(t)
	gnupg, fpr := agentGnuPG(t)
	pebble, err := pebblesim.Start(pebblesim.Config{ValidityDays: 90})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pebble.Close)
	lb, err := bigipsim.New(bigipsim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := lb.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lb.Close() })
	for _, step := range []error{
		lb.AddKeyPair(bigipsim.KeyPairSpec{Key: "legacy.example.com.key", Cert: "legacy.example.com.crt", CommonName: "legacy.example.com", Passphrase: "sectigo-agent-random-passphrase"}),
		lb.AddClientSSLProfile(bigipsim.ProfileSpec{Name: "legacy.example.com_clientssl",
			Entries: []bigipsim.ProfileEntry{{Name: "default", Cert: "/Common/legacy.example.com.crt", Key: "/Common/legacy.example.com.key"}}}),
		lb.AddVirtual(bigipsim.VirtualSpec{Name: "vs_legacy", Profiles: []string{"/Common/tcp", "/Common/legacy.example.com_clientssl"}}),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	entries := lb.ProfileEntries("legacy.example.com_clientssl")
	dir := t.TempDir()
	bundle := filepath.Join(dir, "trust.pem")
	if err := os.WriteFile(bundle, []byte(lb.CACertPEM()+pebble.TLSCACertPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	kid, hmac := pebble.EAB()
	etc := filepath.Join(dir, "etc-sectigo")
	if err := os.MkdirAll(filepath.Join(etc, "status"), 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(etc, "legacy.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(`f5:
  host: %s
  username: certfleet
  password: certfleet-sim-password
  verify_ssl: %s
acme:
  server: %s
  eab_kid: %s
  eab_hmac_key: %s
  email: ops@example.com
certificate:
  common_name: legacy.example.com
  key_type: ecdsa
  key_size: P_256
  expiry_window: 30
  virtual_servers: [vs_legacy]
  client_ssl_profile: legacy.example.com_clientssl
`, lb.Address(), bundle, pebble.DirectoryURL(), kid, hmac)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sops, "--encrypt", "--in-place", "--pgp", fpr, file)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+gnupg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sops: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "certfleet")
	f := &fleet{t: t, dir: out, config: out, env: []string{"GNUPGHOME=" + gnupg, "SSL_CERT_FILE=" + bundle}}
	res := f.certfleet(nil, "migrate", "--from", "f5", "--out", out, "--state", "state.db", etc)
	if res.code != 0 || !strings.Contains(res.stdout, "passes validate") {
		t.Fatalf("migrate: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	scanForSecrets(t, out, hmac, "certfleet-sim-password")
	report1, res := f.run(nil)
	if res.code != 0 || outcomes(report1)["legacy"] != state.OutcomeAdopted || pebble.Orders() != 0 {
		t.Fatalf("run: exit %d, %+v, %d ACME orders (want adopted, none)", res.code, report1.Results, pebble.Orders())
	}
	if got := lb.ProfileEntries("legacy.example.com_clientssl"); !slices.Equal(got, entries) {
		t.Fatalf("adoption changed the agent's profile: %v, was %v", got, entries)
	}
}
