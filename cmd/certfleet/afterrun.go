package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/metrics"
	"github.com/certfleet/certfleet/core/notify"
	"github.com/certfleet/certfleet/core/state"
	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"
)

// exitCodesHelp is shown by --help and repeated in the README.
const exitCodesHelp = `Exit codes:
   0  every certificate is deployed or unchanged (and, for validate and plan, nothing is wrong)
   1  a certificate failed, or the command failed (the message says why and what to do)
   2  the command line or the configuration is wrong (file, line, field and fix are given)
   3  nothing failed, but an order is still pending at the CA; the next run collects it

Run from cron with -q: nothing is printed when all is well; otherwise one paragraph says what
failed, why, and where the details are. Logs go to standard error and to logging.file.`

func metricsFileFlag() cli.Flag {
	return &cli.StringFlag{Name: "metrics-file", EnvVars: []string{"CERTFLEET_METRICS_FILE"},
		Usage: "write the run's metrics to this *.prom file (node_exporter's textfile collector), atomically"}
}

// runOutcome names a run's end for metrics and logs.
func runOutcome(report engine.Report, runErr error) string {
	switch {
	case runErr != nil && len(report.Results) == 0:
		return "error"
	case runErr != nil:
		return "interrupted"
	}
	for _, r := range report.Results {
		if r.Error == engine.ErrStopped.Error() {
			return "interrupted"
		}
	}
	switch report.ExitCode() {
	case engine.ExitFailed:
		return "failed"
	case engine.ExitPending:
		return "pending"
	}
	return "ok"
}

// finishRun does what follows every run, from the command line or the daemon: it logs a summary,
// updates the metrics from the state, and sends the digest. A notification that cannot be
// delivered is logged and counted; it never changes the run's outcome.
//
// failLevel is the level of each failed certificate's log line: the daemon logs it as an error;
// the run command shows it in its output and keeps the log line for the file.
//
// withMetrics says whether the per-certificate gauges are read by anyone (the daemon's /metrics,
// the run command's --metrics-file): they are built from a read of the whole state (a status),
// which costs as much as a steady-state run's own work on a large fleet, so a run without a
// metrics file and without notification channels does not read it.
func finishRun(ctx context.Context, env *environment, report engine.Report, runErr error, started time.Time, failLevel hclog.Level, withMetrics bool) []notify.Failure {
	now := time.Now()
	outcome := runOutcome(report, runErr)
	env.metrics.ObserveRun(outcome, now.Sub(started), now)
	counts := map[state.Outcome]int{}
	for _, r := range report.Results {
		counts[r.Outcome]++
		if r.Outcome == state.OutcomeFailed {
			env.log.Log(failLevel, "certificate failed", "certificate", r.Certificate, "device", r.Device, "action", r.Action, "step", r.Step, "error", r.Error)
		}
	}
	env.log.Info("run finished", "run", report.RunID, "outcome", outcome, "took", now.Sub(started).Round(time.Millisecond),
		"deployed", counts[state.OutcomeDeployed], "unchanged", counts[state.OutcomeUnchanged],
		"pending", counts[state.OutcomePending], "failed", counts[state.OutcomeFailed])
	notifying := env.notifier != nil && len(env.notifier.Channels) > 0 && len(report.Results) > 0
	if !withMetrics && !notifying {
		return nil
	}
	status, err := updateCertificateMetrics(ctx, env)
	if err != nil {
		env.log.Warn("cannot read the state for metrics and notifications", "error", err)
		return nil
	}
	if !notifying {
		return nil
	}
	host, _ := os.Hostname()
	digest := notify.FromRun(host, report, status, env.cfg.Notifications.ExpiryWarning, now)
	if digest.Empty() {
		return nil
	}
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notify.Timeout)
	defer cancel()
	failed := env.notifier.Notify(nctx, digest)
	for _, f := range failed {
		env.metrics.NotificationFailed(f.Channel)
		env.log.Warn("notification not delivered; the run itself is not affected", "channel", f.Channel, "error", f.Err)
	}
	return failed
}

// printQuiet is -q's output: nothing when all is well; otherwise one paragraph on what failed or
// is pending, why, and where to look.
func printQuiet(w io.Writer, env *environment, report engine.Report, notifyFailed []notify.Failure) error {
	var failed, pending []state.Result
	for _, r := range report.Results {
		switch r.Outcome {
		case state.OutcomeFailed:
			failed = append(failed, r)
		case state.OutcomePending:
			pending = append(pending, r)
		}
	}
	var b strings.Builder
	for _, f := range notifyFailed {
		fmt.Fprintf(&b, "certfleet: the %s notification of run %d was not delivered: %v. The run itself is not affected; check the receiver and notifications: in the configuration.\n",
			f.Channel, report.RunID, f.Err)
	}
	if len(failed)+len(pending) == 0 {
		_, err := io.WriteString(w, b.String())
		return err
	}
	if len(failed) > 0 {
		fmt.Fprintf(&b, "certfleet: %d of %d certificates failed in run %d.\n", len(failed), len(report.Results), report.RunID)
		for _, r := range failed {
			where := r.Action
			if r.Step != "" {
				where += ", at step " + string(r.Step)
			}
			fmt.Fprintf(&b, "  %s on %s (%s): %s\n", r.Certificate, r.Device, where, r.Error)
		}
	}
	if len(pending) > 0 {
		names := make([]string, 0, len(pending))
		for _, r := range pending {
			names = append(names, r.Certificate)
		}
		fmt.Fprintf(&b, "certfleet: %d certificate(s) not finished in run %d (%s): an order pending at the CA or a stopped run; the next run continues them.\n",
			len(pending), report.RunID, strings.Join(names, ", "))
	}
	b.WriteString("Nothing already ordered is lost: the next run resumes where this one stopped. ")
	if len(failed) > 0 {
		b.WriteString("Fix the cause given above, then run `certfleet run` (or wait for the next scheduled run). ")
	}
	fmt.Fprintf(&b, "`certfleet history %s` shows past runs", firstName(failed, pending))
	if path := env.logs.FilePath(); path != "" {
		fmt.Fprintf(&b, "; %s has the debug detail", path)
	}
	b.WriteString(".\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func firstName(lists ...[]state.Result) string {
	for _, l := range lists {
		if len(l) > 0 {
			return l[0].Certificate
		}
	}
	return ""
}

// writeMetricsFile writes --metrics-file, if given; failing to write it is reported, not fatal.
func writeMetricsFile(c *cli.Context, env *environment) {
	path := c.String("metrics-file")
	if path == "" {
		return
	}
	if err := env.metrics.WriteFile(path); err != nil {
		env.log.Error("cannot write the metrics file", "error", err)
	}
}

// updateCertificateMetrics sets the per-certificate gauges from the state and returns the rows.
func updateCertificateMetrics(ctx context.Context, env *environment) ([]engine.StatusRow, error) {
	status, err := env.engine.Status(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	certs := make([]metrics.Certificate, 0, len(status))
	for _, s := range status {
		certs = append(certs, metrics.Certificate{Name: s.Certificate, Device: s.Device, Issuer: s.Issuer, NotAfter: s.NotAfter, RenewAt: s.RenewAt, LastOutcome: s.LastOutcome})
	}
	env.metrics.SetCertificates(certs)
	return status, nil
}
