package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/certfleet/certfleet/core/config"
	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// fleetConfig is a loaded configuration of certs certificates on pemdir devices, as certfleet-sim
// writes it: issuer options from defaults, one binding each, a links option on every device.
func fleetConfig(devices, certs int) *config.Config {
	cfg := &config.Config{
		Issuers:      map[string]*config.Issuer{"sim-ca": {Name: "sim-ca", Type: "scm", SCM: &config.SCM{API: "admin"}}},
		Devices:      map[string]*config.Device{},
		Certificates: map[string]*config.Certificate{},
	}
	options := map[string]any{"cert_type": "OV SSL"}
	per := certs / devices
	for d := 0; d < devices; d++ {
		dev := fmt.Sprintf("pemdir-%04d", d)
		links := make([]any, per)
		for c := range links {
			links[c] = fmt.Sprintf("site%02d", c+1)
		}
		cfg.Devices[dev] = &config.Device{Name: dev, Plugin: "pemdir", Address: "/srv/" + dev, Options: sdk.Options{"links": links}}
		for c := 1; c <= per; c++ {
			name := fmt.Sprintf("%s-site%02d", dev, c)
			cfg.Certificates[name] = &config.Certificate{
				Name: name, Device: dev, Issuer: "sim-ca", Enabled: true, IssuerOptions: options,
				Key:              sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256},
				SANs:             sdk.SANs{DNSNames: []string{fmt.Sprintf("site%02d.%s.example.test", c, dev)}},
				Bindings:         []sdk.Binding{{Kind: pemdir.BindingKind, Name: fmt.Sprintf("site%02d", c)}},
				BindingPositions: []config.Position{{File: "certfleet.yaml", Line: c}},
			}
		}
	}
	return cfg
}

// BenchmarkEngineSetup10k is what run does with a loaded configuration of 10,000 certificates
// before the engine starts: the checks against the plugins' capabilities and the engine's lists.
func BenchmarkEngineSetup10k(b *testing.B) {
	cfg := fleetConfig(1000, 10000)
	info, err := pemdir.New().Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	infos := map[string]pluginInfo{"pemdir": {info: info}}
	b.ReportAllocs()
	for b.Loop() {
		if err := checkConfigAgainstPlugins(cfg, infos); err != nil {
			b.Fatal(err)
		}
		if n := len(engineCertificates(cfg)); n != 10000 {
			b.Fatalf("%d certificates", n)
		}
		if n := len(disabledCertificates(cfg)); n != 0 {
			b.Fatalf("%d disabled", n)
		}
	}
}
