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

func TestBadStateSections(t *testing.T) {
	for _, tc := range []struct{ name, state, want string }{
		{"postgres without dsn", "{driver: postgres}", "2: state.dsn: is missing for driver postgres (hint: a reference such as ${env:CERTFLEET_STATE_DSN}"},
		{"postgres with a path", "{driver: postgres, dsn: x, path: s.db}", "2: state.path: is only for driver sqlite"},
		{"dsn without postgres", "{dsn: x}", "2: state.dsn: is only for driver postgres (hint: set state.driver: postgres"},
		{"unknown driver", "{driver: mysql}", `2: state.driver: "mysql" is not a state driver (hint: sqlite (a file on this host) or postgres (shared by several instances))`},
		{"bad lease ttl", "{driver: postgres, dsn: x, lease_ttl: soon}", `2: state.lease_ttl: "soon" is not a positive duration`},
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
