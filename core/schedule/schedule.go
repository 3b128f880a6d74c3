// Package schedule decides when the daemon runs: a cron schedule read in a time zone, plus a
// random delay (jitter) so that many hosts with the same schedule do not reach a CA at once.
// The clock is injected, so the loop is tested without waiting.
package schedule

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/robfig/cron/v3"
)

// Schedule is when to run.
type Schedule struct {
	Cron     cron.Schedule
	Location *time.Location
	Jitter   time.Duration
	// Rand returns a number in [0, n) (math/rand/v2 when nil); tests make it predictable.
	Rand func(n int64) int64
}

// Next is the first run after now: the next cron time in the schedule's time zone, plus jitter.
func (s Schedule) Next(now time.Time) time.Time {
	loc := s.Location
	if loc == nil {
		loc = time.Local
	}
	next := s.Cron.Next(now.In(loc))
	if s.Jitter > 0 {
		r := s.Rand
		if r == nil {
			r = rand.Int64N
		}
		next = next.Add(time.Duration(r(int64(s.Jitter))))
	}
	return next
}

// Loop runs a job on a schedule until it is stopped. Reload requests are handled between runs,
// never during one.
type Loop struct {
	Clock clockwork.Clock
	// Schedule returns the current schedule (it changes when the configuration is reloaded).
	Schedule func() Schedule
	// Run is one run; it returns when the run is over. stop is closed when the loop is asked to
	// stop, so the run can end at a safe point.
	Run func(stop <-chan struct{})
	// Reload is called for each reload request, between runs.
	Reload func()
	// Planned is told each next run time (for metrics and /healthz).
	Planned func(time.Time)
	// RunAtStart runs once before waiting for the first scheduled time.
	RunAtStart bool
}

// Serve runs the loop until stop is closed or ctx ends.
func (l *Loop) Serve(ctx context.Context, reload <-chan struct{}, stop <-chan struct{}) {
	if l.RunAtStart {
		l.Run(stop)
	}
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		now := l.Clock.Now()
		next := l.Schedule().Next(now)
		if l.Planned != nil {
			l.Planned(next)
		}
		timer := l.Clock.NewTimer(next.Sub(now))
		select {
		case <-timer.Chan():
			l.Run(stop)
		case <-reload:
			timer.Stop()
			if l.Reload != nil {
				l.Reload()
			}
		case <-stop:
			timer.Stop()
			return
		case <-ctx.Done():
			timer.Stop()
			return
		}
	}
}
