package engine

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/scm"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/core/state"
)

// day2World is an SCM simulator holding n issued orders and a state recording each as deployed
// two days ago, so that every certificate's CA check (revocation, renewal information) is due.
type day2World struct {
	sim   *scmsim.Server
	iss   *scm.Issuer
	store *state.SQLite
	certs []Certificate
	refs  []issuer.OrderRef // each certificate's order, in certs' order
}

// newDay2World places n orders in an SCM simulator (its Admin API), collects them when collect
// is set (their certificates are then recorded with the deployments; an SCM check needs only
// the order), records their deployments as made at deployed and then sets the simulator's
// latency.
func newDay2World(tb testing.TB, n int, collect bool, deployed time.Time, latency time.Duration) *day2World {
	tb.Helper()
	ctx := context.Background()
	cfg := scmsim.DefaultConfig()
	cfg.PendingCollects = 0
	sim, err := scmsim.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(sim.Close)
	iss, err := scm.New(scm.Config{Name: "ca", BaseURL: sim.URL(), OrgID: 1234, TokenURL: sim.TokenURL(), CABundlePEM: sim.TLSCACertPEM(),
		ClientID: "certfleet-sim", ClientSecret: cfg.Clients["certfleet-sim"]}, scm.WithRetry(3, time.Millisecond, 10*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	store, err := state.Open(ctx, filepath.Join(tb.TempDir(), "state.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })

	// The orders are placed in the simulator directly (as n enroll calls would), all of one CSR:
	// the check looks at the orders only.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "fleet.example.com"},
		DNSNames: []string{"fleet.example.com"}}, key)
	if err != nil {
		tb.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		tb.Fatal(err)
	}
	ids := sim.PlaceOrders(n, 1234, cfg.Profiles[0], csr)

	w := &day2World{sim: sim, iss: iss, store: store, certs: make([]Certificate, n), refs: make([]issuer.OrderRef, n)}
	deployments := make([]state.Deployment, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i, id := range ids {
		name := fmt.Sprintf("cert%05d", i)
		ref := issuer.OrderRef(strconv.Itoa(id))
		w.certs[i], w.refs[i] = Certificate{Name: name, Device: "web", Issuer: "ca"}, ref
		deployments[i] = state.Deployment{Certificate: name, Device: "web", Issuer: "ca", OrderRef: string(ref),
			NotAfter: deployed.Add(90 * 24 * time.Hour), DeployedAt: deployed, RevocationCheckedAt: deployed}
		if !collect {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res, err := iss.Collect(ctx, ref)
			if err != nil || res.State != issuer.Issued {
				errs <- fmt.Errorf("collect %s: %v (%v)", name, err, res.State)
				return
			}
			deployments[i].CertPEM, deployments[i].ChainPEM = res.CertPEM, res.ChainPEM
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	if err := store.SaveDeployments(ctx, deployments); err != nil {
		tb.Fatal(err)
	}
	sim.SetLatency(latency)
	return w
}

// engineAt is an engine over the world's certificates whose clock reads now.
func (w *day2World) engineAt(now func() time.Time) *Engine {
	return New(Options{Store: w.store, Issuers: map[string]issuer.Issuer{"ca": w.iss}, Certificates: w.certs,
		Devices: map[string]Device{"web": {Name: "web", Plugin: "none"}}, Now: now})
}

// BenchmarkDay2Check is the day-2 CA check of a run (revocation status, renewal information)
// over 1,000 and 10,000 SCM certificates at 50 ms per CA call:
//   - all-due: every check is due, what a run spends once the check interval has passed for
//     all of them (the first run after an upgrade or a long outage, or a fleet enrolled in one
//     go); each iteration runs three days after the last.
//   - hourly: the steady state of an hourly cron with the default 24 h interval, once every
//     certificate has been checked (and scheduled) once; each iteration runs an hour after the
//     last.
func BenchmarkDay2Check(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, mode := range []string{"all-due", "hourly"} {
			b.Run(fmt.Sprintf("scm-admin/%s/%d", mode, n), func(b *testing.B) {
				w := newDay2World(b, n, true, time.Now().Add(-48*time.Hour), 50*time.Millisecond)
				start, step := time.Now(), 72*time.Hour
				if mode == "hourly" {
					if err := checkDue(context.Background(), w.engineAt(func() time.Time { return start })); err != nil {
						b.Fatal(err)
					}
					step = time.Hour
				}
				b.ResetTimer()
				var calls, checked int
				for i := range b.N {
					b.StopTimer()
					before := w.sim.Requests()
					at := start.Add(time.Duration(i+1) * step)
					e := w.engineAt(func() time.Time { return at })
					b.StartTimer()
					if err := checkDue(context.Background(), e); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					calls += w.sim.Requests() - before
					checked += w.checkedAt(b, at)
					b.StartTimer()
				}
				b.ReportMetric(float64(calls)/float64(b.N), "ca-calls/op")
				b.ReportMetric(float64(checked)/float64(b.N), "checked/op")
			})
		}
	}
}

// checkedAt counts the deployments whose CA check ran at at.
func (w *day2World) checkedAt(tb testing.TB, at time.Time) int {
	ds, err := w.store.Deployments(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, d := range ds {
		if d.RevocationCheckedAt.Equal(at) {
			n++
		}
	}
	return n
}
