package f5bigip

import (
	"context"
	"net"
	"strings"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// CheckBindings implements sdk.BindingChecker, read-only: each binding is planned as Bind plans
// it (the client-ssl profiles listed, each virtual server read), so a missing virtual server, or a
// missing profile that the binding may not create, is reported before anything is ordered. The
// login fails on bad credentials. Each virtual server's destination is reported as where the
// binding is served.
func (p *Plugin) CheckBindings(ctx context.Context, t sdk.Target, req sdk.CheckBindingsRequest) (sdk.CheckBindingsResult, error) {
	info, _ := p.Info(ctx)
	out := sdk.CheckBindingsResult{KeySpecProblem: sdk.KeySpecProblem(info.Capabilities, req.KeySpec)}
	err := withDevice(ctx, t, func(d *device) error {
		for _, b := range req.Bindings {
			bc := sdk.BindingCheck{Binding: b}
			plan, err := d.checkOne(ctx, b)
			if bc.Problem, err = sdk.BindingProblem(err); err != nil {
				return err
			}
			bc.OK = bc.Problem == ""
			if bc.OK {
				serverName := ""
				if b.SNI {
					serverName, _ = b.Options.String("server_name", "")
				}
				for _, vc := range plan.virtuals {
					v, err := d.c.GetVirtual(ctx, vc.path)
					if err != nil {
						return d.deviceError(ctx, "read virtual server "+vc.path, err)
					}
					if addr := destinationAddress(v.Destination); addr != "" {
						bc.Endpoints = append(bc.Endpoints, sdk.ServedEndpoint{Address: addr, ServerName: serverName})
					}
				}
			}
			out.Bindings = append(out.Bindings, bc)
		}
		return nil
	})
	return out, err
}

func (d *device) checkOne(ctx context.Context, b sdk.Binding) (*bindPlan, error) {
	if err := checkBinding(b); err != nil {
		return nil, err
	}
	return d.plan(ctx, []sdk.Binding{b}, "", "") // no key yet: planned as for a key outside PCI mode
}

// destinationAddress turns a virtual server's destination (examples as a BIG-IP lists them, not
// addresses anything here dials: "/Common/10.1.1.1:443",
// "/Common/10.1.1.1%2:443", "/Common/2001:db8::1.443") into host:port; "" when it has no port
// (a wildcard or an address list). The IPv4 form with a route domain is what the BIG-IP answers
// in f5-cccl issue 199 ("1::%2"); the dot before an IPv6 port is tmsh's notation and is
// UNCONFIRMED for iControl REST answers: an address that does not parse yields no endpoint, and a
// `verify` address in the configuration gives one.
func destinationAddress(dest string) string {
	if i := strings.LastIndex(dest, "/"); i >= 0 {
		dest = dest[i+1:]
	}
	var host, port string
	if strings.Count(dest, ":") > 1 { // IPv6: the port follows a dot
		i := strings.LastIndex(dest, ".")
		if i < 0 {
			return ""
		}
		host, port = dest[:i], dest[i+1:]
	} else {
		i := strings.LastIndex(dest, ":")
		if i < 0 {
			return ""
		}
		host, port = dest[:i], dest[i+1:]
	}
	if i := strings.Index(host, "%"); i >= 0 { // route domain
		host = host[:i]
	}
	if host == "" || port == "" || port == "0" || port == "any" || host == "0.0.0.0" || host == "any" {
		return ""
	}
	return net.JoinHostPort(host, port)
}

var _ sdk.BindingChecker = (*Plugin)(nil)
