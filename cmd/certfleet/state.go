package main

import (
	"fmt"
	"path/filepath"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/certfleet/certfleet/core/state"
	"github.com/urfave/cli/v2"
)

// statePathOf is the state database of a configuration.
func statePathOf(cfg *config.Config) string {
	if cfg.State.Path != "" {
		return cfg.State.Path
	}
	return filepath.Join(defaultStateDir(), "state.db")
}

func stateCommand() *cli.Command {
	return &cli.Command{
		Name:  "state",
		Usage: "manage the state database",
		Subcommands: []*cli.Command{{
			Name: "accept-empty",
			Usage: "start afresh after the state database was lost for good: every certificate is ordered again " +
				"(restore a backup instead when there is one)",
			Action: func(c *cli.Context) error {
				redactor := secret.NewRedactor()
				cfg, err := loadConfig(c.Context, c.String("config"), redactor, false, newLogger(c))
				if err != nil {
					return cli.Exit(redactor.Redact(err.Error()), 2)
				}
				path := statePathOf(cfg)
				if err := state.AcceptEmpty(path); err != nil {
					return cli.Exit(err.Error(), 1)
				}
				fmt.Fprintf(c.App.Writer, "%s starts afresh: the next run orders every certificate again; the certificates and keys it replaces stay on the devices until removed by hand\n", path)
				return nil
			},
		}},
	}
}
