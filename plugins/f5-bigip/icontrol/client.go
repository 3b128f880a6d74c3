// Package icontrol is a small client for the parts of F5 BIG-IP iControl REST that certfleet
// uses: token or basic authentication, JSON calls on /mgmt/tm, paged collections, transactions,
// file uploads and bulk downloads, util/bash and util/unix-*, sys config save and config-sync.
//
// Every call takes a context. Errors from the device are *Error, built from the response body's
// {code, message, errorStack}; the client never returns or logs a request or response body, and it
// replaces every secret it knows (password, token, passphrases registered with AddSecret) in the
// device's messages, because some endpoints echo the request back in their errors.
package icontrol

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	defaultLoginProvider = "tmos"
	defaultChunkSize     = 512 * 1024
	defaultPageSize      = 500
	maxErrorBody         = 1 << 20
	maxResponseBody      = 64 << 20
	redacted             = "[redacted]"
)

// Config describes one device session.
type Config struct {
	// BaseURL is https://host[:port] of the management interface.
	BaseURL    string
	HTTPClient *http.Client
	Username   string
	Password   string
	// LoginProvider is the loginProviderName for token auth; "tmos" (local users) when empty.
	// Remote users (LDAP, RADIUS, TACACS+) need the provider's name.
	LoginProvider string
	// BasicAuth sends the credentials on every request instead of logging in for a token; it
	// works for local users only.
	BasicAuth bool
	Logger    hclog.Logger
	// MaxRetries for a busy device (503, active asynchronous task, GUI restarting); 3 when zero.
	MaxRetries int
	// RetryBackoff is the first wait between retries, doubled each time; 250ms when zero.
	RetryBackoff time.Duration
	// UploadChunkSize caps one upload or download request; 512 KiB when zero (what go-bigip uses).
	UploadChunkSize int
	// PageSize is $top for collections; 500 when zero.
	PageSize int
}

// Client is one session with one device. It is safe for concurrent use.
type Client struct {
	cfg Config
	log hclog.Logger

	mu      sync.Mutex
	token   string
	secrets []string
	// secretBytes are secrets the caller owns and clears (a PCI passphrase); the client keeps
	// the slices, never a copy.
	secretBytes [][]byte
}

// New returns a client; with token auth, call Login before anything else and Logout when done.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("base URL %q: want https://host[:port]", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.LoginProvider == "" {
		cfg.LoginProvider = defaultLoginProvider
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 3
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = 250 * time.Millisecond
	}
	if cfg.UploadChunkSize <= 0 {
		cfg.UploadChunkSize = defaultChunkSize
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = defaultPageSize
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	c := &Client{cfg: cfg, log: log}
	c.AddSecret(cfg.Password)
	return c, nil
}

// AddSecret registers a value (a passphrase, say) that must never appear in an error or a log
// line; the client replaces it wherever the device echoes it.
func (c *Client) AddSecret(s string) {
	if len(s) < 4 {
		return
	}
	quoted, _ := json.Marshal(s)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.secrets = append(c.secrets, s)
	if esc := string(quoted[1 : len(quoted)-1]); esc != s {
		c.secrets = append(c.secrets, esc)
	}
}

// AddSecretBytes registers a secret the caller owns and will clear, without copying it.
func (c *Client) AddSecretBytes(b []byte) {
	if len(b) < 4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.secretBytes = append(c.secretBytes, b)
}

// Scrub replaces every registered secret in s.
func (c *Client) Scrub(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sec := range c.secrets {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	if len(c.secretBytes) > 0 {
		b := []byte(s)
		for _, sec := range c.secretBytes {
			b = bytes.ReplaceAll(b, sec, []byte(redacted))
		}
		s = string(b)
	}
	return s
}

// SecretPlaceholder stands in a request body for the secret given with WithSecret.
const SecretPlaceholder = "certfleet-icontrol-secret-placeholder"

// WithSecret puts secret into the request body where SecretPlaceholder is, without making a Go
// string of it, and clears the body once the request is done; the secret must need no JSON
// escaping (a base64url passphrase, say).
func WithSecret(secret []byte) Option {
	return func(r *request) { r.secret = secret }
}

// spliceSecret replaces the quoted placeholder in body with the quoted secret, in a new slice.
func spliceSecret(body, secret []byte) ([]byte, error) {
	for _, ch := range secret {
		if ch < 0x20 || ch == '"' || ch == '\\' || ch >= 0x7f || ch == '<' || ch == '>' || ch == '&' {
			return nil, errors.New("the secret needs JSON escaping")
		}
	}
	marker := []byte(SecretPlaceholder)
	n := bytes.Count(body, marker)
	if n == 0 {
		return nil, errors.New("the body has no secret placeholder")
	}
	out := make([]byte, 0, len(body)+n*(len(secret)-len(marker)))
	for {
		i := bytes.Index(body, marker)
		if i < 0 {
			return append(out, body...), nil
		}
		out = append(append(out, body[:i]...), secret...)
		body = body[i+len(marker):]
	}
}

// Login gets a token (token auth); with basic auth it does nothing.
func (c *Client) Login(ctx context.Context) error {
	if c.cfg.BasicAuth {
		return nil
	}
	body, err := json.Marshal(map[string]string{
		"username": c.cfg.Username, "password": c.cfg.Password, "loginProviderName": c.cfg.LoginProvider,
	})
	if err != nil {
		return err
	}
	var out struct {
		Token struct {
			Token string `json:"token"`
		} `json:"token"`
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/mgmt/shared/authn/login", body: body, noAuth: true})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(resp.body, &out); err != nil || out.Token.Token == "" {
		return fmt.Errorf("login: the device answered without a token")
	}
	c.AddSecret(out.Token.Token)
	c.mu.Lock()
	c.token = out.Token.Token
	c.mu.Unlock()
	c.log.Trace("logged in", "provider", c.cfg.LoginProvider)
	return nil
}

// Logout deletes the token: a user holds at most 100, so every session gives its own back.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	token := c.token
	c.mu.Unlock()
	if token == "" {
		return nil
	}
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/mgmt/shared/authz/tokens/" + token, noRelogin: true})
	c.mu.Lock()
	c.token = ""
	c.mu.Unlock()
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("delete token: %w", err)
	}
	return nil
}

// Option changes one request.
type Option func(*request)

// InTransaction queues the request in transaction id instead of running it.
func InTransaction(id int64) Option {
	return func(r *request) { r.txn = id }
}

// Query adds query parameters.
func Query(q url.Values) Option {
	return func(r *request) { r.query = q }
}

// Get reads path into out.
func (c *Client) Get(ctx context.Context, path string, out any, opts ...Option) error {
	return c.Send(ctx, http.MethodGet, path, nil, out, opts...)
}

// Send runs one JSON call: in (when not nil) is the body, out (when not nil) receives the answer.
func (c *Client) Send(ctx context.Context, method, path string, in, out any, opts ...Option) error {
	r := request{method: method, path: path}
	for _, o := range opts {
		o(&r)
	}
	if in != nil {
		body, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
		r.body = body
		if r.secret != nil {
			if r.body, err = spliceSecret(body, r.secret); err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
			defer clear(r.body)
		}
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	if out != nil && len(resp.body) > 0 {
		if err := json.Unmarshal(resp.body, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// List reads every item of a collection, following nextLink pages.
func List[T any](ctx context.Context, c *Client, path string, query url.Values) ([]T, error) {
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Set("$top", strconv.Itoa(c.cfg.PageSize))
	var out []T
	r := request{method: http.MethodGet, path: path, query: q}
	for page := 0; ; page++ {
		if page > 10000 {
			return nil, fmt.Errorf("GET %s: more than 10000 pages", path)
		}
		resp, err := c.do(ctx, r)
		if err != nil {
			return nil, err
		}
		var body struct {
			Items    []T    `json:"items"`
			NextLink string `json:"nextLink"`
		}
		if err := json.Unmarshal(resp.body, &body); err != nil {
			return nil, fmt.Errorf("GET %s: decode collection: %w", path, err)
		}
		out = append(out, body.Items...)
		if body.NextLink == "" || len(body.Items) == 0 {
			return out, nil
		}
		// nextLink names https://localhost/...; keep our own address.
		next, err := url.Parse(body.NextLink)
		if err != nil || !strings.HasPrefix(next.Path, "/mgmt/") {
			return nil, fmt.Errorf("GET %s: unusable nextLink %q", path, body.NextLink)
		}
		r = request{method: http.MethodGet, path: next.Path, query: next.Query()}
	}
}

type request struct {
	method, path string
	query        url.Values
	body         []byte
	contentType  string
	header       http.Header
	txn          int64
	// secret goes into body in place of SecretPlaceholder (see WithSecret).
	secret []byte
	// noAuth: the login call itself; noRelogin: do not log in again on a token error.
	noAuth, noRelogin bool
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends r, logging in again once when the token expired and retrying while the device is busy.
// On an HTTP error it returns the response too (a bulk download reads its headers).
func (c *Client) do(ctx context.Context, r request) (*response, error) {
	relogged := false
	wait := c.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		resp, err := c.roundTrip(ctx, r)
		if err != nil {
			return nil, err
		}
		if resp.status < 400 {
			return resp, nil
		}
		apiErr := c.parseError(r, resp)
		if !c.cfg.BasicAuth && !r.noAuth && !r.noRelogin && !relogged && isTokenProblem(apiErr) {
			c.log.Debug("token rejected; logging in again", "path", c.Scrub(r.path))
			relogged = true
			if err := c.Login(ctx); err != nil {
				return nil, fmt.Errorf("log in again after %q: %w", apiErr.Message, err)
			}
			attempt--
			continue
		}
		if IsRetryable(apiErr) && attempt < c.cfg.MaxRetries {
			c.log.Debug("device busy; retrying", "method", r.method, "path", c.Scrub(r.path), "status", resp.status, "wait", wait)
			select {
			case <-ctx.Done():
				return resp, ctx.Err()
			case <-time.After(wait):
			}
			wait *= 2
			continue
		}
		return resp, apiErr
	}
}

func (c *Client) roundTrip(ctx context.Context, r request) (*response, error) {
	if r.secret != nil {
		if resp, ok, err := c.secretRoundTrip(ctx, r); ok {
			return resp, err
		}
	}
	target := c.cfg.BaseURL + r.path
	if len(r.query) > 0 {
		// BIG-IP documents $filter/$top/$skip with a literal '$'.
		target += "?" + strings.ReplaceAll(r.query.Encode(), "%24", "$")
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, c.Scrub(r.path), err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if r.txn != 0 {
		req.Header.Set(coordinationHead, strconv.FormatInt(r.txn, 10))
	}
	if !r.noAuth {
		if c.cfg.BasicAuth {
			req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
		} else {
			c.mu.Lock()
			token := c.token
			c.mu.Unlock()
			if token == "" {
				return nil, errors.New("not logged in")
			}
			req.Header.Set("X-F5-Auth-Token", token)
		}
	}
	start := time.Now()
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		// url.Error repeats the URL, which holds a token on logout; keep the cause only.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("%s %s: %w", r.method, c.Scrub(r.path), err)
	}
	defer resp.Body.Close()
	limit := int64(maxResponseBody)
	if resp.StatusCode >= 400 {
		limit = maxErrorBody
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", r.method, c.Scrub(r.path), err)
	}
	c.log.Trace("icontrol", "method", r.method, "path", c.Scrub(r.path), "status", resp.StatusCode,
		"transaction", r.txn != 0, "elapsed", time.Since(start).Round(time.Millisecond).String())
	return &response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

func (c *Client) parseError(r request, resp *response) *Error {
	e := &Error{Method: r.method, Path: c.Scrub(r.path), Status: resp.status}
	var body struct {
		Code       int               `json:"code"`
		Message    string            `json:"message"`
		ErrorStack []json.RawMessage `json:"errorStack"`
	}
	if err := json.Unmarshal(resp.body, &body); err == nil && (body.Message != "" || body.Code != 0) {
		e.Code, e.Message = body.Code, c.Scrub(body.Message)
		for _, s := range body.ErrorStack {
			var line string
			if json.Unmarshal(s, &line) != nil {
				line = string(s)
			}
			e.ErrorStack = append(e.ErrorStack, c.Scrub(line))
		}
		return e
	}
	// Not JSON: an Apache or GUI page ("Configuration Utility restarting...").
	text := strings.Join(strings.Fields(stripTags(string(resp.body))), " ")
	if len(text) > 300 {
		text = text[:300] + "..."
	}
	e.Message = c.Scrub(text)
	return e
}

func stripTags(s string) string {
	var b strings.Builder
	inTag := false
	for _, r := range s {
		switch {
		case r == '<':
			inTag = true
		case r == '>':
			inTag = false
			b.WriteByte(' ')
		case !inTag:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ObjectPath is the URL path of an object in a collection: every '/' of the full name becomes '~'
// (and '%' is escaped), so /Common/www.crt under sys/file/ssl-cert is .../ssl-cert/~Common~www.crt.
func ObjectPath(collection, fullPath string) string {
	return collection + "/" + strings.ReplaceAll(strings.ReplaceAll(fullPath, "%", "%25"), "/", "~")
}
