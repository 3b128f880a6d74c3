package state

import (
	"context"
	"errors"
)

// ErrFenced is returned by a write made under a claim that another instance has since taken over:
// the writer must stop before touching the device again.
var ErrFenced = errors.New("the claim on this work was taken over by another certfleet instance")

// Fence is a claim (see core/lease) that a shared store checks in the same transaction as each
// write of an operation or deployment: the write happens only if the claim named Name still
// carries Token. Single-host stores (SQLite, with its file lock) ignore it.
type Fence struct {
	Name  string
	Token int64
}

type fenceKey struct{}

// WithFence returns ctx carrying f; the store's writes made with it are fenced.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceOf returns the fence ctx carries.
func FenceOf(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// ErrClaimedElsewhere says another live instance holds the claim on a device.
var ErrClaimedElsewhere = errors.New("another certfleet instance is working on it")

// OutcomeSkipped is the result of a certificate whose device another live instance kept claimed
// for the whole run; that instance records its own result.
const OutcomeSkipped Outcome = "skipped"
