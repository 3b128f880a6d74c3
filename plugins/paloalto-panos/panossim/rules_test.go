package panossim

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// importPEM uploads pemText as certificate-name name (multipart, format pem).
func (h *harness) importPEM(name, pemText string) string {
	h.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range map[string]string{"type": "import", "category": "certificate", "certificate-name": name, "format": "pem"} {
		_ = mw.WriteField(k, v)
	}
	part, _ := mw.CreateFormFile("file", "cert.pem")
	_, _ = part.Write([]byte(pemText))
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, h.sim.URL()+"/api/", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-PAN-KEY", h.key)
	res, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return string(body)
}

// signed makes a pending entry name and returns the certificate ca signs for its CSR.
func (h *harness) signed(ca *conformance.TestCA, name string) *x509.Certificate {
	h.t.Helper()
	h.expect(generateForm(name, "<ECDSA><ecdsa-nbits>256</ecdsa-nbits></ECDSA>"), "Successfully generated")
	_, csr := h.call(url.Values{"type": {"export"}, "category": {"certificate"}, "certificate-name": {name}, "format": {"pkcs10"}})
	cert, err := ca.SignCSR(csr, time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	return cert
}

// commitAndWait commits everything and waits for the job.
func (h *harness) commitAndWait() {
	h.t.Helper()
	h.expect(url.Values{"type": {"commit"}, "cmd": {"<commit/>"}}, "enqueued")
	for i := 0; i < 100 && h.sim.PendingChanges() > 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if n := h.sim.PendingChanges(); n > 0 {
		h.t.Fatalf("%d changes still pending after the commit", n)
	}
}

func servedChain(t *testing.T, addr string) []*x509.Certificate {
	t.Helper()
	certs, err := conformance.ServedChain(context.Background(), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func TestGenerateRefusesUnknownElements(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	cmd := func(inner string) url.Values {
		return url.Values{"type": {"op"}, "cmd": {"<request><certificate><generate><certificate-name>g</certificate-name><name>g.example</name>" +
			inner + "<signed-by>external</signed-by></generate></certificate></request>"}}
	}
	ec := "<algorithm><ECDSA><ecdsa-nbits>256</ecdsa-nbits></ECDSA></algorithm>"
	h.expect(cmd(ec+"<subject-alt-name>x</subject-alt-name>"), `code="17"`, "generate -> subject-alt-name is unexpected")
	h.expect(cmd("<algorithm><DSA><nbits>1024</nbits></DSA></algorithm>"), `code="17"`, "algorithm -> DSA is unexpected")
	h.expect(cmd(ec+"<hostname><entry>x</entry></hostname>"), `code="17"`, "hostname -> entry is unexpected")
	h.expect(cmd(ec+"<digest><sha256/></digest>"), `code="17"`, "digest -> sha256 is unexpected")
	h.expect(cmd("<algorithm><ECDSA><ecdsa-nbits>521</ecdsa-nbits></ECDSA></algorithm>"), `status="error"`, "ecdsa-nbits")
	if names := h.sim.CertificateNames(false); strings.Contains(strings.Join(names, ","), ",g,") {
		t.Errorf("a refused generate made an entry: %v", names)
	}
	h.expect(cmd(ec+"<hostname><member>g.example</member></hostname><ca>no</ca>"), "Successfully generated")
}

func TestSetOutsideTheSchema(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	web := "/config/shared/ssl-tls-service-profile/entry[@name='web-tls']"
	for _, xp := range []string{
		web + "/certificat",
		"/config/shared/certificate/entry[@name='x']/bogus",
		"/config/device/entry[@name='localhost.localdomain']",
		web + "/certificate/name",
	} {
		h.expect(cfgForm("set", xp, "<x/>"), `status="error"`, "Could not find schema node for xpath "+xp)
		h.expect(cfgForm("edit", xp, "<x/>"), "Could not find schema node for xpath")
	}
	if err := h.sim.StageAs("admin", web+"/certificat", "<x/>"); err == nil || !strings.Contains(err.Error(), "Could not find schema node") {
		t.Errorf("StageAs outside the schema: %v", err)
	}
	if n := h.sim.PendingChanges(); n != 0 {
		t.Errorf("%d changes made by refused requests", n)
	}
	h.expect(cfgForm("set", web, "<certificate>sim-factory-web</certificate>"), `code="20"`)
}

// A partial commit by admin is taken with action=partial (the docs) and without it (pango,
// pan-os-python, pan-python); another admin's changes stay pending either way.
func TestPartialCommitWithAndWithoutAction(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config) { c.CommitDuration = 20 * time.Millisecond })
	other := "/config/shared/ssl-tls-service-profile/entry[@name='other-admin']"
	if err := h.sim.StageAs("admin", other, "<certificate>sim-factory-web</certificate>"); err != nil {
		t.Fatal(err)
	}
	partial := "<commit><partial><admin><member>certfleet</member></admin></partial></commit>"
	for i, action := range []string{"", "partial"} {
		h.expect(cfgForm("set", "/config/shared/ssl-tls-service-profile/entry[@name='web-tls']", "<certificate>sim-factory-web</certificate>"), `code="20"`)
		form := url.Values{"type": {"commit"}, "cmd": {partial}}
		if action != "" {
			form.Set("action", action)
		}
		h.expect(form, "enqueued")
		time.Sleep(60 * time.Millisecond)
		commits := h.sim.Commits()
		if len(commits) != i+1 || commits[i].Result != "OK" || !commits[i].Partial {
			t.Fatalf("commits %+v", commits)
		}
		if h.sim.PendingChangesBy("certfleet") != 0 || h.sim.PendingChangesBy("admin") != 1 || h.sim.Running(other) != "" {
			t.Errorf("action %q: the partial commit by certfleet took admin's change or left its own", action)
		}
	}
}

// An entry serves what was imported onto it: the signed certificate followed by its
// intermediates (DOC-4289). A CA certificate imported on its own is served only with
// ChainFromCAEntries.
func TestBundleImportIsServedAsImported(t *testing.T) {
	t.Parallel()
	for _, fromEntries := range []bool{false, true} {
		h := start(t, func(c *Config) { c.CommitDuration = 20 * time.Millisecond; c.ChainFromCAEntries = fromEntries })
		ca, err := conformance.NewTestCA()
		if err != nil {
			t.Fatal(err)
		}
		inter := sdk.EncodeCertificatePEM(ca.Intermediate)
		bundled, alone := h.signed(ca, "bundled"), h.signed(ca, "alone")
		h.expectImport("bundled", sdk.EncodeCertificatePEM(bundled)+inter, "Successfully imported bundled")
		h.expectImport("alone", sdk.EncodeCertificatePEM(alone), "Successfully imported alone")
		h.expectImport("issuing-ca", inter, "Successfully imported issuing-ca")
		if err := h.sim.AddProfile(ProfileSpec{Name: "p-bundled", Certificate: "sim-factory-web"}); err != nil {
			t.Fatal(err)
		}
		if err := h.sim.AddProfile(ProfileSpec{Name: "p-alone", Certificate: "sim-factory-web"}); err != nil {
			t.Fatal(err)
		}
		h.expect(cfgForm("set", "/config/shared/ssl-tls-service-profile/entry[@name='p-bundled']", "<certificate>bundled</certificate>"), `code="20"`)
		h.expect(cfgForm("set", "/config/shared/ssl-tls-service-profile/entry[@name='p-alone']", "<certificate>alone</certificate>"), `code="20"`)
		h.commitAndWait()
		if got := servedChain(t, h.sim.ServedAddress("p-bundled")); len(got) != 2 || !got[0].Equal(bundled) || !got[1].Equal(ca.Intermediate) {
			t.Errorf("ChainFromCAEntries=%v: the bundled entry serves %d certificates, want the leaf and the intermediate", fromEntries, len(got))
		}
		want := 1
		if fromEntries {
			want = 2
		}
		if got := servedChain(t, h.sim.ServedAddress("p-alone")); len(got) != want || !got[0].Equal(alone) {
			t.Errorf("ChainFromCAEntries=%v: the leaf-only entry serves %d certificates, want %d", fromEntries, len(got), want)
		}
	}
}

// expectImport imports pemText as name and checks the answer holds want.
func (h *harness) expectImport(name, pemText, want string) {
	h.t.Helper()
	if body := h.importPEM(name, pemText); !strings.Contains(body, want) {
		h.t.Errorf("import of %s answered %s; want %q in it", name, body, want)
	}
}

func TestImportRefusals(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config) { c.RefuseCAImport, c.RefuseChainOnKeyEntry = true, true })
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	inter := sdk.EncodeCertificatePEM(ca.Intermediate)
	if body := h.importPEM("issuing-ca", inter); !strings.Contains(body, "Import of issuing-ca failed. private key doesn't exist for csr") {
		t.Errorf("CA import: %s", body)
	}
	cert := h.signed(ca, "leaf")
	if body := h.importPEM("leaf", sdk.EncodeCertificatePEM(cert)+inter); !strings.Contains(body, "private key mismatch") {
		t.Errorf("bundle onto the key entry: %s", body)
	}
	if body := h.importPEM("leaf", sdk.EncodeCertificatePEM(cert)); !strings.Contains(body, "Successfully imported leaf") {
		t.Errorf("leaf alone: %s", body)
	}
}

func TestShowAdminsMarksTheCaller(t *testing.T) {
	t.Parallel()
	for _, without := range []bool{false, true} {
		h := start(t, func(c *Config) { c.ShowAdminsWithoutSelf = without })
		if err := h.sim.StageAs("admin", "/config/shared/ssl-tls-service-profile/entry[@name='x']", "<certificate>sim-factory-web</certificate>"); err != nil {
			t.Fatal(err)
		}
		body := h.expect(url.Values{"type": {"op"}, "cmd": {"<show><admins></admins></show>"}}, "<admin>certfleet</admin>")
		if has := strings.Contains(body, "<admin>certfleet</admin><from>127.0.0.1</from><type>Web</type><self/>"); has == without {
			t.Errorf("ShowAdminsWithoutSelf=%v: %s", without, body)
		}
	}
}
