//go:build linux

// Package pgtest starts a throwaway PostgreSQL cluster for tests: initdb into a temporary
// directory, the server listening only on a unix socket inside it, one cluster per test binary
// (started on first use, stopped by Main or when the test binary dies), and a fresh schema per test. The store under test
// connects as a role that is neither superuser nor owner of anything but its own database, as on
// the managed PostgreSQL services people use.
//
// When no PostgreSQL binaries are installed (Debian's `postgresql` package, which .ci/run installs)
// or the server cannot start, the tests that need it skip with the reason.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Role is the unprivileged role the stores connect as; Database is the database it owns.
const (
	Role     = "certfleet"
	Database = "certfleet"
	admin    = "pgadmin"
)

type cluster struct {
	dir    string              // data directory and socket directory
	runAs  *syscall.Credential // the account the server runs as (nil when not root)
	binDir string
	server *exec.Cmd
	err    error
}

var (
	once    sync.Once
	shared  cluster
	schemas atomic.Int64
)

// Main runs the package's tests and stops the cluster if one was started. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the cluster if one was started (for a TestMain that does more than Main).
func Stop() {
	if shared.server != nil && shared.server.Process != nil {
		// SIGQUIT is PostgreSQL's immediate shutdown; the data is thrown away anyway.
		_ = shared.server.Process.Signal(syscall.SIGQUIT)
		_ = shared.server.Wait()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
}

// binDir finds the PostgreSQL server binaries: on PATH, or where Debian installs them.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return "", errors.New("no PostgreSQL server binaries (initdb) on PATH or in /usr/lib/postgresql/*/bin: install Debian's postgresql package")
	}
	sort.Strings(found) // the newest major last, by name; good enough for 1-2 installed majors
	return filepath.Dir(found[len(found)-1]), nil
}

// command runs a server binary as the cluster's account. The process gets SIGQUIT if the test
// binary dies (a timeout, a kill), so no server outlives the tests.
func (c *cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.binDir, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.runAs, Pdeathsig: syscall.SIGQUIT}
	cmd.Dir = c.dir
	return cmd
}

// start makes and starts the cluster. PostgreSQL refuses to run as root, so a root test run
// hands the server to the unprivileged "postgres" account (made by the Debian package) or "nobody".
func start() (err error) {
	shared.binDir, err = binDir()
	if err != nil {
		return err
	}
	shared.dir, err = os.MkdirTemp("", "certfleet-pg-")
	if err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		var u *user.User
		for _, name := range []string{"postgres", "nobody"} {
			if u, err = user.Lookup(name); err == nil {
				break
			}
		}
		if u == nil {
			return errors.New("running as root and neither a postgres nor a nobody account exists to run the server")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		shared.runAs = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(shared.dir, uid, gid); err != nil {
			return err
		}
	}
	if err := os.Chmod(shared.dir, 0o755); err != nil {
		return err
	}
	data := filepath.Join(shared.dir, "data")
	if out, err := shared.command("initdb", "-D", data, "-U", admin, "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	logFile, err := os.Create(filepath.Join(shared.dir, "server.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	shared.server = shared.command("postgres", "-D", data, "-c", "listen_addresses=", "-c", "unix_socket_directories="+shared.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	shared.server.Stdout, shared.server.Stderr = logFile, logFile
	if err := shared.server.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var conn *pgx.Conn
	for {
		if conn, err = pgx.Connect(ctx, shared.dsn(admin, "postgres", "")); err == nil {
			break
		}
		if ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(shared.dir, "server.log"))
			return fmt.Errorf("the test server did not accept connections: %w\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer conn.Close(ctx)
	for _, stmt := range []string{
		`CREATE ROLE ` + Role + ` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`,
		`CREATE DATABASE ` + Database + ` OWNER ` + Role,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}

func (c *cluster) dsn(role, db, schema string) string {
	s := fmt.Sprintf("host=%s user=%s dbname=%s sslmode=disable", c.dir, role, db)
	if schema != "" {
		s += " search_path=" + schema
	}
	return s
}

// DSN returns a connection string for a new, empty schema of the test database, as the
// unprivileged role; it skips the test when no cluster can be started.
func DSN(tb testing.TB) string {
	tb.Helper()
	once.Do(func() { shared.err = start() })
	if shared.err != nil {
		tb.Skipf("PostgreSQL tests skipped: cannot start a throwaway PostgreSQL server: %v", shared.err)
	}
	schema := fmt.Sprintf("t%d_%d", os.Getpid(), schemas.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, shared.dsn(Role, Database, ""))
	if err != nil {
		tb.Fatalf("connect to the test cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema %s: %v", schema, err)
	}
	return shared.dsn(Role, Database, schema)
}

// URL returns DSN as a postgres:// URL, for configurations and command lines.
func URL(tb testing.TB) string {
	tb.Helper()
	dsn := DSN(tb)
	fields := map[string]string{}
	for _, f := range strings.Fields(dsn) {
		k, v, _ := strings.Cut(f, "=")
		fields[k] = v
	}
	return fmt.Sprintf("postgres://%s@/%s?host=%s&sslmode=disable&search_path=%s", fields["user"], fields["dbname"], fields["host"], fields["search_path"])
}
