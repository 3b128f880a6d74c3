package haproxyruntime_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	haproxyruntime "github.com/certfleet/certfleet/plugins/haproxy-runtime"
	"github.com/certfleet/certfleet/plugins/haproxy-runtime/haproxysim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

// The plugin's behaviour against HAProxy's own rules, in process (the conformance suite runs the
// binary).

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func csrRequest(hint string) sdk.CSRRequest {
	return sdk.CSRRequest{NameHint: hint, KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		Subject: sdk.Subject{CommonName: hint + ".example.com"}, SANs: sdk.SANs{DNSNames: []string{hint + ".example.com"}}}
}

// raw sends one command to the simulator as another Runtime API client would.
func raw(t *testing.T, sim *haproxysim.Sim, command, payload string) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(sim.Address, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if payload != "" {
		command += " <<\n" + strings.TrimRight(payload, "\n") + "\n"
	}
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(conn)
	return string(out)
}

func selfSigned(t *testing.T, cn string) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) + string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

func storeNames(sim *haproxysim.Sim) []string {
	var out []string
	for _, st := range sim.Stores() {
		out = append(out, st.Name)
	}
	return out
}

// TestAnotherClientsTransactionIsRetryable: HAProxy holds one certificate transaction at a time;
// while another client's is open, GenerateCSR fails retryably, names the cause, and leaves no
// empty store behind; once it is gone, the same call works.
func TestAnotherClientsTransactionIsRetryable(t *testing.T) {
	sim := startSim(t, haproxysim.Options{})
	p := haproxyruntime.New()
	if got := raw(t, sim, "set ssl cert /etc/haproxy/certs/admin-1.pem", selfSigned(t, "admin")); !strings.Contains(got, "Transaction created") {
		t.Fatal(got)
	}
	before := storeNames(sim)
	_, err := p.GenerateCSR(ctx(t), sim.Target(), csrRequest("blocked"))
	if sdk.CodeOf(err) != codes.Unavailable || !strings.Contains(err.Error(), "The ongoing transaction is about") {
		t.Fatalf("GenerateCSR during another transaction: %v, want Unavailable naming it", err)
	}
	if after := storeNames(sim); len(after) != len(before) {
		t.Errorf("a refused GenerateCSR left stores behind: %v", after)
	}
	if got := sim.Transaction(); got != "/etc/haproxy/certs/admin-1.pem" {
		t.Errorf("the plugin touched another client's transaction: now %q", got)
	}
	raw(t, sim, "abort ssl cert /etc/haproxy/certs/admin-1.pem", "")
	if _, err := p.GenerateCSR(ctx(t), sim.Target(), csrRequest("unblocked")); err != nil {
		t.Fatalf("GenerateCSR once the transaction is gone: %v", err)
	}
}

// TestConcurrentCallsShareOneTransaction: one plugin value serialises its calls per device, so
// many GenerateCSRs at once all succeed; two plugin processes would not (the transaction rule
// refuses the second), which is why the lock is per device and the error retryable.
func TestConcurrentCallsShareOneTransaction(t *testing.T) {
	sim := startSim(t, haproxysim.Options{})
	p := haproxyruntime.New()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.GenerateCSR(ctx(t), sim.Target(), csrRequest("parallel"))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("GenerateCSR %d: %v", i, err)
		}
	}
	if txn := sim.Transaction(); txn != "" {
		t.Errorf("a transaction is left open: %s", txn)
	}
}

// TestBeforeHAProxy31IsRefused: without "dump ssl cert" (3.1+) a parked key cannot be read back;
// CheckTarget says so before anything is ordered, and ImportCert fails without a change.
func TestBeforeHAProxy31IsRefused(t *testing.T) {
	sim := startSim(t, haproxysim.Options{Version: "3.0.9"})
	p := haproxyruntime.New()
	_, err := p.CheckTarget(ctx(t), sim.Target())
	if sdk.CodeOf(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "3.1 or later") {
		t.Fatalf("CheckTarget on 3.0: %v", err)
	}
	csr, err := p.GenerateCSR(ctx(t), sim.Target(), csrRequest("old"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.ImportCert(ctx(t), sim.Target(), sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: selfSigned(t, "x")})
	if sdk.CodeOf(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "3.1") {
		t.Fatalf("ImportCert on 3.0: %v", err)
	}
}

// TestOperatorLevelSocketIsPermissionDenied: certificate commands need "level admin".
func TestOperatorLevelSocketIsPermissionDenied(t *testing.T) {
	sim := startSim(t, haproxysim.Options{OperatorLevel: true})
	_, err := haproxyruntime.New().GenerateCSR(ctx(t), sim.Target(), csrRequest("op"))
	if sdk.CodeOf(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "level admin") {
		t.Fatalf("GenerateCSR on an operator socket: %v", err)
	}
}

// TestKeysCrossTheNetworkOnlyInTLS: a plain socket is accepted on loopback only, unless the
// device says otherwise; a TLS socket is verified. (The remote addresses are parsed, never dialled.)
func TestKeysCrossTheNetworkOnlyInTLS(t *testing.T) {
	p := haproxyruntime.New()
	remote := sdk.Target{Name: "lb", Address: "tcp://haproxy.example.net:9999"}
	_, err := p.GenerateCSR(ctx(t), remote, csrRequest("remote"))
	if sdk.CodeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "plaintext_socket") {
		t.Fatalf("a plain remote socket: %v", err)
	}
	for _, bad := range []string{"https://127.0.0.1:9999", "tcp://127.0.0.1", "unix:///run/haproxy.sock"} {
		if _, err := p.CheckTarget(ctx(t), sdk.Target{Name: "lb", Address: bad}); sdk.CodeOf(err) != codes.InvalidArgument {
			t.Errorf("address %s: %v, want InvalidArgument", bad, err)
		}
	}

	sim := startSim(t, haproxysim.Options{TLS: true})
	target := sim.Target()
	if _, err := p.CheckTarget(ctx(t), target); err != nil {
		t.Fatalf("TLS socket: %v", err)
	}
	untrusted := target
	untrusted.TLS = sdk.TLSConfig{}
	if _, err := p.CheckTarget(ctx(t), untrusted); sdk.CodeOf(err) != codes.FailedPrecondition {
		t.Fatalf("TLS socket with an unknown CA: %v, want FailedPrecondition", err)
	}
	csr, err := p.GenerateCSR(ctx(t), target, csrRequest("tls"))
	if err != nil {
		t.Fatalf("GenerateCSR over TLS: %v", err)
	}
	if !strings.HasPrefix(csr.KeyRef, "certfleet/tls-") {
		t.Errorf("key_ref %q", csr.KeyRef)
	}
}

// TestParkedKeysStayOutOfInventoryAndCleanUp: a key whose certificate never came (an abandoned
// order) is not a certificate in Inventory, and Cleanup of its key_ref removes it.
func TestParkedKeysStayOutOfInventoryAndCleanUp(t *testing.T) {
	sim := startSim(t, haproxysim.Options{})
	p := haproxyruntime.New()
	csr, err := p.GenerateCSR(ctx(t), sim.Target(), csrRequest("abandoned"))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := p.Inventory(ctx(t), sim.Target())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range inv {
		if c.CertRef == csr.KeyRef {
			t.Errorf("Inventory lists the parked key %s", csr.KeyRef)
		}
	}
	if len(inv) != 2 {
		t.Errorf("Inventory lists %d certificates, want the 2 administrators'", len(inv))
	}
	res, err := p.Cleanup(ctx(t), sim.Target(), []sdk.ObjectRef{{KeyRef: csr.KeyRef}, {CertRef: "/etc/haproxy/certs/admin-1.pem"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Removed || res[1].Removed || !strings.Contains(res[1].Reason, "not made by certfleet") {
		t.Errorf("Cleanup: %+v", res)
	}
	for _, name := range storeNames(sim) {
		if name == csr.KeyRef {
			t.Errorf("the parked key %s is still on HAProxy", name)
		}
	}
}

// TestNamesCannotInjectCommands: a newline or ';' in a name would start another Runtime API
// command; such names are refused before anything is sent.
func TestNamesCannotInjectCommands(t *testing.T) {
	sim := startSim(t, haproxysim.Options{})
	p := haproxyruntime.New()
	before := len(sim.Commands())
	for _, name := range []string{"www.crtlist;del ssl cert /etc/haproxy/certs/admin-1.pem", "www\ndel ssl cert x", "two words"} {
		_, err := p.Bind(ctx(t), sim.Target(), sdk.BindRequest{CertRef: "certfleet/x.pem", Bindings: []sdk.Binding{{Kind: "crt-list", Name: name}}})
		if sdk.CodeOf(err) != codes.InvalidArgument {
			t.Errorf("Bind to %q: %v, want InvalidArgument", name, err)
		}
	}
	res, err := p.CheckBindings(ctx(t), sim.Target(), sdk.CheckBindingsRequest{Bindings: []sdk.Binding{{Kind: "crt-list", Name: "a;b"}}})
	if err != nil || res.Bindings[0].OK {
		t.Errorf("CheckBindings of a;b: %+v %v", res, err)
	}
	for _, c := range sim.Commands()[before:] {
		if strings.Contains(c, "del ssl") {
			t.Errorf("a command was injected: %q", c)
		}
	}
}

// TestTransactionLeftByADeadPluginIsAborted: a plugin process killed between "set ssl cert" and
// "commit ssl cert" leaves a transaction on one of its stores open, which would block every later
// change; the next call (holding the device's lock) aborts it and goes on.
func TestTransactionLeftByADeadPluginIsAborted(t *testing.T) {
	sim := startSim(t, haproxysim.Options{})
	if got := raw(t, sim, "new ssl cert certfleet/crashed-000000000000.pem", ""); !strings.Contains(got, "New empty") {
		t.Fatal(got)
	}
	if got := raw(t, sim, "set ssl cert certfleet/crashed-000000000000.pem", selfSigned(t, "crashed")); !strings.Contains(got, "Transaction created") {
		t.Fatal(got)
	}
	if _, err := haproxyruntime.New().GenerateCSR(ctx(t), sim.Target(), csrRequest("after-crash")); err != nil {
		t.Fatalf("GenerateCSR after a crashed plugin's transaction: %v", err)
	}
	if txn := sim.Transaction(); txn != "" {
		t.Errorf("transaction %s still open", txn)
	}
}

// TestRepeatedAttemptLeavesOneStore: a plugin killed inside GenerateCSR, after it made the store
// and opened the transaction that loads the key, answers nobody; the core calls again with the
// same attempt ID. The second call ends the open transaction, removes that store and parks a new
// key, so HAProxy holds one store for the attempt, the one the second answer names.
func TestRepeatedAttemptLeavesOneStore(t *testing.T) {
	sim := startSim(t, haproxysim.Options{})
	p := haproxyruntime.New()
	req := csrRequest("retried")
	req.AttemptID = "0123456789abcdef01234567"
	lost, err := p.GenerateCSR(ctx(t), sim.Target(), req)
	if err != nil {
		t.Fatal(err)
	}
	// The lost call was killed between "set ssl cert" and "commit ssl cert" of its store.
	if got := raw(t, sim, "set ssl cert "+lost.KeyRef, selfSigned(t, "half-loaded")); !strings.Contains(got, "Transaction created") {
		t.Fatal(got)
	}
	again, err := p.GenerateCSR(ctx(t), sim.Target(), req)
	if err != nil {
		t.Fatalf("GenerateCSR again with the same attempt ID: %v", err)
	}
	var ours []string
	for _, name := range storeNames(sim) {
		if strings.HasPrefix(name, "certfleet/retried") {
			ours = append(ours, name)
		}
	}
	if len(ours) != 1 || ours[0] != again.KeyRef {
		t.Fatalf("stores of the attempt %v, want only %s", ours, again.KeyRef)
	}
	if got := sim.Transaction(); got != "" {
		t.Errorf("transaction %q left open", got)
	}
	csr, _ := sdk.ParseCSRPEM(again.PEM)
	for _, st := range sim.Stores() {
		if st.Name == again.KeyRef && (st.Key == nil || !sdk.PublicKeysEqual(st.Key.Public(), csr.PublicKey)) {
			t.Errorf("store %s does not hold the key of the second CSR", st.Name)
		}
	}
	other := req
	other.AttemptID = "another-attempt"
	if next, err := p.GenerateCSR(ctx(t), sim.Target(), other); err != nil || next.KeyRef == again.KeyRef {
		t.Fatalf("another attempt: %v, key_ref %q: want a new store", err, next.KeyRef)
	}
}
