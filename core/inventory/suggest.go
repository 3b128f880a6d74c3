package inventory

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

var unsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Suggest writes configuration snippets that bring unmanaged, bound leaf certificates under
// management. With the names, key and bindings the device shows, certfleet adopts each one on its
// first run (no new order) and renews it when due. bindable says whether a device's plugin binds
// a kind (Inventory also reports places Bind does not manage); nil takes every kind.
func Suggest(rows []Row, bindable func(device, kind string) bool) ([]byte, int) {
	type binding struct {
		Kind string `yaml:"kind"`
		Name string `yaml:"name"`
		SNI  bool   `yaml:"sni,omitempty"`
	}
	type key struct {
		Type string `yaml:"type"`
		Bits int    `yaml:"bits"`
	}
	type sans struct {
		DNS []string `yaml:"dns,omitempty"`
		IP  []string `yaml:"ip,omitempty"`
	}
	type subject struct {
		CommonName string `yaml:"common_name"`
	}
	type cert struct {
		Device   string    `yaml:"device"`
		Subject  *subject  `yaml:"subject,omitempty"`
		SANs     sans      `yaml:"sans"`
		Key      key       `yaml:"key"`
		Bindings []binding `yaml:"bindings"`
	}
	var buf bytes.Buffer
	n := 0
	used := map[string]bool{}
	for _, r := range rows {
		if r.Managed || r.IsCA || len(r.bindings) == 0 || (len(r.dnsNames) == 0 && len(r.ips) == 0) {
			continue
		}
		name := strings.Trim(unsafe.ReplaceAllString(r.Object, "-"), "-._")
		if name == "" || used[name] {
			name = fmt.Sprintf("%s-%s", r.Device, name)
		}
		used[name] = true
		c := cert{Device: r.Device, SANs: sans{DNS: r.dnsNames, IP: r.ips}, Key: key{Type: r.key.Type.String(), Bits: r.key.Bits}}
		if r.cn != "" && !containsFold(r.dnsNames, r.cn) {
			c.Subject = &subject{CommonName: r.cn}
		}
		for _, b := range r.bindings {
			if bindable == nil || bindable(r.Device, b.Kind) {
				c.Bindings = append(c.Bindings, binding{Kind: b.Kind, Name: b.Name, SNI: b.SNI})
			}
		}
		if len(c.Bindings) == 0 {
			continue
		}
		out, err := yaml.Marshal(map[string]cert{name: c})
		if err != nil {
			continue
		}
		fmt.Fprintf(&buf, "  # %s on %s, expires %s; certfleet adopts it on the first run\n", r.Object, r.Device, r.NotAfter.UTC().Format("2006-01-02"))
		for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			buf.WriteString("  " + line + "\n")
		}
		n++
	}
	if n == 0 {
		return nil, 0
	}
	return append([]byte("certificates:\n"), buf.Bytes()...), n
}

func containsFold(l []string, s string) bool {
	for _, v := range l {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
