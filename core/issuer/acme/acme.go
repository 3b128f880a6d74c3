// Package acme is the ACME (RFC 8555) issuer: Sectigo ACME and any other ACME CA, with External
// Account Binding, issuance from the device's CSR (the key never leaves the device), DNS-01
// through lego's DNS providers, alternate-chain preference, revocation and ACME Renewal
// Information (RFC 9773).
//
// Order life: Submit only places the order and returns its reference, which the engine records.
// Everything after that is driven by Collect from the order's state at the CA, so a run that
// dies anywhere resumes without a second order and never finalizes twice:
//
//	pending    → answer the pending authorizations (DNS-01), wait until they are valid
//	ready      → finalize with the CSR carried in the reference
//	processing → poll (Retry-After honoured), report Pending when it takes longer
//	valid      → download the chain (preferring the configured one)
//	invalid    → Failed, with the CA's reason
//
// The protocol itself is go-acme/lego's acme/api package (JWS, nonces and badNonce retries, EAB,
// ARI certificate IDs, alternate chains).
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/go-acme/lego/v5/acme/api"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/catransport"
)

// Per-certificate issuer options (the certificate's issuer options in the configuration).
const (
	// OptionPreferredChain overrides Config.PreferredChain for one certificate.
	OptionPreferredChain = "preferred_chain"
	// OptionProfile asks for a certificate profile the CA advertises (draft-ietf-acme-profiles).
	OptionProfile = "profile"
	// OptionReplaces carries the certificate a renewal replaces, as its ARI certificate ID
	// (CertID) or as PEM; the engine sets it when renewing, it is not a configuration option.
	OptionReplaces = "replaces"
)

// Issuer is one ACME CA account. It is safe for concurrent use.
type Issuer struct {
	cfg      Config
	timeouts Timeouts
	store    AccountStore
	log      *slog.Logger
	secret   []byte // encrypts the account key at rest
	// oldSecret is the EAB HMAC key when a passphrase is configured: a key stored before the
	// passphrase was added still opens, and is sealed again under the passphrase.
	oldSecret []byte
	kdf       kdfParams
	transport http.RoundTripper
	userAgent string
	dns       *dnsSolver

	mu         sync.Mutex
	core       *api.Core
	accountURL string

	// orders serializes Collects of one order within this process, so that two callers do not
	// answer the same challenges or race to finalize.
	ordersMu sync.Mutex
	orders   map[string]*orderLock

	// records are the DNS-01 records this process published and has not removed yet, by
	// authorization URL: they stay until the CA has decided, across Collects.
	recordsMu sync.Mutex
	records   map[string]presentedRecord
}

type orderLock struct {
	mu    sync.Mutex
	users int
}

// lockOrder waits for the order's lock and returns its release.
func (i *Issuer) lockOrder(url string) func() {
	i.ordersMu.Lock()
	if i.orders == nil {
		i.orders = map[string]*orderLock{}
	}
	l := i.orders[url]
	if l == nil {
		l = &orderLock{}
		i.orders[url] = l
	}
	l.users++
	i.ordersMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		i.ordersMu.Lock()
		if l.users--; l.users == 0 {
			delete(i.orders, url)
		}
		i.ordersMu.Unlock()
	}
}

var (
	_ issuer.Issuer         = (*Issuer)(nil)
	_ issuer.RenewalAdvisor = (*Issuer)(nil)
)

// maxIdleConnsPerCA is how many idle connections to the CA are kept for reuse: more than any
// sensible per-issuer concurrency.
const maxIdleConnsPerCA = 32

// Option adjusts an Issuer.
type Option func(*Issuer)

// WithLogger sets the logger (default: none). Keys and HMAC keys are never logged.
func WithLogger(l *slog.Logger) Option {
	return func(i *Issuer) {
		if l != nil {
			i.log = l
		}
	}
}

// WithUserAgent sets the User-Agent sent to the CA (RFC 8555 §6.1), default "certfleet".
func WithUserAgent(ua string) Option {
	return func(i *Issuer) {
		if ua != "" {
			i.userAgent = ua
		}
	}
}

// withKDF lowers the key-derivation cost; tests only.
func withKDF(p kdfParams) Option { return func(i *Issuer) { i.kdf = p } }

// New checks cfg (without contacting the CA) and returns the issuer. The account is loaded from
// store, or registered, on first use.
func New(cfg Config, store AccountStore, opts ...Option) (*Issuer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, fmt.Errorf("issuer %q: no account store", cfg.Name)
	}
	base, err := catransport.New(cfg.TLS.CABundlePEM, cfg.TLS.InsecureSkipVerify, func(tlsCfg *tls.Config) *http.Transport {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = tlsCfg
		// Every request goes to the one CA host. net/http keeps only 2 idle connections per host
		// by default (DefaultMaxIdleConnsPerHost), so with more calls in flight (the engine's
		// per-issuer concurrency, 4 by default) connections were closed after use and each new
		// one paid a TLS handshake; keep as many as are used at once.
		t.MaxIdleConnsPerHost = maxIdleConnsPerCA
		return t
	})
	if err != nil {
		return nil, fmt.Errorf("issuer %q: %w", cfg.Name, err)
	}

	i := &Issuer{
		cfg:       cfg,
		timeouts:  cfg.Timeouts.withDefaults(),
		store:     store,
		log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		kdf:       defaultKDF,
		transport: observingTransport{base: base},
		userAgent: "certfleet",
	}
	hmacKey, _ := decodeHMACKey(cfg.EAB.HMACKey) // validated above
	if cfg.AccountKeyPassphrase != "" {
		i.secret, i.oldSecret = []byte(cfg.AccountKeyPassphrase), hmacKey
	} else {
		i.secret = hmacKey
	}
	for _, o := range opts {
		o(i)
	}
	if cfg.DNS.Provider != "" {
		if i.dns, err = newDNSSolver(cfg.Name, cfg.DNS); err != nil {
			return nil, err
		}
	}
	return i, nil
}

// newHTTPClient returns a client for one ACME core (the library wraps its transport).
func (i *Issuer) newHTTPClient() *http.Client {
	return &http.Client{Transport: i.transport, Timeout: i.timeouts.HTTP}
}

// Name is the issuer's name in the configuration.
func (i *Issuer) Name() string { return i.cfg.Name }

// Capabilities describes the issuer. RenewalInfo is true because RenewalWindow is implemented;
// it returns ErrNoRenewalInfo for CAs whose directory has no renewalInfo.
func (i *Issuer) Capabilities() issuer.Capabilities {
	return issuer.Capabilities{Type: "acme", SupportsRevoke: true, RenewalInfo: true}
}

// ValidateOptions checks a certificate's issuer options: preferred_chain and profile (strings).
func (i *Issuer) ValidateOptions(opts map[string]any) error { return ValidateOptions(opts) }

// ValidateOptions checks issuer options for an ACME issuer without an issuer or a network.
func ValidateOptions(opts map[string]any) error {
	_, err := parseOptions(opts, false)
	return err
}

type orderOptions struct {
	preferredChain string
	profile        string
	replaces       string // ARI certificate ID
}

// parseOptions reads issuer options; replaces is accepted only at run time (from the engine).
func parseOptions(opts map[string]any, runtime bool) (orderOptions, error) {
	var (
		o    orderOptions
		errs []error
	)
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	str := func(k string) string {
		s, ok := opts[k].(string)
		if !ok || strings.TrimSpace(s) == "" {
			errs = append(errs, fmt.Errorf("issuer option %s must be a non-empty string", k))
		}
		return strings.TrimSpace(s)
	}
	for _, k := range keys {
		switch k {
		case OptionPreferredChain:
			o.preferredChain = str(k)
		case OptionProfile:
			o.profile = str(k)
		case OptionReplaces:
			if !runtime {
				errs = append(errs, fmt.Errorf("issuer option %s is set by certfleet when renewing; remove it from the configuration", k))
				continue
			}
			id, err := replacesCertID(str(k))
			if err != nil {
				errs = append(errs, fmt.Errorf("issuer option %s: %w", k, err))
			}
			o.replaces = id
		default:
			errs = append(errs, fmt.Errorf("unknown ACME issuer option %q; the options are %s and %s", k, OptionPreferredChain, OptionProfile))
		}
	}
	return o, errors.Join(errs...)
}

// replacesCertID accepts an ARI certificate ID or a PEM certificate.
func replacesCertID(v string) (string, error) {
	if v == "" || !strings.HasPrefix(v, "-----BEGIN") {
		return v, nil
	}
	block, _ := pem.Decode([]byte(v))
	if block == nil {
		return "", errors.New("not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("parse certificate: %w", err)
	}
	return CertID(cert)
}

// CertID is a certificate's RFC 9773 ACME Renewal Information identifier:
// base64url(Authority Key Identifier) "." base64url(serial number DER bytes).
func CertID(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", errors.New("no certificate")
	}
	if len(cert.AuthorityKeyId) == 0 {
		return "", errors.New("the certificate has no Authority Key Identifier, so it has no ARI certificate ID")
	}
	return api.MakeARICertID(cert)
}

// orderRef is what an OrderRef holds: the order URL, the CSR to finalize with (so a resumed
// Collect can finalize) and the chain preference of the certificate.
type orderRef struct {
	OrderURL       string `json:"order"`
	CSR            []byte `json:"csr"`
	PreferredChain string `json:"preferred_chain,omitempty"`
}

func (r orderRef) encode() (issuer.OrderRef, error) {
	b, err := json.Marshal(r)
	return issuer.OrderRef(b), err
}

func decodeRef(ref issuer.OrderRef) (orderRef, error) {
	var r orderRef
	if err := json.Unmarshal([]byte(ref), &r); err != nil || r.OrderURL == "" || len(r.CSR) == 0 {
		return orderRef{}, &Error{Op: "order reference", Detail: "not an ACME order reference made by this issuer"}
	}
	return r, nil
}

// OrderURL returns the ACME order URL inside a reference made by Submit.
func OrderURL(ref issuer.OrderRef) (string, error) {
	r, err := decodeRef(ref)
	return r.OrderURL, err
}

// Find reports no order: ACME has no lookup by request, and the engine records the reference
// Submit returns. An order orphaned by a lost newOrder answer is harmless: it is never
// finalized and expires at the CA.
func (i *Issuer) Find(context.Context, issuer.Request) (issuer.OrderRef, bool, error) {
	return "", false, nil
}
