package state

import (
	"context"
	"fmt"
	"time"
)

// RunHistory is one run and what it did with each certificate.
type RunHistory struct {
	Run
	Results []Result `json:"results"`
}

// History returns the newest runs first, up to limit, each with its results; with certificate
// set, only the runs that touched it, and only its results.
func (s *SQLite) History(ctx context.Context, certificate string, limit int) ([]RunHistory, error) {
	if limit <= 0 {
		limit = 10
	}
	q := `SELECT id, started_at, COALESCE(finished_at, ''), outcome, dry_run FROM runs ORDER BY id DESC LIMIT ?`
	args := []any{limit}
	if certificate != "" {
		q = `SELECT id, started_at, COALESCE(finished_at, ''), outcome, dry_run FROM runs
			WHERE EXISTS (SELECT 1 FROM results WHERE certificate = ? AND run_id <= runs.id AND last_run_id >= runs.id)
			ORDER BY id DESC LIMIT ?`
		args = []any{certificate, limit}
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	var out []RunHistory
	for rows.Next() {
		var h RunHistory
		var started, finished string
		if err := rows.Scan(&h.ID, &started, &finished, &h.Outcome, &h.DryRun); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read runs: %w", err)
		}
		h.StartedAt, _ = time.Parse(timeFormat, started)
		if finished != "" {
			h.FinishedAt, _ = time.Parse(timeFormat, finished)
		}
		out = append(out, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	index := map[int64]int{}
	lo, hi := out[0].ID, out[0].ID
	for i, h := range out {
		index[h.ID] = i
		lo, hi = min(lo, h.ID), max(hi, h.ID)
	}
	// A row holds the same result of consecutive runs, run_id to last_run_id.
	q = `SELECT certificate, run_id, last_run_id, finished_at, last_finished_at, ` + resultColumns + ` FROM results WHERE last_run_id >= ? AND run_id <= ?`
	args = []any{lo, hi}
	if certificate != "" {
		q += ` AND certificate = ?`
		args = append(args, certificate)
	}
	q += ` ORDER BY certificate, rowid`
	res, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var sp span
		var firstAt, lastAt string
		if err := res.Scan(append([]any{&sp.certificate, &sp.first, &sp.last, &firstAt, &lastAt}, sp.rec.targets()...)...); err != nil {
			return nil, fmt.Errorf("read results: %w", err)
		}
		sp.firstAt, _ = time.Parse(timeFormat, firstAt)
		sp.lastAt, _ = time.Parse(timeFormat, lastAt)
		if err := sp.expand(out, index); err != nil {
			return nil, fmt.Errorf("decode result: %w", err)
		}
	}
	return out, res.Err()
}
