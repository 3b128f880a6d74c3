//go:build !linux

package pgtest

import (
	"os"
	"testing"
)

// Role and Database are as on Linux.
const (
	Role     = "certfleet"
	Database = "certfleet"
)

// Main runs the tests; no server is started off Linux.
func Main(m *testing.M) { os.Exit(m.Run()) }

// Stop does nothing off Linux.
func Stop() {}

// DSN skips: the throwaway server needs Linux (parent-death signal, dropping root).
func DSN(tb testing.TB) string {
	tb.Helper()
	tb.Skip("PostgreSQL tests skipped: the throwaway PostgreSQL server is started on Linux only")
	return ""
}

// URL skips as DSN does.
func URL(tb testing.TB) string {
	tb.Helper()
	return DSN(tb)
}
