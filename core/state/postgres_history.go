package state

import (
	"context"
	"fmt"
	"time"
)

// History returns the newest runs first, up to limit, each with its results; with certificate
// set, only the runs that touched it, and only its results (as SQLite's History).
func (s *Postgres) History(ctx context.Context, certificate string, limit int) ([]RunHistory, error) {
	if limit <= 0 {
		limit = 10
	}
	rows, err := s.pool.Query(ctx, `SELECT id, started_at, finished_at, outcome, dry_run FROM runs
		WHERE $1 = '' OR EXISTS (SELECT 1 FROM results WHERE certificate = $1 AND run_id <= runs.id AND last_run_id >= runs.id)
		ORDER BY id DESC LIMIT $2`, certificate, limit)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	var out []RunHistory
	index := map[int64]int{}
	ids := []int64{}
	for rows.Next() {
		var h RunHistory
		var finished *time.Time
		if err := rows.Scan(&h.ID, &h.StartedAt, &finished, &h.Outcome, &h.DryRun); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read runs: %w", err)
		}
		h.StartedAt = h.StartedAt.UTC()
		if finished != nil {
			h.FinishedAt = finished.UTC()
		}
		index[h.ID] = len(out)
		ids = append(ids, h.ID)
		out = append(out, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	lo, hi := ids[0], ids[0]
	for _, id := range ids {
		lo, hi = min(lo, id), max(hi, id)
	}
	res, err := s.pool.Query(ctx, `SELECT certificate, run_id, last_run_id, finished_at, last_finished_at, `+resultColumns+` FROM results
		WHERE last_run_id >= $1 AND run_id <= $2 AND ($3 = '' OR certificate = $3) ORDER BY certificate, id`, lo, hi, certificate)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var sp span
		if err := res.Scan(append([]any{&sp.certificate, &sp.first, &sp.last, &sp.firstAt, &sp.lastAt}, sp.rec.targets()...)...); err != nil {
			return nil, fmt.Errorf("read results: %w", err)
		}
		sp.firstAt, sp.lastAt = sp.firstAt.UTC(), sp.lastAt.UTC()
		if err := sp.expand(out, index); err != nil {
			return nil, fmt.Errorf("decode result: %w", err)
		}
	}
	return out, res.Err()
}
