package engine

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/acme"
	"github.com/certfleet/certfleet/core/issuer/acme/pebblesim"
	"github.com/certfleet/certfleet/core/issuer/scm"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/core/state"
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
)

const (
	routeList    = "GET /api/ssl/v1"
	routeCollect = "GET /api/ssl/v1/collect/{id}"
	routeDetails = "GET /api/ssl/v1/{id}"
)

// TestSCMDay2CheckOf1000CertificatesIsOneListing: the revocation check of 1,000 SCM certificates,
// all due, is one call listing the revoked certificates, not 1,000 collects; the three revoked
// out of band are marked revoked, the others checked, and every next check scheduled within the
// interval.
func TestSCMDay2CheckOf1000CertificatesIsOneListing(t *testing.T) {
	w := newDay2World(t, 1000, false, time.Now().Add(-48*time.Hour), 0)
	ctx := context.Background()
	revoked := map[string]bool{}
	for _, i := range []int{7, 500, 999} {
		id, _ := strconv.Atoi(string(w.refs[i]))
		if err := w.sim.RevokeOutOfBand(id); err != nil {
			t.Fatal(err)
		}
		revoked[w.certs[i].Name] = true
	}
	now := time.Now()
	lists, collects, details := w.sim.Calls(routeList), w.sim.Calls(routeCollect), w.sim.Calls(routeDetails)
	if err := checkDue(ctx, w.engineAt(func() time.Time { return now })); err != nil {
		t.Fatal(err)
	}
	if n := w.sim.Calls(routeList) - lists; n != 1 {
		t.Errorf("%d list calls, want 1", n)
	}
	if n, m := w.sim.Calls(routeCollect)-collects, w.sim.Calls(routeDetails)-details; n+m != 0 {
		t.Errorf("%d collects and %d details calls besides the listing, want none", n, m)
	}
	ds, err := w.store.Deployments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wrong []string
	for _, d := range ds {
		if d.Revoked != revoked[d.Certificate] || !d.RevocationCheckedAt.Equal(now) ||
			(!d.Revoked && (!d.CACheckDueAt.After(now) || d.CACheckDueAt.After(now.Add(24*time.Hour)))) {
			wrong = append(wrong, fmt.Sprintf("%s (revoked %v, checked %s, next check %s)", d.Certificate, d.Revoked, d.RevocationCheckedAt, d.CACheckDueAt))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d deployments not checked and scheduled as they should be (checked at %s, next check within a day, revoked: %v), e.g. %s",
			len(wrong), len(ds), now, revoked, wrong[0])
	}
	// Checked, nothing is due any more: the next run asks the CA nothing.
	lists = w.sim.Calls(routeList)
	later := now.Add(time.Second)
	if err := checkDue(ctx, w.engineAt(func() time.Time { return later })); err != nil {
		t.Fatal(err)
	}
	if n := w.sim.Calls(routeList) - lists; n != 0 {
		t.Errorf("a run right after the check made %d list calls", n)
	}
}

// TestHourlyRunsCheckEachCertificateOncePerInterval: with a 24 h interval and a run every hour,
// each run checks about 1/24 of a freshly deployed fleet and each certificate is checked once a
// day, the first time within a day of its deployment.
func TestHourlyRunsCheckEachCertificateOncePerInterval(t *testing.T) {
	const n = 240
	t0 := time.Now().Truncate(time.Hour)
	w := newDay2World(t, n, false, t0, 0)
	ctx := context.Background()
	checks := map[string][]int{} // the runs that checked each certificate
	most := 0
	for run := 1; run <= 48; run++ {
		at := t0.Add(time.Duration(run) * time.Hour)
		if err := checkDue(ctx, w.engineAt(func() time.Time { return at })); err != nil {
			t.Fatal(err)
		}
		ds, err := w.store.Deployments(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, d := range ds {
			if d.RevocationCheckedAt.Equal(at) {
				checks[d.Certificate] = append(checks[d.Certificate], run)
				checked++
			}
		}
		most = max(most, checked)
	}
	if most > n/12 {
		t.Errorf("one run checked %d of %d certificates; a run every hour should check about %d", most, n, n/24)
	}
	for _, c := range w.certs {
		runs := checks[c.Name]
		if len(runs) != 2 || runs[0] > 24 || runs[1] != runs[0]+24 {
			t.Errorf("%s checked in runs %v; want once in each day, 24 runs apart", c.Name, runs)
		}
	}
}

// TestRevokedCertificateFoundByTheListingIsRenewed: a certificate SCM revoked behind certfleet's
// back is found by the listing of revoked certificates and renewed by the same run; the others
// are left alone and no order is collected except the new one.
func TestRevokedCertificateFoundByTheListingIsRenewed(t *testing.T) {
	cfg := scmsim.DefaultConfig()
	cfg.PendingCollects = 0
	sim, iss, store, device := scmWorld(t, cfg)
	names := []string{"www", "api", "shop"}
	var certs []Certificate
	var links []any
	for _, name := range names {
		host := name + ".example.com"
		certs = append(certs, Certificate{Name: name, Device: "web1", Issuer: "ca", Subject: sdk.Subject{CommonName: host},
			SANs: sdk.SANs{DNSNames: []string{host}}, KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
			RenewBefore: 30 * 24 * time.Hour, Bindings: []sdk.Binding{{Kind: pemdir.BindingKind, Name: name}},
			IssuerOptions: map[string]any{"cert_type": "OV SSL"}})
		links = append(links, name)
	}
	plugin := pemdir.New()
	clock := time.Now()
	e := New(Options{
		Store: store, Plugins: func(string) (sdk.Plugin, error) { return plugin, nil },
		Issuers: map[string]issuer.Issuer{"ca": iss},
		Devices: map[string]Device{"web1": {Name: "web1", Plugin: "pemdir", Concurrency: 1,
			Target: sdk.Target{Name: "web1", Address: device, Options: sdk.Options{"links": links}}}},
		Certificates: certs, Backoff: 10 * time.Millisecond, VerifyWait: time.Millisecond,
		Now: func() time.Time { return clock },
	})
	ctx := context.Background()
	report, err := e.Run(ctx, RunOptions{})
	if err != nil || report.ExitCode() != ExitOK || len(sim.Orders()) != 3 {
		t.Fatalf("enroll: %+v (%v), %d orders", report.Results, err, len(sim.Orders()))
	}
	// Each new deployment is recorded with its first check's time: the next run has none to
	// read just to schedule it.
	if due, err := store.DueCAChecks(ctx, clock, clock.Add(24*time.Hour)); err != nil || len(due) != 0 {
		t.Fatalf("%d checks due right after the enrollment (%v), want none", len(due), err)
	}
	for _, name := range names {
		d, _, _ := store.Deployment(ctx, name)
		if want := nextCACheck(name, d.DeployedAt, 24*time.Hour); !d.CACheckDueAt.Equal(want) {
			t.Errorf("%s: first check at %v, want %v", name, d.CACheckDueAt, want)
		}
	}
	api, _, _ := store.Deployment(ctx, "api")
	id, _ := strconv.Atoi(api.OrderRef)
	if err := sim.RevokeOutOfBand(id); err != nil {
		t.Fatal(err)
	}

	clock = clock.Add(48 * time.Hour) // every check is due
	lists, collects := sim.Calls(routeList), sim.Calls(routeCollect)
	report, err = e.Run(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkOnlyRevokedRenewed(t, report, "api")
	if n := sim.Calls(routeList) - lists; n != 1 {
		t.Errorf("%d list calls, want 1", n)
	}
	if n := sim.Calls(routeCollect) - collects; n != 1 {
		t.Errorf("%d collects, want 1 (the new order's)", n)
	}
	if len(sim.Orders()) != 4 {
		t.Errorf("%d orders, want 4", len(sim.Orders()))
	}
}

// TestACMEDay2CheckAsksRenewalInformationOnly: an ACME order says nothing of revocation, so the
// day-2 check of ACME certificates is one renewalInfo request each (RFC 9773) and no order or
// certificate fetch; and none at all when the CA's directory has no renewalInfo.
func TestACMEDay2CheckAsksRenewalInformationOnly(t *testing.T) {
	for _, offered := range []bool{true, false} {
		t.Run(fmt.Sprintf("renewalInfo offered %v", offered), func(t *testing.T) {
			t.Parallel()
			pebble, err := pebblesim.Start(pebblesim.Config{NoRenewalInfo: !offered})
			if err != nil {
				t.Fatal(err)
			}
			defer pebble.Close()
			ctx := context.Background()
			store, err := state.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			kid, hmac := pebble.EAB()
			iss, err := acme.New(acme.Config{Name: "ca", DirectoryURL: pebble.DirectoryURL(), EAB: acme.EAB{KeyID: kid, HMACKey: hmac},
				TLS: acme.TLSConfig{CABundlePEM: pebble.TLSCACertPEM()}}, acme.BlobAccountStore(store))
			if err != nil {
				t.Fatal(err)
			}
			deployed := time.Now()
			var certs []Certificate
			for i := range 3 {
				name := fmt.Sprintf("site%d", i)
				res, ref := issueACME(t, iss, name+".example.com")
				leaf, err := sdk.ParseCertificatePEM(res.CertPEM)
				if err != nil {
					t.Fatal(err)
				}
				if err := store.SaveDeployment(ctx, state.Deployment{Certificate: name, Device: "web", Issuer: "ca", OrderRef: string(ref),
					CertPEM: res.CertPEM, ChainPEM: res.ChainPEM, Fingerprint: sdk.Describe(leaf).SHA256Fingerprint,
					NotAfter: leaf.NotAfter, DeployedAt: deployed, RevocationCheckedAt: deployed}); err != nil {
					t.Fatal(err)
				}
				certs = append(certs, Certificate{Name: name, Device: "web", Issuer: "ca"})
			}
			now := deployed.Add(48 * time.Hour)
			e := New(Options{Store: store, Issuers: map[string]issuer.Issuer{"ca": iss}, Certificates: certs,
				Devices: map[string]Device{"web": {Name: "web", Plugin: "none"}}, Now: func() time.Time { return now }})
			requests, posts, ari := pebble.Requests(), pebble.Posts(), pebble.RenewalInfoRequests()
			if err := checkDue(ctx, e); err != nil {
				t.Fatal(err)
			}
			wantARI := 0
			if offered {
				wantARI = 3
			}
			if n := pebble.RenewalInfoRequests() - ari; n != wantARI {
				t.Errorf("%d renewalInfo requests, want %d", n, wantARI)
			}
			if n, m := pebble.Posts()-posts, pebble.Requests()-requests; n != 0 || m != wantARI {
				t.Errorf("%d requests (%d POSTs) to the CA, want only the %d renewalInfo requests", m, n, wantARI)
			}
			for _, c := range certs {
				d, _, _ := store.Deployment(ctx, c.Name)
				if !d.RevocationCheckedAt.Equal(now) || !d.CACheckDueAt.After(now) {
					t.Errorf("%s: checked at %s, next check %s; want checked at %s and scheduled", c.Name, d.RevocationCheckedAt, d.CACheckDueAt, now)
				}
				if offered != d.RenewalInfoAt.Equal(now) {
					t.Errorf("%s: renewal information recorded at %s (offered: %v)", c.Name, d.RenewalInfoAt, offered)
				}
			}
		})
	}
}

// issueACME orders a certificate for host and collects it.
func issueACME(t *testing.T, iss *acme.Issuer, host string) (issuer.Result, issuer.OrderRef) {
	t.Helper()
	ctx := context.Background()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: host}, DNSNames: []string{host}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	ref, err := iss.Submit(ctx, issuer.Request{CertificateName: host, RequestID: host, CSRPEM: csr, CommonName: host, DNSNames: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		res, err := iss.Collect(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if res.State == issuer.Issued {
			return res, ref
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not issued", host)
	return issuer.Result{}, ""
}

// TestNextCACheckSpreadsTheFleet: slots come strictly after the given time and at most one
// interval later, one interval apart, on whole seconds; the phases of many certificates fall
// evenly over the interval.
func TestNextCACheckSpreadsTheFleet(t *testing.T) {
	interval := 24 * time.Hour
	base := time.Date(2026, 12, 6, 20, 30, 15, 123456789, time.UTC)
	perHour := make([]int, 24)
	const n = 24000
	for i := range n {
		name := fmt.Sprintf("cert-%d", i)
		slot := nextCACheck(name, base, interval)
		if !slot.After(base) || slot.After(base.Add(interval)) || slot.Nanosecond() != 0 {
			t.Fatalf("%s: slot %s after %s", name, slot, base)
		}
		if again := nextCACheck(name, slot, interval); !again.Equal(slot.Add(interval)) {
			t.Fatalf("%s: slot after %s is %s, want one interval later", name, slot, again)
		}
		if same := nextCACheck(name, slot.Add(-time.Nanosecond), interval); !same.Equal(slot) {
			t.Fatalf("%s: the slot moved from %s to %s", name, slot, same)
		}
		perHour[int(slot.Sub(base)/time.Hour)]++
	}
	for h, got := range perHour {
		if got < n/24*8/10 || got > n/24*12/10 {
			t.Errorf("hour %d holds %d slots of %d; want about %d", h, got, n, n/24)
		}
	}
	if got := nextCACheck("www", time.Time{}, interval); got.After(base) {
		t.Errorf("a certificate never checked nor deployed is scheduled at %s, not at once", got)
	}
	if got := nextCACheck("www", base, 1500*time.Millisecond); !got.After(base) || got.After(base.Add(1500*time.Millisecond)) {
		t.Errorf("sub-second-aligned interval: slot %s after %s", got, base)
	}
}

// TestSCMListingFailure: when the CA cannot be reached for the listing, the run does not ask about
// each certificate (that would only multiply the failures) and the checks stay due; when SCM
// refuses the listing itself (here a 403), each certificate is asked about on its own.
func TestSCMListingFailure(t *testing.T) {
	w := newDay2World(t, 20, false, time.Now().Add(-48*time.Hour), 0)
	ctx := context.Background()
	now := time.Now()
	e := w.engineAt(func() time.Time { return now })
	w.sim.FailNext(100, 503, 0)
	if err := checkDue(ctx, e); err != nil {
		t.Fatal(err)
	}
	w.sim.FailNext(0, 0, 0)
	if n := w.sim.Calls(routeCollect); n != 0 {
		t.Errorf("%d collects while SCM was unavailable", n)
	}
	if due, err := w.store.DueCAChecks(ctx, now, now.Add(24*time.Hour)); err != nil || len(due) != 20 {
		t.Fatalf("%d checks due after the failed listing (%v), want all 20", len(due), err)
	}

	w.sim.FailNext(1, 403, 0)
	if err := checkDue(ctx, e); err != nil {
		t.Fatal(err)
	}
	if n := w.sim.Calls(routeCollect); n != 20 {
		t.Errorf("%d collects after SCM refused the listing, want 20", n)
	}
	if due, err := w.store.DueCAChecks(ctx, now, now.Add(24*time.Hour)); err != nil || len(due) != 0 {
		t.Fatalf("%d checks still due (%v), want none", len(due), err)
	}
}

// checkDue runs the day-2 CA checks due among all the configured certificates, as a run does
// before planning.
func checkDue(ctx context.Context, e *Engine) error {
	certs, err := e.selected(nil)
	if err != nil {
		return err
	}
	now := e.opts.Now()
	due, err := e.caChecksDue(ctx, now)
	if err != nil {
		return err
	}
	e.checkCA(ctx, certs, due, now)
	return nil
}

// listingAfterInventories holds the SCM listing of revoked certificates until the devices'
// inventories are in (or 10 s pass: then heldTooLong is set).
type listingAfterInventories struct {
	*scm.Issuer
	inventoried <-chan struct{}
	heldTooLong bool
}

func (l *listingAfterInventories) RevokedAmong(ctx context.Context, refs []issuer.OrderRef) (map[issuer.OrderRef]string, []issuer.OrderRef, error) {
	select {
	case <-l.inventoried:
	case <-time.After(10 * time.Second):
		l.heldTooLong = true
	}
	return l.Issuer.RevokedAmong(ctx, refs)
}

// countingInventories closes done at the n-th Inventory.
type countingInventories struct {
	sdk.Plugin
	mu   sync.Mutex
	n    int
	done chan struct{}
}

func (c *countingInventories) Inventory(ctx context.Context, t sdk.Target) ([]sdk.DeviceCertificate, error) {
	out, err := c.Plugin.Inventory(ctx, t)
	c.mu.Lock()
	if c.n--; c.n == 0 {
		close(c.done)
	}
	c.mu.Unlock()
	return out, err
}

// TestDay2ChecksOverlapTheInventories: a run makes its day-2 CA checks while the devices are
// inventoried, and plans each device from what the CA said. With one worker, the CA's listing is
// held until all three devices were inventoried: an inventory that kept its worker while waiting
// for the listing would stop the others, and the listing would be released only by its time-out.
// The certificate revoked out of band is still renewed in that run.
func TestDay2ChecksOverlapTheInventories(t *testing.T) {
	cfg := scmsim.DefaultConfig()
	cfg.PendingCollects = 0
	sim, iss, store, _ := scmWorld(t, cfg)
	devices := map[string]Device{}
	var certs []Certificate
	for i, name := range []string{"www", "api", "shop"} {
		dev := fmt.Sprintf("web%d", i+1)
		dir := filepath.Join(t.TempDir(), dev)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		devices[dev] = Device{Name: dev, Plugin: "pemdir", Concurrency: 1,
			Target: sdk.Target{Name: dev, Address: dir, Options: sdk.Options{"links": []any{name}}}}
		host := name + ".example.com"
		certs = append(certs, Certificate{Name: name, Device: dev, Issuer: "ca", Subject: sdk.Subject{CommonName: host},
			SANs: sdk.SANs{DNSNames: []string{host}}, KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
			RenewBefore: 30 * 24 * time.Hour, Bindings: []sdk.Binding{{Kind: pemdir.BindingKind, Name: name}},
			IssuerOptions: map[string]any{"cert_type": "OV SSL"}})
	}
	plugin := &countingInventories{Plugin: pemdir.New()}
	held := &listingAfterInventories{Issuer: iss}
	clock := time.Now()
	e := New(Options{
		Store: store, Plugins: func(string) (sdk.Plugin, error) { return plugin, nil },
		Issuers: map[string]issuer.Issuer{"ca": held}, Devices: devices, Certificates: certs, Workers: 1,
		Backoff: 10 * time.Millisecond, VerifyWait: time.Millisecond, Now: func() time.Time { return clock },
	})
	ctx := context.Background()
	if report, err := e.Run(ctx, RunOptions{}); err != nil || report.ExitCode() != ExitOK {
		t.Fatalf("enroll: %+v (%v)", report.Results, err)
	}
	api, _, _ := store.Deployment(ctx, "api")
	id, _ := strconv.Atoi(api.OrderRef)
	if err := sim.RevokeOutOfBand(id); err != nil {
		t.Fatal(err)
	}

	clock = clock.Add(48 * time.Hour) // every check is due
	done := make(chan struct{})
	held.inventoried = done
	plugin.mu.Lock()
	plugin.n, plugin.done = 3, done
	plugin.mu.Unlock()
	report, err := e.Run(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if held.heldTooLong {
		t.Error("the CA's listing was released by its time-out: the inventories waited for the CA checks holding the worker")
	}
	checkOnlyRevokedRenewed(t, report, "api")
}

// checkOnlyRevokedRenewed: the certificate revoked out of band was renewed for its revocation,
// every other one is unchanged.
func checkOnlyRevokedRenewed(t *testing.T, report Report, revoked string) {
	t.Helper()
	for _, r := range report.Results {
		want := state.OutcomeUnchanged
		if r.Certificate == revoked {
			want = state.OutcomeDeployed
		}
		if r.Outcome != want || (r.Certificate == revoked && !strings.Contains(r.Reason, "revoked")) {
			t.Errorf("%s: %s (%s), want %s", r.Certificate, r.Outcome, r.Reason, want)
		}
	}
}
