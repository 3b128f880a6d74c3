package template_test

import (
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/plugins/sdk/template"
)

// repoRoot is the certfleet checkout these tests run in.
func repoRoot(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestGeneratedPluginPassesGoTest writes a plugin as `certfleet plugins new` does, outside this
// module, and runs `go vet` and `go test` on it as generated: it builds, and its simulator passes
// the whole conformance suite.
func TestGeneratedPluginPassesGoTest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a new module")
	}
	dir := t.TempDir()
	files, err := template.Generate(template.Options{
		Name: "acme-lb", Module: "example.com/acme/certfleet-plugin-acme-lb", Dir: dir, SDKDir: repoRoot(t),
		GoVersion: strings.TrimPrefix(runtime.Version(), "go"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"go.mod", "cmd/certfleet-plugin-acme-lb/main.go", "acmelbsim/sim.go", "conformance_test.go"} {
		found := false
		for _, f := range files {
			found = found || f == want
		}
		if !found {
			t.Errorf("generated files %v lack %s", files, want)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "template/skeleton") || strings.Contains(string(data), `Name: "skeleton"`) {
			t.Errorf("%s still refers to the template", f)
		}
	}
	run := func(args ...string) {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s in the generated plugin: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("mod", "tidy")
	run("vet", "./...")
	run("test", "./...")
}

func TestGenerateRefusesBadInput(t *testing.T) {
	nonEmpty := t.TempDir()
	if err := os.WriteFile(filepath.Join(nonEmpty, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		opts template.Options
		want string
	}{
		{template.Options{Name: "Acme", Module: "example.com/a", Dir: t.TempDir()}, `plugin name "Acme"`},
		{template.Options{Name: "skeleton", Module: "example.com/a", Dir: t.TempDir()}, `plugin name "skeleton"`},
		{template.Options{Name: "acme", Module: "", Dir: t.TempDir()}, "module path"},
		{template.Options{Name: "acme", Module: "example.com/a", Dir: nonEmpty}, "is not empty"},
	} {
		if _, err := template.Generate(c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Generate(%+v): %v, want an error containing %q", c.opts, err, c.want)
		}
	}
}

// TestGenerateInsideCertfleet: a plugin written into certfleet's own tree (plugins/<name>, as the
// HAProxy example was) is a package of the module, not a module of its own, and its main.go names
// the package it imports.
func TestGenerateInsideCertfleet(t *testing.T) {
	dir := t.TempDir()
	files, err := template.Generate(template.Options{Name: "acme-lb", Module: "github.com/certfleet/certfleet/plugins/acme-lb", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f == "go.mod" {
			t.Error("a go.mod inside certfleet's module cuts the plugin out of `go build ./...`")
		}
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if formatted, err := format.Source(data); err != nil || string(formatted) != string(data) {
			t.Errorf("%s is not gofmt-clean (%v)", f, err)
		}
	}
	main, err := os.ReadFile(filepath.Join(dir, "cmd/certfleet-plugin-acme-lb/main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(main), "\tacmelb \"github.com/certfleet/certfleet/plugins/acme-lb\"") || !strings.Contains(string(main), "acmelb.New()") {
		t.Errorf("main.go:\n%s", main)
	}
	if _, err := os.Stat(filepath.Join(dir, "plugin.go")); err != nil {
		t.Errorf("the plugin's code is not in plugin.go: %v", err)
	}
}
