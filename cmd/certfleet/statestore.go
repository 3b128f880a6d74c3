package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/lease"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/certfleet/certfleet/core/state"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/urfave/cli/v2"
)

// defaultLeaseTTL is how long a device claim outlives its holder's last renewal: the time a dead
// instance's devices wait before another takes them over.
const defaultLeaseTTL = time.Minute

// siteFlag is --site, global so that every command sees the same instance's site.
func siteFlag() cli.Flag {
	return &cli.StringFlag{Name: "site", EnvVars: []string{"CERTFLEET_SITE"},
		Usage: "work only on devices with this site label (overrides state.site); status and history still show the whole fleet"}
}

// openedState is the state store of the configuration and, for a shared PostgreSQL state, how
// this instance shares the fleet.
type openedState struct {
	store state.Store
	// dir holds files kept beside the state (plugin pins): the SQLite file's directory, or the
	// default state directory for a PostgreSQL state.
	dir     string
	sharing *engine.Sharing
}

// openState opens the configured state store. A PostgreSQL DSN's password is registered with the
// redactor before anything can print it.
func openState(ctx context.Context, cfg *config.Config, redactor *secret.Redactor) (openedState, error) {
	if cfg.State.Driver != config.DriverPostgres {
		path := cfg.State.Path
		if path == "" {
			path = filepath.Join(defaultStateDir(), "state.db")
		}
		s, err := state.Open(ctx, path)
		if err != nil {
			return openedState{}, err
		}
		s.SetRetention(retentionOf(cfg))
		return openedState{store: s, dir: filepath.Dir(path)}, nil
	}
	redactor.Add(cfg.State.DSN)
	if pc, err := pgconn.ParseConfig(cfg.State.DSN); err == nil {
		redactor.Add(pc.Password)
	}
	s, err := state.OpenPostgres(ctx, cfg.State.DSN)
	if err != nil {
		return openedState{}, fmt.Errorf("%s", redactor.Redact(err.Error()))
	}
	s.SetRetention(retentionOf(cfg))
	ttl := cfg.State.LeaseTTL
	if ttl <= 0 {
		ttl = defaultLeaseTTL
	}
	claims := lease.New(s.Pool(), instanceName(), ttl)
	retry := min(max(ttl/10, 250*time.Millisecond), 5*time.Second)
	return openedState{store: s, dir: defaultStateDir(), sharing: &engine.Sharing{
		ClaimDevice: claims.ClaimDevice,
		// Long enough for a dead instance's claims to expire and be taken over in this run.
		Wait:  2*ttl + 10*retry,
		Retry: retry,
	}}, nil
}

// retentionOf is the configured retention of the run history, or the state's default.
func retentionOf(cfg *config.Config) state.Retention {
	if r := cfg.State.Retention; r != nil {
		return state.Retention{MaxAge: r.MaxAge, MaxRuns: r.MaxRuns}
	}
	return state.DefaultRetention
}

// instanceName names this process in the claims table, for people reading it.
func instanceName() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// chooseSite is --site or state.site; it must be a site some device carries.
func chooseSite(c *cli.Context, cfg *config.Config) (string, error) {
	site := cfg.State.Site
	if c.IsSet("site") {
		site = c.String("site")
	}
	if site == "" {
		return "", nil
	}
	known := map[string]bool{}
	for _, d := range cfg.Devices {
		if d.Site == site {
			return site, nil
		}
		if d.Site != "" {
			known[d.Site] = true
		}
	}
	names := make([]string, 0, len(known))
	for s := range known {
		names = append(names, s)
	}
	sort.Strings(names)
	return "", fmt.Errorf("site %q: no device carries it (sites in the configuration: %v); set devices.<name>.site", site, names)
}

// viewStore is what status and history read: any state store, with its run history.
type viewStore interface {
	state.Store
	History(ctx context.Context, certificate string, limit int) ([]state.RunHistory, error)
}

// openViewStore opens the configured state for reading, from any instance: a PostgreSQL state
// shows the whole fleet. Only the DSN's secret reference is resolved.
func openViewStore(c *cli.Context, cfg *config.Config, redactor *secret.Redactor) (viewStore, error) {
	if cfg.State.Driver != config.DriverPostgres {
		return state.Open(c.Context, statePathOf(cfg))
	}
	base := c.String("config")
	if cfgIsFile(base) {
		base = filepath.Dir(base)
	}
	resolver := &secret.Resolver{Redactor: redactor, BaseDir: base}
	dsn, err := resolver.Resolve(c.Context, cfg.State.DSN)
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("state.dsn: %s", redactor.Redact(err.Error())), 2)
	}
	resolved := *cfg
	resolved.State.DSN = dsn
	opened, err := openState(c.Context, &resolved, redactor)
	if err != nil {
		return nil, err
	}
	return opened.store.(*state.Postgres), nil
}
