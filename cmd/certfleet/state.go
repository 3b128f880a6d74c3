package main

import (
	"errors"
	"fmt"

	"github.com/certfleet/certfleet/core/engine"

	"github.com/certfleet/certfleet/core/secret"
	"github.com/certfleet/certfleet/core/state"
	"github.com/urfave/cli/v2"
)

// stateOpenError gives a lost state database its own exit code.
func stateOpenError(err error) error {
	if errors.Is(err, state.ErrStateLost) {
		return cli.Exit(err.Error(), engine.ExitStateLost)
	}
	return err
}

// stateAcceptEmptyCommand is `certfleet state accept-empty`.
func stateAcceptEmptyCommand() *cli.Command {
	return &cli.Command{
		Name: "accept-empty",
		Usage: "start afresh after the state database was lost for good: live certificates are adopted, the others ordered again " +
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
			fmt.Fprintf(c.App.Writer, "%s starts afresh: the next run adopts the certificates live on the devices and orders the others again\n", path)
			return nil
		},
	}
}
