package pemdir_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

// TestCallDelaySlowsEveryCallAndIsLogged: certfleet-sim --latency slows pemdir devices through
// call_delay. Only a lower bound is asserted (a loaded machine makes calls slower, never faster).
func TestCallDelaySlowsEveryCallAndIsLogged(t *testing.T) {
	dir := t.TempDir()
	const delay = 40 * time.Millisecond
	target := sdk.Target{Name: "slow", Address: dir, Options: sdk.Options{
		"links": []any{"www"}, "access_log": "access.log", "call_delay": "40ms",
	}}
	p := pemdir.New()
	ctx := context.Background()
	start := time.Now()
	if _, err := p.Inventory(ctx, target); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CheckTarget(ctx, target); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Commit(ctx, target, sdk.CommitRequest{}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 3*delay {
		t.Errorf("three calls with call_delay %s took %s, want at least %s", delay, took, 3*delay)
	}
	data, err := os.ReadFile(filepath.Join(dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			t.Fatalf("access log line %q: want time, pid, mode, call", line)
		}
		calls = append(calls, f[2]+" "+f[3])
	}
	if got, want := strings.Join(calls, ", "), "read Inventory, read CheckTarget, write Commit"; got != want {
		t.Errorf("access log calls %q, want %q", got, want)
	}
}

func TestCallDelayEndsWithTheContext(t *testing.T) {
	target := sdk.Target{Name: "slow", Address: t.TempDir(), Options: sdk.Options{"call_delay": "30s"}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := pemdir.New().Inventory(ctx, target)
	if err == nil || sdk.CodeOf(err) != codes.DeadlineExceeded {
		t.Fatalf("Inventory past its deadline: %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the call waited %s for its delay after the deadline", took)
	}
}

func TestBadCallDelayNamesTheOption(t *testing.T) {
	for _, v := range []any{"fast", "-1s", "2h", 50} {
		target := sdk.Target{Name: "slow", Address: t.TempDir(), Options: sdk.Options{"call_delay": v}}
		_, err := pemdir.New().Inventory(context.Background(), target)
		if err == nil || !strings.Contains(err.Error(), "call_delay") || !strings.Contains(err.Error(), `"slow"`) {
			t.Errorf("call_delay %v: %v, want an error naming the option and the device", v, err)
		}
	}
}
