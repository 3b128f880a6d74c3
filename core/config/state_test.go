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

// WithStateFirst hands over the state section Load ends with, before the rest is built, and
// nothing when the files already show a problem with it.
func TestStateFirst(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		call  bool
	}{
		{"path", map[string]string{"a.yaml": "version: v1\nstate: {path: s/state.db, retention: {max_runs: 5}}\n"}, true},
		{"none", map[string]string{"a.yaml": "version: v1\n"}, true},
		{"postgres", map[string]string{"a.yaml": "version: v1\nstate: {driver: postgres, dsn: \"${env:X}\"}\n"}, true},
		{"other file", map[string]string{"a.yaml": "version: v1\n", "b.yaml": "version: v1\nstate: {path: b.db}\n"}, true},
		{"twice", map[string]string{"a.yaml": "version: v1\nstate: {path: a.db}\n", "b.yaml": "version: v1\nstate: {path: b.db}\n"}, false},
		{"bad state", map[string]string{"a.yaml": "version: v1\nstate: {path: a.db, dsn: x}\n"}, false},
		{"bad yaml", map[string]string{"a.yaml": "version: v1\nstate: {path: a.db}\n", "b.yaml": "version: v1\n  x: [\n"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var got *State
			cfg, _, err := Load(dir, WithStateFirst(func(s State) { got = &s }))
			if !tc.call {
				if got != nil {
					t.Fatalf("called with %+v", *got)
				}
				if err == nil {
					t.Fatal("the configuration loaded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("not called")
			}
			if got.Path != cfg.State.Path || got.Driver != cfg.State.Driver || got.DSN != cfg.State.DSN {
				t.Fatalf("early %+v, loaded %+v", *got, cfg.State)
			}
		})
	}
}
