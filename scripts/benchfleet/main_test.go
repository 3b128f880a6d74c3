//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestMedian(t *testing.T) {
	if got := median([]time.Duration{5, 1, 3}); got != 3 {
		t.Errorf("median of 5, 1, 3 = %d", got)
	}
	if got := median([]int64{4, 1, 3, 2}); got != 2 { // (2+3)/2 in integers
		t.Errorf("median of 4, 1, 3, 2 = %d", got)
	}
}

// TestAccessLogsAndPerDevice: the calls per device come from the pemdir access logs, read from
// where the previous read stopped.
func TestAccessLogsAndPerDevice(t *testing.T) {
	s := &sim{}
	for _, name := range []string{"d1", "d2"} {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		s.desc.Devices = append(s.desc.Devices, struct {
			Name    string `json:"name"`
			Plugin  string `json:"plugin"`
			Address string `json:"address"`
		}{Name: name, Plugin: "pemdir", Address: dir})
	}
	write := func(device int, lines ...string) {
		f, err := os.OpenFile(filepath.Join(s.desc.Devices[device].Address, accessLogName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, l := range lines {
			if _, err := f.WriteString(l + "\n"); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, "2026-12-06T20:00:00.1Z 10 read Inventory", "2026-12-06T20:00:01Z 10 write Commit")
	var logs accessLogs
	calls, err := logs.since(s, 2)
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi, total := perDevice(calls, "Inventory"); lo != 0 || hi != 1 || total != 1 {
		t.Errorf("Inventory per device %d–%d, total %d; want 0–1, 1", lo, hi, total)
	}
	write(0, "2026-12-06T20:00:02Z 11 read Inventory")
	write(1, "2026-12-06T20:00:02Z 11 read Inventory")
	calls, err = logs.since(s, 2)
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi, total := perDevice(calls, ""); lo != 1 || hi != 1 || total != 2 {
		t.Errorf("second read: calls per device %d–%d, total %d; want only the new lines", lo, hi, total)
	}
	write(1, "2026-12-06T20:00:03Z 11 read")
	if _, err := logs.since(s, 2); err == nil || !strings.Contains(err.Error(), "older than this script") {
		t.Errorf("a three-field line: %v", err)
	}
}

func TestWriteConfigKeepsTheFirstDevicesAndSetsLimits(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "certfleet.yaml")
	cfg := `version: v1
runtime:
  collect_timeout: 1m
devices:
  a: {plugin: pemdir, address: /a}
  b: {plugin: pemdir, address: /b}
certificates:
  a-1: {device: a}
  b-1: {device: b}
`
	if err := os.WriteFile(src, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &sim{dir: dir}
	s.desc.Config = src
	for _, n := range []string{"a", "b"} {
		s.desc.Devices = append(s.desc.Devices, struct {
			Name    string `json:"name"`
			Plugin  string `json:"plugin"`
			Address string `json:"address"`
		}{Name: n})
	}
	path, err := s.writeConfig("small", 1, runtimeLimits{Workers: 1, PerIssuer: 1})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Runtime      map[string]any            `yaml:"runtime"`
		Devices      map[string]any            `yaml:"devices"`
		Certificates map[string]map[string]any `yaml:"certificates"`
	}
	if err := yaml.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Devices) != 1 || got.Devices["a"] == nil || len(got.Certificates) != 1 || got.Certificates["a-1"] == nil {
		t.Errorf("kept devices %v and certificates %v, want a and a-1", got.Devices, got.Certificates)
	}
	if got.Runtime["workers"] != 1 || got.Runtime["per_issuer"] != 1 || got.Runtime["per_device"] != nil || got.Runtime["collect_timeout"] != "1m" {
		t.Errorf("runtime %v, want workers 1, per_issuer 1, collect_timeout kept, per_device left out", got.Runtime)
	}
}
