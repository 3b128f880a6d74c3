package paloaltopanos

import (
	"context"
	"strings"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// CheckTarget logs in and reports show system info and the HA state.
func (p *Plugin) CheckTarget(ctx context.Context, t sdk.Target) (sdk.TargetInfo, error) {
	var info sdk.TargetInfo
	err := p.withDevice(ctx, t, func(d *device) error {
		resp, err := d.client.Op(ctx, "<show><system><info></info></system></show>")
		if err != nil {
			return d.fail(ctx, err, "show system info")
		}
		sys := resp.Result.Child("system")
		info = sdk.TargetInfo{
			Hostname: sys.Value("hostname"), Model: sys.Value("model"), SoftwareVersion: sys.Value("sw-version"),
			SerialNumber: sys.Value("serial"), HARole: "standalone",
			Details: map[string]string{"multi_vsys": sys.Value("multi-vsys"), "family": sys.Value("family"), "vsys": string(d.vsys)},
		}
		ha, err := d.client.Op(ctx, "<show><high-availability><state></state></high-availability></show>")
		if err != nil {
			// HA state is informative; a device or role that cannot show it is still usable.
			sdk.Logger(ctx).Warn("cannot read the HA state", "device", t.Name, "error", err)
			return nil
		}
		if strings.EqualFold(ha.Result.Value("enabled"), "yes") {
			switch state := strings.ToLower(ha.Result.Value("group", "local-info", "state")); state {
			case "active", "active-primary", "active-secondary":
				info.HARole = "active"
			case "passive":
				info.HARole = "standby"
			default:
				info.HARole = state
			}
		}
		return nil
	})
	return info, err
}

// Inventory lists every installed certificate of shared and the device's vsys in the candidate
// configuration, with the profiles and GlobalProtect objects that use it. Pending CSR entries
// (no certificate yet) are not listed.
func (p *Plugin) Inventory(ctx context.Context, t sdk.Target) ([]sdk.DeviceCertificate, error) {
	var out []sdk.DeviceCertificate
	err := p.withDevice(ctx, t, func(d *device) error {
		v, err := d.readView(ctx)
		if err != nil {
			return err
		}
		bound := v.bindings()
		for _, c := range v.certs {
			if c.publicKey == "" {
				continue
			}
			cert, err := sdk.ParseCertificatePEM(c.publicKey)
			if err != nil {
				sdk.Logger(ctx).Warn("skipping an unreadable certificate", "device", t.Name, "certificate", c.ref(), "error", err)
				continue
			}
			dc := sdk.DescribeFor(ctx, cert)
			dc.CertRef = c.ref()
			if c.hasKey {
				dc.KeyRef = c.ref()
			}
			dc.Bindings = bound[c.ref()]
			out = append(out, dc)
		}
		return nil
	})
	return out, err
}
