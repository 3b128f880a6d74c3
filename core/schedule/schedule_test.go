package schedule

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/robfig/cron/v3"
)

func mustParse(t *testing.T, expr string) cron.Schedule {
	t.Helper()
	s, err := cron.ParseStandard(expr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNextHonoursTimeZoneAndJitter(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	s := Schedule{Cron: mustParse(t, "17 3 * * *"), Location: ny, Jitter: 30 * time.Minute, Rand: func(n int64) int64 { return n / 3 }}
	now := time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC) // 07:00 in New York, the day before DST starts
	got := s.Next(now)
	want := time.Date(2026, 3, 8, 3, 17, 0, 0, ny).Add(10 * time.Minute)
	if !got.Equal(want) {
		t.Fatalf("next = %s; want %s (03:17 New York, after the DST change, plus 10m jitter)", got, want)
	}
	if got.UTC().Hour() != 7 {
		t.Fatalf("03:17 EDT is 07:17 UTC, got %s", got.UTC())
	}
}

// TestLoopRunsOnScheduleAndReloads drives the loop with a fake clock: nothing runs before the
// scheduled time, a run happens when the clock reaches it, and a reload between runs changes the
// schedule.
func TestLoopRunsOnScheduleAndReloads(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(start)
	var mu sync.Mutex
	sched := Schedule{Cron: mustParse(t, "0 * * * *"), Location: time.UTC}
	var runs []time.Time
	planned := make(chan time.Time, 10)
	ran := make(chan struct{}, 10)
	loop := &Loop{
		Clock:    clock,
		Schedule: func() Schedule { mu.Lock(); defer mu.Unlock(); return sched },
		Run: func(<-chan struct{}) {
			mu.Lock()
			runs = append(runs, clock.Now())
			mu.Unlock()
			ran <- struct{}{}
		},
		Reload: func() {
			mu.Lock()
			sched.Cron = mustParse(t, "30 * * * *")
			mu.Unlock()
		},
		Planned: func(t time.Time) { planned <- t },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reload, stop := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() { loop.Serve(ctx, reload, stop); close(done) }()

	if p := <-planned; !p.Equal(start.Add(time.Hour)) {
		t.Fatalf("first run planned at %s", p)
	}
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Minute)
	select {
	case <-ran:
		t.Fatal("ran before the scheduled time")
	case <-time.After(50 * time.Millisecond):
	}
	clock.Advance(time.Minute)
	<-ran
	if p := <-planned; !p.Equal(start.Add(2 * time.Hour)) {
		t.Fatalf("second run planned at %s", p)
	}
	reload <- struct{}{}
	if p := <-planned; !p.Equal(start.Add(time.Hour + 30*time.Minute)) {
		t.Fatalf("after reload, next run planned at %s; want 01:30", p)
	}
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Minute)
	<-ran
	<-planned
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(runs) != 2 || !runs[0].Equal(start.Add(time.Hour)) || !runs[1].Equal(start.Add(90*time.Minute)) {
		t.Fatalf("runs at %v", runs)
	}
}
