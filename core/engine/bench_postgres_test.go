package engine

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/lease"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/core/state/pgtest"
)

// BenchmarkSteadyState10k runs a healthy fleet of 10,000 certificates on 1,000 pemdir devices
// (nothing due) with the state in SQLite, in PostgreSQL with the one-instance lock, and in
// PostgreSQL shared by instances (a claim per device, fenced writes): the cost of the state store
// in a cron run.
func BenchmarkSteadyState10k(b *testing.B) {
	const devices, certs = 1000, 10000
	// The fleets are built here, once: a sub-benchmark's function runs several times, and
	// deploying 10,000 certificates takes longer than the runs measured.
	fleets := map[string]*fleet{}
	for _, backend := range []string{"sqlite", "postgres", "postgres-shared"} {
		var store state.Store
		var pg *state.Postgres
		if backend == "sqlite" {
			s, err := state.Open(context.Background(), filepath.Join(b.TempDir(), "state.db"))
			if err != nil {
				b.Fatal(err)
			}
			store = s
		} else {
			s, err := state.OpenPostgres(context.Background(), pgtest.DSN(b))
			if err != nil {
				b.Fatal(err)
			}
			store, pg = s, s
		}
		b.Cleanup(func() { store.Close() })
		f := newFleetOn(b, store, devices, certs)
		if backend == "postgres-shared" {
			opts := f.engine.opts
			claims := lease.New(pg.Pool(), "bench", time.Minute)
			opts.Shared = &Sharing{ClaimDevice: claims.ClaimDevice, Wait: time.Minute, Retry: time.Second}
			f.engine = New(opts)
		}
		fleets[backend] = f
	}
	for _, backend := range []string{"sqlite", "postgres", "postgres-shared"} {
		f := fleets[backend]
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				report, err := f.engine.Run(ctx, RunOptions{})
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range report.Results {
					if r.Outcome != state.OutcomeUnchanged {
						b.Fatalf("%s: %s %s", r.Certificate, r.Outcome, r.Error)
					}
				}
				if code := report.ExitCode(); code != ExitOK || len(report.Results) != certs {
					b.Fatalf("exit code %d with %d results", code, len(report.Results))
				}
			}
		})
	}
}
