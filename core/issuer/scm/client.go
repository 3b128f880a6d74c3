// Package scm is the Sectigo Certificate Manager issuer. It speaks two of SCM's APIs:
//   - the Admin API / legacy SSL API (/api/ssl/v1/*: enroll, collect, details, list, revoke) with
//     OAuth2 client credentials (admin.{instance}.sectigo.com) or login headers (cert-manager.com);
//   - the REST Enrollment API of a REST account (https://{customer}.enroll.{instance}.sectigo.com,
//     /api/v1/certificates), the API Sectigo's own agents use; the account fixes organization,
//     profile and term.
//
// Both share one request path: retries that never place an order twice, an OAuth2 token cache,
// and SCM's errors turned into messages a user can act on.
package scm

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/issuer/catransport"
)

// DefaultTokenURL is Sectigo's OAuth2 token endpoint.
const DefaultTokenURL = "https://auth.sso.sectigo.com/auth/realms/apiclients/protocol/openid-connect/token"

// maxBody bounds what is read of any answer.
const maxBody = 4 << 20

// maxRetryAfter bounds the wait a Retry-After header can impose on one retry.
const maxRetryAfter = time.Minute

// The APIs an issuer can speak.
const (
	APIAdmin      = "admin"
	APIEnrollment = "enrollment"
)

// Config is one SCM account, with its secrets already resolved.
type Config struct {
	Name string
	// API is admin (the default: /api/ssl/v1 with Admin or login credentials) or enrollment (a
	// REST Enrollment account).
	API string
	// BaseURL: https://admin.enterprise.sectigo.com/api/ (OAuth2), https://cert-manager.com/api/
	// (login headers), or the REST endpoint's URL https://{customer}.enroll.{instance}.sectigo.com.
	BaseURL      string
	CustomerURI  string
	Auth         string // oauth2 (default) or legacy
	ClientID     string
	ClientSecret string
	TokenURL     string
	Login        string
	Password     string
	OrgID        int
	CABundlePEM  string
	// InsecureSkipVerify turns TLS verification off; for laboratories only.
	InsecureSkipVerify bool
	// Timeout bounds one request (30s when zero).
	Timeout time.Duration
	// InitialDelay is how long after an order is placed the first collect waits (the agents'
	// sectigo_sleep_download); zero: collect at once.
	InitialDelay time.Duration
	// Lookup is an Admin API account of the same SCM tenant, used by an enrollment issuer to find
	// an order whose answer was lost: the REST Enrollment API has no way to list orders.
	Lookup *Config
}

// Issuer is an SCM account.
type Issuer struct {
	cfg    Config
	base   *url.URL
	http   *http.Client
	log    *slog.Logger
	retry  retryPolicy
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error
	tokens tokenCache

	profilesMu sync.Mutex
	profiles   map[int][]profile // by organization
	fields     []customField

	// polls tracks, per order, when it was placed and how often it answered pending.
	pollsMu sync.Mutex
	polls   map[issuer.OrderRef]*pollState
	// lookup finds lost enrollment orders through the Admin API (enrollment API only).
	lookup *Issuer
}

type pollState struct {
	placed  time.Time
	pending int
}

var _ issuer.Issuer = (*Issuer)(nil)

type retryPolicy struct {
	attempts  int
	base, max time.Duration
}

// Option adjusts an Issuer.
type Option func(*Issuer)

// WithHTTPClient replaces the HTTP client (tests).
func WithHTTPClient(c *http.Client) Option { return func(i *Issuer) { i.http = c } }

// WithLogger sets the logger; secrets are never logged.
func WithLogger(l *slog.Logger) Option { return func(i *Issuer) { i.log = l } }

// WithRetry sets how many attempts idempotent calls get and the backoff bounds.
func WithRetry(attempts int, base, max time.Duration) Option {
	return func(i *Issuer) { i.retry = retryPolicy{attempts: attempts, base: base, max: max} }
}

// New checks cfg and returns the issuer; nothing is contacted.
func New(cfg Config, opts ...Option) (*Issuer, error) {
	if cfg.API == "" {
		cfg.API = APIAdmin
	}
	if cfg.Auth == "" {
		cfg.Auth = "oauth2"
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = DefaultTokenURL
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || base.Scheme != "https" || base.Host == "" {
		example := "https://admin.enterprise.sectigo.com/api/ (OAuth2) or https://cert-manager.com/api/ (login headers)"
		if cfg.API == APIEnrollment {
			example = "https://{customer}.enroll.{instance}.sectigo.com (the URL SCM shows under Enrollment → REST)"
		}
		return nil, fmt.Errorf("issuer %s: base_url %q must be an https URL such as %s", cfg.Name, cfg.BaseURL, example)
	}
	if tu, err := url.Parse(cfg.TokenURL); err != nil || tu.Scheme != "https" || tu.Host == "" {
		return nil, fmt.Errorf("issuer %s: token_url %q must be an https URL (the client secret is sent there)", cfg.Name, cfg.TokenURL)
	}
	switch cfg.API {
	case APIAdmin:
		if !strings.HasSuffix(base.Path, "/") {
			base.Path += "/"
		}
	case APIEnrollment:
		// The REST endpoint's URL is the host; its paths are /api/v1/certificates (ENR).
		base.Path = "/"
		if cfg.Auth != "oauth2" {
			return nil, fmt.Errorf("issuer %s: the REST Enrollment API takes only the REST account's client_id and client_secret (auth: oauth2)", cfg.Name)
		}
	default:
		return nil, fmt.Errorf("issuer %s: api %q: use admin or enrollment", cfg.Name, cfg.API)
	}
	switch cfg.Auth {
	case "oauth2":
		if cfg.ClientID == "" || cfg.ClientSecret == "" {
			return nil, fmt.Errorf("issuer %s: oauth2 needs client_id and client_secret", cfg.Name)
		}
	case "legacy":
		if cfg.Login == "" || cfg.Password == "" || cfg.CustomerURI == "" {
			return nil, fmt.Errorf("issuer %s: legacy login needs login, password and customer_uri", cfg.Name)
		}
	default:
		return nil, fmt.Errorf("issuer %s: auth %q: use oauth2 or legacy", cfg.Name, cfg.Auth)
	}
	i := &Issuer{cfg: cfg, base: base, log: slog.New(slog.DiscardHandler), now: time.Now,
		retry: retryPolicy{attempts: 5, base: time.Second, max: time.Minute}, sleep: sleepCtx, polls: map[issuer.OrderRef]*pollState{}}
	transport, err := catransport.New(cfg.CABundlePEM, cfg.InsecureSkipVerify, func(tlsCfg *tls.Config) *http.Transport {
		return &http.Transport{
			Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsCfg, TLSHandshakeTimeout: 10 * time.Second,
			DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute,
		}
	})
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w", cfg.Name, err)
	}
	i.http = &http.Client{Timeout: cfg.Timeout, Transport: transport}
	if cfg.Lookup != nil {
		if cfg.API != APIEnrollment {
			return nil, fmt.Errorf("issuer %s: lookup is only for api: enrollment", cfg.Name)
		}
		lc := *cfg.Lookup
		lc.Name, lc.API, lc.Lookup = cfg.Name+" (lookup)", APIAdmin, nil
		if i.lookup, err = New(lc, opts...); err != nil {
			return nil, err
		}
	}
	for _, o := range opts {
		o(i)
	}
	return i, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Name of the issuer.
func (i *Issuer) Name() string { return i.cfg.Name }

// Capabilities of SCM: an order's collect (or status) says when its certificate was revoked.
func (i *Issuer) Capabilities() issuer.Capabilities {
	return issuer.Capabilities{Type: "scm", SupportsRevoke: true, RevocationStatus: true}
}

// tokenCache holds the OAuth2 access token until shortly before it expires.
type tokenCache struct {
	mu      sync.Mutex
	token   string
	expires time.Time
	// tokenURL may be replaced by the authorization_uri of a 401.
	tokenURL string
}

func (i *Issuer) accessToken(ctx context.Context, refresh bool) (string, error) {
	c := &i.tokens
	c.mu.Lock()
	defer c.mu.Unlock()
	if !refresh && c.token != "" && i.now().Before(c.expires) {
		return c.token, nil
	}
	tokenURL := c.tokenURL
	if tokenURL == "" {
		tokenURL = i.cfg.TokenURL
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {i.cfg.ClientID}, "client_secret": {i.cfg.ClientSecret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("SCM token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := i.http.Do(req)
	if err != nil {
		return "", &transportError{op: "get an access token", err: err, sent: true}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode != http.StatusOK {
		e := &Error{Op: "get an access token", HTTPStatus: resp.StatusCode, Hint: "check the issuer's client_id, client_secret and token_url"}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			// The endpoint is busy or failing; the credentials are not in question.
			e.Hint = "the token endpoint is unavailable or rate limiting; the next run tries again"
		}
		var oauthErr struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &oauthErr) == nil && oauthErr.Error != "" {
			e.Description = oauthErr.Error + ": " + oauthErr.Description
		}
		return "", e
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", &Error{Op: "get an access token", HTTPStatus: resp.StatusCode, Description: "the token endpoint answered without an access_token"}
	}
	lifetime := time.Duration(tok.ExpiresIn) * time.Second
	if tok.ExpiresIn <= 0 {
		lifetime = 5 * time.Minute // the reference's fallback when expires_in is missing
	}
	// Refresh a minute early, or at half-life for short tokens.
	c.token, c.expires = tok.AccessToken, i.now().Add(lifetime-min(time.Minute, lifetime/2))
	return c.token, nil
}

// trustedTokenURL reports whether the client secret may be sent to uri: only over https, and only
// to the configured token server's host or a Sectigo host, whatever a 401's WWW-Authenticate names
// (a proxy or a spoofed answer must not collect the secret).
func (i *Issuer) trustedTokenURL(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return false
	}
	configured, err := url.Parse(i.cfg.TokenURL)
	if err == nil && strings.EqualFold(u.Host, configured.Host) {
		return true
	}
	host := strings.ToLower(u.Hostname())
	return host == "sectigo.com" || strings.HasSuffix(host, ".sectigo.com")
}

// authorizationURI reads the token URL a 401 points to: Bearer authorization_uri="...".
func authorizationURI(h string) string {
	const key = "authorization_uri="
	idx := strings.Index(h, key)
	if idx < 0 {
		return ""
	}
	v := h[idx+len(key):]
	if strings.HasPrefix(v, `"`) {
		if end := strings.Index(v[1:], `"`); end >= 0 {
			return v[1 : end+1]
		}
		return ""
	}
	if end := strings.IndexAny(v, ", "); end >= 0 {
		v = v[:end]
	}
	return v
}

// transportError is a request that got no HTTP answer.
type transportError struct {
	op   string
	err  error
	sent bool // the request may have reached the server
}

func (e *transportError) Error() string   { return fmt.Sprintf("SCM %s: %v", e.op, e.err) }
func (e *transportError) Unwrap() error   { return e.err }
func (e *transportError) Retryable() bool { return true }

// call is one API request: path relative to the base URL, body JSON-encoded when not nil.
type call struct {
	op, method, path string
	query            url.Values
	body             any
	// idempotent calls are retried on 429, 5xx and network errors; enroll is not.
	idempotent bool
	// accept is the Accept header (application/json when empty).
	accept string
}

// response is a successful answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (i *Issuer) do(ctx context.Context, c call) (*response, error) {
	resp, err := i.attempt(ctx, c)
	if err == nil || c.idempotent || errors.Is(err, issuer.ErrOutcomeUnknown) {
		return resp, err
	}
	// A non-idempotent call (enroll) that failed without an unknown outcome: every path that may
	// have reached SCM returned ErrOutcomeUnknown above, except an answer that could not be read.
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.HTTPStatus >= 200 && apiErr.HTTPStatus < 400 {
		return nil, fmt.Errorf("%w: %w", issuer.ErrOutcomeUnknown, err)
	}
	return nil, issuer.NotPlaced(err)
}

// attempt makes the call, retrying what may be retried.
func (i *Issuer) attempt(ctx context.Context, c call) (*response, error) {
	var payload []byte
	if c.body != nil {
		var err error
		if payload, err = json.Marshal(c.body); err != nil {
			return nil, fmt.Errorf("SCM %s: encode request: %w", c.op, err)
		}
	}
	refreshed := false
	for attempt := 1; ; attempt++ {
		resp, err := i.once(ctx, c, payload)
		var wait time.Duration
		var failure error
		switch {
		case err == nil && resp.status == http.StatusUnauthorized && i.cfg.Auth == "oauth2" && !refreshed:
			// The token expired or was revoked early: one fresh token, then the same call.
			if uri := authorizationURI(resp.header.Get("WWW-Authenticate")); uri != "" {
				if i.trustedTokenURL(uri) {
					i.tokens.mu.Lock()
					i.tokens.tokenURL = uri
					i.tokens.mu.Unlock()
				} else {
					i.log.Warn("SCM named a token server that is not https or not a Sectigo host; keeping the configured one",
						"issuer", i.cfg.Name, "authorization_uri", uri)
				}
			}
			refreshed = true
			if _, err := i.accessToken(ctx, true); err != nil {
				return nil, err
			}
			attempt--
			continue
		case err == nil && resp.status < 400:
			return resp, nil
		case err == nil:
			apiErr := parseError(c.op, resp)
			if !c.idempotent && resp.status >= 500 {
				// A server error after the order was sent: it may or may not exist.
				return nil, fmt.Errorf("%w: %w", issuer.ErrOutcomeUnknown, apiErr)
			}
			if !apiErr.Retryable() || attempt >= i.retry.attempts {
				return nil, apiErr
			}
			wait, failure = retryAfter(resp.header.Get("Retry-After"), i.now()), apiErr
			i.log.Warn("SCM call failed; retrying", "op", c.op, "status", resp.status, "attempt", attempt)
		default:
			// Checked before the context: a signal or deadline that interrupts a request already
			// written (a lost answer, a timeout, a cancelled context) leaves its outcome unknown,
			// never "not sent". A failed token request is not the order's request.
			var te *transportError
			if errors.As(err, &te) && !c.idempotent && te.sent && te.op == c.op {
				return nil, fmt.Errorf("%w: %w", issuer.ErrOutcomeUnknown, err)
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("SCM %s: %w", c.op, ctx.Err())
			}
			var apiErr *Error
			if errors.As(err, &apiErr) && !apiErr.Retryable() {
				return nil, err // e.g. the token endpoint refused the client credentials
			}
			if attempt >= i.retry.attempts {
				return nil, err
			}
			failure = err
			i.log.Warn("SCM call failed; retrying", "op", c.op, "error", err.Error(), "attempt", attempt)
		}
		if wait == 0 {
			wait = backoff(i.retry, attempt)
		}
		// A CA's Retry-After is obeyed up to a bound, and never past the caller's deadline (the
		// run's collect_timeout): waiting longer would only stall the run.
		wait = min(wait, maxRetryAfter)
		if deadline, ok := ctx.Deadline(); ok && i.now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("%w (not retried: the wait of %s would pass the deadline: %w)", failure, wait.Round(time.Second), context.DeadlineExceeded)
		}
		if err := i.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("SCM %s: %w", c.op, err)
		}
	}
}

func backoff(p retryPolicy, attempt int) time.Duration {
	d := p.base << (attempt - 1)
	if d > p.max || d <= 0 {
		d = p.max
	}
	// Full jitter between half and all of it, so many agents do not retry in step.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func (i *Issuer) once(ctx context.Context, c call, payload []byte) (*response, error) {
	u := i.base.JoinPath(c.path)
	u.RawQuery = c.query.Encode()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("SCM %s: %w", c.op, err)
	}
	accept := c.accept
	if accept == "" {
		accept = "application/json"
	}
	req.Header.Set("Accept", accept)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	}
	switch i.cfg.Auth {
	case "oauth2":
		tok, err := i.accessToken(ctx, false)
		if err != nil {
			var te *transportError
			if errors.As(err, &te) {
				// The token request failed; the call itself was never sent.
				return nil, &transportError{op: c.op, err: err, sent: false}
			}
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	case "legacy":
		req.Header.Set("login", i.cfg.Login)
		req.Header.Set("password", i.cfg.Password)
		req.Header.Set("customerUri", i.cfg.CustomerURI)
	}
	// The request counts as sent once its headers were written: before that the server cannot act.
	var wrote atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }}))
	resp, err := i.http.Do(req)
	if err != nil {
		return nil, &transportError{op: c.op, err: err, sent: wrote.Load()}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, &transportError{op: c.op, err: err, sent: true}
	}
	if len(data) > maxBody {
		return nil, &Error{Op: c.op, HTTPStatus: resp.StatusCode, Description: fmt.Sprintf("answer larger than %d bytes", maxBody)}
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// parseError turns an error answer into an *Error.
func parseError(op string, r *response) *Error {
	e := &Error{Op: op, HTTPStatus: r.status}
	if code, desc, err := decodeErrorBody(r.body); err == nil {
		e.Code, e.Description, e.HasCode = code, desc, true
	} else if len(r.body) > 0 {
		e.Description = strings.TrimSpace(string(r.body[:min(len(r.body), 200)]))
	}
	e.Hint = hints[e.Code]
	return e
}

// decodeErrorBody reads SCM's {"code": N, "description": "..."}.
func decodeErrorBody(body []byte) (int, string, error) {
	var doc struct {
		Code        *json.Number `json:"code"`
		Description string       `json:"description"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil || doc.Code == nil {
		return 0, "", errNotJSON
	}
	code, err := doc.Code.Int64()
	if err != nil || code != int64(int(code)) {
		return 0, "", errNotJSON
	}
	return int(code), doc.Description, nil
}
