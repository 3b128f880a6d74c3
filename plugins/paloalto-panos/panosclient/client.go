// Package panosclient is a small client of the PAN-OS XML API (https://<device>/api/): keygen,
// config get/show/set/edit/delete, operational commands, export, multipart import, commit and job
// polling. Every request is a POST carrying the API key in the X-PAN-KEY header (never in a URL);
// every parameter is URL-encoded, and callers build XML with Escape and XPathLiteral so user
// values cannot change the structure of a command. Answers are checked with the envelope rule
// of Response.Failed.
package panosclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// maxBody caps what is read of one answer; a full config export is far below this.
const maxBody = 64 << 20

// Config of a Client.
type Config struct {
	// BaseURL is https://host[:port]; "/api/" is appended.
	BaseURL string
	// HTTPClient carries the TLS settings and timeouts; http.DefaultClient when nil.
	HTTPClient *http.Client
	// APIKey authenticates directly and wins when set. Otherwise Username and Password get a key
	// through keygen.
	APIKey   string
	Username string
	Password string
	// Keys caches keys made by keygen across clients (one plugin process, many calls); a
	// private cache when nil.
	Keys *KeyCache
}

// Client talks to one device. It is safe for concurrent use.
type Client struct {
	endpoint string
	http     *http.Client
	apiKey   string
	user     string
	password string
	keys     *KeyCache
	cacheID  string
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("base URL %q: want https://host[:port]", cfg.BaseURL)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("base URL %q: the XML API is served over https only", cfg.BaseURL)
	}
	if cfg.APIKey == "" && (cfg.Username == "" || cfg.Password == "") {
		return nil, errors.New("no credentials: give an API key, or a username and password")
	}
	c := &Client{
		endpoint: u.Scheme + "://" + u.Host + "/api/",
		http:     cfg.HTTPClient,
		apiKey:   cfg.APIKey,
		user:     cfg.Username,
		password: cfg.Password,
		keys:     cfg.Keys,
	}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if c.keys == nil {
		c.keys = NewKeyCache()
	}
	// The cache entry is per device, user and password, so a changed password never reuses a
	// key made with the old one; the hash keeps the password itself out of the map.
	sum := sha256.Sum256([]byte(c.endpoint + "\x00" + c.user + "\x00" + c.password))
	c.cacheID = hex.EncodeToString(sum[:])
	return c, nil
}

// Endpoint is the URL requests go to.
func (c *Client) Endpoint() string { return c.endpoint }

// KeyCache holds API keys made by keygen, one per device and user. Keygen may revoke the user's
// previous key (pango: "Generation of the API Key will also invalidate the existing key"), so
// concurrent calls for the same device share one key and one keygen at a time.
type KeyCache struct {
	mu      sync.Mutex
	entries map[string]*keyEntry
}

type keyEntry struct {
	// sem is held while a keygen for this entry is in flight; a channel so waiters can give up.
	sem chan struct{}
	key string
}

// NewKeyCache returns an empty cache.
func NewKeyCache() *KeyCache { return &KeyCache{entries: make(map[string]*keyEntry)} }

func (k *KeyCache) entry(id string) *keyEntry {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.entries[id]
	if !ok {
		e = &keyEntry{sem: make(chan struct{}, 1)}
		k.entries[id] = e
	}
	return e
}

// key returns the cached key, running keygen when there is none or when the cached one is stale
// (the one a request was just refused with).
func (c *Client) key(ctx context.Context, stale string) (string, error) {
	if c.apiKey != "" {
		return c.apiKey, nil
	}
	e := c.keys.entry(c.cacheID)
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-e.sem }()
	if e.key != "" && e.key != stale {
		return e.key, nil
	}
	e.key = ""
	key, err := c.keygen(ctx)
	if err != nil {
		return "", err
	}
	e.key = key
	return key, nil
}

// keygen exchanges the username and password for an API key (type=keygen). They travel in the
// form body of a POST, never in the URL.
func (c *Client) keygen(ctx context.Context) (string, error) {
	form := url.Values{"type": {"keygen"}, "user": {c.user}, "password": {c.password}}
	resp, _, err := c.send(ctx, "", form, nil)
	if err != nil {
		return "", fmt.Errorf("keygen for user %q: %w", c.user, err)
	}
	key := resp.Result.Value("key")
	if key == "" {
		return "", fmt.Errorf("keygen for user %q: the answer holds no key", c.user)
	}
	return key, nil
}

// upload is a file sent with type=import.
type upload struct {
	filename string
	content  []byte
}

// do sends one authenticated request. A 403 with a key made by keygen means the key expired or
// was revoked: keygen once more and retry once.
func (c *Client) do(ctx context.Context, form url.Values, file *upload) (*Response, []byte, error) {
	key, err := c.key(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	resp, raw, err := c.send(ctx, key, form, file)
	var apiErr *APIError
	if errors.As(err, &apiErr) && (apiErr.Forbidden() || apiErr.SessionExpired()) && c.apiKey == "" {
		if key, err = c.key(ctx, key); err != nil {
			return nil, nil, err
		}
		resp, raw, err = c.send(ctx, key, form, file)
	}
	if err == nil && resp == nil && form.Get("type") != "export" {
		// Only an export answers with something other than a <response> envelope; anything
		// else (an HTML page from a proxy, a truncated answer) is not an answer of the API.
		return nil, raw, fmt.Errorf("the answer is not an XML API response: %s", snippet(raw))
	}
	return resp, raw, err
}

// send makes one POST to /api/. A body holding a <response> envelope is parsed and checked;
// any other body (an export) is returned raw when the HTTP status is 200.
func (c *Client) send(ctx context.Context, key string, form url.Values, file *upload) (*Response, []byte, error) {
	var body io.Reader
	var contentType string
	if file == nil {
		body = strings.NewReader(form.Encode())
		contentType = "application/x-www-form-urlencoded"
	} else {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		for name, values := range form {
			for _, v := range values {
				if err := w.WriteField(name, v); err != nil {
					return nil, nil, fmt.Errorf("build upload: %w", err)
				}
			}
		}
		part, err := w.CreateFormFile("file", file.filename)
		if err != nil {
			return nil, nil, fmt.Errorf("build upload: %w", err)
		}
		if _, err := part.Write(file.content); err != nil {
			return nil, nil, fmt.Errorf("build upload: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, nil, fmt.Errorf("build upload: %w", err)
		}
		body = &buf
		// Go does not quote the boundary; PAN-OS rejects a quoted one (Keyfactor's client notes it).
		contentType = w.FormDataContentType()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, body)
	if err != nil {
		return nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	if key != "" {
		req.Header.Set("X-PAN-KEY", key)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, nil, &TransportError{Err: err}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return nil, nil, &TransportError{Err: fmt.Errorf("read answer: %w", err)}
	}
	if looksLikeEnvelope(raw) {
		resp, err := ParseResponse(raw)
		if err != nil {
			if res.StatusCode != http.StatusOK {
				return nil, nil, &HTTPError{StatusCode: res.StatusCode, Snippet: snippet(raw)}
			}
			return nil, nil, fmt.Errorf("malformed answer: %w", err)
		}
		if resp.Failed() || res.StatusCode >= 400 {
			return resp, raw, apiErrorOf(res.StatusCode, resp)
		}
		return resp, raw, nil
	}
	if res.StatusCode != http.StatusOK {
		return nil, nil, &HTTPError{StatusCode: res.StatusCode, Snippet: snippet(raw)}
	}
	return nil, raw, nil
}

// TransportError is a request that got no answer.
type TransportError struct{ Err error }

func (e *TransportError) Error() string { return e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

func looksLikeEnvelope(b []byte) bool {
	trimmed := bytes.TrimSpace(b)
	if bytes.HasPrefix(trimmed, []byte("<?xml")) {
		if i := bytes.Index(trimmed, []byte("?>")); i >= 0 {
			trimmed = bytes.TrimSpace(trimmed[i+2:])
		}
	}
	return bytes.HasPrefix(trimmed, []byte("<response"))
}

// snippet is a short, single-line start of a body for error messages.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
