package main

import (
	"bufio"
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/pluginhost"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/template"
	"github.com/urfave/cli/v2"
)

func pluginsCommand() *cli.Command {
	return &cli.Command{
		Name:  "plugins",
		Usage: "list, inspect, install and pin device plugins",
		Subcommands: []*cli.Command{
			{
				Name:   "list",
				Usage:  "list plugin binaries found: name, version, path, checksum, pinned or not (never pins)",
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
				Name:      "install",
				Usage:     "check a bundle against its SHA256SUMS, install its plugins and pin them to those checksums",
				ArgsUsage: "BUNDLE.tar.gz|DIR",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "dest", Usage: "plugin directory to install into " +
						"(default: the first --plugin-dir, else the first plugins.dirs, else " + systemPluginDir + ")"},
					&cli.StringFlag{Name: "public-key", EnvVars: []string{"CERTFLEET_PLUGIN_PUBLIC_KEY"}, Usage: "minisign public key " +
						"(as plugins.public_key): the bundle must be listed in the SHA256SUMS beside it, signed by this key (SHA256SUMS.minisig)"},
				},
				Action: pluginsInstall,
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

// configForPlugins loads the configuration (secrets left unresolved) for where plugins and their
// pins live. When no configuration exists at the default place, the defaults apply.
func configForPlugins(c *cli.Context) (*config.Config, error) {
	path := c.String("config")
	if !c.IsSet("config") && !hasConfigFiles(path) {
		return nil, nil // a fresh install: /etc/certfleet is missing or still empty
	}
	cfg, err := loadConfig(c.Context, path, secret.NewRedactor(), false, newLogger(c))
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("%v\n(the plugins commands read plugins.dirs, plugins.pins_file, plugins.search_path and state.path from the configuration)", err), 2)
	}
	return cfg, nil
}

// hasConfigFiles says whether path is a configuration file or a directory holding one.
func hasConfigFiles(path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	if !st.IsDir() {
		return true
	}
	for _, pattern := range []string{"*.yaml", "*.yml"} {
		if m, _ := filepath.Glob(filepath.Join(path, pattern)); len(m) > 0 {
			return true
		}
	}
	return false
}

// hostForCommand builds a plugin host for the plugins commands, from the same places as run.
func hostForCommand(c *cli.Context, lookOnly bool) (*pluginhost.Host, *config.Config, error) {
	cfg, err := configForPlugins(c)
	if err != nil {
		return nil, nil, err
	}
	return newPluginHost(c, newLogger(c), cfg, lookOnly), cfg, nil
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
	host, _, err := hostForCommand(c, true)
	if err != nil {
		return err
	}
	defer host.Close()
	rows := []pluginRow{}
	untrusted := false
	for _, f := range host.Discover() {
		row := pluginRow{Name: f.Name, Path: f.Path}
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
		// Listing trusts nothing: only a binary that matches its pin is run to ask its version.
		if row.Pinned == "yes" {
			if p, err := host.Plugin(f.Name); err == nil {
				ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
				if info, err := p.Info(ctx); err == nil {
					row.Version = info.Version
				} else {
					row.Error = err.Error()
				}
				cancel()
			}
		} else if row.Error == "" {
			untrusted = true
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
		switch {
		case r.Error != "":
			v = "error: " + r.Error
		case v == "":
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, v, r.Pinned, short(r.SHA256), r.Path)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if untrusted {
		fmt.Fprintf(c.App.Writer, "\nPlugins not pinned (or changed since) were not run. Trust one with `%s NAME`, or install a bundle with `certfleet plugins install BUNDLE`.\n", pinCommand(c))
	}
	return nil
}

func short(sum string) string {
	if len(sum) > 16 {
		return sum[:16]
	}
	return sum
}

// writeJSON writes v indented, as json.Encoder with SetIndent("", "  ") does. A list is written
// element by element through one buffer: a fleet's status is megabytes of JSON, which the encoder
// would build whole, then indent whole into a second copy.
func writeJSON(c *cli.Context, v any) error {
	list := reflect.ValueOf(v)
	_, marshaler := v.(json.Marshaler)
	_, textMarshaler := v.(encoding.TextMarshaler)
	// Bytes are one base64 string, and a type that marshals itself is written as it says.
	if list.Kind() != reflect.Slice || list.Len() == 0 || list.Type().Elem().Kind() == reflect.Uint8 || marshaler || textMarshaler {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	out := bufio.NewWriterSize(c.App.Writer, 64<<10)
	out.WriteString("[\n")
	for i := range list.Len() {
		// By address, as the encoder reaches a list's elements: a MarshalJSON on the pointer counts.
		data, err := json.MarshalIndent(list.Index(i).Addr().Interface(), "  ", "  ")
		if err != nil {
			return err
		}
		out.WriteString("  ")
		out.Write(data)
		if i < list.Len()-1 {
			out.WriteByte(',')
		}
		out.WriteByte('\n')
	}
	out.WriteString("]\n")
	return out.Flush()
}

func pluginsInspect(c *cli.Context) error {
	if err := checkOutputFlag(c); err != nil {
		return err
	}
	if c.NArg() != 1 {
		return cli.Exit("usage: certfleet plugins inspect NAME", 2)
	}
	host, _, err := hostForCommand(c, true)
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
	host, _, err := hostForCommand(c, false)
	if err != nil {
		return err
	}
	defer host.Close()
	sum, err := host.Pin(c.Args().First())
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "pinned %s at sha256 %s in %s\n", c.Args().First(), sum, host.PinsFile())
	return nil
}

func pluginsInstall(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("usage: certfleet plugins install [--dest DIR] BUNDLE.tar.gz|DIR", 2)
	}
	host, cfg, err := hostForCommand(c, false)
	if err != nil {
		return err
	}
	defer host.Close()
	dest := c.String("dest")
	if dest == "" {
		dest = defaultInstallDir(c, cfg)
	}
	src := c.Args().First()
	st, err := os.Stat(src)
	if err != nil {
		return cli.Exit(fmt.Sprintf("plugins install: %v", err), 2)
	}
	publicKey := c.String("public-key")
	if publicKey == "" && cfg != nil {
		publicKey = cfg.Plugins.PublicKey
	}
	if publicKey != "" {
		if st.IsDir() {
			return cli.Exit(fmt.Sprintf("plugins install %s: a public key is configured (%s), and a directory cannot be checked against the release's signature; install the .tar.gz with the release's SHA256SUMS and SHA256SUMS.minisig beside it", src, publicKey), 2)
		}
		if err := pluginhost.VerifyRelease(src, publicKey); err != nil {
			return cli.Exit(err.Error(), 1)
		}
		fmt.Fprintf(c.App.Writer, "signature of %s verified with %s\n", filepath.Join(filepath.Dir(src), pluginhost.ChecksumsFile), publicKey)
	}
	if !st.IsDir() {
		tmp, err := os.MkdirTemp("", "certfleet-bundle-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if src, err = pluginhost.UnpackBundle(src, tmp); err != nil {
			return cli.Exit(err.Error(), 2)
		}
	}
	installed, err := host.Install(src, dest)
	for _, in := range installed {
		fmt.Fprintf(c.App.Writer, "installed %s to %s, pinned at sha256 %s in %s\n", in.Name, in.Path, in.SHA256, host.PinsFile())
		if in.Shadowed != "" {
			fmt.Fprintf(c.App.ErrWriter, "certfleet: warning: %s is not what certfleet runs for %s: %s is found first; remove it or put %s first in plugins.dirs\n",
				in.Path, in.Name, in.Shadowed, dest)
		}
	}
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	return nil
}

// defaultInstallDir is the first plugin directory the flags or the configuration name, else the
// system plugin directory.
func defaultInstallDir(c *cli.Context, cfg *config.Config) string {
	if dirs := c.StringSlice("plugin-dir"); len(dirs) > 0 {
		return dirs[0]
	}
	if cfg != nil && len(cfg.Plugins.Dirs) > 0 {
		return cfg.Plugins.Dirs[0]
	}
	return systemPluginDir
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
	if !slices.Contains(files, "go.mod") {
		// Inside certfleet's module: the plugin is one of its packages.
		fmt.Fprintf(w, "next: go test ./%s/...   (the guide: plugins/sdk/AUTHORING.md)\n", filepath.ToSlash(filepath.Clean(opts.Dir)))
		return nil
	}
	fmt.Fprintf(w, "next: cd %s && go mod tidy && go test ./...   (the guide: plugins/sdk/AUTHORING.md)\n", opts.Dir)
	if opts.SDKDir == "" {
		fmt.Fprintln(w, "note: without --sdk-dir, go.mod requires github.com/certfleet/certfleet from the module proxy")
	}
	return nil
}
