package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/certfleet/certfleet/core/bindir"
	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/pluginhost"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"
)

const defaultConfigPath = "/etc/certfleet"

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:        "certfleet",
		Usage:       "keep TLS certificates alive on network appliances",
		Description: exitCodesHelp,
		Version:     version,
		Writer:      stdout,
		ErrWriter:   stderr,
		// Errors are printed once, by run, with the exit code they carry.
		ExitErrHandler: func(*cli.Context, error) {},
		// For the bash and zsh scripts of `certfleet completion`.
		EnableBashCompletion: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: defaultConfigPath, EnvVars: []string{"CERTFLEET_CONFIG"},
				Usage: "configuration file or directory of *.yaml files"},
			&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"CERTFLEET_LOG_LEVEL"}, Usage: "trace, debug, info, warn or error (default: info on a terminal, warn otherwise)"},
			&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: []string{"CERTFLEET_LOG_FORMAT"}, Usage: "text or json"},
			&cli.StringSliceFlag{Name: "plugin-dir", EnvVars: []string{"CERTFLEET_PLUGIN_DIR"},
				Usage: "directory searched for certfleet-plugin-* binaries before the configured ones and PATH (repeatable)"},
			&cli.BoolFlag{Name: "plugin-search-path", EnvVars: []string{"CERTFLEET_PLUGIN_SEARCH_PATH"},
				Usage: "also look for plugins on $PATH, after every plugin directory (as plugins.search_path: true)"},
			&cli.StringFlag{Name: "credentials", EnvVars: []string{"CERTFLEET_CREDENTIALS"},
				Usage: "device credentials file keyed by host (plain or sops-encrypted), for devices whose configuration has none"},
			&cli.StringFlag{Name: "pins-file", EnvVars: []string{"CERTFLEET_PINS_FILE"},
				Usage: "file of pinned plugin checksums (default: plugins.lock.json beside the state database)"},
			siteFlag(),
			&cli.BoolFlag{Name: "no-config-cache",
				Usage: "parse and check the configuration files even when they did not change (also CERTFLEET_CONFIG_CACHE=off); validate always does"},
		},
		Before: func(c *cli.Context) error {
			if err := checkLogFlags(c); err != nil {
				return cli.Exit(err.Error(), 2)
			}
			return nil
		},
		Commands: []*cli.Command{
			versionCommand(),
			validateCommand(),
			planCommand(),
			runCommand(),
			statusCommand(),
			historyCommand(),
			daemonCommand(),
			revokeCommand(),
			verifyCommand(),
			retireCommand(),
			secretsCommand(),
			pluginsCommand(),
			migrateCommand(),
			inventoryCommand(),
			reportCommand(),
			completionCommand(),
			manCommand(),
			stateCommand(),
		},
	}
	refuseFlagsAfterArguments(app.Commands)
	return app
}

// isFlagOf says whether arg names one of cmd's flags (-q, --force, --target=FILE): an argument
// that merely starts with a dash, a certificate named "-x" say, is not refused.
func isFlagOf(cmd *cli.Command, arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	if !strings.HasPrefix(arg, "-") || name == "" {
		return false
	}
	for _, f := range append(cmd.Flags, cli.HelpFlag) {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// refuseFlagsAfterArguments makes every command refuse a flag written after its arguments.
// urfave/cli stops reading flags at the first argument, so `certfleet run www --force` would
// otherwise look for a certificate named "--force" (or ignore the flag) instead of forcing.
func refuseFlagsAfterArguments(cmds []*cli.Command) {
	for _, cmd := range cmds {
		refuseFlagsAfterArguments(cmd.Subcommands)
		action := cmd.Action
		if action == nil {
			continue
		}
		cmd.Action = func(c *cli.Context) error {
			for _, arg := range c.Args().Slice() {
				if isFlagOf(c.Command, arg) {
					return cli.Exit(fmt.Sprintf("%q comes after the arguments, where it is not read as a flag: put every flag before them (%s [flags] %s)",
						arg, c.Command.HelpName, strings.Join(c.Args().Slice()[:1], " ")), 2)
				}
			}
			return action(c)
		}
	}
}

func checkLogFlags(c *cli.Context) error {
	if hclog.LevelFromString(c.String("log-level")) == hclog.NoLevel {
		return fmt.Errorf("--log-level %q: use trace, debug, info, warn or error", c.String("log-level"))
	}
	if f := c.String("log-format"); f != "text" && f != "json" {
		return fmt.Errorf("--log-format %q: use text or json", f)
	}
	return nil
}

// logLevel is --log-level; left unset, it is info on a terminal and warn otherwise, so that a
// cron run prints only what needs attention.
func logLevel(c *cli.Context) hclog.Level {
	if !c.IsSet("log-level") && !isTerminal(c.App.ErrWriter) {
		return hclog.Warn
	}
	return hclog.LevelFromString(c.String("log-level"))
}

// newLogger builds the host logger from the global flags; logs go to stderr so stdout stays for output.
func newLogger(c *cli.Context) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "certfleet",
		Level:      logLevel(c),
		JSONFormat: c.String("log-format") == "json",
		Output:     c.App.ErrWriter,
		Color:      hclog.ColorOff,
	})
}

// defaultPluginDirs are searched after --plugin-dir: beside the certfleet binary (how the
// per-vendor bundles install), then the system plugin directory.
func defaultPluginDirs() []string {
	var dirs []string
	if dir, ok := bindir.Dir(); ok {
		dirs = append(dirs, dir)
	}
	return append(dirs, systemPluginDir)
}

// systemPluginDir is where the packages install plugins.
const systemPluginDir = "/usr/lib/certfleet/plugins"

// defaultStateDir is where state lives when the configuration does not say: the system location
// for root (a daemon or cron job), the user's state directory otherwise.
func defaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/certfleet"
	}
	if dir := os.Getenv("XDG_STATE_HOME"); dir != "" {
		return filepath.Join(dir, "certfleet")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "certfleet")
	}
	return "certfleet-state"
}

// pluginPlaces is where plugins are looked for and their pins kept. Every command (run, plan,
// plugins ...) takes it from the same places: flags and environment, then the configuration, then
// the defaults.
type pluginPlaces struct {
	Dirs       []string
	PinsFile   string
	SearchPath bool
}

func pluginPlacesFor(c *cli.Context, cfg *config.Config) pluginPlaces {
	p := pluginPlaces{Dirs: c.StringSlice("plugin-dir"), SearchPath: c.Bool("plugin-search-path")}
	if cfg != nil {
		p.Dirs = append(p.Dirs, cfg.Plugins.Dirs...)
		p.PinsFile = cfg.Plugins.PinsFile
		p.SearchPath = p.SearchPath || cfg.Plugins.SearchPath
	}
	p.Dirs = append(p.Dirs, defaultPluginDirs()...)
	if f := c.String("pins-file"); f != "" {
		p.PinsFile = f
	}
	if p.PinsFile == "" {
		p.PinsFile = filepath.Join(filepath.Dir(statePathOf(cfg)), "plugins.lock.json")
	}
	return p
}

// statePathOf is the state database's path: the configured one, else the default.
func statePathOf(cfg *config.Config) string {
	if cfg != nil && cfg.State.Path != "" {
		return cfg.State.Path
	}
	return filepath.Join(defaultStateDir(), "state.db")
}

// pinCommand is the command a user runs to re-pin a plugin, with the --config this run was given.
func pinCommand(c *cli.Context) string {
	if cfgPath := c.String("config"); cfgPath != defaultConfigPath && os.Getenv("CERTFLEET_CONFIG") == "" {
		return "certfleet --config " + cfgPath + " plugins pin"
	}
	return "certfleet plugins pin"
}

// newPluginHost builds the plugin host from the flags and the configuration (nil: none). With
// lookOnly, starting a plugin never pins it.
func newPluginHost(c *cli.Context, logger hclog.Logger, cfg *config.Config, lookOnly bool) *pluginhost.Host {
	p := pluginPlacesFor(c, cfg)
	return pluginhost.New(pluginhost.Options{Dirs: p.Dirs, SkipPATH: !p.SearchPath, PinsFile: p.PinsFile,
		NoPinOnFirstUse: lookOnly, PinCommand: pinCommand(c), Logger: logger})
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of certfleet and of the plugin contract",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "certfleet %s (contract v%d.%d, %s, %s/%s)\n", version, sdk.ProtocolVersion, sdk.ContractMinorVersion,
				runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

func formatKeySpecs(specs []sdk.KeySpec) string {
	parts := make([]string, 0, len(specs))
	for _, k := range specs {
		parts = append(parts, k.String())
	}
	return strings.Join(parts, ", ")
}
