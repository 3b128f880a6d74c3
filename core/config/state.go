package config

import (
	"gopkg.in/yaml.v3"
)

// Drivers of the state database.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// state reads the state section: {path} for SQLite, or {driver: postgres, dsn, lease_ttl} for a
// PostgreSQL database shared by several instances; site and retention apply to both.
func (w *walker) state(n *yaml.Node, at Position) State {
	var s State
	var dsnNode *yaml.Node
	w.object(n, "state", fields{
		"path":   func(n *yaml.Node, p string) { s.Path = w.relPath(w.str(n, p)) },
		"driver": func(n *yaml.Node, p string) { s.Driver = w.str(n, p) },
		"dsn": func(n *yaml.Node, p string) {
			s.DSN = w.str(n, p)
			dsnNode = n
		},
		"lease_ttl": func(n *yaml.Node, p string) { s.LeaseTTL = w.duration(n, p) },
		"site":      func(n *yaml.Node, p string) { s.Site = w.str(n, p) },
		"retention": func(n *yaml.Node, p string) { s.Retention = w.retention(n, p) },
	})
	switch s.Driver {
	case "", DriverSQLite:
		s.Driver = DriverSQLite
		if dsnNode != nil {
			w.errs.add(w.pos(dsnNode), "state.dsn", "set state.driver: postgres to use a PostgreSQL database, or remove dsn", "is only for driver postgres")
		}
	case DriverPostgres:
		if s.Path != "" {
			w.errs.add(at, "state.path", "remove it: a PostgreSQL state lives in the database of state.dsn", "is only for driver sqlite")
		}
		if s.DSN == "" {
			w.errs.add(at, "state.dsn", "a reference such as ${env:CERTFLEET_STATE_DSN} holding postgres://user:password@host/db?sslmode=verify-full", "is missing for driver postgres")
		}
	default:
		w.errs.add(at, "state.driver", "sqlite (a file on this host) or postgres (shared by several instances)", "%q is not a state driver", s.Driver)
	}
	return s
}

// retention reads state.retention: {max_age: 30d, max_runs: 1000}, at least one of them.
func (w *walker) retention(n *yaml.Node, path string) *Retention {
	r := &Retention{}
	w.object(n, path, fields{
		"max_age":  func(n *yaml.Node, p string) { r.MaxAge = w.duration(n, p) },
		"max_runs": func(n *yaml.Node, p string) { r.MaxRuns = w.positive(n, p) },
	})
	if len(n.Content) == 0 && (n.Kind == yaml.MappingNode || n.Tag == "!!null") {
		w.errs.add(w.pos(n), path, "e.g. {max_age: 30d} or {max_runs: 1000}, or remove retention to keep 30 days",
			"needs max_age (how long run history is kept) or max_runs (how many runs)")
	}
	return r
}
