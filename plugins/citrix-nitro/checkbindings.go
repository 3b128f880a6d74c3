package citrixnitro

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// CheckBindings implements sdk.BindingChecker, read-only: it logs in (bad credentials fail the
// call) and lists the vservers of each kind asked about (GET lbvserver / vpnvserver, attrs
// name,servicetype: the list Bind reads); a binding is fit when its vserver exists and serves
// SSL, the checks Bind makes. The vserver's VIP is not read, so no served endpoint is reported: a
// `verify` address in the configuration gives one.
func (p *Plugin) CheckBindings(ctx context.Context, t sdk.Target, req sdk.CheckBindingsRequest) (sdk.CheckBindingsResult, error) {
	info, _ := p.Info(ctx)
	out := sdk.CheckBindingsResult{KeySpecProblem: sdk.KeySpecProblem(info.Capabilities, req.KeySpec)}
	err := withSession(ctx, t, func(s *session) error {
		service := map[string]map[string]string{} // kind → vserver → servicetype
		for _, b := range req.Bindings {
			bc := sdk.BindingCheck{Binding: b, OK: true}
			_, err := checkBindings([]sdk.Binding{b})
			if bc.Problem, err = sdk.BindingProblem(err); err != nil {
				return err
			}
			if bc.Problem == "" {
				if _, listed := service[b.Kind]; !listed {
					vs, err := s.c.VServers(ctx, nitroType[b.Kind])
					if err != nil {
						return s.fail(ctx, "list "+nitroType[b.Kind], err)
					}
					service[b.Kind] = map[string]string{}
					for _, v := range vs {
						service[b.Kind][v.Name] = v.ServiceType
					}
				}
				st, ok := service[b.Kind][b.Name]
				switch {
				case !ok:
					bc.Problem = fmt.Sprintf("the appliance has no %s named %q (binding %v)", nitroType[b.Kind], b.Name, b)
				case !isSSLService(st):
					bc.Problem = fmt.Sprintf("%s %q is of type %s, not SSL or SSL_TCP, and cannot serve a certificate", nitroType[b.Kind], b.Name, st)
				}
			}
			bc.OK = bc.Problem == ""
			out.Bindings = append(out.Bindings, bc)
		}
		return nil
	})
	return out, err
}

var _ sdk.BindingChecker = (*Plugin)(nil)
