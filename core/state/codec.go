package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// errSummary refuses to save a deployment read without its PEM bodies: saving it would erase them.
var errSummary = errors.New("the deployment was read without its PEM bodies (DeploymentSummaries): read it whole (Deployment) before saving it")

// deploymentColumnsVersion is the migration that put a deployment's record in columns and its
// PEM bodies in deployment_pems; after its SQL, the records are moved out of the JSON
// (fillDeploymentColumns), and the next migration drops the old columns.
const deploymentColumnsVersion = 5

// encodeDeployment returns the PEM bodies of d, which are kept in a table of their own
// (deployment_pems) so that planning and status read the records alone, never a page of PEM.
func encodeDeployment(d Deployment) (certPEM, chainPEM string, err error) {
	if d.Summary {
		return "", "", errSummary
	}
	chain, err := json.Marshal(d.ChainPEM)
	if err != nil {
		return "", "", err
	}
	return d.CertPEM, string(chain), nil
}

// selectDeployments reads the deployments' certificate and record columns, and their PEM bodies
// (from deployment_pems) when whole; a summary reads summaryColumns alone. where, if any,
// follows, naming the deployments d.
func selectDeployments(whole bool, where string) string {
	columns := summaryColumns
	if whole {
		columns = deploymentColumns
	}
	q := "SELECT d.certificate, d." + strings.Join(columns, ", d.")
	if whole {
		q += ", COALESCE(p.cert_pem, ''), COALESCE(p.chain_pem, 'null') FROM deployments d LEFT JOIN deployment_pems p ON p.certificate = d.certificate"
	} else {
		q += " FROM deployments d"
	}
	if where != "" {
		q += " WHERE " + where
	}
	return q
}

// deploymentWrites are the statements that record a deployment, in a dialect: its record and
// schedule (parameters: deploymentArgs' record), its PEM bodies (deploymentArgs' pems), and the
// record alone of a row that exists (the record then the certificate, for migration 5).
type deploymentWrites struct {
	record, pems, update string
}

func newDeploymentWrites(placeholder func(i int) string) deploymentWrites {
	cols := append([]string{"certificate", "not_after", "ca_check_due"}, deploymentColumns...)
	params := make([]string, len(cols))
	updates := make([]string, 0, len(cols)-1)
	for i, c := range cols {
		params[i] = placeholder(i + 1)
		if i > 0 {
			updates = append(updates, c+" = excluded."+c)
		}
	}
	sets := make([]string, len(deploymentColumns))
	for i, c := range deploymentColumns {
		sets[i] = c + " = " + placeholder(i+1)
	}
	return deploymentWrites{
		record: "INSERT INTO deployments(" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(params, ", ") +
			") ON CONFLICT(certificate) DO UPDATE SET " + strings.Join(updates, ", "),
		pems: "INSERT INTO deployment_pems(certificate, cert_pem, chain_pem) VALUES (" + placeholder(1) + ", " + placeholder(2) + ", " + placeholder(3) +
			") ON CONFLICT(certificate) DO UPDATE SET cert_pem = excluded.cert_pem, chain_pem = excluded.chain_pem",
		update: "UPDATE deployments SET " + strings.Join(sets, ", ") + " WHERE certificate = " + placeholder(len(deploymentColumns)+1),
	}
}

// deploymentArgs are the parameters of deploymentWrites' record and pems for d; notAfter and
// caCheckDue are the dialect's forms of those columns.
func deploymentArgs(d Deployment, notAfter, caCheckDue any) (record, pems []any, err error) {
	certPEM, chainPEM, err := encodeDeployment(d)
	if err != nil {
		return nil, nil, err
	}
	values, err := deploymentValues(d)
	if err != nil {
		return nil, nil, err
	}
	return append([]any{d.Certificate, notAfter, caCheckDue}, values...), []any{d.Certificate, certPEM, chainPEM}, nil
}

// legacyRecordValues are the record columns of a deployment stored, before migration 5, as JSON.
func legacyRecordValues(data string) ([]any, error) {
	var d Deployment
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		return nil, err
	}
	return deploymentValues(d)
}

// storedJSONRecord is a deployment as stored before migration 5: its certificate and JSON record.
type storedJSONRecord struct{ certificate, data string }

// readLegacyRecords reads the (certificate, data) rows of migration 5's query, all of them before
// the first update: neither store updates while a query's rows are open.
func readLegacyRecords(rows rowScanner) ([]storedJSONRecord, error) {
	var out []storedJSONRecord
	for rows.Next() {
		var r storedJSONRecord
		if err := rows.Scan(&r.certificate, &r.data); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// fillLegacyRecords writes each record's columns through update (its arguments: the record
// columns, then the certificate), in migration 5 of either store.
func fillLegacyRecords(records []storedJSONRecord, update func(args ...any) error) error {
	for _, r := range records {
		values, err := legacyRecordValues(r.data)
		if err == nil {
			err = update(append(values, r.certificate)...)
		}
		if err != nil {
			return fmt.Errorf("deployment of %s: %w", r.certificate, err)
		}
	}
	return nil
}

// rowScanner is what both stores' query results offer (database/sql's and pgx's rows).
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanDeployments reads the rows of a selectDeployments query and calls add with each
// certificate and its deployment.
func scanDeployments(rows rowScanner, whole bool, add func(certificate string, d Deployment)) error {
	var r deploymentRecord
	dest := r.targets(whole)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		d, err := r.deployment(whole)
		if err != nil {
			return fmt.Errorf("decode deployment of %s: %w", r.certificate, err)
		}
		add(r.certificate, d)
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

// resultColumnsVersion is the migration that put a result's record in columns (resultFields)
// instead of JSON.
const resultColumnsVersion = 7

// resultFields are the stored form of a result, in the columns of resultColumns: its run and
// time live in columns of their own (run_id to last_run_id, finished_at to last_finished_at), so
// that the same result in consecutive runs is one row.
type resultFields struct {
	device, action, reason, outcome, err, step string
}

const resultColumns = "device, action, reason, outcome, error, step"

func fieldsOf(r Result) resultFields {
	return resultFields{device: r.Device, action: r.Action, reason: r.Reason, outcome: string(r.Outcome), err: r.Error, step: string(r.Step)}
}

func (f resultFields) values() []any {
	return []any{f.device, f.action, f.reason, f.outcome, f.err, f.step}
}

func (f *resultFields) targets() []any {
	return []any{&f.device, &f.action, &f.reason, &f.outcome, &f.err, &f.step}
}

// result is the result of certificate in run runID, finished at finished.
func (f resultFields) result(certificate string, runID int64, finished time.Time) Result {
	return Result{RunID: runID, Certificate: certificate, Device: f.device, Action: f.action, Reason: f.reason,
		Outcome: Outcome(f.outcome), Error: f.err, Step: Step(f.step), FinishedAt: finished}
}

// span is a stored result row: the same result from run first to run last.
type span struct {
	first, last     int64
	firstAt, lastAt time.Time
	rec             resultFields
	certificate     string
	// latest is set on rows to be written.
	latest bool
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
	for _, r := range rs {
		if r.FinishedAt.IsZero() {
			r.FinishedAt = time.Now().UTC()
		}
		rec := fieldsOf(r)
		p, err := prev(r.RunID)
		if err != nil {
			return plan, err
		}
		if f := fresh[r.Certificate]; f != nil {
			if f.rec == rec && f.last == p {
				f.last, f.lastAt = r.RunID, r.FinishedAt
				continue
			}
		} else if l, ok := latest[r.Certificate]; ok && l.rec == rec && l.last == p && p != 0 {
			l.last = r.RunID
			latest[r.Certificate] = l
			extended[r.Certificate], extendedAt[r.Certificate] = r.RunID, r.FinishedAt
			continue
		}
		if _, ok := latest[r.Certificate]; ok && fresh[r.Certificate] == nil {
			plan.retire = append(plan.retire, r.Certificate)
		}
		row := &span{first: r.RunID, last: r.RunID, firstAt: r.FinishedAt, lastAt: r.FinishedAt, rec: rec, certificate: r.Certificate}
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
		out[i].Results = append(out[i].Results, sp.rec.result(sp.certificate, id, at))
	}
	return nil
}
