package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/issuer"
	"github.com/certfleet/certfleet/core/notify"
	"github.com/certfleet/certfleet/core/state"
	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

func planCommand() *cli.Command {
	return &cli.Command{
		Name:      "plan",
		Usage:     "show what a run would do, per certificate and device (devices are read, no CA is contacted)",
		ArgsUsage: "[CERTIFICATE...]",
		Flags:     []cli.Flag{outputFlag(), &cli.BoolFlag{Name: "force", Usage: "plan a renewal of every selected certificate"}, noAdoptFlag()},
		Action: func(c *cli.Context) error {
			if err := checkOutputFlag(c); err != nil {
				return err
			}
			env, err := setupWith(c, setupOptions{deferPluginCheck: true})
			if err != nil {
				return err
			}
			defer env.close()
			plan, err := env.engine.Plan(c.Context, engine.PlanOptions{Names: c.Args().Slice(), Force: c.Bool("force"), NoAdopt: c.Bool("no-adopt")})
			if exit := pluginCheckFailure(err); exit != nil {
				return exit
			}
			if err != nil {
				return err
			}
			if c.String("output") == "json" {
				err = writeJSON(c, plan)
			} else {
				err = printPlan(c.App.Writer, plan)
			}
			if err != nil {
				return err
			}
			return planExit(plan)
		},
	}
}

// planExit fails a plan that could not decide for every certificate (a device that could not be
// inspected, a renewal window that would re-order every run), so a script never reads it as "all
// is well".
func planExit(plan engine.Plan) error {
	undecided := 0
	for _, it := range plan.Items {
		if it.Action == engine.ActionUnknown {
			undecided++
		}
	}
	if undecided > 0 {
		return cli.Exit(fmt.Sprintf("%d certificate(s) could not be planned; see the reason of each", undecided), engine.ExitFailed)
	}
	return nil
}

func printPlan(w io.Writer, plan engine.Plan) error {
	tw := &table{rows: make([][]string, 0, len(plan.Items)+1)}
	tw.row("CERTIFICATE", "DEVICE", "ISSUER", "ACTION", "REASON")
	due := 0
	for _, it := range plan.Items {
		reason := it.Reason
		if it.Error != "" {
			reason += ": " + it.Error
		}
		if it.Action != engine.ActionNone {
			due++
		}
		tw.row(it.Certificate, it.Device, it.Issuer, string(it.Action), reason)
	}
	if err := tw.write(w); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "\n%d of %d certificates need action (%d devices inspected)\n", due, len(plan.Items), plan.InventoryCalls); err != nil {
		return err
	}
	for _, r := range plan.Retired {
		if _, err := fmt.Fprintf(w, "%s (%s): %s\n", r.Certificate, r.Device, r.Reason); err != nil {
			return err
		}
	}
	return nil
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "enroll, renew, resume and repair certificates as needed",
		ArgsUsage: "[CERTIFICATE...]",
		Flags: []cli.Flag{
			outputFlag(),
			&cli.BoolFlag{Name: "dry-run", Usage: "only plan (same as `certfleet plan`)"},
			&cli.BoolFlag{Name: "force", Usage: "renew every selected certificate now (a new key each)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "for cron: print nothing when all is well, and only what failed (one paragraph) otherwise"},
			metricsFileFlag(),
			noAdoptFlag(),
		},
		Action: func(c *cli.Context) error {
			if err := checkOutputFlag(c); err != nil {
				return err
			}
			progress := !c.Bool("quiet") && c.String("output") == "table" && isTerminal(c.App.ErrWriter)
			env, err := setupWith(c, setupOptions{progress: progress, deferPluginCheck: true})
			if err != nil {
				return err
			}
			defer env.close()
			signals, release := watchStopSignals(c.Context, env.log, env.cfg.StopTimeout, false)
			defer release()
			started := time.Now()
			report, runErr := env.engine.Run(signals.ctx, engine.RunOptions{Names: c.Args().Slice(), Force: c.Bool("force"), DryRun: c.Bool("dry-run"), NoAdopt: c.Bool("no-adopt"), Stop: signals.stop})
			if errors.Is(runErr, state.ErrLocked) {
				// The lock is tried before the plugins' verdict is in: a configuration they refuse
				// is still the error to report, as when they were checked first.
				if err := env.plugins.wait(signals.ctx); pluginCheckFailure(err) != nil {
					runErr = err
				}
			}
			if exit := pluginCheckFailure(runErr); exit != nil {
				return exit // a configuration error, as from setup: no run was started
			}
			var notifyFailed []notify.Failure
			if !c.Bool("dry-run") {
				notifyFailed = finishRun(signals.ctx, env, report, runErr, started, hclog.Info, c.String("metrics-file") != "")
				writeMetricsFile(c, env)
			}
			if errors.Is(runErr, state.ErrLocked) {
				return cli.Exit(runErr.Error()+"; nothing was done: the other run goes on, try again when it ends", engine.ExitLocked)
			}
			if runErr != nil && len(report.Results) == 0 {
				return runErr
			}
			if c.String("output") == "json" {
				if err := writeJSON(c, report); err != nil {
					return err
				}
			} else if c.Bool("quiet") {
				if err := printQuiet(c.App.Writer, env, report, notifyFailed); err != nil {
					return err
				}
			} else if err := printReport(c.App.Writer, report); err != nil {
				return err
			}
			if runErr != nil {
				return runErr
			}
			if code := report.ExitCode(); code != 0 {
				return cli.Exit("", code)
			}
			return nil
		},
	}
}

func printReport(w io.Writer, r engine.Report) error {
	tw := &table{rows: make([][]string, 0, len(r.Results)+1)}
	tw.row("CERTIFICATE", "DEVICE", "ACTION", "OUTCOME", "DETAIL")
	counts := map[state.Outcome]int{}
	for _, res := range r.Results {
		counts[res.Outcome]++
		detail := res.Reason
		if res.Error != "" {
			detail = res.Error
		}
		tw.row(res.Certificate, res.Device, res.Action, string(res.Outcome), detail)
	}
	if err := tw.write(w); err != nil {
		return err
	}
	var parts []string
	for _, o := range []state.Outcome{state.OutcomeDeployed, state.OutcomeUnchanged, state.OutcomePending, state.OutcomeFailed, state.OutcomePlanned} {
		if counts[o] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[o], o))
		}
	}
	_, err := fmt.Fprintf(w, "\n%s\n", strings.Join(parts, ", "))
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressPrinter writes one line per certificate step, for a person watching a terminal.
func progressPrinter(w io.Writer) func(engine.Event) {
	var mu sync.Mutex
	return func(ev engine.Event) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s  %-24s %s\n", time.Now().Format("15:04:05"), ev.Certificate, ev.Message)
	}
}

var revokeReasons = map[string]issuer.RevokeReason{
	"unspecified": issuer.ReasonUnspecified, "key-compromise": issuer.ReasonKeyCompromise,
	"affiliation-changed": issuer.ReasonAffiliationChanged, "superseded": issuer.ReasonSuperseded,
	"cessation-of-operation": issuer.ReasonCessationOfOperation,
}

func revokeReasonNames() []string {
	return []string{"unspecified", "key-compromise", "affiliation-changed", "superseded", "cessation-of-operation"}
}

func engineRetireOptions(revoke bool, reason issuer.RevokeReason, cleanup bool) engine.RetireOptions {
	return engine.RetireOptions{Revoke: revoke, Reason: reason, Cleanup: cleanup}
}

func revokeCommand() *cli.Command {
	return &cli.Command{
		Name: "revoke",
		Usage: "revoke a certificate at its CA and deploy its replacement (key-compromise: revoke first; " +
			"otherwise the replacement is deployed first and the old certificate revoked once it is no longer served)",
		ArgsUsage: "CERTIFICATE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "reason", Value: "superseded", Usage: strings.Join(revokeReasonNames(), ", ")},
			&cli.BoolFlag{Name: "replace", Value: true, Usage: "deploy the replacement in the same command; --replace=false only revokes, and the next run replaces it"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: certfleet revoke [--reason REASON] [--replace=false] CERTIFICATE", 2)
			}
			reason, ok := revokeReasons[c.String("reason")]
			if !ok {
				return cli.Exit(fmt.Sprintf("--reason %q: use %s", c.String("reason"), strings.Join(revokeReasonNames(), ", ")), 2)
			}
			env, err := setup(c, isTerminal(c.App.ErrWriter))
			if err != nil {
				return err
			}
			defer env.close()
			name := c.Args().First()
			if !c.Bool("replace") {
				if err := env.engine.Revoke(c.Context, name, reason); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "revoked %s; the device serves it until `certfleet run` replaces it\n", name)
				return nil
			}
			report, err := env.engine.RevokeAndReplace(c.Context, name, reason)
			if len(report.Results) > 0 {
				if perr := printReport(c.App.Writer, report); perr != nil {
					return perr
				}
			}
			if err != nil {
				return err
			}
			if code := report.ExitCode(); code != 0 {
				return cli.Exit("", code)
			}
			fmt.Fprintf(c.App.Writer, "revoked %s and deployed its replacement\n", name)
			return nil
		},
	}
}

func noAdoptFlag() cli.Flag {
	return &cli.BoolFlag{Name: "no-adopt", Usage: "enroll certificates with nothing recorded even when a matching one is already live on the device"}
}
