package state

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestAYearOfHourlyRunsStaysSmall writes, through the store's own path (StartRun, RecordResults,
// FinishRun with the default retention), what a year of hourly cron runs over 10,000 certificates
// records: every certificate unchanged with its "valid for N more days" reason (new each day),
// and each certificate renewed every 60 days. The state file must stay under 200 MB, and history
// still show every certificate in every run kept.
func TestAYearOfHourlyRunsStaysSmall(t *testing.T) {
	const certs, limit = 10000, 200 << 20
	// By default 40 days: past the 30 days of retention, where the state stops growing. The whole
	// year takes minutes; `make state-year` runs it (CERTFLEET_STATE_YEAR_DAYS=365). Under the
	// race detector SQLite is ten times slower: 3 days, and the size 30 days would reach is
	// checked from the growth of the last day.
	days := 40
	if raceEnabled {
		days = 3
	}
	if v := os.Getenv("CERTFLEET_STATE_YEAR_DAYS"); v != "" {
		days, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.clock = func() time.Time { return clock }
	names := make([]string, certs)
	for i := range names {
		names[i] = fmt.Sprintf("web%03d-site%02d", i/10, i%10)
	}
	reasons := make([]string, 60)
	for age := range reasons {
		reasons[age] = fmt.Sprintf("valid for %d more days", 90-age)
	}
	batch := make([]Result, 0, 24*certs)
	started := time.Now()
	var dayBefore int64
	for day := 0; day < days; day++ {
		if day == days-1 {
			dayBefore = stateSize(t, path)
		}
		// A day's 24 runs are recorded in one batch: the same rows as one call per run, fewer
		// transactions.
		batch = batch[:0]
		ids := make([]int64, 24)
		for hour := range ids {
			clock = time.Date(2026, 1, 1, hour, 0, 0, 0, time.UTC).AddDate(0, 0, day)
			if ids[hour], err = s.StartRun(ctx, false); err != nil {
				t.Fatal(err)
			}
			for i, name := range names {
				// Certificate i is renewed every 60 days, on the day its cycle starts.
				age := (day + i) % 60
				r := Result{RunID: ids[hour], Certificate: name, Device: name[:6], Action: "none", Outcome: OutcomeUnchanged,
					Reason: reasons[age], FinishedAt: clock}
				if age == 0 && hour == 0 {
					r.Action, r.Outcome, r.Reason = "renew", OutcomeDeployed, "expires in 30 days"
				}
				batch = append(batch, r)
			}
		}
		if err := s.RecordResults(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for hour, id := range ids {
			clock = time.Date(2026, 1, 1, hour, 1, 0, 0, time.UTC).AddDate(0, 0, day)
			if err := s.FinishRun(ctx, id, "ok"); err != nil {
				t.Fatal(err)
			}
		}
		if day%30 == 29 {
			t.Logf("day %d: %.1f MB after %s", day+1, float64(stateSize(t, path))/1e6, time.Since(started).Round(time.Second))
		}
	}
	size := stateSize(t, path)
	t.Logf("%d days of hourly runs over %d certificates: state %.1f MB (limit %d MB), %s", days, certs, float64(size)/1e6, limit>>20, time.Since(started).Round(time.Second))
	if size > limit {
		t.Fatalf("the state is %d bytes after %d days; want under %d", size, days, limit)
	}
	if days <= 30 {
		// Short of the retention: what 31 days would hold, at the last day's growth.
		projected := size + (size-dayBefore)*int64(31-days)
		t.Logf("projected to 31 days (where the retention holds it): %.1f MB", float64(projected)/1e6)
		if projected > limit {
			t.Fatalf("the state would reach %d bytes; want under %d", projected, limit)
		}
	}
	// The retention kept 30 days of runs; each still shows every certificate.
	runs, err := s.Runs(ctx, 100000)
	if err != nil {
		t.Fatal(err)
	}
	if kept := len(runs); days > 31 && (kept < 30*24 || kept > 31*24+1) {
		t.Fatalf("%d runs kept; want 30 days of hourly runs", kept)
	}
	hist, err := s.History(ctx, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hist {
		if len(h.Results) != certs {
			t.Fatalf("run %d shows %d results; want %d", h.ID, len(h.Results), certs)
		}
	}
	last, err := s.LastResults(ctx)
	if err != nil || len(last) != certs || last[names[0]].RunID != runs[0].ID {
		t.Fatalf("last results: %d, %v", len(last), err)
	}
}

// stateSize is the size of the database with its write-ahead log.
func stateSize(t *testing.T, path string) int64 {
	t.Helper()
	var total int64
	for _, p := range []string{path, path + "-wal"} {
		if st, err := os.Stat(p); err == nil {
			total += st.Size()
		}
	}
	return total
}
