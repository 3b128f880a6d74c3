package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name: "verify",
		Usage: "check over TLS that each certificate's endpoints serve the deployed certificate with a chain to its root " +
			"(changes nothing; exit 1 when a check fails, for monitoring)",
		ArgsUsage: "[CERTIFICATE...]",
		Flags:     []cli.Flag{outputFlag()},
		Action: func(c *cli.Context) error {
			if err := checkOutputFlag(c); err != nil {
				return err
			}
			env, err := setup(c, false)
			if err != nil {
				return err
			}
			defer env.close()
			rows, err := env.engine.VerifyServed(c.Context, c.Args().Slice())
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range rows {
				if r.Check != nil && !r.Check.OK {
					failed++
				}
			}
			if c.String("output") == "json" {
				if err := writeJSON(c, rows); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CERTIFICATE\tDEVICE\tSERVED\tDETAIL")
				for _, r := range rows {
					result, detail := "skipped", r.Skipped
					if r.Check != nil {
						result, detail = "ok", r.Check.Detail
						if !r.Check.OK {
							result = "FAILED"
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Certificate, r.Device, result, env.redactor.Redact(detail))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if failed > 0 {
				return cli.Exit(fmt.Sprintf("%d certificate(s) not served as deployed", failed), 1)
			}
			return nil
		},
	}
}
