package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/paloalto-panos/panossim"
)

// TestReliabilityFaults: CA and device faults during a run. Each run may fail (and must name the
// device or CA), the next runs settle, and the three promises hold.
func TestReliabilityFaults(t *testing.T) {
	type env struct {
		f     *scmProxyFleet
		bigip *bigipsim.Sim
		panos *panossim.Sim
	}
	for _, c := range []struct {
		name   string
		inject func(e env)
		named  string // what the failing run's output must name
	}{
		{"CA-503-burst", func(e env) { e.f.sim.FailNext(3, 503, 0) }, ""},
		{"CA-429-retry-after", func(e env) { e.f.sim.FailNext(2, 429, 1) }, ""},
		{"CA-lost-enroll-answers", func(e env) { e.f.sim.LoseNextEnrollResponses(3) }, ""},
		{"CA-pending-then-issued", func(e env) {
			e.f.sim.PendingForever(true)
			time.AfterFunc(3*time.Second, func() { e.f.sim.PendingForever(false) })
		}, ""},
		{"BIG-IP-save-fails", func(e env) { e.bigip.FailSave(1) }, "bigip1"},
		{"BIG-IP-busy", func(e env) { e.bigip.Busy(6) }, ""},
		{"BIG-IP-transaction-fails", func(e env) { e.bigip.FailTransactionCommit(1) }, "bigip1"},
		{"PAN-OS-commit-fails", func(e env) { e.panos.FailCommits(1, "Validation Error: web-tls is invalid") }, "fw1"},
		{"PAN-OS-drops-connections", func(e env) {
			e.panos.InjectFault(panossim.Fault{Kind: panossim.FaultDropConnection, Count: 2, Type: "import"})
		}, "fw1"},
		{"PAN-OS-unavailable", func(e env) {
			e.panos.InjectFault(panossim.Fault{Kind: panossim.FaultUnavailable, Count: 3, Type: "config", Action: "set"})
		}, "fw1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newSCMProxyFleet(t, map[string][]string{"web1": {"www"}})
			e := env{f: f, bigip: f.withBIGIP(t), panos: f.withPANOS(t)}
			text, _ := os.ReadFile(f.config)
			os.WriteFile(f.config, []byte(strings.Replace(string(text), "collect_timeout: 30s", "collect_timeout: 2s", 1)), 0o600)
			c.inject(e)
			report, res := f.run(nil)
			if res.code != 0 && c.named != "" && !strings.Contains(res.stdout+res.stderr, c.named) {
				t.Errorf("the failing run (exit %d) does not name %s", res.code, c.named)
			}
			_ = report
			if !f.settle(t) {
				t.Fatal("the fleet did not settle after the fault")
			}
			if double, lost, keys := f.invariants(t, 1); double+lost+keys != 0 {
				t.Fatalf("%d double orders, %d lost, %d keys left", double, lost, keys)
			}
		})
	}
}

// TestReliabilityPluginKilled: the plugin processes are killed (SIGKILL) at random moments of a
// run; the host restarts them, and the next runs settle with one order each.
func TestReliabilityPluginKilled(t *testing.T) {
	rounds := 2
	if longReliability() {
		rounds = 10
	}
	ta := &tally{name: "plugin kill -9 at random moments"}
	for i := range rounds {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			f := newSCMProxyFleet(t, map[string][]string{"web1": {"www"}})
			f.withBIGIP(t)
			f.withPANOS(t)
			p := f.start(nil, "run", "--output", "json")
			time.Sleep(time.Duration(300+randN(2500)) * time.Millisecond)
			for _, pid := range childrenOf(p.cmd.Process.Pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			p.wait(t, 120*time.Second)
			resumed := f.settle(t)
			double, lost, keys := f.invariants(t, 1)
			ta.add(resumed, double, lost, keys)
		})
	}
	t.Log(ta)
	fmt.Println("reliability:", ta)
}

// childrenOf lists the processes whose parent is pid (the plugins certfleet started).
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}
