package config

import (
	"regexp"
	"strings"
	"testing"
)

// The hand-written name checks accept exactly what their regular expressions did.
func TestNameChecksMatchTheirPatterns(t *testing.T) {
	entry := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	label := regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	dnsName := func(s string) bool {
		s = strings.ToLower(strings.TrimSuffix(s, "."))
		if s == "" || len(s) > 253 {
			return false
		}
		labels := strings.Split(s, ".")
		for i, l := range labels {
			if l == "*" && i == 0 && len(labels) > 2 {
				continue
			}
			if !label.MatchString(l) {
				return false
			}
		}
		return true
	}
	inputs := []string{"", "a", "A", "-", "a-", "-a", "a-b", "a.b", "a..b", ".a", "a.", "a..", "*.a", "*.a.b", "*.*.b", "a.*.b", "*",
		"www.example.com", "WWW.Example.COM", "xn--bcher-kva.example", "a_b.example", "a b", "é.example", "1.2.3.4", "site01.pemdir-0001.example.test",
		strings.Repeat("a", 63) + ".b", strings.Repeat("a", 64) + ".b", strings.Repeat("a", 127), strings.Repeat("a", 128), strings.Repeat("a", 129),
		strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 127) + "a", "name.with_under", "0name", "_name", ".name", "n@me", "a\nb"}
	for _, s := range inputs {
		if got, want := validEntryName(s), entry.MatchString(s); got != want {
			t.Errorf("validEntryName(%q) = %v, the pattern says %v", s, got, want)
		}
		if got, want := dnsLabel(s), label.MatchString(s); got != want {
			t.Errorf("dnsLabel(%q) = %v, the pattern says %v", s, got, want)
		}
		if got, want := validDNSName(s), dnsName(s); got != want {
			t.Errorf("validDNSName(%q) = %v, the pattern says %v", s, got, want)
		}
	}
}
