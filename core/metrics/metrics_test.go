package metrics

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/scm"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestTextfileHasTheStateAndDropsRemovedCertificates(t *testing.T) {
	m := New("1.2.3", false)
	expiry := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	m.SetCertificates([]Certificate{
		{Name: "www", Device: "adc1", Issuer: "sectigo", NotAfter: expiry, RenewAt: expiry.Add(-30 * 24 * time.Hour), LastOutcome: "deployed"},
		{Name: "old", Device: "adc1", Issuer: "sectigo", NotAfter: expiry, LastOutcome: "failed"},
	})
	m.SetCertificates([]Certificate{{Name: "www", Device: "adc1", Issuer: "sectigo", NotAfter: expiry, LastOutcome: "pending"}})
	m.ObserveRun("ok", 3*time.Second, expiry)
	// An order whose answer the CA lost (the real SCM client against its simulator) is counted
	// under its own reason.
	iss := m.WrapIssuer("sectigo", scmAgainstSimulator(t))
	_, err := iss.Submit(context.Background(), csrRequest(t))
	if !errors.Is(err, issuer.ErrOutcomeUnknown) {
		t.Fatalf("lost answer: %v", err)
	}

	dir := t.TempDir()
	if err := m.WriteFile(filepath.Join(dir, "certfleet.txt")); err == nil || !strings.Contains(err.Error(), "*.prom") {
		t.Fatalf("a file node_exporter ignores was accepted: %v", err)
	}
	path := filepath.Join(dir, "certfleet.prom")
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v: node_exporter must be able to read it", st.Mode().Perm())
	}
	f, _ := os.Open(path)
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := fams["certfleet_certificate_expiry_timestamp_seconds"].GetMetric(); len(got) != 1 || got[0].GetGauge().GetValue() != float64(expiry.Unix()) {
		t.Fatalf("expiry: %v (the removed certificate must be gone)", got)
	}
	if fams["certfleet_certificate_renewal_due_timestamp_seconds"] != nil {
		t.Error("a renewal time that is no longer known is still exported")
	}
	outcomes := map[string]float64{}
	for _, mt := range fams["certfleet_certificate_last_outcome"].GetMetric() {
		for _, l := range mt.GetLabel() {
			if l.GetName() == "outcome" {
				outcomes[l.GetValue()] = mt.GetGauge().GetValue()
			}
		}
	}
	if len(outcomes) != 4 || outcomes["pending"] != 1 || outcomes["deployed"] != 0 {
		t.Errorf("last outcome series: %v", outcomes)
	}
	errs := fams["certfleet_ca_request_errors_total"].GetMetric()
	if len(errs) != 1 || errs[0].GetCounter().GetValue() != 1 || !strings.Contains(errs[0].String(), "outcome_unknown") {
		t.Errorf("CA errors: %v", errs)
	}
	if fams["certfleet_build_info"].GetMetric()[0].GetLabel()[0].GetValue() != "1.2.3" || fams["go_goroutines"] != nil {
		t.Error("build_info or a process metric in a textfile")
	}
}

// scmAgainstSimulator is the SCM issuer talking to its simulator, which loses the next order's answer.
func scmAgainstSimulator(t *testing.T) issuer.Issuer {
	t.Helper()
	cfg := scmsim.DefaultConfig()
	sim, err := scmsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	sim.LoseNextEnrollResponses(1)
	iss, err := scm.New(scm.Config{Name: "sectigo", BaseURL: sim.URL(), TokenURL: sim.TokenURL(), OrgID: 1234, CABundlePEM: sim.TLSCACertPEM(),
		ClientID: "certfleet-sim", ClientSecret: cfg.Clients["certfleet-sim"]})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func csrRequest(t *testing.T) issuer.Request {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "www.example.com"}, DNSNames: []string{"www.example.com"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return issuer.Request{CertificateName: "www", RequestID: "r1", CSRPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
		CommonName: "www.example.com", DNSNames: []string{"www.example.com"}, Options: map[string]any{"cert_type": "OV SSL"}}
}
