package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// CopyCounts says how many rows of each table a copy moved.
type CopyCounts struct {
	Deployments, Operations, Runs, Results, Accounts int
}

// CopyToPostgres copies an SQLite state into an empty PostgreSQL state, in one PostgreSQL
// transaction (all or nothing), holding the SQLite lock so that no run changes it meanwhile. Run
// and result ids are kept, so history reads the same.
func CopyToPostgres(ctx context.Context, from *SQLite, to *Postgres) (CopyCounts, error) {
	var n CopyCounts
	fv, err := from.SchemaVersion(ctx)
	if err != nil {
		return n, fmt.Errorf("read the SQLite state's schema version: %w", err)
	}
	tv, err := to.SchemaVersion(ctx)
	if err != nil {
		return n, fmt.Errorf("read the PostgreSQL state's schema version: %w", err)
	}
	if fv != tv {
		return n, fmt.Errorf("the SQLite state is at schema version %d and the PostgreSQL one at %d: open the SQLite state with this certfleet once (certfleet status) to bring it up to date", fv, tv)
	}
	release, err := from.Lock(ctx)
	if err != nil {
		return n, fmt.Errorf("the SQLite state is in use: %w", err)
	}
	defer release()
	err = to.tx(ctx, func(tx pgx.Tx) error {
		var used bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deployments) OR EXISTS (SELECT 1 FROM operations) OR EXISTS (SELECT 1 FROM runs) OR EXISTS (SELECT 1 FROM accounts)`).Scan(&used); err != nil {
			return err
		}
		if used {
			return errors.New("the PostgreSQL state is not empty: copying into it would mix two fleets' records (use a new database or schema)")
		}
		if err := copyDeployments(ctx, from, tx, &n); err != nil {
			return fmt.Errorf("deployments: %w", err)
		}
		if err := copyRows(ctx, from, `SELECT id, certificate, step, open, started_at, updated_at, data FROM operations`, 7, func(v []any) error {
			n.Operations++
			_, err := tx.Exec(ctx, `INSERT INTO operations(id, certificate, step, open, started_at, updated_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				v[0], v[1], v[2], v[3].(int64) == 1, parseTime(v[4]), parseTime(v[5]), v[6])
			return err
		}); err != nil {
			return fmt.Errorf("operations: %w", err)
		}
		if err := copyRows(ctx, from, `SELECT id, started_at, COALESCE(finished_at, ''), outcome, dry_run FROM runs ORDER BY id`, 5, func(v []any) error {
			n.Runs++
			var finished *time.Time
			if t := parseTime(v[2]); !t.IsZero() {
				finished = &t
			}
			_, err := tx.Exec(ctx, `INSERT INTO runs(id, started_at, finished_at, outcome, dry_run) VALUES ($1, $2, $3, $4, $5)`,
				v[0], parseTime(v[1]), finished, v[3], v[4].(int64) == 1)
			return err
		}); err != nil {
			return fmt.Errorf("runs: %w", err)
		}
		if err := copyRows(ctx, from, `SELECT rowid, run_id, certificate, finished_at, last_run_id, last_finished_at, latest, `+resultColumns+` FROM results ORDER BY rowid`, 13, func(v []any) error {
			n.Results++
			_, err := tx.Exec(ctx, `INSERT INTO results(id, run_id, certificate, finished_at, last_run_id, last_finished_at, latest, `+resultColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
				v[0], v[1], v[2], parseTime(v[3]), v[4], parseTime(v[5]), v[6].(int64) == 1, v[7], v[8], v[9], v[10], v[11], v[12])
			return err
		}); err != nil {
			return fmt.Errorf("results: %w", err)
		}
		if err := copyRows(ctx, from, `SELECT issuer, data FROM accounts`, 2, func(v []any) error {
			n.Accounts++
			_, err := tx.Exec(ctx, `INSERT INTO accounts(issuer, data) VALUES ($1, $2)`, v[0], v[1])
			return err
		}); err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		// New runs and results number on from the copied ones.
		for _, table := range []string{"runs", "results"} {
			if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('`+table+`', 'id'), COALESCE((SELECT MAX(id) FROM `+table+`), 0) + 1, false)`); err != nil {
				return fmt.Errorf("%s id sequence: %w", table, err)
			}
		}
		return nil
	})
	if err != nil {
		return CopyCounts{}, fmt.Errorf("copy the state into PostgreSQL: %w", err)
	}
	return n, nil
}

// copyDeployments copies the deployments whole, each read and written by its store's own code.
func copyDeployments(ctx context.Context, from *SQLite, tx pgx.Tx, n *CopyCounts) error {
	rows, err := from.db.QueryContext(ctx, sqliteDeployments)
	if err != nil {
		return err
	}
	defer rows.Close()
	var saveErr error
	err = scanDeployments(rows, true, func(_ string, d Deployment) {
		if saveErr == nil {
			n.Deployments++
			saveErr = pgSaveDeployment(ctx, tx, d)
		}
	})
	return errors.Join(err, saveErr)
}

// copyRows reads query's rows from SQLite and hands each to put.
func copyRows(ctx context.Context, from *SQLite, query string, columns int, put func([]any) error) error {
	rows, err := from.db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		v := make([]any, columns)
		ptrs := make([]any, columns)
		for i := range v {
			ptrs[i] = &v[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if err := put(v); err != nil {
			return err
		}
	}
	return rows.Err()
}

// parseTime reads an SQLite timestamp column (RFC 3339 text); empty is the zero time.
func parseTime(v any) time.Time {
	s, _ := v.(string)
	t, _ := time.Parse(timeFormat, s)
	return t
}
