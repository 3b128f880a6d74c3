package engine

import (
	"container/heap"
	"context"
	"sync"
)

// rank orders the calls waiting for a slot: the device's place in the run first, so that a
// device's certificates are worked together and it reaches its Commit early, then the
// certificate's place on its device. Lower goes first.
type rank struct{ device, cert int }

func (r rank) before(o rank) bool {
	return r.device < o.device || (r.device == o.device && r.cert < o.cert)
}

// slots hands out a run's concurrency. A call to a device starts when a worker and a slot of the
// device are free at once, a call to a CA when a slot of the CA account is; among the calls that
// could start, the best ranked goes first. Slots are taken for one call and given back right after
// it, so a certificate whose order waits at the CA holds none, and a call queued for a busy device
// holds no worker meanwhile. CA calls take no worker: the account's own limit protects the CA, and
// the workers are left to the devices.
type slots struct {
	mu      sync.Mutex
	workers int // free workers
	pools   map[string]*pool
	// queued are the pools of calls that need no worker (CA accounts: a few) with calls waiting;
	// ready are the pools of calls that need a worker (devices: a run's plan queues an Inventory
	// on every device at once) with calls waiting and a slot free, best-ranked first call first.
	queued map[*pool]struct{}
	ready  readyPools
}

// pool is the slots of one device or CA account.
type pool struct {
	free int
	// worker: a call also needs one of the workers.
	worker  bool
	waiting waiters
	// readyIndex is the pool's place in slots.ready, -1 when not there.
	readyIndex int
}

func newSlots(workers int) *slots {
	return &slots{workers: workers, pools: map[string]*pool{}, queued: map[*pool]struct{}{}}
}

// changedLocked puts p where it belongs after its free slots or its waiting calls changed.
func (s *slots) changedLocked(p *pool) {
	if !p.worker {
		if len(p.waiting) > 0 {
			s.queued[p] = struct{}{}
		} else {
			delete(s.queued, p)
		}
		return
	}
	switch ready := p.free > 0 && len(p.waiting) > 0; {
	case ready && p.readyIndex < 0:
		heap.Push(&s.ready, p)
	case ready:
		heap.Fix(&s.ready, p.readyIndex)
	case p.readyIndex >= 0:
		heap.Remove(&s.ready, p.readyIndex)
	}
}

// acquire waits until a slot of the pool named key (size slots; worker: a worker too; both fixed
// the first time the key is used) is free and no better-ranked call waits for it; it returns the
// release.
// It gives up with ctx's error when ctx ends, and with ErrStopped when stop is closed first (a nil
// stop never closes): a call that has not started is the safest point to stop at.
func (s *slots) acquire(ctx context.Context, stop <-chan struct{}, key string, size int, worker bool, r rank) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	p := s.pools[key]
	if p == nil {
		p = &pool{free: max(size, 1), worker: worker, readyIndex: -1}
		s.pools[key] = p
	}
	w := &waiter{rank: r, ready: make(chan struct{})}
	heap.Push(&p.waiting, w)
	s.changedLocked(p)
	s.dispatchLocked()
	s.mu.Unlock()
	release = func() { s.release(p) }
	var cause error
	select {
	case <-w.ready:
		return release, nil
	case <-ctx.Done():
		cause = ctx.Err()
	case <-stop:
		cause = ErrStopped
	}
	{
		s.mu.Lock()
		granted := w.granted
		if !granted {
			heap.Remove(&p.waiting, w.index)
			s.changedLocked(p)
		}
		s.mu.Unlock()
		if granted {
			release()
		}
		return nil, cause
	}
}

func (s *slots) release(p *pool) {
	s.mu.Lock()
	p.free++
	if p.worker {
		s.workers++
	}
	s.changedLocked(p)
	s.dispatchLocked()
	s.mu.Unlock()
}

// dispatchLocked starts the best-ranked waiting calls for as long as any can start.
func (s *slots) dispatchLocked() {
	for {
		var best *pool
		for p := range s.queued {
			if p.free > 0 && (best == nil || p.waiting[0].rank.before(best.waiting[0].rank)) {
				best = p
			}
		}
		if s.workers > 0 && len(s.ready) > 0 {
			if p := s.ready[0]; best == nil || p.waiting[0].rank.before(best.waiting[0].rank) {
				best = p
			}
		}
		if best == nil {
			return
		}
		w := heap.Pop(&best.waiting).(*waiter)
		best.free--
		if best.worker {
			s.workers--
		}
		s.changedLocked(best)
		w.granted = true
		close(w.ready)
	}
}

// readyPools is a heap of pools, the one whose first waiting call is best ranked first.
type readyPools []*pool

func (h readyPools) Len() int           { return len(h) }
func (h readyPools) Less(i, j int) bool { return h[i].waiting[0].rank.before(h[j].waiting[0].rank) }
func (h readyPools) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].readyIndex, h[j].readyIndex = i, j
}
func (h *readyPools) Push(x any) {
	p := x.(*pool)
	p.readyIndex = len(*h)
	*h = append(*h, p)
}
func (h *readyPools) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	p.readyIndex = -1
	*h = old[:len(old)-1]
	return p
}

// waiter is a call waiting for its slots.
type waiter struct {
	rank    rank
	ready   chan struct{}
	granted bool
	index   int
}

// waiters is a heap of waiting calls, best ranked first.
type waiters []*waiter

func (h waiters) Len() int           { return len(h) }
func (h waiters) Less(i, j int) bool { return h[i].rank.before(h[j].rank) }
func (h waiters) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *waiters) Push(x any) {
	w := x.(*waiter)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *waiters) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return w
}
