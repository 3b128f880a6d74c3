package panossim

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseXPath(t *testing.T) {
	good := map[string]int{
		"/config": 1,
		"/config/shared/certificate/entry[@name='a']":                                                4,
		`/config/shared/certificate/entry[@name="it's"]`:                                             4,
		"/config/shared/ssl-tls-service-profile/entry[./certificate='x/y']":                          4,
		"/config/devices/entry[@name='localhost.localdomain']/vsys/entry[@name='vsys1']/certificate": 6,
		"/config/shared/ssl-tls-service-profile/entry[certificate = 'a b']":                          4,
	}
	for xp, n := range good {
		steps, err := parseXPath(xp)
		if err != nil || len(steps) != n {
			t.Errorf("parseXPath(%q) = %d steps, %v; want %d", xp, len(steps), err, n)
		}
	}
	for _, xp := range []string{
		"", "config/shared", "/config/", "/config//shared", "/config/shared/entry[@name='a'", "/config/entry[@name=a]",
		"/config/entry[@name='a'b']", "/config/entry[name]", "/config/sh ared", "/config/entry[@name='a']x",
	} {
		if _, err := parseXPath(xp); err == nil {
			t.Errorf("parseXPath(%q) succeeded", xp)
		}
	}
}

func mustParse(t *testing.T, s string) *node {
	t.Helper()
	n, err := parseElement(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMergeIsTheSetAction(t *testing.T) {
	n := mustParse(t, `<entry name="p"><certificate>old</certificate><protocol-settings><min-version>tls1-0</min-version></protocol-settings><m><member>a</member></m></entry>`)
	n.merge(mustParse(t, `<x><certificate>new</certificate><protocol-settings><max-version>max</max-version></protocol-settings><m><member>a</member><member>b</member></m></x>`))
	want := `<entry name="p"><certificate>new</certificate><protocol-settings><min-version>tls1-0</min-version><max-version>max</max-version></protocol-settings><m><member>a</member><member>b</member></m></entry>`
	if got := n.String(); got != want {
		t.Errorf("merge:\n got %s\nwant %s", got, want)
	}
	if _, err := parseFragment(`<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>`); err == nil {
		t.Error("a DTD was accepted")
	}
	if _, err := parseFragment(`text<x/>`); err == nil {
		t.Error("text outside an element was accepted")
	}
}

// harness talks raw HTTP to a started simulator.
type harness struct {
	t   *testing.T
	sim *Sim
	hc  *http.Client
	key string
}

func start(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.CommitDuration = 100 * time.Millisecond
	cfg.RSAPoolSize = -1
	if mutate != nil {
		mutate(&cfg)
	}
	sim, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(sim.CACertPEM()))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	key, err := sim.IssueKey("certfleet")
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, sim: sim, hc: &http.Client{Transport: tr}, key: key}
}

func (h *harness) call(form url.Values) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.sim.URL()+"/api/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-PAN-KEY", h.key)
	res, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

func (h *harness) expect(form url.Values, wants ...string) string {
	h.t.Helper()
	_, body := h.call(form)
	for _, w := range wants {
		if !strings.Contains(body, w) {
			h.t.Errorf("%v answered %s; want %q in it", form, body, w)
		}
	}
	return body
}

func cfgForm(action, xpath, element string) url.Values {
	f := url.Values{"type": {"config"}, "action": {action}, "xpath": {xpath}}
	if element != "" {
		f.Set("element", element)
	}
	return f
}

func TestConfigActions(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	web := "/config/shared/ssl-tls-service-profile/entry[@name='web-tls']"
	h.expect(cfgForm("get", web+"/certificate", ""), `code="19"`, "<certificate>sim-factory-web</certificate>")
	h.expect(cfgForm("get", "/config/shared/certificate/entry[@name='none']", ""), `status="success" code="7"`)
	h.expect(cfgForm("show", "/config/shared/certificate/entry[@name='none']", ""), `status="error"`, "No such node")
	h.expect(cfgForm("set", web, "<bogus/>"), `code="12"`, "bogus unexpected here")
	h.expect(cfgForm("set", web, "<certificate>x</certificate"), `code="18"`)
	h.expect(cfgForm("edit", web, "<entry name='other'/>"), `code="12"`)
	h.expect(cfgForm("edit", web+"/certificate", "<name>x</name>"), `code="12"`)
	h.expect(cfgForm("delete", "/config/shared/certificate/entry[@name='sim-factory-web']", ""), `code="10"`, "web-tls")
	h.expect(cfgForm("delete", "/config/shared/certificate/entry[@name='none']", ""), `code="7"`)
	h.expect(cfgForm("frob", web, ""), "400")
	// edit replaces the node: the protocol settings go.
	h.expect(cfgForm("edit", web, "<entry name='web-tls'><certificate>sim-factory-web</certificate></entry>"), `code="20"`)
	if got := h.sim.Candidate(web + "/protocol-settings"); got != "" {
		t.Errorf("edit kept %s", got)
	}
	if got := h.sim.Running(web + "/protocol-settings"); got == "" {
		t.Error("an uncommitted edit reached the running configuration")
	}
	h.expect(url.Values{"type": {"op"}, "cmd": {"<show><bogus/></show>"}}, `code="17"`)
}

func generateForm(name, algo string) url.Values {
	return url.Values{"type": {"op"}, "cmd": {"<request><certificate><generate><certificate-name>" + name +
		"</certificate-name><name>g.example</name><algorithm>" + algo + "</algorithm><signed-by>external</signed-by></generate></certificate></request>"}}
}

// TestGenerateOverwrites: with Config.GenerateOverwrites ([UNCONFIRMED] device behaviour), a
// generate onto an existing name replaces the entry (a new key and CSR) and leaves one entry.
func TestGenerateOverwrites(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config) { c.GenerateOverwrites = true })
	ec := "<ECDSA><ecdsa-nbits>256</ecdsa-nbits></ECDSA>"
	h.expect(generateForm("g1", ec), `status="success"`, "Successfully generated")
	first := h.sim.Candidate("/config/shared/certificate/entry[@name='g1']/csr")
	h.expect(generateForm("g1", ec), `status="success"`, "Successfully generated")
	second := h.sim.Candidate("/config/shared/certificate/entry[@name='g1']/csr")
	if first == "" || first == second {
		t.Fatalf("the second generate did not replace the entry's CSR")
	}
	if n := strings.Count(h.sim.Candidate("/config/shared/certificate"), `name="g1"`); n != 1 {
		t.Fatalf("%d entries named g1", n)
	}
}

func TestGenerateValidation(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	ec := "<ECDSA><ecdsa-nbits>256</ecdsa-nbits></ECDSA>"
	h.expect(generateForm("g1", ec), `status="success"`, "Successfully generated")
	h.expect(generateForm("g1", ec), `status="error"`, "already exists")
	h.expect(generateForm("g2", "<ECDSA><ecdsa-nbits>521</ecdsa-nbits></ECDSA>"), `status="error"`, "ecdsa-nbits")
	h.expect(generateForm("g3", "<RSA><rsa-nbits>1000</rsa-nbits></RSA>"), `status="error"`, "rsa-nbits")
	h.expect(generateForm(strings.Repeat("n", 64), ec), `status="error"`, "longer than 63")
	h.expect(url.Values{"type": {"op"}, "cmd": {"<request><certificate><generate><certificate-name>g4</certificate-name><name>x</name>" + "<algorithm>" + ec +
		"</algorithm><signed-by>my-ca</signed-by></generate></certificate></request>"}}, `status="error"`, "signed-by")
	if got := h.sim.Candidate("/config/shared/certificate/entry[@name='g1']/csr"); !strings.Contains(got, "BEGIN CERTIFICATE REQUEST") {
		t.Errorf("pending entry holds no CSR: %s", got)
	}
	if got := h.sim.Candidate("/config/shared/certificate/entry[@name='g1']/private-key"); strings.Contains(got, "BEGIN PRIVATE KEY") || strings.Contains(got, "BEGIN EC PRIVATE KEY") {
		t.Errorf("the private key is readable from the configuration: %s", got)
	}
}

func TestCommitJobsAndValidation(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config) { c.CommitDuration = 500 * time.Millisecond })
	h.expect(generateForm("pending", "<ECDSA><ecdsa-nbits>256</ecdsa-nbits></ECDSA>"), "Successfully")
	web := "/config/shared/ssl-tls-service-profile/entry[@name='web-tls']"
	h.expect(cfgForm("set", web, "<certificate>pending</certificate>"), `code="20"`)
	body := h.expect(url.Values{"type": {"commit"}, "cmd": {"<commit><description>bad</description></commit>"}}, "enqueued with jobid 1", "<job>1</job>")
	_ = body
	h.expect(url.Values{"type": {"op"}, "cmd": {"<show><jobs><id>1</id></jobs></show>"}}, "<status>ACT</status>", "<result>PEND</result>")
	time.Sleep(550 * time.Millisecond)
	h.expect(url.Values{"type": {"op"}, "cmd": {"<show><jobs><id>1</id></jobs></show>"}},
		"<status>FIN</status>", "<result>FAIL</result>", "pending certificate request", "commit failed")
	if got := h.sim.Running(web + "/certificate"); !strings.Contains(got, "sim-factory-web") {
		t.Errorf("a failed commit changed the running configuration: %s", got)
	}
	if h.sim.PendingChanges() != 2 {
		t.Errorf("%d pending changes after a failed commit, want 2", h.sim.PendingChanges())
	}
	h.expect(url.Values{"type": {"op"}, "cmd": {"<show><jobs><id>9</id></jobs></show>"}}, `status="error"`, "not found")
	h.expect(url.Values{"type": {"commit"}, "action": {"partial"}, "cmd": {"<commit/>"}}, `status="error"`)
	h.expect(url.Values{"type": {"commit"}, "cmd": {"<commit><bogus/></commit>"}}, `code="17"`)
}

func TestCloseStopsListeners(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	addr := h.sim.ServedAddress("web-tls")
	if addr == "" {
		t.Fatal("web-tls is not served")
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads what is served
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	h.sim.Close()
	if _, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}); err == nil { //nolint:gosec // as above
		t.Error("a profile listener is still open after Close")
	}
}

// Decryption rules: a certificate a rule uses cannot be deleted, a rule naming a pending
// certificate fails the commit, and the running configuration keeps serving the old one.
func TestDecryptionRules(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config) { c.CommitDuration = 50 * time.Millisecond })
	rule := "/config/devices/entry[@name='localhost.localdomain']/vsys/entry[@name='vsys1']/rulebase/decryption/rules/entry[@name='inbound-app']"
	h.expect(cfgForm("get", rule, ""), `code="19"`, "<member>sim-factory-app</member>")
	h.expect(cfgForm("delete", "/config/devices/entry[@name='localhost.localdomain']/vsys/entry[@name='vsys1']/certificate/entry[@name='sim-factory-app']", ""), `code="10"`, "inbound-app")
	h.expect(cfgForm("edit", rule+"/type/ssl-inbound-inspection/certificates", "<certificates><bogus/></certificates>"), `code="12"`)
	h.expect(generateForm("pending", "<ECDSA><ecdsa-nbits>256</ecdsa-nbits></ECDSA>"), "Successfully")
	h.expect(cfgForm("edit", rule+"/type/ssl-inbound-inspection/certificates", "<certificates><member>pending</member></certificates>"), `code="20"`)
	h.expect(url.Values{"type": {"commit"}, "cmd": {"<commit/>"}}, "<job>1</job>")
	time.Sleep(100 * time.Millisecond)
	h.expect(url.Values{"type": {"op"}, "cmd": {"<show><jobs><id>1</id></jobs></show>"}}, "<result>FAIL</result>", "inbound-app", "pending certificate request")
	if got := h.sim.Running(rule); !strings.Contains(got, "sim-factory-app") {
		t.Errorf("a failed commit changed the running rule: %s", got)
	}
	conn, err := tls.Dial("tcp", h.sim.DecryptionRuleAddress("", "inbound-app"), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only reads what is served
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "app.sim.local" {
		t.Errorf("the rule serves %q, want the factory certificate app.sim.local", cn)
	}
}
