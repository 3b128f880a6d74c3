package acme

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"

	"github.com/certfleet/certfleet/core/issuer"
)

func validConfig() Config {
	return Config{
		Name:         "sectigo",
		DirectoryURL: "https://acme.sectigo.com/v2/OV",
		EAB:          EAB{KeyID: "kid", HMACKey: "c2VjcmV0LWhtYWMta2V5LXZhbHVlLTMyLWJ5dGVzLWxvbmc"},
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	if _, err := New(validConfig(), NewMemoryAccountStore()); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	cases := map[string]struct {
		mutate func(*Config)
		field  string
	}{
		"no directory":         {func(c *Config) { c.DirectoryURL = "" }, "directory_url"},
		"http directory":       {func(c *Config) { c.DirectoryURL = "http://acme.example/dir" }, "https"},
		"kid without hmac":     {func(c *Config) { c.EAB.HMACKey = "" }, "eab.hmac_key"},
		"hmac without kid":     {func(c *Config) { c.EAB.KeyID = "" }, "eab.key_id"},
		"standard base64 hmac": {func(c *Config) { c.EAB.HMACKey = "ab+/cd==" }, "eab.hmac_key"},
		"hmac not base64":      {func(c *Config) { c.EAB.HMACKey = "not base64!" }, "eab.hmac_key"},
		"bad contact":          {func(c *Config) { c.Contact = "pki at example" }, "contact"},
		"no key protection":    {func(c *Config) { c.EAB = EAB{} }, "account_key_passphrase"},
		"bad bundle":           {func(c *Config) { c.TLS.CABundlePEM = "nope" }, "tls.ca_bundle"},
		"bad propagation":      {func(c *Config) { c.DNS.PropagationCheck = "sometimes" }, "dns.propagation_check"},
		"settings no provider": {func(c *Config) { c.DNS.Settings = map[string]string{"a": "b"} }, "dns.provider"},
		"unknown provider":     {func(c *Config) { c.DNS.Provider = "carrier-pigeon" }, "rfc2136"},
		"unknown setting": {func(c *Config) {
			c.DNS.Provider, c.DNS.Settings = "rfc2136", map[string]string{"nameserver": "127.0.0.1", "colour": "blue"}
		}, "dns.settings.colour"},
		"missing setting": {func(c *Config) { c.DNS.Provider = "rfc2136" }, "nameserver"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := validConfig()
			tc.mutate(&cfg)
			_, err := New(cfg, NewMemoryAccountStore())
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %v does not name %q", err, tc.field)
			}
			if strings.Contains(err.Error(), validConfig().EAB.HMACKey) {
				t.Fatal("the HMAC key appears in the error")
			}
		})
	}
}

func TestValidateOptions(t *testing.T) {
	t.Parallel()
	iss, err := New(validConfig(), NewMemoryAccountStore())
	if err != nil {
		t.Fatal(err)
	}
	if err := iss.ValidateOptions(map[string]any{OptionPreferredChain: "ISRG Root X1", OptionProfile: "tlsserver"}); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	if err := iss.ValidateOptions(nil); err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]map[string]any{
		"unknown":          {"validity_days": 90},
		"not a string":     {OptionPreferredChain: 3},
		"empty":            {OptionProfile: " "},
		"replaces by user": {OptionReplaces: "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"},
	} {
		err := iss.ValidateOptions(opts)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for k := range opts {
			if !strings.Contains(err.Error(), k) {
				t.Errorf("%s: error %q does not name %s", name, err, k)
			}
		}
	}
}

func TestSealRoundTripAndRefusals(t *testing.T) {
	t.Parallel()
	secret := []byte("passphrase")
	plain := []byte("-----BEGIN PRIVATE KEY-----\nMIGH...\n-----END PRIVATE KEY-----\n")
	sealed, err := sealAccountKey(secret, "issuer-a", plain, testKDF)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("PRIVATE KEY")) || bytes.Contains(sealed, []byte("MIGH")) {
		t.Fatal("plaintext in the sealed form")
	}
	got, err := openAccountKey(secret, "issuer-a", sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %v", err)
	}
	again, _ := sealAccountKey(secret, "issuer-a", plain, testKDF)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals are identical: salt or nonce reused")
	}
	if _, err := openAccountKey([]byte("other"), "issuer-a", sealed); !errors.Is(err, errWrongSecret) {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := openAccountKey(secret, "issuer-b", sealed); !errors.Is(err, errWrongSecret) {
		t.Fatalf("record moved to another issuer: %v", err)
	}
	var env sealedKey
	_ = json.Unmarshal(sealed, &env)
	env.Data[0] ^= 1
	tampered, _ := json.Marshal(env)
	if _, err := openAccountKey(secret, "issuer-a", tampered); !errors.Is(err, errWrongSecret) {
		t.Fatalf("tampered: %v", err)
	}
	env.Data[0] ^= 1
	env.Params.Memory = 1 << 30
	costly, _ := json.Marshal(env)
	if _, err := openAccountKey(secret, "issuer-a", costly); err == nil {
		t.Fatal("absurd KDF parameters accepted")
	}
	if _, err := sealAccountKey(nil, "issuer-a", plain, testKDF); err == nil {
		t.Fatal("sealed without a secret")
	}
}

func TestSealDefaultCost(t *testing.T) {
	t.Parallel()
	sealed, err := sealAccountKey([]byte("passphrase"), "x", []byte("key"), defaultKDF)
	if err != nil {
		t.Fatal(err)
	}
	var env sealedKey
	if err := json.Unmarshal(sealed, &env); err != nil {
		t.Fatal(err)
	}
	if env.KDF != "argon2id" || env.Params != defaultKDF || env.Params.Memory < 19*1024 || len(env.Salt) != 16 {
		t.Fatalf("sealed with %s %+v, salt %d bytes", env.KDF, env.Params, len(env.Salt))
	}
	if got, err := openAccountKey([]byte("passphrase"), "x", sealed); err != nil || string(got) != "key" {
		t.Fatalf("open: %v", err)
	}
}

func TestBlobAccountStore(t *testing.T) {
	t.Parallel()
	blobs := &blobMap{m: map[string][]byte{}}
	s := BlobAccountStore(blobs)
	ctx := context.Background()
	if _, found, err := s.LoadAccount(ctx, "a"); found || err != nil {
		t.Fatalf("empty store: %v %v", found, err)
	}
	rec := AccountRecord{DirectoryURL: "https://ca/dir", AccountURL: "https://ca/acct/1", SealedKey: []byte(`{"v":1}`)}
	if err := s.SaveAccount(ctx, "a", rec); err != nil {
		t.Fatal(err)
	}
	got, found, err := s.LoadAccount(ctx, "a")
	if err != nil || !found || got.AccountURL != rec.AccountURL || !bytes.Equal(got.SealedKey, rec.SealedKey) {
		t.Fatalf("round trip: %+v %v %v", got, found, err)
	}
	blobs.m["b"] = []byte("not json")
	if _, _, err := s.LoadAccount(ctx, "b"); err == nil {
		t.Fatal("garbage accepted")
	}
}

type blobMap struct{ m map[string][]byte }

func (b *blobMap) LoadAccount(_ context.Context, issuer string) ([]byte, bool, error) {
	d, ok := b.m[issuer]
	return d, ok, nil
}

func (b *blobMap) SaveAccount(_ context.Context, issuer string, data []byte) error {
	b.m[issuer] = data
	return nil
}

func TestClassify(t *testing.T) {
	t.Parallel()
	prob := func(typ string, status int) *legoacme.ProblemDetails {
		return &legoacme.ProblemDetails{Type: typ, HTTPStatus: status, Detail: "detail"}
	}
	cases := []struct {
		name      string
		err       error
		retryable bool
		wait      time.Duration
	}{
		{"rate limited with Retry-After", &legoacme.RateLimitedError{ProblemDetails: prob(problemRateLimited, 429), RetryAfter: 90 * time.Second}, true, 90 * time.Second},
		{"rate limited without Retry-After", &legoacme.RateLimitedError{ProblemDetails: prob(problemRateLimited, 429)}, true, defaultRateLimitWait},
		{"bad nonce after the library's retries", &legoacme.NonceError{ProblemDetails: prob(problemBadNonce, 400)}, true, 0},
		{"server internal", prob(problemServerInternal, 500), true, 0},
		{"503 without type", prob("", http.StatusServiceUnavailable), true, 0},
		{"malformed", prob(problemMalformed, 400), false, 0},
		{"unauthorized", prob(problemUnauthorized, 403), false, 0},
		{"user action", &legoacme.ProblemDetails{Type: problemUserActionRequired, HTTPStatus: 403, Instance: "https://ca/tos"}, false, 0},
		{"connection refused", fmt.Errorf("post: %w", errors.New("dial tcp: connection refused")), true, 0},
		{"cancelled", fmt.Errorf("post: %w", context.Canceled), true, 0},
		{"unknown authority", fmt.Errorf("get: %w", x509.UnknownAuthorityError{}), false, 0},
	}
	for _, tc := range cases {
		e := classify("op", tc.err)
		if e.Retryable() != tc.retryable || e.RetryAfter() != tc.wait || issuer.IsRetryable(e) != tc.retryable {
			t.Errorf("%s: retryable %v wait %s, want %v %s", tc.name, e.Retryable(), e.RetryAfter(), tc.retryable, tc.wait)
		}
		if !errors.Is(e, tc.err) {
			t.Errorf("%s: cause not wrapped", tc.name)
		}
	}
	if e := classify("op", &legoacme.ProblemDetails{Type: problemUserActionRequired, Instance: "https://ca/tos"}); !strings.Contains(e.Error(), "https://ca/tos") {
		t.Errorf("userActionRequired does not point to the page: %v", e)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":     0,
		"7":    7 * time.Second,
		"-3":   0,
		"soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
}

func TestDNSProviderEnvironmentIsRestored(t *testing.T) {
	// Not parallel: it sets process environment variables.
	t.Setenv("DNSUPDATE_NAMESERVER", "192.0.2.53")
	t.Setenv("RFC2136_TSIG_KEY", "from-the-environment")
	p, err := newDNSProvider("x", "rfc2136", map[string]string{"nameserver": "127.0.0.1:5353", "TSIG_KEY": "k.", "tsig_secret": "c2VjcmV0"})
	if err != nil || p == nil {
		t.Fatal(err)
	}
	if os.Getenv("DNSUPDATE_NAMESERVER") != "192.0.2.53" || os.Getenv("RFC2136_TSIG_KEY") != "from-the-environment" {
		t.Fatal("the process environment was not restored")
	}
	if _, ok := os.LookupEnv("DNSUPDATE_TSIG_SECRET"); ok {
		t.Fatal("a configured secret stayed in the environment")
	}
	// The environment's variables are hidden: without a nameserver in the settings, it fails.
	if _, err := newDNSProvider("x", "rfc2136", map[string]string{"tsig_key": "k."}); err == nil {
		t.Fatal("a setting leaked in from the process environment")
	}
	if !strings.Contains(strings.Join(DNSProviders(), ","), "rfc2136") {
		t.Fatal("rfc2136 not registered")
	}
}

func TestOrderRefRoundTrip(t *testing.T) {
	t.Parallel()
	ref, err := orderRef{OrderURL: "https://ca/order/1", CSR: []byte{1, 2, 3}, PreferredChain: "Root X"}.encode()
	if err != nil {
		t.Fatal(err)
	}
	if u, err := OrderURL(ref); err != nil || u != "https://ca/order/1" {
		t.Fatalf("%q %v", u, err)
	}
	for _, bad := range []issuer.OrderRef{"", "12345", `{"order":""}`, `{"order":"https://ca/o/1"}`} {
		if _, err := OrderURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestAccountDoesNotExistMidOperation(t *testing.T) {
	t.Parallel()
	p := startPebble(t, pebbleOptions{})
	ctx := testContext(t)
	store := NewMemoryAccountStore()
	iss := newIssuer(t, p.config("mid"), store)
	url, err := iss.Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The issuer's session points at an account the CA does not have (as after a CA-side reset
	// between two calls of a long-running process).
	rec, _, _ := store.LoadAccount(ctx, "mid")
	plain, err := openAccountKey(iss.secret, "mid", rec.SealedKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := parseAccountKey(plain)
	gone := url[:strings.LastIndex(url, "/")+1] + "ffffffffffffff"
	core, err := api.New(iss.newHTTPClient(), "certfleet", p.dirURL, gone, key)
	if err != nil {
		t.Fatal(err)
	}
	iss.mu.Lock()
	iss.core, iss.accountURL = core, gone
	iss.mu.Unlock()

	req, _ := request(t, testNames(t, 1), nil, nil)
	issue(t, ctx, iss, req)
	if got, _ := iss.Register(ctx); got != url || p.wire.createdAt("/sign-me-up") != 1 {
		t.Fatalf("account after recovery %s (was %s), %d registrations", got, url, p.wire.createdAt("/sign-me-up"))
	}
}
