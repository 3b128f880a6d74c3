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
