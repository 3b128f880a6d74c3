package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state/pgtest"
)

// everyField is a deployment with every field set (by reflection, so that a field added to
// Deployment and forgotten by the columns fails the tests below): strings named after their
// field, lists with the items the list encoding must escape, times with nanoseconds and an offset.
func everyField(t *testing.T, name string) Deployment {
	t.Helper()
	zone := time.FixedZone("", 90*60)
	var fill func(v reflect.Value, field string)
	fill = func(v reflect.Value, field string) {
		switch v.Interface().(type) {
		case time.Time:
			v.Set(reflect.ValueOf(time.Date(2027, 3, 4, 5, 6, 7, 123456789, zone).Add(time.Duration(len(field)) * time.Hour)))
			return
		case []string:
			v.Set(reflect.ValueOf([]string{field, "two\nlines", `back\slash`, `\n`, "", "last"}))
			return
		}
		switch v.Kind() {
		case reflect.String:
			v.SetString(field + "-value")
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int:
			v.SetInt(int64(len(field)))
		case reflect.Pointer:
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem(), field)
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				f := v.Type().Field(i)
				if f.Name == "Summary" {
					continue
				}
				fill(v.Field(i), f.Name)
			}
		default:
			t.Fatalf("field %s of kind %s: teach everyField (and the deployment columns) about it", field, v.Kind())
		}
	}
	var d Deployment
	fill(reflect.ValueOf(&d).Elem(), "")
	d.Certificate = name
	d.OrderRef = "order-" + name // CACheckable: the schedule column is written too
	d.Revoked = false
	return d
}

// sameDeployment compares two deployments as their JSON (times by instant and offset, nil lists
// apart from empty ones).
func sameDeployment(t *testing.T, what string, got, want Deployment) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) || got.Summary != want.Summary {
		t.Errorf("%s:\n got %s (summary %v)\nwant %s (summary %v)", what, g, got.Summary, w, want.Summary)
	}
}

// summaryOf is what a summary of d holds: the fields Deployment.Summary names.
func summaryOf(d Deployment) Deployment {
	return Deployment{Certificate: d.Certificate, Device: d.Device, Issuer: d.Issuer, CertRef: d.CertRef, Serial: d.Serial,
		Fingerprint: d.Fingerprint, NotBefore: d.NotBefore, NotAfter: d.NotAfter, SpecHash: d.SpecHash, Revoked: d.Revoked,
		RenewalWindowStart: d.RenewalWindowStart, RenewalWindowEnd: d.RenewalWindowEnd, RenewalAt: d.RenewalAt,
		Rebinds: d.Rebinds, LastRebindAt: d.LastRebindAt, ServedCheck: d.ServedCheck, Summary: true}
}

func TestDeploymentColumnsKeepEveryField(t *testing.T) {
	contract(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		full := everyField(t, "full")
		empty := Deployment{Certificate: "empty", Bindings: []string{}, ChainRefs: nil, ServedCheck: &ServedCheck{Endpoints: []string{}}}
		oneEmpty := Deployment{Certificate: "one-empty-item", Bindings: []string{""}, ChainPEM: []string{}}
		for _, d := range []Deployment{full, empty, oneEmpty} {
			if err := s.SaveDeployment(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		sums, err := s.DeploymentSummaries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all, err := s.Deployments(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []Deployment{full, empty, oneEmpty} {
			one, ok, err := s.Deployment(ctx, want.Certificate)
			if err != nil || !ok {
				t.Fatalf("%s: %v %v", want.Certificate, ok, err)
			}
			sameDeployment(t, want.Certificate+" read alone", one, want)
			sameDeployment(t, want.Certificate+" read with all", all[want.Certificate], want)
			sameDeployment(t, want.Certificate+" summary", sums[want.Certificate], summaryOf(want))
		}
	})
}

func TestListEncoding(t *testing.T) {
	for _, l := range [][]string{nil, {}, {""}, {"", ""}, {"a"}, {"a", "b"}, {"x\ny", `\`, `\\n`, "\n", "[", "]\n"}} {
		enc := encodeList(l)
		got, err := decodeList(enc)
		if err != nil || (got == nil) != (l == nil) || !slices.Equal(got, l) {
			t.Errorf("%q: encoded %q, read back %q (%v)", l, enc, got, err)
		}
	}
	for _, bad := range []string{"a", "[a", `[a\`, "[a\\x\n"} {
		if got, err := decodeList(bad); err == nil {
			t.Errorf("%q read as %q", bad, got)
		}
	}
}

// legacyRecord is how migrations 3 and 4 stored d: its JSON without the PEM bodies, which are in
// columns.
func legacyRecord(d Deployment) (data, certPEM, chainPEM string) {
	chain, _ := json.Marshal(d.ChainPEM)
	certPEM = d.CertPEM
	d.CertPEM, d.ChainPEM = "", nil
	record, _ := json.Marshal(d)
	return string(record), certPEM, string(chain)
}

// TestMigration5MovesDeploymentsIntoColumns opens states at schema version 4 holding deployments
// in the JSON form and reads every field back through the columns; the schedule of the CA checks
// stays as it was.
func TestMigration5MovesDeploymentsIntoColumns(t *testing.T) {
	ctx := context.Background()
	full := everyField(t, "full")
	plain := Deployment{Certificate: "plain", Serial: "0b", NotAfter: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC), Bindings: []string{"lb/a"}}
	revoked := everyField(t, "revoked")
	revoked.Revoked = true
	legacy := []Deployment{full, plain, revoked}
	check := func(t *testing.T, s Store) {
		t.Helper()
		for _, want := range legacy {
			got, ok, err := s.Deployment(ctx, want.Certificate)
			if err != nil || !ok {
				t.Fatalf("%s: %v %v", want.Certificate, ok, err)
			}
			sameDeployment(t, want.Certificate, got, want)
		}
		due := full.CACheckDueAt
		if got := dueNames(t, s, due, due.Add(time.Hour)); !slices.Equal(got, []string{"full"}) {
			t.Errorf("CA checks due after the migration: %v, want [full]", got)
		}
		// And the state goes on as usual.
		next := plain
		next.Serial = "0c"
		if err := s.SaveDeployment(ctx, next); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.Deployment(ctx, "plain"); got.Serial != "0c" {
			t.Errorf("after the migration, a saved deployment reads %+v", got)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		exec, done := olderSQLite(t, path, deploymentColumnsVersion-1)
		for _, d := range legacy {
			data, certPEM, chainPEM := legacyRecord(d)
			exec(`INSERT INTO deployments(certificate, not_after, data, cert_pem, chain_pem, ca_check_due) VALUES (?, ?, ?, ?, ?, ?)`,
				d.Certificate, d.NotAfter.UTC().Format(timeFormat), data, certPEM, chainPEM, caCheckDue(d))
		}
		done()
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if v, _ := s.SchemaVersion(ctx); v != len(migrations) {
			t.Fatalf("schema version %d after opening, want %d", v, len(migrations))
		}
		check(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		exec, done := olderPostgres(t, dsn, deploymentColumnsVersion-1)
		for _, d := range legacy {
			data, certPEM, chainPEM := legacyRecord(d)
			exec(`INSERT INTO deployments(certificate, not_after, data, cert_pem, chain_pem, ca_check_due) VALUES ($1, $2, $3, $4, $5, $6)`,
				d.Certificate, d.NotAfter.UTC(), data, certPEM, chainPEM, pgCACheckDue(d))
		}
		done()
		s, err := OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if v, _ := s.SchemaVersion(ctx); v != len(pgMigrations) {
			t.Fatalf("schema version %d after opening, want %d", v, len(pgMigrations))
		}
		check(t, s)
	})
}

// TestMigration5RefusesABrokenRecord: a record that is not JSON stops the migration with the
// certificate's name, and the state stays at the version before.
func TestMigration5RefusesABrokenRecord(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	exec, done := olderSQLite(t, path, deploymentColumnsVersion-1)
	exec(`INSERT INTO deployments(certificate, not_after, data) VALUES ('torn', '2027-01-01T00:00:00Z', '{"Serial":')`)
	done()
	_, err := Open(ctx, path)
	if err == nil || !containsAll(err.Error(), "migration 5", "torn") {
		t.Fatalf("opening a state with a broken record: %v", err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil || v != deploymentColumnsVersion-1 {
		t.Fatalf("schema version %d (%v) after the failed migration, want %d", v, err, deploymentColumnsVersion-1)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestMigration7MovesResultsIntoColumns opens states at schema version 6 holding results in the
// JSON form, under both names results were recorded with, and reads every field back.
func TestMigration7MovesResultsIntoColumns(t *testing.T) {
	ctx := context.Background()
	records := []string{
		`{"RunID":1,"Certificate":"www","Device":"lb1","Action":"renew","Reason":"expires in 3 days","Outcome":"failed","Error":"CA said no","Step":"submitted","FinishedAt":"2026-01-01T00:00:30Z"}`,
		`{"certificate":"www","device":"lb1","action":"none","outcome":"unchanged"}`,
	}
	want := []Result{
		{RunID: 1, Certificate: "www", Device: "lb1", Action: "renew", Reason: "expires in 3 days", Outcome: OutcomeFailed, Error: "CA said no", Step: StepSubmitted},
		{RunID: 2, Certificate: "www", Device: "lb1", Action: "none", Outcome: OutcomeUnchanged},
	}
	check := func(t *testing.T, s interface {
		Store
		History(ctx context.Context, certificate string, limit int) ([]RunHistory, error)
	}) {
		t.Helper()
		hist, err := s.History(ctx, "www", 10)
		if err != nil || len(hist) != 2 {
			t.Fatalf("history: %+v %v", hist, err)
		}
		for i, h := range []RunHistory{hist[1], hist[0]} {
			got := h.Results[0]
			got.FinishedAt = time.Time{}
			if got != want[i] {
				t.Errorf("run %d: %+v, want %+v", i+1, got, want[i])
			}
		}
		last, err := s.LastResults(ctx)
		if got := last["www"]; err != nil || got.RunID != 2 || got.Outcome != OutcomeUnchanged || got.Device != "lb1" {
			t.Errorf("last result: %+v %v", got, err)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		exec, done := olderSQLite(t, path, resultColumnsVersion-1)
		stmts := []string{`INSERT INTO runs VALUES (1, '2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z', 'ok', 0), (2, '2026-01-02T00:00:00Z', '2026-01-02T00:01:00Z', 'ok', 0)`}
		for i, r := range records {
			stmts = append(stmts, fmt.Sprintf(`INSERT INTO results(run_id, certificate, finished_at, data, last_run_id, last_finished_at, latest) VALUES (%d, 'www', '2026-01-0%dT00:00:30Z', '%s', %d, '2026-01-0%dT00:00:30Z', %d)`,
				i+1, i+1, r, i+1, i+1, i))
		}
		for _, q := range stmts {
			exec(q)
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
		exec, done := olderPostgres(t, dsn, resultColumnsVersion-1)
		stmts := []string{`INSERT INTO runs VALUES (1, '2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z', 'ok', false), (2, '2026-01-02T00:00:00Z', '2026-01-02T00:01:00Z', 'ok', false)`}
		for i, r := range records {
			stmts = append(stmts, fmt.Sprintf(`INSERT INTO results(run_id, certificate, finished_at, data, last_run_id, last_finished_at, latest) VALUES (%d, 'www', '2026-01-0%dT00:00:30Z', '%s', %d, '2026-01-0%dT00:00:30Z', %v)`,
				i+1, i+1, r, i+1, i+1, i == 1))
		}
		stmts = append(stmts, `SELECT setval(pg_get_serial_sequence('runs', 'id'), 3, false)`)
		for _, q := range stmts {
			exec(q)
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

// TestMigrationGivesBackTheSpaceItFreed: a state of an older schema with many deployments is
// migrated (their records and PEM bodies move to new tables) and compacted: the file shrinks and
// keeps few free pages.
func TestMigrationGivesBackTheSpaceItFreed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	exec, done := olderSQLite(t, path, deploymentColumnsVersion-1)
	d := everyField(t, "template")
	for i := range 400 {
		d.Certificate = fmt.Sprintf("cert-%04d", i)
		data, certPEM, chainPEM := legacyRecord(d)
		exec(`INSERT INTO deployments(certificate, not_after, data, cert_pem, chain_pem, ca_check_due) VALUES (?, ?, ?, ?, ?, ?)`,
			d.Certificate, d.NotAfter.UTC().Format(timeFormat), data, certPEM, chainPEM, caCheckDue(d))
	}
	done()
	before := fileSize(t, path)
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var free, total int64
	if err := s.db.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	after := fileSize(t, path) + fileSize(t, path+"-wal")
	if free*10 > total || after >= before {
		t.Errorf("after the migration: %d of %d pages free, %d bytes (file and log) where the older state had %d", free, total, after, before)
	}
	if got, ok, err := s.Deployment(ctx, "cert-0399"); err != nil || !ok || got.Serial != d.Serial {
		t.Fatalf("a migrated deployment: %+v %v %v", got, ok, err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
