package engine

import (
	"context"
	"errors"
	"runtime"
	"testing"
)

// Among the calls waiting, the best ranked starts first, whatever it waits for and whenever it
// came; a call whose device is busy does not keep a worker from the next one.
func TestSlotsStartTheBestRankedCallFirst(t *testing.T) {
	ctx := context.Background()
	s := newSlots(1)
	holding, err := s.acquire(ctx, nil, "device\x00a", 1, true, rank{0, 0})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan rank, 4)
	wait := func(key string, r rank) {
		release, err := s.acquire(ctx, nil, key, 1, true, r)
		if err != nil {
			t.Error(err)
			return
		}
		started <- r
		release()
	}
	queued := func(n int) { // until n calls wait
		for {
			s.mu.Lock()
			waiting := 0
			for _, queued := range []map[*pool]struct{}{s.queued, s.queuedWorker} {
				for p := range queued {
					waiting += len(p.waiting)
				}
			}
			s.mu.Unlock()
			if waiting == n {
				return
			}
			runtime.Gosched()
		}
	}
	go wait("device\x00c", rank{2, 0})
	queued(1)
	go wait("issuer\x00ca", rank{1, 1})
	queued(2)
	go wait("device\x00b", rank{1, 0})
	queued(3)
	holding()
	for _, want := range []rank{{1, 0}, {1, 1}, {2, 0}} {
		if got := <-started; got != want {
			t.Fatalf("started %v; want %v", got, want)
		}
	}
}

// A wait that ends (cancelled, or the run stopped) takes no slot with it.
func TestSlotsGiveUpCleanly(t *testing.T) {
	s := newSlots(1)
	holding, err := s.acquire(context.Background(), nil, "device\x00a", 1, true, rank{0, 0})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	close(stop)
	if _, err := s.acquire(context.Background(), stop, "device\x00b", 1, true, rank{0, 1}); !errors.Is(err, ErrStopped) {
		t.Fatalf("stopped wait: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.acquire(ctx, nil, "device\x00b", 1, true, rank{0, 1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	holding()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.workers != 1 || len(s.queued)+len(s.queuedWorker) != 0 || s.pools["device\x00a"].free != 1 || s.pools["device\x00b"].free != 1 {
		t.Fatalf("after the waits ended: %d workers free, %d pools queued", s.workers, len(s.queued)+len(s.queuedWorker))
	}
}

// A call to a CA account takes a slot of the account only: it starts while every worker is busy.
func TestSlotsCACallsTakeNoWorker(t *testing.T) {
	s := newSlots(1)
	holding, err := s.acquire(context.Background(), nil, "device\x00a", 1, true, rank{1, 0})
	if err != nil {
		t.Fatal(err)
	}
	defer holding()
	release, err := s.acquire(context.Background(), nil, "issuer\x00ca", 1, false, rank{2, 0})
	if err != nil {
		t.Fatal(err)
	}
	release()
}
