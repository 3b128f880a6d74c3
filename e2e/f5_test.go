package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
)

// hardenedClientSSL are a customer's own settings on vs_hard: ciphers, protocol options, required
// client certificates (from client_ca.crt) and renegotiation.
func hardenedClientSSL() map[string]any {
	return map[string]any{
		"ciphers": "ECDHE+AES-GCM:!SSLv3:!TLSv1", "tmOptions": []any{"no-tlsv1.3", "no-tlsv1.1", "no-tlsv1"},
		"peerCertMode": "require", "caFile": "/Common/client_ca.crt", "renegotiation": "disabled", "secureRenegotiation": "require-strict",
	}
}

// clientCertificate makes a CA (PEM) and a client certificate it issued.
func clientCertificate(t *testing.T) (string, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e client CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "e2e client"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// servedWithClientCert is served() for a virtual server that asks for a client certificate.
func servedWithClientCert(addr, serverName string, client *tls.Certificate) ([]*x509.Certificate, error) {
	cfg := &tls.Config{ServerName: serverName, InsecureSkipVerify: true} //nolint:gosec // the chain is verified by the caller
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	conn, err := tls.DialWithDialer(&netDialer, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// With TLS 1.2 a refused client certificate shows on the first read; the sim answers HTTP.
	if _, err := conn.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		return nil, err
	}
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return nil, err
	}
	return conn.ConnectionState().PeerCertificates, nil
}

// pollWithClient loops handshakes (with a client certificate) until the returned function is
// called, which reports the failed and total handshakes.
func pollWithClient(addr, serverName string, client *tls.Certificate) func() (failures, total int64) {
	var fails, count atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := servedWithClientCert(addr, serverName, client); err != nil {
				fails.Add(1)
			}
			count.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return func() (int64, int64) {
		close(done)
		wg.Wait()
		return fails.Load(), count.Load()
	}
}

// watchPluginProcesses records, until the returned function is called, the command line and
// environment of every process started from the test's binary directory (certfleet and its
// plugins), sampled from /proc every few milliseconds.
func watchPluginProcesses(t *testing.T) func() []string {
	t.Helper()
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("no /proc: cannot watch process arguments and environments")
	}
	seen := map[string]string{}
	var mu sync.Mutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			entries, _ := os.ReadDir("/proc")
			for _, e := range entries {
				cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
				if err != nil || !strings.HasPrefix(string(cmdline), binDir) {
					continue
				}
				environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
				mu.Lock()
				seen[e.Name()+" "+string(cmdline)] = string(cmdline) + "\x00" + string(environ)
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-time.After(3 * time.Millisecond):
			}
		}
	}()
	return func() []string {
		close(done)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		var out []string
		plugins := 0
		for k, v := range seen {
			out = append(out, v)
			if strings.Contains(k, "certfleet-plugin-f5-bigip") {
				plugins++
			}
		}
		if plugins == 0 {
			t.Error("the /proc watcher saw no f5-bigip plugin process: the scan of arguments and environments covered nothing")
		}
		return out
	}
}

// TestBIGIPPCIModeEnrollRenewRollback enrolls, renews and rolls back with PCI mode on, over a
// virtual server with the customer's hardened client-ssl profile and one that still carries a
// profile and password-protected key the Sectigo PCI agent left: the served pairs are right,
// looping clients see no failed handshake, the hardened settings stay, the agent's profile is
// swapped back by rollback and never changed, and no key passphrase appears in any log, output,
// state, plugin log, process argument or environment.
func TestBIGIPPCIModeEnrollRenewRollback(t *testing.T) {
	sim, err := bigipsim.New(bigipsim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	clientCA, client := clientCertificate(t)
	for _, step := range []error{
		sim.AddCert("client_ca.crt", clientCA),
		sim.AddClientSSLProfile(bigipsim.ProfileSpec{Name: "hardened_clientssl", Settings: hardenedClientSSL()}),
		sim.AddVirtual(bigipsim.VirtualSpec{Name: "vs_hard", Profiles: []string{"/Common/tcp", "/Common/http", "/Common/hardened_clientssl"}}),
		sim.AddKeyPair(bigipsim.KeyPairSpec{Key: "legacy.example.com.key", Cert: "legacy.example.com.crt", CommonName: "legacy.example.com", Passphrase: "sectigo-agent-random-passphrase"}),
		sim.AddClientSSLProfile(bigipsim.ProfileSpec{Name: "legacy.example.com_clientssl", Settings: map[string]any{"ciphers": "ECDHE+AES-GCM"},
			Entries: []bigipsim.ProfileEntry{{Name: "default", Cert: "/Common/legacy.example.com.crt", Key: "/Common/legacy.example.com.key"}}}),
		sim.AddVirtual(bigipsim.VirtualSpec{Name: "vs_legacy", Profiles: []string{"/Common/tcp", "/Common/legacy.example.com_clientssl"}}),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	legacyEntries := sim.ProfileEntries("legacy.example.com_clientssl")
	bundle := filepath.Join(t.TempDir(), "bigip-tls.pem")
	if err := os.WriteFile(bundle, []byte(sim.CACertPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	f, pebble := acmeFleetWith(t, fleetSpec{
		Env: []string{"E2E_F5_PASSWORD=certfleet-sim-password"},
		ExtraDevices: fmt.Sprintf(`  bigip1:
    plugin: f5-bigip
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: certfleet, password: "${env:E2E_F5_PASSWORD}"}
    options: {pci_mode: true}`, sim.URL(), bundle),
		ExtraCertificates: `  shop:
    device: bigip1
    sans: {dns: [shop.example.com]}
    bindings: [{kind: virtual, name: vs_www}, {kind: virtual, name: vs_api}]
  hard:
    device: bigip1
    sans: {dns: [hard.example.com]}
    bindings: [{kind: virtual, name: vs_hard}]
  legacy:
    device: bigip1
    sans: {dns: [legacy.example.com]}
    bindings: [{kind: virtual, name: vs_legacy}]`,
	})
	root, err := pebble.RootPEM()
	if err != nil {
		t.Fatal(err)
	}
	check := func(stage, vs, name string, c *tls.Certificate) *x509.Certificate {
		t.Helper()
		chain, err := servedWithClientCert(sim.ServedAddress(vs), name, c)
		if err != nil {
			t.Fatalf("%s: TLS to %s: %v", stage, vs, err)
		}
		verifyChain(t, chain, root, name)
		return chain[0]
	}
	checkHardened := func(stage string) {
		t.Helper()
		profiles := sim.ClientSSLOf("vs_hard")
		if len(profiles) != 1 {
			t.Fatalf("%s: vs_hard carries %v", stage, profiles)
		}
		got, _, _ := sim.ProfileSettings(profiles[0])
		for k, v := range hardenedClientSSL() {
			if !reflect.DeepEqual(got[k], v) {
				t.Errorf("%s: %s of %s is %v, want the customer's %v", stage, k, profiles[0], got[k], v)
			}
		}
		if _, err := servedWithClientCert(sim.ServedAddress("vs_hard"), "hard.example.com", nil); err == nil {
			t.Errorf("%s: vs_hard served a client without a client certificate", stage)
		}
	}
	legacyServed := func() *x509.Certificate {
		chain, err := servedWithClientCert(sim.ServedAddress("vs_legacy"), "legacy.example.com", nil)
		if err != nil {
			t.Fatalf("TLS to vs_legacy: %v", err)
		}
		return chain[0]
	}
	agentCert := legacyServed()
	var outputs []string
	collect := func(res result) { outputs = append(outputs, res.stdout, res.stderr) }
	stopWatch := watchPluginProcesses(t)

	// 1. Migration with a failed commit: the bindings are rolled back, so vs_legacy carries the
	// agent's profile again and serves the agent's certificate; vs_hard its own profile.
	// --no-adopt: the agent's certificate matches the configuration, and this test is about
	// replacing it (adoption is TestMigrateAdoptInventoryReport's).
	sim.FailSave(1)
	report, res := f.run(nil, "--no-adopt")
	collect(res)
	if res.code != 1 || outcomes(report)["legacy"] != state.OutcomeFailed {
		t.Fatalf("run with a failing save: exit %d, %+v", res.code, report.Results)
	}
	if got := sim.ClientSSLOf("vs_legacy"); !slices.Equal(got, []string{"/Common/legacy.example.com_clientssl"}) || !legacyServed().Equal(agentCert) {
		t.Fatalf("after the rollback vs_legacy carries %v; want the agent's profile and certificate back", got)
	}
	if got := sim.ClientSSLOf("vs_hard"); !slices.Equal(got, []string{"/Common/hardened_clientssl"}) {
		t.Fatalf("after the rollback vs_hard carries %v", got)
	}

	// 2. Enroll.
	report, res = f.run(nil, "--no-adopt")
	collect(res)
	for _, name := range []string{"shop", "hard", "legacy"} {
		if res.code != 0 || outcomes(report)[name] != state.OutcomeDeployed {
			t.Fatalf("enroll: exit %d, %+v", res.code, report.Results)
		}
	}
	check("enroll", "vs_www", "shop.example.com", nil)
	check("enroll", "vs_api", "shop.example.com", nil)
	check("enroll", "vs_hard", "hard.example.com", &client)
	enrolled := check("enroll", "vs_legacy", "legacy.example.com", nil)
	checkHardened("enroll")
	if got := sim.ProfileEntries("legacy.example.com_clientssl"); !slices.Equal(got, legacyEntries) {
		t.Errorf("the agent's profile changed: %v, was %v", got, legacyEntries)
	}

	// 3. Renew while clients keep connecting: every handshake completes, which also proves the
	// served key matches the served certificate.
	stopPlain := pollHandshakes(map[string]string{sim.ServedAddress("vs_www"): "shop.example.com", sim.ServedAddress("vs_legacy"): "legacy.example.com"})
	stopHard := pollWithClient(sim.ServedAddress("vs_hard"), "hard.example.com", &client)
	report, res = f.run(nil, "--force")
	collect(res)
	failures, handshakes := stopPlain()
	hardFailures, hardHandshakes := stopHard()
	if res.code != 0 || outcomes(report)["shop"] != state.OutcomeDeployed {
		t.Fatalf("renew: exit %d, %+v", res.code, report.Results)
	}
	if failures != 0 || handshakes < 10 || hardFailures != 0 || hardHandshakes < 5 {
		t.Fatalf("during the renewal %d of %d handshakes failed, %d of %d with a client certificate", failures, handshakes, hardFailures, hardHandshakes)
	}
	check("renew", "vs_www", "shop.example.com", nil)
	check("renew", "vs_hard", "hard.example.com", &client)
	renewed := check("renew", "vs_legacy", "legacy.example.com", nil)
	if renewed.Equal(enrolled) {
		t.Fatal("the renewed certificate is not served")
	}
	checkHardened("renew")

	// 4. A renewal whose commit fails is rolled back: the previous pair is served again, with no
	// failed handshake on the way.
	stopPlain = pollHandshakes(map[string]string{sim.ServedAddress("vs_legacy"): "legacy.example.com"})
	sim.FailSave(1)
	report, res = f.run(nil, "--force")
	collect(res)
	failures, handshakes = stopPlain()
	if res.code != 1 || outcomes(report)["legacy"] != state.OutcomeFailed {
		t.Fatalf("renewal with a failing save: exit %d, %+v", res.code, report.Results)
	}
	if got := check("rollback", "vs_legacy", "legacy.example.com", nil); !got.Equal(renewed) {
		t.Fatalf("after the rollback vs_legacy serves serial %s, want the previous %s", got.SerialNumber, renewed.SerialNumber)
	}
	if failures != 0 || handshakes < 5 {
		t.Fatalf("during the rollback %d of %d handshakes failed", failures, handshakes)
	}
	checkHardened("rollback")

	res = f.certfleet(nil, "status", "--output", "json")
	collect(res)
	for _, name := range []string{"state.db", "state.db-wal"} {
		if data, err := os.ReadFile(filepath.Join(f.dir, name)); err == nil {
			outputs = append(outputs, string(data))
		}
	}
	outputs = append(outputs, stopWatch()...)
	passphrases := sim.PassphrasesReceived()
	if len(passphrases) < 6 {
		t.Fatalf("the BIG-IP received %d key passphrases; PCI mode was not on for every key", len(passphrases))
	}
	for _, secret := range passphrases {
		for i, o := range outputs {
			if strings.Contains(o, secret) {
				t.Errorf("a key passphrase appears in captured output %d:\n%s", i, excerpt(o, secret))
			}
		}
	}
}
