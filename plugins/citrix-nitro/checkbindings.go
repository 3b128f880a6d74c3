package citrixnitro

import (
	"context"
	"fmt"
	"strings"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// CheckBindings implements sdk.BindingChecker, read-only: it logs in (bad credentials fail the
// call) and reads each vserver a binding names (GET lbvserver/vpnvserver/<name>, the call Bind
// makes); a binding is fit when its vserver exists and is of type SSL. NITRO answers 258 for an
// unknown vserver, which the client reports as not found. The vserver's VIP is not read, so no
// served endpoint is reported: a `verify` address in the configuration gives one.
func (p *Plugin) CheckBindings(ctx context.Context, t sdk.Target, req sdk.CheckBindingsRequest) (sdk.CheckBindingsResult, error) {
	info, _ := p.Info(ctx)
	out := sdk.CheckBindingsResult{KeySpecProblem: sdk.KeySpecProblem(info.Capabilities, req.KeySpec)}
	err := withSession(ctx, t, func(s *session) error {
		for _, b := range req.Bindings {
			bc := sdk.BindingCheck{Binding: b, OK: true}
			problem, err := sdk.BindingProblem(checkBindings([]sdk.Binding{b}))
			if err != nil {
				return err
			}
			if problem == "" {
				if problem, err = s.checkVServer(ctx, b); err != nil {
					return err
				}
			}
			if problem != "" {
				bc.OK, bc.Problem = false, problem
			}
			out.Bindings = append(out.Bindings, bc)
		}
		return nil
	})
	return out, err
}

// checkVServer says what keeps b's vserver from taking a certificate ("" when nothing does).
func (s *session) checkVServer(ctx context.Context, b sdk.Binding) (string, error) {
	v, found, err := s.c.GetVServer(ctx, nitroType[b.Kind], b.Name)
	if err != nil {
		return sdk.BindingProblem(s.fail(ctx, "read "+nitroType[b.Kind]+" "+b.Name, err))
	}
	if !found {
		return fmt.Sprintf("no %s named %q on the appliance (binding %v)", nitroType[b.Kind], b.Name, b), nil
	}
	if !strings.EqualFold(v.ServiceType, "SSL") {
		return fmt.Sprintf("%s %q is of type %s, not SSL, and cannot serve a certificate", nitroType[b.Kind], b.Name, v.ServiceType), nil
	}
	return "", nil
}

var _ sdk.BindingChecker = (*Plugin)(nil)
