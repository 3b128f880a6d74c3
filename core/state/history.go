package state

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
			WHERE id IN (SELECT DISTINCT run_id FROM results WHERE certificate = ?) ORDER BY id DESC LIMIT ?`
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
	ids := make([]any, 0, len(out))
	for i, h := range out {
		index[h.ID] = i
		ids = append(ids, h.ID)
	}
	q = `SELECT data FROM results WHERE run_id IN (?` + strings.Repeat(",?", len(ids)-1) + `)`
	if certificate != "" {
		q += ` AND certificate = ?`
		ids = append(ids, certificate)
	}
	q += ` ORDER BY certificate, rowid`
	res, err := s.db.QueryContext(ctx, q, ids...)
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
