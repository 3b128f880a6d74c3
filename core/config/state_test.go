package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPostgresStateAndSites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	body := "version: v1\nstate: {driver: postgres, dsn: \"${env:CERTFLEET_STATE_DSN}\", lease_ttl: 45s, site: dc1}\n" +
		"devices:\n  web1: {plugin: pemdir, address: /srv/tls, site: dc1}\n  web2: {plugin: pemdir, address: /srv/tls2}\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.State
	if s.Driver != DriverPostgres || s.DSN != "${env:CERTFLEET_STATE_DSN}" || s.LeaseTTL != 45*time.Second || s.Site != "dc1" || s.Path != "" {
		t.Fatalf("state: %+v", s)
	}
	if cfg.Devices["web1"].Site != "dc1" || cfg.Devices["web2"].Site != "" {
		t.Fatalf("sites: %q %q", cfg.Devices["web1"].Site, cfg.Devices["web2"].Site)
	}
}

func TestStateRetention(t *testing.T) {
	for _, tc := range []struct {
		state string
		want  *Retention
	}{
		{"{path: s.db}", nil},
		{"{retention: {max_age: 90d}}", &Retention{MaxAge: 90 * 24 * time.Hour}},
		{"{retention: {max_runs: 500}}", &Retention{MaxRuns: 500}},
		{"{retention: {max_age: 12h, max_runs: 24}}", &Retention{MaxAge: 12 * time.Hour, MaxRuns: 24}},
	} {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte("version: v1\nstate: "+tc.state+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := Load(path)
		if err != nil {
			t.Fatalf("%s: %v", tc.state, err)
		}
		if got := cfg.State.Retention; (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("%s: retention %+v, want %+v", tc.state, got, tc.want)
		}
	}
}

func TestBadStateSections(t *testing.T) {
	for _, tc := range []struct{ name, state, want string }{
		{"postgres without dsn", "{driver: postgres}", "2: state.dsn: is missing for driver postgres (hint: a reference such as ${env:CERTFLEET_STATE_DSN}"},
		{"postgres with a path", "{driver: postgres, dsn: x, path: s.db}", "2: state.path: is only for driver sqlite"},
		{"dsn without postgres", "{dsn: x}", "2: state.dsn: is only for driver postgres (hint: set state.driver: postgres"},
		{"unknown driver", "{driver: mysql}", `2: state.driver: "mysql" is not a state driver (hint: sqlite (a file on this host) or postgres (shared by several instances))`},
		{"bad lease ttl", "{driver: postgres, dsn: x, lease_ttl: soon}", `2: state.lease_ttl: "soon" is not a positive duration`},
		{"empty retention", "{retention: {}}", "2: state.retention: needs max_age (how long run history is kept) or max_runs (how many runs) (hint: e.g. {max_age: 30d}"},
		{"null retention", "{retention: }", "2: state.retention: needs max_age"},
		{"bad retention age", "{retention: {max_age: forever}}", `2: state.retention.max_age: "forever" is not a positive duration (hint: write e.g. "30d"`},
		{"bad retention count", "{retention: {max_runs: 0}}", `2: state.retention.max_runs: must be 1 or more, not 0`},
		{"unknown retention field", "{retention: {days: 30}}", `2: state.retention.days: unknown field "days"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte("version: v1\nstate: "+tc.state+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), path+":"+tc.want) {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// WithStateFirst hands over the state section Load ends with, once, and nothing when the
// section has a problem; the section is read from its lines before the file is parsed, when it can be.
func TestStateFirst(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		call  bool // fn is called
		fails bool // Load fails
	}{
		{"path", map[string]string{"a.yaml": "version: v1\nstate: {path: s/state.db, retention: {max_runs: 5}}\n"}, true, false},
		{"block", map[string]string{"a.yaml": "version: v1\nstate:\n  # where\n\n  path: /var/lib/s.db\n  retention:\n    max_age: 30d\nlogging: {level: info}\n"}, true, false},
		{"last, no newline", map[string]string{"a.yaml": "version: v1\nstate:\n  path: s.db"}, true, false},
		{"none", map[string]string{"a.yaml": "version: v1\n"}, true, false},
		{"flow", map[string]string{"a.yaml": "{version: v1,\nstate: {path: f.db}}\n"}, true, false},
		{"quoted key", map[string]string{"a.yaml": "version: v1\n\"state\": {path: q.db}\n"}, true, false},
		{"postgres", map[string]string{"a.yaml": "version: v1\nstate: {driver: postgres, dsn: \"${env:X}\"}\n"}, true, false},
		{"other file", map[string]string{"a.yaml": "version: v1\n", "b.yaml": "version: v1\nstate: {path: b.db}\n"}, true, false},
		{"twice", map[string]string{"a.yaml": "version: v1\nstate: {path: a.db}\n", "b.yaml": "version: v1\nstate: {path: b.db}\n"}, true, true},
		{"bad state", map[string]string{"a.yaml": "version: v1\nstate: {path: a.db, dsn: x}\n"}, false, true},
		{"bad yaml first", map[string]string{"a.yaml": "version: v1\n  x: [\n", "b.yaml": "version: v1\nstate: {path: a.db}\n"}, false, true},
		{"bad yaml after", map[string]string{"a.yaml": "version: v1\nstate: {path: a.db}\n", "b.yaml": "version: v1\n  x: [\n"}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var got []State
			cfg, _, err := Load(dir, WithStateFirst(func(s State) { got = append(got, s) }))
			if (err != nil) != tc.fails {
				t.Fatalf("error %v", err)
			}
			if len(got) != map[bool]int{true: 1}[tc.call] {
				t.Fatalf("called with %+v", got)
			}
			if err == nil && (got[0].Path != cfg.State.Path || got[0].Driver != cfg.State.Driver || got[0].DSN != cfg.State.DSN) {
				t.Fatalf("early %+v, loaded %+v", got[0], cfg.State)
			}
		})
	}
}
