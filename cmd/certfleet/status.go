package main

import (
	"io"
	"strconv"

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

// printStatus writes the status table through table, as run and plan print theirs: tabwriter
// copied every cell and cost a formatted line per row.
func printStatus(w io.Writer, rows []engine.StatusRow) error {
	t := &table{rows: make([][]string, 0, len(rows)+1)}
	t.row("CERTIFICATE", "DEVICE", "NOT AFTER", "DAYS LEFT", "LAST OUTCOME", "SERVED", "NEXT ACTION")
	// The cells of every row in one slice: a row of its own each would be an allocation per row.
	cells := make([]string, 0, 7*len(rows))
	for _, r := range rows {
		notAfter, left := "-", "-"
		if !r.NotAfter.IsZero() {
			notAfter = r.NotAfter.UTC().Format("2006-01-02 15:04")
		}
		if r.DaysLeft != nil {
			left = strconv.Itoa(*r.DaysLeft)
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
			at := r.Served.At.UTC().Format("2006-01-02 15:04")
			if r.Served.OK {
				served = "ok " + at
			} else {
				served = "FAILED " + at + ": " + r.Served.Detail
			}
		}
		cells = append(cells, r.Certificate, r.Device, notAfter, left, outcome, served, r.NextAction)
		t.row(cells[len(cells)-7:]...)
	}
	return t.write(w)
}
