package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/state"
	"github.com/urfave/cli/v2"
)

const statusConfig = `version: v1
state: {path: %STATE%}
issuers:
  sim-ca:
    type: acme
    acme: {directory_url: "https://127.0.0.1:14000/dir"}
devices:
  web1: {plugin: pemdir, address: /srv/tls}
certificates:
  www:
    device: web1
    issuer: sim-ca
    sans: {dns: [www.example.test]}
    bindings: [{kind: live-link, name: www}]
%EXTRA%`

// status reads an existing SQLite state while the configuration loads; what it shows is that
// state, and a configuration with a problem is refused as before.
func TestStatusReadsStateWhileConfigLoads(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "state", "state.db")
	ctx := context.Background()
	s, err := state.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	notAfter := time.Date(2031, 5, 6, 7, 8, 0, 0, time.UTC)
	if err := s.SaveDeployments(ctx, []state.Deployment{{Certificate: "www", Device: "web1", Issuer: "sim-ca", CertRef: "cf-www",
		Serial: "01", NotBefore: notAfter.Add(-90 * 24 * time.Hour), NotAfter: notAfter, DeployedAt: notAfter.Add(-90 * 24 * time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	cfg := filepath.Join(dir, "certfleet.yaml")
	body := strings.NewReplacer("%STATE%", dbPath, "%EXTRA%", "").Replace(statusConfig)
	writeFile(t, cfg, body)
	code, out, errOut := certfleet(t, "--config", cfg, "status")
	if code != 0 || !strings.Contains(out, "www") || !strings.Contains(out, "2031-05-06 07:08") {
		t.Fatalf("status: code %d\n%s\n%s", code, out, errOut)
	}

	// The state is read early, but the configuration's problem is what status reports.
	writeFile(t, cfg, strings.NewReplacer("%STATE%", dbPath, "%EXTRA%", "    colour: blue\n").Replace(statusConfig))
	code, out, errOut = certfleet(t, "--config", cfg, "status")
	if code != 2 || !strings.Contains(errOut, "colour") || strings.Contains(out, "2031") {
		t.Fatalf("status of a bad configuration: code %d\n%s\n%s", code, out, errOut)
	}

	// A state that does not exist yet is made once the configuration is known to be good.
	fresh := filepath.Join(dir, "fresh", "state.db")
	writeFile(t, cfg, strings.NewReplacer("%STATE%", fresh, "%EXTRA%", "    colour: blue\n").Replace(statusConfig))
	if code, _, _ := certfleet(t, "--config", cfg, "status"); code != 2 {
		t.Fatalf("status of a bad configuration: code %d", code)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Fatalf("a bad configuration's state was made: %v", err)
	}
	writeFile(t, cfg, strings.NewReplacer("%STATE%", fresh, "%EXTRA%", "").Replace(statusConfig))
	code, out, errOut = certfleet(t, "--config", cfg, "status")
	if code != 0 || !strings.Contains(out, "enroll") {
		t.Fatalf("status on a new state: code %d\n%s\n%s", code, out, errOut)
	}
}

// status keeps the checked configuration beside the state database and uses it while the files
// do not change, printing the same warnings; validate, --no-config-cache and
// CERTFLEET_CONFIG_CACHE=off load in full and leave the cache alone.
func TestStatusUsesTheConfigurationCache(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "state", "state.db")
	s, err := state.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	cacheDir := filepath.Join(dir, "state", "config-cache")
	cfg := filepath.Join(dir, "certfleet.yaml")
	// A literal password draws a warning on every load.
	plain := strings.Replace(strings.NewReplacer("%STATE%", dbPath, "%EXTRA%", "").Replace(statusConfig),
		"address: /srv/tls}", "address: /srv/tls, credentials: {password: hunter22}}", 1)
	writeFile(t, cfg, plain)
	entries := func() []string {
		m, _ := filepath.Glob(filepath.Join(cacheDir, "config-*.cache"))
		return m
	}
	if code, _, errOut := certfleet(t, "--config", cfg, "validate", "--offline"); code != 0 || len(entries()) != 0 {
		t.Fatalf("validate: code %d, entries %v\n%s", code, entries(), errOut)
	}
	for _, off := range [][]string{{"--no-config-cache"}, nil} {
		if off == nil {
			t.Setenv("CERTFLEET_CONFIG_CACHE", "off")
		}
		if code, _, errOut := certfleet(t, append(append(off, "--config", cfg), "status")...); code != 0 || len(entries()) != 0 {
			t.Fatalf("status with the cache off (%v): code %d, entries %v\n%s", off, code, entries(), errOut)
		}
	}
	t.Setenv("CERTFLEET_CONFIG_CACHE", "")
	var first string
	var written os.FileInfo
	for i := 0; i < 2; i++ {
		code, out, errOut := certfleet(t, "--config", cfg, "--log-level", "warn", "status")
		if code != 0 || !strings.Contains(out, "www") || !strings.Contains(errOut, "plain text") {
			t.Fatalf("status %d: code %d\n%s\n%s", i, code, out, errOut)
		}
		if i == 0 {
			first = out
		} else if out != first {
			t.Errorf("status from the cache shows\n%s\nnot\n%s", out, first)
		}
		e := entries()
		if len(e) != 1 {
			t.Fatalf("entries after status %d: %v", i, e)
		}
		st, err := os.Stat(e[0])
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 && !os.SameFile(st, written) {
			t.Error("the second status wrote the entry again instead of reading it")
		}
		written = st
	}
	if st, err := os.Stat(cacheDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("cache directory: %v %v", st.Mode(), err)
	}
	// A change is seen at once.
	writeFile(t, cfg, strings.Replace(plain, "  www:\n", "  www2:\n", 1))
	if code, out, errOut := certfleet(t, "--config", cfg, "status"); code != 0 || !strings.Contains(out, "www2") {
		t.Fatalf("status after a change: code %d\n%s\n%s", code, out, errOut)
	}
}

// statusRows are status rows of every kind: deployed and checked, failing, never deployed, retired,
// with names wider than their headers and not ASCII.
func statusRows() []engine.StatusRow {
	at := time.Date(2027, 3, 4, 5, 6, 7, 0, time.UTC)
	left, expired := 88, -3
	return []engine.StatusRow{
		{Certificate: "www", Device: "web1", NotAfter: at, DaysLeft: &left, LastOutcome: "unchanged", NextAction: "renew on 2027-02-02",
			Served: &state.ServedCheck{At: at.Add(-time.Hour), OK: true, Detail: "1 endpoint"}},
		{Certificate: "bücher-straße.example", Device: "adc-ünïcode-01", NotAfter: at.In(time.FixedZone("x", 3600)), DaysLeft: &expired,
			LastOutcome: "failed", LastError: "inventory of adc-ünïcode-01: unavailable", NextAction: `resume renew from step "issued"`,
			Served: &state.ServedCheck{At: at, Detail: "127.0.0.1:443 serves another certificate"}},
		{Certificate: "new", Device: "web2", NextAction: "enroll"},
		{Certificate: "gone-and-a-long-name", Device: "old", NotAfter: at, DaysLeft: &left, Retired: true, NextAction: "retired: not in the configuration"},
	}
}

// The status table, byte for byte as it was printed through text/tabwriter: columns as wide as
// their widest cell in characters, two spaces apart, times in UTC to the minute, "-" for what is
// not known.
func TestPrintStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		rows []engine.StatusRow
		want string
	}{
		{"rows", statusRows(), `CERTIFICATE            DEVICE          NOT AFTER         DAYS LEFT  LAST OUTCOME                                       SERVED                                                             NEXT ACTION
www                    web1            2027-03-04 05:06  88         unchanged                                          ok 2027-03-04 04:06                                                renew on 2027-02-02
bücher-straße.example  adc-ünïcode-01  2027-03-04 05:06  -3         failed (inventory of adc-ünïcode-01: unavailable)  FAILED 2027-03-04 05:06: 127.0.0.1:443 serves another certificate  resume renew from step "issued"
new                    web2            -                 -          -                                                  -                                                                  enroll
gone-and-a-long-name   old             2027-03-04 05:06  88         -                                                  -                                                                  retired: not in the configuration
`},
		{"none", nil, `CERTIFICATE  DEVICE  NOT AFTER  DAYS LEFT  LAST OUTCOME  SERVED  NEXT ACTION
`},
	} {
		var out strings.Builder
		if err := printStatus(&out, tc.rows); err != nil {
			t.Fatal(err)
		}
		if out.String() != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, out.String(), tc.want)
		}
	}
}

// fleetStatusRows are the status rows of 10,000 current certificates.
func fleetStatusRows() []engine.StatusRow {
	at := time.Date(2027, 6, 24, 1, 47, 0, 0, time.UTC)
	left := 198
	rows := make([]engine.StatusRow, 10000)
	for i := range rows {
		rows[i] = engine.StatusRow{Certificate: fmt.Sprintf("pemdir-%04d-site%02d", i/10, i%10+1), Device: fmt.Sprintf("pemdir-%04d", i/10),
			Issuer: "sim-ca", Serial: fmt.Sprintf("%016x", i), NotAfter: at, DaysLeft: &left, LastOutcome: "unchanged", LastRunAt: at.AddDate(0, -6, 0),
			RenewAt: at.AddDate(0, 0, -30), NextAction: "renew on 2027-05-25"}
	}
	return rows
}

// BenchmarkPrintStatus10k prints the status table of 10,000 certificates.
func BenchmarkPrintStatus10k(b *testing.B) {
	rows := fleetStatusRows()
	b.ReportAllocs()
	for b.Loop() {
		if err := printStatus(io.Discard, rows); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatusJSON10k writes the status of 10,000 certificates as JSON.
func BenchmarkStatusJSON10k(b *testing.B) {
	rows := fleetStatusRows()
	c := cli.NewContext(newApp(io.Discard, io.Discard), nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := writeJSON(c, rows); err != nil {
			b.Fatal(err)
		}
	}
}

// jsonList is a list that marshals itself.
type jsonList []string

func (l jsonList) MarshalJSON() ([]byte, error) { return json.Marshal(strings.Join(l, "+")) }

// pointerMarshaler marshals itself through its pointer.
type pointerMarshaler struct{ N int }

func (p *pointerMarshaler) MarshalJSON() ([]byte, error) { return json.Marshal(p.N * 2) }

// writeJSON writes what json.Encoder with SetIndent("", "  ") writes, a list element by element.
func TestWriteJSONIsTheEncoders(t *testing.T) {
	for _, v := range []any{statusRows(), []engine.StatusRow{}, []engine.StatusRow(nil), []string{"<a&b>", ""}, [][]int{{1, 2}, {}, nil},
		[]byte("bytes"), jsonList{"a", "b"}, []pointerMarshaler{{1}, {2}}, []*pointerMarshaler{{3}, nil}, []any{nil, 1, "x"},
		map[string]int{"a": 1}, statusRows()[0], nil} {
		var want strings.Builder
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		app := newApp(&got, io.Discard)
		if err := writeJSON(cli.NewContext(app, nil, nil), v); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%T:\n%s\nwant:\n%s", v, got.String(), want.String())
		}
	}
}
