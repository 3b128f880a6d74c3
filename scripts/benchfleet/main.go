//go:build linux

// Command benchfleet (`make bench-fleet`) builds simulated fleets with certfleet-sim on loopback,
// runs the certfleet binaries of bin/ against them and prints the figures of issue #24's "Must
// show" section, measured side by side on one machine: the steady state at two sizes, a run
// against slow devices and a slow CA, 100 ACME certificates against one Pebble (and, with -peers,
// sequential certbot and lego against the same Pebble) and the state's growth. docs/performance.md
// says how to read the table.
//
// Wall times are measured around each certfleet process; its peak RSS and CPU time are what GNU
// time reports (getrusage of a child it forked; see certfleet below for why not ours). Device calls
// are counted from the pemdir plugin's access log (one line per call, with its name and time),
// CA calls from certfleet-sim's stats endpoint.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchfleet:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	bin   string
	work  string
	keep  bool
	n     int
	slowN int
	quick bool
	peers bool
	// vaSleep is Pebble's random validation sleep limit (certfleet-sim --acme-va-sleep).
	vaSleep  int
	sections map[string]bool
	sizes    sizes
}

// sizes of the worlds.
type sizes struct {
	steadyDevices  int // the small steady-state world; the large one has twice as many devices
	certsPerDevice int
	latencyDevices int
	latencyPerDev  int
	latency        time.Duration
	acmeDevices    int
	acmePerDevice  int
}

var fullSizes = sizes{steadyDevices: 1000, certsPerDevice: 10, latencyDevices: 100, latencyPerDev: 10, latency: 50 * time.Millisecond, acmeDevices: 10, acmePerDevice: 10}

// quickSizes make a smoke run of every section in well under two minutes.
var quickSizes = sizes{steadyDevices: 20, certsPerDevice: 10, latencyDevices: 5, latencyPerDev: 4, latency: 50 * time.Millisecond, acmeDevices: 2, acmePerDevice: 5}

var allSections = []string{"steady", "latency", "acme"}

func parseFlags(args []string) (options, error) {
	o := options{sections: map[string]bool{}}
	var only string
	fs := flag.NewFlagSet("benchfleet", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "bin", "directory holding certfleet, certfleet-sim and the plugins (make build)")
	fs.StringVar(&o.work, "work", "", "directory for the worlds (default: a new temporary directory, removed at the end)")
	fs.BoolVar(&o.keep, "keep", false, "keep the worlds' directories (configurations, state, access logs) for a look afterwards")
	fs.IntVar(&o.n, "n", 5, "repetitions of each steady-state command; the table shows medians")
	fs.IntVar(&o.slowN, "slow-n", 1, "repetitions of the slow sections (a run against 50 ms latency, the ACME runs); each builds a fresh world")
	fs.BoolVar(&o.quick, "quick", false, "small worlds: a smoke run of every section (figures not comparable with the issue's)")
	fs.BoolVar(&o.peers, "peers", false, "also time sequential certbot and lego (installed with apt-get when missing) against the same Pebble")
	fs.IntVar(&o.vaSleep, "acme-va-sleep", 0, "Pebble's random sleep before each validation, up to this many seconds minus one (PEBBLE_VA_SLEEPTIME; Pebble's own default is 5); 0: PEBBLE_VA_NOSLEEP=1")
	fs.StringVar(&only, "only", strings.Join(allSections, ","), "sections to run: "+strings.Join(allSections, ", "))
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.n < 1 || o.slowN < 1 {
		return o, errors.New("-n and -slow-n must be 1 or more")
	}
	if o.vaSleep < 0 {
		return o, errors.New("-acme-va-sleep must not be negative")
	}
	for _, s := range strings.Split(only, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(allSections, s) {
			return o, fmt.Errorf("-only: unknown section %q (known: %s)", s, strings.Join(allSections, ", "))
		}
		o.sections[s] = true
	}
	o.sizes = fullSizes
	if o.quick {
		o.sizes = quickSizes
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return o, err
	}
	o.bin = bin
	if _, err := os.Stat(gnuTime); err != nil {
		return o, fmt.Errorf("%s (GNU time, Debian package time) measures each command: apt-get install time: %w", gnuTime, err)
	}
	for _, name := range []string{"certfleet", "certfleet-sim", "certfleet-plugin-pemdir"} {
		if _, err := os.Stat(filepath.Join(o.bin, name)); err != nil {
			return o, fmt.Errorf("-bin %s: no %s in it (run make build): %w", o.bin, name, err)
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.work == "" {
		if o.work, err = os.MkdirTemp("", "benchfleet-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(o.work)
		}
	} else if err := os.MkdirAll(o.work, 0o700); err != nil {
		return err
	}
	b := &bench{o: o, out: out, started: time.Now()}
	fmt.Fprintf(out, "certfleet bench-fleet: %s; -n %d, -slow-n %d%s; worlds in %s\n", time.Now().UTC().Format(time.RFC3339), o.n, o.slowN, map[bool]string{true: ", QUICK (small worlds)"}[o.quick], o.work)
	fmt.Fprintf(out, "binaries: %s (%s); %d CPUs, load average %s at the start\n", o.bin, b.certfleetVersion(ctx), runtime.NumCPU(), loadAverage())
	if o.sections["steady"] {
		if err := b.steady(ctx); err != nil {
			return fmt.Errorf("steady state: %w", err)
		}
	}
	if o.sections["latency"] {
		if err := b.latency(ctx); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	if o.sections["acme"] {
		if err := b.acme(ctx); err != nil {
			return fmt.Errorf("acme: %w", err)
		}
	}
	fmt.Fprintf(out, "\nbench-fleet took %s; load average %s at the end\n", time.Since(b.started).Round(time.Second), loadAverage())
	return nil
}

type bench struct {
	o       options
	out     io.Writer
	started time.Time
	worlds  int
}

func (b *bench) certfleetVersion(ctx context.Context) string {
	v, err := exec.CommandContext(ctx, filepath.Join(b.o.bin, "certfleet"), "--version").Output()
	if err != nil {
		return "version unknown"
	}
	return strings.TrimSpace(string(v))
}

// loadAverage is the machine's 1-minute load average, printed with each section: figures taken
// while other work runs are slower than the machine can do.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(data))[0]
}

// section starts a section of the report.
func (b *bench) section(format string, args ...any) {
	fmt.Fprintf(b.out, "\n## "+format+"\n\n", args...)
}

// progress goes to stderr, so stdout is the report alone.
func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, args...))
}

// ---- the simulator ----

// description is what certfleet-sim prints (the fields used here).
type description struct {
	Config   string `json:"config"`
	StatsURL string `json:"stats_url"`
	CA       struct {
		Type     string   `json:"type"`
		URL      string   `json:"url"`
		Settings []string `json:"settings"`
		// Challenges: where challenges are answered (certfleet-sim --acme-challenges).
		Challenges *struct {
			DNSServer  string `json:"dns_server"`
			HTTP01Port int    `json:"http01_port"`
		} `json:"challenges"`
	} `json:"ca"`
	Devices []struct {
		Name    string `json:"name"`
		Plugin  string `json:"plugin"`
		Address string `json:"address"`
	} `json:"devices"`
	Env map[string]string `json:"env"`
}

// sim is a running certfleet-sim and its world.
type sim struct {
	dir  string
	cmd  *exec.Cmd
	desc description
	done chan struct{}
	b    *bench
}

// startSim starts certfleet-sim in a new directory under the work directory.
func (b *bench) startSim(ctx context.Context, name string, args ...string) (*sim, error) {
	b.worlds++
	dir := filepath.Join(b.o.work, fmt.Sprintf("%02d-%s", b.worlds, name))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ready := filepath.Join(dir, "ready.json")
	cmd := exec.Command(filepath.Join(b.o.bin, "certfleet-sim"), append([]string{"--out", dir, "--ready-file", ready}, args...)...)
	logf, err := os.Create(filepath.Join(dir, "sim.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = io.Discard, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &sim{dir: dir, cmd: cmd, done: make(chan struct{}), b: b}
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		data, err := os.ReadFile(ready)
		if err == nil && len(data) > 0 {
			if err := json.Unmarshal(data, &s.desc); err != nil {
				s.stop()
				return nil, fmt.Errorf("certfleet-sim description: %w", err)
			}
			return s, nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(dir, "sim.log"))
			return nil, fmt.Errorf("certfleet-sim %s ended before it was ready: %s", strings.Join(args, " "), strings.TrimSpace(string(log)))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("certfleet-sim not ready after 2 minutes")
		}
	}
}

// stop ends the simulator (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (s *sim) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if !s.b.o.keep {
		// The worlds are large (a key and a certificate per certificate): free the disk as we go.
		_ = os.RemoveAll(s.dir)
	}
}

// caRequests asks the simulator how many requests its CA has served.
func (s *sim) caRequests(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.desc.StatsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("certfleet-sim stats: %w", err)
	}
	defer resp.Body.Close()
	var st struct {
		CARequests int `json:"ca_requests"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, fmt.Errorf("certfleet-sim stats: %w", err)
	}
	return st.CARequests, nil
}

// runtimeLimits are certfleet's runtime section; zero fields are left out (the defaults).
type runtimeLimits struct {
	Workers, PerIssuer, PerDevice int
}

// The defaults of core/config (load.go), written out where a figure is computed from them.
var defaultLimits = runtimeLimits{Workers: 8, PerIssuer: 4, PerDevice: 1}

// writeConfig writes a variant of the simulator's configuration: only the first keepDevices
// devices (all when 0) and their certificates, with the given runtime limits.
func (s *sim) writeConfig(name string, keepDevices int, limits runtimeLimits) (string, error) {
	data, err := os.ReadFile(s.desc.Config)
	if err != nil {
		return "", err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("%s: %w", s.desc.Config, err)
	}
	if keepDevices > 0 {
		keep := map[string]bool{}
		for _, d := range s.desc.Devices[:keepDevices] {
			keep[d.Name] = true
		}
		devices, _ := cfg["devices"].(map[string]any)
		for n := range devices {
			if !keep[n] {
				delete(devices, n)
			}
		}
		certs, _ := cfg["certificates"].(map[string]any)
		for n, c := range certs {
			if m, _ := c.(map[string]any); !keep[fmt.Sprint(m["device"])] {
				delete(certs, n)
			}
		}
	}
	rt, _ := cfg["runtime"].(map[string]any)
	if rt == nil {
		rt = map[string]any{}
		cfg["runtime"] = rt
	}
	for k, v := range map[string]int{"workers": limits.Workers, "per_issuer": limits.PerIssuer, "per_device": limits.PerDevice} {
		if v > 0 {
			rt[k] = v
		}
	}
	outData, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.dir, name+".yaml")
	return path, os.WriteFile(path, outData, 0o600)
}

// measurement of one certfleet process.
type measurement struct {
	wall   time.Duration
	maxRSS int64 // bytes
	// cpu is user + system time of the process and the plugin processes it waited for: on a
	// shared machine it moves far less with the load than the wall time.
	cpu   time.Duration
	start time.Time
}

// gnuTime runs the measured processes. Not our own getrusage: Go starts children with
// vfork, and Linux carries the parent's peak RSS into the child's at exec (exec_mmap), so every
// figure would be at least this program's own peak. GNU time forks, and its child starts afresh.
const gnuTime = "/usr/bin/time"

// certfleet runs bin/certfleet with cfg and args; a failure is an error with the output's tail.
func (s *sim) certfleet(ctx context.Context, cfg string, args ...string) (measurement, error) {
	usage := filepath.Join(s.dir, "rusage.txt")
	cmd := exec.CommandContext(ctx, gnuTime, append([]string{"-o", usage, "-f", "%M %U %S", filepath.Join(s.b.o.bin, "certfleet")}, args...)...)
	cmd.Env = append(os.Environ(), "CERTFLEET_CONFIG="+cfg, "CERTFLEET_PLUGIN_DIR="+s.b.o.bin,
		"CERTFLEET_PINS_FILE="+filepath.Join(s.dir, "pins.json"), "CERTFLEET_LOG_LEVEL=warn")
	for k, v := range s.desc.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var tail tailBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &tail
	// GNU time passes no signal on: stop its whole process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	m := measurement{start: time.Now()}
	err := cmd.Run()
	m.wall = time.Since(m.start)
	if err != nil {
		return m, fmt.Errorf("certfleet %s (%s): %w: %s", strings.Join(args, " "), filepath.Base(cfg), err, tail.String())
	}
	data, err := os.ReadFile(usage)
	if err != nil {
		return m, err
	}
	var kib int64
	var user, sys float64
	if _, err := fmt.Sscanf(lastLine(string(data)), "%d %f %f", &kib, &user, &sys); err != nil {
		return m, fmt.Errorf("%s: %q: %w", gnuTime, data, err)
	}
	m.maxRSS = kib * 1024
	m.cpu = time.Duration((user + sys) * float64(time.Second))
	return m, nil
}

// tailBuffer keeps the last 4 KiB written.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}
func (t *tailBuffer) String() string { return strings.TrimSpace(string(t.b)) }

// ---- device calls from the pemdir access logs ----

const accessLogName = "access.log"

// deviceCall is one line of a pemdir access log.
type deviceCall struct {
	at   time.Time
	call string
}

// accessLogs reads the devices' access logs from where the previous read stopped.
type accessLogs struct {
	offsets map[string]int64
}

// since returns, per device, the calls logged since the last call of since.
func (a *accessLogs) since(s *sim, devices int) (map[string][]deviceCall, error) {
	if a.offsets == nil {
		a.offsets = map[string]int64{}
	}
	out := map[string][]deviceCall{}
	for _, d := range s.desc.Devices[:devices] {
		path := filepath.Join(d.Address, accessLogName)
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			out[d.Name] = nil
			continue
		}
		if err != nil {
			return nil, err
		}
		if _, err := f.Seek(a.offsets[path], io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		data, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		a.offsets[path] += int64(len(data))
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			fields := strings.Fields(line) // time, host pid, read|write, call
			if len(fields) != 4 {
				if line != "" {
					return nil, fmt.Errorf("%s: line %q is not time, pid, mode, call (a pemdir plugin older than this script?)", path, line)
				}
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, fields[0])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			out[d.Name] = append(out[d.Name], deviceCall{at: at, call: fields[3]})
		}
	}
	return out, nil
}

// perDevice counts one call per device: min and max over the devices, and the total.
func perDevice(calls map[string][]deviceCall, call string) (lo, hi, total int) {
	first := true
	for _, cs := range calls {
		n := 0
		for _, c := range cs {
			if call == "" || c.call == call {
				n++
			}
		}
		if first || n < lo {
			lo = n
		}
		if first || n > hi {
			hi = n
		}
		first = false
		total += n
	}
	return lo, hi, total
}

func minMax(lo, hi int) string {
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d–%d", lo, hi)
}

// ---- statistics and formatting ----

func median[T int64 | time.Duration | float64](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
func mib(b int64) string          { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
func mb(b int64) string           { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// stateSize is the size of the SQLite state: the database and its write-ahead log.
func stateSize(dir string) int64 {
	var n int64
	for _, name := range []string{"state.db", "state.db-wal"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil {
			n += st.Size()
		}
	}
	return n
}

// copyState copies the SQLite state files (no process has them open) from one directory to another.
func copyState(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(to)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "state.db") {
			if err := os.Remove(filepath.Join(to, e.Name())); err != nil {
				return err
			}
		}
	}
	entries, err = os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "state.db") || e.IsDir() {
			continue
		}
		// Streamed: a state read whole would raise this program's peak RSS for nothing.
		if err := copyFile(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

func table(out io.Writer, rows [][]string) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	_ = tw.Flush()
}
