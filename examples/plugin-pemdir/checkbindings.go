package pemdir

import (
	"context"
	"fmt"
	"slices"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// CheckBindings implements sdk.BindingChecker: a live link can take a certificate when the
// device's links option declares it. A directory does not know where it is served.
func (p *Plugin) CheckBindings(ctx context.Context, t sdk.Target, req sdk.CheckBindingsRequest) (sdk.CheckBindingsResult, error) {
	info, _ := p.Info(ctx)
	out := sdk.CheckBindingsResult{KeySpecProblem: sdk.KeySpecProblem(info.Capabilities, req.KeySpec)}
	err := withLock(ctx, t, "CheckBindings", false, func(d *device) error {
		for _, b := range req.Bindings {
			bc := sdk.BindingCheck{Binding: b, OK: true}
			switch {
			case b.Kind != BindingKind:
				bc.OK, bc.Problem = false, fmt.Sprintf("binding kind %q is not %q", b.Kind, BindingKind)
			case !slices.Contains(d.links, b.Name):
				bc.OK, bc.Problem = false, fmt.Sprintf("live link %q is not declared in the device's links option %v", b.Name, d.links)
			}
			out.Bindings = append(out.Bindings, bc)
		}
		return nil
	})
	return out, err
}

var _ sdk.BindingChecker = (*Plugin)(nil)
