package f5bigip_test

import (
	"context"
	"crypto/x509"
	"testing"

	f5bigip "github.com/certfleet/certfleet/plugins/f5-bigip"
	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// TestConformance runs the suite in PCI mode (the default: each key has its own profile, which
// Bind attaches to virtual servers) and without it (profiles edited in place, also a named
// client-ssl profile).
func TestConformance(t *testing.T) {
	for _, mode := range []struct {
		name     string
		pci      bool
		bindings []sdk.Binding
	}{
		{"PCI", true, []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www"}, {Kind: f5bigip.KindVirtual, Name: "vs_api"}}},
		{"NoPCI", false, []sdk.Binding{
			{Kind: f5bigip.KindVirtual, Name: "vs_www"},
			{Kind: f5bigip.KindClientSSLProfile, Name: "api_clientssl", Options: sdk.Options{"virtuals": []any{"vs_api"}}},
		}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			sim := startSim(t, bigipsim.DefaultConfig())
			tgt := target(sim)
			tgt.Options["pci_mode"] = mode.pci
			bad := tgt
			bad.Credentials.Password = "not-the-password"
			conformance.Run(t, conformance.Config{
				PluginPath:     pluginPath,
				Target:         tgt,
				BadCredentials: &bad,
				Bindings:       mode.bindings,
				UnknownBinding: sdk.Binding{Kind: f5bigip.KindVirtual, Name: "no_such_virtual"},
				KeySpecs:       []sdk.KeySpec{{Type: sdk.KeyTypeECDSA, Bits: 256}, {Type: sdk.KeyTypeRSA, Bits: 2048}},
				Served: func(ctx context.Context, b sdk.Binding) (*x509.Certificate, error) {
					return served(ctx, sim, b.Name)
				},
			})
			if n := sim.ActiveTokens("certfleet"); n != 0 {
				t.Errorf("%d login tokens left on the device after the suite; every call must delete its own", n)
			}
		})
	}
}
