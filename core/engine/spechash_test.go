package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// specHashByJSON is how spec hashes were made (and recorded) before specHash wrote the encoding
// itself: the two must agree on every input, or a run would renew certificates whose
// configuration did not change.
func specHashByJSON(c Certificate) string {
	norm := func(in []string) []string {
		out := make([]string, 0, len(in))
		for _, s := range in {
			out = append(out, strings.ToLower(strings.TrimSpace(s)))
		}
		sort.Strings(out)
		return out
	}
	data, _ := json.Marshal(struct {
		Subject sdk.Subject
		DNS     []string
		IP      []string
		Email   []string
		Key     sdk.KeySpec
	}{c.Subject, norm(c.SANs.DNSNames), norm(c.SANs.IPAddresses), norm(c.SANs.EmailAddresses), c.KeySpec})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

func TestSpecHashIsTheJSONEncodingsHash(t *testing.T) {
	// Strings hashed, never dialled: IP-address SANs included only as text.
	pieces := []string{"", "www.example.com", "WWW.Example.COM ", "127.0.0.1", "::1", "ops@example.com", "Acme & Sons <Ltd>",
		`quote " and \ backslash`, "tab\tnew\nline", "\x7f", "bücher.example", "日本語", "\u2028\u2029", "\xff\xfe invalid", "*.example.com"}
	rng := rand.New(rand.NewPCG(24, 1))
	pick := func() string { return pieces[rng.IntN(len(pieces))] }
	list := func() []string {
		var out []string
		for range rng.IntN(4) {
			out = append(out, pick())
		}
		return out
	}
	cases := []Certificate{{}, {Subject: sdk.Subject{CommonName: "www.example.com"}, SANs: sdk.SANs{DNSNames: []string{"www.example.com"}},
		KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}}}
	for range 2000 {
		cases = append(cases, Certificate{
			Subject: sdk.Subject{CommonName: pick(), Organization: pick(), OrganizationalUnit: pick(), Locality: pick(), State: pick(), Country: pick(), Email: pick()},
			SANs:    sdk.SANs{DNSNames: list(), IPAddresses: list(), EmailAddresses: list()},
			KeySpec: sdk.KeySpec{Type: sdk.KeyType(rng.IntN(4) - 1), Bits: rng.IntN(5000) - 10},
		})
	}
	for _, c := range cases {
		if got, want := specHash(c), specHashByJSON(c); got != want {
			t.Fatalf("specHash(%+v) = %s; the JSON encoding's hash is %s", c, got, want)
		}
	}
}

func BenchmarkSpecHash(b *testing.B) {
	c := Certificate{Subject: sdk.Subject{CommonName: "site01.web001.example.com"}, SANs: sdk.SANs{DNSNames: []string{"site01.web001.example.com"}},
		KeySpec: sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256}}
	b.Run("written", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			specHash(c)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			specHashByJSON(c)
		}
	})
}
