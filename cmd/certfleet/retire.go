package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

func retireCommand() *cli.Command {
	return &cli.Command{
		Name: "retire",
		Usage: "forget a certificate removed from the configuration: optionally revoke it at the CA and remove its " +
			"unbound objects from the device (a bound object is never removed)",
		ArgsUsage: "CERTIFICATE",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "revoke", Usage: "revoke its certificate at the CA (reason cessation-of-operation unless --reason)"},
			&cli.StringFlag{Name: "reason", Value: "cessation-of-operation", Usage: "revocation reason: " + strings.Join(revokeReasonNames(), ", ")},
			&cli.BoolFlag{Name: "cleanup", Usage: "remove its key and certificate objects from the device, unless they are still bound"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: certfleet retire [--revoke [--reason REASON]] [--cleanup] CERTIFICATE", 2)
			}
			reason, ok := revokeReasons[c.String("reason")]
			if !ok {
				return cli.Exit(fmt.Sprintf("--reason %q: use %s", c.String("reason"), strings.Join(revokeReasonNames(), ", ")), 2)
			}
			env, err := setup(c, false)
			if err != nil {
				return err
			}
			defer env.close()
			name := c.Args().First()
			rep, err := env.engine.Retire(c.Context, name, engineRetireOptions(c.Bool("revoke"), reason, c.Bool("cleanup")))
			if err != nil {
				return err
			}
			w := c.App.Writer
			if rep.Revoked {
				fmt.Fprintf(w, "revoked %s at the CA\n", name)
			}
			for _, r := range rep.Removed {
				fmt.Fprintf(w, "removed %s from the device\n", r)
			}
			for _, k := range rep.Kept {
				fmt.Fprintf(w, "kept %s on the device\n", k)
			}
			fmt.Fprintf(w, "retired %s: it is no longer in the state database\n", name)
			return nil
		},
	}
}
