// Package fuzzwire lets fuzz tests feed arbitrary answers to a device API client without a
// network: an http.Client whose transport answers every request with the status and body the
// fuzzer chose. It is used only by the plugins' fuzz tests.
package fuzzwire

import (
	"bytes"
	"io"
	"net/http"
)

// Client returns an http.Client whose every request gets status (clamped to 100..599) and body.
func Client(status int, body []byte) *http.Client {
	if status < 100 || status > 599 {
		status = 200
	}
	return &http.Client{Transport: answer{status: status, body: body}}
}

type answer struct {
	status int
	body   []byte
}

func (a answer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	h := http.Header{}
	switch {
	case bytes.HasPrefix(bytes.TrimSpace(a.body), []byte("<")):
		h.Set("Content-Type", "application/xml")
	default:
		h.Set("Content-Type", "application/json")
	}
	return &http.Response{StatusCode: a.status, Status: http.StatusText(a.status), Header: h, Request: r,
		Body: io.NopCloser(bytes.NewReader(a.body)), ContentLength: int64(len(a.body)), ProtoMajor: 1, ProtoMinor: 1}, nil
}
