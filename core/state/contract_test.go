package state

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// backend opens a fresh store of one kind; reopen opens the same state again (another process).
type backend struct {
	name string
	open func(t *testing.T) (s Store, reopen func() (Store, error))
}

var backends = []backend{
	{"sqlite", func(t *testing.T) (Store, func() (Store, error)) {
		path := filepath.Join(t.TempDir(), "state.db")
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, func() (Store, error) { return Open(context.Background(), path) }
	}},
	{"postgres", func(t *testing.T) (Store, func() (Store, error)) {
		dsn := pgtest.DSN(t)
		s, err := OpenPostgres(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, func() (Store, error) { return OpenPostgres(context.Background(), dsn) }
	}},
}

// contract runs fn against every Store implementation: they all keep the same promises.
func contract(t *testing.T, fn func(t *testing.T, s Store, reopen func() (Store, error))) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, reopen := b.open(t)
			fn(t, s, reopen)
		})
	}
}

type versioned interface {
	SchemaVersion(ctx context.Context) (int, error)
}

func TestEveryBackendHasEveryMigration(t *testing.T) {
	if len(pgMigrations) != len(migrations) {
		t.Fatalf("SQLite has %d migrations, PostgreSQL %d: add the PostgreSQL form of each new migration to pgMigrations", len(migrations), len(pgMigrations))
	}
}

func TestMigrationsApplyOnceAndPersist(t *testing.T) {
	contract(t, func(t *testing.T, s Store, reopen func() (Store, error)) {
		ctx := context.Background()
		v, err := s.(versioned).SchemaVersion(ctx)
		if err != nil || v != len(migrations) {
			t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
		}
		if err := s.SaveDeployment(ctx, Deployment{Certificate: "www", Serial: "01", NotAfter: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		again, err := reopen()
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer again.Close()
		if v, err := again.(versioned).SchemaVersion(ctx); err != nil || v != len(migrations) {
			t.Fatalf("schema version after reopen %d, %v", v, err)
		}
		d, ok, err := again.Deployment(ctx, "www")
		if err != nil || !ok || d.Serial != "01" {
			t.Fatalf("deployment after reopen: %+v %v %v", d, ok, err)
		}
	})
}

func TestOneOpenOperationPerCertificate(t *testing.T) {
	contract(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
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
	})
}

// Two writers racing to open an operation for one certificate: exactly one wins, on every backend.
func TestConcurrentCreateOperationOneWins(t *testing.T) {
	contract(t, func(t *testing.T, s Store, reopen func() (Store, error)) {
		ctx := context.Background()
		other, err := reopen()
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		const rounds = 20
		for i := 0; i < rounds; i++ {
			cert := fmt.Sprintf("c%d", i)
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for j, st := range []Store{s, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[j] = st.CreateOperation(ctx, &Operation{ID: fmt.Sprintf("%s-%d", cert, j), Certificate: cert, Step: StepStarted})
				}()
			}
			wg.Wait()
			if (errs[0] == nil) == (errs[1] == nil) {
				t.Fatalf("%s: want exactly one create to succeed, got %v and %v", cert, errs[0], errs[1])
			}
		}
		open, err := s.OpenOperations(ctx)
		if err != nil || len(open) != rounds {
			t.Fatalf("open operations: %d, %v", len(open), err)
		}
	})
}

func TestSaveOperationOfUnknownIDFails(t *testing.T) {
	contract(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		if err := s.SaveOperation(context.Background(), &Operation{ID: "nope", Certificate: "www", Step: StepCSR}); err == nil {
			t.Fatal("saving an operation that was never created succeeded")
		}
	})
}

func TestOperationRoundTripsEveryField(t *testing.T) {
	contract(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		next := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
		op := &Operation{ID: "op", Certificate: "www", Device: "adc", Issuer: "scm", Action: "renew", Reason: "expires",
			SpecHash: "h", RequestID: "r", Step: StepStarted}
		if err := s.CreateOperation(ctx, op); err != nil {
			t.Fatal(err)
		}
		op.Step, op.KeyRef, op.CSRPEM, op.SubmitState, op.OrderRef = StepBound, "k", "csr", SubmitPlaced, "o-1"
		op.CertPEM, op.ChainPEM, op.CertRef, op.ChainRefs = "cert", []string{"i1", "r"}, "cr", []string{"ch1"}
		op.RollbackToken, op.PreviousCertRefs, op.Attempts, op.LastError, op.NextAttemptAt = []byte{0, 1, 2}, []string{"old"}, 2, "e", next
		if err := s.SaveOperation(ctx, op); err != nil {
			t.Fatal(err)
		}
		got, err := s.OpenOperation(ctx, "www")
		if err != nil || got == nil {
			t.Fatal(err)
		}
		if got.OrderRef != "o-1" || got.SubmitState != SubmitPlaced || string(got.RollbackToken) != "\x00\x01\x02" ||
			len(got.ChainPEM) != 2 || got.PreviousCertRefs[0] != "old" || got.Attempts != 2 || !got.NextAttemptAt.Equal(next) {
			t.Fatalf("operation read back differs: %+v", got)
		}
	})
}

func TestLockIsExclusive(t *testing.T) {
	contract(t, func(t *testing.T, s Store, reopen func() (Store, error)) {
		ctx := context.Background()
		release, err := s.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		other, err := reopen()
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
	})
}

func TestRunsAndLastResults(t *testing.T) {
	contract(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
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
		id, err := s.StartRun(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		batch := []Result{{RunID: id, Certificate: "a", Outcome: OutcomeUnchanged}, {RunID: id, Certificate: "b", Outcome: OutcomePending}}
		if err := s.RecordResults(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordResults(ctx, nil); err != nil {
			t.Fatalf("empty batch: %v", err)
		}
		last, err := s.LastResults(ctx)
		if err != nil || last["www"].Outcome != OutcomeDeployed || last["b"].Outcome != OutcomePending || len(last) != 3 {
			t.Fatalf("last results: %+v, %v", last, err)
		}
		runs, err := s.Runs(ctx, 10)
		if err != nil || len(runs) != 3 || runs[1].Outcome != "ok" || runs[0].Outcome != "interrupted" || !runs[0].DryRun ||
			runs[0].ID < runs[1].ID || runs[1].FinishedAt.IsZero() || !runs[0].FinishedAt.IsZero() {
			t.Fatalf("runs: %+v, %v", runs, err)
		}
		if runs, _ := s.Runs(ctx, 1); len(runs) != 1 {
			t.Fatalf("limit 1 gave %d runs", len(runs))
		}
	})
}

func TestAccounts(t *testing.T) {
	contract(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
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
	})
}

func TestDeploymentsRoundTrip(t *testing.T) {
	contract(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		na := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
		for _, serial := range []string{"01", "02"} {
			if err := s.SaveDeployment(ctx, Deployment{Certificate: "www", Serial: serial, NotAfter: na, Bindings: []string{"lb/a"}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SaveDeployment(ctx, Deployment{Certificate: "mail", Serial: "03"}); err != nil {
			t.Fatal(err)
		}
		all, err := s.Deployments(ctx)
		if err != nil || len(all) != 2 || all["www"].Serial != "02" || !all["www"].NotAfter.Equal(na) || all["www"].Bindings[0] != "lb/a" {
			t.Fatalf("deployments: %+v, %v", all, err)
		}
		if _, ok, err := s.Deployment(ctx, "none"); ok || err != nil {
			t.Fatalf("unknown deployment: %v %v", ok, err)
		}
	})
}

func TestHistory(t *testing.T) {
	contract(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		h := s.(interface {
			History(ctx context.Context, certificate string, limit int) ([]RunHistory, error)
		})
		for i := 0; i < 3; i++ {
			id, err := s.StartRun(ctx, false)
			if err != nil {
				t.Fatal(err)
			}
			rs := []Result{{RunID: id, Certificate: "www", Outcome: OutcomeUnchanged}}
			if i == 1 {
				rs = append(rs, Result{RunID: id, Certificate: "mail", Outcome: OutcomeDeployed})
			}
			if err := s.RecordResults(ctx, rs); err != nil {
				t.Fatal(err)
			}
			if err := s.FinishRun(ctx, id, "ok"); err != nil {
				t.Fatal(err)
			}
		}
		all, err := h.History(ctx, "", 2)
		if err != nil || len(all) != 2 || all[0].ID != 3 || len(all[0].Results) != 1 || len(all[1].Results) != 2 || all[1].Results[0].Certificate != "mail" {
			t.Fatalf("history: %+v, %v", all, err)
		}
		mail, err := h.History(ctx, "mail", 10)
		if err != nil || len(mail) != 1 || mail[0].ID != 2 || len(mail[0].Results) != 1 || mail[0].FinishedAt.IsZero() {
			t.Fatalf("history of mail: %+v, %v", mail, err)
		}
		if none, err := h.History(ctx, "nothing", 10); err != nil || len(none) != 0 {
			t.Fatalf("history of an unknown certificate: %+v, %v", none, err)
		}
	})
}

type historian interface {
	History(ctx context.Context, certificate string, limit int) ([]RunHistory, error)
}

// TestWholeReadsSideBySideSeeEveryWrite: the reads of whole tables (what status reads at once)
// may run side by side, also beside writes, and each sees every write committed before it began
// (SQLite serves them on connections of their own).
func TestWholeReadsSideBySideSeeEveryWrite(t *testing.T) {
	contract(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		run, err := s.StartRun(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		notAfter := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
		const rounds = 20
		for i := 0; i < rounds; i++ {
			name := fmt.Sprintf("c%02d", i)
			if err := s.SaveDeployment(ctx, Deployment{Certificate: name, Device: "d", CertRef: "ref-" + name, NotAfter: notAfter}); err != nil {
				t.Fatal(err)
			}
			if err := s.RecordResult(ctx, Result{RunID: run, Certificate: name, Outcome: OutcomeDeployed, FinishedAt: notAfter}); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateOperation(ctx, &Operation{ID: "op-" + name, Certificate: name, Step: StepStarted}); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var deployments map[string]Deployment
			var ops map[string]*Operation
			var last map[string]Result
			errs := make([]error, 4)
			wg.Go(func() { deployments, errs[0] = s.DeploymentSummaries(ctx) })
			wg.Go(func() { ops, errs[1] = s.OpenOperations(ctx) })
			wg.Go(func() { last, errs[2] = s.LastResults(ctx) })
			// A write beside them, of a certificate they may or may not see.
			wg.Go(func() {
				errs[3] = s.SaveDeployment(ctx, Deployment{Certificate: "other", NotAfter: notAfter.Add(time.Duration(i))})
			})
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			d, ok := deployments[name]
			if n := len(deployments); !ok || d.CertRef != "ref-"+name || (n != i+1 && n != i+2) {
				t.Fatalf("round %d: %d deployments, %s: %+v", i, n, name, d)
			}
			if op := ops[name]; len(ops) != i+1 || op == nil || op.ID != "op-"+name {
				t.Fatalf("round %d: %d open operations, %s: %+v", i, len(ops), name, op)
			}
			if r, ok := last[name]; len(last) != i+1 || !ok || r.Outcome != OutcomeDeployed {
				t.Fatalf("round %d: %d last results, %s: %+v", i, len(last), name, r)
			}
		}
		deployments, err := s.DeploymentSummaries(ctx)
		if err != nil || !deployments["other"].NotAfter.Equal(notAfter.Add(rounds-1)) {
			t.Fatalf("the last write beside the reads is not read after it: %+v, %v", deployments["other"], err)
		}
	})
}
