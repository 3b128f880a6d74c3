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
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Error codes the client and the plugin act on (shared/reference/citrix-nitro.md §9).
const (
	CodeResourceMissing = 258
	CodeAlreadyExists   = 273
	CodeBadLogin        = 354
	CodeSessionExpired  = 444
	CodeVServerMissing  = 461
	CodeAuthTimeout     = 1027
	CodeBadPrivateKey   = 1537
	CodeNotSSLVServer   = 1544
	CodeFileExists      = 1642
	// CodeCertKeyMissing: "Certificate does not exist" (oneops cookbook add_cert_key.rb matches
	// the text; the code is unconfirmed, so IsMissing also takes 258 and HTTP 404).
	CodeCertKeyMissing = 1540
	// CodeInvalidArgument: an attribute the resource does not have ("Invalid argument [x]").
	CodeInvalidArgument = 278
	// CodeDefaultProfile: a vserver-level SSL setting while the default SSL profile is enabled
	// ("Operation not permitted. To do this Disable default ssl profile", terraform-provider-citrixadc #164).
	CodeDefaultProfile = 3740
)

// Error is a NITRO error body: {"errorcode":N,"message":"...","severity":"ERROR"}.
type Error struct {
	HTTPStatus int
	Code       int
	Message    string
	Severity   string
	// Op is "METHOD path" of the failed request (never a body, never a query).
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

// IsDeviceRefusal reports whether err is a NITRO error body from the appliance, rather than a
// transport failure, an expired session or a denied permission: the appliance understood the
// request and said no.
func IsDeviceRefusal(err error) bool {
	var ne *Error
	return errors.As(err, &ne) && ne.Code > 0 && ne.HTTPStatus != http.StatusUnauthorized && ne.HTTPStatus != http.StatusForbidden
}

// TransportErr is a failed round trip (network, TLS, context).
type TransportErr struct{ Err error }

func (e *TransportErr) Error() string { return e.Err.Error() }
func (e *TransportErr) Unwrap() error { return e.Err }

// AuthMode selects how requests authenticate.
type AuthMode int

const (
	// AuthSession logs in once (POST /config/login) and sends the NITRO_AUTH_TOKEN cookie.
	AuthSession AuthMode = iota
	// AuthHeaders sends X-NITRO-USER / X-NITRO-PASS on every request, with no session.
	AuthHeaders
)

// Options for New.
type Options struct {
	Mode AuthMode
	// SessionTimeout in seconds is sent at login; 0 keeps the appliance's default.
	SessionTimeout int
	// Partition, when set, is switched to after each login (session mode only).
	Partition  string
	HTTPClient *http.Client
	Username   string
	Password   string
	// Trace, when set, is told about every request once it completes: method, path (no
	// query, no body), HTTP status (0 on a transport failure), NITRO errorcode and duration.
	Trace func(method, path string, status, code int, took time.Duration)
}

// Client talks to one appliance. It is safe for concurrent use.
type Client struct {
	base string
	o    Options

	mu       sync.Mutex // guards token and loggedIn; held across a login
	token    string
	loggedIn bool
}

// New returns a client for base ("https://host[:port]").
func New(base string, o Options) *Client {
	return &Client{base: strings.TrimRight(base, "/"), o: o}
}

// Login opens a session (session mode) and switches to the partition if one is set. In header
// mode it proves the credentials with a cheap read.
func (c *Client) Login(ctx context.Context) error {
	if c.o.Mode == AuthHeaders {
		if c.o.Partition != "" && c.o.Partition != "default" {
			return errors.New("a NITRO partition needs session login: partition switching is per session")
		}
		_, err := c.do(ctx, http.MethodGet, cfgPath+"nsversion", nil, nil, "")
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loginLocked(ctx)
}

func (c *Client) loginLocked(ctx context.Context) error {
	login := map[string]any{"username": c.o.Username, "password": c.o.Password}
	if c.o.SessionTimeout > 0 {
		login["timeout"] = c.o.SessionTimeout
	}
	raw, err := c.do(ctx, http.MethodPost, cfgPath+"login", nil, map[string]any{"login": login}, "")
	if err != nil {
		return err
	}
	var r struct {
		SessionID string `json:"sessionid"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || r.SessionID == "" {
		return errors.New("NITRO login: the answer has no sessionid")
	}
	c.token, c.loggedIn = r.SessionID, true
	if c.o.Partition != "" && c.o.Partition != "default" {
		_, err := c.do(ctx, http.MethodPost, cfgPath+"nspartition", url.Values{"action": {"Switch"}},
			map[string]any{"nspartition": map[string]any{"partitionname": c.o.Partition}}, c.token)
		if err != nil {
			return fmt.Errorf("switch to partition %q: %w", c.o.Partition, err)
		}
	}
	return nil
}

// Logout ends the session, if one is open.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.o.Mode == AuthHeaders || !c.loggedIn {
		return nil
	}
	_, err := c.do(ctx, http.MethodPost, cfgPath+"logout", nil, map[string]any{"logout": map[string]any{}}, c.token)
	c.token, c.loggedIn = "", false
	return err
}

// Call performs one config request and returns the raw body. In session mode an answer of
// 444 (session expired) or 1027 (auth timeout) logs in again once and repeats the request: the
// appliance did not act on a request it refused for its session.
func (c *Client) Call(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	tok := c.currentToken()
	raw, err := c.do(ctx, method, path, query, body, tok)
	if err == nil || c.o.Mode != AuthSession || !IsCode(err, CodeSessionExpired, CodeAuthTimeout) {
		return raw, err
	}
	c.mu.Lock()
	// Concurrent calls may all see the expiry: only the first logs in again, the others use
	// its session, so no session is opened behind the client's back and left open.
	if c.token == tok {
		if lerr := c.loginLocked(ctx); lerr != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("log in again after an expired session: %w", lerr)
		}
	}
	tok = c.token
	c.mu.Unlock()
	return c.do(ctx, method, path, query, body, tok)
}

func (c *Client) currentToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// Args builds an args=/filter= value k:v,k2:v2 with the values URL-escaped.
func Args(kv ...string) string {
	parts := make([]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+":"+url.QueryEscape(kv[i+1]))
	}
	return strings.Join(parts, ",")
}

// PathEscape double-escapes a name for the URL path, as NITRO clients do (reference §0).
func PathEscape(name string) string { return url.PathEscape(url.PathEscape(name)) }

// encodeQuery writes the query in key order. args/filter values come from Args, already
// escaped, and keep their ':' and ',' readable as NITRO expects.
func encodeQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		for _, v := range q[k] {
			if k != "args" && k != "filter" {
				v = url.QueryEscape(v)
			}
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, "&")
}

// do sends one request; token is the session cookie to send ("" for none).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, token string) ([]byte, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + encodeQuery(query)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode the body of %s %s: %w", method, path, err)
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
	switch {
	case c.o.Mode == AuthHeaders:
		req.Header.Set("X-NITRO-USER", c.o.Username)
		req.Header.Set("X-NITRO-PASS", c.o.Password)
	case token != "":
		req.AddCookie(&http.Cookie{Name: "NITRO_AUTH_TOKEN", Value: token})
	}
	start := time.Now()
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		c.trace(method, path, 0, 0, start)
		return nil, &TransportErr{Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		c.trace(method, path, resp.StatusCode, 0, start)
		return nil, &TransportErr{Err: fmt.Errorf("read the answer to %s %s: %w", method, path, err)}
	}
	op := method + " " + path
	var env struct {
		ErrorCode int    `json:"errorcode"`
		Message   string `json:"message"`
		Severity  string `json:"severity"`
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if jerr := json.Unmarshal(raw, &env); jerr != nil {
			c.trace(method, path, resp.StatusCode, 0, start)
			if resp.StatusCode >= 400 {
				return nil, &Error{HTTPStatus: resp.StatusCode, Code: -1, Message: http.StatusText(resp.StatusCode), Op: op}
			}
			return nil, fmt.Errorf("NITRO %s: the answer is not JSON: %w", op, jerr)
		}
	}
	c.trace(method, path, resp.StatusCode, env.ErrorCode, start)
	// Any HTTP error, a 207 bulk failure, or a body with severity ERROR whatever the status
	// (as slauger's client does, reference §0) is a failure.
	if resp.StatusCode >= 400 || resp.StatusCode == http.StatusMultiStatus ||
		env.ErrorCode != 0 && strings.EqualFold(env.Severity, "ERROR") {
		msg := env.Message
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return nil, &Error{HTTPStatus: resp.StatusCode, Code: env.ErrorCode, Message: msg, Severity: env.Severity, Op: op}
	}
	return raw, nil
}

func (c *Client) trace(method, path string, status, code int, start time.Time) {
	if c.o.Trace != nil {
		c.o.Trace(method, path, status, code, time.Since(start))
	}
}

// Flex decodes a JSON number or a numeric string: daystoexpiration is an Integer in the docs
// and a string in adc-nitro-go (reference §5), so either may come.
type Flex struct {
	Value int
	Set   bool
}

// UnmarshalJSON accepts 12, "12", "", null and -3.
func (f *Flex) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("daystoexpiration %s is not a whole number", b)
	}
	f.Value, f.Set = n, true
	return nil
}

// FlexBool decodes true, "true", "TRUE", "YES", "ENABLED".
type FlexBool bool

// UnmarshalJSON accepts a boolean or a string.
func (f *FlexBool) UnmarshalJSON(b []byte) error {
	s := strings.ToLower(strings.Trim(string(b), `"`))
	*f = FlexBool(s == "true" || s == "yes" || s == "enabled")
	return nil
}
