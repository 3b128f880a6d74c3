// Command certfleet keeps TLS certificates alive on network appliances.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first SIGTERM/SIGINT stops the run at the next safe point: a call in flight that
		// changes something (an order, a key, a commit) finishes and is recorded first. The
		// handler is then removed, so a second signal stops the process at once; the state
		// still tells the next run where to resume.
		if _, ok := <-signals; !ok {
			return
		}
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		fmt.Fprintln(os.Stderr, "certfleet: stopping after the calls in flight; send the signal again to stop now")
		cancel()
	}()
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	signal.Stop(signals)
	close(signals)
	cancel()
	os.Exit(code)
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
