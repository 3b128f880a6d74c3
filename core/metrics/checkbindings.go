package metrics

import (
	"context"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

// CheckBindings measures the pre-flight of contract 1.1 and passes it through; a wrapped plugin
// without it answers Unimplemented, as a 1.0 plugin does over the wire, so the core falls back.
func (t *timedPlugin) CheckBindings(ctx context.Context, tg sdk.Target, req sdk.CheckBindingsRequest) (r sdk.CheckBindingsResult, err error) {
	checker, ok := t.Plugin.(sdk.BindingChecker)
	if !ok {
		return r, &sdk.Error{Code: codes.Unimplemented, Reason: sdk.ReasonUnsupported, Message: "plugin " + t.name + " does not implement CheckBindings"}
	}
	defer func(start time.Time) { t.observe("check_bindings", tg, start, err) }(time.Now())
	return checker.CheckBindings(ctx, tg, req)
}

var _ sdk.BindingChecker = (*timedPlugin)(nil)
