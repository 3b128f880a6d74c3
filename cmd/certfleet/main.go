// Command certfleet keeps TLS certificates alive on network appliances.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	_ "time/tzdata" // daemon.time_zone works where the host has no zoneinfo (the OCI image, Windows)

	// TLS to CAs and devices verifies where the host has no CA roots (the OCI image is built
	// from scratch); a host's own roots, when it has any, are used instead.
	_ "golang.org/x/crypto/x509roots/fallback"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	setGCPercent()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// gcPercent is certfleet's default GOGC. Most of its heap is what a command loads and keeps to
// the end (the configuration, the state's deployments, the devices' inventories), so the
// runtime's default of 100, which lets the heap reach twice the live data before collecting,
// mostly adds peak memory: at 10,000 certificates 50 takes 10 MiB off a plan's peak for a few
// percent more collection work. A GOGC in the environment still decides.
const gcPercent = 50

func setGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	if err := app.RunContext(ctx, args); err != nil {
		if ec, ok := err.(exitCoder); ok {
			if msg := ec.Error(); msg != "" {
				fmt.Fprintln(stderr, "certfleet:", msg)
			}
			return ec.ExitCode()
		}
		fmt.Fprintln(stderr, "certfleet:", err)
		return 1
	}
	return 0
}

type exitCoder interface {
	error
	ExitCode() int
}
