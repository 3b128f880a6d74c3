package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/certfleet/certfleet/core/state"
	"github.com/urfave/cli/v2"
)

func stateCommand() *cli.Command {
	return &cli.Command{
		Name:  "state",
		Usage: "manage the state database",
		Subcommands: []*cli.Command{{
			Name:  "migrate",
			Usage: "copy an SQLite state into the PostgreSQL database the configuration names (state: {driver: postgres, dsn: ...})",
			Description: "Stop every certfleet run and daemon using the SQLite state first. The PostgreSQL state must be\n" +
				"empty; the copy is one transaction, so it is all or nothing. Afterwards the SQLite file is left as it was.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "to", Required: true, Usage: "the driver to copy to: postgres"},
				&cli.StringFlag{Name: "from", Usage: "the SQLite state file (default: state.db in the default state directory)"},
			},
			Action: migrateState,
		}},
	}
}

func migrateState(c *cli.Context) error {
	if to := c.String("to"); to != config.DriverPostgres {
		return cli.Exit(fmt.Sprintf("--to %q: the state can be copied to postgres only", to), 2)
	}
	ctx := c.Context
	redactor := secret.NewRedactor()
	log, logOut := redactedLogger(c, redactor)
	defer logOut.Flush()
	cfg, err := loadConfig(ctx, c.String("config"), redactor, true, log)
	if err != nil {
		return cli.Exit(redactor.Redact(err.Error()), 2)
	}
	if cfg.State.Driver != config.DriverPostgres {
		return cli.Exit("state migrate --to postgres: the configuration's state is not PostgreSQL; set state: {driver: postgres, dsn: ${env:CERTFLEET_STATE_DSN}} first (the SQLite file is given with --from)", 2)
	}
	from := c.String("from")
	if from == "" {
		from = filepath.Join(defaultStateDir(), "state.db")
	}
	if st, err := os.Stat(from); err != nil || !st.Mode().IsRegular() {
		return cli.Exit(fmt.Sprintf("--from %s: no SQLite state there", from), 2)
	}
	src, err := state.Open(ctx, from)
	if err != nil {
		return err
	}
	defer src.Close()
	opened, err := openState(ctx, cfg, redactor)
	if err != nil {
		return err
	}
	defer opened.store.Close()
	n, err := state.CopyToPostgres(ctx, src, opened.store.(*state.Postgres))
	if err != nil {
		return fmt.Errorf("%s", redactor.Redact(err.Error()))
	}
	fmt.Fprintf(c.App.Writer, "copied %s into PostgreSQL: %d deployments, %d operations, %d runs, %d results, %d issuer accounts\n",
		from, n.Deployments, n.Operations, n.Runs, n.Results, n.Accounts)
	return nil
}
