// Package state records what certfleet deployed and every step of the operation in progress for
// each certificate, so that a run that dies anywhere resumes from its last recorded step: an order
// placed is collected, never placed twice; a certificate issued is installed, never lost.
//
// Store is the interface the engine uses; Open returns the embedded SQLite implementation. The
// interface speaks in whole records and short transactions so that a PostgreSQL implementation
// shared by several hosts (with row leases in place of the file lock) fits without engine changes.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrLocked is returned by Lock when another certfleet process holds the state.
var ErrLocked = errors.New("another certfleet process is using this state database")

// Step is how far an operation got; each is recorded before the next starts.
type Step string

const (
	StepStarted   Step = "started"   // operation recorded, nothing done on the device yet
	StepCSR       Step = "csr"       // key and CSR made on the device (KeyRef, CSRPEM)
	StepSubmitted Step = "submitted" // order placed (OrderRef), or being placed (Submit* fields)
	StepIssued    Step = "issued"    // chain collected (CertPEM, ChainPEM)
	StepImported  Step = "imported"  // certificate installed on the device (CertRef)
	StepBound     Step = "bound"     // bindings point at it (RollbackToken), not committed yet
	StepCommitted Step = "committed" // committed on the device; only bookkeeping and cleanup remain
	StepDone      Step = "done"      // finished and recorded as deployed
	StepAbandoned Step = "abandoned" // given up (CA declined, superseded by a config change)
)

// SubmitState tells whether an order request may have reached the CA.
type SubmitState string

const (
	SubmitNone    SubmitState = ""        // not sent
	SubmitSending SubmitState = "sending" // being sent: if the run dies now, the outcome is unknown
	SubmitUnknown SubmitState = "unknown" // sent, answer lost: look the order up, never resend blindly
	SubmitPlaced  SubmitState = "placed"  // the CA answered with an order reference
)

// Operation is one enroll or renewal of a certificate, from the new key to the deployment.
type Operation struct {
	ID          string
	Certificate string
	Device      string
	Issuer      string
	// Action and Reason say why it was started (renew: "expires in 12 days").
	Action string
	Reason string
	// SpecHash identifies the requested names and key spec, to notice a config change mid-way.
	SpecHash string
	// RequestID goes to the CA with the order so it can be found if the answer is lost.
	RequestID string

	Step        Step
	KeyRef      string
	CSRPEM      string
	SubmitState SubmitState
	OrderRef    string
	CertPEM     string
	ChainPEM    []string
	CertRef     string
	ChainRefs   []string
	// RollbackToken is the plugin's description of the bindings before Bind.
	RollbackToken []byte
	// PreviousCertRefs are the objects the new certificate replaced on the device.
	PreviousCertRefs []string

	Attempts  int
	LastError string
	StartedAt time.Time
	UpdatedAt time.Time
	// NextAttemptAt holds off a retry (the CA's Retry-After, a pending order).
	NextAttemptAt time.Time
	// RetryNotBefore is set when the CA refused with a Retry-After (rateLimited): no run calls
	// the CA for this operation before then.
	RetryNotBefore time.Time `json:",omitzero"`
}

// Deployment is the certificate currently deployed for a configured certificate.
type Deployment struct {
	Certificate string
	Device      string
	Issuer      string
	CertRef     string
	KeyRef      string
	ChainRefs   []string
	OrderRef    string
	Serial      string
	Fingerprint string
	NotBefore   time.Time
	NotAfter    time.Time
	CertPEM     string
	ChainPEM    []string
	SpecHash    string
	// Bindings as "kind/name" strings, as deployed.
	Bindings   []string
	DeployedAt time.Time
	// RevocationCheckedAt is when the CA was last asked whether it revoked the certificate.
	RevocationCheckedAt time.Time
	Revoked             bool
	// RenewalWindowStart/End are the CA's suggestion (ACME ARI), when it made one.
	RenewalWindowStart time.Time
	RenewalWindowEnd   time.Time
	RenewalInfoAt      time.Time
	// RenewalAt is the time chosen inside the window to renew at (RFC 9773 §4.2); it stays the
	// same until the CA moves the window.
	RenewalAt time.Time `json:",omitzero"`
	// RenewalInfoRetryAt is when the CA may be asked again (its Retry-After): not before.
	RenewalInfoRetryAt time.Time `json:",omitzero"`
	// Adopted is set when the certificate was found live on the device rather than deployed by
	// certfleet: its objects are not certfleet's to delete unless the configuration allows it.
	Adopted bool `json:",omitempty"`
	// Rebinds counts the drift repairs (rebinds) made within a day of each other, the last at
	// LastRebindAt: bindings that keep being pointed elsewhere mean something else manages them.
	Rebinds      int       `json:",omitempty"`
	LastRebindAt time.Time `json:",omitzero"`
	// ServedCheck is the last TLS check of what the bindings serve; nil when never checked.
	ServedCheck *ServedCheck `json:",omitempty"`
	// Summary is set on a deployment read as a summary (DeploymentSummaries): what planning,
	// status and retirement read of the deployments they do not work on. It has Certificate,
	// Device, Issuer, CertRef, Serial, Fingerprint, NotBefore, NotAfter, SpecHash, Revoked,
	// RenewalWindowStart, RenewalWindowEnd, RenewalAt, Rebinds, LastRebindAt and ServedCheck;
	// every other field is empty. It cannot be saved; read the deployment whole first.
	Summary bool `json:"-"`
	// CACheckDueAt is when the CA is next asked about the certificate (revocation status,
	// renewal information); zero until the engine schedules the first check. Stores keep it in
	// an indexed column, so that a run finds the checks due without reading every deployment
	// (DueCAChecks).
	CACheckDueAt time.Time `json:",omitzero"`
}

// CACheckable reports whether there is anything to ask the CA about the deployment: an order it
// placed (an adopted certificate has none) whose certificate is not known to be revoked.
func (d Deployment) CACheckable() bool { return d.OrderRef != "" && !d.Revoked }

// CACheckDue reports whether d's CA check is due at now: what DueCAChecks selects, for a
// deployment already read. A check scheduled after horizon (now plus the check interval) was
// scheduled under a longer interval than today's and is due to be scheduled again.
func CACheckDue(d Deployment, now, horizon time.Time) bool {
	return d.CACheckable() && (!d.CACheckDueAt.After(now) || d.CACheckDueAt.After(horizon))
}

// ServedCheck is the outcome of reading, over TLS, what a certificate's endpoints serve.
type ServedCheck struct {
	At time.Time
	// OK: every endpoint served the deployed leaf with a chain that verifies to the issuer's root.
	OK bool
	// Detail says what was wrong, or which endpoints were checked.
	Detail    string
	Endpoints []string
}

// Outcome of one certificate in a run.
type Outcome string

const (
	OutcomeUnchanged Outcome = "unchanged"
	OutcomeDeployed  Outcome = "deployed"
	OutcomePending   Outcome = "pending"
	OutcomeFailed    Outcome = "failed"
	OutcomePlanned   Outcome = "planned"
	OutcomeAdopted   Outcome = "adopted"
)

// Result is what a run did with one certificate.
type Result struct {
	RunID       int64     `json:"run_id,omitempty"`
	Certificate string    `json:"certificate"`
	Device      string    `json:"device"`
	Action      string    `json:"action"`
	Reason      string    `json:"reason,omitempty"`
	Outcome     Outcome   `json:"outcome"`
	Error       string    `json:"error,omitempty"`
	Step        Step      `json:"step,omitempty"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
}

// UnmarshalJSON reads results in snake_case, and the Go field names results were recorded under
// before (RunID, FinishedAt; the others match either way).
func (r *Result) UnmarshalJSON(data []byte) error {
	type plain Result
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	if p.RunID == 0 || p.FinishedAt.IsZero() {
		var old struct {
			RunID      int64
			FinishedAt time.Time
		}
		if json.Unmarshal(data, &old) == nil {
			p.RunID = max(p.RunID, old.RunID)
			if p.FinishedAt.IsZero() {
				p.FinishedAt = old.FinishedAt
			}
		}
	}
	*r = Result(p)
	return nil
}

// Run is one execution of `certfleet run`.
type Run struct {
	ID         int64
	StartedAt  time.Time
	FinishedAt time.Time
	// Outcome is "ok", "failed" or "interrupted" (never finished).
	Outcome string
	DryRun  bool
}

// Store is the engine's view of the state database. Every method is one short transaction.
type Store interface {
	// Lock makes this process the only one running operations on the state; ErrLocked if another
	// holds it. The returned func releases it.
	Lock(ctx context.Context) (release func(), err error)

	Deployment(ctx context.Context, certificate string) (Deployment, bool, error)
	Deployments(ctx context.Context) (map[string]Deployment, error)
	// DeploymentSummaries returns every deployment as a summary (see Deployment.Summary).
	DeploymentSummaries(ctx context.Context) (map[string]Deployment, error)
	SaveDeployment(ctx context.Context, d Deployment) error
	// SaveDeployments records many deployments in one transaction.
	SaveDeployments(ctx context.Context, ds []Deployment) error
	// DueCAChecks returns the deployments whose CA check is due at now (see CACheckDue): never
	// scheduled, scheduled at or before now, or scheduled after horizon. It reads an index of
	// the schedule, not every deployment; deployments that cannot be checked are never returned.
	DueCAChecks(ctx context.Context, now, horizon time.Time) ([]Deployment, error)
	// DeleteDeployment forgets a certificate's deployment (a retired certificate).
	DeleteDeployment(ctx context.Context, certificate string) error

	// OpenOperation returns the unfinished operation of a certificate, if any.
	OpenOperation(ctx context.Context, certificate string) (*Operation, error)
	// OpenOperations returns every unfinished operation, by certificate.
	OpenOperations(ctx context.Context) (map[string]*Operation, error)
	// CreateOperation records a new operation; it fails if the certificate already has one open.
	CreateOperation(ctx context.Context, op *Operation) error
	// SaveOperation records op's current step and fields.
	SaveOperation(ctx context.Context, op *Operation) error
	// CompleteOperation finishes op and records d as the deployment, atomically.
	CompleteOperation(ctx context.Context, op *Operation, d Deployment) error
	// AbandonOperation finishes op without a deployment.
	AbandonOperation(ctx context.Context, op *Operation, reason string) error

	StartRun(ctx context.Context, dryRun bool) (int64, error)
	// FinishRun records how a run ended and, in the same transaction, prunes the history the
	// retention (SetRetention) no longer keeps.
	FinishRun(ctx context.Context, id int64, outcome string) error
	// SetRetention sets what FinishRun keeps (DefaultRetention until set).
	SetRetention(r Retention)
	RecordResult(ctx context.Context, r Result) error
	// RecordResults records many results in one transaction. A result the same as its
	// certificate's newest, recorded by the run just before, extends that row to this run.
	RecordResults(ctx context.Context, rs []Result) error
	// LastResults returns the newest result of each certificate (no history is read).
	LastResults(ctx context.Context) (map[string]Result, error)
	Runs(ctx context.Context, limit int) ([]Run, error)

	// LoadAccount and SaveAccount keep issuer accounts (an ACME account key, encrypted by the issuer).
	LoadAccount(ctx context.Context, issuer string) ([]byte, bool, error)
	SaveAccount(ctx context.Context, issuer string, data []byte) error

	Close() error
}
