// Package bindir finds the directory of the running certfleet binary, where a bundle installs
// what certfleet starts (the plugins, the sops helper) beside it.
package bindir

import (
	"os"
	"path/filepath"
)

// Dir is the running binary's directory, after following symlinks (a bundle linked into
// /usr/local/bin still finds its plugins); false when the system cannot say.
func Dir() (string, bool) {
	exe, err := os.Executable()
	if err != nil {
		return "", false
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	return filepath.Dir(exe), true
}
