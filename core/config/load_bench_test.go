package config

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fleetYAML is a configuration of certs certificates on devices pemdir devices, as certfleet-sim
// writes it.
func fleetYAML(devices, certs int) string {
	var b strings.Builder
	b.WriteString("version: v1\nissuers:\n  sim-ca:\n    type: acme\n    acme: {directory_url: \"https://127.0.0.1:14000/dir\"}\n")
	b.WriteString("defaults:\n  issuer: sim-ca\n  issuer_options: {cert_type: OV SSL}\n  key: {type: ecdsa, bits: 256}\n  renew_before: 30d\n  subject: {organization: certfleet demo, locality: Leeds, state: West Yorkshire, country: GB}\n")
	b.WriteString("devices:\n")
	per := certs / devices
	for d := 0; d < devices; d++ {
		links := make([]string, per)
		for c := range links {
			links[c] = fmt.Sprintf("site%02d", c+1)
		}
		fmt.Fprintf(&b, "  pemdir-%04d:\n    plugin: pemdir\n    address: /srv/devices/pemdir-%04d\n    options: {links: [%s]}\n", d, d, strings.Join(links, ", "))
	}
	b.WriteString("certificates:\n")
	for d := 0; d < devices; d++ {
		for c := 1; c <= per; c++ {
			name := fmt.Sprintf("pemdir-%04d-site%02d", d, c)
			fmt.Fprintf(&b, "  %s:\n    device: pemdir-%04d\n    sans: {dns: [site%02d.pemdir-%04d.example.test]}\n    bindings: [{kind: live-link, name: site%02d}]\n",
				name, d, c, d, c)
		}
	}
	return b.String()
}

// BenchmarkLoad10k loads a 10,000-certificate configuration; peak-heap-MiB is the most the heap
// held during a load (sampled), which the issue wants near the size of what the configuration holds.
func BenchmarkLoad10k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "certfleet.yaml")
	body := fleetYAML(1000, 10000)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(body))/(1<<20), "yaml-MiB")
	b.ReportAllocs()
	var held float64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cfg, _, err := Load(path)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		held = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		if len(cfg.Certificates) != 10000 {
			b.Fatalf("%d certificates", len(cfg.Certificates))
		}
		runtime.KeepAlive(cfg)
	}
	b.ReportMetric(held, "held-MiB")
}

// BenchmarkLoad10kCached loads the configuration of BenchmarkLoad10k from the cache (a hit),
// resolving its one reference as run does.
func BenchmarkLoad10kCached(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "certfleet.yaml")
	body := strings.Replace(fleetYAML(1000, 10000), "acme: {directory_url:", "acme: {eab: {key_id: kid, hmac_key: \"${env:HMAC}\"}, directory_url:", 1)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, resolve := range []bool{false, true} {
		b.Run(map[bool]string{false: "unresolved", true: "resolved"}[resolve], func(b *testing.B) {
			opts := []LoadOption{WithCache(Cache{Version: "bench", Dir: func(State) string { return filepath.Join(dir, "cache") }})}
			if resolve {
				opts = append(opts, WithResolver(context.Background(), mapResolver{"${env:HMAC}": "aGVsbG8"}))
			}
			if _, _, err := Load(path, opts...); err != nil { // writes the entry
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cfg, _, err := Load(path, opts...)
				if err != nil {
					b.Fatal(err)
				}
				if len(cfg.Certificates) != 10000 {
					b.Fatalf("%d certificates", len(cfg.Certificates))
				}
			}
		})
	}
}
