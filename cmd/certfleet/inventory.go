package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certfleet/certfleet/core/atomicfile"
	"github.com/certfleet/certfleet/core/inventory"
	"github.com/certfleet/certfleet/core/report"
	"github.com/urfave/cli/v2"
)

func inventoryCommand() *cli.Command {
	return &cli.Command{
		Name:      "inventory",
		Usage:     "list every certificate on the devices, managed by certfleet or not (devices are read, nothing changes)",
		ArgsUsage: "[DEVICE...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "table, json or csv"},
			&cli.BoolFlag{Name: "unmanaged", Usage: "only certificates certfleet does not manage"},
			&cli.StringFlag{Name: "expiring", Usage: "only certificates that expire within this long (30d, 72h)"},
			&cli.BoolFlag{Name: "suggest", Usage: "print configuration that brings the unmanaged, bound certificates under management (adopted on the first run)"},
		},
		Action: func(c *cli.Context) error {
			out := c.String("output")
			if out != "table" && out != "json" && out != "csv" {
				return cli.Exit(fmt.Sprintf("--output %q: use table, json or csv", out), 2)
			}
			filter := inventory.Filter{Unmanaged: c.Bool("unmanaged")}
			if e := c.String("expiring"); e != "" {
				d, err := parseDays(e)
				if err != nil {
					return cli.Exit(fmt.Sprintf("--expiring %q: %v", e, err), 2)
				}
				filter.Expiring = d
			}
			env, fleet, err := collectFleet(c)
			if err != nil {
				return err
			}
			defer env.close()
			rows := filter.Apply(fleet.Rows, fleet.At)
			if c.Bool("suggest") {
				snippet, n := inventory.Suggest(rows, bindableKinds(c.Context, env))
				if n == 0 {
					fmt.Fprintln(c.App.Writer, "# no unmanaged certificate bound where certfleet can bind")
					return nil
				}
				_, err := c.App.Writer.Write(snippet)
				return err
			}
			fleet.Rows = rows
			switch out {
			case "json":
				err = writeJSON(c, fleet)
			case "csv":
				err = writeInventoryCSV(c.App.Writer, rows)
			default:
				err = writeInventoryTable(c.App.Writer, rows, fleet.At)
			}
			if err != nil {
				return err
			}
			for _, e := range fleet.Errors {
				fmt.Fprintln(c.App.ErrWriter, "error:", e.Error)
			}
			if len(fleet.Errors) > 0 {
				return cli.Exit("", 1)
			}
			return nil
		},
	}
}

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "write a self-contained HTML page with the expiry timeline of every certificate on the devices",
		ArgsUsage: "[DEVICE...]",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "html", Required: true, Usage: "the HTML file to write"}},
		Action: func(c *cli.Context) error {
			env, fleet, err := collectFleet(c)
			if err != nil {
				return err
			}
			defer env.close()
			var buf bytes.Buffer
			if err := report.WriteHTML(&buf, fleet); err != nil {
				return err
			}
			if err := atomicfile.Write(c.String("html"), buf.Bytes(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %s: %d certificates on %d device(s)\n", c.String("html"), len(fleet.Rows), countDevices(fleet))
			for _, e := range fleet.Errors {
				fmt.Fprintln(c.App.ErrWriter, "error:", e.Error)
			}
			return nil
		},
	}
}

func countDevices(f inventory.Fleet) int {
	seen := map[string]bool{}
	for _, r := range f.Rows {
		seen[r.Device] = true
	}
	return len(seen)
}

// collectFleet reads the named devices (all when none are named).
func collectFleet(c *cli.Context) (*environment, inventory.Fleet, error) {
	env, err := setup(c, false)
	if err != nil {
		return nil, inventory.Fleet{}, err
	}
	names := c.Args().Slice()
	if len(names) == 0 {
		for n := range env.cfg.Devices {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	targets := engineDevices(env.cfg)
	var devices []inventory.Device
	for _, n := range names {
		d, ok := targets[n]
		if !ok {
			known := make([]string, 0, len(targets))
			for k := range targets {
				known = append(known, k)
			}
			sort.Strings(known)
			env.close()
			return nil, inventory.Fleet{}, cli.Exit(fmt.Sprintf("no device named %q in the configuration (known: %s)", n, strings.Join(known, ", ")), 2)
		}
		p, err := env.host.Plugin(d.Plugin)
		if err != nil {
			env.close()
			return nil, inventory.Fleet{}, err
		}
		devices = append(devices, inventory.Device{Name: n, Plugin: p, Target: d.Target})
	}
	deployments, err := env.store.Deployments(c.Context)
	if err != nil {
		env.close()
		return nil, inventory.Fleet{}, err
	}
	ops, err := env.store.OpenOperations(c.Context)
	if err != nil {
		env.close()
		return nil, inventory.Fleet{}, err
	}
	fleet := inventory.Collect(c.Context, devices, inventory.Options{Deployments: deployments, Operations: ops,
		CallTimeout: env.cfg.Runtime.CallTimeout, Redact: env.redactor.Redact, Now: time.Now()})
	return env, fleet, nil
}

// bindableKinds answers from each plugin's declared binding kinds.
func bindableKinds(ctx context.Context, env *environment) func(device, kind string) bool {
	kinds := map[string][]string{}
	return func(device, kind string) bool {
		d, ok := env.cfg.Devices[device]
		if !ok {
			return false
		}
		k, ok := kinds[d.Plugin]
		if !ok {
			if p, err := env.host.Plugin(d.Plugin); err == nil {
				if info, err := p.Info(ctx); err == nil {
					k = info.Capabilities.BindingKinds
				}
			}
			kinds[d.Plugin] = k
		}
		return slices.Contains(k, kind)
	}
}

// parseDays reads 30d, 72h, 90m (days are 24 h).
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("a number of days, e.g. 30d")
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("days (30d) or a duration (72h)")
	}
	return d, nil
}

func inventoryFields(r inventory.Row) []string {
	managed := "no"
	if r.Managed {
		managed = r.Certificate + " (" + r.Role + ")"
	}
	return []string{r.Device, r.Object, r.Subject, strings.Join(r.SANs, " "), r.Issuer, r.NotAfter.UTC().Format(time.RFC3339), r.KeyType, strings.Join(r.Bindings, " "), managed}
}

var inventoryHeader = []string{"device", "object", "subject", "sans", "issuer", "not_after", "key_type", "bound_at", "managed"}

func writeInventoryCSV(w io.Writer, rows []inventory.Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(inventoryHeader); err != nil {
		return err
	}
	for _, r := range rows {
		if err := cw.Write(inventoryFields(r)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func writeInventoryTable(w io.Writer, rows []inventory.Row, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tOBJECT\tSUBJECT\tSANS\tISSUER\tNOT AFTER\tDAYS\tKEY\tBOUND AT\tMANAGED")
	for _, r := range rows {
		f := inventoryFields(r)
		days := int(r.NotAfter.Sub(now).Hours() / 24)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", f[0], f[1], f[2], f[3], f[4], r.NotAfter.UTC().Format("2006-01-02"), days, f[6], f[7], f[8])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d certificate(s)\n", len(rows))
	return err
}
