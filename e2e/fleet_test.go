package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/core/state/pgtest"
)

// fleetSize is the shared-fleet test's size: a small one in `make test`, the 300
// certificates on 30 devices with CERTFLEET_FLEET_TEST=full (`make fleet-test`).
func fleetSize() (devices, perDevice int) {
	if os.Getenv("CERTFLEET_FLEET_TEST") == "full" {
		return 30, 10
	}
	return 6, 4
}

// TestSharedFleetSurvivesAKilledInstance runs three `certfleet run` processes on one PostgreSQL
// state over a fleet of pemdir devices and SIGKILLs one of them mid-run. Every certificate must
// end deployed with exactly one CA order, no device may be touched by two instances at once (the
// devices' access logs show who called, in order), and the dead instance's devices must be taken
// over by the others once its claims expire.
func TestSharedFleetSurvivesAKilledInstance(t *testing.T) {
	dsn := pgtest.URL(t)
	nDevices, perDevice := fleetSize()
	total := nDevices * perDevice
	started := time.Now()

	cfg := scmsim.DefaultConfig()
	sim, err := scmsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "scm-tls.pem")
	if err := os.WriteFile(bundle, []byte(sim.TLSCACertPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	var yaml strings.Builder
	fmt.Fprintf(&yaml, `version: v1
state: {driver: postgres, dsn: "${env:E2E_STATE_DSN}", lease_ttl: 3s}
runtime: {collect_timeout: 30s, revocation_check_interval: 1h, workers: 4}
defaults:
  issuer: ca
  key: {type: ecdsa, bits: 256}
  renew_before: 30d
  subject: {organization: certfleet e2e, country: GB}
issuers:
  ca:
    type: scm
    scm: {base_url: %s, token_url: %s, client_id: certfleet-sim, client_secret: "${env:E2E_SCM_SECRET}", org_id: 1234, tls: {ca_bundle: %s}}
devices:
`, sim.URL(), sim.TokenURL(), bundle)
	device := func(d int) string { return fmt.Sprintf("web%02d", d) }
	host := func(d, i int) string { return fmt.Sprintf("s%02d-%s", i, device(d)) }
	for d := 0; d < nDevices; d++ {
		var links []string
		for i := 0; i < perDevice; i++ {
			links = append(links, host(d, i))
		}
		site := "east"
		if d%2 == 1 {
			site = "west"
		}
		ddir := filepath.Join(dir, "devices", device(d))
		if err := os.MkdirAll(ddir, 0o700); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&yaml, "  %s: {plugin: pemdir, address: %s, site: %s, options: {links: [%s], access_log: access.log}}\n", device(d), ddir, site, strings.Join(links, ", "))
	}
	yaml.WriteString("certificates:\n")
	for d := 0; d < nDevices; d++ {
		for i := 0; i < perDevice; i++ {
			h := host(d, i)
			fmt.Fprintf(&yaml, "  %s: {device: %s, sans: {dns: [%s.example.com]}, issuer_options: {cert_type: OV SSL, term: 90}, bindings: [{kind: live-link, name: %s}]}\n", h, device(d), h, h)
		}
	}
	config := filepath.Join(dir, "certfleet.yaml")
	if err := os.WriteFile(config, []byte(yaml.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	type instance struct {
		cmd         *exec.Cmd
		out, errOut bytes.Buffer
		done        chan error
	}
	start := func(n int, extra ...string) *instance {
		args := append([]string{"--config", config, "--plugin-dir", binDir, "--pins-file", filepath.Join(dir, fmt.Sprintf("pins%d.json", n)),
			"--log-level", "debug"}, extra...)
		args = append(args, "run", "--output", "json")
		in := &instance{cmd: exec.Command(filepath.Join(binDir, "certfleet"), args...), done: make(chan error, 1)}
		in.cmd.Env = append(os.Environ(), "CERTFLEET_PLUGIN_DIR=", "E2E_STATE_DSN="+dsn, "E2E_SCM_SECRET="+cfg.Clients["certfleet-sim"])
		in.cmd.Stdout, in.cmd.Stderr = &in.out, &in.errOut
		if err := in.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { in.done <- in.cmd.Wait() }()
		return in
	}
	instances := []*instance{start(0), start(1), start(2)}
	t.Cleanup(func() {
		for _, in := range instances {
			_ = in.cmd.Process.Kill()
		}
	})

	// Once a third of the orders are placed, SIGKILL an instance that has changed a device: it
	// holds claims on devices with operations half done.
	var victim *instance
	deadline := time.Now().Add(3 * time.Minute)
	for victim == nil {
		if time.Now().After(deadline) {
			t.Fatalf("only %d orders after 3 minutes", len(sim.Orders()))
		}
		time.Sleep(20 * time.Millisecond)
		if len(sim.Orders()) < total/3 {
			continue
		}
		writers := map[int]bool{}
		for d := 0; d < nDevices; d++ {
			for _, c := range accessLogCalls(t, filepath.Join(dir, "devices", device(d), "access.log")) {
				if c.write {
					writers[c.pid] = true
				}
			}
		}
		for _, in := range instances {
			if writers[in.cmd.Process.Pid] {
				victim = in
				break
			}
		}
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := len(sim.Orders())
	<-victim.done
	t.Logf("instance %d SIGKILLed after %s, with %d of %d orders placed", victim.cmd.Process.Pid, time.Since(started).Round(time.Millisecond), killedAt, total)

	var reports []engine.Report
	for _, in := range instances {
		if in == victim {
			continue
		}
		select {
		case err := <-in.done:
			if err != nil {
				t.Errorf("instance %d: %v\n%s", in.cmd.Process.Pid, err, lastLines(in.errOut.String(), 30))
			}
		case <-time.After(4 * time.Minute):
			t.Fatalf("instance %d did not finish", in.cmd.Process.Pid)
		}
		var r engine.Report
		if err := json.Unmarshal(in.out.Bytes(), &r); err != nil {
			t.Fatalf("instance %d printed no report: %v\n%s", in.cmd.Process.Pid, err, lastLines(in.errOut.String(), 30))
		}
		reports = append(reports, r)
	}
	elapsed := time.Since(started)

	// Every certificate deployed, recorded, and live on its device.
	store, err := state.OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	deployments, err := store.Deployments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	last, err := store.LastResults(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range last {
		if r.Outcome != state.OutcomeDeployed && r.Outcome != state.OutcomeUnchanged {
			t.Errorf("%s: status would show %s", name, r.Outcome)
		}
	}
	open, err := store.OpenOperations(context.Background())
	if err != nil || len(open) != 0 {
		t.Errorf("operations left open: %d, %v", len(open), err)
	}
	for d := 0; d < nDevices; d++ {
		for i := 0; i < perDevice; i++ {
			h := host(d, i)
			dep, ok := deployments[h]
			if !ok {
				t.Errorf("%s: not deployed", h)
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, "devices", device(d), "live", h, "cert.pem"))
			if err != nil || !strings.Contains(string(data), strings.TrimSpace(dep.CertPEM)) {
				t.Errorf("%s: the live certificate is not the recorded one (%v)", h, err)
			}
		}
	}

	// Exactly one CA order per certificate.
	perName := map[string]int{}
	for _, o := range sim.Orders() {
		perName[strings.TrimSuffix(o.CommonName, ".example.com")]++
	}
	for d := 0; d < nDevices; d++ {
		for i := 0; i < perDevice; i++ {
			if n := perName[host(d, i)]; n != 1 {
				t.Errorf("%s: %d CA orders, want exactly 1", host(d, i), n)
			}
		}
	}
	if len(sim.Orders()) != total {
		t.Errorf("%d CA orders for %d certificates", len(sim.Orders()), total)
	}

	// No device touched by two instances at once: in each device's access log, once another
	// instance has called, the earlier one never calls again. The victim's devices were taken over.
	victimPid := victim.cmd.Process.Pid
	takenOver, victimDevices := 0, 0
	byInstance := map[int]int{}
	for d := 0; d < nDevices; d++ {
		var callers []int
		for _, c := range accessLogCalls(t, filepath.Join(dir, "devices", device(d), "access.log")) {
			callers = append(callers, c.pid)
		}
		seen := map[int]bool{}
		last := 0
		for _, pid := range callers {
			if pid != last {
				if seen[pid] {
					t.Errorf("%s: instance %d called again after another instance had (callers in order: %v)", device(d), pid, compress(callers))
					break
				}
				seen[pid] = true
				last = pid
			}
		}
		for pid := range seen {
			byInstance[pid]++
		}
		if seen[victimPid] {
			victimDevices++
			if last != victimPid {
				takenOver++
			}
		}
	}
	// Each surviving instance reports every certificate: deployed or unchanged, or skipped when the
	// other survivor kept the device claimed for longer than this one waits (that one reports it).
	resumed, skipped := 0, 0
	for _, r := range reports {
		if len(r.Results) != total {
			t.Errorf("a report has %d results for %d certificates", len(r.Results), total)
		}
		for _, res := range r.Results {
			if res.Action == string(engine.ActionResume) && res.Outcome == state.OutcomeDeployed {
				resumed++
			}
			if res.Outcome == state.OutcomeSkipped {
				skipped++
				continue
			}
			if res.Outcome != state.OutcomeDeployed && res.Outcome != state.OutcomeUnchanged {
				t.Errorf("%s: %s %s", res.Certificate, res.Outcome, res.Error)
			}
		}
	}
	if victimDevices == 0 || resumed == 0 {
		t.Errorf("the killed instance had touched %d devices and %d operations were resumed: the kill did not test a takeover", victimDevices, resumed)
	}
	t.Logf("%d certificates on %d devices in %s; devices touched per instance %v; the killed instance had touched %d devices, %d were taken over and %d operations resumed by the others; %d results skipped (device held by the other survivor)",
		total, nDevices, elapsed.Round(time.Millisecond), byInstance, victimDevices, takenOver, resumed, skipped)
}

// call is one line of a pemdir access log: the calling host process, and whether the call could
// change the device.
type call struct {
	pid   int
	write bool
}

// accessLogCalls reads a pemdir access log (none yet: no calls).
func accessLogCalls(t *testing.T, path string) []call {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []call
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		// time, host pid, read|write, call
		fields := strings.Fields(line)
		if len(fields) != 4 {
			continue // a line being written while the test reads
		}
		pid, err := strconv.Atoi(fields[1])
		if err != nil {
			t.Fatalf("%s: bad line %q", path, line)
		}
		out = append(out, call{pid: pid, write: fields[2] == "write"})
	}
	return out
}

// compress shows runs of one caller once.
func compress(pids []int) []string {
	var out []string
	for i, p := range pids {
		if i == 0 || pids[i-1] != p {
			out = append(out, strconv.Itoa(p))
		}
	}
	return out
}

// TestMigrateToPostgresAndRunBySite moves a fleet deployed on SQLite to PostgreSQL with
// `certfleet state migrate --to postgres`: nothing is ordered again afterwards. An instance with
// --site works only on that site's devices, and status shows the whole fleet from any instance.
func TestMigrateToPostgresAndRunBySite(t *testing.T) {
	f, sim, spec := scmFleet(t, map[string][]string{"web1": {"a1", "a2"}, "web2": {"b1"}}, "30d")
	if report, res := f.run(nil); res.code != 0 || len(report.Results) != 3 {
		t.Fatalf("first run on SQLite: exit %d\n%s", res.code, res.stderr)
	}
	orders := len(sim.Orders())

	dsn := pgtest.URL(t)
	// A PostgreSQL state keeps plugin pins in the host's state directory by default: keep the
	// test's own.
	f.env = append(f.env, "E2E_STATE_DSN="+dsn, "CERTFLEET_PINS_FILE="+filepath.Join(f.dir, "pins.json"))
	f.writeConfig(spec)
	data, err := os.ReadFile(f.config)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), "state:\n  path: state.db\n", "state: {driver: postgres, dsn: \"${env:E2E_STATE_DSN}\"}\n", 1)
	text = strings.Replace(text, "  web2:\n    plugin: pemdir\n", "  web2:\n    plugin: pemdir\n    site: west\n", 1)
	if !strings.Contains(text, "driver: postgres") || !strings.Contains(text, "site: west") {
		t.Fatalf("could not rewrite the configuration:\n%s", text)
	}
	if err := os.WriteFile(f.config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	res := f.certfleet(nil, "state", "migrate", "--to", "postgres", "--from", filepath.Join(f.dir, "state.db"))
	if res.code != 0 || !strings.Contains(res.stdout, "3 deployments") {
		t.Fatalf("migrate: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if strings.Contains(res.stdout+res.stderr, dsn) {
		t.Fatal("the DSN was printed")
	}
	if res := f.certfleet(nil, "state", "migrate", "--to", "postgres", "--from", filepath.Join(f.dir, "state.db")); res.code == 0 || !strings.Contains(res.stderr, "not empty") {
		t.Fatalf("second migrate: exit %d\n%s", res.code, res.stderr)
	}

	// On PostgreSQL, the fleet is current: nothing is ordered.
	report, res := f.run(nil)
	if res.code != 0 || len(sim.Orders()) != orders {
		t.Fatalf("run on the migrated state: exit %d, %d new orders\n%s", res.code, len(sim.Orders())-orders, res.stderr)
	}
	for name, o := range outcomes(report) {
		if o != state.OutcomeUnchanged {
			t.Errorf("%s: %s after the migration", name, o)
		}
	}

	// --site west renews only web2's certificate.
	before := len(sim.Orders())
	westReport, res := f.run([]string{"CERTFLEET_SITE=west"}, "--force")
	if res.code != 0 || len(westReport.Results) != 1 || westReport.Results[0].Certificate != "b1" || len(sim.Orders()) != before+1 {
		t.Fatalf("--site west: exit %d, results %+v, %d orders\n%s", res.code, westReport.Results, len(sim.Orders())-before, res.stderr)
	}
	res = f.certfleet([]string{"CERTFLEET_SITE=west"}, "status", "--output", "json")
	var rows []engine.StatusRow
	if err := json.Unmarshal([]byte(res.stdout), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("status from the west instance: %d rows, %v\n%s", len(rows), err, res.stdout)
	}
	if res := f.certfleet([]string{"CERTFLEET_SITE=west"}, "history", "a1"); res.code != 0 || !strings.Contains(res.stdout, "a1") {
		t.Fatalf("history of a1 (on web1, another site) from the west instance: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if res := f.certfleet(nil, "--site", "north", "plan"); res.code != 2 || !strings.Contains(res.stderr, `site "north": no device carries it (sites in the configuration: [west])`) {
		t.Fatalf("unknown site: exit %d\n%s", res.code, res.stderr)
	}
}
