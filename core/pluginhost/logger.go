package pluginhost

import (
	"strings"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/hashicorp/go-hclog"
)

// pluginLogger is the logger handed to go-plugin. The plugin's own log lines arrive through
// Named(binary name) and keep their levels, under "plugin.<name>"; go-plugin's note that a
// plugin exited normally is demoted to debug, so a cron run stays quiet. A crash is still logged
// as an error.
type pluginLogger struct{ hclog.Logger }

func (l pluginLogger) Info(msg string, args ...any) {
	if msg == "plugin process exited" {
		l.Logger.Debug(msg, args...)
		return
	}
	l.Logger.Info(msg, args...)
}

func (l pluginLogger) Named(name string) hclog.Logger {
	return l.Logger.Named(strings.TrimPrefix(name, sdk.BinaryPrefix))
}
