package conformance_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/certfleet/certfleet/plugins/sdk/conformance/internal/brokenpemdir"
)

// The suite's tests run the suite, in a child process of this test binary, against pemdir broken
// in one way at a time, and check that the check written for that rule fails and that the checks
// the suite had before it (the old suite) all pass: without the new check the break went unseen.

const (
	envBinary = "CERTFLEET_BROKENPEMDIR_BINARY"
	envBroken = "CERTFLEET_BROKEN"
	envChild  = "CERTFLEET_CONFORMANCE_CHILD"
)

var brokenPath string

func TestMain(m *testing.M) {
	if p := os.Getenv(envBinary); p != "" {
		brokenPath = p
		os.Exit(m.Run())
	}
	conformance.Main(m, "github.com/certfleet/certfleet/plugins/sdk/conformance/internal/brokenpemdir/cmd/certfleet-plugin-brokenpemdir", &brokenPath)
}

// newChecks are the checks added for issue 21, GenerateCSRRetried (attempt_id) and
// InventoryFingerprintsOnly (issue 24); every other check was in the suite before.
var newChecks = []string{
	"ImportCertIdempotent", "CleanupIdempotent", "ConcurrentCertificates", "BindErrorLeavesDeviceUnchanged",
	"RollbackOfPartialBind", "InventoryAfterCommit", "DeadlineEveryCall", "GenerateCSRRetried", "InventoryFingerprintsOnly",
}

func TestEachNewCheckCatchesItsBrokenPlugin(t *testing.T) {
	cases := []struct {
		mode    string
		catches string
	}{
		{brokenpemdir.None, ""},
		{brokenpemdir.ImportNotIdempotent, "ImportCertIdempotent"},
		{brokenpemdir.CleanupNotIdempotent, "CleanupIdempotent"},
		{brokenpemdir.SharedKeySlot, "ConcurrentCertificates"},
		{brokenpemdir.BindOneByOne, "BindErrorLeavesDeviceUnchanged"},
		{brokenpemdir.RollbackSnapshotsAll, "RollbackOfPartialBind"},
		{brokenpemdir.InventoryStagedOnly, "InventoryAfterCommit"},
		{brokenpemdir.IgnoresDeadline, "DeadlineEveryCall"},
		{brokenpemdir.IgnoresAttemptID, "GenerateCSRRetried"},
		{brokenpemdir.FingerprintsOnlyUnbound, "InventoryFingerprintsOnly"},
	}
	for _, c := range cases {
		name := c.mode
		if name == "" {
			name = "unbroken"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestSuiteAgainstBrokenPemdir$", "-test.v")
			cmd.Env = append(os.Environ(), envBinary+"="+brokenPath, envBroken+"="+c.mode, envChild+"=1")
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatalf("run the suite: %v", err)
			}
			failed := failedChecks(string(out))
			if c.catches == "" {
				if err != nil || len(failed) > 0 {
					t.Fatalf("the unbroken plugin fails %v:\n%s", failed, out)
				}
				return
			}
			if !slices.Contains(failed, c.catches) {
				t.Fatalf("%s: check %s did not fail (failed: %v):\n%s", c.mode, c.catches, failed, out)
			}
			for _, f := range failed {
				if !slices.Contains(newChecks, f) {
					t.Errorf("%s: the old check %s fails too, so the break was not unseen before", c.mode, f)
				}
			}
			t.Logf("%s: caught by %v", c.mode, failed)
		})
	}
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: TestSuiteAgainstBrokenPemdir/([A-Za-z]+)`)

// failedChecks lists the top-level checks that failed in a child's -test.v output.
func failedChecks(out string) []string {
	var names []string
	for _, m := range failLine.FindAllStringSubmatch(out, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	sort.Strings(names)
	return names
}

// TestSuiteAgainstBrokenPemdir is the child: the whole suite against the broken plugin.
func TestSuiteAgainstBrokenPemdir(t *testing.T) {
	if os.Getenv(envChild) == "" {
		t.Skip("run by TestEachNewCheckCatchesItsBrokenPlugin")
	}
	dir := t.TempDir()
	conformance.Run(t, conformance.Config{
		PluginPath: brokenPath,
		Target: sdk.Target{Name: "brokenpemdir", Address: dir, Options: sdk.Options{
			"links": []any{"www", "api"},
		}},
		Bindings:       []sdk.Binding{{Kind: "live-link", Name: "www"}, {Kind: "live-link", Name: "api"}},
		UnknownBinding: sdk.Binding{Kind: "live-link", Name: "no-such-link"},
		KeySpecs:       []sdk.KeySpec{{Type: sdk.KeyTypeECDSA, Bits: 256}},
		Unsupported:    []conformance.Feature{conformance.FeatureAuthentication},
		Served: func(_ context.Context, b sdk.Binding) (*x509.Certificate, error) {
			data, err := os.ReadFile(filepath.Join(dir, "live", b.Name, "fullchain.pem"))
			if err != nil {
				return nil, err
			}
			return sdk.ParseCertificatePEM(string(data))
		},
		Stall: lockStall(dir),
	})
}

// TestUnsupportedFeaturesAreSkippedWithReason: a plugin for a device that cannot roll back or
// clean up (pemdir declaring so, and answering Unimplemented) passes the whole suite when it
// declares both unsupported, and every check or part of a check that needs them is reported
// skipped with the reason; without the declaration, the same plugin fails.
func TestUnsupportedFeaturesAreSkippedWithReason(t *testing.T) {
	t.Setenv(envBroken, brokenpemdir.LacksRollbackAndCleanup)
	qualify := func(unsupported ...conformance.Feature) conformance.Report {
		dir := t.TempDir()
		return conformance.Qualify(context.Background(), conformance.Config{
			PluginPath:     brokenPath,
			Target:         sdk.Target{Name: "lacking", Address: dir, Options: sdk.Options{"links": []any{"www", "api"}}},
			Bindings:       []sdk.Binding{{Kind: "live-link", Name: "www"}, {Kind: "live-link", Name: "api"}},
			UnknownBinding: sdk.Binding{Kind: "live-link", Name: "no-such-link"},
			KeySpecs:       []sdk.KeySpec{{Type: sdk.KeyTypeECDSA, Bits: 256}},
			Unsupported:    unsupported,
			Stall:          lockStall(dir),
		})
	}
	report := qualify(conformance.FeatureAuthentication, conformance.FeatureRollback, conformance.FeatureCleanup)
	outcome := map[string]conformance.Result{}
	for _, r := range report.Results {
		outcome[r.Check] = r
		if r.Outcome == conformance.Failed {
			t.Errorf("%s failed for a plugin that declares what it lacks: %v", r.Check, r.Messages)
		}
	}
	for check, feature := range map[string]string{
		"BadCredentials":             "authentication",
		"CleanupIdempotent":          "cleanup",
		"RollbackOfPartialBind":      "rollback",
		"DeadlineEveryCall/Rollback": "rollback",
		"DeadlineEveryCall/Cleanup":  "cleanup",
	} {
		r := outcome[check]
		if r.Outcome != conformance.Skipped || !slices.ContainsFunc(r.Messages, func(m string) bool {
			return regexp.MustCompile(`declares ` + feature + ` unsupported`).MatchString(m)
		}) {
			t.Errorf("%s: %s %v, want skipped with the reason (%s unsupported)", check, r.Outcome, r.Messages, feature)
		}
	}
	for _, check := range []string{"GenerateCSRRetried", "ImportCertIdempotent", "ConcurrentCertificates", "BindErrorLeavesDeviceUnchanged",
		"InventoryAfterCommit", "InventoryFingerprintsOnly", "DeadlineEveryCall", "DeadlineEveryCall/Bind", "DeadlineEveryCall/ImportCert"} {
		if outcome[check].Outcome != conformance.Passed {
			t.Errorf("%s: %s %v, want passed: no feature skips it", check, outcome[check].Outcome, outcome[check].Messages)
		}
	}

	// Without the declaration the same plugin fails: the skips come from the declaration only.
	undeclared := qualify(conformance.FeatureAuthentication)
	var failed []string
	for _, r := range undeclared.Results {
		if r.Outcome == conformance.Failed && !strings.Contains(r.Check, "/") {
			failed = append(failed, r.Check)
		}
	}
	for _, want := range []string{"GetInfo", "CleanupIdempotent", "RollbackOfPartialBind"} {
		if !slices.Contains(failed, want) {
			t.Errorf("undeclared: %s did not fail (failed: %v)", want, failed)
		}
	}
}

// TestUnknownFeatureIsRefused: a misspelt feature would otherwise skip nothing, silently.
func TestUnknownFeatureIsRefused(t *testing.T) {
	report := conformance.Qualify(context.Background(), conformance.Config{
		PluginPath: brokenPath, Target: sdk.Target{Address: t.TempDir()},
		Bindings:    []sdk.Binding{{Kind: "live-link", Name: "www"}},
		Unsupported: []conformance.Feature{"rolback"},
	})
	if !report.Failed() || !strings.Contains(fmt.Sprint(report.Results), `unknown feature "rolback": use one of authentication, rollback, cleanup, ip-sans`) {
		t.Fatalf("a misspelt feature: %+v", report.Results)
	}
	if _, err := conformance.ParseFeature("ip-sans"); err != nil {
		t.Fatal(err)
	}
}

// lockStall holds pemdir's device lock, which stalls every changing call.
func lockStall(dir string) func(context.Context) (func(), error) {
	return func(context.Context) (func(), error) {
		f, err := os.OpenFile(filepath.Join(dir, ".certfleet.lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, err
		}
		return func() { f.Close() }, nil
	}
}
