// Package sopstest builds the certfleet-sops helper for the tests of packages that read or write
// sops files through package secret, so that they run it as the real process it is in production.
//
// It does not import package secret, so that secret's own tests can use it.
package sopstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// HelperEnv is secret.SopsHelperEnv (package secret's tests check that they agree).
const HelperEnv = "CERTFLEET_SOPS_HELPER"

// Build compiles the certfleet-sops helper into dir and returns its path.
func Build(dir string) (string, error) {
	out := filepath.Join(dir, "certfleet-sops")
	cmd := exec.Command("go", "build", "-o", out, "github.com/certfleet/certfleet/cmd/certfleet-sops")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build certfleet-sops: %w", err)
	}
	return out, nil
}

// Main is a TestMain: it builds the helper into a temporary directory, points HelperEnv at it,
// runs the tests, removes the directory and exits.
func Main(m interface{ Run() int }) {
	dir, err := os.MkdirTemp("", "certfleet-sops-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	path, err := Build(dir)
	if err == nil {
		err = os.Setenv(HelperEnv, path)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
