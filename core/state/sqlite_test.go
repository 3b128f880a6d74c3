package state

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The promises every Store keeps are tested in contract_test.go, against SQLite and PostgreSQL.

func TestSQLiteFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

// TestOpenReadsBesideAWriter: opening a state whose schema is current takes no write lock, so a
// reader (status, plan) opens and reads while another process is in a write transaction, instead
// of waiting for it up to the busy timeout.
func TestOpenReadsBesideAWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveDeployment(ctx, Deployment{Certificate: "www", Serial: "01", NotAfter: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	writer, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	conn, err := writer.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, `ROLLBACK`) //nolint:errcheck // the test's end

	// Well under the busy timeout: a write lock would make Open wait for all of it.
	openCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		reader, err := Open(openCtx, path)
		if err == nil {
			var ds map[string]Deployment
			ds, err = reader.DeploymentSummaries(openCtx)
			if err == nil && ds["www"].Serial != "01" {
				err = fmt.Errorf("read %+v", ds)
			}
			reader.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("open and read beside a writer: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("open waited for the other process's write transaction")
	}
}
