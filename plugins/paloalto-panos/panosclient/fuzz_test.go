package panosclient

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/plugins/sdk/fuzzwire"
)

// FuzzPANOSAnswers gives the XML API parsers (the envelope, elements, jobs, commit and export
// answers) arbitrary answers: nothing may panic, and error texts stay bounded.
func FuzzPANOSAnswers(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{
		{200, `<response status="success" code="19"><result><entry name="www-1"><common-name>www.example.com</common-name><not-valid-after>Jun  1 12:00:00 2027 GMT</not-valid-after><private-key>*****</private-key></entry></result></response>`},
		{200, `<response status="success"><result><job><id>7</id><status>FIN</status><result>FAIL</result><details><line>Validation Error: profile web-tls is invalid</line></details></job></result></response>`},
		{200, `<response status="success" code="19"><result><msg><line>Commit job enqueued with jobid 12</line></msg><job>12</job></result></response>`},
		{200, `<response status="success"><msg>There are no changes to commit.</msg></response>`},
		{200, `<response status="error" code="7"><msg><line>Object doesn't exist</line></msg></response>`},
		{403, `<response status="error" code="403"><result><msg>Invalid Credential</msg></result></response>`},
		{200, `<response status="success"><result><key>LUFRPT14MW5xOEo1R09KVlBZNnpnemh0VHRBOWl6TGM9</key></result></response>`},
		{200, "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"},
		{200, `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><response>&a;</response>`},
		{200, `<response><result>` + strings.Repeat("<a>", 5000) + `</result></response>`},
		{502, `<html>bad gateway</html>`}, {200, ``}, {200, `<response status="success"`},
		{200, `<response status="error"><msg><line>` + strings.Repeat("x", 70000) + `</line></msg></response>`},
	} {
		f.Add(seed.status, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		check := func(err error) {
			if err != nil && len(err.Error()) > 100_000 {
				t.Fatalf("error text of %d bytes", len(err.Error()))
			}
		}
		if r, err := ParseResponse(body); err == nil {
			_ = r.Messages
		} else {
			check(err)
		}
		_, err := ParseElement(body)
		check(err)
		c, err := New(Config{BaseURL: "https://fw.invalid", HTTPClient: fuzzwire.Client(status, body), APIKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		_, err = c.Get(ctx, "/config/shared/certificate")
		check(err)
		_, err = c.Op(ctx, "<show><system><info/></system></show>")
		check(err)
		_, err = c.Job(ctx, "7")
		check(err)
		_, err = c.Commit(ctx, "<commit></commit>", false)
		check(err)
		_, err = c.Export(ctx, url.Values{"category": {"certificate"}, "certificate-name": {"www-1"}, "format": {"pkcs10"}})
		check(err)
	})
}
