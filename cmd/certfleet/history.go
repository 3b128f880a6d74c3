package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certfleet/certfleet/core/state"
	"github.com/urfave/cli/v2"
)

// historyRun is one run as `history --output json` shows it.
type historyRun struct {
	Run        int64           `json:"run"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
	Outcome    string          `json:"outcome"`
	Results    []historyResult `json:"results"`
}

type historyResult struct {
	Certificate string    `json:"certificate"`
	Device      string    `json:"device"`
	Action      string    `json:"action"`
	Reason      string    `json:"reason,omitempty"`
	Outcome     string    `json:"outcome"`
	Step        string    `json:"step,omitempty"`
	Error       string    `json:"error,omitempty"`
	FinishedAt  time.Time `json:"finished_at"`
}

func historyCommand() *cli.Command {
	return &cli.Command{
		Name:      "history",
		Usage:     "show what each run did, per certificate (from the state database only: no secret, no plugin, no device)",
		ArgsUsage: "[CERTIFICATE]",
		Flags: []cli.Flag{
			outputFlag(),
			&cli.IntFlag{Name: "runs", Aliases: []string{"n"}, Value: 10, Usage: "how many runs to show, newest first"},
		},
		Action: func(c *cli.Context) error {
			if err := checkOutputFlag(c); err != nil {
				return err
			}
			if c.NArg() > 1 {
				return cli.Exit("usage: certfleet history [--runs N] [--output json] [CERTIFICATE]", 2)
			}
			if c.Int("runs") < 1 {
				return cli.Exit(fmt.Sprintf("--runs %d: give 1 or more", c.Int("runs")), 2)
			}
			view, err := openStateView(c)
			if err != nil {
				return err
			}
			defer view.close()
			name := c.Args().First()
			if _, ok := view.cfg.Certificates[name]; name != "" && !ok {
				// A certificate removed from the configuration still has its history.
				view.logs.Logger().Debug("certificate not in the configuration; showing its recorded history", "certificate", name)
			}
			runs, err := view.store.History(c.Context, name, c.Int("runs"))
			if err != nil {
				return err
			}
			out := make([]historyRun, 0, len(runs))
			for _, r := range runs {
				hr := historyRun{Run: r.ID, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Outcome: r.Outcome, Results: []historyResult{}}
				for _, res := range r.Results {
					hr.Results = append(hr.Results, historyResult{Certificate: res.Certificate, Device: res.Device, Action: res.Action,
						Reason: res.Reason, Outcome: string(res.Outcome), Step: string(res.Step), Error: res.Error, FinishedAt: res.FinishedAt})
				}
				out = append(out, hr)
			}
			if c.String("output") == "json" {
				return writeJSON(c, out)
			}
			if len(out) == 0 {
				what := "no run is recorded"
				if name != "" {
					what = "no run has touched " + name
				}
				_, err := fmt.Fprintf(c.App.Writer, "%s in %s\n", what, statePathOf(view.cfg))
				return err
			}
			return printHistory(c.App.Writer, out)
		},
	}
}

// printHistory writes the runs through one buffer (a run of a large fleet is thousands of lines).
func printHistory(dst io.Writer, runs []historyRun) error {
	w := bufio.NewWriterSize(dst, 64<<10)
	for i, r := range runs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		took := "unfinished"
		if !r.FinishedAt.IsZero() {
			took = "took " + r.FinishedAt.Sub(r.StartedAt).Round(time.Second).String()
		}
		counts := map[string]int{}
		for _, res := range r.Results {
			counts[res.Outcome]++
		}
		var parts []string
		for _, o := range []state.Outcome{state.OutcomeDeployed, state.OutcomeUnchanged, state.OutcomePending, state.OutcomeFailed} {
			if n := counts[string(o)]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, o))
			}
		}
		fmt.Fprintf(w, "run %d  %s  %s  %s  (%s)\n", r.Run, r.StartedAt.Local().Format("2006-01-02 15:04:05 MST"), took, r.Outcome, strings.Join(parts, ", "))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, res := range r.Results {
			detail := res.Reason
			if res.Error != "" {
				detail = res.Error
			}
			if res.Step != "" && res.Outcome != string(state.OutcomeDeployed) && res.Outcome != string(state.OutcomeUnchanged) {
				detail = "at step " + res.Step + ": " + detail
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", res.Certificate, res.Device, res.Action, res.Outcome, detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return w.Flush()
}
