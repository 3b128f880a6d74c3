package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRetireReportsAndCleansUp: certificates removed from the configuration are reported by plan
// and status; `retire` forgets them, revokes on request, and removes their objects from the
// device unless they are still bound.
func TestRetireReportsAndCleansUp(t *testing.T) {
	f, pebble := acmeFleet(t, map[string][]string{"web1": {"www", "api", "old"}})
	if _, res := f.run(nil); res.code != 0 {
		t.Fatalf("enroll: exit %d", res.code)
	}
	oldCert := f.live("web1", "old")
	keys := len(f.keyFiles("web1"))

	// api and old leave the configuration; old's site was taken down (its live link removed).
	spec := f.spec
	spec.Devices = map[string][]string{"web1": {"www"}}
	f.writeConfig(spec)
	if err := os.Remove(filepath.Join(f.dir, "devices", "web1", "live", "old")); err != nil {
		t.Fatal(err)
	}
	res := f.certfleet(nil, "plan")
	for _, name := range []string{"api", "old"} {
		if !strings.Contains(res.stdout, name+" (web1): retired: no longer in the configuration") {
			t.Fatalf("plan does not report %s as retired:\n%s", name, res.stdout)
		}
	}
	if row := statusOf(f.status(), "api"); !row.Retired || !strings.Contains(row.NextAction, "certfleet retire api") {
		t.Fatalf("status of the retired api: %+v", row)
	}

	res = f.certfleet(nil, "retire", "--cleanup", "api")
	if res.code != 0 || !strings.Contains(res.stdout, "still bound at live-link/api") || !strings.Contains(res.stdout, "retired api") {
		t.Fatalf("retire api: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if got := len(f.keyFiles("web1")); got != keys {
		t.Fatalf("retiring a still-bound certificate removed a key: %d keys, want %d", got, keys)
	}
	res = f.certfleet(nil, "retire", "--cleanup", "--revoke", "old")
	if res.code != 0 || !strings.Contains(res.stdout, "removed ") || !strings.Contains(res.stdout, "revoked old") {
		t.Fatalf("retire old: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if !pebble.Revoked(oldCert) {
		t.Fatal("retire --revoke did not revoke at the CA")
	}
	if got := len(f.keyFiles("web1")); got != keys-1 {
		t.Fatalf("%d keys after retiring an unbound certificate with --cleanup, want %d", got, keys-1)
	}
	res = f.certfleet(nil, "plan")
	if strings.Contains(res.stdout, "retired") {
		t.Fatalf("plan still reports retired certificates:\n%s", res.stdout)
	}
	res = f.certfleet(nil, "retire", "www")
	if res.code == 0 || !strings.Contains(res.stderr, "still in the configuration") {
		t.Fatalf("retire of a configured certificate: exit %d\n%s", res.code, res.stderr)
	}
}

// TestRevokeReplacesInOneCommand: by default revoke deploys the replacement first and revokes
// the old certificate once it is no longer served; for key compromise it revokes first, then
// deploys.
func TestRevokeReplacesInOneCommand(t *testing.T) {
	f, pebble := acmeFleet(t, map[string][]string{"web1": {"www"}})
	if _, res := f.run(nil); res.code != 0 {
		t.Fatalf("enroll: exit %d", res.code)
	}
	first := f.live("web1", "www")
	res := f.certfleet(nil, "revoke", "www")
	second := f.live("web1", "www")
	if res.code != 0 || second.Equal(first) || !pebble.Revoked(first) || pebble.Revoked(second) {
		t.Fatalf("revoke (superseded): exit %d, replaced %v, old revoked %v, new revoked %v\n%s%s",
			res.code, !second.Equal(first), pebble.Revoked(first), pebble.Revoked(second), res.stdout, res.stderr)
	}
	res = f.certfleet(nil, "revoke", "--reason", "key-compromise", "www")
	third := f.live("web1", "www")
	if res.code != 0 || third.Equal(second) || !pebble.Revoked(second) || pebble.Revoked(third) {
		t.Fatalf("revoke (key-compromise): exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}
