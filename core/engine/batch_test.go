package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state"
)

// TestSettledRecorderWritesWhileTheRunGoesOn: a full batch is in the state before the run closes
// the recorder; close writes the rest; the results come back in the order added.
func TestSettledRecorderWritesWhileTheRunGoesOn(t *testing.T) {
	ctx := context.Background()
	store, err := state.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	runID, err := store.StartRun(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	result := func(i int) state.Result {
		return state.Result{RunID: runID, Certificate: fmt.Sprintf("cert-%03d", i), Device: "d", Action: string(ActionNone), Outcome: state.OutcomeUnchanged}
	}
	r := newSettledRecorder(ctx, store, 10, 25)
	var first []state.Result
	for i := range 12 { // more than a batch: all 12 are due
		first = append(first, result(i))
	}
	r.add(first)
	recorded := func() int {
		t.Helper()
		last, err := store.LastResults(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(last)
	}
	// The batch is written in the background: wait for it (a bound, not a timing check).
	for deadline := time.Now().Add(10 * time.Second); recorded() < 12; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a full batch was not recorded before close: %d rows", recorded())
		}
	}
	r.add([]state.Result{result(12), result(13), result(14)}) // less than a batch: held until close
	if n := recorded(); n != 12 {
		t.Fatalf("%d results recorded before close, want the 12 of the full batch", n)
	}
	all, err := r.close()
	if err != nil {
		t.Fatal(err)
	}
	if recorded() != 15 || len(all) != 15 {
		t.Fatalf("after close: %d recorded, %d returned, want 15", recorded(), len(all))
	}
	for i, res := range all {
		if res.Certificate != result(i).Certificate {
			t.Fatalf("result %d is %s, want the order added", i, res.Certificate)
		}
	}
}

// TestSettledRecorderReportsTheFirstFailure: a batch the state refuses (a closed database) is
// reported by close, and the results still come back for the report.
func TestSettledRecorderReportsTheFirstFailure(t *testing.T) {
	ctx := context.Background()
	store, err := state.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	r := newSettledRecorder(ctx, store, 2, 3)
	r.add([]state.Result{{Certificate: "a"}, {Certificate: "b"}, {Certificate: "c"}})
	all, err := r.close()
	if err == nil || len(all) != 3 {
		t.Fatalf("close: %d results, error %v; want 3 and the failure", len(all), err)
	}
}
