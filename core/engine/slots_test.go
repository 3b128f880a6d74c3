package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
			for _, p := range s.pools {
				waiting += len(p.waiting)
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
	if s.workers != 1 || len(s.queued)+len(s.ready) != 0 || s.pools["device\x00a"].free != 1 || s.pools["device\x00b"].free != 1 {
		t.Fatalf("after the waits ended: %d workers free, %d pools queued", s.workers, len(s.queued)+len(s.ready))
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

// With calls waiting on many devices at once (a run's plan queues an Inventory on every device),
// they still start strictly best ranked first, whatever the order they came in.
func TestSlotsManyDevicesStartInRankOrder(t *testing.T) {
	const devices, perDevice = 12, 4
	ctx := context.Background()
	s := newSlots(1)
	holding, err := s.acquire(ctx, nil, "device\x00held", 1, true, rank{-1, 0})
	if err != nil {
		t.Fatal(err)
	}
	var ranks []rank
	for d := 0; d < devices; d++ {
		for c := 0; c < perDevice; c++ {
			ranks = append(ranks, rank{device: (d * 7) % devices, cert: c - 1})
		}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(ranks), func(i, j int) { ranks[i], ranks[j] = ranks[j], ranks[i] })
	started := make(chan rank, len(ranks))
	for _, r := range ranks {
		go func() {
			release, err := s.acquire(ctx, nil, fmt.Sprintf("device\x00%d", r.device), 1, true, r)
			if err != nil {
				t.Error(err)
				return
			}
			started <- r
			release()
		}()
	}
	for {
		s.mu.Lock()
		waiting := 0
		for _, p := range s.pools {
			waiting += len(p.waiting)
		}
		s.mu.Unlock()
		if waiting == len(ranks) {
			break
		}
		runtime.Gosched()
	}
	holding()
	var last rank
	for i := range ranks {
		got := <-started
		if i > 0 && got.before(last) {
			t.Fatalf("call %d started with rank %v after %v", i, got, last)
		}
		last = got
	}
}
