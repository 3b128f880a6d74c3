//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// acmeResult is one tool's time for the certificates.
type acmeResult struct {
	name  string
	walls []time.Duration
	// cpus are the client's own CPU time (user + system, its child processes included: the
	// plugins for certfleet), per repetition; not the simulator's.
	cpus []time.Duration
	// missing says why a peer has no figure.
	missing string
}

func (r acmeResult) wall() time.Duration { return median(r.walls) }

// acmeSimArgs start certfleet-sim's Pebble validating challenges for real, the same for every
// tool: certfleet answers DNS-01 (its only challenge: a network device serves no HTTP-01) through
// the simulator's RFC 2136 DNS server, certbot and lego answer HTTP-01 with their own standalone
// listener on the loopback port Pebble's VA fetches from.
func (b *bench) acmeSimArgs() []string {
	return []string{"--ca", "acme", "--acme-challenges", "--acme-va-sleep", strconv.Itoa(b.o.vaSleep)}
}

// acme enrolls the certificates through certfleet against Pebble with the default limits and
// one at a time, and (-peers) has certbot and lego issue as many, one process per certificate
// as from cron, against a Pebble set up the same way.
func (b *bench) acme(ctx context.Context) error {
	sz := b.o.sizes
	certs := sz.acmeDevices * sz.acmePerDevice
	modes := []struct {
		name   string
		limits runtimeLimits
	}{
		{fmt.Sprintf("certfleet, defaults (workers %d, per_issuer %d, per_device %d)", defaultLimits.Workers, defaultLimits.PerIssuer, defaultLimits.PerDevice), runtimeLimits{}},
		{"certfleet, sequential (workers 1, per_issuer 1, per_device 1)", runtimeLimits{Workers: 1, PerIssuer: 1, PerDevice: 1}},
	}
	var results []acmeResult
	var settings []string
	for _, mode := range modes {
		res := acmeResult{name: mode.name}
		for rep := 1; rep <= b.o.slowN; rep++ {
			s, err := b.startSim(ctx, "acme", append(b.acmeSimArgs(), "--vendors", "pemdir", "--devices", strconv.Itoa(sz.acmeDevices),
				"--certs-per-device", strconv.Itoa(sz.acmePerDevice))...)
			if err != nil {
				return err
			}
			settings = s.desc.CA.Settings
			cfg, err := s.writeConfig("measure", 0, mode.limits)
			if err == nil {
				var m measurement
				m, err = s.certfleet(ctx, cfg, "run")
				res.walls = append(res.walls, m.wall)
				res.cpus = append(res.cpus, m.cpu)
				b.progress("acme: %s: %d certificates in %s", mode.name, certs, secs(m.wall))
			}
			s.stop()
			if err != nil {
				return err
			}
		}
		results = append(results, res)
	}
	if b.o.peers {
		peers, err := b.acmePeers(ctx, certs)
		if err != nil {
			return err
		}
		results = append(results, peers...)
	} else {
		results = append(results, acmeResult{name: "certbot, sequential", missing: "not run (-peers)"}, acmeResult{name: "lego, sequential", missing: "not run (-peers)"})
	}
	b.printACME(results, certs, settings)
	return nil
}

// peer is another ACME client issuing one certificate per process.
type peer struct {
	name    string // binary and Debian package
	version []string
	// issue is the command for one certificate with its own new ECDSA P-256 key.
	issue func(a acmeAccount, dir, domain string) *exec.Cmd
	// challenge says how the peer answers challenges, for the table.
	challenge string
}

// acmeAccount is what a client needs to reach the simulator's Pebble.
type acmeAccount struct {
	directory, kid, hmac, caBundle string
	// http01Port is where Pebble's VA fetches HTTP-01 tokens on 127.0.0.1.
	http01Port int
}

var peers = []peer{
	{name: "certbot", version: []string{"--version"}, challenge: "HTTP-01, --standalone on 127.0.0.1",
		issue: func(a acmeAccount, dir, domain string) *exec.Cmd {
			// certbot's standalone authenticator serves the token itself (certbot
			// documentation, "Standalone": --http-01-port, --http-01-address).
			cmd := exec.Command("certbot", "certonly", "--non-interactive", "--agree-tos", "-m", "ops@example.test", "--no-eff-email",
				"--server", a.directory, "--eab-kid", a.kid, "--eab-hmac-key", a.hmac,
				"--config-dir", filepath.Join(dir, "etc"), "--work-dir", filepath.Join(dir, "work"), "--logs-dir", filepath.Join(dir, "logs"),
				"--key-type", "ecdsa", "--elliptic-curve", "secp256r1",
				"--standalone", "--preferred-challenges", "http", "--http-01-address", "127.0.0.1", "--http-01-port", strconv.Itoa(a.http01Port),
				"-d", domain)
			cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+a.caBundle)
			return cmd
		}},
	{name: "lego", version: []string{"--version"}, challenge: "HTTP-01, --http on 127.0.0.1",
		issue: func(a acmeAccount, dir, domain string) *exec.Cmd {
			// lego's own HTTP server answers HTTP-01 (lego CLI documentation: --http,
			// --http.port "interface:port").
			cmd := exec.Command("lego", "--accept-tos", "--email", "ops@example.test", "--server", a.directory,
				"--eab", "--kid", a.kid, "--hmac", a.hmac, "--key-type", "ec256", "--path", dir,
				"--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", a.http01Port), "--domains", domain, "run")
			cmd.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+a.caBundle)
			return cmd
		}},
}

func (b *bench) acmePeers(ctx context.Context, certs int) ([]acmeResult, error) {
	s, err := b.startSim(ctx, "acme-peers", append(b.acmeSimArgs(), "--vendors", "", "--devices", "0")...)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	acct, err := s.acmeAccount()
	if err != nil {
		return nil, err
	}
	var out []acmeResult
	for _, p := range peers {
		res := acmeResult{name: p.name + ", sequential (one process per certificate)"}
		version, err := b.ensureInstalled(ctx, p)
		if err != nil {
			res.missing = err.Error()
			out = append(out, res)
			continue
		}
		res.name = version + ", sequential (one process per certificate; " + p.challenge + ")"
		for rep := 1; rep <= b.o.slowN; rep++ {
			dir := filepath.Join(s.dir, fmt.Sprintf("%s-%d", p.name, rep))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
			// The account is registered by a first certificate outside the timing, as a cron job
			// finds it registered.
			if err := runPeer(ctx, p.issue(acct, dir, fmt.Sprintf("warm-up.%s-%d.example.test", p.name, rep))); err != nil {
				res.missing = fmt.Sprintf("%s failed: %v", p.name, err)
				break
			}
			start := time.Now()
			var cpu time.Duration
			for i := 1; i <= certs && err == nil; i++ {
				cmd := p.issue(acct, dir, fmt.Sprintf("site%03d.%s-%d.example.test", i, p.name, rep))
				err = runPeer(ctx, cmd)
				if cmd.ProcessState != nil {
					cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				}
			}
			if err != nil {
				res.missing = fmt.Sprintf("%s failed: %v", p.name, err)
				break
			}
			res.walls = append(res.walls, time.Since(start))
			res.cpus = append(res.cpus, cpu)
			b.progress("acme: %s: %d certificates in %s", version, certs, secs(time.Since(start)))
		}
		out = append(out, res)
	}
	return out, nil
}

func runPeer(ctx context.Context, cmd *exec.Cmd) error {
	var tail tailBuffer
	cmd.Stdout, cmd.Stderr = &tail, &tail
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			// Not the arguments: they hold the EAB HMAC key.
			return fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Args[0]), err, lastLine(tail.String()))
		}
		return nil
	case <-ctx.Done():
		_ = cmd.Process.Signal(os.Interrupt)
		<-done
		return ctx.Err()
	}
}

// ensureInstalled finds the peer, or installs its Debian package; it returns its version line.
func (b *bench) ensureInstalled(ctx context.Context, p peer) (string, error) {
	if _, err := exec.LookPath(p.name); err != nil {
		b.progress("acme: %s missing: apt-get install -y %s", p.name, p.name)
		out, err := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", p.name).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s not installed (apt-get install %s: %v: %s)", p.name, p.name, err, lastLine(string(out)))
		}
	}
	out, err := exec.CommandContext(ctx, p.name, p.version...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v", p.name, strings.Join(p.version, " "), err)
	}
	// Debian's lego says "version dev": the package's version is the one to cite.
	if pkg, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", p.name).Output(); err == nil && len(pkg) > 0 {
		return fmt.Sprintf("%s %s (Debian package)", p.name, strings.TrimSpace(string(pkg))), nil
	}
	return lastLine(string(out)), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// acmeAccount reads the simulator's ACME issuer: its directory, the EAB key id from the written
// configuration and the HMAC key from its environment.
func (s *sim) acmeAccount() (acmeAccount, error) {
	data, err := os.ReadFile(s.desc.Config)
	if err != nil {
		return acmeAccount{}, err
	}
	var cfg struct {
		Issuers map[string]struct {
			ACME struct {
				EAB struct {
					KeyID string `yaml:"key_id"`
				} `yaml:"eab"`
			} `yaml:"acme"`
		} `yaml:"issuers"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return acmeAccount{}, fmt.Errorf("%s: %w", s.desc.Config, err)
	}
	a := acmeAccount{directory: s.desc.CA.URL, kid: cfg.Issuers["sim-ca"].ACME.EAB.KeyID,
		hmac: s.desc.Env["CERTFLEET_SIM_EAB_HMAC"], caBundle: filepath.Join(s.dir, "ca", "acme-tls.pem")}
	if a.kid == "" || a.hmac == "" {
		return a, errors.New("certfleet-sim's ACME configuration has no EAB key id or HMAC key")
	}
	if s.desc.CA.Challenges == nil || s.desc.CA.Challenges.HTTP01Port == 0 {
		return a, errors.New("certfleet-sim's Pebble validates no challenge (started without --acme-challenges)")
	}
	a.http01Port = s.desc.CA.Challenges.HTTP01Port
	return a, nil
}

func (b *bench) printACME(rs []acmeResult, certs int, settings []string) {
	b.section("%d ACME certificates against one Pebble, ECDSA P-256 keys made by each tool; median of %d (load average %s)", certs, b.o.slowN, loadAverage())
	fmt.Fprintf(b.out, "Pebble (embedded in certfleet-sim, no latency, the same for every tool): %s\n", strings.Join(settings, "; "))
	fmt.Fprintf(b.out, "certfleet answers DNS-01 through lego's rfc2136 provider (dns.propagation_check: resolvers, the simulator's DNS); certbot and lego answer HTTP-01\n\n")
	rows := [][]string{{"tool", "wall", "per certificate", "client CPU"}}
	for _, r := range rs {
		if r.missing != "" {
			rows = append(rows, []string{r.name, r.missing, "", ""})
			continue
		}
		rows = append(rows, []string{r.name, secs(r.wall()), fmt.Sprintf("%.3f s", r.wall().Seconds()/float64(certs)), secs(median(r.cpus))})
	}
	table(b.out, rows)
	defaults, sequential := rs[0], rs[1]
	fmt.Fprintln(b.out, "\nIssue #24's targets: the defaults ≥ 30× faster than sequential certbot and ≥ 25× faster than sequential lego; certfleet sequential ≥ 2× faster per certificate than either.")
	for _, p := range rs[2:] {
		if p.missing != "" {
			continue
		}
		fmt.Fprintf(b.out, "%s takes %s certfleet's defaults and %s certfleet sequential\n", p.name,
			ratio(p.wall().Seconds(), defaults.wall().Seconds()), ratio(p.wall().Seconds(), sequential.wall().Seconds()))
	}
}
