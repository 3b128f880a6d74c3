package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgMigrations are the PostgreSQL forms of migrations, version for version: migration N here makes
// the same tables as migration N of SQLite, so `state migrate` copies one into the other. Never
// edit one that has shipped: add the next, to both lists.
var pgMigrations = []string{
	// 1: deployments, operations, runs, results, accounts; and leases, the per-device claims of
	// instances sharing this state (core/lease), whose tokens fence every operation write.
	`CREATE TABLE deployments (
		certificate TEXT PRIMARY KEY,
		not_after   TIMESTAMPTZ NOT NULL,
		data        TEXT NOT NULL
	);
	CREATE TABLE operations (
		id          TEXT PRIMARY KEY,
		certificate TEXT NOT NULL,
		step        TEXT NOT NULL,
		open        BOOLEAN NOT NULL,
		started_at  TIMESTAMPTZ NOT NULL,
		updated_at  TIMESTAMPTZ NOT NULL,
		data        TEXT NOT NULL
	);
	CREATE UNIQUE INDEX operations_one_open ON operations(certificate) WHERE open;
	CREATE TABLE runs (
		id          BIGSERIAL PRIMARY KEY,
		started_at  TIMESTAMPTZ NOT NULL,
		finished_at TIMESTAMPTZ,
		outcome     TEXT NOT NULL,
		dry_run     BOOLEAN NOT NULL
	);
	CREATE TABLE results (
		id          BIGSERIAL PRIMARY KEY,
		run_id      BIGINT NOT NULL REFERENCES runs(id),
		certificate TEXT NOT NULL,
		finished_at TIMESTAMPTZ NOT NULL,
		data        TEXT NOT NULL
	);
	CREATE INDEX results_by_certificate ON results(certificate, id);
	CREATE TABLE accounts (
		issuer TEXT PRIMARY KEY,
		data   BYTEA NOT NULL
	);
	CREATE TABLE leases (
		name       TEXT PRIMARY KEY,
		holder     TEXT NOT NULL,
		token      BIGINT NOT NULL,
		expires_at TIMESTAMPTZ NOT NULL
	);`,
	// 2: the twin of SQLite's meta table (the database's identity for the lost-state marker). A
	// PostgreSQL state has no marker file; the table keeps the versions in step for state migrate.
	`CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`,
	// 3: the twin of SQLite's: PEM bodies in their own columns, result rows spanning consecutive
	// runs (run_id to last_run_id), the newest row of each certificate marked latest.
	`ALTER TABLE deployments ADD COLUMN cert_pem TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN chain_pem TEXT NOT NULL DEFAULT 'null';
	UPDATE deployments SET cert_pem = COALESCE(data::jsonb ->> 'CertPEM', ''),
		chain_pem = COALESCE((data::jsonb -> 'ChainPEM')::text, 'null'),
		data = (data::jsonb - 'CertPEM' - 'ChainPEM')::text;
	ALTER TABLE results ADD COLUMN last_run_id BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE results ADD COLUMN last_finished_at TIMESTAMPTZ;
	ALTER TABLE results ADD COLUMN latest BOOLEAN NOT NULL DEFAULT false;
	UPDATE results SET last_run_id = run_id, last_finished_at = finished_at;
	ALTER TABLE results ALTER COLUMN last_finished_at SET NOT NULL;
	UPDATE results SET latest = true WHERE id IN (SELECT MAX(id) FROM results GROUP BY certificate);
	CREATE UNIQUE INDEX results_latest ON results(certificate) WHERE latest;
	CREATE INDEX results_by_last_run ON results(last_run_id);
	CREATE INDEX results_by_run ON results(run_id);`,
	// 4: the CA-check schedule, as in SQLite; never scheduled is the zero time (year 1).
	`ALTER TABLE deployments ADD COLUMN ca_check_due TIMESTAMPTZ;
	UPDATE deployments SET ca_check_due = '0001-01-01 00:00:00+00'
		WHERE (data::jsonb ->> 'OrderRef') <> '' AND NOT (data::jsonb ->> 'Revoked')::boolean;
	CREATE INDEX deployments_ca_check_due ON deployments(ca_check_due);`,
	// 5: the twin of SQLite's: a deployment's record in plain columns (flags as booleans), its
	// PEM bodies in deployment_pems; pgFillDeploymentColumns then moves the recorded ones.
	`ALTER TABLE deployments ADD COLUMN device TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN issuer TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN cert_ref TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN key_ref TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN chain_refs TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN order_ref TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN serial TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN not_before TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN not_after_text TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN spec_hash TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN bindings TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN deployed_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN revocation_checked_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN revoked BOOLEAN NOT NULL DEFAULT false;
	ALTER TABLE deployments ADD COLUMN renewal_window_start TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN renewal_window_end TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN renewal_info_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN renewal_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN renewal_info_retry_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN adopted BOOLEAN NOT NULL DEFAULT false;
	ALTER TABLE deployments ADD COLUMN rebinds BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE deployments ADD COLUMN last_rebind_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN served BOOLEAN NOT NULL DEFAULT false;
	ALTER TABLE deployments ADD COLUMN served_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN served_ok BOOLEAN NOT NULL DEFAULT false;
	ALTER TABLE deployments ADD COLUMN served_detail TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN served_endpoints TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN ca_check_due_at TEXT NOT NULL DEFAULT '';
	CREATE TABLE deployment_pems (
		certificate TEXT PRIMARY KEY,
		cert_pem    TEXT NOT NULL,
		chain_pem   TEXT NOT NULL
	);
	INSERT INTO deployment_pems(certificate, cert_pem, chain_pem) SELECT certificate, cert_pem, chain_pem FROM deployments;`,
	// 6: the columns migration 5 emptied.
	`ALTER TABLE deployments DROP COLUMN data, DROP COLUMN cert_pem, DROP COLUMN chain_pem;`,
	// 7: the twin of SQLite's: a result's record in plain columns.
	`ALTER TABLE results ADD COLUMN device TEXT NOT NULL DEFAULT '';
	ALTER TABLE results ADD COLUMN action TEXT NOT NULL DEFAULT '';
	ALTER TABLE results ADD COLUMN reason TEXT NOT NULL DEFAULT '';
	ALTER TABLE results ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
	ALTER TABLE results ADD COLUMN error TEXT NOT NULL DEFAULT '';
	ALTER TABLE results ADD COLUMN step TEXT NOT NULL DEFAULT '';
	UPDATE results SET
		device = COALESCE(data::jsonb ->> 'device', data::jsonb ->> 'Device', ''),
		action = COALESCE(data::jsonb ->> 'action', data::jsonb ->> 'Action', ''),
		reason = COALESCE(data::jsonb ->> 'reason', data::jsonb ->> 'Reason', ''),
		outcome = COALESCE(data::jsonb ->> 'outcome', data::jsonb ->> 'Outcome', ''),
		error = COALESCE(data::jsonb ->> 'error', data::jsonb ->> 'Error', ''),
		step = COALESCE(data::jsonb ->> 'step', data::jsonb ->> 'Step', '');
	ALTER TABLE results DROP COLUMN data;`,
}

// Postgres is the Store shared by several certfleet instances. It needs an ordinary role that may
// create tables in its schema: no superuser, no extension.
type Postgres struct {
	pool *pgxpool.Pool
	// lockKey names this state's advisory lock (see Lock): one per schema.
	lockKey string
	// retention says which results FinishRun prunes.
	retention Retention
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to the database of dsn (a postgres:// URL or key=value string) and brings
// its schema up to date. Errors never repeat the DSN, which may hold a password.
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors quote the string; say what is wrong without it.
		return nil, errors.New("state dsn: not a PostgreSQL connection string (postgres://user@host/db?sslmode=verify-full or host=... dbname=...)")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("state database (PostgreSQL %s/%s): %w", cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	s := &Postgres{pool: pool, retention: DefaultRetention}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("state database (PostgreSQL %s/%s): %w", cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	return s, nil
}

// Pool is the connection pool, for the claims of core/lease that live in the same database.
func (s *Postgres) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Postgres) Close() error { s.pool.Close(); return nil }

// SchemaVersion returns the number of migrations applied.
func (s *Postgres) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// migrate applies the missing migrations. Instances starting together serialize on a transaction
// advisory lock, so each migration runs once.
func (s *Postgres) migrate(ctx context.Context) error {
	if err := s.pool.QueryRow(ctx, `SELECT 'certfleet state ' || current_schema()`).Scan(&s.lockKey); err != nil {
		return fmt.Errorf("read the current schema: %w", err)
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1 || ' migrate'))`, s.lockKey); err != nil {
			return fmt.Errorf("wait for other instances' migrations: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return err
		}
		if current > len(pgMigrations) {
			return fmt.Errorf("schema version %d is newer than this certfleet knows (%d): use a newer certfleet", current, len(pgMigrations))
		}
		for v := current + 1; v <= len(pgMigrations); v++ {
			if _, err := tx.Exec(ctx, pgMigrations[v-1]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if v == deploymentColumnsVersion {
				if err := pgFillDeploymentColumns(ctx, tx); err != nil {
					return fmt.Errorf("migration %d: %w", v, err)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES ($1, now())`, v); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		return nil
	})
}

func (s *Postgres) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// fenced runs fn in a transaction that first proves ctx's fence still holds, locking the claim row
// so that no other instance can take it over before this write commits.
func (s *Postgres) fenced(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if f, ok := FenceOf(ctx); ok {
			var token int64
			err := tx.QueryRow(ctx, `SELECT token FROM leases WHERE name = $1 FOR SHARE`, f.Name).Scan(&token)
			if errors.Is(err, pgx.ErrNoRows) || (err == nil && token != f.Token) {
				return fmt.Errorf("%w (%s)", ErrFenced, f.Name)
			}
			if err != nil {
				return fmt.Errorf("check the claim on %s: %w", f.Name, err)
			}
		}
		return fn(tx)
	})
}

// Lock holds a session advisory lock for this state's schema, making this process the only one
// running operations, as the SQLite file lock does. Instances that share the fleet do not take it:
// they claim devices one by one (core/lease).
func (s *Postgres) Lock(ctx context.Context) (func(), error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("state lock: %w", err)
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1))`, s.lockKey).Scan(&got); err != nil {
		conn.Release()
		return nil, fmt.Errorf("state lock: %w", err)
	}
	if !got {
		conn.Release()
		return nil, fmt.Errorf("%w (PostgreSQL advisory lock %q)", ErrLocked, s.lockKey)
	}
	return func() {
		_, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock(hashtext($1))`, s.lockKey)
		conn.Release()
	}, nil
}

var (
	pgDeployment  = selectDeployments(true, "d.certificate = $1")
	pgDeployments = selectDeployments(true, "")
	pgSummaries   = selectDeployments(false, "")
	pgDueCAChecks = selectDeployments(true, "d.ca_check_due <= $1 OR d.ca_check_due > $2")
	pgWrites      = newDeploymentWrites(func(i int) string { return fmt.Sprintf("$%d", i) })
)

// Deployment returns the deployment of a certificate, with its PEM bodies.
func (s *Postgres) Deployment(ctx context.Context, certificate string) (Deployment, bool, error) {
	rows, err := s.pool.Query(ctx, pgDeployment, certificate)
	if err != nil {
		return Deployment{}, false, fmt.Errorf("read deployment of %s: %w", certificate, err)
	}
	defer rows.Close()
	var d Deployment
	found := false
	if err := scanDeployments(rows, true, func(_ string, got Deployment) { d, found = got, true }); err != nil {
		return Deployment{}, false, fmt.Errorf("read deployment of %s: %w", certificate, err)
	}
	return d, found, nil
}

// Deployments returns every deployment, by certificate, with their PEM bodies.
func (s *Postgres) Deployments(ctx context.Context) (map[string]Deployment, error) {
	return s.deployments(ctx, pgDeployments, true)
}

// DeploymentSummaries returns every deployment as a summary (see Deployment.Summary): from the
// record columns it names, without the PEM bodies.
func (s *Postgres) DeploymentSummaries(ctx context.Context) (map[string]Deployment, error) {
	return s.deployments(ctx, pgSummaries, false)
}

func (s *Postgres) deployments(ctx context.Context, query string, whole bool) (map[string]Deployment, error) {
	rows, err := s.pool.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("read deployments: %w", err)
	}
	defer rows.Close()
	out := map[string]Deployment{}
	if err := scanDeployments(rows, whole, func(name string, d Deployment) { out[name] = d }); err != nil {
		return nil, fmt.Errorf("read deployments: %w", err)
	}
	return out, nil
}

func pgSaveDeployment(ctx context.Context, tx pgx.Tx, d Deployment) error {
	record, pems, err := deploymentArgs(d, d.NotAfter.UTC(), pgCACheckDue(d))
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, pgWrites.record, record...); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, pgWrites.pems, pems...)
	return err
}

// pgFillDeploymentColumns is SQLite's fillDeploymentColumns: the JSON records of the
// deployments recorded before migration 5 into its columns.
func pgFillDeploymentColumns(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT certificate, data FROM deployments`)
	if err != nil {
		return err
	}
	records, err := readLegacyRecords(rows)
	rows.Close()
	if err != nil {
		return err
	}
	return fillLegacyRecords(records, func(args ...any) error {
		_, err := tx.Exec(ctx, pgWrites.update, args...)
		return err
	})
}

// pgCACheckDue is the ca_check_due column of d: NULL when there is nothing to ask the CA.
func pgCACheckDue(d Deployment) *time.Time {
	if !d.CACheckable() {
		return nil
	}
	due := d.CACheckDueAt.UTC()
	return &due
}

// SaveDeployments records ds in one transaction (fenced when ctx carries a claim).
func (s *Postgres) SaveDeployments(ctx context.Context, ds []Deployment) error {
	err := s.fenced(ctx, func(tx pgx.Tx) error {
		for _, d := range ds {
			if err := pgSaveDeployment(ctx, tx, d); err != nil {
				return fmt.Errorf("%s: %w", d.Certificate, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save deployments: %w", err)
	}
	return nil
}

// DueCAChecks returns the deployments whose CA check is due (see Store), from the
// deployments_ca_check_due index.
func (s *Postgres) DueCAChecks(ctx context.Context, now, horizon time.Time) ([]Deployment, error) {
	// Whole, with the PEM bodies, as in SQLite.
	rows, err := s.pool.Query(ctx, pgDueCAChecks, now.UTC(), horizon.UTC())
	if err != nil {
		return nil, fmt.Errorf("read the CA checks due: %w", err)
	}
	defer rows.Close()
	var out []Deployment
	if err := scanDeployments(rows, true, func(_ string, d Deployment) { out = append(out, d) }); err != nil {
		return nil, fmt.Errorf("read the CA checks due: %w", err)
	}
	return out, nil
}

// SaveDeployment records d (fenced when ctx carries a claim).
func (s *Postgres) SaveDeployment(ctx context.Context, d Deployment) error {
	if err := s.fenced(ctx, func(tx pgx.Tx) error { return pgSaveDeployment(ctx, tx, d) }); err != nil {
		return fmt.Errorf("save deployment of %s: %w", d.Certificate, err)
	}
	return nil
}

// DeleteDeployment forgets a certificate's deployment (a retired certificate); its run history
// stays.
func (s *Postgres) DeleteDeployment(ctx context.Context, certificate string) error {
	err := s.fenced(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM deployment_pems WHERE certificate = $1`, certificate); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM deployments WHERE certificate = $1`, certificate)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete deployment of %s: %w", certificate, err)
	}
	return nil
}

// OpenOperation returns the certificate's unfinished operation, or nil.
func (s *Postgres) OpenOperation(ctx context.Context, certificate string) (*Operation, error) {
	var data string
	err := s.pool.QueryRow(ctx, `SELECT data FROM operations WHERE certificate = $1 AND open`, certificate).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read operation of %s: %w", certificate, err)
	}
	return scanOperation(data)
}

// OpenOperations returns every unfinished operation.
func (s *Postgres) OpenOperations(ctx context.Context) (map[string]*Operation, error) {
	rows, err := s.pool.Query(ctx, `SELECT data FROM operations WHERE open`)
	if err != nil {
		return nil, fmt.Errorf("read operations: %w", err)
	}
	defer rows.Close()
	out := map[string]*Operation{}
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("read operations: %w", err)
		}
		op, err := scanOperation(data)
		if err != nil {
			return nil, err
		}
		out[op.Certificate] = op
	}
	return out, rows.Err()
}

func pgWriteOperation(ctx context.Context, tx pgx.Tx, op *Operation, insert bool) error {
	op.UpdatedAt = time.Now().UTC()
	data, err := json.Marshal(op)
	if err != nil {
		return err
	}
	open := op.Step != StepDone && op.Step != StepAbandoned
	if insert {
		_, err = tx.Exec(ctx, `INSERT INTO operations(id, certificate, step, open, started_at, updated_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			op.ID, op.Certificate, string(op.Step), open, op.StartedAt.UTC(), op.UpdatedAt, string(data))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "operations_one_open" {
			return fmt.Errorf("%s already has an unfinished operation", op.Certificate)
		}
		return err
	}
	tag, err := tx.Exec(ctx, `UPDATE operations SET step = $1, open = $2, updated_at = $3, data = $4 WHERE id = $5`,
		string(op.Step), open, op.UpdatedAt, string(data), op.ID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("operation %s is not recorded", op.ID)
	}
	return nil
}

// CreateOperation records a new operation.
func (s *Postgres) CreateOperation(ctx context.Context, op *Operation) error {
	if op.StartedAt.IsZero() {
		op.StartedAt = time.Now().UTC()
	}
	if err := s.fenced(ctx, func(tx pgx.Tx) error { return pgWriteOperation(ctx, tx, op, true) }); err != nil {
		return fmt.Errorf("record operation for %s: %w", op.Certificate, err)
	}
	return nil
}

// SaveOperation records op's current state.
func (s *Postgres) SaveOperation(ctx context.Context, op *Operation) error {
	if err := s.fenced(ctx, func(tx pgx.Tx) error { return pgWriteOperation(ctx, tx, op, false) }); err != nil {
		return fmt.Errorf("record step %s of %s: %w", op.Step, op.Certificate, err)
	}
	return nil
}

// CompleteOperation finishes op and records the deployment in one transaction.
func (s *Postgres) CompleteOperation(ctx context.Context, op *Operation, d Deployment) error {
	op.Step = StepDone
	err := s.fenced(ctx, func(tx pgx.Tx) error {
		if err := pgWriteOperation(ctx, tx, op, false); err != nil {
			return err
		}
		return pgSaveDeployment(ctx, tx, d)
	})
	if err != nil {
		return fmt.Errorf("record deployment of %s: %w", op.Certificate, err)
	}
	return nil
}

// AbandonOperation finishes op without a deployment.
func (s *Postgres) AbandonOperation(ctx context.Context, op *Operation, reason string) error {
	op.Step = StepAbandoned
	op.LastError = reason
	return s.SaveOperation(ctx, op)
}

// StartRun records the start of a run.
func (s *Postgres) StartRun(ctx context.Context, dryRun bool) (int64, error) {
	var id int64
	if err := s.pool.QueryRow(ctx, `INSERT INTO runs(started_at, outcome, dry_run) VALUES (now(), 'interrupted', $1) RETURNING id`, dryRun).Scan(&id); err != nil {
		return 0, fmt.Errorf("record run: %w", err)
	}
	return id, nil
}

// SetRetention sets what FinishRun keeps.
func (s *Postgres) SetRetention(r Retention) { s.retention = r }

// FinishRun records how a run ended and prunes the history the retention no longer keeps, in one
// transaction.
func (s *Postgres) FinishRun(ctx context.Context, id int64, outcome string) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE runs SET finished_at = now(), outcome = $1 WHERE id = $2`, outcome, id); err != nil {
			return err
		}
		return s.prune(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("record end of run %d: %w", id, err)
	}
	return nil
}

// prune is SQLite's prune: results of runs before the oldest kept (the newest result of each
// certificate stays), then the runs left with no result.
func (s *Postgres) prune(ctx context.Context, tx pgx.Tx, current int64) error {
	keep := current
	if s.retention.MaxAge > 0 {
		var oldest *int64
		if err := tx.QueryRow(ctx, `SELECT MIN(id) FROM runs WHERE started_at >= $1`, time.Now().Add(-s.retention.MaxAge)).Scan(&oldest); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		if oldest != nil {
			keep = min(keep, *oldest)
		}
	} else {
		keep = 0
	}
	if s.retention.MaxRuns > 0 {
		var nth int64
		err := tx.QueryRow(ctx, `SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET $1`, s.retention.MaxRuns-1).Scan(&nth)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("prune: %w", err)
		}
		keep = max(keep, nth)
	}
	if keep <= 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM results WHERE last_run_id < $1 AND NOT latest`, keep); err != nil {
		return fmt.Errorf("prune results: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM runs WHERE id < $1 AND NOT EXISTS (SELECT 1 FROM results WHERE results.run_id = runs.id)`, keep); err != nil {
		return fmt.Errorf("prune runs: %w", err)
	}
	return nil
}

// RecordResult records one certificate's result in a run.
func (s *Postgres) RecordResult(ctx context.Context, r Result) error {
	return s.RecordResults(ctx, []Result{r})
}

// RecordResults records results in one transaction, as SQLite's: a result the same as its
// certificate's newest, of the run just before, extends that row to this run.
func (s *Postgres) RecordResults(ctx context.Context, rs []Result) error {
	if len(rs) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		names := make([]string, len(rs))
		for i, r := range rs {
			names[i] = r.Certificate
		}
		latest := map[string]span{}
		rows, err := tx.Query(ctx, `SELECT certificate, last_run_id, `+resultColumns+` FROM results WHERE latest AND certificate = ANY($1)`, names)
		if err != nil {
			return err
		}
		for rows.Next() {
			var name string
			var sp span
			if err := rows.Scan(append([]any{&name, &sp.last}, sp.rec.targets()...)...); err != nil {
				rows.Close()
				return err
			}
			latest[name] = sp
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		prevs := map[int64]int64{}
		plan, err := planRecords(rs, latest, func(run int64) (int64, error) {
			p, ok := prevs[run]
			if !ok {
				if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM runs WHERE id < $1`, run).Scan(&p); err != nil {
					return 0, err
				}
				prevs[run] = p
			}
			return p, nil
		})
		if err != nil {
			return err
		}
		for run, e := range plan.extend {
			if _, err := tx.Exec(ctx, `UPDATE results SET last_run_id = $1, last_finished_at = $2 WHERE latest AND certificate = ANY($3)`, run, e.at.UTC(), e.names); err != nil {
				return fmt.Errorf("extend results: %w", err)
			}
		}
		if len(plan.retire) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE results SET latest = false WHERE latest AND certificate = ANY($1)`, plan.retire); err != nil {
				return err
			}
		}
		if len(plan.rows) > 0 {
			rows := make([][]any, len(plan.rows))
			for i, row := range plan.rows {
				rows[i] = append([]any{row.first, row.certificate, row.firstAt.UTC(), row.last, row.lastAt.UTC(), row.latest}, row.rec.values()...)
			}
			columns := append([]string{"run_id", "certificate", "finished_at", "last_run_id", "last_finished_at", "latest"}, strings.Split(resultColumns, ", ")...)
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"results"}, columns, pgx.CopyFromRows(rows)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record results: %w", err)
	}
	return nil
}

// LastResults returns the newest result of each certificate, from the rows marked latest.
func (s *Postgres) LastResults(ctx context.Context) (map[string]Result, error) {
	rows, err := s.pool.Query(ctx, `SELECT certificate, last_run_id, last_finished_at, `+resultColumns+` FROM results WHERE latest`)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	defer rows.Close()
	out := map[string]Result{}
	var name string
	var run int64
	var at time.Time
	var rec resultFields
	dest := append([]any{&name, &run, &at}, rec.targets()...)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read results: %w", err)
		}
		out[name] = rec.result(name, run, at.UTC())
	}
	return out, rows.Err()
}

// Runs returns the newest runs first.
func (s *Postgres) Runs(ctx context.Context, limit int) ([]Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, started_at, finished_at, outcome, dry_run FROM runs ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var r Run
		var finished *time.Time
		if err := rows.Scan(&r.ID, &r.StartedAt, &finished, &r.Outcome, &r.DryRun); err != nil {
			return nil, fmt.Errorf("read runs: %w", err)
		}
		r.StartedAt = r.StartedAt.UTC()
		if finished != nil {
			r.FinishedAt = finished.UTC()
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// LoadAccount returns an issuer's stored account.
func (s *Postgres) LoadAccount(ctx context.Context, issuer string) ([]byte, bool, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM accounts WHERE issuer = $1`, issuer).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read account of issuer %s: %w", issuer, err)
	}
	return data, true, nil
}

// SaveAccount stores an issuer's account.
func (s *Postgres) SaveAccount(ctx context.Context, issuer string, data []byte) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO accounts(issuer, data) VALUES ($1, $2) ON CONFLICT(issuer) DO UPDATE SET data = excluded.data`,
		issuer, data); err != nil {
		return fmt.Errorf("save account of issuer %s: %w", issuer, err)
	}
	return nil
}
