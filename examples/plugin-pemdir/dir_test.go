//go:build unix

package pemdir_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
)

// flockFile takes a flock(2) on the device's lock file as another tool (flock(1)) would.
func flockFile(t *testing.T, dir string, how int) (release func()) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, ".certfleet.lock"), os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		t.Fatalf("flock: %v", err)
	}
	return func() { f.Close() }
}

// TestLockIsSharedForReadsAndExclusiveForWrites: an Inventory runs beside another reader of the
// lock, a write call waits for it, and neither is kept out by a finished call.
func TestLockIsSharedForReadsAndExclusiveForWrites(t *testing.T) {
	target, _ := deployedDevice(t, 1)
	dir := target.Address
	ctx := sdk.WithLogger(context.Background(), hclog.NewNullLogger())
	p := pemdir.New()
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 100*time.Millisecond) }

	release := flockFile(t, dir, syscall.LOCK_SH)
	if list, err := p.Inventory(ctx, target); err != nil || len(list) != 1 {
		t.Fatalf("Inventory beside a shared holder: %d certificates, %v", len(list), err)
	}
	c, cancel := short()
	_, err := p.Commit(c, target, sdk.CommitRequest{})
	cancel()
	if sdk.CodeOf(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "held by another process") {
		t.Fatalf("Commit while another process reads: %v, want DeadlineExceeded waiting for the lock", err)
	}
	release()

	release = flockFile(t, dir, syscall.LOCK_EX)
	c, cancel = short()
	_, err = p.Inventory(c, target)
	cancel()
	if sdk.CodeOf(err) != codes.DeadlineExceeded {
		t.Fatalf("Inventory while another process writes: %v, want DeadlineExceeded", err)
	}
	release()

	// The calls above let go of the lock: another tool gets it exclusively at once.
	flockFile(t, dir, syscall.LOCK_EX)()
	if _, err := p.Commit(ctx, target, sdk.CommitRequest{}); err != nil {
		t.Fatal(err)
	}
	flockFile(t, dir, syscall.LOCK_EX)()
}

// TestAddressMustBeADirectory: a missing directory is unavailable (it may come back), a file is
// a configuration error; a directory missing its subdirectories gets them.
func TestAddressMustBeADirectory(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := pemdir.New()
	for _, c := range []struct {
		address string
		code    codes.Code
		text    string
	}{
		{filepath.Join(base, "missing"), codes.Unavailable, "directory " + filepath.Join(base, "missing")},
		{filepath.Join(file, "below"), codes.Unavailable, "not a directory"},
		{file, codes.InvalidArgument, "is not a directory"},
	} {
		_, err := p.Inventory(context.Background(), sdk.Target{Name: "d", Address: c.address})
		if sdk.CodeOf(err) != c.code || err == nil || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: %v, want %v containing %q", c.address, err, c.code, c.text)
		}
	}
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	if list, err := p.Inventory(context.Background(), sdk.Target{Name: "d", Address: empty}); err != nil || len(list) != 0 {
		t.Fatalf("empty directory: %v, %v", list, err)
	}
	for _, sub := range []string{"keys", "certs", "live"} {
		if st, err := os.Stat(filepath.Join(empty, sub)); err != nil || !st.IsDir() {
			t.Errorf("%s not made: %v", sub, err)
		}
	}
	if err := os.RemoveAll(filepath.Join(empty, "live")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(empty, "live"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := p.Inventory(context.Background(), sdk.Target{Name: "d", Address: empty})
	if sdk.CodeOf(err) != codes.Unavailable || !strings.Contains(err.Error(), "prepare") {
		t.Errorf("live/ is a file: %v, want Unavailable preparing the directory", err)
	}
}

// TestInventorySkipsWhatIsNotACertificateSet: files, hidden directories and non-links are not
// listed; a set without cert.pem or with an unreadable one is skipped with a warning naming it.
func TestInventorySkipsWhatIsNotACertificateSet(t *testing.T) {
	target, keys := deployedDevice(t, 2)
	certs := filepath.Join(target.Address, "certs")
	for _, d := range []string{"no-cert", "garbage", ".tmp-x"} {
		if err := os.Mkdir(filepath.Join(certs, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for path, data := range map[string]string{
		filepath.Join(certs, "garbage", "cert.pem"):               "not PEM",
		filepath.Join(certs, ".tmp-x", "cert.pem"):                "not PEM",
		filepath.Join(certs, "stray-file"):                        "x",
		filepath.Join(target.Address, "live", "not-a-link"):       "x",
		filepath.Join(certs, "no-cert", "chain.pem"):              "",
		filepath.Join(target.Address, "live", ".tmp-site00-1234"): "",
	} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	ctx := sdk.WithLogger(context.Background(), hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn}))
	list, err := pemdir.New().Inventory(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(keys) {
		t.Fatalf("%d certificates listed; want %d: %+v", len(list), len(keys), list)
	}
	for i, dc := range list {
		if keys[dc.CertRef] == "" || dc.KeyRef != keys[dc.CertRef] || len(dc.Bindings) != 1 {
			t.Errorf("listed %+v", dc)
		}
		if i > 0 && list[i-1].CertRef >= dc.CertRef {
			t.Errorf("not in cert_ref order: %s before %s", list[i-1].CertRef, dc.CertRef)
		}
	}
	for _, want := range []string{"skipping certificate directory without cert.pem: cert_ref=no-cert", "skipping unreadable certificate: cert_ref=garbage"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no warning %q in:\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), ".tmp-x") {
		t.Errorf("a hidden directory was read:\n%s", logs.String())
	}
}

// TestCallsLeaveNoDescriptorOpen: whatever a call opens below the directory (the directory
// itself, its lock, the access log, the files it reads) is closed when it returns, failed or not.
func TestCallsLeaveNoDescriptorOpen(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd")
	}
	target, _ := deployedDevice(t, 3)
	ctx := sdk.WithLogger(context.Background(), hclog.NewNullLogger())
	p := pemdir.New()
	if err := os.Remove(filepath.Join(target.Address, "certs", mustOne(t, filepath.Join(target.Address, "certs")), "cert.pem")); err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	for i := 0; i < 20; i++ {
		if _, err := p.Inventory(ctx, target); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Inventory(sdk.WithFingerprintsOnly(ctx), target); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Cleanup(ctx, target, []sdk.ObjectRef{{CertRef: "no-such-set"}}); err != nil {
			t.Fatal(err)
		}
		bad := target
		bad.Address = filepath.Join(target.Address, "access.log")
		if _, err := p.Inventory(ctx, bad); err == nil {
			t.Fatal("Inventory of a file succeeded")
		}
		bad = sdk.Target{Name: "web", Address: target.Address, Options: sdk.Options{"call_delay": "fast"}}
		if _, err := p.Inventory(ctx, bad); err == nil {
			t.Fatal("Inventory with a bad option succeeded")
		}
		c, cancel := context.WithTimeout(ctx, time.Millisecond)
		release := flockFile(t, target.Address, syscall.LOCK_EX)
		if _, err := p.Inventory(c, target); !errors.Is(err, context.DeadlineExceeded) && sdk.CodeOf(err) != codes.DeadlineExceeded {
			t.Fatalf("Inventory past its deadline: %v", err)
		}
		release()
		cancel()
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after the calls; %d before", after, before)
	}
}

func mustOne(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("%s: %v", dir, err)
	}
	return entries[0].Name()
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
