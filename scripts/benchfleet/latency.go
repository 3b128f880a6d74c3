//go:build linux

package main

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// latencyResult is one run enrolling a world whose CA and devices answer every call late.
type latencyResult struct {
	wall        time.Duration
	cpu         time.Duration
	load        string
	caCalls     int
	deviceCalls int
	busiest     int // device calls to the busiest device
	// caTerm, deviceTerm, workerTerm: the least time the calls can take under each limit.
	caTerm, deviceTerm, workerTerm time.Duration
	firstCommit                    time.Duration // from the run's start; -1 when none
	commitsLo, commitsHi           int
}

func (r latencyResult) bound() time.Duration { return max(r.caTerm, r.deviceTerm, r.workerTerm) }

// latency enrolls certificates on pemdir devices with the same latency on every CA and device
// call (certfleet-sim --latency), under the default concurrency limits written out, and compares
// the run with the latency bound those limits set.
func (b *bench) latency(ctx context.Context) error {
	sz := b.o.sizes
	limits := defaultLimits
	var rs []latencyResult
	for rep := 1; rep <= b.o.slowN; rep++ {
		b.progress("latency: world %d of %d: %d devices × %d certificates, %s on every CA and device call", rep, b.o.slowN, sz.latencyDevices, sz.latencyPerDev, sz.latency)
		s, err := b.startSim(ctx, "latency", "--ca", "scm", "--vendors", "pemdir", "--devices", strconv.Itoa(sz.latencyDevices),
			"--certs-per-device", strconv.Itoa(sz.latencyPerDev), "--latency", sz.latency.String(), "--pemdir-access-log", accessLogName)
		if err != nil {
			return err
		}
		r, err := b.latencyRun(ctx, s, limits)
		s.stop()
		if err != nil {
			return err
		}
		b.progress("latency: run %s, bound %s, first commit at %s", secs(r.wall), secs(r.bound()), secs(r.firstCommit))
		rs = append(rs, r)
	}
	b.printLatency(rs, limits)
	return nil
}

func (b *bench) latencyRun(ctx context.Context, s *sim, limits runtimeLimits) (latencyResult, error) {
	var r latencyResult
	cfg, err := s.writeConfig("measure", 0, limits)
	if err != nil {
		return r, err
	}
	before, err := s.caRequests(ctx)
	if err != nil {
		return r, err
	}
	m, err := s.certfleet(ctx, cfg, "run")
	if err != nil {
		return r, err
	}
	after, err := s.caRequests(ctx)
	if err != nil {
		return r, err
	}
	var logs accessLogs
	calls, err := logs.since(s, len(s.desc.Devices))
	if err != nil {
		return r, err
	}
	lat := b.o.sizes.latency
	r.wall, r.cpu, r.load, r.caCalls = m.wall, m.cpu, loadAverage(), after-before
	_, r.busiest, r.deviceCalls = perDevice(calls, "")
	r.commitsLo, r.commitsHi, _ = perDevice(calls, "Commit")
	r.caTerm = time.Duration(r.caCalls) * lat / time.Duration(limits.PerIssuer)
	r.deviceTerm = time.Duration(r.busiest) * lat / time.Duration(limits.PerDevice)
	// Workers bound device calls (and, before issue #24's engine, CA calls too: a lower bound
	// that holds for both counts device calls only).
	r.workerTerm = time.Duration(r.deviceCalls) * lat / time.Duration(limits.Workers)
	r.firstCommit = -1
	for _, cs := range calls {
		for _, c := range cs {
			if c.call == "Commit" && (r.firstCommit < 0 || c.at.Sub(m.start) < r.firstCommit) {
				r.firstCommit = c.at.Sub(m.start)
			}
		}
	}
	return r, nil
}

func (b *bench) printLatency(rs []latencyResult, limits runtimeLimits) {
	sz := b.o.sizes
	pick := func(f func(latencyResult) time.Duration) time.Duration {
		v := make([]time.Duration, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	wall := pick(func(r latencyResult) time.Duration { return r.wall })
	bound := pick(latencyResult.bound)
	r := rs[0]
	b.section("%s certificates on %d devices, %s on every CA and device call (SCM simulator, pemdir devices); median of %d",
		thousands(sz.latencyDevices*sz.latencyPerDev), sz.latencyDevices, sz.latency, len(rs))
	rows := [][]string{
		{"limits", fmt.Sprintf("workers %d, per_issuer %d, per_device %d (the defaults, written out)", limits.Workers, limits.PerIssuer, limits.PerDevice)},
		{"calls (first world)", fmt.Sprintf("%d CA, %d device (busiest device %d)", r.caCalls, r.deviceCalls, r.busiest)},
		{"bound: CA calls × latency / per_issuer", secs(pick(func(r latencyResult) time.Duration { return r.caTerm }))},
		{"bound: busiest device's calls × latency / per_device", secs(pick(func(r latencyResult) time.Duration { return r.deviceTerm }))},
		{"bound: device calls × latency / workers", secs(pick(func(r latencyResult) time.Duration { return r.workerTerm }))},
		{"latency bound (the largest of the three)", secs(bound)},
		{"run wall", fmt.Sprintf("%s = %s the bound", secs(wall), ratio(wall.Seconds(), bound.Seconds()))},
		{"run CPU user+sys (core and plugins)", secs(pick(func(r latencyResult) time.Duration { return r.cpu }))},
		{"load average at the end of the run", r.load},
		{"first device Commit after the run's start", secs(pick(func(r latencyResult) time.Duration { return r.firstCommit }))},
	}
	lo, hi := r.commitsLo, r.commitsHi
	for _, x := range rs {
		lo, hi = min(lo, x.commitsLo), max(hi, x.commitsHi)
	}
	rows = append(rows, []string{"Commits per device", minMax(lo, hi)})
	table(b.out, rows)
	fmt.Fprintln(b.out, "\nIssue #24's targets: ≤ 1.2× the latency bound, the first device committed within 5 s of the run's start, one Commit per device.")
}
