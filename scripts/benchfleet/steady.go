//go:build linux

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

var steadyCommands = []string{"run", "plan", "status"}

// steadyResult are the figures of one world size with nothing due.
type steadyResult struct {
	certs, devices int
	setup          time.Duration
	wall           map[string][]time.Duration
	rss            map[string][]int64
	cpu            map[string][]time.Duration
	ca             map[string][]int
	// inventory and allCalls: calls per device, min and max over the devices and repetitions.
	inventory, allCalls map[string][2]int
	// stateBefore/After the measured runs, and how many runs wrote to it.
	stateBefore, stateAfter int64
	runs                    int
	load                    string // load average before → after
}

// steady measures run, plan and status with nothing due on a world and on one twice its size.
// Both worlds live in one certfleet-sim: the small one is its first half of the devices. The
// large world starts from the small one's state as it was right after its enrollment, so its
// state holds no more history than enrolling it from nothing would leave.
func (b *bench) steady(ctx context.Context) error {
	sz := b.o.sizes
	small, large := sz.steadyDevices, 2*sz.steadyDevices
	b.progress("steady: starting certfleet-sim with %d pemdir devices, %d certificates each", large, sz.certsPerDevice)
	s, err := b.startSim(ctx, "steady", "--ca", "scm", "--vendors", "pemdir", "--devices", strconv.Itoa(large),
		"--certs-per-device", strconv.Itoa(sz.certsPerDevice), "--scm-pending-collects", "0", "--pemdir-access-log", accessLogName)
	if err != nil {
		return err
	}
	defer s.stop()
	// Setting up is not what is measured: more workers, and orders issued at the first collect.
	setupLimits := runtimeLimits{Workers: 32, PerIssuer: 16, PerDevice: 4}
	snapshot := filepath.Join(s.dir, "state-after-small-enrollment")
	var results []steadyResult
	for i, devices := range []int{small, large} {
		setupCfg, err := s.writeConfig(fmt.Sprintf("setup-%d", devices), devices, setupLimits)
		if err != nil {
			return err
		}
		cfg, err := s.writeConfig(fmt.Sprintf("measure-%d", devices), devices, runtimeLimits{})
		if err != nil {
			return err
		}
		if i > 0 {
			if err := copyState(snapshot, s.dir); err != nil {
				return fmt.Errorf("restore the state after the small world's enrollment: %w", err)
			}
		}
		b.progress("steady: enrolling %d certificates on %d devices (setup, not measured)", devices*sz.certsPerDevice, devices)
		setup, err := s.certfleet(ctx, setupCfg, "run")
		if err != nil {
			return err
		}
		if i == 0 {
			if err := copyState(s.dir, snapshot); err != nil {
				return fmt.Errorf("snapshot of the state: %w", err)
			}
		}
		r, err := b.measureSteady(ctx, s, cfg, devices)
		if err != nil {
			return err
		}
		r.setup = setup.wall
		results = append(results, r)
	}
	b.printSteady(results)
	return nil
}

func (b *bench) measureSteady(ctx context.Context, s *sim, cfg string, devices int) (steadyResult, error) {
	r := steadyResult{certs: devices * b.o.sizes.certsPerDevice, devices: devices,
		wall: map[string][]time.Duration{}, cpu: map[string][]time.Duration{}, rss: map[string][]int64{}, ca: map[string][]int{},
		inventory: map[string][2]int{}, allCalls: map[string][2]int{}}
	var logs accessLogs
	if _, err := logs.since(s, devices); err != nil { // the setup's calls
		return r, err
	}
	r.stateBefore = stateSize(s.dir)
	r.load = loadAverage()
	for rep := 1; rep <= b.o.n; rep++ {
		for _, command := range steadyCommands {
			before, err := s.caRequests(ctx)
			if err != nil {
				return r, err
			}
			m, err := s.certfleet(ctx, cfg, command)
			if err != nil {
				return r, err
			}
			after, err := s.caRequests(ctx)
			if err != nil {
				return r, err
			}
			calls, err := logs.since(s, devices)
			if err != nil {
				return r, err
			}
			r.wall[command] = append(r.wall[command], m.wall)
			r.rss[command] = append(r.rss[command], m.maxRSS)
			r.cpu[command] = append(r.cpu[command], m.cpu)
			r.ca[command] = append(r.ca[command], after-before)
			widen(r.inventory, command, calls, "Inventory", rep == 1)
			widen(r.allCalls, command, calls, "", rep == 1)
			if command == "run" {
				r.runs++
			}
			b.progress("steady %d certificates: %s %s, %s, %d CA calls", r.certs, command, secs(m.wall), mib(m.maxRSS), after-before)
		}
	}
	r.stateAfter = stateSize(s.dir)
	r.load += " → " + loadAverage()
	return r, nil
}

// widen keeps the min and max calls per device over the repetitions.
func widen(acc map[string][2]int, command string, calls map[string][]deviceCall, call string, first bool) {
	lo, hi, _ := perDevice(calls, call)
	cur, ok := acc[command]
	if first || !ok {
		acc[command] = [2]int{lo, hi}
		return
	}
	acc[command] = [2]int{min(cur[0], lo), max(cur[1], hi)}
}

func (b *bench) printSteady(rs []steadyResult) {
	small, large := rs[0], rs[1]
	b.section("Steady state: nothing due (SCM simulator, pemdir devices, %d certificates per device); median of %d", b.o.sizes.certsPerDevice, b.o.n)
	head := func(r steadyResult) string {
		return fmt.Sprintf("%s certs / %s devices", thousands(r.certs), thousands(r.devices))
	}
	rows := [][]string{{"", head(small), head(large), "ratio"}}
	for _, c := range steadyCommands {
		ws, wl := median(small.wall[c]), median(large.wall[c])
		rows = append(rows, []string{c + " wall", secs(ws), secs(wl), ratio(wl.Seconds(), ws.Seconds())})
		ms, ml := median(small.rss[c]), median(large.rss[c])
		rows = append(rows, []string{c + " peak RSS", mib(ms), mib(ml), ratio(float64(ml), float64(ms))})
		cs, cl := median(small.cpu[c]), median(large.cpu[c])
		rows = append(rows, []string{c + " CPU user+sys", secs(cs), secs(cl), ratio(cl.Seconds(), cs.Seconds())})
	}
	for _, c := range steadyCommands {
		rows = append(rows, []string{c + ": Inventory calls per device", minMax(small.inventory[c][0], small.inventory[c][1]), minMax(large.inventory[c][0], large.inventory[c][1]), ""})
	}
	for _, c := range steadyCommands {
		rows = append(rows, []string{c + ": device calls per device (all kinds)", minMax(small.allCalls[c][0], small.allCalls[c][1]), minMax(large.allCalls[c][0], large.allCalls[c][1]), ""})
	}
	for _, c := range steadyCommands {
		rows = append(rows, []string{c + ": CA calls (median)", strconv.Itoa(int(median(toInt64(small.ca[c])))), strconv.Itoa(int(median(toInt64(large.ca[c])))), ""})
	}
	rows = append(rows, []string{"load average during the measurements", small.load, large.load, ""})
	rows = append(rows, []string{"setup: enrolling the world (not measured; 32 workers)", secs(small.setup), secs(large.setup) + " (the second half)", ""})
	table(b.out, rows)
	fmt.Fprintln(b.out, "\nIssue #24's targets at 10,000 / 1,000: run ≤ 1 s and ≤ 100 MiB, status ≤ 0.3 s, one Inventory per device, 0 CA calls; the larger world ≤ 2.1× (wall times on an idle machine).")

	const hourlyRunsPerYear = 24 * 365
	b.section("State size (SQLite file + WAL), %s certificates", thousands(small.certs))
	rows = [][]string{{"after enrolling", mb(small.stateBefore)}}
	if small.runs > 0 {
		growth := (small.stateAfter - small.stateBefore) / int64(small.runs)
		rows = append(rows,
			[]string{fmt.Sprintf("after %d nothing-due runs (and as many plans and statuses)", small.runs), mb(small.stateAfter)},
			[]string{"growth per nothing-due run", mb(growth)},
			[]string{fmt.Sprintf("EXTRAPOLATED, linear: a year of hourly runs (%d)", hourlyRunsPerYear), mb(small.stateBefore + growth*hourlyRunsPerYear)})
	}
	table(b.out, rows)
	fmt.Fprintln(b.out, "(an extrapolation from a few runs, not a simulated year: the state package's own test writes a year of rows; target < 200 MB)")
}

func toInt64(v []int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}
