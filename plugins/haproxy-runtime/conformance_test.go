package haproxyruntime_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/certfleet/certfleet/plugins/haproxy-runtime/haproxysim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

var pluginPath string

func TestMain(m *testing.M) {
	conformance.Main(m, "github.com/certfleet/certfleet/plugins/haproxy-runtime/cmd/certfleet-plugin-haproxy-runtime", &pluginPath)
}

const (
	listWWW = "/etc/haproxy/www.crtlist"
	listAPI = "/etc/haproxy/api.crtlist"
)

func startSim(t *testing.T, opts haproxysim.Options) *haproxysim.Sim {
	t.Helper()
	if opts.CrtLists == nil {
		opts.CrtLists = []string{listWWW, listAPI}
	}
	sim, err := haproxysim.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

// TestConformance runs the whole suite against the simulator, once per way HAProxy may print a
// dumped key (UNCONFIRMED: PKCS#8 or the traditional form). The Runtime API has no credentials,
// so the authentication checks are declared unsupported and skipped.
func TestConformance(t *testing.T) {
	for _, traditional := range []bool{false, true} {
		name := "pkcs8-key-dump"
		if traditional {
			name = "traditional-key-dump"
		}
		t.Run(name, func(t *testing.T) {
			sim := startSim(t, haproxysim.Options{TraditionalKeyPEM: traditional})
			conformance.Run(t, conformance.Config{
				PluginPath:     pluginPath,
				Target:         sim.Target(),
				Unsupported:    []conformance.Feature{conformance.FeatureAuthentication},
				Bindings:       []sdk.Binding{{Kind: "crt-list", Name: listWWW}, {Kind: "crt-list", Name: listAPI}},
				UnknownBinding: sdk.Binding{Kind: "crt-list", Name: "/etc/haproxy/no-such.crtlist"},
				KeySpecs:       []sdk.KeySpec{{Type: sdk.KeyTypeECDSA, Bits: 256}, {Type: sdk.KeyTypeRSA, Bits: 2048}},
				Served: func(ctx context.Context, b sdk.Binding) (*x509.Certificate, error) {
					chain, err := conformance.ServedChain(ctx, sim.FrontendAddr(b.Name), &tls.Config{ServerName: sim.NewestEntryName(b.Name)})
					if err != nil {
						return nil, err
					}
					return chain[0], nil
				},
				Stall: sim.Stall,
			})
		})
	}
}
