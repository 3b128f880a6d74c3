package bindir

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDirHoldsTheRunningBinary: the directory returned holds the running binary itself, by its
// resolved path.
func TestDirHoldsTheRunningBinary(t *testing.T) {
	dir, ok := Dir()
	if !ok {
		t.Fatal("no directory for the running binary")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := filepath.EvalSymlinks(exe)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.Base(resolved))); err != nil || filepath.Dir(resolved) != dir {
		t.Fatalf("Dir() = %s; the running binary is %s (%v)", dir, resolved, err)
	}
}
