package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofrs/flock"
	_ "modernc.org/sqlite" // pure-Go SQLite driver: one file, no server, no cgo
)

// migrations are applied in order; each runs once, recorded in schema_migrations. Never edit one
// that has shipped: add the next.
var migrations = []string{
	// 1: deployments, operations, runs, results, accounts.
	`CREATE TABLE deployments (
		certificate TEXT PRIMARY KEY,
		not_after   TEXT NOT NULL,
		data        TEXT NOT NULL
	);
	CREATE TABLE operations (
		id          TEXT PRIMARY KEY,
		certificate TEXT NOT NULL,
		step        TEXT NOT NULL,
		open        INTEGER NOT NULL,
		started_at  TEXT NOT NULL,
		updated_at  TEXT NOT NULL,
		data        TEXT NOT NULL
	);
	CREATE UNIQUE INDEX operations_one_open ON operations(certificate) WHERE open = 1;
	CREATE TABLE runs (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		started_at  TEXT NOT NULL,
		finished_at TEXT,
		outcome     TEXT NOT NULL,
		dry_run     INTEGER NOT NULL
	);
	CREATE TABLE results (
		run_id      INTEGER NOT NULL REFERENCES runs(id),
		certificate TEXT NOT NULL,
		finished_at TEXT NOT NULL,
		data        TEXT NOT NULL
	);
	CREATE INDEX results_by_certificate ON results(certificate, finished_at);
	CREATE TABLE accounts (
		issuer TEXT PRIMARY KEY,
		data   BLOB NOT NULL
	);`,
	// 2: the database's identity, named by the marker beside it (see marker.go).
	`CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`,
	// 3: the PEM bodies of a deployment in columns of their own, so that planning reads the
	// deployments without them; a result row spans the consecutive runs that had the same result
	// (run_id to last_run_id), and the newest row of each certificate is marked latest, so that a
	// run that changes nothing writes no row per certificate and status reads no history.
	`ALTER TABLE deployments ADD COLUMN cert_pem TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN chain_pem TEXT NOT NULL DEFAULT 'null';
	UPDATE deployments SET cert_pem = COALESCE(json_extract(data, '$.CertPEM'), ''),
		chain_pem = COALESCE(json_extract(data, '$.ChainPEM'), 'null'),
		data = json_remove(data, '$.CertPEM', '$.ChainPEM');
	ALTER TABLE results ADD COLUMN last_run_id INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE results ADD COLUMN last_finished_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE results ADD COLUMN latest INTEGER NOT NULL DEFAULT 0;
	UPDATE results SET last_run_id = run_id, last_finished_at = finished_at;
	UPDATE results SET latest = 1 WHERE rowid IN (SELECT MAX(rowid) FROM results GROUP BY certificate);
	CREATE UNIQUE INDEX results_latest ON results(certificate) WHERE latest = 1;
	CREATE INDEX results_by_last_run ON results(last_run_id);
	CREATE INDEX results_by_run ON results(run_id);`,
	// 4: the CA-check schedule (Deployment.CACheckDueAt, read by DueCAChecks).
	caCheckScheduleMigration,
	// 5: a deployment's record in plain columns (columns.go) instead of the JSON in data, and its
	// PEM bodies in a table of their own, so that reading every deployment decodes no JSON and
	// reads no page of PEM; fillDeploymentColumns then moves the recorded ones.
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
	ALTER TABLE deployments ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE deployments ADD COLUMN renewal_window_start TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN renewal_window_end TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN renewal_info_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN renewal_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN renewal_info_retry_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN adopted INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE deployments ADD COLUMN rebinds INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE deployments ADD COLUMN last_rebind_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN served INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE deployments ADD COLUMN served_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN served_ok INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE deployments ADD COLUMN served_detail TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN served_endpoints TEXT NOT NULL DEFAULT '';
	ALTER TABLE deployments ADD COLUMN ca_check_due_at TEXT NOT NULL DEFAULT '';
	CREATE TABLE deployment_pems (
		certificate TEXT PRIMARY KEY,
		cert_pem    TEXT NOT NULL,
		chain_pem   TEXT NOT NULL
	);
	INSERT INTO deployment_pems(certificate, cert_pem, chain_pem) SELECT certificate, cert_pem, chain_pem FROM deployments;`,
	// 6: the columns migration 5 emptied, dropped by making the table anew: dropping them in place
	// would leave each row alone on the page its PEM bodies filled, and reading the deployments
	// would read as many pages as there are deployments.
	`CREATE TABLE deployments_v6 (
		certificate  TEXT PRIMARY KEY,
		not_after    TEXT NOT NULL,
		ca_check_due TEXT,
		device TEXT NOT NULL DEFAULT '',
		issuer TEXT NOT NULL DEFAULT '',
		cert_ref TEXT NOT NULL DEFAULT '',
		key_ref TEXT NOT NULL DEFAULT '',
		chain_refs TEXT NOT NULL DEFAULT '',
		order_ref TEXT NOT NULL DEFAULT '',
		serial TEXT NOT NULL DEFAULT '',
		fingerprint TEXT NOT NULL DEFAULT '',
		not_before TEXT NOT NULL DEFAULT '',
		not_after_text TEXT NOT NULL DEFAULT '',
		spec_hash TEXT NOT NULL DEFAULT '',
		bindings TEXT NOT NULL DEFAULT '',
		deployed_at TEXT NOT NULL DEFAULT '',
		revocation_checked_at TEXT NOT NULL DEFAULT '',
		revoked INTEGER NOT NULL DEFAULT 0,
		renewal_window_start TEXT NOT NULL DEFAULT '',
		renewal_window_end TEXT NOT NULL DEFAULT '',
		renewal_info_at TEXT NOT NULL DEFAULT '',
		renewal_at TEXT NOT NULL DEFAULT '',
		renewal_info_retry_at TEXT NOT NULL DEFAULT '',
		adopted INTEGER NOT NULL DEFAULT 0,
		rebinds INTEGER NOT NULL DEFAULT 0,
		last_rebind_at TEXT NOT NULL DEFAULT '',
		served INTEGER NOT NULL DEFAULT 0,
		served_at TEXT NOT NULL DEFAULT '',
		served_ok INTEGER NOT NULL DEFAULT 0,
		served_detail TEXT NOT NULL DEFAULT '',
		served_endpoints TEXT NOT NULL DEFAULT '',
		ca_check_due_at TEXT NOT NULL DEFAULT ''
	);
	INSERT INTO deployments_v6(certificate, not_after, ca_check_due, device, issuer, cert_ref, key_ref, chain_refs, order_ref, serial, fingerprint, not_before, not_after_text, spec_hash, bindings, deployed_at, revocation_checked_at, revoked, renewal_window_start, renewal_window_end, renewal_info_at, renewal_at, renewal_info_retry_at, adopted, rebinds, last_rebind_at, served, served_at, served_ok, served_detail, served_endpoints, ca_check_due_at)
		SELECT certificate, not_after, ca_check_due, device, issuer, cert_ref, key_ref, chain_refs, order_ref, serial, fingerprint, not_before, not_after_text, spec_hash, bindings, deployed_at, revocation_checked_at, revoked, renewal_window_start, renewal_window_end, renewal_info_at, renewal_at, renewal_info_retry_at, adopted, rebinds, last_rebind_at, served, served_at, served_ok, served_detail, served_endpoints, ca_check_due_at FROM deployments;
	DROP TABLE deployments;
	ALTER TABLE deployments_v6 RENAME TO deployments;
	CREATE INDEX deployments_ca_check_due ON deployments(ca_check_due);`,
	// 7: a result's record in plain columns instead of the JSON in data (read in either of the
	// names results were recorded under: snake_case, or the Go field names before), so that
	// status decodes no JSON.
	`ALTER TABLE results ADD COLUMN device TEXT NOT NULL DEFAULT '';
	ALTER TABLE results ADD COLUMN action TEXT NOT NULL DEFAULT '';
	ALTER TABLE results ADD COLUMN reason TEXT NOT NULL DEFAULT '';
	ALTER TABLE results ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
	ALTER TABLE results ADD COLUMN error TEXT NOT NULL DEFAULT '';
	ALTER TABLE results ADD COLUMN step TEXT NOT NULL DEFAULT '';
	UPDATE results SET
		device = COALESCE(json_extract(data, '$.device'), json_extract(data, '$.Device'), ''),
		action = COALESCE(json_extract(data, '$.action'), json_extract(data, '$.Action'), ''),
		reason = COALESCE(json_extract(data, '$.reason'), json_extract(data, '$.Reason'), ''),
		outcome = COALESCE(json_extract(data, '$.outcome'), json_extract(data, '$.Outcome'), ''),
		error = COALESCE(json_extract(data, '$.error'), json_extract(data, '$.Error'), ''),
		step = COALESCE(json_extract(data, '$.step'), json_extract(data, '$.Step'), '');
	ALTER TABLE results DROP COLUMN data;`,
}

// caCheckScheduleMigration adds the indexed schedule of the CA checks: when each deployment's
// next check is due (caCheckDue), NULL for deployments with nothing to ask. Deployments recorded
// before it are marked never scheduled: the engine schedules each at the next run.
const caCheckScheduleMigration = `ALTER TABLE deployments ADD COLUMN ca_check_due TEXT;
	UPDATE deployments SET ca_check_due = '` + neverScheduled + `'
		WHERE json_extract(data, '$.OrderRef') <> '' AND NOT json_extract(data, '$.Revoked');
	CREATE INDEX deployments_ca_check_due ON deployments(ca_check_due);`

// dueFormat writes the schedule so that text order is time order: UTC, fixed width (RFC 3339
// with all nine fraction digits; RFC3339Nano drops trailing zeros, and "…:05Z" > "…:05.1Z").
const dueFormat = "2006-01-02T15:04:05.000000000Z"

// neverScheduled is the zero time in dueFormat: before every real time, so always due.
const neverScheduled = "0001-01-01T00:00:00.000000000Z"

// caCheckDue is the ca_check_due column of d: NULL when there is nothing to ask the CA.
func caCheckDue(d Deployment) any {
	if !d.CACheckable() {
		return nil
	}
	return d.CACheckDueAt.UTC().Format(dueFormat)
}

// SQLite is the embedded Store.
type SQLite struct {
	db *sql.DB
	// reads are read-only connections for the reads of whole tables (every deployment, every
	// open operation, every last result): in WAL mode they run beside each other and beside db's
	// writes, where db's one connection would take them one after the other.
	reads *sql.DB
	path  string
	// marked is set once the marker beside the database names it (operations are created
	// concurrently, hence atomic).
	marked atomic.Bool
	// retention says which results FinishRun prunes (set before the store is used).
	retention Retention
	// clock is the time of runs and of pruning (time.Now; a test simulates a year with it).
	clock func() time.Time
}

var _ Store = (*SQLite)(nil)

const timeFormat = time.RFC3339Nano

// Open opens (creating if needed) the state database at path and brings its schema up to date.
func Open(ctx context.Context, path string) (*SQLite, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	_, statErr := os.Stat(path)
	existed := statErr == nil
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	// One connection: SQLite serializes writers anyway, and this keeps transactions from
	// contending inside the process.
	db.SetMaxOpenConns(1)
	s := &SQLite{db: db, path: path, retention: DefaultRetention, clock: time.Now}
	if err := checkNotLost(ctx, path, existed, db); err != nil {
		db.Close()
		if errors.Is(err, ErrStateLost) {
			return nil, err
		}
		return nil, fmt.Errorf("state database %s cannot be read: %w (nothing was done; restore it from a backup)", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	if err := s.checkMarker(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	// Opened once the file is in WAL mode and migrated; a connection is made on first use. A
	// whole-table read reads each page once, so a page cache of 64 KiB serves it: a connection's
	// default 2 MiB is allocated page by page, and that was most of a second connection's cost.
	reads, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)&_pragma=cache_size(-64)")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	// Two: status reads the deployments beside the rest (and database/sql keeps two idle).
	reads.SetMaxOpenConns(2)
	s.reads = reads
	return s, nil
}

// SchemaVersion returns the number of migrations applied.
func (s *SQLite) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (s *SQLite) migrate(ctx context.Context) (err error) {
	// A schema already up to date (every open but the first after an upgrade) is seen by a plain
	// read, which WAL lets run beside another process's write transaction: status and plan do
	// not wait behind a run's writes for a lock they do not need.
	var current int
	if s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current) == nil && current == len(migrations) {
		return nil
	}
	// One write transaction from the start (BEGIN IMMEDIATE waits on busy_timeout), so two
	// processes opening a new database together migrate it once: a deferred transaction would
	// fail with SQLITE_BUSY on its upgrade to a write, or apply migration 1 twice.
	conn, err := connWhenFree(ctx, s.db)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return fmt.Errorf("lock the database for migrations: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
		}
	}()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this certfleet knows (%d): use a newer certfleet", current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
		if _, err := conn.ExecContext(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if v == deploymentColumnsVersion {
			if err := fillDeploymentColumns(ctx, conn); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, v, now()); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return fmt.Errorf("commit migrations: %w", err)
	}
	if current > 0 {
		compactAfterMigration(ctx, conn)
	}
	return nil
}

// compactAfterMigration gives the file system back the pages a migration freed, when they are a
// large share of the file: migrations 5 to 7 moved every deployment's and result's JSON record
// and PEM bodies into new tables, which leaves the old pages free inside the file, and only VACUUM
// shrinks it. VACUUM needs the database to itself and as much free disk as its size; when it
// cannot run, nothing is lost: SQLite reuses the free pages as the state grows.
func compactAfterMigration(ctx context.Context, conn *sql.Conn) {
	var free, total int64
	if conn.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free) != nil ||
		conn.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&total) != nil || free*4 < total {
		return
	}
	if _, err := conn.ExecContext(ctx, `VACUUM`); err == nil {
		// Written back from the write-ahead log now, so the file is small as soon as the
		// command that migrated ends.
		_, _ = conn.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	}
}

// connWhenFree opens a connection, waiting while another process holds the new database: the
// journal_mode(WAL) pragma run on connect answers SQLITE_BUSY at once, without the busy handler,
// while another process switches a new file to WAL.
func connWhenFree(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	deadline := time.Now().Add(10 * time.Second)
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		conn, err := db.Conn(ctx)
		if err == nil || !strings.Contains(err.Error(), "SQLITE_BUSY") || time.Now().After(deadline) {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func now() string { return time.Now().UTC().Format(timeFormat) }

// stamp is the clock's time as stored.
func (s *SQLite) stamp() string { return s.clock().UTC().Format(timeFormat) }

func (s *SQLite) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Close closes the database.
func (s *SQLite) Close() error { return errors.Join(s.reads.Close(), s.db.Close()) }

// Lock takes an exclusive lock on a file beside the database, so two certfleet processes (a cron
// run overlapping a daemon) never drive the same certificates at once. gofrs/flock is flock(2) on
// Unix, as before, and LockFileEx on Windows, where syscall.Flock does not exist.
func (s *SQLite) Lock(ctx context.Context) (func(), error) {
	fl := flock.New(s.path+".lock", flock.SetPermissions(0o600))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("state lock %s.lock: %w", s.path, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w (%s.lock)", ErrLocked, s.path)
	}
	return func() { _ = fl.Unlock() }, nil
}

var (
	sqliteDeployment       = selectDeployments(true, "d.certificate = ?")
	sqliteDeployments      = selectDeployments(true, "")
	sqliteSummaries        = selectDeployments(false, "")
	sqliteDueCAChecks      = selectDeployments(true, "d.ca_check_due <= ? OR d.ca_check_due > ?")
	sqliteWrites           = newDeploymentWrites(func(int) string { return "?" })
	sqliteCountDeployments = `SELECT COUNT(*) FROM deployments`
)

// Deployment returns the deployment of a certificate, with its PEM bodies.
func (s *SQLite) Deployment(ctx context.Context, certificate string) (Deployment, bool, error) {
	rows, err := s.db.QueryContext(ctx, sqliteDeployment, certificate)
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
func (s *SQLite) Deployments(ctx context.Context) (map[string]Deployment, error) {
	return s.deployments(ctx, sqliteDeployments, true)
}

// DeploymentSummaries returns every deployment as a summary (see Deployment.Summary): from the
// record columns it names, without the PEM bodies.
func (s *SQLite) DeploymentSummaries(ctx context.Context) (map[string]Deployment, error) {
	return s.deployments(ctx, sqliteSummaries, false)
}

func (s *SQLite) deployments(ctx context.Context, query string, whole bool) (map[string]Deployment, error) {
	var n int
	if err := s.reads.QueryRowContext(ctx, sqliteCountDeployments).Scan(&n); err != nil {
		return nil, fmt.Errorf("read deployments: %w", err)
	}
	rows, err := s.reads.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("read deployments: %w", err)
	}
	defer rows.Close()
	out := make(map[string]Deployment, n)
	if err := scanDeployments(rows, whole, func(name string, d Deployment) { out[name] = d }); err != nil {
		return nil, fmt.Errorf("read deployments: %w", err)
	}
	return out, nil
}

// execer is what saveDeployment writes through: a transaction, or the migration's connection.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func saveDeployment(ctx context.Context, tx execer, d Deployment) error {
	record, pems, err := deploymentArgs(d, d.NotAfter.UTC().Format(timeFormat), caCheckDue(d))
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, sqliteWrites.record, record...); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, sqliteWrites.pems, pems...)
	return err
}

// fillDeploymentColumns moves the JSON records of the deployments recorded before migration 5
// into its columns, in the migration's transaction.
func fillDeploymentColumns(ctx context.Context, conn *sql.Conn) error {
	rows, err := conn.QueryContext(ctx, `SELECT certificate, data FROM deployments`)
	if err != nil {
		return err
	}
	records, err := readLegacyRecords(rows)
	rows.Close()
	if err != nil {
		return err
	}
	update, err := conn.PrepareContext(ctx, sqliteWrites.update)
	if err != nil {
		return err
	}
	defer update.Close()
	return fillLegacyRecords(records, func(args ...any) error {
		_, err := update.ExecContext(ctx, args...)
		return err
	})
}

// SaveDeployments records ds in one transaction, each statement prepared once.
func (s *SQLite) SaveDeployments(ctx context.Context, ds []Deployment) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var w execer = tx
		if len(ds) > 1 {
			p, err := prepared(ctx, tx, sqliteWrites.record, sqliteWrites.pems)
			if err != nil {
				return err
			}
			defer p.Close()
			w = p
		}
		for _, d := range ds {
			if err := saveDeployment(ctx, w, d); err != nil {
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

// DueCAChecks returns the deployments whose CA check is due (see Store); two ranges of the
// deployments_ca_check_due index.
func (s *SQLite) DueCAChecks(ctx context.Context, now, horizon time.Time) ([]Deployment, error) {
	// Whole, with the PEM bodies: an ACME certificate's renewal information is asked by its
	// serial and issuer, and the checked deployment is saved back.
	rows, err := s.db.QueryContext(ctx, sqliteDueCAChecks, now.UTC().Format(dueFormat), horizon.UTC().Format(dueFormat))
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

// SaveDeployment records d.
func (s *SQLite) SaveDeployment(ctx context.Context, d Deployment) error {
	if err := s.tx(ctx, func(tx *sql.Tx) error { return saveDeployment(ctx, tx, d) }); err != nil {
		return fmt.Errorf("save deployment of %s: %w", d.Certificate, err)
	}
	return nil
}

// DeleteDeployment forgets a certificate's deployment; its run history stays.
func (s *SQLite) DeleteDeployment(ctx context.Context, certificate string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM deployment_pems WHERE certificate = ?`, certificate); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM deployments WHERE certificate = ?`, certificate)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete deployment of %s: %w", certificate, err)
	}
	return nil
}

// preparedSet is statements prepared in a transaction, executed by their text (an execer).
type preparedSet map[string]*sql.Stmt

func prepared(ctx context.Context, tx *sql.Tx, queries ...string) (preparedSet, error) {
	p := preparedSet{}
	for _, q := range queries {
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			p.Close()
			return nil, err
		}
		p[q] = st
	}
	return p, nil
}

func (p preparedSet) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, ok := p[query]
	if !ok {
		return nil, fmt.Errorf("statement not prepared: %s", query)
	}
	return st.ExecContext(ctx, args...)
}

func (p preparedSet) Close() {
	for _, st := range p {
		st.Close()
	}
}

func scanOperation(data string) (*Operation, error) {
	var op Operation
	if err := json.Unmarshal([]byte(data), &op); err != nil {
		return nil, fmt.Errorf("decode operation: %w", err)
	}
	return &op, nil
}

// OpenOperation returns the certificate's unfinished operation, or nil.
func (s *SQLite) OpenOperation(ctx context.Context, certificate string) (*Operation, error) {
	var data string
	err := s.db.QueryRowContext(ctx, `SELECT data FROM operations WHERE certificate = ? AND open = 1`, certificate).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read operation of %s: %w", certificate, err)
	}
	return scanOperation(data)
}

// OpenOperations returns every unfinished operation.
func (s *SQLite) OpenOperations(ctx context.Context) (map[string]*Operation, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT data FROM operations WHERE open = 1`)
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

func writeOperation(ctx context.Context, tx *sql.Tx, op *Operation, insert bool) error {
	op.UpdatedAt = time.Now().UTC()
	data, err := json.Marshal(op)
	if err != nil {
		return err
	}
	open := 1
	if op.Step == StepDone || op.Step == StepAbandoned {
		open = 0
	}
	if insert {
		_, err = tx.ExecContext(ctx, `INSERT INTO operations(id, certificate, step, open, started_at, updated_at, data) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			op.ID, op.Certificate, string(op.Step), open, op.StartedAt.UTC().Format(timeFormat), op.UpdatedAt.Format(timeFormat), string(data))
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE operations SET step = ?, open = ?, updated_at = ?, data = ? WHERE id = ?`,
		string(op.Step), open, op.UpdatedAt.Format(timeFormat), string(data), op.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("operation %s is not recorded", op.ID)
	}
	return nil
}

// CreateOperation records a new operation.
func (s *SQLite) CreateOperation(ctx context.Context, op *Operation) error {
	if op.StartedAt.IsZero() {
		op.StartedAt = time.Now().UTC()
	}
	if err := s.tx(ctx, func(tx *sql.Tx) error { return writeOperation(ctx, tx, op, true) }); err != nil {
		return fmt.Errorf("record operation for %s: %w", op.Certificate, err)
	}
	return s.markManaged(ctx)
}

// SaveOperation records op's current state.
func (s *SQLite) SaveOperation(ctx context.Context, op *Operation) error {
	if err := s.tx(ctx, func(tx *sql.Tx) error { return writeOperation(ctx, tx, op, false) }); err != nil {
		return fmt.Errorf("record step %s of %s: %w", op.Step, op.Certificate, err)
	}
	return nil
}

// CompleteOperation finishes op and records the deployment in one transaction.
func (s *SQLite) CompleteOperation(ctx context.Context, op *Operation, d Deployment) error {
	op.Step = StepDone
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := writeOperation(ctx, tx, op, false); err != nil {
			return err
		}
		return saveDeployment(ctx, tx, d)
	})
	if err != nil {
		return fmt.Errorf("record deployment of %s: %w", op.Certificate, err)
	}
	return nil
}

// AbandonOperation finishes op without a deployment.
func (s *SQLite) AbandonOperation(ctx context.Context, op *Operation, reason string) error {
	op.Step = StepAbandoned
	op.LastError = reason
	return s.SaveOperation(ctx, op)
}

// StartRun records the start of a run.
func (s *SQLite) StartRun(ctx context.Context, dryRun bool) (int64, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO runs(started_at, outcome, dry_run) VALUES (?, 'interrupted', ?)`, s.stamp(), dryRun)
	if err != nil {
		return 0, fmt.Errorf("record run: %w", err)
	}
	return res.LastInsertId()
}

// SetRetention sets what FinishRun keeps.
func (s *SQLite) SetRetention(r Retention) { s.retention = r }

// FinishRun records how a run ended and prunes the history the retention no longer keeps, in one
// transaction.
func (s *SQLite) FinishRun(ctx context.Context, id int64, outcome string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET finished_at = ?, outcome = ? WHERE id = ?`, s.stamp(), outcome, id); err != nil {
			return err
		}
		return s.prune(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("record end of run %d: %w", id, err)
	}
	return nil
}

// prune deletes the results of the runs before the oldest one the retention keeps (the newest
// result of each certificate stays), and the runs left with no result.
func (s *SQLite) prune(ctx context.Context, tx *sql.Tx, current int64) error {
	keep := current
	if s.retention.MaxAge > 0 {
		var oldest sql.NullInt64
		since := s.clock().Add(-s.retention.MaxAge).UTC().Format(timeFormat)
		if err := tx.QueryRowContext(ctx, `SELECT MIN(id) FROM runs WHERE started_at >= ?`, since).Scan(&oldest); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		if oldest.Valid {
			keep = min(keep, oldest.Int64)
		}
	} else {
		keep = 0
	}
	if s.retention.MaxRuns > 0 {
		var nth int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?`, s.retention.MaxRuns-1).Scan(&nth)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("prune: %w", err)
		}
		keep = max(keep, nth)
	}
	if keep <= 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM results WHERE last_run_id < ? AND latest = 0`, keep); err != nil {
		return fmt.Errorf("prune results: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE id < ? AND NOT EXISTS (SELECT 1 FROM results WHERE results.run_id = runs.id)`, keep); err != nil {
		return fmt.Errorf("prune runs: %w", err)
	}
	return nil
}

// RecordResult records one certificate's result in a run.
func (s *SQLite) RecordResult(ctx context.Context, r Result) error {
	return s.RecordResults(ctx, []Result{r})
}

// RecordResults records results in one transaction. A result the same as the newest of its
// certificate, when that one is of the run just before, extends it to this run instead of adding
// a row: a run that changes nothing adds no row per certificate.
func (s *SQLite) RecordResults(ctx context.Context, rs []Result) error {
	if len(rs) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		latest, err := latestRecords(ctx, tx, rs)
		if err != nil {
			return err
		}
		prevs := map[int64]int64{}
		plan, err := planRecords(rs, latest, func(run int64) (int64, error) {
			p, ok := prevs[run]
			if !ok {
				if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM runs WHERE id < ?`, run).Scan(&p); err != nil {
					return 0, err
				}
				prevs[run] = p
			}
			return p, nil
		})
		if err != nil {
			return err
		}
		// The stored rows go on first: a certificate's new row is then the only one marked latest.
		for run, e := range plan.extend {
			list, _ := json.Marshal(e.names)
			if _, err := tx.ExecContext(ctx, `UPDATE results SET last_run_id = ?, last_finished_at = ?
				WHERE latest = 1 AND certificate IN (SELECT value FROM json_each(?))`, run, e.at.UTC().Format(timeFormat), string(list)); err != nil {
				return fmt.Errorf("extend results: %w", err)
			}
		}
		if len(plan.retire) > 0 {
			list, _ := json.Marshal(plan.retire)
			if _, err := tx.ExecContext(ctx, `UPDATE results SET latest = 0 WHERE latest = 1 AND certificate IN (SELECT value FROM json_each(?))`, string(list)); err != nil {
				return err
			}
		}
		if len(plan.rows) == 0 {
			return nil
		}
		add, err := tx.PrepareContext(ctx, `INSERT INTO results(run_id, certificate, finished_at, last_run_id, last_finished_at, latest, `+resultColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer add.Close()
		for _, row := range plan.rows {
			args := append([]any{row.first, row.certificate, row.firstAt.UTC().Format(timeFormat), row.last, row.lastAt.UTC().Format(timeFormat), row.latest}, row.rec.values()...)
			if _, err := add.ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("%s: %w", row.certificate, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record results: %w", err)
	}
	return nil
}

// latestRecords reads the newest result row of each certificate of rs.
func latestRecords(ctx context.Context, tx *sql.Tx, rs []Result) (map[string]span, error) {
	out := make(map[string]span, len(rs))
	scan := func(rows *sql.Rows) error {
		defer rows.Close()
		for rows.Next() {
			var name string
			var sp span
			if err := rows.Scan(append([]any{&name, &sp.first, &sp.last}, sp.rec.targets()...)...); err != nil {
				return err
			}
			out[name] = sp
		}
		return rows.Err()
	}
	if len(rs) > 1 {
		// One query for the batch's certificates (through the results_latest index), whatever
		// its size: a run records its settled certificates in batches as its devices finish.
		names := make([]string, len(rs))
		for i, r := range rs {
			names[i] = r.Certificate
		}
		list, err := json.Marshal(names)
		if err != nil {
			return nil, err
		}
		rows, err := tx.QueryContext(ctx, `SELECT certificate, run_id, last_run_id, `+resultColumns+` FROM results
			WHERE latest = 1 AND certificate IN (SELECT value FROM json_each(?))`, string(list))
		if err != nil {
			return nil, err
		}
		return out, scan(rows)
	}
	rows, err := tx.QueryContext(ctx, `SELECT certificate, run_id, last_run_id, `+resultColumns+` FROM results WHERE latest = 1 AND certificate = ?`, rs[0].Certificate)
	if err != nil {
		return nil, err
	}
	return out, scan(rows)
}

// LastResults returns the newest result of each certificate, from the rows marked latest.
func (s *SQLite) LastResults(ctx context.Context) (map[string]Result, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT certificate, last_run_id, last_finished_at, `+resultColumns+` FROM results WHERE latest = 1`)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	defer rows.Close()
	out := map[string]Result{}
	var name, at string
	var run int64
	var rec resultFields
	dest := append([]any{&name, &run, &at}, rec.targets()...)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read results: %w", err)
		}
		finished, _ := time.Parse(timeFormat, at)
		out[name] = rec.result(name, run, finished)
	}
	return out, rows.Err()
}

// Runs returns the newest runs first.
func (s *SQLite) Runs(ctx context.Context, limit int) ([]Run, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, started_at, COALESCE(finished_at, ''), outcome, dry_run FROM runs ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var r Run
		var started, finished string
		if err := rows.Scan(&r.ID, &started, &finished, &r.Outcome, &r.DryRun); err != nil {
			return nil, fmt.Errorf("read runs: %w", err)
		}
		r.StartedAt, _ = time.Parse(timeFormat, started)
		if finished != "" {
			r.FinishedAt, _ = time.Parse(timeFormat, finished)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// LoadAccount returns an issuer's stored account.
func (s *SQLite) LoadAccount(ctx context.Context, issuer string) ([]byte, bool, error) {
	var data []byte
	err := s.db.QueryRowContext(ctx, `SELECT data FROM accounts WHERE issuer = ?`, issuer).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read account of issuer %s: %w", issuer, err)
	}
	return data, true, nil
}

// SaveAccount stores an issuer's account.
func (s *SQLite) SaveAccount(ctx context.Context, issuer string, data []byte) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO accounts(issuer, data) VALUES (?, ?) ON CONFLICT(issuer) DO UPDATE SET data = excluded.data`,
		issuer, data); err != nil {
		return fmt.Errorf("save account of issuer %s: %w", issuer, err)
	}
	return nil
}
