package engine

import (
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/hashicorp/go-hclog"
)

// pendingCA is a CA account whose orders answer "pending, retry after retryAfter" until ready
// says the certificate may issue; it then signs the CSR with a test CA. It records when each
// certificate's order was collected.
type pendingCA struct {
	ca         *conformance.TestCA
	retryAfter time.Duration
	ready      func(certificate string, collects int) bool

	mu       sync.Mutex
	orders   map[issuer.OrderRef]issuer.Request
	submits  int
	collects map[string][]time.Time
}

func newPendingCA(t *testing.T, retryAfter time.Duration, ready func(certificate string, collects int) bool) *pendingCA {
	t.Helper()
	ca, err := conformance.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	return &pendingCA{ca: ca, retryAfter: retryAfter, ready: ready, orders: map[issuer.OrderRef]issuer.Request{}, collects: map[string][]time.Time{}}
}

func (p *pendingCA) Name() string                         { return "ca" }
func (p *pendingCA) Capabilities() issuer.Capabilities    { return issuer.Capabilities{Type: "test"} }
func (p *pendingCA) ValidateOptions(map[string]any) error { return nil }
func (p *pendingCA) collectsOf(certificate string) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.collects[certificate]...)
}

func (p *pendingCA) Submit(_ context.Context, req issuer.Request) (issuer.OrderRef, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.submits++
	ref := issuer.OrderRef(fmt.Sprintf("%s/%d", req.CertificateName, p.submits))
	p.orders[ref] = req
	return ref, nil
}

func (p *pendingCA) Find(_ context.Context, req issuer.Request) (issuer.OrderRef, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ref, r := range p.orders {
		if r.RequestID == req.RequestID {
			return ref, true, nil
		}
	}
	return "", false, nil
}

func (p *pendingCA) Collect(_ context.Context, ref issuer.OrderRef) (issuer.Result, error) {
	p.mu.Lock()
	req, ok := p.orders[ref]
	if !ok {
		p.mu.Unlock()
		return issuer.Result{}, fmt.Errorf("no order %s", ref)
	}
	p.collects[req.CertificateName] = append(p.collects[req.CertificateName], time.Now())
	n := len(p.collects[req.CertificateName])
	p.mu.Unlock()
	if !p.ready(req.CertificateName, n) {
		return issuer.Result{State: issuer.Pending, RetryAfter: p.retryAfter}, nil
	}
	leaf, err := p.ca.SignCSR(req.CSRPEM, 90*24*time.Hour)
	if err != nil {
		return issuer.Result{}, err
	}
	return issuerResult(leaf, p.ca), nil
}

func (p *pendingCA) Revoke(context.Context, issuer.OrderRef, *x509.Certificate, issuer.RevokeReason) error {
	return nil
}

func openStore(t *testing.T) state.Store {
	t.Helper()
	store, err := state.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func quietContext() context.Context {
	return sdk.WithLogger(context.Background(), hclog.NewNullLogger())
}

func outcomes(r Report) map[string]state.Outcome {
	out := map[string]state.Outcome{}
	for _, res := range r.Results {
		out[res.Certificate] = res.Outcome
	}
	return out
}

// With one worker, certificate B (on another device) is generated, ordered, imported and bound
// while A's order waits at the CA: A's order issues only once B's certificate is imported, so a
// run in which A's wait held the worker leaves A pending. (It did before the waits were parked.)
func TestAWaitingOrderHoldsNoWorker(t *testing.T) {
	fleet := newSlowFleet(t, 2, 1)
	dev := newSlowDevices(0)
	imported := func(device string) bool {
		dev.mu.Lock()
		defer dev.mu.Unlock()
		return slices.Contains(dev.calls[device], "ImportCert")
	}
	a, b := fleet.certs[0], fleet.certs[1]
	// A's first collect is pending whatever B has done: the engine's first collect comes after
	// its initial back-off, by which time a fast machine may have imported B already.
	ca := newPendingCA(t, 20*time.Millisecond, func(certificate string, collects int) bool {
		return certificate != a.Name || (collects > 1 && imported(b.Device))
	})
	e := New(Options{
		Store: openStore(t), Plugins: func(string) (sdk.Plugin, error) { return dev, nil },
		Issuers: map[string]issuer.Issuer{"ca": ca}, Devices: fleet.devices, Certificates: fleet.certs,
		Workers: 1, PerIssuer: 1, CollectTimeout: 10 * time.Second,
	})
	report, err := e.Run(quietContext(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := outcomes(report)
	if got[a.Name] != state.OutcomeDeployed || got[b.Name] != state.OutcomeDeployed {
		t.Fatalf("outcomes %v; want both deployed in one run", got)
	}
	if n := len(ca.collectsOf(a.Name)); n < 2 {
		t.Fatalf("A's order was collected %d times; it was meant to wait for B", n)
	}
}

// Retry-After is honoured: no collect of a pending order comes sooner than the CA asked.
func TestRetryAfterIsHonoured(t *testing.T) {
	fleet := newSlowFleet(t, 1, 1)
	const retryAfter = 300 * time.Millisecond
	ca := newPendingCA(t, retryAfter, func(_ string, collects int) bool { return collects >= 3 })
	dev := newSlowDevices(0)
	e := New(Options{
		Store: openStore(t), Plugins: func(string) (sdk.Plugin, error) { return dev, nil },
		Issuers: map[string]issuer.Issuer{"ca": ca}, Devices: fleet.devices, Certificates: fleet.certs,
	})
	report, err := e.Run(quietContext(), RunOptions{})
	if err != nil || outcomes(report)[fleet.certs[0].Name] != state.OutcomeDeployed {
		t.Fatalf("run: %+v (%v)", report.Results, err)
	}
	collects := ca.collectsOf(fleet.certs[0].Name)
	if len(collects) != 3 {
		t.Fatalf("%d collects; want 3", len(collects))
	}
	for i := 1; i < len(collects); i++ {
		if gap := collects[i].Sub(collects[i-1]); gap < retryAfter {
			t.Fatalf("collect %d came %s after the previous one; the CA asked for %s", i+1, gap, retryAfter)
		}
	}
}

// A pending order's next collect time is recorded: a later run (a restart) does not ask the CA
// before it, and collects after it, without a second order.
func TestNextAttemptSurvivesARestart(t *testing.T) {
	fleet := newSlowFleet(t, 1, 1)
	name := fleet.certs[0].Name
	ca := newPendingCA(t, time.Hour, func(_ string, collects int) bool { return collects >= 2 })
	dev := newSlowDevices(0)
	store := openStore(t)
	engineAt := func(now func() time.Time) *Engine {
		return New(Options{
			Store: store, Plugins: func(string) (sdk.Plugin, error) { return dev, nil },
			Issuers: map[string]issuer.Issuer{"ca": ca}, Devices: fleet.devices, Certificates: fleet.certs, Now: now,
		})
	}
	report, err := engineAt(nil).Run(quietContext(), RunOptions{})
	if err != nil || outcomes(report)[name] != state.OutcomePending || report.ExitCode() != ExitPending {
		t.Fatalf("first run: %+v (%v)", report.Results, err)
	}
	op, err := store.OpenOperation(context.Background(), name)
	if err != nil || op == nil || time.Until(op.NextAttemptAt) < 59*time.Minute {
		t.Fatalf("recorded operation %+v (%v); want the next collect an hour away", op, err)
	}

	// A new process, before the time: nothing is asked of the CA.
	report, err = engineAt(nil).Run(quietContext(), RunOptions{})
	if err != nil || outcomes(report)[name] != state.OutcomePending {
		t.Fatalf("second run: %+v (%v)", report.Results, err)
	}
	if n := len(ca.collectsOf(name)); n != 1 {
		t.Fatalf("%d collects before the CA's Retry-After had passed; want 1", n)
	}

	// After the time: collected, deployed, and still one order.
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	report, err = engineAt(later).Run(quietContext(), RunOptions{})
	if err != nil || outcomes(report)[name] != state.OutcomeDeployed {
		t.Fatalf("third run: %+v (%v)", report.Results, err)
	}
	if ca.submits != 1 || len(ca.collectsOf(name)) != 2 {
		t.Fatalf("%d orders, %d collects; want 1 and 2", ca.submits, len(ca.collectsOf(name)))
	}
}

// A run that dies while an order waits (here: cancelled right after the wait is recorded) leaves
// the next collect time behind; the next run waits for it rather than asking at once.
func TestAParkedOrderIsNotCollectedEarlyAfterACrash(t *testing.T) {
	fleet := newSlowFleet(t, 1, 1)
	name := fleet.certs[0].Name
	ca := newPendingCA(t, 400*time.Millisecond, func(_ string, collects int) bool { return collects >= 2 })
	dev := newSlowDevices(0)
	store := openStore(t)
	ctx, crash := context.WithCancel(quietContext())
	defer crash()
	first := New(Options{
		Store: store, Plugins: func(string) (sdk.Plugin, error) { return dev, nil },
		Issuers: map[string]issuer.Issuer{"ca": ca}, Devices: fleet.devices, Certificates: fleet.certs,
		AfterStep: func(op *state.Operation) {
			if op.Step == state.StepSubmitted && !op.NextAttemptAt.IsZero() {
				crash()
			}
		},
	})
	if _, err := first.Run(ctx, RunOptions{}); err == nil {
		t.Fatal("the crashed run reported no error")
	}
	op, err := store.OpenOperation(context.Background(), name)
	if err != nil || op == nil || op.Step != state.StepSubmitted || op.NextAttemptAt.IsZero() {
		t.Fatalf("operation after the crash: %+v (%v)", op, err)
	}

	second := New(Options{
		Store: store, Plugins: func(string) (sdk.Plugin, error) { return dev, nil },
		Issuers: map[string]issuer.Issuer{"ca": ca}, Devices: fleet.devices, Certificates: fleet.certs,
	})
	report, err := second.Run(quietContext(), RunOptions{})
	if err != nil || outcomes(report)[name] != state.OutcomeDeployed {
		t.Fatalf("resumed run: %+v (%v)", report.Results, err)
	}
	collects := ca.collectsOf(name)
	if len(collects) != 2 || collects[1].Before(op.NextAttemptAt) {
		t.Fatalf("collects at %v; the second must not come before the recorded %v", collects, op.NextAttemptAt)
	}
	if ca.submits != 1 {
		t.Fatalf("%d orders; want 1", ca.submits)
	}
}

// A device's certificates are worked together: with one worker, the first device commits before
// half the fleet's certificates are issued (typically after a fifth; it used to commit only once
// nearly all were, each device's last certificate coming in the last round), and every device
// commits once.
func TestDevicesCommitInTurn(t *testing.T) {
	const devices, perDevice = 8, 4
	_, ca := startSCM(t, 0, 0)
	events := &eventLog{}
	iss := &timedIssuer{Issuer: ca, events: events}
	dev := newSlowDevices(time.Millisecond)
	dev.events = events
	fleet := newSlowFleet(t, devices, perDevice)
	e := New(Options{
		Store: openStore(t), Plugins: func(string) (sdk.Plugin, error) { return dev, nil },
		Issuers: map[string]issuer.Issuer{"ca": iss}, Devices: fleet.devices, Certificates: fleet.certs,
		Workers: 1,
	})
	report, err := e.Run(quietContext(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range outcomes(report) {
		if o != state.OutcomeDeployed {
			t.Fatalf("%s: %s (%+v)", name, o, report.Results)
		}
	}
	_, commits := dev.firstCommit()
	for name := range fleet.devices {
		if commits[name] != 1 {
			t.Fatalf("device %s committed %d times; want once (%v)", name, commits[name], commits)
		}
	}
	issuedBefore := 0
	for _, ev := range events.list() {
		if strings.HasPrefix(ev, "Commit ") {
			break
		}
		issuedBefore++
	}
	if issuedBefore > devices*perDevice/2 {
		t.Fatalf("the first commit came after %d of %d certificates were issued; want at most half", issuedBefore, devices*perDevice)
	}
	t.Logf("the first commit came after %d of %d certificates were issued", issuedBefore, devices*perDevice)
}

// A run starts on a device as soon as its inventory is in: with one worker, the first device's
// certificates get their keys before the last device is inventoried (they used to wait until
// every device had been), and still every device is inventoried once before its work and
// commits once.
func TestWorkStartsBeforeEveryDeviceIsInventoried(t *testing.T) {
	const devices, perDevice = 8, 2
	_, ca := startSCM(t, 0, 0)
	dev := newSlowDevices(time.Millisecond)
	fleet := newSlowFleet(t, devices, perDevice)
	e := New(Options{
		Store: openStore(t), Plugins: func(string) (sdk.Plugin, error) { return dev, nil },
		Issuers: map[string]issuer.Issuer{"ca": ca}, Devices: fleet.devices, Certificates: fleet.certs,
		Workers: 1,
	})
	report, err := e.Run(quietContext(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if report.Plan.InventoryCalls != devices {
		t.Fatalf("%d inventories planned for %d devices", report.Plan.InventoryCalls, devices)
	}
	for name, o := range outcomes(report) {
		if o != state.OutcomeDeployed {
			t.Fatalf("%s: %s (%+v)", name, o, report.Results)
		}
	}
	dev.mu.Lock()
	order := append([]string(nil), dev.order...)
	dev.mu.Unlock()
	firstCSR, lastPlanned := -1, -1
	inventoried := map[string]bool{}
	for i, call := range order {
		name, device, _ := strings.Cut(call, " ")
		switch {
		case name == "GenerateCSR" && !inventoried[device]:
			t.Fatalf("a key was made on %s before its inventory (%v)", device, order)
		case name == "GenerateCSR" && firstCSR < 0:
			firstCSR = i
		case name == "Inventory" && !inventoried[device]:
			inventoried[device], lastPlanned = true, i
		}
	}
	if firstCSR < 0 || firstCSR > lastPlanned {
		t.Fatalf("the first key was made at call %d, the last device inventoried at call %d: the work waited for every inventory (%v)", firstCSR, lastPlanned, order)
	}
	_, commits := dev.firstCommit()
	for name := range fleet.devices {
		if commits[name] != 1 {
			t.Fatalf("device %s committed %d times; want once (%v)", name, commits[name], commits)
		}
	}
}

// issuers.<name>.concurrency bounds the calls in flight to that CA account, below the default.
func TestIssuerConcurrencyBoundsCallsInFlight(t *testing.T) {
	_, ca := startSCM(t, 20*time.Millisecond, 1)
	iss := &timedIssuer{Issuer: ca}
	dev := newSlowDevices(0)
	fleet := newSlowFleet(t, 8, 2)
	e := New(Options{
		Store: openStore(t), Plugins: func(string) (sdk.Plugin, error) { return dev, nil },
		Issuers: map[string]issuer.Issuer{"ca": iss}, Devices: fleet.devices, Certificates: fleet.certs,
		Workers: 8, PerIssuer: 4, IssuerConcurrency: map[string]int{"ca": 2}, Backoff: 10 * time.Millisecond,
	})
	report, err := e.Run(quietContext(), RunOptions{})
	if err != nil || report.ExitCode() != ExitOK {
		t.Fatalf("run: %+v (%v)", report.Results, err)
	}
	if iss.maxInFlight != 2 {
		t.Fatalf("%d calls to the CA account in flight at most; want its concurrency, 2", iss.maxInFlight)
	}
}
