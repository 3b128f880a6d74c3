package secret

import (
	"bytes"
	"strings"
	"testing"

	"github.com/getsops/sops/v3/logging"
	"github.com/hashicorp/go-hclog"
)

func TestSopsLogsGoThroughTheProcessLogger(t *testing.T) {
	var out bytes.Buffer
	RouteSopsLogs(hclog.New(&hclog.LoggerOptions{Name: "certfleet", Output: &out, Level: hclog.Debug, JSONFormat: true}))
	if len(logging.Loggers) == 0 {
		t.Fatal("sops registered no logger")
	}
	for name, l := range logging.Loggers {
		l.WithField("file", "secrets.yaml").Warn("comment could not be decrypted")
		if !strings.Contains(out.String(), `"@module":"certfleet.sops"`) || !strings.Contains(out.String(), `"file":"secrets.yaml"`) {
			t.Fatalf("sops logger %s: %s", name, out.String())
		}
		break
	}
	if strings.Contains(out.String(), "level=warning") {
		t.Error("sops's own format still reaches the output")
	}
}
