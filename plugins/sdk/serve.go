package sdk

import (
	"os"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	// Every plugin verifies device TLS where the host has no CA roots (a scratch container
	// image); a host's own roots still win.
	_ "golang.org/x/crypto/x509roots/fallback"
)

// Serve runs impl as a plugin process and returns when the host ends it. Logs written through
// Logger(ctx) or the returned hclog reach the host as structured JSON on stderr.
func Serve(impl Plugin) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         PluginSet(impl),
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          pluginLogger(),
	})
}

func pluginLogger() hclog.Logger {
	level := hclog.LevelFromString(os.Getenv("CERTFLEET_PLUGIN_LOG_LEVEL"))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: true,
	})
}
