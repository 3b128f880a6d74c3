package pemdir_test

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

var pluginPath string

func TestMain(m *testing.M) {
	conformance.Main(m, "github.com/certfleet/certfleet/examples/plugin-pemdir/cmd/certfleet-plugin-pemdir", &pluginPath)
}

// servedFrom reads what a server configured with live/<name>/fullchain.pem would load.
func servedFrom(dir string) func(context.Context, sdk.Binding) (*x509.Certificate, error) {
	return func(_ context.Context, b sdk.Binding) (*x509.Certificate, error) {
		data, err := os.ReadFile(filepath.Join(dir, "live", b.Name, "fullchain.pem"))
		if err != nil {
			return nil, err
		}
		return sdk.ParseCertificatePEM(string(data))
	}
}

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	conformance.Run(t, conformance.Config{
		PluginPath: pluginPath,
		Target: sdk.Target{Name: "pemdir-test", Address: dir, Options: sdk.Options{
			"links": []any{"www", "api"},
		}},
		Bindings:       []sdk.Binding{{Kind: "live-link", Name: "www"}, {Kind: "live-link", Name: "api"}},
		UnknownBinding: sdk.Binding{Kind: "live-link", Name: "no-such-link"},
		KeySpecs:       []sdk.KeySpec{{Type: sdk.KeyTypeRSA, Bits: 2048}, {Type: sdk.KeyTypeECDSA, Bits: 256}, {Type: sdk.KeyTypeECDSA, Bits: 384}},
		Unsupported:    []conformance.Feature{conformance.FeatureAuthentication},
		Served:         servedFrom(dir),
		Stall:          holdLock(dir),
	})
}

// holdLock stalls the directory as another tool would: it holds the lock every call takes.
func holdLock(dir string) func(context.Context) (func(), error) {
	return func(context.Context) (func(), error) {
		f, err := os.OpenFile(filepath.Join(dir, ".certfleet.lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, err
		}
		return func() { f.Close() }, nil
	}
}
