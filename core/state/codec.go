package state

import (
	"encoding/json"
	"errors"
	"fmt"
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

// rowScanner is what both stores' query results offer (database/sql's and pgx's rows).
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanDeployments reads rows of (certificate, data) or, when whole, (certificate, data,
// cert_pem, chain_pem) and calls add with each certificate and its decoded deployment.
func scanDeployments(rows rowScanner, whole bool, add func(certificate string, d Deployment)) error {
	for rows.Next() {
		var name, data, certPEM, chainPEM string
		dest := []any{&name, &data}
		if whole {
			dest = append(dest, &certPEM, &chainPEM)
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		pem := &certPEM
		if !whole {
			pem = nil
		}
		d, err := decodeDeployment(data, pem, chainPEM)
		if err != nil {
			return fmt.Errorf("decode deployment of %s: %w", name, err)
		}
		add(name, d)
	}
	return rows.Err()
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
	// certificate and latest are set on rows to be written.
	certificate string
	latest      bool
}

// recordPlan is what RecordResults writes, decided from the results and the stored latest rows.
type recordPlan struct {
	// extend: stored latest rows that go on to a later run, by that run.
	extend map[int64]*extension
	// retire: certificates whose stored latest row is superseded by a new one.
	retire []string
	// rows to insert, in order; the last of each certificate is its latest.
	rows []*span
}

type extension struct {
	names []string
	at    time.Time
}

// planRecords decides how results are stored: a result the same as its certificate's newest,
// when that one reaches the run just before (prev), extends it; any other starts a row. Results
// of several consecutive runs in one batch extend the rows once.
func planRecords(rs []Result, latest map[string]span, prev func(run int64) (int64, error)) (recordPlan, error) {
	plan := recordPlan{extend: map[int64]*extension{}}
	extended := map[string]int64{} // stored rows extended, to which run
	extendedAt := map[string]time.Time{}
	fresh := map[string]*span{} // the newest row of this batch, by certificate
	// The stored form of each certificate's previous result in the batch: results of consecutive
	// runs are mostly the same, and comparing is cheaper than encoding.
	seen := map[string]Result{}
	seenData := map[string]string{}
	for _, r := range rs {
		if r.FinishedAt.IsZero() {
			r.FinishedAt = time.Now().UTC()
		}
		key := r
		key.RunID, key.FinishedAt = 0, time.Time{}
		data, ok := seenData[r.Certificate]
		if !ok || seen[r.Certificate] != key {
			var err error
			if data, err = resultRecord(r); err != nil {
				return plan, err
			}
			seen[r.Certificate], seenData[r.Certificate] = key, data
		}
		p, err := prev(r.RunID)
		if err != nil {
			return plan, err
		}
		if f := fresh[r.Certificate]; f != nil {
			if f.data == data && f.last == p {
				f.last, f.lastAt = r.RunID, r.FinishedAt
				continue
			}
		} else if l, ok := latest[r.Certificate]; ok && l.data == data && l.last == p && p != 0 {
			l.last = r.RunID
			latest[r.Certificate] = l
			extended[r.Certificate], extendedAt[r.Certificate] = r.RunID, r.FinishedAt
			continue
		}
		if _, ok := latest[r.Certificate]; ok && fresh[r.Certificate] == nil {
			plan.retire = append(plan.retire, r.Certificate)
		}
		row := &span{first: r.RunID, last: r.RunID, firstAt: r.FinishedAt, lastAt: r.FinishedAt, data: data, certificate: r.Certificate}
		plan.rows = append(plan.rows, row)
		fresh[r.Certificate] = row
	}
	for name, run := range extended {
		e := plan.extend[run]
		if e == nil {
			e = &extension{}
			plan.extend[run] = e
		}
		e.names = append(e.names, name)
		if at := extendedAt[name]; at.After(e.at) {
			e.at = at
		}
	}
	for _, row := range plan.rows {
		row.latest = fresh[row.certificate] == row
	}
	return plan, nil
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
