package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state"
)

// heldErr is a claim held elsewhere, expiring at until (what core/lease returns).
type heldErr struct{ until time.Time }

func (h heldErr) Error() string              { return "held until " + h.until.String() }
func (h heldErr) HeldUntil() time.Time       { return h.until }
func (h heldErr) Is(target error) bool       { return target == state.ErrClaimedElsewhere }
func atSecond(s int) time.Time               { return time.Unix(int64(s), 0) }
func after(start time.Time, s int) time.Time { return start.Add(time.Duration(s) * time.Second) }

// A run leaves a device to another instance only when that instance is alive (it keeps renewing
// its claim) and has held the device for the whole wait; a dead holder's claim, which stops moving,
// is waited for until it expires and can be taken over.
func TestHeldDeviceIsLeftOnlyToALiveHolder(t *testing.T) {
	start := time.Unix(1000, 0)
	wait := 10 * time.Second

	dead := &heldClaim{firstSeen: start}
	for s := 0; s <= 60; s++ {
		if dead.giveUp(heldErr{until: atSecond(1003)}, after(start, s), wait) {
			t.Fatalf("gave up after %ds on a holder that stopped renewing", s)
		}
	}

	live := &heldClaim{firstSeen: start}
	gaveUp := -1
	for s := 0; s <= 30; s++ {
		// The holder renews every 3 seconds.
		if live.giveUp(heldErr{until: atSecond(1000 + 3*(s/3) + 9)}, after(start, s), wait) {
			gaveUp = s
			break
		}
	}
	if gaveUp < 10 || gaveUp > 13 {
		t.Fatalf("gave up on a live holder after %ds; want just after the %s wait", gaveUp, wait)
	}

	unknown := &heldClaim{firstSeen: start}
	if unknown.giveUp(errors.New("held"), after(start, 5), wait) || !unknown.giveUp(errors.New("held"), after(start, 10), wait) {
		t.Fatal("a holder whose claim's expiry is unknown is not left to after the wait")
	}
}
