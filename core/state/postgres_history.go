package state

import (
	"context"
	"encoding/json"
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
		WHERE $1 = '' OR id IN (SELECT run_id FROM results WHERE certificate = $1) ORDER BY id DESC LIMIT $2`, certificate, limit)
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
	res, err := s.pool.Query(ctx, `SELECT data FROM results WHERE run_id = ANY($1) AND ($2 = '' OR certificate = $2) ORDER BY certificate, id`, ids, certificate)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var data string
		if err := res.Scan(&data); err != nil {
			return nil, fmt.Errorf("read results: %w", err)
		}
		var r Result
		if err := json.Unmarshal([]byte(data), &r); err != nil {
			return nil, fmt.Errorf("decode result: %w", err)
		}
		if i, ok := index[r.RunID]; ok {
			out[i].Results = append(out[i].Results, r)
		}
	}
	return out, res.Err()
}
