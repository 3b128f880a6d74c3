package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// stopSignals is how `run` and `daemon` stop, the same for both: the first SIGTERM or Ctrl-C
// (or the end of the parent context, which main ends on the same signals) asks the work to stop
// at a safe point: the step in flight finishes and is recorded, what is bound is committed,
// nothing new starts. A second signal, or the stop timeout after the first, cancels the calls in
// flight; the next run resumes them.
type stopSignals struct {
	// ctx ends only on a hard stop: work and its recording run under it, so a first signal
	// does not cut a device call or the state write that follows it.
	ctx context.Context
	// stop is closed on the first stop request.
	stop <-chan struct{}
	// reload receives SIGHUP when watchStopSignals was asked to pass it on.
	reload <-chan struct{}
}

// watchStopSignals starts watching; timeout is read at the first stop request (a daemon's
// reload may change it). The returned function stops watching and releases the timer.
func watchStopSignals(parent context.Context, log hclog.Logger, timeout func() time.Duration, withReload bool) (*stopSignals, func()) {
	ctx, hardStop := context.WithCancel(context.WithoutCancel(parent))
	stop, reload := make(chan struct{}), make(chan struct{}, 1)
	sigs := make(chan os.Signal, 4)
	watched := []os.Signal{syscall.SIGTERM, os.Interrupt}
	if withReload {
		watched = append(watched, syscall.SIGHUP)
	}
	signal.Notify(sigs, watched...)

	var (
		mu        sync.Mutex
		hardTimer *time.Timer
		once      sync.Once
	)
	requestStop := func(why string) {
		once.Do(func() {
			wait := timeout()
			log.Info("stopping: the step in flight finishes and is recorded, nothing new starts", "signal", why, "stop_timeout", wait)
			close(stop)
			mu.Lock()
			hardTimer = time.AfterFunc(wait, func() {
				log.Warn("stop_timeout reached: cancelling the calls in flight; the next run resumes them")
				hardStop()
			})
			mu.Unlock()
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		parentDone := parent.Done()
		stops := 0
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGHUP {
					select {
					case reload <- struct{}{}:
					default: // a reload is already queued
					}
					continue
				}
				if stops++; stops > 1 {
					log.Warn("second stop signal: cancelling the calls in flight; the next run resumes them")
					hardStop()
					continue
				}
				requestStop(s.String())
			case <-parentDone:
				// main's signal context ends on the same signal counted above; only signals
				// received here count towards a second, hard stop.
				parentDone = nil
				requestStop("terminated")
			case <-ctx.Done():
				return
			}
		}
	}()
	release := func() {
		signal.Stop(sigs)
		hardStop()
		<-done
		mu.Lock()
		if hardTimer != nil {
			hardTimer.Stop()
		}
		mu.Unlock()
	}
	return &stopSignals{ctx: ctx, stop: stop, reload: reload}, release
}
