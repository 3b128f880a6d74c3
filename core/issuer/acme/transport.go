package acme

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// callObserver records, for one public call, what went over the wire: whether a POST reached
// a URL (so a lost answer to newOrder can be told from a request never sent) and the
// Retry-After the CA gave for each URL (the ACME library does not return it for orders and
// authorizations).
type callObserver struct {
	mu         sync.Mutex
	posted     map[string]bool
	retryAfter map[string]time.Duration
	status     map[string]int
}

type observerKey struct{}

func withObserver(ctx context.Context) (context.Context, *callObserver) {
	o := &callObserver{posted: map[string]bool{}, retryAfter: map[string]time.Duration{}, status: map[string]int{}}
	return context.WithValue(ctx, observerKey{}, o), o
}

func observerFrom(ctx context.Context) *callObserver {
	o, _ := ctx.Value(observerKey{}).(*callObserver)
	return o
}

// wasPosted reports whether a POST to url was handed to the network.
func (o *callObserver) wasPosted(url string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.posted[url]
}

// retryAfterFor is the Retry-After of the last answer from url (zero if none).
func (o *callObserver) retryAfterFor(url string) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.retryAfter[url]
}

// statusFor is the HTTP status of the last answer from url (zero if none): some CAs answer a
// missing resource with a bare 404 and no problem document.
func (o *callObserver) statusFor(url string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.status[url]
}

// observingTransport feeds the call's observer, found in the request context.
type observingTransport struct{ base http.RoundTripper }

func (t observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	o := observerFrom(req.Context())
	url := req.URL.String()
	if o != nil && req.Method == http.MethodPost {
		o.mu.Lock()
		o.posted[url] = true
		o.mu.Unlock()
	}
	resp, err := t.base.RoundTrip(req)
	if o != nil && resp != nil {
		wait := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		o.mu.Lock()
		o.retryAfter[url] = wait
		o.status[url] = resp.StatusCode
		o.mu.Unlock()
	}
	return resp, err
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 §10.2.3); zero if absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
