//go:build !linux

package pluginhost

import "os/exec"

// setParentDeathSignal has no portable equivalent outside Linux; Close still ends every plugin.
func setParentDeathSignal(*exec.Cmd) {}
