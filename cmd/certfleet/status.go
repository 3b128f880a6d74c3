package main

import (
	"bufio"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/certfleet/certfleet/core/engine"
	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show every certificate: device, expiry, days left, last outcome, next action (from the state database only: no secret, no plugin, no device)",
		Flags: []cli.Flag{outputFlag()},
		Action: func(c *cli.Context) error {
			if err := checkOutputFlag(c); err != nil {
				return err
			}
			view, read, err := openStatusView(c)
			if err != nil {
				return err
			}
			defer view.close()
			var rows []engine.StatusRow
			if read != nil {
				rows = view.engine.StatusOf(read)
			} else if rows, err = view.engine.Status(c.Context); err != nil {
				return err
			}
			if c.String("output") == "json" {
				return writeJSON(c, rows)
			}
			return printStatus(c.App.Writer, rows)
		},
	}
}

// printStatus writes the status table. The table goes out through one buffer: a fleet's
// thousands of rows would otherwise be a write(2) per cell.
func printStatus(w io.Writer, rows []engine.StatusRow) error {
	out := bufio.NewWriterSize(w, 64<<10)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CERTIFICATE\tDEVICE\tNOT AFTER\tDAYS LEFT\tLAST OUTCOME\tSERVED\tNEXT ACTION")
	for _, r := range rows {
		notAfter, left := "-", "-"
		if !r.NotAfter.IsZero() {
			notAfter = r.NotAfter.UTC().Format("2006-01-02 15:04")
		}
		if r.DaysLeft != nil {
			left = fmt.Sprint(*r.DaysLeft)
		}
		outcome := r.LastOutcome
		if outcome == "" {
			outcome = "-"
		}
		if r.LastError != "" {
			outcome += " (" + r.LastError + ")"
		}
		served := "-"
		if r.Served != nil {
			served = "ok " + r.Served.At.UTC().Format("2006-01-02 15:04")
			if !r.Served.OK {
				served = "FAILED " + r.Served.At.UTC().Format("2006-01-02 15:04") + ": " + r.Served.Detail
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Certificate, r.Device, notAfter, left, outcome, served, r.NextAction)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return out.Flush()
}
