package citrixnitro_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"testing"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

var pluginPath string

func TestMain(m *testing.M) {
	conformance.Main(m, "github.com/certfleet/certfleet/plugins/citrix-nitro/cmd/certfleet-plugin-citrix-nitro", &pluginPath)
}

func startSim(t *testing.T, cfg nitrosim.Config) *nitrosim.Sim {
	t.Helper()
	sim, err := nitrosim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

func simTarget(sim *nitrosim.Sim, opts sdk.Options) sdk.Target {
	cfg := nitrosim.DefaultConfig()
	return sdk.Target{Name: "adc-sim", Address: sim.URL(), TLS: sdk.TLSConfig{CABundlePEM: sim.CACertPEM()},
		Credentials: sdk.Credentials{Username: cfg.Username, Password: cfg.Password}, Options: opts}
}

// served reads the leaf certificate a vserver's TLS listener presents (serverName for SNI).
func served(ctx context.Context, sim *nitrosim.Sim, vserver, serverName string) (*x509.Certificate, error) {
	addr := sim.ServedAddress(vserver)
	if addr == "" {
		return nil, fmt.Errorf("vserver %s has no TLS listener", vserver)
	}
	certs, err := conformance.ServedChain(ctx, addr, &tls.Config{ServerName: serverName})
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

func runConformance(t *testing.T, sim *nitrosim.Sim, opts sdk.Options, bindings []sdk.Binding) {
	target := simTarget(sim, opts)
	bad := target
	bad.Credentials.Password = "wrong-password"
	conformance.Run(t, conformance.Config{
		PluginPath:     pluginPath,
		Target:         target,
		BadCredentials: &bad,
		Bindings:       bindings,
		UnknownBinding: sdk.Binding{Kind: "lb-vserver", Name: "vs_no_such"},
		KeySpecs:       []sdk.KeySpec{{Type: sdk.KeyTypeECDSA, Bits: 256}, {Type: sdk.KeyTypeRSA, Bits: 2048}},
		Served: func(ctx context.Context, b sdk.Binding) (*x509.Certificate, error) {
			return served(ctx, sim, b.Name, "")
		},
	})
	if n := sim.Sessions(); n != 0 {
		t.Errorf("%d NITRO sessions left open; every call must log out", n)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	sim := startSim(t, nitrosim.DefaultConfig())
	runConformance(t, sim, nil, []sdk.Binding{{Kind: "lb-vserver", Name: "vs_www_443"}, {Kind: "gateway-vserver", Name: "gw_vpn_443"}})
}

// TestConformanceInPartition runs the suite in an admin partition of an appliance that takes
// the lenient side of every unconfirmed behaviour.
func TestConformanceInPartition(t *testing.T) {
	t.Parallel()
	cfg := nitrosim.DefaultConfig()
	cfg.DaysAsString, cfg.DefaultBindReplaces, cfg.AllowSNIDomainOverlap, cfg.AllowDuplicateOnUpdate = true, true, true, true
	cfg.OverwriteKeyFile = true
	sim := startSim(t, cfg)
	runConformance(t, sim, sdk.Options{"partition": "p_tenant1"}, []sdk.Binding{{Kind: "lb-vserver", Name: "vs_t1_443"}})
	if sim.Saves("p_tenant1") == 0 || sim.Saves("") != 0 {
		t.Errorf("saves: p_tenant1 %d, default %d; Commit must save the target's partition", sim.Saves("p_tenant1"), sim.Saves(""))
	}
}
