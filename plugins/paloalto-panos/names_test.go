package paloaltopanos

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*[A-Za-z0-9]$`)

func TestNewCertNameRespectsLimitsAndIsUnique(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 30, 0, 0, time.UTC)
	for _, limit := range []int{63, 31} {
		for _, hint := range []string{"www.example.com", "", "---", strings.Repeat("very-long-name", 10), "R&D <shop> 'web' portal", "ünïcödé"} {
			a, err := newCertName(hint, limit, now)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := newCertName(hint, limit, now)
			if len(a) > limit || !safeName.MatchString(a) || a == b {
				t.Errorf("newCertName(%q, %d) = %q, %q: want distinct names of at most %d safe characters", hint, limit, a, b, limit)
			}
			if !strings.Contains(a, "-2606011230-") {
				t.Errorf("newCertName(%q) = %q lacks the timestamp", hint, a)
			}
		}
	}
	if got, _ := newCertName("www.example.com", 63, now); !strings.HasPrefix(got, "www-example-com-") {
		t.Errorf("hint not kept: %q", got)
	}
}

func TestCACertName(t *testing.T) {
	fp := "0123456789abcdef"
	for _, limit := range []int{63, 31} {
		for _, cn := range []string{"Sectigo RSA Domain Validation Secure Server CA", "", "<&>"} {
			got := caCertName(cn, fp, limit)
			if len(got) > limit || !safeName.MatchString(got) || !strings.HasSuffix(got, "-0123456789") || !strings.HasPrefix(got, "ca") {
				t.Errorf("caCertName(%q, %d) = %q", cn, limit, got)
			}
		}
	}
}

func TestRefs(t *testing.T) {
	for _, c := range []struct {
		ref  string
		loc  location
		name string
	}{{"web", shared, "web"}, {"vsys2/web", "vsys2", "web"}, {"a/b", shared, "a/b"}, {"vsys/x", shared, "vsys/x"}} {
		loc, name := parseRef(c.ref)
		if loc != c.loc || name != c.name || ref(loc, name) != c.ref {
			t.Errorf("parseRef(%q) = %q, %q", c.ref, loc, name)
		}
	}
}

func TestBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"fw.example": "https://fw.example", "fw.example:8443": "https://fw.example:8443",
		"https://10.0.0.1/": "https://10.0.0.1", "https://10.0.0.1/api/": "https://10.0.0.1",
	} {
		if got, err := baseURL(in); err != nil || got != want {
			t.Errorf("baseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "http://fw", "https://user:pw@fw", "https://fw/other", "https://fw/?key=x"} {
		if _, err := baseURL(in); err == nil {
			t.Errorf("baseURL(%q) succeeded", in)
		}
	}
}

func TestGenerateCommandEscapes(t *testing.T) {
	cmd := generateCommand("n", csrReq(), "sha256")
	for _, want := range []string{"<name>a&amp;b &lt;c&gt; &#39;d&#39;</name>", "<member>x&amp;y@example.com</member>", "<ECDSA><ecdsa-nbits>256</ecdsa-nbits></ECDSA>", "<signed-by>external</signed-by>"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command %s lacks %s", cmd, want)
		}
	}
}

func csrReq() (r sdk.CSRRequest) {
	r.NameHint = "x"
	r.KeySpec.Type, r.KeySpec.Bits = sdk.KeyTypeECDSA, 256
	r.Subject.CommonName = "a&b <c> 'd'"
	r.SANs.EmailAddresses = []string{"x&y@example.com"}
	return r
}
