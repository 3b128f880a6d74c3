package scm

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseResponses feeds arbitrary bodies to every parser of SCM answers: none may panic, and
// what they return stays bounded.
func FuzzParseResponses(f *testing.F) {
	for _, seed := range []string{
		`{"code":-16,"description":"Unknown user"}`, `{"code":"-16"}`, `{"code":1e400}`, `{"code":-183.5}`, `[]`, `null`, ``,
		`{"sslId":55,"renewId":"x"}`, `-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`,
		strings.Repeat(`{"a":`, 1000), `{"description":` + strings.Repeat("x", 100000),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e := parseError("fuzz", &response{status: 400, body: body})
		if len(e.Error()) > 1000 {
			t.Fatalf("error text of %d bytes", len(e.Error()))
		}
		_, _, _ = decodeErrorBody(body)
		_, _ = parseChain(body)
		_ = authorizationURI(string(body))
		_ = retryAfter(string(body), timeZero)
	})
}

var timeZero = time.Time{}
