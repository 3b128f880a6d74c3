package conformance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildPlugin compiles the Go main package pkg (an import path or ./relative path) into dir and
// returns the binary's path, named certfleet-plugin-<name> after the package directory. Tests call
// it from TestMain so the plugin runs as the real process it is in production.
func BuildPlugin(dir, pkg string) (string, error) {
	name := filepath.Base(strings.TrimSuffix(pkg, "/"))
	if !strings.HasPrefix(name, "certfleet-plugin-") {
		return "", fmt.Errorf("plugin main package directory %q must be named certfleet-plugin-<name>", name)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	return out, nil
}

// Main is a TestMain for a plugin's tests: it builds the plugin main package pkg into a temporary
// directory, stores the binary's path in *path, runs the tests, removes the directory and exits.
func Main(m interface{ Run() int }, pkg string, path *string) {
	dir, err := os.MkdirTemp("", "certfleet-plugin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *path, err = BuildPlugin(dir, pkg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
