package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReliabilityLostOrCorruptState: a state database emptied to 0 bytes, deleted, or corrupted
// next to a fleet certfleet manages stops every command before anything is ordered; the recovery
// command then starts afresh on purpose.
func TestReliabilityLostOrCorruptState(t *testing.T) {
	for _, c := range []struct {
		name string
		harm func(path string) error
		want string
		code int
	}{
		{"emptied", func(p string) error { return os.Truncate(p, 0) }, "certfleet state accept-empty", 5},
		{"deleted", os.Remove, "certfleet state accept-empty", 5},
		{"corrupt", func(p string) error { return os.WriteFile(p, []byte(strings.Repeat("not a database ", 400)), 0o600) }, "state database", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newSCMProxyFleet(t, map[string][]string{"web1": {"www", "api"}})
			if !f.settle(t) {
				t.Fatal("enroll did not settle")
			}
			orders := len(f.sim.Orders())
			path := filepath.Join(f.dir, "state.db")
			os.Remove(path + "-wal")
			os.Remove(path + "-shm")
			if err := c.harm(path); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"run"}, {"plan"}, {"status"}} {
				res := f.certfleet(nil, args...)
				if res.code != c.code || !strings.Contains(res.stderr, c.want) {
					t.Fatalf("%s on a %s state: exit %d, want %d with %q\n%s", args[0], c.name, res.code, c.code, c.want, lastLines(res.stderr, 5))
				}
			}
			if n := len(f.sim.Orders()); n != orders {
				t.Fatalf("%d orders placed on a %s state", n-orders, c.name)
			}
			if c.code != 5 {
				return
			}
			if res := f.certfleet(nil, "state", "accept-empty"); res.code != 0 {
				t.Fatalf("accept-empty: exit %d\n%s", res.code, res.stderr)
			}
			// Starting afresh adopts what is live on the devices: no new order.
			if report, res := f.run(nil); res.code != 0 || len(report.Results) != 2 || len(f.sim.Orders()) != orders {
				t.Fatalf("after accept-empty: exit %d, %d new orders", res.code, len(f.sim.Orders())-orders)
			}
		})
	}
}

// TestReliabilityExitCodes: a held lock is exit 4 (not a certificate failure), and a plan with a
// device that cannot be inspected is not exit 0.
func TestReliabilityExitCodes(t *testing.T) {
	f := newSCMProxyFleet(t, map[string][]string{"web1": {"www"}})
	lock, err := os.OpenFile(filepath.Join(f.dir, "state.db.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	res := f.certfleet(nil, "run")
	lock.Close()
	if res.code != exitLocked || !strings.Contains(res.stderr, "another certfleet process") {
		t.Fatalf("run while the lock is held: exit %d\n%s", res.code, lastLines(res.stderr, 3))
	}
	if len(f.sim.Orders()) != 0 {
		t.Fatal("a locked-out run ordered")
	}
	// A pemdir device whose directory is a file cannot be inspected.
	dev := filepath.Join(f.dir, "devices", "web1")
	os.RemoveAll(dev)
	os.WriteFile(dev, []byte("x"), 0o600)
	if res := f.certfleet(nil, "plan"); res.code != 1 || !strings.Contains(res.stdout, "unknown") {
		t.Fatalf("plan with a device that cannot be inspected: exit %d\n%s%s", res.code, res.stdout, lastLines(res.stderr, 3))
	}
}

// TestReliabilityConfigThatIsNotAFile: --config /dev/urandom, /dev/zero or a FIFO is refused at
// once, and ${file:/dev/zero} too.
func TestReliabilityConfigThatIsNotAFile(t *testing.T) {
	f := newSCMProxyFleet(t, map[string][]string{"web1": {"www"}})
	fifo := filepath.Join(t.TempDir(), "certfleet.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/dev/urandom", "/dev/zero", fifo} {
		start := time.Now()
		f.config = path
		res := f.certfleet(nil, "validate")
		if res.code != 2 || !strings.Contains(res.stderr, "not a regular file") || time.Since(start) > 30*time.Second {
			t.Fatalf("--config %s: exit %d after %s\n%s", path, res.code, time.Since(start), lastLines(res.stderr, 3))
		}
	}
}
