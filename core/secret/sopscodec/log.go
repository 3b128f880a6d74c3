package sopscodec

import (
	"encoding/json"
	"io"
	"sync"

	"github.com/certfleet/certfleet/core/secret"
	"github.com/getsops/sops/v3/logging"
	"github.com/sirupsen/logrus"
)

// RouteLogs sends the sops library's own log messages (logrus) to w, one secret.SopsLogLine per
// line, which certfleet relays to its logger (levels, format, outputs, redaction), instead of
// sops's own format.
func RouteLogs(w io.Writer) {
	hook := &logHook{enc: json.NewEncoder(w)}
	for _, l := range logging.Loggers {
		l.SetOutput(io.Discard)
		l.SetLevel(logrus.DebugLevel) // the hook passes every message on; certfleet's logger filters
		l.ReplaceHooks(logrus.LevelHooks{})
		l.AddHook(hook)
	}
}

type logHook struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (*logHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *logHook) Fire(e *logrus.Entry) error {
	level := "debug"
	switch {
	case e.Level <= logrus.ErrorLevel:
		level = "error"
	case e.Level == logrus.WarnLevel:
		level = "warn"
	case e.Level == logrus.InfoLevel:
		level = "info"
	case e.Level == logrus.TraceLevel:
		level = "trace"
	}
	line := secret.SopsLogLine{Level: level, Message: e.Message}
	if len(e.Data) > 0 {
		line.Fields = make(map[string]any, len(e.Data))
		for k, v := range e.Data {
			if err, ok := v.(error); ok {
				v = err.Error() // an error value would encode as {}
			}
			line.Fields[k] = v
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.enc.Encode(line)
}
