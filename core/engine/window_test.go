package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Finding 3: a renewal window as long as the certificate's lifetime (renew_before: 400d on a
// 365-day certificate) would make every run order again. The plan refuses to order and says why.
func TestWindowAsLongAsTheLifetimeOrdersNothing(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	c := testCert()
	c.RenewBefore = 400 * 24 * time.Hour
	d := &state.Deployment{Certificate: "www", CertRef: "www-1", Fingerprint: "aa", SpecHash: specHash(c),
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour)}
	inv := inventory{
		certs:   map[string]sdk.DeviceCertificate{"www-1": {CertRef: "www-1", SHA256Fingerprint: "aa"}},
		boundAt: map[string][]string{"live-link/www": {"www-1"}},
	}
	action, reason := decide(c, d, inv, false, now)
	if action != ActionUnknown || !strings.Contains(reason, "not shorter than the certificate's lifetime of 365 days") {
		t.Fatalf("decide: %s, %q", action, reason)
	}
	c.RenewBefore = 364 * 24 * time.Hour
	d.NotBefore, d.NotAfter = now.Add(-10*24*time.Hour), now.Add(355*24*time.Hour)
	if action, reason := decide(c, d, inv, false, now); action != ActionRenew {
		t.Fatalf("a wide but shorter window: %s, %q", action, reason)
	}
}

// Finding 7: two installations managing one binding undo each other on every run. The rebinds
// are counted; the plan warns, then stops rebinding and says why.
func TestBindingFoughtOverStopsBeingRebound(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	c := testCert()
	d := &state.Deployment{Certificate: "www", CertRef: "www-1", Fingerprint: "aa", SpecHash: specHash(c),
		NotBefore: now.Add(-10 * 24 * time.Hour), NotAfter: now.Add(80 * 24 * time.Hour)}
	elsewhere := inventory{
		certs:   map[string]sdk.DeviceCertificate{"www-1": {CertRef: "www-1", SHA256Fingerprint: "aa"}, "other-1": {CertRef: "other-1"}},
		boundAt: map[string][]string{"live-link/www": {"other-1"}},
	}
	if action, reason := decide(c, d, elsewhere, false, now); action != ActionRebind || strings.Contains(reason, "another") {
		t.Fatalf("first drift: %s %q", action, reason)
	}
	d.Rebinds, d.LastRebindAt = 1, now.Add(-time.Hour)
	if action, reason := decide(c, d, elsewhere, false, now); action != ActionRebind || !strings.Contains(reason, "another certfleet installation") {
		t.Fatalf("second drift within a day: %s %q", action, reason)
	}
	d.Rebinds = maxRebinds
	if action, reason := decide(c, d, elsewhere, false, now); action != ActionUnknown || !strings.Contains(reason, "Nothing is rebound") {
		t.Fatalf("third drift within a day: %s %q", action, reason)
	}
	d.LastRebindAt = now.Add(-48 * time.Hour)
	if action, _ := decide(c, d, elsewhere, false, now); action != ActionRebind {
		t.Fatalf("drift two days after the last rebind: %s", action)
	}
}
