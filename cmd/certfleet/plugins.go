package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/certfleet/certfleet/core/pluginhost"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/template"
	"github.com/urfave/cli/v2"
)

func pluginsCommand() *cli.Command {
	return &cli.Command{
		Name:  "plugins",
		Usage: "list, inspect and pin device plugins",
		Subcommands: []*cli.Command{
			{
				Name:   "list",
				Usage:  "list plugin binaries found: name, version, path, checksum, pinned or not",
				Flags:  []cli.Flag{outputFlag()},
				Action: pluginsList,
			},
			{
				Name:      "inspect",
				Usage:     "start a plugin and show what it says of itself (GetInfo)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{outputFlag()},
				Action:    pluginsInspect,
			},
			{
				Name:      "new",
				Usage:     "write a new plugin from the template: plugin, simulator skeleton, conformance test (see plugins/sdk/AUTHORING.md)",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "module", Usage: "Go module path of the new plugin (default certfleet-plugin-NAME)"},
					&cli.StringFlag{Name: "dir", Usage: "directory to write (default ./certfleet-plugin-NAME); must not exist or be empty"},
					&cli.StringFlag{Name: "sdk-dir", Usage: "a local certfleet checkout for the go.mod to use (replace directive)"},
				},
				Action: pluginsNew,
			},
			{
				Name:      "test",
				Usage:     "qualify a plugin against a lab device: the conformance suite, a report of each check (no Go toolchain needed)",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "target", Usage: "YAML file describing the lab device and the bindings the suite may use"},
					outputFlag(),
				},
				Action: pluginsTest,
			},
			{
				Name:      "pin",
				Usage:     "trust a plugin binary as it is now (after an upgrade)",
				ArgsUsage: "NAME",
				Action:    pluginsPin,
			},
		},
	}
}

func outputFlag() cli.Flag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "table or json"}
}

func checkOutputFlag(c *cli.Context) error {
	if o := c.String("output"); o != "table" && o != "json" {
		return cli.Exit(fmt.Sprintf("--output %q: use table or json", o), 2)
	}
	return nil
}

// hostForCommand builds a plugin host for the plugins commands.
func hostForCommand(c *cli.Context) (*pluginhost.Host, error) {
	return newPluginHost(c, newLogger(c), nil, ""), nil
}

type pluginRow struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
	Pinned  string `json:"pinned"`
	Error   string `json:"error,omitempty"`
}

func pluginsList(c *cli.Context) error {
	if err := checkOutputFlag(c); err != nil {
		return err
	}
	host, err := hostForCommand(c)
	if err != nil {
		return err
	}
	defer host.Close()
	var rows []pluginRow
	for _, f := range host.Discover() {
		row := pluginRow{Name: f.Name, Path: f.Path}
		// Starting the plugin pins it on first use, so the version is read before the pin status.
		if p, err := host.Plugin(f.Name); err == nil {
			ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
			if info, err := p.Info(ctx); err == nil {
				row.Version = info.Version
			} else {
				row.Error = err.Error()
			}
			cancel()
		}
		sum, pin, pinned, err := host.Checksum(f.Name)
		row.SHA256 = sum
		switch {
		case err != nil:
			row.Error = err.Error()
		case pinned && pin.SHA256 == sum:
			row.Pinned = "yes"
		case pinned:
			row.Pinned = "CHANGED"
		default:
			row.Pinned = "no"
		}
		rows = append(rows, row)
	}
	if c.String("output") == "json" {
		return writeJSON(c, rows)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tPINNED\tSHA256\tPATH")
	for _, r := range rows {
		v := r.Version
		if r.Error != "" {
			v = "error: " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, v, r.Pinned, short(r.SHA256), r.Path)
	}
	return tw.Flush()
}

func short(sum string) string {
	if len(sum) > 16 {
		return sum[:16]
	}
	return sum
}

func writeJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func pluginsInspect(c *cli.Context) error {
	if err := checkOutputFlag(c); err != nil {
		return err
	}
	if c.NArg() != 1 {
		return cli.Exit("usage: certfleet plugins inspect NAME", 2)
	}
	host, err := hostForCommand(c)
	if err != nil {
		return err
	}
	defer host.Close()
	p, err := host.Plugin(c.Args().First())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	info, err := p.Info(ctx)
	if err != nil {
		return err
	}
	if c.String("output") == "json" {
		return writeJSON(c, info)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "name:         %s\nversion:      %s\nvendor:       %s\ndescription:  %s\npath:         %s\ncontract:     v1.%d\n",
		info.Name, info.Version, info.Vendor, info.Description, p.Path(), info.ContractMinorVersion)
	caps := info.Capabilities
	fmt.Fprintf(w, "key specs:    %s\nbindings:     %v\nneeds commit: %v\nrollback:     %v\ncleanup:      %v\n",
		formatKeySpecs(caps.KeySpecs), caps.BindingKinds, caps.NeedsCommit, caps.SupportsRollback, caps.SupportsCleanup)
	if len(caps.TargetOptions) > 0 {
		fmt.Fprintln(w, "device options:")
		for _, o := range caps.TargetOptions {
			fmt.Fprintf(w, "  %-22s %-7s %s\n", o.Name, o.Type, o.Description)
		}
	}
	if len(caps.BindingOptions) > 0 {
		fmt.Fprintln(w, "binding options:")
		for _, o := range caps.BindingOptions {
			fmt.Fprintf(w, "  %-22s %-7s %s\n", o.Name, o.Type, o.Description)
		}
	}
	return nil
}

func pluginsPin(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("usage: certfleet plugins pin NAME", 2)
	}
	host, err := hostForCommand(c)
	if err != nil {
		return err
	}
	defer host.Close()
	sum, err := host.Pin(c.Args().First())
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "pinned %s at sha256 %s\n", c.Args().First(), sum)
	return nil
}

func pluginsNew(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("usage: certfleet plugins new [--module PATH] [--dir DIR] [--sdk-dir CERTFLEET_CHECKOUT] NAME", 2)
	}
	name := c.Args().First()
	opts := template.Options{Name: name, Module: c.String("module"), Dir: c.String("dir"), SDKDir: c.String("sdk-dir")}
	if opts.Module == "" {
		opts.Module = sdk.BinaryPrefix + name
	}
	if opts.Dir == "" {
		opts.Dir = sdk.BinaryPrefix + name
	}
	files, err := template.Generate(opts)
	if err != nil {
		return cli.Exit("plugins new: "+err.Error(), 2)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "wrote %d files to %s:\n", len(files), opts.Dir)
	for _, f := range files {
		fmt.Fprintf(w, "  %s\n", f)
	}
	fmt.Fprintf(w, "next: cd %s && go mod tidy && go test ./...   (the guide: plugins/sdk/AUTHORING.md)\n", opts.Dir)
	if opts.SDKDir == "" {
		fmt.Fprintln(w, "note: without --sdk-dir, go.mod requires github.com/certfleet/certfleet from the module proxy")
	}
	return nil
}
