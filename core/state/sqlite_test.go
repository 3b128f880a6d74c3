package state

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func openTemp(t *testing.T) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestMigrationsApplyOnceAndPersist(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != len(migrations) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
	}
	if err := s.SaveDeployment(ctx, Deployment{Certificate: "www", Serial: "01", NotAfter: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	again, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer again.Close()
	d, ok, err := again.Deployment(ctx, "www")
	if err != nil || !ok || d.Serial != "01" {
		t.Fatalf("deployment after reopen: %+v %v %v", d, ok, err)
	}
}

func TestOneOpenOperationPerCertificate(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	op := &Operation{ID: "op1", Certificate: "www", Step: StepStarted, RequestID: "r1"}
	if err := s.CreateOperation(ctx, op); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOperation(ctx, &Operation{ID: "op2", Certificate: "www", Step: StepStarted}); err == nil {
		t.Fatal("a second open operation for the same certificate was recorded")
	}
	op.Step, op.KeyRef, op.CSRPEM = StepCSR, "key-1", "CSR"
	if err := s.SaveOperation(ctx, op); err != nil {
		t.Fatal(err)
	}
	got, err := s.OpenOperation(ctx, "www")
	if err != nil || got == nil || got.Step != StepCSR || got.KeyRef != "key-1" {
		t.Fatalf("open operation: %+v, %v", got, err)
	}
	if err := s.CompleteOperation(ctx, got, Deployment{Certificate: "www", CertRef: "c1"}); err != nil {
		t.Fatal(err)
	}
	if open, _ := s.OpenOperation(ctx, "www"); open != nil {
		t.Fatalf("operation still open after completion: %+v", open)
	}
	if d, ok, _ := s.Deployment(ctx, "www"); !ok || d.CertRef != "c1" {
		t.Fatalf("deployment not recorded with the completion: %+v", d)
	}
	// A new operation can start once the last one is finished.
	if err := s.CreateOperation(ctx, &Operation{ID: "op3", Certificate: "www", Step: StepStarted}); err != nil {
		t.Fatal(err)
	}
	all, err := s.OpenOperations(ctx)
	if err != nil || len(all) != 1 || all["www"].ID != "op3" {
		t.Fatalf("open operations: %+v, %v", all, err)
	}
	if err := s.AbandonOperation(ctx, all["www"], "declined"); err != nil {
		t.Fatal(err)
	}
	if open, _ := s.OpenOperation(ctx, "www"); open != nil {
		t.Fatal("abandoned operation is still open")
	}
}

func TestLockIsExclusive(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	release, err := s.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Lock(ctx); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	release()
	release2, err := other.Lock(ctx)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	release2()
}

func TestRunsAndLastResults(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	for i, outcome := range []Outcome{OutcomeFailed, OutcomeDeployed} {
		id, err := s.StartRun(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RecordResult(ctx, Result{RunID: id, Certificate: "www", Outcome: outcome, FinishedAt: time.Now().Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishRun(ctx, id, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	last, err := s.LastResults(ctx)
	if err != nil || last["www"].Outcome != OutcomeDeployed {
		t.Fatalf("last results: %+v, %v", last, err)
	}
	runs, err := s.Runs(ctx, 10)
	if err != nil || len(runs) != 2 || runs[0].Outcome != "ok" || runs[0].ID < runs[1].ID {
		t.Fatalf("runs: %+v, %v", runs, err)
	}
}

func TestAccounts(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if _, ok, err := s.LoadAccount(ctx, "acme"); ok || err != nil {
		t.Fatalf("empty store has an account: %v %v", ok, err)
	}
	for _, data := range []string{"first", "second"} {
		if err := s.SaveAccount(ctx, "acme", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := s.LoadAccount(ctx, "acme")
	if err != nil || !ok || string(got) != "second" {
		t.Fatalf("account: %q %v %v", got, ok, err)
	}
}
