package e2e

// The reliability suite: certfleet is stopped (SIGTERM, as systemd, cron time-outs and Ctrl-C
// do) and killed (SIGKILL) at every recorded step, at random moments and while the CA's answer
// to an order is held in flight by a proxy; its plugins are killed; its state is emptied,
// corrupted and made read-only; two runs start at once. After each case the fleet is run until it
// settles, and every case asserts the same three things:
//
//   - orders at the CA = operations completed (never a second order, never a lost one),
//   - nothing half-bound (every binding serves the recorded certificate, no operation open,
//     nothing left unsaved or uncommitted on a device),
//   - no key left behind (the keys on each device are exactly those of deployed certificates).
//
// `go test ./e2e` runs the short form; `make reliability` (CERTFLEET_RELIABILITY=long) runs every
// case many times at random moments and prints the tallies.

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

func longReliability() bool { return os.Getenv("CERTFLEET_RELIABILITY") == "long" }

// proc is a certfleet process running in the background.
type proc struct {
	cmd      *exec.Cmd
	out, err bytes.Buffer
	done     chan struct{}
	code     int
}

func (f *fleet) start(extraEnv []string, args ...string) *proc {
	f.t.Helper()
	full := append([]string{"--config", f.config, "--plugin-dir", binDir, "--log-level", "debug"}, args...)
	p := &proc{cmd: exec.Command(filepath.Join(binDir, "certfleet"), full...), done: make(chan struct{})}
	p.cmd.Env = append(append(append(os.Environ(), "CERTFLEET_PLUGIN_DIR="), f.env...), extraEnv...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.err
	if err := p.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			p.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.code = 128 + int(ws.Signal())
			}
		}
		close(p.done)
	}()
	f.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("certfleet did not stop within %s\n%s", d, lastLines(p.err.String(), 30))
		return -1
	}
}

// scmProxyFleet is a fleet whose SCM CA is reached through a holdProxy: pemdir devices, and
// vendor simulators added with withBIGIP / withPANOS.
type scmProxyFleet struct {
	*fleet
	spec  fleetSpec
	sim   *scmsim.Server
	proxy *holdProxy
	certs map[string]string // certificate -> device
	// vendor checks one vendor device: how many keys it holds beyond those of deployed
	// certificates; it fails the test on anything half-bound, unsaved or uncommitted.
	vendor []func(t *testing.T, deployments map[string]state.Deployment) (keysLeft int)
	pemdir map[string]bool
}

func newSCMProxyFleet(t *testing.T, devices map[string][]string) *scmProxyFleet {
	t.Helper()
	cfg := scmsim.DefaultConfig()
	sim, err := scmsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	proxy := startHoldProxy(t, sim.URL(), sim.TLSCACertPEM(), func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/ssl/v1/enroll")
	})
	bundle := filepath.Join(t.TempDir(), "proxy-tls.pem")
	if err := os.WriteFile(bundle, []byte(proxy.caPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := fleetSpec{
		Issuers: fmt.Sprintf(`  ca:
    type: scm
    scm:
      base_url: %s
      token_url: %s
      client_id: certfleet-sim
      client_secret: ${env:E2E_SCM_SECRET}
      org_id: 1234
      tls: {ca_bundle: %s}`, proxy.URL(sim.URL()), proxy.URL(sim.TokenURL()), bundle),
		Devices:   devices,
		CertExtra: "\n    issuer_options: {cert_type: OV SSL}",
		Env:       []string{"E2E_SCM_SECRET=" + cfg.Clients["certfleet-sim"]},
	}
	certs, pemdir := map[string]string{}, map[string]bool{}
	for dev, names := range devices {
		pemdir[dev] = true
		for _, n := range names {
			certs[n] = dev
		}
	}
	return &scmProxyFleet{fleet: newFleet(t, spec), spec: spec, sim: sim, proxy: proxy, certs: certs, pemdir: pemdir}
}

// settle runs certfleet until every certificate is deployed (at most three runs), as the next cron
// runs would after an interruption.
func (f *scmProxyFleet) settle(t *testing.T) bool {
	t.Helper()
	for range 3 {
		report, res := f.run(nil)
		if res.code == 0 && len(report.Results) == len(f.certs) {
			return true
		}
	}
	return false
}

// invariants checks the three promises; it returns the double orders, the lost certificates and
// the keys left behind, and fails the test on anything half-bound.
func (f *scmProxyFleet) invariants(t *testing.T, completedPerCert int) (double, lost, keysLeft int) {
	t.Helper()
	orders := map[string]int{}
	for _, o := range f.sim.Orders() {
		orders[o.CommonName]++
	}
	st, err := state.Open(context.Background(), filepath.Join(f.dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deployments, err := st.Deployments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	open, err := st.OpenOperations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name := range open {
		t.Errorf("half-bound: operation of %s still open", name)
	}
	keysWanted := map[string]int{}
	for name, dev := range f.certs {
		n := orders[name+".example.com"]
		if n > completedPerCert {
			double += n - completedPerCert
			t.Errorf("%s: %d orders at the CA for %d completed operations", name, n, completedPerCert)
		}
		d, ok := deployments[name]
		if !ok {
			lost++
			t.Errorf("%s: not deployed", name)
			continue
		}
		if !f.pemdir[dev] {
			continue
		}
		if !f.live(dev, name).Equal(mustParse(t, d.CertPEM)) {
			t.Errorf("half-bound: %s/%s serves another certificate than the recorded deployment", dev, name)
		}
		keysWanted[dev]++
	}
	for _, check := range f.vendor {
		keysLeft += check(t, deployments)
	}
	for dev, want := range keysWanted {
		if got := len(f.keyFiles(dev)); got != want {
			keysLeft += got - want
			t.Errorf("%s: %d keys on the device for %d deployed certificates", dev, got, want)
		}
	}
	return double, lost, keysLeft
}

// tally counts a kind of case for the long form's figures.
type tally struct {
	mu                                     sync.Mutex
	name                                   string
	tried, resumed, double, lost, keysLeft int
}

func (ta *tally) add(resumed bool, double, lost, keys int) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	ta.tried++
	if resumed {
		ta.resumed++
	}
	ta.double += double
	ta.lost += lost
	ta.keysLeft += keys
}

func (ta *tally) String() string {
	return fmt.Sprintf("%s: %d tried, %d resumed, %d double orders, %d lost, %d keys left",
		ta.name, ta.tried, ta.resumed, ta.double, ta.lost, ta.keysLeft)
}

// TestReliabilitySignalWhileOrderAnswerInFlight: the CA has placed the order and its answer is held
// in flight when certfleet gets SIGTERM (or SIGKILL); the answer then arrives late or never. The
// next runs deploy with exactly one order.
func TestReliabilitySignalWhileOrderAnswerInFlight(t *testing.T) {
	for _, c := range []struct {
		name    string
		sig     syscall.Signal
		deliver bool
	}{
		{"SIGTERM-answer-arrives", syscall.SIGTERM, true},
		{"SIGTERM-answer-lost", syscall.SIGTERM, false},
		{"SIGKILL-answer-arrives", syscall.SIGKILL, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newSCMProxyFleet(t, map[string][]string{"web1": {"www"}})
			f.proxy.arm(true)
			p := f.start(nil, "run", "--output", "json")
			if !f.proxy.waitHeld(60 * time.Second) {
				t.Fatalf("no order reached the CA\n%s", lastLines(p.err.String(), 30))
			}
			p.signal(c.sig)
			time.Sleep(300 * time.Millisecond)
			f.proxy.release <- c.deliver
			code := p.wait(t, 90*time.Second)
			t.Logf("interrupted run exit %d\n%s", code, lastLines(p.err.String(), 10))
			if code == 0 {
				t.Fatalf("the interrupted run claims success")
			}
			// SIGTERM stops at a safe point, as the daemon stops: the order's answer is recorded
			// and the certificate left pending for the next run, exit 3. A lost answer is a
			// failure of the CA connection itself (exit 1), whatever the signal.
			if c.sig == syscall.SIGTERM && !strings.Contains(p.err.String(), "stopping: the step in flight finishes") {
				t.Fatalf("SIGTERM did not stop at a safe point\n%s", lastLines(p.err.String(), 30))
			}
			if c.sig == syscall.SIGTERM && c.deliver && code != 3 {
				t.Fatalf("SIGTERM: exit %d, want 3 (pending) after a stop at a safe point\n%s", code, lastLines(p.err.String(), 30))
			}
			f.proxy.arm(false)
			if !f.settle(t) {
				t.Fatal("the fleet did not settle after the interruption")
			}
			if double, lost, keys := f.invariants(t, 1); double+lost+keys != 0 {
				t.Fatalf("%d double orders, %d lost, %d keys left", double, lost, keys)
			}
		})
	}
}

// TestReliabilitySIGTERMAfterEveryStep stops a run with SIGTERM right after each recorded step.
func TestReliabilitySIGTERMAfterEveryStep(t *testing.T) {
	for _, point := range []struct{ step, submit string }{
		{"started", ""}, {"csr", ""}, {"csr", "sending"}, {"submitted", ""}, {"issued", ""}, {"imported", ""}, {"bound", ""}, {"committed", ""},
	} {
		name := point.step + "-" + point.submit
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newSCMProxyFleet(t, map[string][]string{"web1": {"www", "api"}})
			env := []string{"CERTFLEET_CRASH_SIGNAL=TERM", "CERTFLEET_CRASH_AFTER_STEP=" + point.step, "CERTFLEET_CRASH_AFTER_SUBMIT_STATE=" + point.submit}
			_, res := f.run(env)
			if !strings.Contains(res.stderr, "sending this process SIGTERM") {
				t.Fatalf("the run was not signalled after %s: exit %d", name, res.code)
			}
			if !f.settle(t) {
				t.Fatal("the fleet did not settle")
			}
			if double, lost, keys := f.invariants(t, 1); double+lost+keys != 0 {
				t.Fatalf("%d double orders, %d lost, %d keys left", double, lost, keys)
			}
		})
	}
}

// TestReliabilityRandomMoments stops runs with SIGTERM and SIGKILL at random moments, a few in
// the short form and many in the long one, and prints the tallies.
func TestReliabilityRandomMoments(t *testing.T) {
	rounds := 2
	if longReliability() {
		rounds = 30
	}
	tallies := map[syscall.Signal]*tally{
		syscall.SIGTERM: {name: "SIGTERM at random moments"},
		syscall.SIGKILL: {name: "SIGKILL at random moments"},
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(tallies[sig].name, func(t *testing.T) {
			for i := range rounds {
				t.Run(fmt.Sprint(i), func(t *testing.T) {
					f := newSCMProxyFleet(t, map[string][]string{"web1": {"www", "api"}, "web2": {"shop"}})
					p := f.start(nil, "run", "--output", "json")
					// A whole run takes about a second here: land anywhere in it.
					time.Sleep(time.Duration(randN(1500)) * time.Millisecond)
					p.signal(sig)
					p.wait(t, 90*time.Second)
					resumed := f.settle(t)
					double, lost, keys := f.invariants(t, 1)
					tallies[sig].add(resumed, double, lost, keys)
				})
			}
		})
		t.Log(tallies[sig])
		fmt.Println("reliability:", tallies[sig])
	}
}

// TestReliabilityTwoRunsAtOnce: two runs started together never order twice; the one that finds
// the state locked says so with its own exit code.
func TestReliabilityTwoRunsAtOnce(t *testing.T) {
	f := newSCMProxyFleet(t, map[string][]string{"web1": {"www", "api"}})
	a := f.start(nil, "run", "--output", "json")
	b := f.start(nil, "run", "--output", "json")
	procs := []*proc{a, b}
	for i, p := range procs {
		if c := p.wait(t, 90*time.Second); c != 0 && c != exitLocked {
			t.Errorf("run %d: exit %d, want 0 or %d (locked)\n%s\n%s", i, c, exitLocked, p.out.String(), lastLines(p.err.String(), 40))
		}
	}
	if !f.settle(t) {
		t.Fatal("the fleet did not settle")
	}
	if double, lost, keys := f.invariants(t, 1); double+lost+keys != 0 {
		t.Fatalf("%d double orders, %d lost, %d keys left", double, lost, keys)
	}
}

// exitLocked is certfleet's exit code when another process holds the state.
const exitLocked = 4

func mustParse(t *testing.T, pemText string) *x509.Certificate {
	t.Helper()
	c, err := sdk.ParseCertificatePEM(pemText)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// randN is a random whole number in [0, n).
func randN(n int64) int64 { return rand.Int64N(n) }
