package secret

import (
	"io"

	"github.com/getsops/sops/v3/logging"
	"github.com/hashicorp/go-hclog"
	"github.com/sirupsen/logrus"
)

// RouteSopsLogs sends the sops library's own log messages (logrus) to log, under "sops", so they
// take the process's levels, format, outputs and redaction instead of sops's own format on
// standard error.
func RouteSopsLogs(log hclog.Logger) {
	hook := sopsHook{log: log.Named("sops")}
	for _, l := range logging.Loggers {
		l.SetOutput(io.Discard)
		l.SetLevel(logrus.DebugLevel) // the hook hands each message to log, whose outputs filter
		l.ReplaceHooks(logrus.LevelHooks{})
		l.AddHook(hook)
	}
}

type sopsHook struct{ log hclog.Logger }

func (sopsHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h sopsHook) Fire(e *logrus.Entry) error {
	args := make([]any, 0, 2*len(e.Data))
	for k, v := range e.Data {
		args = append(args, k, v)
	}
	level := hclog.Debug
	switch {
	case e.Level <= logrus.ErrorLevel:
		level = hclog.Error
	case e.Level == logrus.WarnLevel:
		level = hclog.Warn
	case e.Level == logrus.InfoLevel:
		level = hclog.Info
	case e.Level == logrus.TraceLevel:
		level = hclog.Trace
	}
	h.log.Log(level, e.Message, args...)
	return nil
}
