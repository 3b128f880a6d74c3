package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// ActionBlocked: the certificate is due, but the pre-flight found that what was ordered could not
// be installed (a binding target missing, a key the device cannot make, credentials refused), so
// nothing is ordered until it is fixed.
const ActionBlocked Action = "blocked"

// preflight is what the pre-flight learned about one certificate.
type preflight struct {
	// problems block the certificate; notes are shown but do not (a plugin of contract 1.0).
	problems []string
	notes    []string
	// endpoints by binding key, where the plugin knows where the binding is served.
	endpoints map[string][]sdk.ServedEndpoint
}

// ordersNext reports whether carrying the item out would place a CA order: what the pre-flight
// protects. Later steps have already paid; they go on so the certificate is not lost.
func ordersNext(it PlanItem) bool {
	switch it.Action {
	case ActionEnroll, ActionRenew:
		return true
	case ActionResume:
		return it.op != nil && (it.op.Step == state.StepStarted || it.op.Step == state.StepCSR)
	}
	return false
}

// preflightDevice runs the pre-flight for the plan items of one device that would place an
// order, one CheckBindings call per key spec, and blocks those that fail it.
func (e *Engine) preflightDevice(ctx context.Context, device string, items []*PlanItem) {
	var due []*PlanItem
	for _, it := range items {
		if ordersNext(*it) {
			due = append(due, it)
		}
	}
	if len(due) == 0 {
		return
	}
	certs := make([]Certificate, len(due))
	for k, it := range due {
		certs[k] = it.cert
	}
	results := e.checkDevice(ctx, device, certs)
	for k, it := range due {
		pf := results[k]
		if len(pf.problems) > 0 {
			it.Error = e.opts.Redact("pre-flight: " + strings.Join(pf.problems, "; "))
			it.Reason = fmt.Sprintf("%s (%s), but nothing is ordered until the pre-flight passes", it.Action, it.Reason)
			it.Action = ActionBlocked
		} else if len(pf.notes) > 0 {
			it.Reason += " (" + strings.Join(pf.notes, "; ") + ")"
		}
	}
}

// checkDevice runs the pre-flight of certs, all on one device: credentials, the key spec and each
// binding target. The answers are in the order of certs.
func (e *Engine) checkDevice(ctx context.Context, deviceName string, certs []Certificate) []preflight {
	out := make([]preflight, len(certs))
	fail := func(msg string) []preflight {
		for i := range out {
			out[i].problems = append(out[i].problems, msg)
		}
		return out
	}
	dev, ok := e.opts.Devices[deviceName]
	if !ok {
		return fail(fmt.Sprintf("device %q is not configured", deviceName))
	}
	p, info, err := e.plugin(ctx, dev)
	if err != nil {
		return fail(e.opts.Redact(err.Error()))
	}
	for i, c := range certs {
		if !info.Capabilities.SupportsKey(c.KeySpec) {
			out[i].problems = append(out[i].problems, fmt.Sprintf("plugin %s cannot make %s keys (it makes %s)", dev.Plugin, c.KeySpec, keySpecList(info.Capabilities.KeySpecs)))
		}
		for _, b := range c.Bindings {
			if !info.Capabilities.SupportsBinding(b.Kind) {
				out[i].problems = append(out[i].problems, fmt.Sprintf("plugin %s has no binding kind %q", dev.Plugin, b.Kind))
			}
		}
	}
	checker, ok := p.(sdk.BindingChecker)
	if !ok || info.ContractMinorVersion < 1 {
		return e.checkDeviceFallback(ctx, dev, p, info, out)
	}
	// One call per key spec, with the bindings of every certificate that asks for it.
	bySpec := map[sdk.KeySpec][]int{}
	for i, c := range certs {
		bySpec[c.KeySpec] = append(bySpec[c.KeySpec], i)
	}
	for spec, idx := range bySpec {
		var bindings []sdk.Binding
		for _, i := range idx {
			bindings = append(bindings, certs[i].Bindings...)
		}
		cctx, cancel := e.callCtx(ctx)
		res, err := checker.CheckBindings(cctx, dev.Target, sdk.CheckBindingsRequest{Bindings: bindings, KeySpec: spec})
		cancel()
		if sdk.IsUnimplemented(err) {
			return e.checkDeviceFallback(ctx, dev, p, info, out)
		}
		if err != nil {
			msg := fmt.Sprintf("%s: %s", dev.Name, e.opts.Redact(err.Error()))
			for _, i := range idx {
				out[i].problems = append(out[i].problems, msg)
			}
			continue
		}
		if len(res.Bindings) != len(bindings) {
			msg := fmt.Sprintf("plugin %s answered CheckBindings for %d of %d bindings", dev.Plugin, len(res.Bindings), len(bindings))
			for _, i := range idx {
				out[i].problems = append(out[i].problems, msg)
			}
			continue
		}
		k := 0
		for _, i := range idx {
			if res.KeySpecProblem != "" {
				out[i].problems = append(out[i].problems, fmt.Sprintf("key %s: %s", spec, res.KeySpecProblem))
			}
			for range certs[i].Bindings {
				bc := res.Bindings[k]
				key := bindingKey(bindings[k])
				k++
				if !bc.OK {
					problem := bc.Problem
					if problem == "" {
						problem = "the device cannot bind a certificate there"
					}
					out[i].problems = append(out[i].problems, fmt.Sprintf("binding %s: %s", key, problem))
					continue
				}
				if len(bc.Endpoints) > 0 {
					if out[i].endpoints == nil {
						out[i].endpoints = map[string][]sdk.ServedEndpoint{}
					}
					out[i].endpoints[key] = bc.Endpoints
				}
			}
		}
	}
	return out
}

// checkDeviceFallback is the pre-flight against a plugin of contract 1.0: CheckTarget tells
// whether the credentials work; whether the binding targets exist cannot be asked.
func (e *Engine) checkDeviceFallback(ctx context.Context, dev Device, p sdk.Plugin, info sdk.Info, out []preflight) []preflight {
	cctx, cancel := e.callCtx(ctx)
	_, err := p.CheckTarget(cctx, dev.Target)
	cancel()
	note := fmt.Sprintf("binding targets not checked: plugin %s implements contract 1.%d, without CheckBindings", dev.Plugin, info.ContractMinorVersion)
	for i := range out {
		if err != nil {
			out[i].problems = append(out[i].problems, fmt.Sprintf("%s: %s", dev.Name, e.opts.Redact(err.Error())))
		}
		out[i].notes = append(out[i].notes, note)
	}
	return out
}

func keySpecList(specs []sdk.KeySpec) string {
	parts := make([]string, 0, len(specs))
	for _, k := range specs {
		parts = append(parts, k.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
