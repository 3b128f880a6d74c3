package skeleton_test

import (
	"testing"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
	"github.com/certfleet/certfleet/plugins/sdk/template/skeleton/skeletonsim"
)

var pluginPath string

func TestMain(m *testing.M) {
	conformance.Main(m, "github.com/certfleet/certfleet/plugins/sdk/template/skeleton/cmd/certfleet-plugin-skeleton", &pluginPath)
}

// TestConformance runs the whole suite against the simulator. Add your device's own rules as
// further tests next to it, and run the same suite against a lab device with
// `certfleet plugins test`.
func TestConformance(t *testing.T) {
	sim := skeletonsim.Start(t, "www", "api")
	bad := sim.Target()
	bad.Credentials.Password = "wrong-password"
	conformance.Run(t, conformance.Config{
		PluginPath:     pluginPath,
		Target:         sim.Target(),
		BadCredentials: &bad,
		Bindings:       []sdk.Binding{{Kind: "service", Name: "www"}, {Kind: "service", Name: "api"}},
		UnknownBinding: sdk.Binding{Kind: "service", Name: "no-such-service"},
		KeySpecs:       []sdk.KeySpec{{Type: sdk.KeyTypeECDSA, Bits: 256}, {Type: sdk.KeyTypeRSA, Bits: 2048}},
		Served:         sim.Served,
		Stall:          sim.Stall,
	})
}
