package pluginhost

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
)

var pemdirBinary string

func TestMain(m *testing.M) {
	conformance.Main(m, "github.com/certfleet/certfleet/examples/plugin-pemdir/cmd/certfleet-plugin-pemdir", &pemdirBinary)
}

// fixture is a host with the pemdir plugin in its own plugins directory and a device directory.
type fixture struct {
	host      *Host
	pluginDir string
	device    sdk.Target
	logs      *conformance.LogBuffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pluginDir := t.TempDir()
	copyFile(t, pemdirBinary, filepath.Join(pluginDir, "certfleet-plugin-pemdir"))
	logs := &conformance.LogBuffer{}
	host := New(Options{
		Dirs: []string{pluginDir}, SkipPATH: true, PinsFile: filepath.Join(t.TempDir(), "plugins.lock.json"),
		Logger: hclog.New(&hclog.LoggerOptions{Name: "certfleet", Output: logs, Level: hclog.Debug}),
	})
	t.Cleanup(host.Close)
	return &fixture{
		host: host, pluginDir: pluginDir, logs: logs,
		device: sdk.Target{Name: "web1", Address: t.TempDir(), Options: sdk.Options{"links": []any{"www"}}},
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// holdLock takes the pemdir directory lock, as another tool on the host would.
func holdLock(t *testing.T, dir string) func() {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, ".certfleet.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }
}

func TestEveryRPCAcrossTheProcessBoundary(t *testing.T) {
	f := newFixture(t)
	p, err := f.host.Plugin("pemdir")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, time.Minute)
	info, err := p.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "pemdir" || !info.Capabilities.SupportsBinding("live-link") {
		t.Fatalf("GetInfo: %+v", info)
	}
	if _, err := p.CheckTarget(ctx, f.device); err != nil {
		t.Fatalf("CheckTarget: %v", err)
	}
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := p.GenerateCSR(ctx, f.device, sdk.CSRRequest{
		NameHint: "www", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
		Subject: sdk.Subject{CommonName: "www.example.com"}, SANs: sdk.SANs{DNSNames: []string{"www.example.com"}},
	})
	if err != nil {
		t.Fatalf("GenerateCSR: %v", err)
	}
	leaf, err := ca.SignCSR(csr.PEM, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	imported, err := p.ImportCert(ctx, f.device, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(leaf), ChainPEM: ca.ChainPEM()})
	if err != nil {
		t.Fatalf("ImportCert: %v", err)
	}
	bound, err := p.Bind(ctx, f.device, sdk.BindRequest{CertRef: imported.CertRef, KeyRef: csr.KeyRef, Bindings: []sdk.Binding{{Kind: "live-link", Name: "www"}}})
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	if res, err := p.Commit(ctx, f.device, sdk.CommitRequest{Description: "test"}); err != nil || !res.Changed {
		t.Fatalf("Commit: %+v, %v", res, err)
	}
	inv, err := p.Inventory(ctx, f.device)
	if err != nil || len(inv) != 1 || len(inv[0].Bindings) != 1 || inv[0].SHA256Fingerprint != sdk.Fingerprint(leaf) {
		t.Fatalf("Inventory: %+v, %v", inv, err)
	}
	if err := p.Rollback(ctx, f.device, bound.RollbackToken); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	results, err := p.Cleanup(ctx, f.device, []sdk.ObjectRef{{CertRef: imported.CertRef, KeyRef: csr.KeyRef}})
	if err != nil || len(results) != 1 || !results[0].Removed {
		t.Fatalf("Cleanup: %+v, %v", results, err)
	}
	// A contract error crosses the boundary with its code and reason.
	_, err = p.Bind(ctx, f.device, sdk.BindRequest{CertRef: imported.CertRef, Bindings: []sdk.Binding{{Kind: "live-link", Name: "nope"}}})
	if e := sdk.AsError(err); e == nil || e.Code != codes.NotFound || e.Reason != sdk.ReasonUnknownBinding {
		t.Fatalf("Bind to an unknown link: %v", err)
	}
	// The plugin's own log lines reach the host logger under the plugin's name.
	if logs := f.logs.String(); !strings.Contains(logs, "certfleet.plugin.pemdir") || !strings.Contains(logs, "generated key and CSR") {
		t.Errorf("plugin logs were not relayed with the plugin's name:\n%s", logs)
	}
}

func TestDeadlineExpiresInsideThePlugin(t *testing.T) {
	f := newFixture(t)
	p, _ := f.host.Plugin("pemdir")
	if _, err := p.Info(ctxTimeout(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	release := holdLock(t, f.device.Address)
	defer release()
	start := time.Now()
	_, err := p.Inventory(ctxTimeout(t, 300*time.Millisecond), f.device)
	if code := sdk.CodeOf(err); code != codes.DeadlineExceeded {
		t.Fatalf("Inventory while the directory is locked: code %v (%v), want DeadlineExceeded", code, err)
	}
	if elapsed := time.Since(start); elapsed < 250*time.Millisecond {
		t.Fatalf("call returned after %v, before its deadline: it did not wait inside the plugin", elapsed)
	}
	// The plugin itself saw the deadline: its wait for the lock ended with it.
	for !strings.Contains(f.logs.String(), "waiting for the lock") {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the plugin never reported the deadline inside its call; logs:\n%s", f.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	release()
	if _, err := p.Inventory(ctxTimeout(t, time.Minute), f.device); err != nil {
		t.Fatalf("Inventory after the lock is released: %v", err)
	}
}

func TestCancelledContextStopsTheCall(t *testing.T) {
	f := newFixture(t)
	p, _ := f.host.Plugin("pemdir")
	if _, err := p.Info(ctxTimeout(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	release := holdLock(t, f.device.Address)
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := p.GenerateCSR(ctx, f.device, sdk.CSRRequest{NameHint: "x", KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}, Subject: sdk.Subject{CommonName: "x.example"}})
	if code := sdk.CodeOf(err); code != codes.Canceled {
		t.Fatalf("GenerateCSR cancelled mid-call: code %v (%v), want Canceled", code, err)
	}
	if sdk.IsRetryable(err) {
		t.Error("a cancelled call must not be reported as retryable")
	}
}

func TestKilledPluginIsRestartedOnTheNextCall(t *testing.T) {
	f := newFixture(t)
	p, _ := f.host.Plugin("pemdir")
	if _, err := p.Info(ctxTimeout(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	firstPID := p.PID()
	if firstPID == 0 {
		t.Fatal("no plugin process")
	}
	release := holdLock(t, f.device.Address)
	errc := make(chan error, 1)
	go func() {
		_, err := p.Inventory(ctxTimeout(t, time.Minute), f.device)
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond) // the call is now waiting inside the plugin
	if err := syscall.Kill(firstPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	release()
	if !sdk.IsRetryable(err) || sdk.AsError(err).Reason != sdk.ReasonPluginCrashed {
		t.Fatalf("call to a killed plugin: %v (code %v); want a retryable PLUGIN_CRASHED error", err, sdk.CodeOf(err))
	}
	if _, err := p.Inventory(ctxTimeout(t, time.Minute), f.device); err != nil {
		t.Fatalf("next call after the crash: %v", err)
	}
	if pid := p.PID(); pid == 0 || pid == firstPID {
		t.Fatalf("plugin was not restarted: pid %d (first %d)", pid, firstPID)
	}
}

func TestChangedBinaryIsRefusedUntilRepinned(t *testing.T) {
	f := newFixture(t)
	p, _ := f.host.Plugin("pemdir")
	if _, err := p.Info(ctxTimeout(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.host.Close()

	// Someone replaces the binary (here: the same program with bytes appended).
	bin := filepath.Join(f.pluginDir, "certfleet-plugin-pemdir")
	fh, err := os.OpenFile(bin, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.Write([]byte("tampered"))
	fh.Close()

	host := New(Options{Dirs: []string{f.pluginDir}, SkipPATH: true, PinsFile: f.host.opts.PinsFile})
	defer host.Close()
	p2, _ := host.Plugin("pemdir")
	_, err = p2.Info(ctxTimeout(t, time.Minute))
	var cerr *ChecksumError
	if !errors.As(err, &cerr) {
		t.Fatalf("changed binary: %v, want a ChecksumError", err)
	}
	for _, want := range []string{`refusing plugin "pemdir"`, bin, "was pinned on", "certfleet plugins pin pemdir", "certfleet plugins install"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if p2.PID() != 0 {
		t.Error("a refused binary was started")
	}
	if _, err := host.Pin("pemdir"); err != nil {
		t.Fatal(err)
	}
	if _, err := p2.Info(ctxTimeout(t, time.Minute)); err != nil {
		t.Fatalf("after re-pinning: %v", err)
	}
}

func TestCloseEndsEveryPluginProcess(t *testing.T) {
	f := newFixture(t)
	p, _ := f.host.Plugin("pemdir")
	if _, err := p.Info(ctxTimeout(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	pid := p.PID()
	f.host.Close()
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("plugin process %d still runs after Close", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := f.host.Plugin("pemdir"); err == nil {
		t.Error("a closed host handed out a plugin")
	}
}

func TestDiscoverAndMissingPlugin(t *testing.T) {
	f := newFixture(t)
	found := f.host.Discover()
	if len(found) != 1 || found[0].Name != "pemdir" {
		t.Fatalf("Discover: %+v", found)
	}
	_, err := f.host.Plugin("citrix-nitro")
	if err == nil || !strings.Contains(err.Error(), "certfleet-plugin-citrix-nitro") || !strings.Contains(err.Error(), f.pluginDir) {
		t.Fatalf("missing plugin error should name the binary and where it looked: %v", err)
	}
}
