package scm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
)

// An enroll interrupted while its answer is in flight (SIGTERM cancels the run's context) may have
// placed the order: its outcome is unknown, never "not placed".
func TestEnrollInterruptedInFlightIsAnUnknownOutcome(t *testing.T) {
	sim := startSim(t, nil)
	i, _ := newClient(t, sim, "oauth2")
	warm, _ := request(t, "warm", "a.example.com")
	if _, err := i.Submit(context.Background(), warm); err != nil { // token and profiles
		t.Fatal(err)
	}
	sim.SetLatency(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := request(t, "interrupted", "a.example.com")
	_, err := i.Submit(ctx, req)
	if !errors.Is(err, issuer.ErrOutcomeUnknown) || errors.Is(err, issuer.ErrNotPlaced) {
		t.Fatalf("interrupted enroll: %v; want ErrOutcomeUnknown and not ErrNotPlaced", err)
	}
}

// An enroll SCM refuses, or one that never left, proves no order exists.
func TestRefusedEnrollIsNotPlaced(t *testing.T) {
	sim := startSim(t, nil)
	i, _ := newClient(t, sim, "oauth2")
	req, _ := request(t, "bad", "a.example.com")
	req.CSRPEM = "not a CSR"
	if _, err := i.Submit(context.Background(), req); !errors.Is(err, issuer.ErrNotPlaced) || errors.Is(err, issuer.ErrOutcomeUnknown) {
		t.Fatalf("refused enroll: %v; want ErrNotPlaced", err)
	}
	req, _ = request(t, "bad-options", "a.example.com")
	req.Options = map[string]any{"cert_type": "no such profile", "term": 365}
	if _, err := i.Submit(context.Background(), req); !errors.Is(err, issuer.ErrNotPlaced) {
		t.Fatalf("enroll with an unknown profile: %v; want ErrNotPlaced", err)
	}
}

// A Retry-After of 90 s (or a day) is obeyed only up to a bound, and not at all past the caller's
// deadline: the run's collect_timeout must hold.
func TestRetryAfterIsCappedAndEndsAtTheDeadline(t *testing.T) {
	sim := startSim(t, nil)
	i, w := newClient(t, sim, "oauth2")
	req, _ := request(t, "r", "a.example.com")
	ref, err := i.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	sim.FailNext(1, 429, 86400)
	collectIssued(t, i, ref)
	if len(w.d) != 1 || w.d[0] != time.Minute {
		t.Fatalf("waits %v; want one wait of 1m0s", w.d)
	}
	w.d = nil
	sim.FailNext(1, 429, 90)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = i.Collect(ctx, ref)
	if !errors.Is(err, context.DeadlineExceeded) || len(w.d) != 0 {
		t.Fatalf("collect with a 90 s Retry-After and 5 s left: %v after waits %v; want an immediate deadline error", err, w.d)
	}
}

// Finding 7: a token endpoint that fails (5xx) or rate-limits (429) is not a credentials problem,
// and the error does not send the user to check client_id and client_secret.
func TestTokenEndpointOutageIsNotBlamedOnTheCredentials(t *testing.T) {
	for _, status := range []int{429, 503} {
		sim := startSim(t, nil)
		i, _ := newClient(t, sim, "oauth2")
		sim.FailNext(100, status, 0)
		req, _ := request(t, "r", "a.example.com")
		_, err := i.Submit(context.Background(), req)
		if err == nil || strings.Contains(err.Error(), "client_secret") || !strings.Contains(err.Error(), "token endpoint is unavailable") {
			t.Errorf("token endpoint answering %d: %v", status, err)
		}
	}
}
