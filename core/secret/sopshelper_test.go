package secret

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/secret/sopstest"
	"github.com/hashicorp/go-hclog"
)

func TestSopsHelperEnvIsSopstests(t *testing.T) {
	if sopstest.HelperEnv != SopsHelperEnv {
		t.Fatalf("sopstest.HelperEnv = %q, secret.SopsHelperEnv = %q", sopstest.HelperEnv, SopsHelperEnv)
	}
}

// TestSopsHelperPath: the helper is found beside the running binary when no variable names it,
// and its absence is an error that says how to install it. (Not parallel: it changes the
// environment and the test binary's directory.)
func TestSopsHelperPath(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the helper beside the test binary would be certfleet-sops.exe")
	}
	t.Setenv(SopsHelperEnv, "")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	beside := filepath.Join(filepath.Dir(exe), SopsHelperName)
	if _, err := os.Stat(sopsHelperSystemPath); err == nil {
		t.Skipf("%s is installed on this machine", sopsHelperSystemPath)
	}
	_, err = SopsHelperPath()
	if err == nil || !strings.Contains(err.Error(), SopsHelperEnv) || !strings.Contains(err.Error(), beside) {
		t.Fatalf("no helper installed: got %v", err)
	}
	if _, err := ReadFile(testCtx(t), filepath.Join("testdata", "age", "creds.yaml")); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("decrypting without a helper: got %v", err)
	}
	if err := os.WriteFile(beside, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(beside) })
	if got, err := SopsHelperPath(); err != nil || got != beside {
		t.Fatalf("SopsHelperPath() = %q, %v; want %q", got, err, beside)
	}
}

// fakeHelper installs a shell script as the helper for one test.
func fakeHelper(t *testing.T, script string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("a shell script as the helper")
	}
	path := filepath.Join(t.TempDir(), SopsHelperName)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(SopsHelperEnv, path)
}

// TestSopsHelperFailures: a helper that crashes, answers nonsense or hangs gives an error that
// names the file and what happened, and a cancelled context stops it.
func TestSopsHelperFailures(t *testing.T) {
	data := readTestdata(t, "age/creds.yaml")
	t.Run("crash", func(t *testing.T) {
		fakeHelper(t, "cat >/dev/null; echo 'panic: something broke' >&2; exit 2\n")
		_, err := DecryptData(testCtx(t), data, FormatYAML, "creds.yaml")
		if err == nil || !strings.Contains(err.Error(), "creds.yaml") || !strings.Contains(err.Error(), "panic: something broke") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("nonsense", func(t *testing.T) {
		fakeHelper(t, "cat >/dev/null; echo 'hello'\n")
		_, err := DecryptData(testCtx(t), data, FormatYAML, "creds.yaml")
		if err == nil || !strings.Contains(err.Error(), "unreadable response") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		fakeHelper(t, "exec sleep 30\n")
		ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := DecryptData(ctx, data, FormatYAML, "creds.yaml")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the context's error", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("the helper was not stopped: %s", d)
		}
	})
}

// TestSopsHelperLogsAreRelayed: the helper's log lines reach the logger set by RouteSopsLogs, at
// their level, with their fields; other output is logged as an error.
func TestSopsHelperLogsAreRelayed(t *testing.T) {
	var out bytes.Buffer
	RouteSopsLogs(hclog.New(&hclog.LoggerOptions{Name: "certfleet", Output: &out, Level: hclog.Debug, JSONFormat: true}))
	t.Cleanup(func() { SetSopsLogOutput(os.Stderr) })
	relay := &sopsLogRelay{}
	relay.Write([]byte(`{"level":"warn","message":"comment could not be decrypted","fields":{"file":"s.yaml"}}` + "\n" + `not a log li`))
	relay.Write([]byte("ne\n"))
	relay.flush()
	got := out.String()
	for _, want := range []string{`"@level":"warn"`, `"@module":"certfleet.sops"`, `"@message":"comment could not be decrypted"`, `"file":"s.yaml"`, `"@level":"error"`, `"@message":"not a log line"`} {
		if !strings.Contains(got, want) {
			t.Errorf("log output lacks %s:\n%s", want, got)
		}
	}
}
