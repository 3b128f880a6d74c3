package issuer

import (
	"fmt"
	"testing"
	"time"
)

// TestRenewAtIsSpreadInsideTheWindowAndStable: RFC 9773 §4.2 — a uniform time inside the
// window, not its start; the same certificate and window always give the same time.
func TestRenewAtIsSpreadInsideTheWindowAndStable(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	w := RenewalWindow{Start: start, End: start.Add(48 * time.Hour)}
	const n = 4000
	var buckets [8]int
	for k := range n {
		key := fmt.Sprintf("fingerprint-%d", k)
		at := w.RenewAt(key)
		if at.Before(w.Start) || !at.Before(w.End) {
			t.Fatalf("%s: %s is outside [%s, %s)", key, at, w.Start, w.End)
		}
		if again := w.RenewAt(key); !again.Equal(at) {
			t.Fatalf("%s: %s then %s; the time must not change between runs", key, at, again)
		}
		buckets[int(at.Sub(w.Start)*8/w.End.Sub(w.Start))]++
	}
	// Each eighth of the window holds about n/8 = 500; a start-of-window policy puts all in the first.
	for b, c := range buckets {
		if c < 400 || c > 600 {
			t.Fatalf("eighth %d of the window holds %d of %d renewals: not uniform (%v)", b, c, n, buckets)
		}
	}
	// A moved window gives a new time inside the new window.
	moved := RenewalWindow{Start: start.Add(-72 * time.Hour), End: start.Add(-71 * time.Hour)}
	if at := moved.RenewAt("fingerprint-1"); at.Before(moved.Start) || !at.Before(moved.End) {
		t.Fatalf("moved window: %s outside [%s, %s)", at, moved.Start, moved.End)
	}
	// A window of one instant (or an inverted one) gives its start.
	if at := (RenewalWindow{Start: start, End: start}).RenewAt("x"); !at.Equal(start) {
		t.Fatalf("empty window: %s", at)
	}
}
