package paloaltopanos

import (
	"context"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// CheckBindings implements sdk.BindingChecker, read-only: each binding is resolved as Bind
// resolves it (the SSL/TLS service profile, the GlobalProtect portal or gateway and its profile,
// or the decryption rule, read from the candidate configuration with `config get`), so a missing
// object, a portal without a profile or a profile it names that does not exist is reported before
// anything is ordered. Bad credentials fail the first read. Where a profile is served is not
// known to the firewall's configuration API, so no endpoint is reported.
func (p *Plugin) CheckBindings(ctx context.Context, t sdk.Target, req sdk.CheckBindingsRequest) (sdk.CheckBindingsResult, error) {
	info, _ := p.Info(ctx)
	out := sdk.CheckBindingsResult{KeySpecProblem: sdk.KeySpecProblem(info.Capabilities, req.KeySpec)}
	err := p.withDevice(ctx, t, func(d *device) error {
		for _, b := range req.Bindings {
			problem, err := sdk.BindingProblem(d.checkBinding(ctx, b))
			if err != nil {
				return err
			}
			out.Bindings = append(out.Bindings, sdk.BindingCheck{Binding: b, OK: problem == "", Problem: problem})
		}
		return nil
	})
	return out, err
}

// checkBinding resolves one binding the way Bind does.
func (d *device) checkBinding(ctx context.Context, b sdk.Binding) error {
	if err := checkBindings([]sdk.Binding{b}); err != nil {
		return err
	}
	if b.Kind == KindDecryption {
		_, err := d.resolveRule(ctx, b)
		return err
	}
	_, err := d.resolveBinding(ctx, b)
	return err
}

var _ sdk.BindingChecker = (*Plugin)(nil)
