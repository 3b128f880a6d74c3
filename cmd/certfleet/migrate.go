package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/certfleet/certfleet/core/atomicfile"
	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/migrate"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/urfave/cli/v2"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:      "migrate",
		Usage:     "convert a Sectigo agent's files (Citrix ADC, Palo Alto, F5) into a certfleet configuration directory",
		ArgsUsage: "FILE|DIR...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Required: true, Usage: "the agent: citrix, paloalto or f5"},
			&cli.StringFlag{Name: "out", Value: "certfleet-migrated", Usage: "the configuration directory to write (certfleet.yaml and secrets/)"},
			&cli.StringSliceFlag{Name: "pgp", Usage: "PGP fingerprint to encrypt secrets that were plain in the agent's files (repeatable)"},
			&cli.StringSliceFlag{Name: "age", Usage: "age recipient to encrypt secrets that were plain in the agent's files (repeatable)"},
			&cli.StringFlag{Name: "state", Usage: "state database path to write into the configuration (default: certfleet's)"},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace the files of an earlier migration in --out"},
			outputFlag(),
		},
		Action: func(c *cli.Context) error {
			if err := checkOutputFlag(c); err != nil {
				return err
			}
			if c.NArg() == 0 {
				return cli.Exit("migrate: name the agent's files or directories (e.g. /etc/sectigo, /opt/sectigo/scm.yaml)", 2)
			}
			// sops's own log would print to stderr; it carries no secret, but keep it with ours.
			secret.SetSopsLogOutput(c.App.ErrWriter)
			res, err := migrate.Migrate(c.Context, migrate.Options{From: c.String("from"), Inputs: c.Args().Slice(),
				PGPFingerprints: c.StringSlice("pgp"), AgeRecipients: c.StringSlice("age"), StatePath: c.String("state")})
			if err != nil {
				return cli.Exit("migrate: "+err.Error(), 2)
			}
			out := c.String("out")
			if err := writeMigration(out, res, c.Bool("overwrite")); err != nil {
				return cli.Exit("migrate: "+err.Error(), 1)
			}
			// The result must pass validate (references are checked for form, not resolved).
			_, warnings, verr := config.Load(out)
			if c.String("output") == "json" {
				return writeJSON(c, struct {
					Out    string         `json:"out"`
					Report migrate.Report `json:"report"`
					Valid  bool           `json:"valid"`
				}{out, res.Report, verr == nil})
			}
			printMigrationReport(c.App.Writer, out, res)
			for _, w := range warnings {
				fmt.Fprintln(c.App.Writer, "warning:", w.String())
			}
			if verr != nil {
				return cli.Exit("the written configuration does not pass validate:\n"+verr.Error(), 1)
			}
			fmt.Fprintf(c.App.Writer, "\n%s passes validate. Next: certfleet --config %s plan\n", out, out)
			return nil
		},
	}
}

func writeMigration(out string, res *migrate.Result, overwrite bool) error {
	if err := os.MkdirAll(filepath.Join(out, "secrets"), 0o700); err != nil {
		return err
	}
	names := make([]string, 0, len(res.Files))
	for n := range res.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	if !overwrite {
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(out, n)); err == nil {
				return fmt.Errorf("%s exists: choose another --out, or pass --overwrite", filepath.Join(out, n))
			}
		}
	}
	for _, n := range names {
		if err := atomicfile.Write(filepath.Join(out, n), res.Files[n], 0o600); err != nil {
			return fmt.Errorf("write %s: %w", n, err)
		}
	}
	return nil
}

func printMigrationReport(w io.Writer, out string, res *migrate.Result) {
	section := func(title string, lines []migrate.Line, withTarget bool) {
		fmt.Fprintf(w, "\n%s (%d)\n", title, len(lines))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, l := range lines {
			parts := []string{"  " + l.Source}
			if withTarget || l.Target != "" {
				parts = append(parts, l.Target)
			}
			if l.Note != "" {
				parts = append(parts, l.Note)
			}
			fmt.Fprintln(tw, strings.Join(parts, "\t"))
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(w, "wrote %s: %d issuer(s), %d device(s), %d certificate(s)", out, len(res.Config.Issuers), len(res.Config.Devices), len(res.Config.Certificates))
	if len(res.Config.Pending) > 0 {
		fmt.Fprintf(w, ", %d certificate(s) commented out until decided", len(res.Config.Pending))
	}
	fmt.Fprintln(w)
	section("Mapped", res.Report.Mapped, true)
	section("No equivalent", res.Report.NoEquivalent, false)
	section("Needs a decision", res.Report.Decisions, false)
}
