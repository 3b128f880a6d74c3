package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLatencyReachesPemdirAndTheACMECA: --latency slows the pemdir devices (their call_delay
// option) and Pebble, and the stats endpoint counts the CA's requests. Lower bounds only.
func TestLatencyReachesPemdirAndTheACMECA(t *testing.T) {
	o, err := parseFlags([]string{"--out", t.TempDir(), "--ca", "acme", "--vendors", "pemdir", "--devices", "1", "--latency", "50ms", "--pemdir-access-log", "access.log"})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{out: o.out, env: map[string]string{}}
	defer w.close()
	if err := startCA(w, o); err != nil {
		t.Fatal(err)
	}
	if err := startVendor(w, "pemdir", o); err != nil {
		t.Fatal(err)
	}
	if len(w.devices) != 1 || !strings.Contains(w.devices[0], "call_delay: 50ms") || !strings.Contains(w.devices[0], "access_log: access.log") {
		t.Fatalf("pemdir device without call_delay or access_log:\n%s", strings.Join(w.devices, "\n"))
	}
	statsURL, err := w.serveStats()
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, path := range []string{"ca/acme-tls.pem"} {
		data, err := readUnder(w.out, path)
		if err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(data)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	start := time.Now()
	resp, err := client.Get(w.info.CA.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("ACME directory answered in %s with --latency 50ms", took)
	}
	resp, err = http.Get(statsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.CARequests != 1 {
		t.Errorf("stats count %d CA requests, want 1", s.CARequests)
	}
}

func TestNegativeLatencyRefused(t *testing.T) {
	if _, err := parseFlags([]string{"--out", t.TempDir(), "--latency", "-1s"}); err == nil {
		t.Error("--latency -1s accepted")
	}
}

func readUnder(dir, name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }

// TestACMEChallengesConfigured: with --acme-challenges the issuer answers DNS-01 through the
// simulator's DNS (rfc2136, its TSIG secret only by reference), and the description says where
// other clients answer challenges.
func TestACMEChallengesConfigured(t *testing.T) {
	o, err := parseFlags([]string{"--out", t.TempDir(), "--ca", "acme", "--acme-challenges", "--vendors", ""})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{out: o.out, env: map[string]string{}}
	defer w.close()
	if err := startCA(w, o); err != nil {
		t.Fatal(err)
	}
	ch := w.info.CA.Challenges
	if ch == nil || ch.DNSServer == "" || ch.HTTP01Port == 0 || ch.TSIGKey == "" {
		t.Fatalf("description without challenge endpoints: %+v", ch)
	}
	secret := w.env["CERTFLEET_SIM_TSIG_SECRET"]
	for _, want := range []string{"provider: rfc2136", `nameserver: "` + ch.DNSServer + `"`, "${env:CERTFLEET_SIM_TSIG_SECRET}", "propagation_check: resolvers"} {
		if !strings.Contains(w.issuer, want) {
			t.Errorf("issuer YAML lacks %q:\n%s", want, w.issuer)
		}
	}
	if secret == "" || strings.Contains(w.issuer, secret) {
		t.Errorf("TSIG secret missing from the environment or written into the configuration")
	}
	if !strings.Contains(strings.Join(w.info.CA.Settings, "; "), "PEBBLE_VA_NOSLEEP=1") {
		t.Errorf("settings do not say the VA does not sleep: %v", w.info.CA.Settings)
	}
}

func TestACMEChallengeFlagsNeedACME(t *testing.T) {
	for _, args := range [][]string{{"--ca", "scm", "--acme-challenges"}, {"--ca", "acme", "--acme-va-sleep", "3"}, {"--ca", "acme", "--acme-challenges", "--acme-va-sleep", "-1"}} {
		if _, err := parseFlags(append([]string{"--out", t.TempDir()}, args...)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
