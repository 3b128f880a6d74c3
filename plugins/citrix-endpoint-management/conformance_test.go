package cem_test

import (
	"context"
	"crypto/x509"
	"testing"

	cem "github.com/certfleet/certfleet/plugins/citrix-endpoint-management"
	"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/cemsim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

// TestConformance runs the suite against both answers a server may give to a second certificate
// for one public key (unconfirmed, reference §3): refuse and replace.
func TestConformance(t *testing.T) {
	for _, mode := range []string{cemsim.DuplicateRefuse, cemsim.DuplicateReplace} {
		t.Run(mode, func(t *testing.T) {
			cfg := cemsim.DefaultConfig()
			cfg.DuplicateKey = mode
			sim := startSim(t, cfg)
			tgt := target(sim, cfg)
			bad := tgt
			bad.Credentials.Password = "not-the-password"
			conformance.Run(t, conformance.Config{
				PluginPath:     pluginPath,
				Target:         tgt,
				BadCredentials: &bad,
				Bindings:       []sdk.Binding{{Kind: cem.KindListener, Name: "default"}},
				UnknownBinding: sdk.Binding{Kind: cem.KindListener, Name: "no-such-listener"},
				KeySpecs:       []sdk.KeySpec{{Type: sdk.KeyTypeRSA, Bits: 2048}},
				Served: func(ctx context.Context, _ sdk.Binding) (*x509.Certificate, error) {
					chain, err := served(ctx, sim)
					if err != nil {
						return nil, err
					}
					return chain[0], nil
				},
			})
			if n := sim.ActiveSessions(); n != 0 {
				t.Errorf("%d sessions left open on the server; every call must log out", n)
			}
		})
	}
}
