package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

var pluginDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certfleet-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, pkg := range []string{"github.com/certfleet/certfleet/examples/plugin-pemdir/cmd/certfleet-plugin-pemdir",
		"github.com/certfleet/certfleet/plugins/citrix-nitro/cmd/certfleet-plugin-citrix-nitro"} {
		if _, err := conformance.BuildPlugin(dir, pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	pluginDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// certfleet runs the CLI in-process and returns its exit code, stdout and stderr.
func certfleet(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	full := append([]string{"certfleet", "--plugin-dir", pluginDir, "--pins-file", filepath.Join(t.TempDir(), "pins.json")}, args...)
	code := run(context.Background(), full, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := certfleet(t, "version")
	if code != 0 || !strings.Contains(out, "contract v1.1") {
		t.Fatalf("version: code %d, %q", code, out)
	}
}

func TestPluginsListAndInspect(t *testing.T) {
	code, out, errOut := certfleet(t, "plugins", "list", "--output", "json")
	if code != 0 {
		t.Fatalf("plugins list: code %d, %s", code, errOut)
	}
	var rows []pluginRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("plugins list --output json is not JSON: %v\n%s", err, out)
	}
	i := slices.IndexFunc(rows, func(r pluginRow) bool { return r.Name == "pemdir" })
	if i < 0 || rows[i].Version == "" || rows[i].Pinned != "yes" || len(rows[i].SHA256) != 64 {
		t.Fatalf("plugins list: %+v", rows)
	}
	code, out, errOut = certfleet(t, "plugins", "inspect", "pemdir")
	if code != 0 || !strings.Contains(out, "bindings:     [live-link]") || !strings.Contains(out, "reload_command") {
		t.Fatalf("plugins inspect: code %d\n%s\n%s", code, out, errOut)
	}
}

func TestPluginsNewWritesTheTemplate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "acme")
	code, out, errOut := certfleet(t, "plugins", "new", "--dir", dir, "--module", "example.com/acme/adc", "acme-adc")
	if code != 0 {
		t.Fatalf("plugins new: code %d\n%s", code, errOut)
	}
	for _, f := range []string{"go.mod", "cmd/certfleet-plugin-acme-adc/main.go", "acmeadcsim/sim.go", "conformance_test.go", "skeleton.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("plugins new did not write %s: %v\n%s", f, err, out)
		}
	}
	mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.HasPrefix(string(mod), "module example.com/acme/adc\n") {
		t.Errorf("go.mod: %s", mod)
	}
	code, _, errOut = certfleet(t, "plugins", "new", "--dir", dir, "acme-adc")
	if code == 0 || !strings.Contains(errOut, "is not empty") {
		t.Errorf("plugins new into a used directory: code %d, %q", code, errOut)
	}
}

// TestPluginsTestQualifiesWithoutGo runs the conformance suite from the CLI against a pemdir
// "lab device": a report of every check, a skip with its reason, exit 0; then a target file whose
// unknown binding exists, so a check fails with the plugin's answer and the exit code is 1.
func TestPluginsTestQualifiesWithoutGo(t *testing.T) {
	dev := t.TempDir()
	target := filepath.Join(t.TempDir(), "lab.yaml")
	write := func(extra string) {
		data := "address: " + dev + "\noptions: {links: [www, api]}\nbindings:\n  - {kind: live-link, name: www}\n  - {kind: live-link, name: api}\n" +
			"key_specs: [{type: ecdsa, bits: 256}]\nunsupported: [authentication]\n" + extra
		if err := os.WriteFile(target, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	code, out, errOut := certfleet(t, "plugins", "test", "--target", target, "pemdir")
	if code != 0 {
		t.Fatalf("plugins test: code %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"PASSED  ImportCertIdempotent\n", "PASSED  RollbackOfPartialBind\n", "PASSED  GenerateCSR/ecdsa-256\n",
		"SKIPPED DeadlineEveryCall: Config.Stall is not set", "SKIPPED BadCredentials: plugin declares no authentication", " 0 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("plugins test output lacks %q:\n%s", want, out)
		}
	}

	dev = t.TempDir()
	write("unknown_binding: {kind: live-link, name: www}\n")
	code, out, _ = certfleet(t, "plugins", "test", "--target", target, "-o", "json", "pemdir")
	if code != 1 {
		t.Fatalf("plugins test with an existing 'unknown' binding: code %d, want 1\n%s", code, out)
	}
	var report conformance.Report
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("plugins test -o json: %v\n%s", err, out)
	}
	var failed []string
	for _, r := range report.Results {
		if r.Outcome == conformance.Failed {
			failed = append(failed, r.Check+": "+strings.Join(r.Messages, "; "))
		}
	}
	if len(failed) == 0 || !strings.Contains(strings.Join(failed, "\n"), "UnknownBinding: Bind to the unknown live-link/www: succeeded") {
		t.Errorf("failed checks %q, want UnknownBinding with the plugin's answer", failed)
	}

	if err := os.WriteFile(target, []byte("address: "+dev+"\nbindings: [{kind: live-link, name: www}]\nkey_specs: [{type: rsa, bits: 1024}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = certfleet(t, "plugins", "test", "--target", target, "pemdir")
	if code != 2 || !strings.Contains(errOut, "key_specs[0]: rsa-1024 is not a key the contract allows") {
		t.Errorf("plugins test with a bad key spec: code %d, %q", code, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-level", "loud", "version"}, `--log-level "loud": use trace, debug, info, warn or error`},
		{[]string{"--log-format", "xml", "version"}, `--log-format "xml": use text or json`},
		{[]string{"plugins", "inspect"}, "usage: certfleet plugins inspect NAME"},
		{[]string{"plugins", "inspect", "nope"}, `plugin "nope" not found`},
		{[]string{"plugins", "list", "-o", "yaml"}, `--output "yaml": use table or json`},
	} {
		code, _, errOut := certfleet(t, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("certfleet %v: code %d, stderr %q; want non-zero and %q", tc.args, code, errOut, tc.want)
		}
	}
}
