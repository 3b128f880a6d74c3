//go:build unix

package engine

import (
	"syscall"
	"testing"
	"time"
)

// reportCPU reports this process's CPU time (user and system) per operation: on a shared machine
// the wall clock measures the neighbours as much as the code. The plugin process is not counted.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() { b.ReportMetric(float64((cpuTime()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op") }
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()) + time.Duration(ru.Stime.Nano())
}
