package f5bigip_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	f5bigip "github.com/certfleet/certfleet/plugins/f5-bigip"
	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// leakScan gathers everything the plugin hands out: returned values (what the core stores:
// key_ref, CSR, cert_ref, rollback token, ...), error texts with their vendor parts, and the
// plugin processes' stderr.
type leakScan struct {
	t        *testing.T
	observed []string
}

func (l *leakScan) value(what string, v any) {
	l.observed = append(l.observed, fmt.Sprintf("%s: %+v", what, v))
	if b, ok := v.([]byte); ok {
		l.observed = append(l.observed, what+": "+string(b))
	}
}

// failure records an error the test expects, with everything the core would see of it.
func (l *leakScan) failure(what string, err error) {
	l.t.Helper()
	if err == nil {
		l.t.Fatalf("%s: succeeded, want an error", what)
	}
	e := sdk.AsError(err)
	l.observed = append(l.observed, fmt.Sprintf("%s: %v | %s | %s | %s | %+v", what, err, e.Message, e.VendorCode, e.VendorMessage, e))
}

// TestPCIPassphraseNeverLeaks runs the whole life of PCI keys (two plugin processes, renewal,
// rollback, cleanup, and failures where the device echoes the request, passphrase included) with
// the plugin logging at trace level, then looks for every passphrase the device ever received,
// the PCI secret, the password and the login tokens in all of it.
func TestPCIPassphraseNeverLeaks(t *testing.T) {
	sim := startSim(t, bigipsim.DefaultConfig())
	tgt := target(sim)
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	scan := &leakScan{t: t}
	bindings := []sdk.Binding{
		{Kind: f5bigip.KindVirtual, Name: "vs_www"},
		{Kind: f5bigip.KindVirtual, Name: "vs_api"},
	}

	// First process: make the key and CSR, then it goes away (as after a core restart).
	first, firstLog := launch(t, "trace")
	csr1, err := first.GenerateCSR(ctxFor(t), tgt, sdk.CSRRequest{NameHint: "www", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		Subject: sdk.Subject{CommonName: "www.example.test"}, SANs: sdk.SANs{DNSNames: []string{"www.example.test"}}})
	if err != nil {
		t.Fatalf("GenerateCSR: %v", err)
	}
	scan.value("csr1", csr1)
	keyPath, _, _ := strings.Cut(csr1.KeyRef, "#")
	if _, ok := sim.KeyPassphrase(keyPath); !ok {
		t.Fatalf("key %s on the device is not passphrase-protected", keyPath)
	}

	// Second process: import, bind, commit, renew, roll back, clean up: none of it needs the
	// passphrase, which only the first process ever had.
	p, secondLog := launch(t, "trace")
	ctx := ctxFor(t)
	cert1, err := ca.SignCSR(csr1.PEM, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	imp1, err := p.ImportCert(ctx, tgt, sdk.ImportRequest{KeyRef: csr1.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert1), ChainPEM: ca.ChainPEM()})
	if err != nil {
		t.Fatalf("ImportCert: %v", err)
	}
	scan.value("import1", imp1)
	bound1, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp1.CertRef, KeyRef: csr1.KeyRef, Bindings: bindings})
	if err != nil {
		t.Fatalf("Bind in a new plugin process: %v", err)
	}
	scan.value("bind1", bound1)
	scan.value("bind1.token", bound1.RollbackToken)
	commit, err := p.Commit(ctx, tgt, sdk.CommitRequest{Description: "pci"})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	scan.value("commit", commit)
	if got, err := served(ctx, sim, "vs_www"); err != nil || !got.Equal(cert1) {
		t.Fatalf("vs_www does not serve the PCI certificate: %v", err)
	}

	csr2, imp2, _ := enroll(t, p, tgt, ca, "www2", sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 2048})
	scan.value("csr2", csr2)
	scan.value("import2", imp2)
	bound2, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: imp2.CertRef, KeyRef: csr2.KeyRef, Bindings: bindings})
	if err != nil {
		t.Fatalf("renewal Bind: %v", err)
	}
	scan.value("bind2", bound2)
	scan.value("bind2.token", bound2.RollbackToken)
	inv, err := p.Inventory(ctx, tgt)
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	scan.value("inventory", inv)
	if err := p.Rollback(ctx, tgt, bound2.RollbackToken); err != nil {
		t.Fatalf("Rollback to the first PCI key: %v", err)
	}
	if got, err := served(ctx, sim, "vs_www"); err != nil || !got.Equal(cert1) {
		t.Fatalf("after Rollback vs_www does not serve the first certificate: %v", err)
	}
	cleaned, err := p.Cleanup(ctx, tgt, []sdk.ObjectRef{{CertRef: imp2.CertRef, KeyRef: csr2.KeyRef}})
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	scan.value("cleanup", cleaned)

	// Failures where the device echoes the request body, passphrase included: on key creation,
	// and on the creation of the key's profile (the last request that carries it).
	sim.InjectFault(bigipsim.Fault{Method: http.MethodPost, PathPrefix: "/mgmt/tm/sys/crypto/key", Status: http.StatusBadRequest,
		Message: "01070311:3: Key generation failed.", EchoRequest: true})
	_, err = p.GenerateCSR(ctx, tgt, sdk.CSRRequest{NameHint: "echo", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		Subject: sdk.Subject{CommonName: "echo.example.test"}})
	scan.failure("GenerateCSR with an echoing device (key)", err)
	sim.InjectFault(bigipsim.Fault{Method: http.MethodPost, PathPrefix: "/mgmt/tm/ltm/profile/client-ssl", Status: http.StatusBadRequest,
		Message: "01070734:3: Configuration error.", EchoRequest: true})
	_, err = p.GenerateCSR(ctx, tgt, sdk.CSRRequest{NameHint: "echo", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		Subject: sdk.Subject{CommonName: "echo.example.test"}})
	scan.failure("GenerateCSR with an echoing device (profile)", err)

	// Bind and Rollback never need a passphrase, so no secret of any kind matters to them.
	before := len(sim.PassphrasesReceived())
	csr3, imp3, _ := enroll(t, p, tgt, ca, "www3", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 384})
	if n := len(sim.PassphrasesReceived()) - before; n != 1 {
		t.Errorf("one GenerateCSR and ImportCert sent %d passphrases; want exactly one (the new key's)", n)
	}
	noSecret := tgt
	noSecret.Credentials.APIKey = ""
	before = len(sim.PassphrasesReceived())
	bound3, err := p.Bind(ctx, noSecret, sdk.BindRequest{CertRef: imp3.CertRef, KeyRef: csr3.KeyRef, Bindings: bindings})
	if err != nil {
		t.Fatalf("Bind without credentials.api_key: %v", err)
	}
	if err := p.Rollback(ctx, noSecret, bound3.RollbackToken); err != nil {
		t.Fatalf("Rollback without credentials.api_key: %v", err)
	}
	if n := len(sim.PassphrasesReceived()) - before; n != 0 {
		t.Errorf("Bind and Rollback sent %d passphrases; they must need none", n)
	}

	secrets := map[string]string{"PCI secret (api_key)": pciSecret, "password": tgt.Credentials.Password}
	received := sim.PassphrasesReceived()
	if len(received) < 5 {
		t.Fatalf("the device saw %d passphrases; the test did not exercise PCI keys", len(received))
	}
	for i, pass := range received {
		if len(pass) < 20 {
			t.Errorf("passphrase %d has %d characters; too weak", i, len(pass))
		}
		secrets[fmt.Sprintf("passphrase %d", i)] = pass
	}
	for i, tok := range sim.TokensIssued() {
		secrets[fmt.Sprintf("login token %d", i)] = tok
	}
	logs := firstLog.String() + secondLog.String()
	for _, want := range []string{`"@level":"trace"`, "/mgmt/tm/sys/crypto/key", "/mgmt/tm/transaction", `"@level":"debug"`, "call failed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the plugin log has no %q: the scan would not cover trace/debug logging", want)
		}
	}
	corpus := map[string]string{"plugin stderr": logs}
	for i, o := range scan.observed {
		corpus[fmt.Sprintf("returned value or error %d", i)] = o
	}
	for where, text := range corpus {
		for name, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains the %s", where, name)
			}
		}
	}
}

// TestEchoFaultRepeatsThePassphrase is the positive control of the leak test: with EchoRequest,
// the simulated device really sends a request's passphrase back, so only the plugin's scrubbing
// keeps it out of errors.
func TestEchoFaultRepeatsThePassphrase(t *testing.T) {
	sim := startSim(t, bigipsim.DefaultConfig())
	sim.InjectFault(bigipsim.Fault{Method: http.MethodPost, PathPrefix: "/mgmt/tm/sys/crypto/key", Status: http.StatusBadRequest, EchoRequest: true})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(sim.CACertPEM()))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequestWithContext(ctxFor(t), http.MethodPost, sim.URL()+"/mgmt/tm/sys/crypto/key",
		strings.NewReader(`{"name":"k","keyType":"ec-private","curveName":"prime256v1","passphrase":"canary-passphrase-123"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", "admin-sim-password")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "canary-passphrase-123") {
		t.Fatalf("the echo fault answered %d %s; it should repeat the passphrase", resp.StatusCode, body)
	}
}

// processMemoryContains reports whether a process's writable memory holds needle; it reads
// /proc/<pid>/maps and /proc/<pid>/mem (a child of the test, same user).
func processMemoryContains(t *testing.T, pid int, needle []byte) (bool, int) {
	t.Helper()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Skipf("cannot read the plugin's memory map: %v", err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Skipf("cannot read the plugin's memory: %v", err)
	}
	defer mem.Close()
	scanned := 0
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[1], "rw") {
			continue
		}
		var start, end uint64
		if _, err := fmt.Sscanf(f[0], "%x-%x", &start, &end); err != nil || end <= start || end-start > 1<<30 {
			continue
		}
		buf := make([]byte, end-start)
		n, _ := mem.ReadAt(buf, int64(start))
		scanned += n
		if i := bytes.Index(buf[:n], needle); i >= 0 {
			if os.Getenv("F5_MEMSCAN_DEBUG") != "" {
				lo, hi := max(0, i-200), min(n, i+len(needle)+60)
				t.Logf("found in %s at +%d: %q <<SECRET>> %q", line, i, buf[lo:i], buf[i+len(needle):hi])
			}
			return true, scanned
		}
	}
	return false, scanned
}

// TestPCIPassphraseNotInPluginMemory: once GenerateCSR has returned, the plugin process's memory
// holds no copy of the new key's passphrase (the device has it, encrypted, in the key's profile).
func TestPCIPassphraseNotInPluginMemory(t *testing.T) {
	sim := startSim(t, bigipsim.DefaultConfig())
	tgt := target(sim)
	launched := conformance.Launch(t, pluginPath, "trace")
	p, pid := launched.Plugin, launched.PID
	ctx := ctxFor(t)
	csr, err := p.GenerateCSR(ctx, tgt, sdk.CSRRequest{NameHint: "mem", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		Subject: sdk.Subject{CommonName: "mem.example.test"}})
	if err != nil {
		t.Fatalf("GenerateCSR: %v", err)
	}
	keyPath, _, _ := strings.Cut(csr.KeyRef, "#")
	pass, ok := sim.KeyPassphrase(keyPath)
	if !ok {
		t.Fatal("the key is not protected")
	}
	// Positive control: the scan finds a string the plugin does hold (its key path, in no
	// buffer certfleet clears).
	if found, _ := processMemoryContains(t, pid, []byte(strings.TrimPrefix(keyPath, "/Common/"))); !found {
		t.Fatal("the memory scan does not find the key's name, which the plugin surely held: it reads nothing")
	}
	found, scanned := processMemoryContains(t, pid, []byte(pass))
	t.Logf("scanned %d bytes of the plugin's writable memory", scanned)
	if found {
		t.Fatal("the plugin process still holds the passphrase after GenerateCSR returned")
	}
}
