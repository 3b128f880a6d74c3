// Package nitro is a small client for the Citrix ADC / NetScaler NITRO REST API
// (/nitro/v1/config/...): context-aware requests with timeouts, session login with re-login on
// errorcode 444/1027 or stateless X-NITRO-USER/X-NITRO-PASS headers, and typed errors carrying
// NITRO's errorcode and message. It knows only the wire format; the plugin decides what to call.
package nitro

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
)

// Error codes the client and the plugin act on (see shared/reference/citrix-nitro.md §9).
const (
	CodeResourceMissing  = 258
	CodeAlreadyExists    = 273
	CodeBadLogin         = 354
	CodeSessionExpired   = 444
	CodeVServerMissing   = 461
	CodeAuthTimeout      = 1027
	CodeBadPrivateKey    = 1537
	CodeNotSSLVServer    = 1544
	CodeFileExists       = 1642
	CodeBulkFailed       = 1243
	CodeSecondServerCert = 1503 // not in the reference; see nitrosim for why it is assumed
)

// Error is a NITRO error body: {"errorcode":N,"message":"...","severity":"ERROR"}.
type Error struct {
	HTTPStatus int
	Code       int
	Message    string
	Severity   string
	// Op is "METHOD path" of the failed request (never a body).
	Op string
}

func (e *Error) Error() string {
	return fmt.Sprintf("NITRO %s: HTTP %d, errorcode %d: %s", e.Op, e.HTTPStatus, e.Code, e.Message)
}

// IsCode reports whether err is a NITRO error with one of codes.
func IsCode(err error, codes ...int) bool {
	var ne *Error
	if !errors.As(err, &ne) {
		return false
	}
	for _, c := range codes {
		if ne.Code == c {
			return true
		}
	}
	return false
}

// AuthMode selects how requests authenticate.
type AuthMode int

const (
	// AuthSession logs in once (POST /config/login) and sends the NITRO_AUTH_TOKEN cookie.
	AuthSession AuthMode = iota
	// AuthHeaders sends X-NITRO-USER / X-NITRO-PASS on every request, with no session.
	AuthHeaders
)

// Client talks to one appliance. It is safe for concurrent use, but the plugin makes one per call.
type Client struct {
	base     string // https://host:port
	http     *http.Client
	user     string
	pass     string
	mode     AuthMode
	timeout  int // session timeout in seconds sent at login; 0 = device default
	mu       sync.Mutex
	token    string
	loggedIn bool
	// partition, when set, is switched to after each login (session mode only).
	partition string
}

// Options for New.
type Options struct {
	Mode             AuthMode
	SessionTimeout   int
	Partition        string
	HTTPClient       *http.Client
	Username, Secret string
}

// New returns a client for base ("https://host[:port]").
func New(base string, o Options) *Client {
	return &Client{base: strings.TrimRight(base, "/"), http: o.HTTPClient, user: o.Username, pass: o.Secret,
		mode: o.Mode, timeout: o.SessionTimeout, partition: o.Partition}
}

// Base returns the appliance URL.
func (c *Client) Base() string { return c.base }

// Response is the common NITRO envelope; the typed payload is decoded separately.
type Response struct {
	ErrorCode int             `json:"errorcode"`
	Message   string          `json:"message"`
	Severity  string          `json:"severity"`
	SessionID string          `json:"sessionid,omitempty"`
	Raw       json.RawMessage `json:"-"`
}

// Login opens a session (session mode) and switches to the partition if one is set.
func (c *Client) Login(ctx context.Context) error {
	if c.mode == AuthHeaders {
		if c.partition != "" {
			return errors.New("a NITRO partition needs session login; partition switching is per session")
		}
		// Stateless: prove the credentials with a cheap read.
		_, err := c.do(ctx, http.MethodGet, "/nitro/v1/config/nsversion", nil, nil, false)
		return err
	}
	body := map[string]any{"login": map[string]any{"username": c.user, "password": c.pass}}
	if c.timeout > 0 {
		body["login"].(map[string]any)["timeout"] = c.timeout
	}
	raw, err := c.do(ctx, http.MethodPost, "/nitro/v1/config/login", nil, body, false)
	if err != nil {
		return err
	}
	var r Response
	if err := json.Unmarshal(raw, &r); err != nil || r.SessionID == "" {
		return fmt.Errorf("NITRO login: response has no sessionid")
	}
	c.mu.Lock()
	c.token, c.loggedIn = r.SessionID, true
	c.mu.Unlock()
	if c.partition != "" && c.partition != "default" {
		_, err := c.do(ctx, http.MethodPost, "/nitro/v1/config/nspartition", url.Values{"action": {"Switch"}},
			map[string]any{"nspartition": map[string]any{"partitionname": c.partition}}, true)
		if err != nil {
			return fmt.Errorf("switch to partition %q: %w", c.partition, err)
		}
	}
	return nil
}

// Logout ends the session; it uses its own short context so it runs on error paths too.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	loggedIn := c.loggedIn
	c.mu.Unlock()
	if c.mode == AuthHeaders || !loggedIn {
		return nil
	}
	_, err := c.do(ctx, http.MethodPost, "/nitro/v1/config/logout", nil, map[string]any{"logout": map[string]any{}}, true)
	c.mu.Lock()
	c.token, c.loggedIn = "", false
	c.mu.Unlock()
	return err
}

// Call performs one config request and returns the raw body. A 444/1027 answer in session mode
// logs in again once and repeats the request.
func (c *Client) Call(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	raw, err := c.do(ctx, method, path, query, body, true)
	if err != nil && c.mode == AuthSession && IsCode(err, CodeSessionExpired, CodeAuthTimeout) {
		if lerr := c.Login(ctx); lerr != nil {
			return nil, fmt.Errorf("re-login after expired session: %w", lerr)
		}
		raw, err = c.do(ctx, method, path, query, body, true)
	}
	return raw, err
}

// PathEscape double-escapes a name for the URL path, as NITRO clients do.
func PathEscape(name string) string { return url.PathEscape(url.PathEscape(name)) }

// Args builds the args=/filter= value k:v,k2:v2 (values URL-escaped).
func Args(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+":"+url.QueryEscape(kv[i+1]))
	}
	return strings.Join(parts, ",")
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, auth bool) ([]byte, error) {
	u := c.base + path
	if len(query) > 0 {
		// args values are already escaped; keep ':' and ',' readable as NITRO expects.
		var q []string
		for k, vs := range query {
			for _, v := range vs {
				q = append(q, k+"="+v)
			}
		}
		u += "?" + strings.Join(q, "&")
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode %s body: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		if c.mode == AuthHeaders {
			req.Header.Set("X-NITRO-USER", c.user)
			req.Header.Set("X-NITRO-PASS", c.pass)
		} else {
			c.mu.Lock()
			tok := c.token
			c.mu.Unlock()
			req.AddCookie(&http.Cookie{Name: "NITRO_AUTH_TOKEN", Value: tok})
		}
	} else if c.mode == AuthHeaders && path == "/nitro/v1/config/nsversion" {
		req.Header.Set("X-NITRO-USER", c.user)
		req.Header.Set("X-NITRO-PASS", c.pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &TransportErr{Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, &TransportErr{Err: fmt.Errorf("read %s %s: %w", method, path, err)}
	}
	op := method + " " + path
	var env Response
	if len(bytes.TrimSpace(raw)) > 0 {
		if jerr := json.Unmarshal(raw, &env); jerr != nil {
			if resp.StatusCode >= 400 {
				return nil, &Error{HTTPStatus: resp.StatusCode, Code: -1, Message: http.StatusText(resp.StatusCode), Op: op}
			}
			return nil, fmt.Errorf("NITRO %s: response is not JSON: %w", op, jerr)
		}
	}
	// Fail on severity ERROR whatever the status, as slauger's client does (reference §0).
	if resp.StatusCode >= 400 || env.ErrorCode != 0 && strings.EqualFold(env.Severity, "ERROR") || resp.StatusCode == http.StatusMultiStatus {
		code := env.ErrorCode
		msg := env.Message
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return nil, &Error{HTTPStatus: resp.StatusCode, Code: code, Message: msg, Severity: env.Severity, Op: op}
	}
	return raw, nil
}

// TransportErr is a failed round trip (network, TLS, context).
type TransportErr struct{ Err error }

func (e *TransportErr) Error() string { return e.Err.Error() }
func (e *TransportErr) Unwrap() error { return e.Err }

// Flex decodes a JSON number or a numeric string (NITRO's daystoexpiration is Integer in the docs
// and string in adc-nitro-go; reference §5).
type Flex struct {
	Value int
	Set   bool
}

// UnmarshalJSON accepts 12, "12", "" and null.
func (f *Flex) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("daystoexpiration %s is not a number", b)
	}
	f.Value, f.Set = n, true
	return nil
}

// FlexBool decodes true, "true", "TRUE", "YES".
type FlexBool bool

// UnmarshalJSON accepts a boolean or a string.
func (f *FlexBool) UnmarshalJSON(b []byte) error {
	s := strings.ToLower(strings.Trim(string(b), `"`))
	*f = FlexBool(s == "true" || s == "yes" || s == "enabled")
	return nil
}
