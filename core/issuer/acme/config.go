package acme

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"
)

// Config is one ACME issuer from the configuration, with its secrets already resolved.
// Field names in errors follow the yaml tags.
type Config struct {
	// Name is the issuer's name in the configuration.
	Name string `yaml:"name"`
	// DirectoryURL is the CA's ACME directory, e.g. https://acme.sectigo.com/v2/OV (Sectigo's
	// directory is the server URL itself, without a /directory suffix).
	DirectoryURL string `yaml:"directory_url"`
	// EAB is the External Account Binding the CA issued for this account (Sectigo: SCM → ACME
	// Accounts, "Key ID" and "HMAC Key"). Empty for CAs that do not require it.
	EAB EAB `yaml:"eab"`
	// Contact is the account's e-mail address (optional).
	Contact string `yaml:"contact"`
	// PreferredChain picks among the chains the CA offers (Link rel="alternate"): the chain whose
	// topmost certificate is issued by, or is, a certificate with this Common Name. Empty: the
	// CA's default chain. A certificate's `preferred_chain` option overrides it.
	PreferredChain string `yaml:"preferred_chain"`
	// AccountKeyPassphrase encrypts the account key at rest. Empty: the EAB HMAC key is used;
	// one of the two is required.
	AccountKeyPassphrase string    `yaml:"account_key_passphrase"`
	TLS                  TLSConfig `yaml:"tls"`
	// DNS is how DNS-01 challenges are answered; without a provider only authorizations the CA
	// already holds as valid (e.g. domains pre-validated in Sectigo SCM) can be used.
	DNS      DNSConfig `yaml:"dns"`
	Timeouts Timeouts  `yaml:"timeouts"`
}

// EAB is an RFC 8555 §7.3.4 External Account Binding.
type EAB struct {
	KeyID string `yaml:"key_id"`
	// HMACKey is base64url, as CAs hand it out (padding tolerated).
	HMACKey string `yaml:"hmac_key"`
}

// TLSConfig is how the CA's HTTPS certificate is verified.
type TLSConfig struct {
	// CABundlePEM is added to the system roots (e.g. a private CA or a TLS-inspecting proxy).
	CABundlePEM string `yaml:"ca_bundle"`
	// InsecureSkipVerify turns verification off; for laboratories only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Propagation check modes for DNSConfig.PropagationCheck.
const (
	// PropagationAuthoritative waits until every authoritative name server of the zone serves
	// the record (what the CA will query). The default.
	PropagationAuthoritative = "authoritative"
	// PropagationResolvers waits until the resolvers in DNSConfig.Resolvers (or the system's)
	// serve the record; for split-horizon DNS where the authoritative servers are unreachable.
	PropagationResolvers = "resolvers"
	// PropagationNone only waits PropagationDelay.
	PropagationNone = "none"
)

// DNSConfig configures DNS-01.
type DNSConfig struct {
	// Provider is a DNS provider name (see DNSProviders), e.g. "rfc2136".
	Provider string `yaml:"provider"`
	// Settings are the provider's settings, named as in the lego documentation for the provider
	// without its prefix and in lower case (DNSUPDATE_TSIG_SECRET → tsig_secret); the full
	// upper-case name is accepted too.
	Settings map[string]string `yaml:"settings"`
	// Resolvers ("host" or "host:port") answer the propagation checks' recursive queries.
	// Empty: /etc/resolv.conf.
	Resolvers []string `yaml:"resolvers"`
	// PropagationCheck is "authoritative" (default), "resolvers" or "none".
	PropagationCheck string `yaml:"propagation_check"`
	// PropagationDelay is waited after the records are created, before checking.
	PropagationDelay time.Duration `yaml:"propagation_delay"`
	// PropagationTimeout and PollingInterval bound the check; zero: the provider's own values
	// (60 s and 2 s for most).
	PropagationTimeout time.Duration `yaml:"propagation_timeout"`
	PollingInterval    time.Duration `yaml:"polling_interval"`
}

// Timeouts bound the calls to the CA.
type Timeouts struct {
	// HTTP bounds one request to the CA (default 30 s).
	HTTP time.Duration `yaml:"http"`
	// Validation bounds waiting for the CA to validate answered challenges (default 2 min),
	// counted from when this process published the records. Collect itself waits at most a
	// second for the verdict; the engine collects again later, holding no slot.
	Validation time.Duration `yaml:"validation"`
	// PollInterval, when set, is the least wait between polls of an order or an authorization
	// when the CA gives no longer Retry-After. Zero (the default): Collect looks again at
	// answered challenges and at a just-finalized order from 50 ms on, for at most 200 ms, and
	// otherwise answers Pending; the engine then collects again on its own schedule (from
	// 250 ms doubling up to 30 s), holding no slot meanwhile.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Issuance is read and ignored: Collect no longer waits for a processing order. It stays
	// so that a configuration written for an older certfleet still loads.
	Issuance time.Duration `yaml:"issuance"`
}

func (t Timeouts) withDefaults() Timeouts {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&t.HTTP, 30*time.Second)
	def(&t.Validation, 2*time.Minute)
	return t
}

// validate checks the configuration without contacting anything; errors name the field.
func (c Config) validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("issuer %q: %s: %s", c.Name, field, fmt.Sprintf(format, args...)))
	}
	if strings.TrimSpace(c.Name) == "" {
		errs = append(errs, errors.New("acme issuer: name is empty"))
	}
	if c.DirectoryURL == "" {
		add("directory_url", "is empty; set the CA's ACME directory URL (e.g. https://acme.sectigo.com/v2/OV)")
	} else if u, err := url.Parse(c.DirectoryURL); err != nil || u.Host == "" {
		add("directory_url", "%q is not a URL", c.DirectoryURL)
	} else if u.Scheme != "https" {
		add("directory_url", "%q must use https (RFC 8555 §6.1)", c.DirectoryURL)
	}
	switch {
	case c.EAB.KeyID == "" && c.EAB.HMACKey != "":
		add("eab.key_id", "is empty while eab.hmac_key is set; set both or neither")
	case c.EAB.KeyID != "" && c.EAB.HMACKey == "":
		add("eab.hmac_key", "is empty while eab.key_id is set; set both or neither")
	case c.EAB.HMACKey != "":
		if _, err := decodeHMACKey(c.EAB.HMACKey); err != nil {
			add("eab.hmac_key", "%v", err)
		}
	}
	if c.Contact != "" {
		addr := strings.TrimPrefix(c.Contact, "mailto:")
		if a, err := mail.ParseAddress(addr); err != nil || a.Address != addr {
			add("contact", "%q is not an e-mail address", c.Contact)
		}
	}
	if c.AccountKeyPassphrase == "" && c.EAB.HMACKey == "" {
		add("account_key_passphrase", "is empty and there is no eab.hmac_key to protect the account key with; set account_key_passphrase")
	}
	if c.TLS.CABundlePEM != "" {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(c.TLS.CABundlePEM)) {
			add("tls.ca_bundle", "holds no PEM certificate")
		}
	}
	switch c.DNS.PropagationCheck {
	case "", PropagationAuthoritative, PropagationResolvers, PropagationNone:
	default:
		add("dns.propagation_check", "%q is not one of %s, %s, %s", c.DNS.PropagationCheck,
			PropagationAuthoritative, PropagationResolvers, PropagationNone)
	}
	if c.DNS.Provider == "" && len(c.DNS.Settings) > 0 {
		add("dns.settings", "are set but dns.provider is empty")
	}
	return errors.Join(errs...)
}

// decodeHMACKey decodes an EAB HMAC key; its value never appears in the error.
func decodeHMACKey(s string) ([]byte, error) {
	if strings.ContainsAny(s, "+/") {
		return nil, errors.New("is not base64url (it contains '+' or '/', i.e. standard base64); copy the key exactly as the CA shows it")
	}
	k, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, errors.New("is not base64url (RFC 8555 §7.3.4); copy the key exactly as the CA shows it")
	}
	if len(k) == 0 {
		return nil, errors.New("decodes to nothing")
	}
	return k, nil
}
