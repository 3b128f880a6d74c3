package main

import (
	"path/filepath"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/logging"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/certfleet/certfleet/core/state"
	"github.com/urfave/cli/v2"
)

// stateView is what the commands that show recorded data need: the configuration with no secret
// resolved, and the state database. No plugin is started and no CA or device is contacted, so a
// monitoring check needs neither device nor CA credentials.
type stateView struct {
	cfg    *config.Config
	store  *state.SQLite
	engine *engine.Engine
	logs   *logging.Logging
}

func (v *stateView) close() {
	if v.store != nil {
		v.store.Close()
	}
	_ = v.logs.Close()
}

func statePathOf(cfg *config.Config) string {
	if cfg.State.Path != "" {
		return cfg.State.Path
	}
	return filepath.Join(defaultStateDir(), "state.db")
}

func openStateView(c *cli.Context) (*stateView, error) {
	redactor := secret.NewRedactor()
	v := &stateView{logs: newProcessLogging(c, redactor)}
	cfg, err := loadConfig(c.Context, c.String("config"), redactor, false, v.logs.Logger())
	if err != nil {
		v.close()
		return nil, cli.Exit(err.Error(), 2)
	}
	v.cfg = cfg
	if err := applyLoggingConfig(c, v.logs, cfg.Logging); err != nil {
		v.close()
		return nil, cli.Exit(err.Error(), 2)
	}
	store, err := state.Open(c.Context, statePathOf(cfg))
	if err != nil {
		v.close()
		return nil, err
	}
	v.store = store
	v.engine = engine.New(engine.Options{Store: store, Certificates: engineCertificates(cfg), Logger: v.logs.Logger()})
	return v, nil
}
