package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/core/state/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openStore(t *testing.T) *state.Postgres {
	t.Helper()
	s, err := state.OpenPostgres(context.Background(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestClaimIsExclusiveUntilItExpires(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	a, b := New(s.Pool(), "a", 500*time.Millisecond), New(s.Pool(), "b", 500*time.Millisecond)
	ca, err := a.Claim(ctx, "device/web1")
	if err != nil || ca.Token != 1 {
		t.Fatalf("first claim: %+v, %v", ca, err)
	}
	_, err = b.Claim(ctx, "device/web1")
	var held *HeldError
	if !errors.As(err, &held) || held.Holder != "a" || !errors.Is(err, state.ErrClaimedElsewhere) {
		t.Fatalf("second claim: %v, want held by a", err)
	}
	if _, err := b.Claim(ctx, "device/web2"); err != nil {
		t.Fatalf("another device: %v", err)
	}
	time.Sleep(600 * time.Millisecond) // a never renewed: its claim expires
	cb, err := b.Claim(ctx, "device/web1")
	if err != nil || cb.Token != 2 {
		t.Fatalf("takeover after expiry: %+v, %v; want token 2", cb, err)
	}
}

// An instance whose claim was taken over cannot record another step: the store checks the token
// in the write's own transaction.
func TestTakenOverClaimIsFencedOnWrite(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	a, b := New(s.Pool(), "a", 300*time.Millisecond), New(s.Pool(), "b", time.Minute)
	ca, err := a.Claim(ctx, "device/web1")
	if err != nil {
		t.Fatal(err)
	}
	actx := state.WithFence(ctx, ca.Fence())
	op := &state.Operation{ID: "op1", Certificate: "www", Device: "web1", Step: state.StepStarted}
	if err := s.CreateOperation(actx, op); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	cb, err := b.Claim(ctx, "device/web1")
	if err != nil {
		t.Fatal(err)
	}
	op.Step, op.SubmitState = state.StepCSR, state.SubmitSending
	if err := s.SaveOperation(actx, op); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("write under the lost claim: %v, want ErrFenced", err)
	}
	if err := s.CompleteOperation(actx, op, state.Deployment{Certificate: "www"}); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("completion under the lost claim: %v, want ErrFenced", err)
	}
	if err := s.SaveDeployment(actx, state.Deployment{Certificate: "www"}); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("deployment under the lost claim: %v, want ErrFenced", err)
	}
	got, _ := s.OpenOperation(ctx, "www")
	if got == nil || got.Step != state.StepStarted {
		t.Fatalf("the fenced write changed the record: %+v", got)
	}
	bctx := state.WithFence(ctx, cb.Fence())
	got.Step = state.StepCSR
	if err := s.SaveOperation(bctx, got); err != nil {
		t.Fatalf("write under the new claim: %v", err)
	}
	// A fence naming a claim that was never taken fails too.
	if err := s.SaveOperation(state.WithFence(ctx, state.Fence{Name: "device/none", Token: 1}), got); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("write under an unknown claim: %v", err)
	}
}

func TestKeptClaimOutlivesItsTTLAndReportsATakeover(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	ttl := 600 * time.Millisecond
	a, b := New(s.Pool(), "a", ttl), New(s.Pool(), "b", ttl)
	ca, err := a.Claim(ctx, "device/web1")
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan error, 1)
	ca.Keep(func(err error) { lost <- err })
	defer ca.Release(ctx)
	time.Sleep(3 * ttl)
	if _, err := b.Claim(ctx, "device/web1"); !errors.Is(err, state.ErrClaimedElsewhere) {
		t.Fatalf("claim kept alive was taken: %v", err)
	}
	// As if a's host paused longer than the TTL: the claim expires and b takes it over.
	if _, err := s.Pool().Exec(ctx, `UPDATE leases SET expires_at = now() WHERE name = 'device/web1'`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Claim(ctx, "device/web1"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-lost:
		t.Logf("a was told: %v", err)
	case <-time.After(2 * ttl):
		t.Fatal("the holder was not told that its claim was taken over")
	}
}

func TestReleaseFreesTheDeviceAtOnce(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	a, b := New(s.Pool(), "a", time.Hour), New(s.Pool(), "b", time.Hour)
	claimed, release, err := a.ClaimDevice(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := state.FenceOf(claimed); !ok || f.Name != "device/web1" {
		t.Fatalf("claimed context carries no fence: %+v", f)
	}
	release()
	if claimed.Err() == nil {
		t.Fatal("the claimed context outlives the release")
	}
	if _, _, err := b.ClaimDevice(ctx, "web1"); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
}
