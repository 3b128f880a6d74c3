package engine

import (
	"context"
	"sync"

	"github.com/certfleet/certfleet/core/state"
)

// settledBatchSize is how many settled results a run gathers before it records them in one
// transaction: large enough that a transaction's fixed cost (a commit, a sync) is shared by many
// rows, small enough that a 10,000-certificate run records most of them while its later devices
// are still being inventoried.
const settledBatchSize = 1000

// settledRecorder records the results of certificates with nothing to do on their device (a
// nothing-due run's every certificate) in batches, in the background, as their devices are
// planned: the run then ends soon after its last inventory instead of writing them all at its
// end. add never waits for the database.
type settledRecorder struct {
	ctx   context.Context
	store state.Store
	size  int

	mu      sync.Mutex
	pending []state.Result
	all     []state.Result
	closed  bool
	wake    chan struct{} // one token: pending grew to a batch, or close
	done    chan struct{}
	err     error // the first failure, read after done
}

func newSettledRecorder(ctx context.Context, store state.Store, size, expected int) *settledRecorder {
	r := &settledRecorder{ctx: ctx, store: store, size: size, all: make([]state.Result, 0, expected),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *settledRecorder) add(rs []state.Result) {
	if len(rs) == 0 {
		return
	}
	r.mu.Lock()
	r.pending = append(r.pending, rs...)
	r.all = append(r.all, rs...)
	full := len(r.pending) >= r.size
	r.mu.Unlock()
	if full {
		r.signal()
	}
}

func (r *settledRecorder) signal() {
	select {
	case r.wake <- struct{}{}:
	default: // a wake-up is already due
	}
}

func (r *settledRecorder) loop() {
	defer close(r.done)
	for range r.wake {
		r.mu.Lock()
		batch, closed := r.pending, r.closed
		if len(batch) < r.size && !closed {
			r.mu.Unlock()
			continue
		}
		r.pending = nil
		r.mu.Unlock()
		if len(batch) > 0 {
			if err := r.store.RecordResults(r.ctx, batch); err != nil && r.err == nil {
				r.err = err
			}
		}
		if closed {
			return
		}
	}
}

// close records what is still pending and returns every result added, in the order added, with
// the first recording error.
func (r *settledRecorder) close() ([]state.Result, error) {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.signal()
	<-r.done
	return r.all, r.err
}
