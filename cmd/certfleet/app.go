package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/certfleet/certfleet/core/pluginhost"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"
)

const defaultConfigPath = "/etc/certfleet"

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:        "certfleet",
		Usage:       "keep TLS certificates alive on network appliances",
		Description: exitCodesHelp,
		Version:     version,
		Writer:      stdout,
		ErrWriter:   stderr,
		// Errors are printed once, by run, with the exit code they carry.
		ExitErrHandler: func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: defaultConfigPath, EnvVars: []string{"CERTFLEET_CONFIG"},
				Usage: "configuration file or directory of *.yaml files"},
			&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"CERTFLEET_LOG_LEVEL"}, Usage: "trace, debug, info, warn or error (default: info on a terminal, warn otherwise)"},
			&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: []string{"CERTFLEET_LOG_FORMAT"}, Usage: "text or json"},
			&cli.StringSliceFlag{Name: "plugin-dir", EnvVars: []string{"CERTFLEET_PLUGIN_DIR"},
				Usage: "directory searched for certfleet-plugin-* binaries before the configured ones and PATH (repeatable)"},
			&cli.StringFlag{Name: "credentials", EnvVars: []string{"CERTFLEET_CREDENTIALS"},
				Usage: "device credentials file keyed by host (plain or sops-encrypted), for devices whose configuration has none"},
			&cli.StringFlag{Name: "pins-file", EnvVars: []string{"CERTFLEET_PINS_FILE"},
				Usage: "file of pinned plugin checksums (default: plugins.lock.json beside the state database)"},
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
		},
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
	if exe, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		dirs = append(dirs, filepath.Dir(exe))
	}
	return append(dirs, "/usr/lib/certfleet/plugins")
}

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

// newPluginHost builds the plugin host from the global flags.
func newPluginHost(c *cli.Context, logger hclog.Logger, configuredDirs []string, pinsFile string) *pluginhost.Host {
	dirs := append(append(c.StringSlice("plugin-dir"), configuredDirs...), defaultPluginDirs()...)
	if f := c.String("pins-file"); f != "" {
		pinsFile = f
	}
	if pinsFile == "" {
		pinsFile = filepath.Join(defaultStateDir(), "plugins.lock.json")
	}
	return pluginhost.New(pluginhost.Options{Dirs: dirs, PinsFile: pinsFile, Logger: logger})
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
