package f5bigip

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

// TestPassphraseIsRandom: PCI passphrases come from crypto/rand, so no two keys share one and
// nothing (no secret, no key path) can be used to compute one again.
func TestPassphraseIsRandom(t *testing.T) {
	seen := map[string]bool{}
	for range 64 {
		b, err := newPassphrase()
		p := string(b)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(p) {
			t.Fatalf("passphrase %q: want 43 base64url characters (32 random bytes)", p)
		}
		if seen[p] {
			t.Fatal("the same passphrase came twice")
		}
		seen[p] = true
	}
}

func TestNames(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	seen := map[string]bool{}
	for _, hint := range []string{"www.example.com", "-weird hint/with:chars*", "", strings.Repeat("x", 300)} {
		base, err := baseName(hint, now)
		if err != nil {
			t.Fatal(err)
		}
		if !objectName.MatchString(base+"_0123abcd_chain.crt") || len(base) > 70 || !strings.Contains(base, "_250304050607_") {
			t.Errorf("base name %q from hint %q", base, hint)
		}
		if seen[base] {
			t.Errorf("base name %q twice", base)
		}
		seen[base] = true
	}
	key := "/Common/www_250304050607_0a1b2c.key"
	if got := certPath(key, "0123456789abcdef"); got != "/Common/www_250304050607_0a1b2c_01234567.crt" {
		t.Errorf("certPath %s", got)
	}
	if got := chainPath("/Common/a_01234567.crt"); got != "/Common/a_01234567_chain.crt" {
		t.Errorf("chainPath %s", got)
	}
	if got := csrPath(key); got != "/Common/www_250304050607_0a1b2c.csr" {
		t.Errorf("csrPath %s", got)
	}
	d := &device{partition: "Tenant1"}
	for in, want := range map[string]string{"vs1": "/Tenant1/vs1", "/Common/vs1": "/Common/vs1"} {
		if got, err := d.resolve(in); err != nil || got != want {
			t.Errorf("resolve(%q) = %q, %v", in, got, err)
		}
		if got := d.display(want); got != in {
			t.Errorf("display(%q) = %q, want %q", want, got, in)
		}
	}
	for _, bad := range []string{"a b", "/Common", "/Common/a/b", "../x", ""} {
		if _, err := d.resolve(bad); err == nil {
			t.Errorf("resolve(%q) accepted", bad)
		}
	}
}

func TestKeyRef(t *testing.T) {
	ref := keyRef{path: "/Common/k.key", spki: strings.Repeat("ab", 32)}
	got, err := parseKeyRef(ref.String())
	if err != nil || got != ref {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if got, err := parseKeyRef("/Common/foreign.key"); err != nil || got.spki != "" {
		t.Fatalf("a plain key path: %+v, %v", got, err)
	}
	for _, bad := range []string{"certfleet-conformance-no-such-key", "/Common/k.key#xyz", "Common/k.key"} {
		if _, err := parseKeyRef(bad); sdk.CodeOf(err) != codes.InvalidArgument {
			t.Errorf("parseKeyRef(%q): %v", bad, err)
		}
	}
}

func TestBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"bigip.example.com": "https://bigip.example.com:443", "10.0.0.1:8443": "https://10.0.0.1:8443",
		"https://bigip/": "https://bigip:443", "https://[2001:db8::1]": "https://[2001:db8::1]:443",
	} {
		if got, err := baseURL(in); err != nil || got != want {
			t.Errorf("baseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "http://bigip", "https://bigip/mgmt", "https://bigip?x=1"} {
		if _, err := baseURL(bad); err == nil {
			t.Errorf("baseURL(%q) accepted", bad)
		}
	}
}

func TestDeviceMetadata(t *testing.T) {
	for in, want := range map[string]string{"308384129": "12619181", "87:ae:02:f9:18:f9:4a:11": "87ae02f918f94a11", "00:ff": "ff", "": ""} {
		if got := parseSerial(in); got != want {
			t.Errorf("parseSerial(%q) = %q, want %q", in, got, want)
		}
	}
	sans := parseSANs("DNS:a.example, DNS:b.example, IP Address:192.0.2.1, email:x@example.test")
	if len(sans.DNSNames) != 2 || sans.IPAddresses[0] != "192.0.2.1" || sans.EmailAddresses[0] != "x@example.test" {
		t.Errorf("parseSANs: %+v", sans)
	}
	if got := commonName(`emailAddress=root@localhost,CN=www\, inc.example,OU=IT`); got != "www, inc.example" {
		t.Errorf("commonName: %q", got)
	}
	if got := normalizeFingerprint("SHA256/3A:F7:3E"); got != "3af73e" {
		t.Errorf("normalizeFingerprint: %q", got)
	}
}

func TestRollbackTokenParsing(t *testing.T) {
	good := rollbackToken{Version: 1, Profiles: []rbProfile{{Path: "/Common/p", Entries: []rbEntry{{Name: "default", Cert: "/Common/a.crt", Key: "/Common/a.key"}}}},
		Virtuals: []rbVirtual{{Path: "/Common/vs", Profiles: []rbAttached{{Path: "/Common/tcp", Context: "all"}}}}}
	data, _ := json.Marshal(good)
	if _, err := parseRollbackToken(data); err != nil {
		t.Fatalf("a good token: %v", err)
	}
	for _, bad := range []string{
		"not json", `{"v":2,"profiles":[{"path":"/Common/p"}]}`, `{"v":1}`, `{"v":1,"profiles":[{"path":"p"}]}`,
		`{"v":1,"virtuals":[{"path":"/Common/vs","profiles":[{"path":"/Common/tcp","context":"sideways"}]}]}`,
		`{"v":1,"profiles":[{"path":"/Common/p"}],"extra":true}`,
	} {
		_, err := parseRollbackToken([]byte(bad))
		if e := sdk.AsError(err); e == nil || e.Code != codes.InvalidArgument || e.Reason != sdk.ReasonBadRollbackToken {
			t.Errorf("token %s: %v", bad, err)
		}
	}
}
