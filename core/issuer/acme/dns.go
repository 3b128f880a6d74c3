package acme

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"
	"github.com/go-acme/lego/v5/providers/dns/exec"
	"github.com/go-acme/lego/v5/providers/dns/httpreq"
)

// DNS providers are lego's (github.com/go-acme/lego/v5/providers/dns/...), which read their
// settings from environment variables. certfleet keeps settings in its configuration, so a
// provider is built with exactly the configured settings placed in the environment for the
// moment of construction (under a lock, other variables of the provider's prefix hidden) and
// removed again; nothing of the process environment leaks into a provider's configuration.
//
// lego's own registry (providers/dns.NewDNSChallengeProviderByName) links every one of its 200+
// providers and their cloud SDKs; certfleet registers the providers it ships instead, and a
// build can add more with RegisterDNSProvider.

// DNSProvider describes a DNS provider lego implements.
type DNSProvider struct {
	// EnvPrefix is the provider's environment prefix in lego, e.g. "DNSUPDATE_".
	EnvPrefix string
	// AltPrefixes are other prefixes the provider reads (hidden during construction too).
	AltPrefixes []string
	// Settings are the settings it understands, lower case without the prefix, e.g. "nameserver".
	// Each may also be given as <setting>_file (a file holding the value).
	Settings []string
	// New builds the provider from the environment (lego's NewDNSProvider).
	New func() (challenge.Provider, error)
}

var (
	dnsRegistryMu sync.RWMutex
	dnsRegistry   = map[string]DNSProvider{}
	// envMu serializes provider construction, which swaps process environment variables.
	envMu sync.Mutex
)

// RegisterDNSProvider makes a lego DNS provider available under name (and aliases).
func RegisterDNSProvider(p DNSProvider, name string, aliases ...string) {
	dnsRegistryMu.Lock()
	defer dnsRegistryMu.Unlock()
	for _, n := range append([]string{name}, aliases...) {
		dnsRegistry[strings.ToLower(n)] = p
	}
}

// DNSProviders lists the registered provider names.
func DNSProviders() []string {
	dnsRegistryMu.RLock()
	defer dnsRegistryMu.RUnlock()
	names := make([]string, 0, len(dnsRegistry))
	for n := range dnsRegistry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func init() {
	timing := []string{"propagation_timeout", "polling_interval", "sequence_interval"}
	RegisterDNSProvider(DNSProvider{
		EnvPrefix:   "DNSUPDATE_",
		AltPrefixes: []string{"RFC2136_"},
		Settings: append([]string{"nameserver", "dns_timeout", "zones", "ttl", "tsig_file", "tsig_algorithm", "tsig_key", "tsig_secret",
			"tsig_gss_realm", "tsig_gss_username", "tsig_gss_password", "tsig_gss_keytab_file"}, timing...),
		New: func() (challenge.Provider, error) { return dnsupdate.NewDNSProvider() },
	}, "rfc2136", "dnsupdate")
	RegisterDNSProvider(DNSProvider{
		EnvPrefix: "EXEC_",
		Settings:  append([]string{"path", "mode"}, timing...),
		New:       func() (challenge.Provider, error) { return exec.NewDNSProvider() },
	}, "exec")
	RegisterDNSProvider(DNSProvider{
		EnvPrefix: "HTTPREQ_",
		Settings:  []string{"endpoint", "mode", "username", "password", "propagation_timeout", "polling_interval", "http_timeout"},
		New:       func() (challenge.Provider, error) { return httpreq.NewDNSProvider() },
	}, "httpreq")
}

// newDNSProvider builds the named provider from settings.
func newDNSProvider(issuerName, name string, settings map[string]string) (challenge.Provider, error) {
	dnsRegistryMu.RLock()
	spec, ok := dnsRegistry[strings.ToLower(name)]
	dnsRegistryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("issuer %q: dns.provider %q is not available; the providers are %s", issuerName, name, strings.Join(DNSProviders(), ", "))
	}
	vars := map[string]string{}
	var errs []error
	for k, v := range settings {
		key := strings.ToUpper(strings.TrimSpace(k))
		key = strings.TrimPrefix(key, spec.EnvPrefix)
		base := strings.TrimSuffix(key, "_FILE")
		if !slices.Contains(spec.Settings, strings.ToLower(base)) && !slices.Contains(spec.Settings, strings.ToLower(key)) {
			errs = append(errs, fmt.Errorf("issuer %q: dns.settings.%s is not a setting of DNS provider %s; its settings are %s",
				issuerName, k, name, strings.Join(spec.Settings, ", ")))
			continue
		}
		vars[spec.EnvPrefix+key] = v
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p, err := buildWithEnv(append([]string{spec.EnvPrefix}, spec.AltPrefixes...), vars, spec.New)
	if err != nil {
		// lego names missing variables by their environment names; say how they are configured here.
		return nil, fmt.Errorf("issuer %q: DNS provider %s: %w (dns.settings are lego's %s* variables in lower case without the prefix, e.g. %s)",
			issuerName, name, err, spec.EnvPrefix, spec.Settings[0])
	}
	return p, nil
}

func buildWithEnv(prefixes []string, vars map[string]string, build func() (challenge.Provider, error)) (challenge.Provider, error) {
	envMu.Lock()
	defer envMu.Unlock()
	hidden := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				hidden[k] = v
				_ = os.Unsetenv(k)
				break
			}
		}
	}
	defer func() {
		for k := range vars {
			_ = os.Unsetenv(k)
		}
		for k, v := range hidden {
			_ = os.Setenv(k, v)
		}
	}()
	for k, v := range vars {
		if err := os.Setenv(k, v); err != nil {
			return nil, fmt.Errorf("setting %s: %w", k, err)
		}
	}
	return build()
}

// SetProviderResolvers points the recursive queries lego's DNS providers make themselves
// (following CNAMEs of _acme-challenge names, finding zones) at nameservers ("host:port").
// lego keeps this process-wide, so it is not an issuer setting.
func SetProviderResolvers(nameservers []string, timeout time.Duration) {
	dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: nameservers, Timeout: timeout}))
}

var (
	providerResolversMu sync.Mutex
	providerResolvers   []string
)

// useProviderResolvers adds an issuer's dns.resolvers to the nameservers lego's providers ask
// for their own recursive queries (the CNAME of every _acme-challenge name, in
// dns01.GetChallengeInfo, which a provider's Present calls too). Without it those queries go
// to /etc/resolv.conf even when the configuration names the resolvers to use, and every
// challenge waits on a resolver the user did not choose. lego keeps one process-wide list, so
// the resolvers of all issuers are asked, in the order configured.
func useProviderResolvers(resolvers []string) {
	providerResolversMu.Lock()
	defer providerResolversMu.Unlock()
	added := false
	for _, r := range resolvers {
		if !slices.Contains(providerResolvers, r) {
			providerResolvers = append(providerResolvers, r)
			added = true
		}
	}
	if added {
		SetProviderResolvers(slices.Clone(providerResolvers), 0)
	}
}

// dnsSolver answers DNS-01 with one provider and checks the records are visible.
type dnsSolver struct {
	provider  challenge.Provider
	mode      string
	delay     time.Duration
	timeout   time.Duration
	interval  time.Duration
	resolvers []string // host:port; empty: /etc/resolv.conf
	// authPort is the port authoritative servers are asked on (53; tests use another).
	authPort string
}

func newDNSSolver(issuerName string, cfg DNSConfig) (*dnsSolver, error) {
	p, err := newDNSProvider(issuerName, cfg.Provider, cfg.Settings)
	if err != nil {
		return nil, err
	}
	s := &dnsSolver{provider: p, mode: cfg.PropagationCheck, delay: cfg.PropagationDelay,
		timeout: dns01.DefaultPropagationTimeout, interval: dns01.DefaultPollingInterval, authPort: "53"}
	if s.mode == "" {
		s.mode = PropagationAuthoritative
	}
	if pt, ok := p.(challenge.ProviderTimeout); ok {
		s.timeout, s.interval = pt.Timeout()
	}
	if cfg.PropagationTimeout > 0 {
		s.timeout = cfg.PropagationTimeout
	}
	if cfg.PollingInterval > 0 {
		s.interval = cfg.PollingInterval
	}
	for _, r := range cfg.Resolvers {
		if _, _, err := net.SplitHostPort(r); err != nil {
			r = net.JoinHostPort(strings.Trim(r, "[]"), "53")
		}
		s.resolvers = append(s.resolvers, r)
	}
	if len(s.resolvers) > 0 {
		useProviderResolvers(s.resolvers)
	}
	return s, nil
}

// sequential reports whether the provider can hold only one challenge per name at a time.
func (s *dnsSolver) sequential() bool {
	_, ok := s.provider.(interface{ Sequential() time.Duration })
	return ok
}
