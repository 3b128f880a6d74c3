package conformance_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// A plugin's conformance test: build the plugin binary once in TestMain (conformance.Main), then
// run the suite against a simulator. Stall and Served make the deadline and served checks run.
func ExampleRun() {
	var pluginPath string // set by conformance.Main(m, "example.com/acme/cmd/certfleet-plugin-acme", &pluginPath)
	testConformance := func(t *testing.T) {
		conformance.Run(t, conformance.Config{
			PluginPath:     pluginPath,
			Target:         sdk.Target{Name: "sim", Address: "https://127.0.0.1:8443"},
			Bindings:       []sdk.Binding{{Kind: "vip", Name: "www"}, {Kind: "vip", Name: "api"}},
			UnknownBinding: sdk.Binding{Kind: "vip", Name: "no-such-vip"},
			Unsupported:    []conformance.Feature{conformance.FeatureAuthentication},
		})
	}
	_ = testConformance
}

// Qualify runs the same suite without `go test` (certfleet plugins test does this) and returns
// a report.
func ExampleQualify() {
	report := conformance.Qualify(context.Background(), conformance.Config{
		PluginPath: "/usr/lib/certfleet/plugins/certfleet-plugin-acme",
		Target:     sdk.Target{Name: "lab", Address: "https://adc-lab.example.net"},
		Bindings:   []sdk.Binding{{Kind: "vip", Name: "certfleet-qualification"}},
	})
	for _, r := range report.Results {
		fmt.Println(r.Outcome, r.Check, r.Messages)
	}
}
