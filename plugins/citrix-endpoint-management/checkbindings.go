package cem

import (
	"context"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// CheckBindings implements sdk.BindingChecker, read-only: it logs in (bad credentials fail the
// call) and checks each binding as Bind does: a known role, the listener and SAML bindings named
// "default", and no SSL listener on a cloud tenant. The server's places always exist, so nothing
// else can be missing; where the server is reached is not known to its API, so no endpoint is
// reported.
func (p *Plugin) CheckBindings(ctx context.Context, t sdk.Target, req sdk.CheckBindingsRequest) (sdk.CheckBindingsResult, error) {
	info, _ := p.Info(ctx)
	out := sdk.CheckBindingsResult{KeySpecProblem: sdk.KeySpecProblem(info.Capabilities, req.KeySpec)}
	s, err := p.open(ctx, t)
	if err != nil {
		return out, err
	}
	defer s.close(ctx)
	for _, b := range req.Bindings {
		problem, err := sdk.BindingProblem(s.checkBindings(ctx, []sdk.Binding{b}))
		if err != nil {
			return out, err
		}
		out.Bindings = append(out.Bindings, sdk.BindingCheck{Binding: b, OK: problem == "", Problem: problem})
	}
	return out, nil
}

var _ sdk.BindingChecker = (*Plugin)(nil)
