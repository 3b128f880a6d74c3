package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Finding 4: once a database has recorded an operation, losing it (deleted, truncated to 0
// bytes, replaced by an empty one) stops certfleet with the recovery command, instead of a run
// that orders the whole fleet again.
func TestLostStateIsRefusedUntilAccepted(t *testing.T) {
	ctx := context.Background()
	for _, loss := range []struct {
		name string
		do   func(path string) error
	}{
		{"emptied", func(path string) error { return os.Truncate(path, 0) }},
		{"deleted", os.Remove},
		{"replaced", func(path string) error {
			if err := os.Remove(path); err != nil {
				return err
			}
			s, err := openWithoutMarker(ctx, path)
			if err != nil {
				return err
			}
			return s.Close()
		}},
	} {
		t.Run(loss.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if again, err := Open(ctx, path); err != nil {
				t.Fatalf("a new database with nothing recorded: %v", err)
			} else {
				again.Close()
			}
			if err := s.CreateOperation(ctx, &Operation{ID: "op1", Certificate: "www", Step: StepStarted}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			os.Remove(path + "-wal")
			os.Remove(path + "-shm")
			if err := loss.do(path); err != nil {
				t.Fatal(err)
			}
			_, err = Open(ctx, path)
			if !errors.Is(err, ErrStateLost) || !strings.Contains(err.Error(), "certfleet state accept-empty") {
				t.Fatalf("lost state: %v", err)
			}
			if err := AcceptEmpty(path); err != nil {
				t.Fatal(err)
			}
			s, err = Open(ctx, path)
			if err != nil {
				t.Fatalf("after accept-empty: %v", err)
			}
			s.Close()
		})
	}
}

// openWithoutMarker makes a new database at path as another installation would, marker aside.
func openWithoutMarker(ctx context.Context, path string) (*SQLite, error) {
	marker, err := os.ReadFile(markerPath(path))
	if err != nil {
		return nil, err
	}
	if err := os.Remove(markerPath(path)); err != nil {
		return nil, err
	}
	s, err := Open(ctx, path)
	if err != nil {
		return nil, err
	}
	return s, os.WriteFile(markerPath(path), marker, 0o600)
}
