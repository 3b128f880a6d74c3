package conformance

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
)

// LogBuffer collects what a plugin process writes to stderr; the plugin's goroutines and the test
// read and write it at once.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Launched is a plugin process started by Launch.
type Launched struct {
	Plugin sdk.Plugin
	// Stderr holds everything the process wrote to stderr, its logs included: tests search it
	// for secrets that must never be logged.
	Stderr *LogBuffer
	PID    int
}

// Launch starts the plugin binary at path as certfleet does, with CERTFLEET_PLUGIN_LOG_LEVEL set
// to logLevel, and kills it when the test ends.
func Launch(t testing.TB, path, logLevel string) Launched {
	t.Helper()
	stderr := &LogBuffer{}
	cfg := sdk.ClientConfig(path, nil, hclog.New(&hclog.LoggerOptions{Output: stderr, Level: hclog.Trace, JSONFormat: true}))
	cfg.Cmd = exec.Command(path)
	cfg.Cmd.Env = append(os.Environ(), "CERTFLEET_PLUGIN_LOG_LEVEL="+logLevel)
	cfg.Stderr = stderr
	client := plugin.NewClient(cfg)
	t.Cleanup(client.Kill)
	p, err := sdk.Dispense(client)
	if err != nil {
		t.Fatalf("launch plugin %s: %v", path, err)
	}
	return Launched{Plugin: p, Stderr: stderr, PID: client.ReattachConfig().Pid}
}

// ServedChain connects to the TLS server at addr with cfg (nil for defaults; set ServerName for
// SNI, or cipher suites to act as a particular client) and returns the chain it presents. It
// does not verify the chain: tests read what a device serves and check it themselves.
func ServedChain(ctx context.Context, addr string, cfg *tls.Config) ([]*x509.Certificate, error) {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	cfg.InsecureSkipVerify = true //nolint:gosec // reads what is served; the caller checks it
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s served no certificate", addr)
	}
	return certs, nil
}
