package main

import (
	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/logging"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/urfave/cli/v2"
)

// stateView is what the commands that show recorded data need: the configuration with no secret
// resolved, and the state database. No plugin is started and no CA or device is contacted, so a
// monitoring check needs neither device nor CA credentials.
type stateView struct {
	cfg    *config.Config
	store  viewStore
	engine *engine.Engine
	logs   *logging.Logging
}

func (v *stateView) close() {
	if v.store != nil {
		v.store.Close()
	}
	_ = v.logs.Close()
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
	store, err := openViewStore(c, cfg, redactor)
	if err != nil {
		v.close()
		return nil, stateOpenError(err)
	}
	v.store = store
	v.engine = engine.New(engine.Options{Store: store, Certificates: engineCertificates(cfg), Disabled: disabledCertificates(cfg), Logger: v.logs.Logger()})
	return v, nil
}
