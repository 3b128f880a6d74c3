package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/hashicorp/go-hclog"
)

// TestStopSignalsTwoStages: the first stop request closes stop and leaves the work's context
// alive; the stop timeout, or a second signal, ends it.
func TestStopSignalsTwoStages(t *testing.T) {
	for _, c := range []struct {
		name   string
		second func(t *testing.T)
	}{
		{"timeout", func(*testing.T) {}},
		{"second-signal", func(t *testing.T) {
			if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs conformance.LogBuffer
			parent, cancel := context.WithCancel(context.Background())
			defer cancel()
			timeout := time.Hour
			if c.name == "timeout" {
				timeout = 50 * time.Millisecond
			}
			signals, release := watchStopSignals(parent, hclog.New(&hclog.LoggerOptions{Output: &logs}), func() time.Duration { return timeout }, false)
			defer release()

			if c.name == "timeout" {
				cancel() // main's context ends on the first SIGTERM
			} else if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-signals.stop:
			case <-time.After(10 * time.Second):
				t.Fatal("the first stop request did not close stop")
			}
			if err := signals.ctx.Err(); err != nil {
				t.Fatalf("the first stop request ended the work's context: %v", err)
			}
			c.second(t)
			select {
			case <-signals.ctx.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the hard stop did not end the work's context")
			}
			if !strings.Contains(logs.String(), "cancelling the calls in flight") {
				t.Errorf("the hard stop was not logged:\n%s", logs.String())
			}
		})
	}
}
