package state

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state/pgtest"
)

func TestCopySQLiteStateToPostgres(t *testing.T) {
	ctx := context.Background()
	from, err := Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	to, err := OpenPostgres(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer to.Close()

	na := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, name := range []string{"www", "mail"} {
		if err := from.SaveDeployment(ctx, Deployment{Certificate: name, Serial: name + "-1", NotAfter: na, ChainPEM: []string{"c"}}); err != nil {
			t.Fatal(err)
		}
	}
	done := &Operation{ID: "done", Certificate: "www", Step: StepStarted}
	if err := from.CreateOperation(ctx, done); err != nil {
		t.Fatal(err)
	}
	if err := from.CompleteOperation(ctx, done, Deployment{Certificate: "www", Serial: "www-2", NotAfter: na}); err != nil {
		t.Fatal(err)
	}
	open := &Operation{ID: "open", Certificate: "mail", Step: StepStarted}
	if err := from.CreateOperation(ctx, open); err != nil {
		t.Fatal(err)
	}
	open.Step, open.SubmitState, open.OrderRef = StepSubmitted, SubmitPlaced, "order-7"
	if err := from.SaveOperation(ctx, open); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		id, err := from.StartRun(ctx, i == 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := from.RecordResults(ctx, []Result{{RunID: id, Certificate: "www", Outcome: OutcomeDeployed}, {RunID: id, Certificate: "mail", Outcome: OutcomePending}}); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if err := from.FinishRun(ctx, id, "ok"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := from.SaveAccount(ctx, "acme", []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}

	n, err := CopyToPostgres(ctx, from, to)
	if err != nil {
		t.Fatal(err)
	}
	// Two result rows: each certificate had the same result in the three runs.
	if want := (CopyCounts{Deployments: 2, Operations: 2, Runs: 3, Results: 2, Accounts: 1}); n != want {
		t.Fatalf("copied %+v, want %+v", n, want)
	}
	// Everything reads the same through the Store interface.
	for _, read := range []struct {
		name string
		fn   func(Store) (any, error)
	}{
		{"deployments", func(s Store) (any, error) { return s.Deployments(ctx) }},
		{"open operations", func(s Store) (any, error) { return s.OpenOperations(ctx) }},
		{"last results", func(s Store) (any, error) { return s.LastResults(ctx) }},
		{"runs", func(s Store) (any, error) { return s.Runs(ctx, 10) }},
		{"history", func(s Store) (any, error) { return s.(historian).History(ctx, "", 10) }},
	} {
		a, err := read.fn(from)
		if err != nil {
			t.Fatal(err)
		}
		b, err := read.fn(to)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalize(a), normalize(b)) {
			t.Errorf("%s differ after the copy:\nsqlite:   %+v\npostgres: %+v", read.name, a, b)
		}
	}
	if acc, ok, _ := to.LoadAccount(ctx, "acme"); !ok || string(acc) != "\x01\x02\x03" {
		t.Errorf("account: %v %v", acc, ok)
	}
	// The copied open operation still blocks a second one; new runs number on.
	if err := to.CreateOperation(ctx, &Operation{ID: "x", Certificate: "mail", Step: StepStarted}); err == nil {
		t.Error("a second open operation was accepted after the copy")
	}
	if id, err := to.StartRun(ctx, false); err != nil || id != 4 {
		t.Errorf("next run id %d, %v; want 4", id, err)
	}
	// Copying again would mix two states.
	if _, err := CopyToPostgres(ctx, from, to); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("second copy: %v", err)
	}
}

// normalize makes run times comparable: PostgreSQL keeps microseconds, SQLite nanoseconds.
func normalize(v any) any {
	at := func(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }
	if last, ok := v.(map[string]Result); ok {
		out := map[string]Result{}
		for k, r := range last {
			r.FinishedAt = at(r.FinishedAt)
			out[k] = r
		}
		return out
	}
	if hs, ok := v.([]RunHistory); ok {
		out := make([]RunHistory, len(hs))
		for i, h := range hs {
			h.StartedAt, h.FinishedAt = at(h.StartedAt), at(h.FinishedAt)
			rs := make([]Result, len(h.Results))
			for j, r := range h.Results {
				r.FinishedAt = at(r.FinishedAt)
				rs[j] = r
			}
			h.Results = rs
			out[i] = h
		}
		return out
	}
	if runs, ok := v.([]Run); ok {
		out := make([]Run, len(runs))
		for i, r := range runs {
			r.StartedAt, r.FinishedAt = r.StartedAt.Truncate(time.Microsecond).UTC(), r.FinishedAt.Truncate(time.Microsecond).UTC()
			out[i] = r
		}
		return out
	}
	return v
}
