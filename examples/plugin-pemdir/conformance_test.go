package pemdir_test

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
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
	})
}
