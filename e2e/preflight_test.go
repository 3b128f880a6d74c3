package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/core/engine"
	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/paloalto-panos/panossim"
)

// vendorDevice is one vendor simulator, running, as a device "dev1" of a configuration.
type vendorDevice struct {
	// device is the YAML of the device entry; env the secrets it references.
	device string
	env    []string
	// binding is a binding that exists on the simulator, servedAt its TLS listener; missing
	// names a target the simulator does not have.
	binding, missing, missingName string
	servedAt                      string
	// pluginReportsEndpoint: the plugin's CheckBindings says where the binding is served, so the
	// configuration needs no verify address.
	pluginReportsEndpoint bool
	faults                interface {
		ServeLeafOnly(bool)
		FreezeServed(bool)
	}
}

func writeBundle(t *testing.T, pem string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mgmt-ca.pem")
	if err := os.WriteFile(path, []byte(pem), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startVendor(t *testing.T, vendor string) vendorDevice {
	t.Helper()
	switch vendor {
	case "citrix-nitro":
		cfg := nitrosim.DefaultConfig()
		sim, err := nitrosim.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sim.Close)
		return vendorDevice{
			device: fmt.Sprintf(`  dev1:
    plugin: citrix-nitro
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: %s, password: "${env:E2E_DEV_PASSWORD}"}`, sim.URL(), writeBundle(t, sim.CACertPEM()), cfg.Username),
			env:     []string{"E2E_DEV_PASSWORD=" + cfg.Password},
			binding: "{kind: lb-vserver, name: vs_www_443}", missing: "{kind: lb-vserver, name: vs_shop_443}", missingName: "vs_shop_443",
			servedAt: sim.ServedAddress("vs_www_443"), faults: sim,
		}
	case "paloalto-panos":
		sim, err := panossim.New(panossim.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sim.Close() })
		return vendorDevice{
			device: fmt.Sprintf(`  dev1:
    plugin: paloalto-panos
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: certfleet, password: "${env:E2E_DEV_PASSWORD}"}
    options: {commit_admin: certfleet, commit_poll_interval: 0.2}`, sim.URL(), writeBundle(t, sim.CACertPEM())),
			env:     []string{"E2E_DEV_PASSWORD=certfleet-sim-password"},
			binding: "{kind: ssl-tls-service-profile, name: web-tls}", missing: "{kind: ssl-tls-service-profile, name: shop-tls}", missingName: "shop-tls",
			servedAt: sim.ServedAddress("web-tls"), faults: sim,
		}
	case "f5-bigip":
		sim, err := bigipsim.New(bigipsim.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sim.Close() })
		return vendorDevice{
			device: fmt.Sprintf(`  dev1:
    plugin: f5-bigip
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: certfleet, password: "${env:E2E_DEV_PASSWORD}"}
    options: {pci_mode: false}`, sim.URL(), writeBundle(t, sim.CACertPEM())),
			env:     []string{"E2E_DEV_PASSWORD=certfleet-sim-password"},
			binding: "{kind: virtual, name: vs_www}", missing: "{kind: virtual, name: vs_shop}", missingName: "vs_shop",
			servedAt: sim.ServedAddress("vs_www"), pluginReportsEndpoint: true, faults: sim,
		}
	}
	t.Fatalf("no simulator for %s", vendor)
	return vendorDevice{}
}

var vendors = []string{"citrix-nitro", "paloalto-panos", "f5-bigip"}

// TestPreflightMissingBindingTargetPlacesNoOrder: a certificate bound to a place the device does
// not have is blocked by the pre-flight, in plan and in run, with the missing target named, and
// the CA receives no order at all.
func TestPreflightMissingBindingTargetPlacesNoOrder(t *testing.T) {
	for _, vendor := range vendors {
		t.Run(vendor, func(t *testing.T) {
			v := startVendor(t, vendor)
			f, pebble := acmeFleetWith(t, fleetSpec{Env: v.env, ExtraDevices: v.device,
				ExtraCertificates: fmt.Sprintf(`  shop:
    device: dev1
    subject: {locality: Leeds, state: West Yorkshire}
    sans: {dns: [shop.example.com]}
    bindings: [%s, %s]`, v.binding, v.missing)})
			res := f.certfleet(nil, "plan")
			if !strings.Contains(res.stdout, "blocked") || !strings.Contains(res.stdout, v.missingName) {
				t.Fatalf("plan does not show the certificate blocked on %s:\n%s", v.missingName, res.stdout)
			}
			report, res := f.run(nil)
			if res.code != 1 || outcomes(report)["shop"] != state.OutcomeFailed {
				t.Fatalf("run: exit %d, %+v", res.code, report.Results)
			}
			if msg := errorOf(report, "shop"); !strings.Contains(msg, v.missingName) || !strings.Contains(msg, "pre-flight") {
				t.Fatalf("the run's error does not name the missing target %s: %q", v.missingName, msg)
			}
			if n := pebble.Orders(); n != 0 {
				t.Fatalf("the CA received %d orders for a certificate that cannot be installed", n)
			}
		})
	}
}

// TestPreflightPemdirMissingLink: the same for the example plugin: a live link the device does not
// declare.
func TestPreflightPemdirMissingLink(t *testing.T) {
	f, pebble := acmeFleetWith(t, fleetSpec{Devices: map[string][]string{"web1": {"www"}},
		ExtraCertificates: `  shop:
    device: web1
    subject: {locality: Leeds, state: West Yorkshire}
    sans: {dns: [shop.example.com]}
    bindings: [{kind: live-link, name: shop}]`})
	report, res := f.run(nil)
	if res.code != 1 || outcomes(report)["shop"] != state.OutcomeFailed || outcomes(report)["www"] != state.OutcomeDeployed {
		t.Fatalf("run: exit %d, %+v", res.code, report.Results)
	}
	if msg := errorOf(report, "shop"); !strings.Contains(msg, `"shop"`) {
		t.Fatalf("the error does not name the missing link: %q", msg)
	}
	if n := pebble.Orders(); n != 1 {
		t.Fatalf("%d orders; want 1 (www only)", n)
	}
}

func (f *fleet) status() []engine.StatusRow {
	f.t.Helper()
	res := f.certfleet(nil, "status", "--output", "json")
	var rows []engine.StatusRow
	if err := json.Unmarshal([]byte(res.stdout), &rows); err != nil {
		f.t.Fatalf("status output: %v\n%s", err, res.stdout)
	}
	return rows
}

func statusOf(rows []engine.StatusRow, name string) engine.StatusRow {
	for _, r := range rows {
		if r.Certificate == name {
			return r
		}
	}
	return engine.StatusRow{}
}

// TestServedCertificateCheck: after each commit the core reads what the device serves over TLS. A
// correct deployment passes and status shows it; a device that serves the leaf without its
// intermediates, or keeps serving the previous certificate, fails the run with a clear error;
// `certfleet verify` runs the same check alone.
func TestServedCertificateCheck(t *testing.T) {
	for _, vendor := range vendors {
		t.Run(vendor, func(t *testing.T) {
			v := startVendor(t, vendor)
			verify := ""
			if !v.pluginReportsEndpoint {
				verify = fmt.Sprintf("\n    verify: {address: %q, server_name: shop.example.com}", v.servedAt)
			}
			f, _ := acmeFleetWith(t, fleetSpec{Env: v.env, ExtraDevices: v.device,
				ExtraCertificates: fmt.Sprintf(`  shop:
    device: dev1
    subject: {locality: Leeds, state: West Yorkshire}
    sans: {dns: [shop.example.com]}
    bindings: [%s]%s`, v.binding, verify)})

			report, res := f.run(nil)
			if res.code != 0 || outcomes(report)["shop"] != state.OutcomeDeployed {
				t.Fatalf("enroll: exit %d, %+v", res.code, report.Results)
			}
			if s := statusOf(f.status(), "shop").Served; s == nil || !s.OK || !strings.Contains(strings.Join(s.Endpoints, " "), v.servedAt) {
				t.Fatalf("status after a correct deployment: served check %+v, want OK at %s", s, v.servedAt)
			}

			v.faults.ServeLeafOnly(true)
			report, res = f.run(nil, "--force")
			if res.code != 1 || outcomes(report)["shop"] != state.OutcomeFailed {
				t.Fatalf("renewal served without intermediates: exit %d, %+v", res.code, report.Results)
			}
			if msg := errorOf(report, "shop"); !strings.Contains(msg, "served certificate check failed") || !strings.Contains(msg, "intermediate") {
				t.Fatalf("leaf without intermediates: error %q", msg)
			}
			res = f.certfleet(nil, "verify", "shop")
			if res.code != 1 || !strings.Contains(res.stdout, "FAILED") {
				t.Fatalf("verify while the leaf is served alone: exit %d\n%s", res.code, res.stdout)
			}
			v.faults.ServeLeafOnly(false)
			res = f.certfleet(nil, "verify")
			if res.code != 0 || !strings.Contains(res.stdout, "ok") {
				t.Fatalf("verify with the chain served: exit %d\n%s", res.code, res.stdout)
			}

			if _, err := served(v.servedAt, "shop.example.com"); err != nil {
				t.Fatal(err)
			}
			v.faults.FreezeServed(true)
			report, res = f.run(nil, "--force")
			v.faults.FreezeServed(false)
			if res.code != 1 || outcomes(report)["shop"] != state.OutcomeFailed {
				t.Fatalf("renewal whose certificate is not served: exit %d, %+v", res.code, report.Results)
			}
			if msg := errorOf(report, "shop"); !strings.Contains(msg, "stale") || !strings.Contains(msg, "not the deployed serial") {
				t.Fatalf("stale certificate: error %q", msg)
			}
			if s := statusOf(f.status(), "shop").Served; s == nil || s.OK {
				t.Fatalf("status after the stale check: %+v, want a failed check", s)
			}
		})
	}
}

// TestServedCheckFailureRollsBack: with on_verify_failure: rollback, a renewal whose served chain
// is wrong is undone (the previous certificate is served again) and the next run binds the
// already issued certificate again, without a new order.
func TestServedCheckFailureRollsBack(t *testing.T) {
	v := startVendor(t, "citrix-nitro")
	f, pebble := acmeFleetWith(t, fleetSpec{Env: v.env, ExtraDevices: v.device,
		ExtraCertificates: fmt.Sprintf(`  shop:
    device: dev1
    subject: {locality: Leeds, state: West Yorkshire}
    sans: {dns: [shop.example.com]}
    bindings: [%s]
    verify: {address: %q}
    on_verify_failure: rollback`, v.binding, v.servedAt)})
	servedLeaf := func() string {
		t.Helper()
		chain, err := served(v.servedAt, "shop.example.com")
		if err != nil {
			t.Fatal(err)
		}
		return chain[0].SerialNumber.String()
	}
	if report, res := f.run(nil); res.code != 0 || outcomes(report)["shop"] != state.OutcomeDeployed {
		t.Fatalf("enroll: exit %d, %+v", res.code, report.Results)
	}
	first := servedLeaf()

	v.faults.ServeLeafOnly(true)
	report, res := f.run(nil, "--force")
	v.faults.ServeLeafOnly(false)
	if res.code != 1 || !strings.Contains(errorOf(report, "shop"), "previous bindings were restored") {
		t.Fatalf("renewal with a failed served check: exit %d, %q", res.code, errorOf(report, "shop"))
	}
	if got := servedLeaf(); got != first {
		t.Fatalf("after the rollback the vserver serves serial %s, want the previous %s", got, first)
	}
	orders := pebble.Orders()
	report, res = f.run(nil)
	if res.code != 0 || outcomes(report)["shop"] != state.OutcomeDeployed {
		t.Fatalf("run after the rollback: exit %d, %+v", res.code, report.Results)
	}
	if got := servedLeaf(); got == first {
		t.Fatal("the renewed certificate is not served after the next run")
	}
	if pebble.Orders() != orders {
		t.Fatalf("the next run placed %d new order(s); it should bind the certificate already issued", pebble.Orders()-orders)
	}
}
