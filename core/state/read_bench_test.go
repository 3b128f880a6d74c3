package state

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fleetState is a state of n deployed certificates, 10 to a device, as a steady-state fleet's:
// every deployment with its refs, bindings, a CA check scheduled and a served check, and the
// results of two runs (an enrollment, then one that changed nothing).
func fleetState(b *testing.B, n int) *SQLite {
	b.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	pem := "-----BEGIN CERTIFICATE-----\n" + strings.Repeat(strings.Repeat("A", 64)+"\n", 18) + "-----END CERTIFICATE-----\n"
	now := time.Date(2026, 12, 1, 3, 4, 5, 123456789, time.UTC)
	ds := make([]Deployment, n)
	for i := range ds {
		name := fmt.Sprintf("pemdir-%04d-site%02d", i/10, i%10+1)
		ds[i] = Deployment{Certificate: name, Device: fmt.Sprintf("pemdir-%04d", i/10), Issuer: "sim-ca",
			CertRef: "cf-" + name + "-20261201", KeyRef: "cf-" + name + "-20261201.key", ChainRefs: []string{"cf-chain-1", "cf-chain-2"},
			OrderRef: fmt.Sprint(100000 + i), Serial: fmt.Sprintf("%032x", i), Fingerprint: fmt.Sprintf("%064x", i),
			NotBefore: now, NotAfter: now.Add(365 * 24 * time.Hour), CertPEM: pem, ChainPEM: []string{pem, pem},
			SpecHash: fmt.Sprintf("%064x", i*7), Bindings: []string{fmt.Sprintf("live-link/site%02d", i%10+1)}, DeployedAt: now,
			RevocationCheckedAt: now, CACheckDueAt: now.Add(24 * time.Hour),
			ServedCheck: &ServedCheck{At: now, OK: true, Detail: "1 endpoint", Endpoints: []string{"127.0.0.1:443"}}}
	}
	if err := s.SaveDeployments(ctx, ds); err != nil {
		b.Fatal(err)
	}
	for run, outcome := range []Outcome{OutcomeDeployed, OutcomeUnchanged} {
		id, err := s.StartRun(ctx, false)
		if err != nil {
			b.Fatal(err)
		}
		rs := make([]Result, n)
		for i, d := range ds {
			rs[i] = Result{RunID: id, Certificate: d.Certificate, Device: d.Device, Action: []string{"enroll", "none"}[run], Outcome: outcome}
		}
		if err := s.RecordResults(ctx, rs); err != nil {
			b.Fatal(err)
		}
		if err := s.FinishRun(ctx, id, "ok"); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkDeploymentSummaries10k reads what status and planning read of 10,000 deployments.
func BenchmarkDeploymentSummaries10k(b *testing.B) {
	s := fleetState(b, 10000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ds, err := s.DeploymentSummaries(ctx)
		if err != nil || len(ds) != 10000 {
			b.Fatalf("%d deployments, %v", len(ds), err)
		}
	}
}

// BenchmarkLastResults10k reads the newest result of 10,000 certificates.
func BenchmarkLastResults10k(b *testing.B) {
	s := fleetState(b, 10000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rs, err := s.LastResults(ctx)
		if err != nil || len(rs) != 10000 {
			b.Fatalf("%d results, %v", len(rs), err)
		}
	}
}
