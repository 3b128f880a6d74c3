package state

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
)

// olderSQLite makes a SQLite state at path whose schema is the first v migrations, as an earlier
// certfleet left it; exec runs a further statement on it (failing the test on an error), done
// closes it before the state is opened.
func olderSQLite(t *testing.T, path string, v int) (exec func(q string, args ...any), done func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	exec = func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`)
	for i := 1; i <= v; i++ {
		exec(migrations[i-1])
		exec(`INSERT INTO schema_migrations(version, applied_at) VALUES (?, '2026-01-01T00:00:00Z')`, i)
	}
	return exec, func() { db.Close() }
}

// olderPostgres is olderSQLite for the PostgreSQL database of dsn.
func olderPostgres(t *testing.T, dsn string, v int) (exec func(q string, args ...any), done func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	exec = func(q string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)`)
	for i := 1; i <= v; i++ {
		exec(pgMigrations[i-1])
		exec(`INSERT INTO schema_migrations(version, applied_at) VALUES ($1, now())`, i)
	}
	return exec, func() { conn.Close(ctx) }
}
