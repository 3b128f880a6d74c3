package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/urfave/cli/v2"
)

var pluginDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certfleet-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, pkg := range []string{"github.com/certfleet/certfleet/examples/plugin-pemdir/cmd/certfleet-plugin-pemdir",
		"github.com/certfleet/certfleet/plugins/citrix-nitro/cmd/certfleet-plugin-citrix-nitro",
		// validate checks the vendor samples against their plugins' capabilities.
		"github.com/certfleet/certfleet/plugins/f5-bigip/cmd/certfleet-plugin-f5-bigip",
		"github.com/certfleet/certfleet/plugins/paloalto-panos/cmd/certfleet-plugin-paloalto-panos",
		"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/cmd/certfleet-plugin-citrix-endpoint-management",
		"github.com/certfleet/certfleet/plugins/haproxy-runtime/cmd/certfleet-plugin-haproxy-runtime"} {
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
	pins := filepath.Join(t.TempDir(), "pins.json")
	list := func() []pluginRow {
		t.Helper()
		code, out, errOut := certfleet(t, "--pins-file", pins, "plugins", "list", "--output", "json")
		if code != 0 {
			t.Fatalf("plugins list: code %d, %s", code, errOut)
		}
		var rows []pluginRow
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("plugins list --output json is not JSON: %v\n%s", err, out)
		}
		// Only pemdir's row: the test's plugin directory holds other plugins too.
		rows = slices.DeleteFunc(rows, func(r pluginRow) bool { return r.Name != "pemdir" })
		if len(rows) == 0 || len(rows[0].SHA256) != 64 {
			t.Fatalf("plugins list: %+v", rows)
		}
		return rows
	}
	// Listing shows an unpinned plugin without running or pinning it.
	if rows := list(); rows[0].Pinned != "no" || rows[0].Version != "" {
		t.Fatalf("unpinned plugin listed as %+v", rows[0])
	}
	if _, err := os.Stat(pins); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("plugins list wrote the pins file: %v", err)
	}
	// Inspecting runs it, still without pinning.
	code, out, errOut := certfleet(t, "--pins-file", pins, "plugins", "inspect", "pemdir")
	if code != 0 || !strings.Contains(out, "bindings:     [live-link]") || !strings.Contains(out, "reload_command") {
		t.Fatalf("plugins inspect: code %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(pins); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("plugins inspect wrote the pins file: %v", err)
	}
	if code, _, errOut := certfleet(t, "--pins-file", pins, "plugins", "pin", "pemdir"); code != 0 {
		t.Fatalf("plugins pin: %s", errOut)
	}
	if rows := list(); rows[0].Pinned != "yes" || rows[0].Version == "" {
		t.Fatalf("pinned plugin listed as %+v", rows[0])
	}
}

// runCLI runs the CLI in-process with exactly the arguments given (no test plugin dir, no pins file).
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"certfleet"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// The plugins commands find plugins and keep pins where the configuration says, as run does:
// plugins.dirs, plugins.pins_file, else beside a state.path that is not the default.
func TestPluginsCommandsHonourTheConfiguration(t *testing.T) {
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plug")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	copyBinary(t, filepath.Join(pluginDir, "certfleet-plugin-pemdir"), filepath.Join(plugins, "certfleet-plugin-pemdir"))
	cfgPath := filepath.Join(dir, "certfleet.yaml")
	writeFile(t, cfgPath, "version: v1\nstate: {path: st/state.db}\nplugins: {dirs: [plug]}\n")
	env := map[string]string{"HOME": t.TempDir(), "XDG_STATE_HOME": "", "PATH": pluginDir}

	code, out, errOut := runCLI(t, env, "--config", cfgPath, "plugins", "pin", "pemdir")
	wantPins := filepath.Join(dir, "st", "plugins.lock.json")
	if code != 0 || !strings.Contains(out, wantPins) {
		t.Fatalf("plugins pin with state.path: code %d\n%s%s\nwant the pins file %s", code, out, errOut, wantPins)
	}
	pinned := readFile(t, wantPins)
	if !strings.Contains(pinned, filepath.Join(plugins, "certfleet-plugin-pemdir")) {
		t.Fatalf("pinned another binary than the configured directory's:\n%s", pinned)
	}

	// plugins.pins_file wins over state.path; the advice names the --config it needs.
	writeFile(t, cfgPath, "version: v1\nstate: {path: st/state.db}\nplugins: {dirs: [plug], pins_file: trust/pins.json}\n")
	if code, _, errOut := runCLI(t, env, "--config", cfgPath, "plugins", "pin", "pemdir"); code != 0 {
		t.Fatal(errOut)
	}
	readFile(t, filepath.Join(dir, "trust", "pins.json"))
	if got := pinCommandFor(t, cfgPath); got != "certfleet --config "+cfgPath+" plugins pin" {
		t.Errorf("pin advice %q", got)
	}

	// $PATH is searched only when the configuration (or --plugin-search-path) allows it.
	writeFile(t, cfgPath, "version: v1\nstate: {path: st/state.db}\n")
	if code, out, _ := runCLI(t, env, "--config", cfgPath, "plugins", "list"); code != 0 || strings.Contains(out, "pemdir") {
		t.Fatalf("a plugin on $PATH was listed without plugins.search_path: code %d\n%s", code, out)
	}
	writeFile(t, cfgPath, "version: v1\nstate: {path: st/state.db}\nplugins: {search_path: true}\n")
	if code, out, _ := runCLI(t, env, "--config", cfgPath, "plugins", "list"); code != 0 || !strings.Contains(out, filepath.Join(pluginDir, "certfleet-plugin-pemdir")) {
		t.Fatalf("plugins.search_path: true, plugin on $PATH not listed: code %d\n%s", code, out)
	}

	// A configuration that does not load is an error, not a silent fallback to other pins.
	writeFile(t, cfgPath, "version: v1\nplugins: {dirz: [x]}\n")
	if code, _, errOut := runCLI(t, env, "--config", cfgPath, "plugins", "pin", "pemdir"); code != 2 || !strings.Contains(errOut, "dirz") {
		t.Fatalf("bad configuration: code %d, %s", code, errOut)
	}
}

func pinCommandFor(t *testing.T, cfgPath string) string {
	t.Helper()
	var got string
	app := newApp(io.Discard, io.Discard)
	app.Commands = append(app.Commands, &cli.Command{Name: "probe", Action: func(c *cli.Context) error { got = pinCommand(c); return nil }})
	if err := app.Run([]string{"certfleet", "--config", cfgPath, "probe"}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPluginsInstallVerifiesAndPins(t *testing.T) {
	bundle, dest := t.TempDir(), t.TempDir()
	copyBinary(t, filepath.Join(pluginDir, "certfleet-plugin-pemdir"), filepath.Join(bundle, "certfleet-plugin-pemdir"))
	sum := sha256.Sum256([]byte(readFile(t, filepath.Join(bundle, "certfleet-plugin-pemdir"))))
	writeFile(t, filepath.Join(bundle, "SHA256SUMS"), hex.EncodeToString(sum[:])+"  certfleet-plugin-pemdir\n")
	pins := filepath.Join(t.TempDir(), "pins.json")
	code, _, errOut := runCLI(t, nil, "--pins-file", pins, "--config", filepath.Join(t.TempDir(), "none"), "plugins", "install", "--dest", dest, bundle)
	if code != 2 || !strings.Contains(errOut, "none") {
		t.Fatalf("install with a missing --config: code %d %s", code, errOut)
	}
	code, out, errOut := runCLI(t, nil, "--pins-file", pins, "--plugin-dir", dest, "plugins", "install", bundle)
	if code != 0 || !strings.Contains(out, "installed pemdir to "+filepath.Join(dest, "certfleet-plugin-pemdir")) || !strings.Contains(readFile(t, pins), hex.EncodeToString(sum[:])) {
		t.Fatalf("plugins install: code %d\n%s%s", code, out, errOut)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func copyBinary(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestPluginsNewWritesTheTemplate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "acme")
	code, out, errOut := certfleet(t, "plugins", "new", "--dir", dir, "--module", "example.com/acme/adc", "acme-adc")
	if code != 0 {
		t.Fatalf("plugins new: code %d\n%s", code, errOut)
	}
	for _, f := range []string{"go.mod", "cmd/certfleet-plugin-acme-adc/main.go", "acmeadcsim/sim.go", "conformance_test.go", "plugin.go"} {
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
		"SKIPPED DeadlineEveryCall: Config.Stall is not set", "SKIPPED BadCredentials: the plugin declares authentication unsupported", " 0 failed"} {
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

func TestCompletionAndManComeFromTheCLIDefinition(t *testing.T) {
	code, man, errOut := certfleet(t, "man")
	if code != 0 || !strings.HasPrefix(man, ".nh\n.TH certfleet 1") {
		t.Fatalf("man: code %d %s\n%.200s", code, errOut, man)
	}
	for _, cmd := range newApp(io.Discard, io.Discard).Commands {
		if !cmd.Hidden && !strings.Contains(man, cmd.Name) {
			t.Errorf("the man page does not mention the %s command", cmd.Name)
		}
	}
	for shell, want := range map[string]string{"bash": "complete -o bashdefault -o default -F _certfleet certfleet", "zsh": "#compdef certfleet", "fish": "complete -c certfleet"} {
		if code, out, errOut := certfleet(t, "completion", shell); code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %s: code %d %s\n%.300s", shell, code, errOut, out)
		}
	}
	if code, _, errOut := certfleet(t, "completion", "tcsh"); code != 2 || !strings.Contains(errOut, "bash|zsh|fish") {
		t.Errorf("completion tcsh: code %d %s", code, errOut)
	}
	// The scripts ask certfleet for the words that may follow; that answer lists the subcommands.
	// (urfave/cli reads os.Args to tell a flag being completed from a command.)
	args := os.Args
	os.Args = []string{"certfleet", "plugins", "--generate-bash-completion"}
	defer func() { os.Args = args }()
	if code, out, _ := certfleet(t, "plugins", "--generate-bash-completion"); code != 0 || !strings.Contains(out, "install\n") {
		t.Errorf("plugins --generate-bash-completion: code %d %q", code, out)
	}
}

// Each vendor bundle ships plugins/<name>/dist/certfleet.yaml as its sample: it must validate cleanly.
func TestVendorSamplesValidate(t *testing.T) {
	samples, _ := filepath.Glob("../../plugins/*/dist/certfleet.yaml")
	if len(samples) < 3 {
		t.Fatalf("found %d vendor samples", len(samples))
	}
	for _, s := range samples {
		code, out, errOut := certfleet(t, "--config", s, "validate")
		if code != 0 || !strings.Contains(out, "configuration OK") || errOut != "" {
			t.Errorf("%s: code %d\n%s%s", s, code, out, errOut)
		}
	}
}

// TestFlagAfterArgumentsIsRefused: urfave/cli reads no flag after the first argument, so
// `run www --force` must not quietly run without --force, nor look for a certificate "--force".
func TestFlagAfterArgumentsIsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"run", "www", "--force"},
		{"plan", "www", "--force"},
		{"run", "www", "-q"},
		{"plugins", "test", "pemdir", "--target=lab.yaml"},
	} {
		code, _, stderr := certfleet(t, args...)
		if code != 2 || !strings.Contains(stderr, "put every flag before them") || !strings.Contains(stderr, args[len(args)-1]) {
			t.Errorf("%v: exit %d, %q; want exit 2 naming the misplaced flag", args, code, stderr)
		}
	}
	// A name that only starts with a dash is not a flag of the command: it reaches the command.
	code, _, stderr := certfleet(t, "--config", filepath.Join(t.TempDir(), "missing.yaml"), "run", "--", "-not-a-flag")
	if code == 0 || strings.Contains(stderr, "put every flag before them") {
		t.Errorf("a dash-named argument was refused as a flag: exit %d, %q", code, stderr)
	}
}
