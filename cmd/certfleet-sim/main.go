// Command certfleet-sim starts the simulators on loopback — a CA (the Sectigo SCM simulator or
// Pebble for ACME) and simulated devices (pemdir directories, a Citrix ADC, ...) — writes a
// ready-to-use certfleet configuration for them into --out, prints the endpoints and the test
// roots as JSON on stdout, and runs until interrupted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/certfleet/certfleet/core/atomicfile"
	"github.com/certfleet/certfleet/core/issuer/scm/scmsim"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "certfleet-sim:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	out            string
	ca             string
	scmAPI         string
	devices        int
	certsPerDevice int
	vendors        []string
	latency        time.Duration
	readyFile      string
	// scmPendingCollects: collects an SCM order answers "pending" before it is issued.
	scmPendingCollects int
	pemdirAccessLog    string
	// acmeChallenges: Pebble validates DNS-01/HTTP-01 for real instead of pre-validating names.
	acmeChallenges bool
	acmeVASleep    int
}

// knownVendors are the simulated device kinds, in the order they are started.
var knownVendors = []string{"pemdir", "citrix-nitro", "paloalto-panos", "f5-bigip", "citrix-endpoint-management", "haproxy-runtime"}

func parseFlags(args []string) (options, error) {
	var o options
	var vendors string
	fs := flag.NewFlagSet("certfleet-sim", flag.ContinueOnError)
	fs.StringVar(&o.out, "out", "", "directory to write the configuration, CA bundles, device directories and state into (required)")
	fs.StringVar(&o.ca, "ca", defaultCA, "the CA to simulate: scm (Sectigo Certificate Manager) or acme (Pebble)")
	fs.StringVar(&o.scmAPI, "scm-api", "admin", "with --ca scm, the API the configuration uses: admin (Admin API) or enrollment (a REST Enrollment account, with an Admin API lookup account)")
	fs.IntVar(&o.devices, "devices", 2, "number of pemdir devices")
	fs.IntVar(&o.certsPerDevice, "certs-per-device", 2, "certificates per pemdir device")
	fs.StringVar(&vendors, "vendors", strings.Join(knownVendors, ","), "simulated device kinds to start: "+strings.Join(knownVendors, ", "))
	fs.DurationVar(&o.latency, "latency", 0, "latency added to every simulated CA and device call (pemdir devices through the plugin's call_delay option)")
	fs.IntVar(&o.scmPendingCollects, "scm-pending-collects", scmsim.DefaultConfig().PendingCollects, "with --ca scm, how many collects answer \"pending\" before an order is issued (0: issued at the first collect)")
	fs.BoolVar(&o.acmeChallenges, "acme-challenges", false, "with --ca acme, Pebble validates challenges for real (DNS-01 through the simulator's RFC 2136 DNS server on loopback, HTTP-01 on a loopback port) instead of treating every name as pre-validated (as a Sectigo ACME account with validated domains does)")
	fs.IntVar(&o.acmeVASleep, "acme-va-sleep", 0, "with --acme-challenges, Pebble's random sleep before each validation, at most this many seconds minus one (PEBBLE_VA_SLEEPTIME; Pebble's default is 5); 0: none (PEBBLE_VA_NOSLEEP=1)")
	fs.StringVar(&o.pemdirAccessLog, "pemdir-access-log", "", "file name inside each pemdir directory where the plugin logs every call (its access_log option)")
	fs.StringVar(&o.readyFile, "ready-file", "", "write the JSON description here too, once everything listens (for scripts)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.out == "" {
		return o, errors.New("--out DIR is required")
	}
	if o.ca != "scm" && o.ca != "acme" {
		return o, fmt.Errorf("--ca %q: use scm or acme", o.ca)
	}
	if o.scmAPI != "admin" && o.scmAPI != "enrollment" {
		return o, fmt.Errorf("--scm-api %q: use admin or enrollment", o.scmAPI)
	}
	if o.latency < 0 || o.scmPendingCollects < 0 || o.acmeVASleep < 0 {
		return o, errors.New("--latency, --scm-pending-collects and --acme-va-sleep must not be negative")
	}
	if (o.acmeChallenges || o.acmeVASleep > 0) && o.ca != "acme" {
		return o, errors.New("--acme-challenges and --acme-va-sleep need --ca acme")
	}
	if o.acmeVASleep > 0 && !o.acmeChallenges {
		return o, errors.New("--acme-va-sleep needs --acme-challenges (without challenges Pebble validates nothing)")
	}
	if o.devices < 0 || o.certsPerDevice < 1 {
		return o, errors.New("--devices must be 0 or more and --certs-per-device 1 or more")
	}
	for _, v := range strings.Split(vendors, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if !contains(knownVendors, v) {
			return o, fmt.Errorf("--vendors: unknown %q (known: %s)", v, strings.Join(knownVendors, ", "))
		}
		o.vendors = append(o.vendors, v)
	}
	return o, nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// world is everything started, and what goes into the configuration.
type world struct {
	out    string
	issuer string // YAML of the issuers section
	// issuerOptions are the defaults every certificate needs for this CA, as YAML.
	issuerOptions string
	devices       []string
	certs         []string
	env           map[string]string // secrets the configuration references, as ${env:NAME}
	// caRequests counts the requests the simulated CA has served.
	caRequests func() int
	info       description
	closers    []func()
}

// description is printed as JSON.
type description struct {
	Config string `json:"config"`
	// StatsURL answers GET with the simulators' counters as JSON (see stats).
	StatsURL string            `json:"stats_url"`
	Env      map[string]string `json:"env"`
	CA       caInfo            `json:"ca"`
	Devices  []deviceInfo      `json:"devices"`
	RootsPEM []string          `json:"roots_pem"`
}

type caInfo struct {
	Type string `json:"type"`
	URL  string `json:"url"`
	// Settings of the simulated CA that a benchmark note cites (Pebble's knobs).
	Settings []string `json:"settings,omitempty"`
	// Challenges is how other ACME clients answer challenges at this CA (--acme-challenges).
	Challenges *challengeInfo `json:"challenges,omitempty"`
}

// challengeInfo is where challenges are answered: the DNS server Pebble's VA asks, which takes
// RFC 2136 updates signed with the TSIG key (its secret in Env as CERTFLEET_SIM_TSIG_SECRET),
// and the loopback port Pebble's VA fetches HTTP-01 tokens from.
type challengeInfo struct {
	DNSServer     string `json:"dns_server"`
	TSIGKey       string `json:"tsig_key"`
	TSIGAlgorithm string `json:"tsig_algorithm"`
	HTTP01Port    int    `json:"http01_port"`
}

type deviceInfo struct {
	Name    string            `json:"name"`
	Plugin  string            `json:"plugin"`
	Address string            `json:"address"`
	Served  map[string]string `json:"served,omitempty"`
}

func (w *world) close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
}

// writeFile writes a file under out and returns its path.
func (w *world) writeFile(name, content string, mode os.FileMode) (string, error) {
	path := filepath.Join(w.out, name)
	return path, atomicfile.Write(path, []byte(content), mode)
}

func run(args []string, stdout io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	out, err := filepath.Abs(o.out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	w := &world{out: out, env: map[string]string{}}
	defer w.close()
	if err := startCA(w, o); err != nil {
		return err
	}
	for _, v := range o.vendors {
		if err := startVendor(w, v, o); err != nil {
			return fmt.Errorf("start %s simulator: %w", v, err)
		}
	}
	if w.info.StatsURL, err = w.serveStats(); err != nil {
		return err
	}
	cfgPath, err := w.writeConfig()
	if err != nil {
		return err
	}
	w.info.Config, w.info.Env = cfgPath, w.env
	data, err := json.MarshalIndent(w.info, "", "  ")
	if err != nil {
		return err
	}
	if _, err := stdout.Write(append(data, '\n')); err != nil {
		return err
	}
	if o.readyFile != "" {
		if err := atomicfile.Write(o.readyFile, append(data, '\n'), 0o600); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

func (w *world) writeConfig() (string, error) {
	var b strings.Builder
	b.WriteString("# Written by certfleet-sim: simulated devices and CA on loopback.\nversion: v1\n")
	b.WriteString("state:\n  path: state.db\n")
	b.WriteString("runtime:\n  collect_timeout: 1m\n")
	b.WriteString("defaults:\n  issuer: sim-ca\n  key: {type: ecdsa, bits: 256}\n  renew_before: 30d\n  subject: {organization: certfleet demo, locality: Leeds, state: West Yorkshire, country: GB}\n")
	if w.issuerOptions != "" {
		b.WriteString("  issuer_options: " + w.issuerOptions + "\n")
	}
	b.WriteString("issuers:\n" + w.issuer + "\n")
	b.WriteString("devices:\n" + strings.Join(w.devices, "\n") + "\n")
	b.WriteString("certificates:\n" + strings.Join(w.certs, "\n") + "\n")
	envLines := make([]string, 0, len(w.env))
	for k, v := range w.env {
		envLines = append(envLines, fmt.Sprintf("export %s=%q", k, v))
	}
	sort.Strings(envLines)
	if _, err := w.writeFile("sim.env", strings.Join(envLines, "\n")+"\n", 0o600); err != nil {
		return "", err
	}
	return w.writeFile("certfleet.yaml", b.String(), 0o600)
}

// stats are the simulators' counters, for benchmarks (scripts/benchfleet) that count the calls a
// command makes.
type stats struct {
	CARequests int `json:"ca_requests"`
}

// serveStats answers GET / on a loopback port with the stats; it returns the URL.
func (w *world) serveStats() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("stats listener: %w", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		var s stats
		if w.caRequests != nil {
			s.CARequests = w.caRequests()
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(s)
	})}
	go func() { _ = srv.Serve(ln) }()
	w.closers = append(w.closers, func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/", nil
}
