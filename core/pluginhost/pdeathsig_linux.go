package pluginhost

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel end a plugin when the host dies without shutting it down
// (SIGKILL, a crash), so no orphan plugin process is left behind.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
