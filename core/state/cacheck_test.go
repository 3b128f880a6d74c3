package state

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state/pgtest"
	"github.com/jackc/pgx/v5"
)

// dueNames are the certificates of the CA checks due, sorted.
func dueNames(t *testing.T, s Store, now, horizon time.Time) []string {
	t.Helper()
	due, err := s.DueCAChecks(context.Background(), now, horizon)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range due {
		if !CACheckDue(d, now, horizon) {
			t.Errorf("%s returned by DueCAChecks, but CACheckDue says it is not due: %+v", d.Certificate, d)
		}
		names = append(names, d.Certificate)
	}
	slices.Sort(names)
	return names
}

// TestCAChecksDueComeFromTheSchedule: the store returns exactly the deployments whose check is
// due — never scheduled, scheduled at or before now, or scheduled beyond the horizon (a longer
// interval than today's) — and never those with nothing to ask the CA.
func TestCAChecksDueComeFromTheSchedule(t *testing.T) {
	contract(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
		horizon := now.Add(24 * time.Hour)
		ds := []Deployment{
			{Certificate: "never-scheduled", OrderRef: "1"},
			{Certificate: "due-earlier", OrderRef: "2", CACheckDueAt: now.Add(-time.Hour)},
			{Certificate: "due-now", OrderRef: "3", CACheckDueAt: now},
			{Certificate: "due-later", OrderRef: "4", CACheckDueAt: now.Add(time.Nanosecond + time.Microsecond)},
			{Certificate: "due-at-horizon", OrderRef: "5", CACheckDueAt: horizon},
			{Certificate: "beyond-horizon", OrderRef: "6", CACheckDueAt: horizon.Add(time.Second)},
			{Certificate: "adopted", CACheckDueAt: now.Add(-time.Hour)},
			{Certificate: "revoked", OrderRef: "8", Revoked: true, CACheckDueAt: now.Add(-time.Hour)},
		}
		for _, d := range ds[:4] {
			if err := s.SaveDeployment(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SaveDeployments(ctx, ds[4:]); err != nil {
			t.Fatal(err)
		}
		want := []string{"beyond-horizon", "due-earlier", "due-now", "never-scheduled"}
		if got := dueNames(t, s, now, horizon); !slices.Equal(got, want) {
			t.Fatalf("due %v, want %v", got, want)
		}
		// The schedule is part of the deployment: read back as saved.
		if d, _, err := s.Deployment(ctx, "due-earlier"); err != nil || !d.CACheckDueAt.Equal(now.Add(-time.Hour)) {
			t.Fatalf("deployment read back: %+v, %v", d, err)
		}

		// Checked and scheduled again; one found revoked: none of them is due any more.
		var checked []Deployment
		for _, name := range want {
			d, _, err := s.Deployment(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			d.RevocationCheckedAt, d.CACheckDueAt = now, now.Add(12*time.Hour)
			d.Revoked = name == "due-now"
			checked = append(checked, d)
		}
		if err := s.SaveDeployments(ctx, checked); err != nil {
			t.Fatal(err)
		}
		if got := dueNames(t, s, now, horizon); len(got) != 0 {
			t.Fatalf("due after the checks were recorded: %v", got)
		}
		// A day later every scheduled check has come; the revoked certificate is not asked about
		// again, and the adopted one (no CA order) never.
		later := now.Add(25 * time.Hour)
		want = []string{"beyond-horizon", "due-at-horizon", "due-earlier", "due-later", "never-scheduled"}
		if got := dueNames(t, s, later, later.Add(24*time.Hour)); !slices.Equal(got, want) {
			t.Fatalf("due a day later %v, want %v", got, want)
		}
		// A renewal records a new, unscheduled deployment in place of the revoked one: due.
		if err := s.SaveDeployment(ctx, Deployment{Certificate: "due-now", OrderRef: "9"}); err != nil {
			t.Fatal(err)
		}
		if got := dueNames(t, s, now, horizon); !slices.Equal(got, []string{"due-now"}) {
			t.Fatalf("due after the renewal %v, want [due-now]", got)
		}
		// A retired certificate leaves the schedule with its deployment.
		if err := s.DeleteDeployment(ctx, "due-now"); err != nil {
			t.Fatal(err)
		}
		if got := dueNames(t, s, now, horizon); len(got) != 0 {
			t.Fatalf("due after retiring: %v", got)
		}
	})
}

// TestSaveDeploymentsIsOneTransaction: a batch with a record the store refuses saves nothing.
func TestSaveDeploymentsIsOneTransaction(t *testing.T) {
	contract(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		// Year 10000 has no RFC 3339 form: the record cannot be encoded.
		bad := Deployment{Certificate: "bad", NotAfter: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
		err := s.SaveDeployments(ctx, []Deployment{{Certificate: "good", OrderRef: "1"}, bad})
		if err == nil {
			t.Fatal("a deployment that cannot be recorded was accepted")
		}
		if !strings.Contains(err.Error(), "bad") {
			t.Errorf("the error does not name the deployment: %v", err)
		}
		if _, ok, _ := s.Deployment(ctx, "good"); ok {
			t.Fatal("part of a failed batch was recorded")
		}
	})
}

// TestCAChecksDueReadTheIndex: the query of the checks due is answered from the schedule's
// index, not by reading every deployment.
func TestCAChecksDueReadTheIndex(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		s, err := Open(ctx, filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		rows, err := s.db.QueryContext(ctx, `EXPLAIN QUERY PLAN `+sqliteDueCAChecks, neverScheduled, neverScheduled)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		text := strings.Join(plan, "\n")
		t.Logf("plan:\n%s", text)
		scan := slices.ContainsFunc(plan, func(step string) bool { return strings.HasPrefix(step, "SCAN ") })
		if !strings.Contains(text, "USING INDEX deployments_ca_check_due") || scan {
			t.Fatalf("query plan does not read the index:\n%s", text)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := OpenPostgres(ctx, pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// An empty table is read sequentially whatever its indexes; without that choice the
		// planner shows whether the index can answer the query.
		var text string
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `EXPLAIN `+pgDueCAChecks, time.Now(), time.Now())
			if err != nil {
				return err
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			text = strings.Join(lines, "\n")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("plan:\n%s", text)
		if !strings.Contains(text, "deployments_ca_check_due") {
			t.Fatalf("query plan does not read the index:\n%s", text)
		}
	})
}

// legacyDeployments are recorded before the schedule existed (schema version 2).
var legacyDeployments = []Deployment{
	{Certificate: "ordered", OrderRef: "1", RevocationCheckedAt: time.Now()},
	{Certificate: "adopted", Adopted: true},
	{Certificate: "revoked", OrderRef: "3", Revoked: true},
}

// TestMigrationSchedulesEarlierDeployments: the schedule's migration marks every deployment
// recorded before it that has a CA order and is not revoked as never scheduled (so the next run
// schedules it), and the others as having nothing to ask.
func TestMigrationSchedulesEarlierDeployments(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	check := func(t *testing.T, s Store) {
		t.Helper()
		if got := dueNames(t, s, now, now.Add(time.Hour)); !slices.Equal(got, []string{"ordered"}) {
			t.Fatalf("due after the migration %v, want [ordered]", got)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		exec, done := olderSQLite(t, path, 2)
		for _, d := range legacyDeployments {
			data, _ := json.Marshal(d)
			exec(`INSERT INTO deployments(certificate, not_after, data) VALUES (?, ?, ?)`, d.Certificate, d.NotAfter.Format(timeFormat), string(data))
		}
		done()
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		check(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		exec, done := olderPostgres(t, dsn, 2)
		for _, d := range legacyDeployments {
			data, _ := json.Marshal(d)
			exec(`INSERT INTO deployments(certificate, not_after, data) VALUES ($1, $2, $3)`, d.Certificate, d.NotAfter, string(data))
		}
		done()
		s, err := OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		check(t, s)
	})
}
