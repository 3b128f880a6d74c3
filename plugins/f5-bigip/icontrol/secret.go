package icontrol

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// secretRoundTrip sends a request whose body carries a secret over a connection of its own, with
// the request written from one buffer the client clears afterwards. net/http would copy the body
// into buffers of its own (the connection's bufio.Writer, or io.Copy's), which nobody clears; TLS
// encrypts records in place, so the only plaintext left is in the buffer cleared here. The answer
// is read as usual. It is used only when the HTTP client's transport is an *http.Transport without
// a proxy for the device (its dialer and TLS settings are reused); otherwise ok is false and the
// caller sends the request the ordinary way.
func (c *Client) secretRoundTrip(ctx context.Context, r request) (resp *response, ok bool, err error) {
	tr, isTransport := c.cfg.HTTPClient.Transport.(*http.Transport)
	if !isTransport || r.txn != 0 || len(r.query) > 0 {
		return nil, false, nil
	}
	base, err := url.Parse(c.cfg.BaseURL)
	if err != nil || base.Scheme != "https" {
		return nil, false, nil
	}
	if tr.Proxy != nil {
		probe := &http.Request{URL: base, Header: http.Header{}}
		if proxy, perr := tr.Proxy(probe); perr != nil || proxy != nil {
			return nil, false, nil
		}
	}
	host := base.Host
	if base.Port() == "" {
		host = net.JoinHostPort(base.Hostname(), "443")
	}
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	raw, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, true, fmt.Errorf("%s %s: %w", r.method, c.Scrub(r.path), err)
	}
	tlsCfg := &tls.Config{}
	if tr.TLSClientConfig != nil {
		tlsCfg = tr.TLSClientConfig.Clone()
	}
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = base.Hostname()
	}
	tlsCfg.NextProtos = []string{"http/1.1"}
	conn := tls.Client(raw, tlsCfg)
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if d, has := ctx.Deadline(); has {
		_ = conn.SetDeadline(d)
	}
	if c.cfg.HTTPClient.Timeout > 0 {
		if d := time.Now().Add(c.cfg.HTTPClient.Timeout); !hasEarlierDeadline(ctx, d) {
			_ = conn.SetDeadline(d)
		}
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, true, fmt.Errorf("%s %s: %w", r.method, c.Scrub(r.path), err)
	}

	head := http.Header{}
	head.Set("Host", base.Host)
	head.Set("Accept", "application/json")
	head.Set("Content-Type", "application/json")
	head.Set("Content-Length", strconv.Itoa(len(r.body)))
	head.Set("Connection", "close")
	for k, v := range r.header {
		head[k] = v
	}
	if !r.noAuth {
		if c.cfg.BasicAuth {
			probe := &http.Request{Header: http.Header{}}
			probe.SetBasicAuth(c.cfg.Username, c.cfg.Password)
			head.Set("Authorization", probe.Header.Get("Authorization"))
		} else {
			c.mu.Lock()
			token := c.token
			c.mu.Unlock()
			if token == "" {
				return nil, true, errors.New("not logged in")
			}
			head.Set("X-F5-Auth-Token", token)
		}
	}
	var headBuf []byte
	headBuf = append(headBuf, r.method+" "+r.path+" HTTP/1.1\r\n"...)
	for k, vs := range head {
		for _, v := range vs {
			headBuf = append(headBuf, k+": "+v+"\r\n"...)
		}
	}
	headBuf = append(headBuf, "\r\n"...)
	wire := make([]byte, 0, len(headBuf)+len(r.body))
	wire = append(append(wire, headBuf...), r.body...)
	_, err = conn.Write(wire)
	clear(wire)
	if err != nil {
		return nil, true, fmt.Errorf("%s %s: %w", r.method, c.Scrub(r.path), err)
	}
	start := time.Now()
	hr, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: r.method})
	if err != nil {
		return nil, true, fmt.Errorf("%s %s: read answer: %w", r.method, c.Scrub(r.path), err)
	}
	defer hr.Body.Close()
	limit := int64(maxResponseBody)
	if hr.StatusCode >= 400 {
		limit = maxErrorBody
	}
	data, err := io.ReadAll(io.LimitReader(hr.Body, limit))
	if err != nil {
		return nil, true, fmt.Errorf("%s %s: read answer: %w", r.method, c.Scrub(r.path), err)
	}
	c.log.Trace("icontrol", "method", r.method, "path", c.Scrub(r.path), "status", hr.StatusCode,
		"secret_body", true, "elapsed", time.Since(start).Round(time.Millisecond).String())
	return &response{status: hr.StatusCode, header: hr.Header, body: data}, true, nil
}

func hasEarlierDeadline(ctx context.Context, d time.Time) bool {
	cd, ok := ctx.Deadline()
	return ok && cd.Before(d)
}
