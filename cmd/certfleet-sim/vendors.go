package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/cemsim"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/haproxy-runtime/haproxysim"
	"github.com/certfleet/certfleet/plugins/paloalto-panos/panossim"
)

func startVendor(w *world, vendor string, o options) error {
	switch vendor {
	case "pemdir":
		return startPemdir(w, o)
	case "citrix-nitro":
		return startNitro(w, o)
	case "f5-bigip":
		return startBIGIP(w, o)
	case "paloalto-panos":
		return startPANOS(w, o)
	case "citrix-endpoint-management":
		return startCEM(w, o)
	case "haproxy-runtime":
		return startHAProxy(w, o)
	}
	return fmt.Errorf("unknown vendor %q", vendor)
}

// certificate is the YAML of one certificate entry.
func certificate(name, device, host string, bindings ...string) string {
	return fmt.Sprintf("  %s:\n    device: %s\n    sans: {dns: [%s]}\n    bindings: [%s]", name, device, host, strings.Join(bindings, ", "))
}

// withVerify adds where the certificate is served, for the core's served certificate check on a
// device whose plugin does not report it.
func withVerify(cert, address string) string {
	return cert + fmt.Sprintf("\n    verify: {address: %q}", address)
}

// startPemdir makes --devices directories, each with --certs-per-device live links.
func startPemdir(w *world, o options) error {
	for d := 1; d <= o.devices; d++ {
		name := fmt.Sprintf("pemdir-%02d", d)
		dir := filepath.Join(w.out, "devices", name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		var links []string
		for c := 1; c <= o.certsPerDevice; c++ {
			link := fmt.Sprintf("site%02d", c)
			links = append(links, link)
			w.certs = append(w.certs, certificate(name+"-"+link, name, fmt.Sprintf("%s.%s.example.test", link, name),
				fmt.Sprintf("{kind: live-link, name: %s}", link)))
		}
		opts := fmt.Sprintf("links: [%s]", strings.Join(links, ", "))
		if o.pemdirAccessLog != "" {
			opts += ", access_log: " + o.pemdirAccessLog
		}
		if o.latency > 0 {
			// A directory has no API to slow down: the plugin waits call_delay in every call.
			opts += fmt.Sprintf(", call_delay: %s", o.latency)
		}
		w.devices = append(w.devices, fmt.Sprintf("  %s:\n    plugin: pemdir\n    address: %s\n    options: {%s}", name, dir, opts))
		w.info.Devices = append(w.info.Devices, deviceInfo{Name: name, Plugin: "pemdir", Address: dir})
	}
	return nil
}

// startNitro starts a simulated Citrix ADC with an LB and a Gateway vserver to bind.
func startNitro(w *world, o options) error {
	cfg := nitrosim.DefaultConfig()
	sim, err := nitrosim.New(cfg)
	if err != nil {
		return err
	}
	bundle, err := w.startAppliance(sim, sim.Close, o.latency, "ca/citrix-adc-tls.pem")
	if err != nil {
		return err
	}
	w.env["CERTFLEET_SIM_ADC_PASSWORD"] = cfg.Password
	w.devices = append(w.devices, fmt.Sprintf("  adc1:\n    plugin: citrix-nitro\n    address: %s\n    tls: {ca_bundle: %s}\n    credentials: {username: %s, password: \"${env:CERTFLEET_SIM_ADC_PASSWORD}\"}",
		sim.URL(), bundle, cfg.Username))
	w.certs = append(w.certs,
		withVerify(certificate("adc-www", "adc1", "www.adc1.example.test", "{kind: lb-vserver, name: vs_www_443}"), sim.ServedAddress("vs_www_443")),
		withVerify(certificate("adc-vpn", "adc1", "vpn.adc1.example.test", "{kind: gateway-vserver, name: gw_vpn_443}"), sim.ServedAddress("gw_vpn_443")))
	w.info.Devices = append(w.info.Devices, deviceInfo{Name: "adc1", Plugin: "citrix-nitro", Address: sim.URL(), Served: map[string]string{
		"lb-vserver/vs_www_443": sim.ServedAddress("vs_www_443"), "gateway-vserver/gw_vpn_443": sim.ServedAddress("gw_vpn_443"),
	}})
	return nil
}

// startBIGIP starts a simulated BIG-IP in PCI mode: keys made on the box under random passphrases
// that only the device keeps (in each key's client-ssl profile).
func startBIGIP(w *world, o options) error {
	sim, err := bigipsim.New(bigipsim.DefaultConfig())
	if err != nil {
		return err
	}
	bundle, err := w.startAppliance(sim, func() { _ = sim.Close() }, o.latency, "ca/bigip-tls.pem")
	if err != nil {
		return err
	}
	w.env["CERTFLEET_SIM_BIGIP_PASSWORD"] = "certfleet-sim-password"
	w.devices = append(w.devices, fmt.Sprintf(`  bigip1:
    plugin: f5-bigip
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: certfleet, password: "${env:CERTFLEET_SIM_BIGIP_PASSWORD}"}
    options: {pci_mode: true, sync_device_group: dg_failover}`, sim.URL(), bundle))
	w.certs = append(w.certs, certificate("bigip-shop", "bigip1", "shop.bigip1.example.test",
		"{kind: virtual, name: vs_www}", "{kind: virtual, name: vs_api}"))
	w.info.Devices = append(w.info.Devices, deviceInfo{Name: "bigip1", Plugin: "f5-bigip", Address: sim.URL(), Served: map[string]string{
		"virtual/vs_www": sim.ServedAddress("vs_www"), "virtual/vs_api": sim.ServedAddress("vs_api"),
	}})
	return nil
}

// startPANOS starts a simulated firewall with an SSL/TLS service profile and a GlobalProtect
// portal to bind; its changes go live only when committed.
func startPANOS(w *world, o options) error {
	sim, err := panossim.New(panossim.DefaultConfig())
	if err != nil {
		return err
	}
	bundle, err := w.startAppliance(sim, func() { _ = sim.Close() }, o.latency, "ca/panos-tls.pem")
	if err != nil {
		return err
	}
	portal, err := sim.GlobalProtectAddress("portal", "gp-portal")
	if err != nil {
		return err
	}
	w.env["CERTFLEET_SIM_PANOS_PASSWORD"] = "certfleet-sim-password"
	w.devices = append(w.devices, fmt.Sprintf(`  fw1:
    plugin: paloalto-panos
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: certfleet, password: "${env:CERTFLEET_SIM_PANOS_PASSWORD}"}
    options: {commit_admin: certfleet, commit_poll_interval: 0.2}`, sim.URL(), bundle))
	w.certs = append(w.certs,
		withVerify(certificate("fw-web", "fw1", "web.fw1.example.test", "{kind: ssl-tls-service-profile, name: web-tls}"), sim.ServedAddress("web-tls")),
		withVerify(certificate("fw-portal", "fw1", "portal.fw1.example.test", "{kind: globalprotect-portal, name: gp-portal}"), portal))
	w.info.Devices = append(w.info.Devices, deviceInfo{Name: "fw1", Plugin: "paloalto-panos", Address: sim.URL(), Served: map[string]string{
		"ssl-tls-service-profile/web-tls": sim.ServedAddress("web-tls"), "globalprotect-portal/gp-portal": portal,
	}})
	return nil
}

// startCEM starts a simulated XenMobile Server whose SSL listener certificate certfleet manages;
// the key is made by the plugin and parked on the server, never seen by the core.
func startCEM(w *world, o options) error {
	cfg := cemsim.DefaultConfig()
	sim, err := cemsim.New(cfg)
	if err != nil {
		return err
	}
	bundle, err := w.startAppliance(sim, func() { _ = sim.Close() }, o.latency, "ca/xms-tls.pem")
	if err != nil {
		return err
	}
	w.env["CERTFLEET_SIM_XMS_PASSWORD"] = cfg.Password
	w.devices = append(w.devices, fmt.Sprintf(`  xms1:
    plugin: citrix-endpoint-management
    address: %s
    tls: {ca_bundle: %s}
    credentials: {username: %s, password: "${env:CERTFLEET_SIM_XMS_PASSWORD}"}
    options: {flavor: xms}`, sim.URL(), bundle, cfg.Username))
	// RSA: the plugin makes RSA keys only (EC keystores are unconfirmed on XenMobile).
	w.certs = append(w.certs, withVerify(certificate("xms-mdm", "xms1", "mdm.xms1.example.test", "{kind: ssl-listener, name: default}")+
		"\n    key: {type: rsa, bits: 2048}", sim.ListenerAddress()))
	w.info.Devices = append(w.info.Devices, deviceInfo{Name: "xms1", Plugin: "citrix-endpoint-management", Address: sim.URL(), Served: map[string]string{
		"ssl-listener/default": sim.ListenerAddress(),
	}})
	return nil
}

// startHAProxy starts a simulated HAProxy whose Runtime API (stats socket) takes the certificate
// into a crt-list served by a TLS frontend; HAProxy cannot make keys, so the plugin makes them and
// parks them on HAProxy, never in the core.
func startHAProxy(w *world, _ options) error {
	const list = "/etc/haproxy/shop.crtlist"
	sim, err := haproxysim.Start(haproxysim.Options{CrtLists: []string{list}})
	if err != nil {
		return err
	}
	w.closers = append(w.closers, sim.Close)
	w.devices = append(w.devices, fmt.Sprintf("  haproxy1:\n    plugin: haproxy-runtime\n    address: %s", sim.Address))
	w.certs = append(w.certs, withVerify(certificate("haproxy-shop", "haproxy1", "shop.haproxy1.example.test",
		fmt.Sprintf("{kind: crt-list, name: %s}", list)), sim.FrontendAddr(list)))
	w.info.Devices = append(w.info.Devices, deviceInfo{Name: "haproxy1", Plugin: "haproxy-runtime", Address: sim.Address, Served: map[string]string{
		"crt-list/" + list: sim.FrontendAddr(list),
	}})
	return nil
}

// appliance is what the HTTPS appliance simulators have in common.
type appliance interface {
	Start(addr string) error
	SetLatency(time.Duration)
	CACertPEM() string
}

// startAppliance starts sim on loopback with the world's latency, closes it with the world, and
// writes its TLS CA certificate to bundleName for the device's tls.ca_bundle.
func (w *world) startAppliance(sim appliance, closeSim func(), latency time.Duration, bundleName string) (string, error) {
	if err := sim.Start("127.0.0.1:0"); err != nil {
		return "", err
	}
	w.closers = append(w.closers, closeSim)
	sim.SetLatency(latency)
	return w.writeFile(bundleName, sim.CACertPEM(), 0o600)
}
