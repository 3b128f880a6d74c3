package state

import (
	"encoding/json"
	"errors"
	"time"
)

// errSummary refuses to save a deployment read without its PEM bodies: saving it would erase them.
var errSummary = errors.New("the deployment was read without its PEM bodies (DeploymentSummaries): read it whole (Deployment) before saving it")

// encodeDeployment splits d into its record (JSON, without the PEM bodies) and the PEM bodies,
// which are kept in columns of their own so that planning reads the records alone.
func encodeDeployment(d Deployment) (data, certPEM, chainPEM string, err error) {
	if d.Summary {
		return "", "", "", errSummary
	}
	chain, err := json.Marshal(d.ChainPEM)
	if err != nil {
		return "", "", "", err
	}
	certPEM = d.CertPEM
	d.CertPEM, d.ChainPEM = "", nil
	record, err := json.Marshal(d)
	if err != nil {
		return "", "", "", err
	}
	return string(record), certPEM, string(chain), nil
}

// decodeDeployment reads a record; with certPEM nil the PEM bodies were not read and the result
// is marked a summary.
func decodeDeployment(data string, certPEM *string, chainPEM string) (Deployment, error) {
	var d Deployment
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		return Deployment{}, err
	}
	if certPEM == nil {
		d.Summary = true
		return d, nil
	}
	d.CertPEM = *certPEM
	if err := json.Unmarshal([]byte(chainPEM), &d.ChainPEM); err != nil {
		return Deployment{}, err
	}
	return d, nil
}

// Retention says which run history FinishRun prunes: the results of runs older than MaxAge, and
// of all but the newest MaxRuns runs (0: no limit by count). The newest result of every
// certificate is always kept, for status.
type Retention struct {
	MaxAge  time.Duration
	MaxRuns int
}

// DefaultRetention keeps a month of history: at 10,000 certificates, about 3 MB a day when each
// certificate's result changes daily, whatever the number of runs a day.
var DefaultRetention = Retention{MaxAge: 30 * 24 * time.Hour}

// resultRecord is the stored form of a result: its run and time live in columns (run_id to
// last_run_id, finished_at to last_finished_at), so that the same result in consecutive runs is
// one row.
func resultRecord(r Result) (string, error) {
	r.RunID, r.FinishedAt = 0, time.Time{}
	b, err := json.Marshal(r)
	return string(b), err
}

// resultOf decodes a stored result of run runID that finished at finished.
func resultOf(data string, runID int64, finished time.Time) (Result, error) {
	var r Result
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return Result{}, err
	}
	r.RunID, r.FinishedAt = runID, finished
	return r, nil
}

// span is a stored result row: the same result from run first to run last.
type span struct {
	first, last     int64
	firstAt, lastAt time.Time
	data            string
}

// expand appends to each run of out that the span covers its result. A run inside the span,
// neither its first nor its last, finished the result at the run's own end.
func (sp span) expand(out []RunHistory, index map[int64]int) error {
	for id, i := range index {
		if id < sp.first || id > sp.last {
			continue
		}
		at := out[i].FinishedAt
		switch {
		case id == sp.first:
			at = sp.firstAt
		case id == sp.last:
			at = sp.lastAt
		case at.IsZero():
			at = out[i].StartedAt
		}
		r, err := resultOf(sp.data, id, at)
		if err != nil {
			return err
		}
		out[i].Results = append(out[i].Results, r)
	}
	return nil
}
