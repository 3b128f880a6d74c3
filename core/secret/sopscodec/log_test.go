package sopscodec

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/core/secret"
	"github.com/getsops/sops/v3/logging"
)

// TestSopsLogsBecomeLogLines: every sops logger writes secret.SopsLogLine values, which certfleet
// relays, and nothing in sops's own format.
func TestSopsLogsBecomeLogLines(t *testing.T) {
	var out bytes.Buffer
	RouteLogs(&out)
	if len(logging.Loggers) == 0 {
		t.Fatal("sops registered no logger")
	}
	for name, l := range logging.Loggers {
		out.Reset()
		l.WithField("file", "secrets.yaml").Warn("comment could not be decrypted")
		var line secret.SopsLogLine
		if err := json.Unmarshal(out.Bytes(), &line); err != nil {
			t.Fatalf("sops logger %s wrote %q: %v", name, out.String(), err)
		}
		if line.Level != "warn" || line.Message != "comment could not be decrypted" || line.Fields["file"] != "secrets.yaml" {
			t.Fatalf("sops logger %s: %+v", name, line)
		}
		if strings.Contains(out.String(), "level=warning") {
			t.Error("sops's own format still reaches the output")
		}
	}
}
