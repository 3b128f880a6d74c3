package state

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/certfleet/certfleet/core/atomicfile"
	"github.com/certfleet/certfleet/core/boundedfile"
)

// ErrStateLost is returned by Open when the database is missing or empty although the marker
// beside it says certfleet has managed a fleet with it: running on would order every certificate
// again and leave the old ones (and their keys) on every device.
var ErrStateLost = errors.New("the state database is missing or empty, but certfleet already manages a fleet with it")

// marker is written beside the database (PATH.managed) once it records its first operation. It
// outlives a database that is deleted, truncated to 0 bytes or replaced by an empty one, which is
// how Open tells "a new installation" from "a fleet whose records were lost".
type marker struct {
	InstanceID string    `json:"instance_id"`
	Since      time.Time `json:"since"`
}

func markerPath(dbPath string) string { return dbPath + ".managed" }

func readMarker(dbPath string) (*marker, error) {
	data, err := boundedfile.Read(markerPath(dbPath), 1<<16)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state marker: %w", err)
	}
	var m marker
	if err := json.Unmarshal(data, &m); err != nil || m.InstanceID == "" {
		// A marker we cannot read still says a fleet was managed here.
		return &marker{InstanceID: "unreadable"}, nil
	}
	return &m, nil
}

// lostStateError explains what happened and how to recover.
func lostStateError(dbPath string, m *marker) error {
	since := ""
	if !m.Since.IsZero() {
		since = " since " + m.Since.UTC().Format("2006-01-02")
	}
	return fmt.Errorf("state database %s: %w (%s says so%s). Nothing was done: a run now would order every certificate again and leave the old certificates and keys on the devices. "+
		"Restore the database from a backup (with its -wal file, if any) and run again; or, if the records are gone for good, run `certfleet state accept-empty` to start afresh (what is live on the devices is adopted, anything else ordered again)",
		dbPath, ErrStateLost, markerPath(dbPath), since)
}

// checkNotLost refuses a database that is new (missing, 0 bytes or without tables) or not the one
// the marker names, when a marker exists. It runs before anything is written to the database.
func checkNotLost(ctx context.Context, dbPath string, existed bool, db *sql.DB) error {
	m, err := readMarker(dbPath)
	if err != nil || m == nil {
		return err
	}
	if !existed {
		return lostStateError(dbPath, m)
	}
	var tables int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'operations'`).Scan(&tables); err != nil {
		return err
	}
	if tables == 0 {
		return lostStateError(dbPath, m)
	}
	return nil
}

// instanceID returns the database's identity, made once.
func (s *SQLite) instanceID(ctx context.Context) (string, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'instance_id'`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
		if _, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO meta(key, value) VALUES ('instance_id', ?)`, id); err != nil {
			return "", err
		}
		return s.instanceID(ctx)
	}
	return id, err
}

// checkMarker compares an existing database with the marker: a marker of another database (the
// file was replaced) over a database that holds no operation means the records were lost.
// A database that holds operations gets its marker written if it has none yet.
func (s *SQLite) checkMarker(ctx context.Context) error {
	id, err := s.instanceID(ctx)
	if err != nil {
		return err
	}
	var ops int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM operations`).Scan(&ops); err != nil {
		return err
	}
	m, err := readMarker(s.path)
	if err != nil {
		return err
	}
	switch {
	case m != nil && m.InstanceID != id && ops == 0:
		return lostStateError(s.path, m)
	case ops > 0 && (m == nil || m.InstanceID != id):
		return s.writeMarker(id)
	case m != nil:
		s.marked.Store(true)
	}
	return nil
}

func (s *SQLite) writeMarker(id string) error {
	data, _ := json.Marshal(marker{InstanceID: id, Since: time.Now().UTC()})
	if err := atomicfile.Write(markerPath(s.path), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("state marker: %w", err)
	}
	s.marked.Store(true)
	return nil
}

// markManaged writes the marker when the database records its first operation.
func (s *SQLite) markManaged(ctx context.Context) error {
	if s.marked.Load() {
		return nil
	}
	id, err := s.instanceID(ctx)
	if err != nil {
		return err
	}
	return s.writeMarker(id)
}

// AcceptEmpty removes the marker of a lost database at path, so the next Open starts afresh:
// the recovery `certfleet state accept-empty` runs, once an operator has decided that every
// certificate may be ordered again.
func AcceptEmpty(path string) error {
	if err := os.Remove(markerPath(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state marker: %w", err)
	}
	return nil
}
