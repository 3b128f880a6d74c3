package paloaltopanos_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	paloaltopanos "github.com/certfleet/certfleet/plugins/paloalto-panos"
	"github.com/certfleet/certfleet/plugins/paloalto-panos/panossim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"github.com/certfleet/certfleet/plugins/sdk/conformance"
)

var pluginPath string

func TestMain(m *testing.M) {
	conformance.Main(m, "github.com/certfleet/certfleet/plugins/paloalto-panos/cmd/certfleet-plugin-paloalto-panos", &pluginPath)
}

// startSim starts a simulator with quick commits; mutate adjusts the default configuration.
func startSim(t *testing.T, mutate func(*panossim.Config)) *panossim.Sim {
	t.Helper()
	cfg := panossim.DefaultConfig()
	cfg.CommitDuration = 150 * time.Millisecond
	cfg.RSAPoolSize = -1
	if mutate != nil {
		mutate(&cfg)
	}
	sim, err := panossim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// targetFor is the simulator as a certfleet device, its management certificate verified.
func targetFor(sim *panossim.Sim, creds sdk.Credentials, opts sdk.Options) sdk.Target {
	o := sdk.Options{"commit_poll_interval": 0.05}
	for k, v := range opts {
		o[k] = v
	}
	return sdk.Target{
		Name: "fw1", Address: sim.URL(), TLS: sdk.TLSConfig{CABundlePEM: sim.CACertPEM()},
		Credentials: creds, Options: o,
	}
}

var passwordCreds = sdk.Credentials{Username: "certfleet", Password: "certfleet-sim-password"}

// servedBy reads the certificate a binding serves now off the simulator's TLS listener, that is
// from the running configuration.
func servedBy(sim *panossim.Sim) func(context.Context, sdk.Binding) (*x509.Certificate, error) {
	return func(ctx context.Context, b sdk.Binding) (*x509.Certificate, error) {
		var addr string
		var err error
		switch b.Kind {
		case paloaltopanos.KindProfile:
			if addr = sim.ServedAddress(b.Name); addr == "" {
				err = fmt.Errorf("profile %q is not served", b.Name)
			}
		case paloaltopanos.KindPortal:
			addr, err = sim.GlobalProtectAddress("portal", b.Name)
		case paloaltopanos.KindGateway:
			addr, err = sim.GlobalProtectAddress("gateway", b.Name)
		case paloaltopanos.KindDecryption:
			if addr = sim.DecryptionRuleAddress("vsys1", b.Name); addr == "" {
				err = fmt.Errorf("decryption rule %q is not served", b.Name)
			}
		default:
			err = fmt.Errorf("binding kind %q", b.Kind)
		}
		if err != nil {
			return nil, err
		}
		return dialServed(ctx, addr)
	}
}

func dialServed(ctx context.Context, addr string) (*x509.Certificate, error) {
	certs, err := conformance.ServedChain(ctx, addr, nil)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

func conformanceConfig(sim *panossim.Sim, tgt sdk.Target, bad sdk.Target) conformance.Config {
	return conformance.Config{
		PluginPath:     pluginPath,
		Target:         tgt,
		BadCredentials: &bad,
		Bindings: []sdk.Binding{
			{Kind: paloaltopanos.KindProfile, Name: "web-tls"},
			{Kind: paloaltopanos.KindPortal, Name: "gp-portal"},
			{Kind: paloaltopanos.KindDecryption, Name: "inbound-app"},
		},
		UnknownBinding: sdk.Binding{Kind: paloaltopanos.KindProfile, Name: "no-such-profile"},
		KeySpecs:       []sdk.KeySpec{{Type: sdk.KeyTypeECDSA, Bits: 256}, {Type: sdk.KeyTypeRSA, Bits: 2048}},
		Served:         servedBy(sim),
	}
}

// TestConformance: username/password through keygen, full commits (commit_scope: full),
// generate into shared.
func TestConformance(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *panossim.Config) { c.RSAPoolSize = 2 })
	tgt := targetFor(sim, passwordCreds, sdk.Options{"commit_scope": "full"})
	bad := tgt
	bad.Credentials.Password = "not-the-password"
	conformance.Run(t, conformanceConfig(sim, tgt, bad))
}

// TestConformanceAPIKeyVsysPartial: an API key, a device that puts generated entries in vsys1
// (pan-os-ansible #592), and partial commits by the admin the key belongs to (no commit_admin:
// the plugin asks show admins).
func TestConformanceAPIKeyVsysPartial(t *testing.T) {
	t.Parallel()
	sim := startSim(t, func(c *panossim.Config) { c.GenerateInto, c.RSAPoolSize = "vsys1", 2 })
	key, err := sim.IssueKey("certfleet")
	if err != nil {
		t.Fatal(err)
	}
	tgt := targetFor(sim, sdk.Credentials{APIKey: key}, nil)
	bad := tgt
	bad.Credentials.APIKey = "LUFRPT-not-a-key"
	conformance.Run(t, conformanceConfig(sim, tgt, bad))
	for _, c := range sim.Commits() {
		if !c.Partial || len(c.Admins) != 1 || c.Admins[0] != "certfleet" {
			t.Errorf("commit %d was not a partial commit by certfleet: %+v", c.JobID, c)
		}
	}
}

// dialChain returns the whole chain a listener serves.
func dialChain(t *testing.T, addr string) []*x509.Certificate {
	t.Helper()
	certs, err := conformance.ServedChain(context.Background(), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}
