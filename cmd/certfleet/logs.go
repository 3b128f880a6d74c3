package main

import (
	"fmt"

	"github.com/certfleet/certfleet/core/config"
	"github.com/certfleet/certfleet/core/logging"
	"github.com/certfleet/certfleet/core/secret"
	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"
)

// newProcessLogging builds the process logger from the global flags. It keeps the detail of what
// happens before the configuration is read, for the log file the configuration may name; sops's
// own messages go through it too.
func newProcessLogging(c *cli.Context, r *secret.Redactor) *logging.Logging {
	l := logging.New(logging.Options{Output: c.App.ErrWriter, Level: terminalLevel(c, ""), JSON: c.String("log-format") == "json", Redactor: r})
	secret.RouteSopsLogs(l.Logger())
	return l
}

// applyLoggingConfig applies the configuration's logging section: its level and format on the
// terminal where no flag (or environment variable) says otherwise, and its log file.
func applyLoggingConfig(c *cli.Context, l *logging.Logging, lc config.Logging) error {
	level, json := terminalLevel(c, lc.Level), c.String("log-format") == "json"
	if !c.IsSet("log-format") && lc.Format != "" {
		json = lc.Format == "json"
	}
	l.SetTerminal(level, json)
	if lc.File.Path == "" {
		l.Discard()
		return l.CloseFile()
	}
	f := lc.File
	if err := l.OpenFile(logging.FileOptions{Path: f.Path, Level: f.Level, Format: f.Format, MaxSizeMB: f.MaxSizeMB,
		MaxBackups: f.MaxBackups, MaxAgeDays: f.MaxAgeDays, Compress: f.Compress, Daily: f.Daily}); err != nil {
		return fmt.Errorf("logging.file: %w", err)
	}
	return nil
}

// terminalLevel is the terminal's log level: --log-level when given; otherwise the configured
// level, or info on a terminal and warn off one. A quiet run (-q) shows only errors unless
// --log-level says otherwise: what failed is in its one paragraph, the rest in the log file.
func terminalLevel(c *cli.Context, configured string) hclog.Level {
	if c.IsSet("log-level") {
		return hclog.LevelFromString(c.String("log-level"))
	}
	level := logLevel(c)
	if configured != "" {
		level = hclog.LevelFromString(configured)
	}
	if c.Bool("quiet") && level < hclog.Error {
		level = hclog.Error
	}
	return level
}
