package conformance

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// T is what a check reports to: *testing.T under `go test` (through Run), or the report runner
// of Qualify, which needs no Go toolchain.
type T interface {
	Helper()
	Log(args ...any)
	Logf(format string, args ...any)
	Error(args ...any)
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skip(args ...any)
	Skipf(format string, args ...any)
	Failed() bool
	Cleanup(func())
	// Run runs f as the named sub-check and reports whether it passed.
	Run(name string, f func(T)) bool
}

// testingT adapts *testing.T.
type testingT struct{ *testing.T }

func (t testingT) Run(name string, f func(T)) bool {
	return t.T.Run(name, func(tt *testing.T) { f(testingT{tt}) })
}

// Outcome of one check in a qualification report.
type Outcome string

const (
	Passed  Outcome = "passed"
	Failed  Outcome = "failed"
	Skipped Outcome = "skipped"
)

// Result is one check of a Report: its path ("ImportCert/RejectsGarbage"), outcome, and what it
// said: the reason of a skip, the failure with the device's answer, and its log.
type Result struct {
	Check    string   `json:"check"`
	Outcome  Outcome  `json:"outcome"`
	Messages []string `json:"messages,omitempty"`
}

// Report is the outcome of Qualify, one Result per check and sub-check in the order they ran.
type Report struct {
	Plugin  string   `json:"plugin"`
	Results []Result `json:"results"`
}

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	for _, res := range r.Results {
		if res.Outcome == Failed {
			return true
		}
	}
	return false
}

// Qualify runs the suite as Run does, without `go test`: against a lab device from the certfleet
// CLI. It creates its own objects on the device (names from the hints "csr", "first", "second",
// ...) and binds them only to cfg.Bindings.
func Qualify(ctx context.Context, cfg Config) Report {
	root := &reportT{name: "", report: &Report{Plugin: cfg.PluginPath}, ctx: ctx}
	root.runBody(func(t T) { runChecks(t, cfg) })
	if root.failed {
		// A failure before or between the checks (a bad Config, a plugin that does not start):
		// without this result the report would look clean.
		root.report.Results = append(root.report.Results, Result{Check: "Setup", Outcome: Failed, Messages: root.messages})
	}
	return *root.report
}

// reportT is a T that records into a Report. Each check runs in its own goroutine so that Fatal
// and Skip end it with runtime.Goexit, as the testing package does.
type reportT struct {
	name     string
	report   *Report
	ctx      context.Context
	parent   *reportT
	mu       sync.Mutex
	messages []string
	failed   bool
	skipped  bool
	cleanups []func()
}

func (t *reportT) Helper() {}

func (t *reportT) log(msg string) {
	t.mu.Lock()
	t.messages = append(t.messages, strings.TrimSpace(msg))
	t.mu.Unlock()
}

func (t *reportT) Log(args ...any)                 { t.log(fmt.Sprintln(args...)) }
func (t *reportT) Logf(format string, args ...any) { t.log(fmt.Sprintf(format, args...)) }
func (t *reportT) fail() {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	for p := t.parent; p != nil; p = p.parent {
		p.mu.Lock()
		p.failed = true
		p.mu.Unlock()
	}
}
func (t *reportT) Error(args ...any)                 { t.log(fmt.Sprintln(args...)); t.fail() }
func (t *reportT) Errorf(format string, args ...any) { t.log(fmt.Sprintf(format, args...)); t.fail() }
func (t *reportT) Fatal(args ...any)                 { t.Error(args...); runtime.Goexit() }
func (t *reportT) Fatalf(format string, args ...any) { t.Errorf(format, args...); runtime.Goexit() }
func (t *reportT) Skip(args ...any)                  { t.log(fmt.Sprintln(args...)); t.skip() }
func (t *reportT) Skipf(format string, args ...any)  { t.log(fmt.Sprintf(format, args...)); t.skip() }

func (t *reportT) skip() {
	t.mu.Lock()
	t.skipped = true
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *reportT) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *reportT) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

// runBody runs f in a goroutine, then the cleanups, last first.
func (t *reportT) runBody(f func(T)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("panic: %v", r)
			}
		}()
		f(t)
	}()
	<-done
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

func (t *reportT) Run(name string, f func(T)) bool {
	path := name
	if t.name != "" {
		path = t.name + "/" + name
	}
	child := &reportT{name: path, report: t.report, ctx: t.ctx, parent: t}
	// Reserve the check's place before it runs, so sub-checks are listed after it.
	t.report.Results = append(t.report.Results, Result{Check: path})
	at := len(t.report.Results) - 1
	if t.ctx.Err() != nil {
		child.skipped = true
		child.messages = []string{"not run: " + t.ctx.Err().Error()}
	} else {
		child.runBody(f)
	}
	res := Result{Check: path, Outcome: Passed, Messages: child.messages}
	switch {
	case child.failed:
		res.Outcome = Failed
	case child.skipped:
		res.Outcome = Skipped
	}
	t.report.Results[at] = res
	return !child.failed
}
