package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/state"
)

// StatusRow is one certificate as the state database sees it; building it contacts nothing.
type StatusRow struct {
	Certificate string    `json:"certificate"`
	Device      string    `json:"device"`
	Issuer      string    `json:"issuer"`
	Serial      string    `json:"serial,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	DaysLeft    *int      `json:"days_left,omitempty"`
	LastOutcome string    `json:"last_outcome,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastRunAt   time.Time `json:"last_run_at,omitzero"`
	// RenewAt is when the deployed certificate becomes due by the renewal window.
	RenewAt time.Time `json:"renew_at,omitzero"`
	// NextAction is what the next run will do as far as the state knows (devices are not asked).
	NextAction string `json:"next_action"`
	// Served is the last check of what the endpoints serve (after a deployment or `verify`).
	Served *state.ServedCheck `json:"served,omitempty"`
	// Retired: in the state but no longer in the configuration.
	Retired bool `json:"retired,omitempty"`
}

// StatusState is what Status reads from the state database. Reading it needs no configuration,
// so a caller may read it while the configuration is still being loaded (ReadStatusState).
type StatusState struct {
	deployments map[string]state.Deployment
	ops         map[string]*state.Operation
	last        map[string]state.Result
}

// ReadStatusState reads what Status shows from store: deployment summaries, open operations and
// each certificate's last result. The three reads run side by side, as a store may serve them
// (SQLite's read-only connections, PostgreSQL's pool).
func ReadStatusState(ctx context.Context, store state.Store) (*StatusState, error) {
	var st StatusState
	var errs [3]error
	var wg sync.WaitGroup
	wg.Go(func() { st.deployments, errs[0] = store.DeploymentSummaries(ctx) })
	wg.Go(func() { st.ops, errs[1] = store.OpenOperations(ctx) })
	wg.Go(func() { st.last, errs[2] = store.LastResults(ctx) })
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	return &st, nil
}

// Status lists every configured certificate with its deployment, last outcome and next action.
func (e *Engine) Status(ctx context.Context) ([]StatusRow, error) {
	st, err := ReadStatusState(ctx, e.opts.Store)
	if err != nil {
		return nil, err
	}
	return e.StatusOf(st), nil
}

// StatusOf is Status from what ReadStatusState read from this engine's store.
func (e *Engine) StatusOf(st *StatusState) []StatusRow {
	deployments, ops, last := st.deployments, st.ops, st.last
	now := e.opts.Now()
	rows := make([]StatusRow, 0, len(e.opts.Certificates))
	for _, c := range e.opts.Certificates {
		row := StatusRow{Certificate: c.Name, Device: c.Device, Issuer: c.Issuer}
		d, deployed := deployments[c.Name]
		if deployed {
			row.Serial, row.NotAfter, row.Served = d.Serial, d.NotAfter, d.ServedCheck
			left := days(d.NotAfter.Sub(now))
			row.DaysLeft = &left
			row.RenewAt = renewAt(c, d.NotBefore, d.NotAfter)
		}
		if r, ok := last[c.Name]; ok {
			row.LastOutcome, row.LastError, row.LastRunAt = string(r.Outcome), r.Error, r.FinishedAt
		}
		switch op := ops[c.Name]; {
		case op != nil:
			row.NextAction = fmt.Sprintf("resume %s from step %q", op.Action, op.Step)
		case !deployed:
			row.NextAction = "enroll"
		default:
			// Without the device's inventory, judge only by time, revocation and configuration.
			action, reason := decideFromState(c, &d, now)
			if action == ActionNone {
				row.NextAction = "renew on " + row.RenewAt.UTC().Format("2006-01-02")
			} else {
				row.NextAction = string(action) + ": " + reason
			}
		}
		rows = append(rows, row)
	}
	for _, r := range e.retiredFrom(deployments, ops) {
		row := StatusRow{Certificate: r.Certificate, Device: r.Device, Issuer: r.Issuer, Serial: r.Serial, NotAfter: r.NotAfter, Retired: true, NextAction: r.Reason}
		if !r.NotAfter.IsZero() {
			left := days(r.NotAfter.Sub(now))
			row.DaysLeft = &left
		}
		if d, ok := deployments[r.Certificate]; ok {
			row.Served = d.ServedCheck
		}
		if res, ok := last[r.Certificate]; ok {
			row.LastOutcome, row.LastError, row.LastRunAt = string(res.Outcome), res.Error, res.FinishedAt
		}
		rows = append(rows, row)
	}
	return rows
}
