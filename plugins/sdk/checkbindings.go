package sdk

import (
	"context"
	"errors"
	"fmt"

	devicev1 "github.com/certfleet/certfleet/proto/certfleet/device/v1"
	"google.golang.org/grpc/codes"
)

// BindingChecker is the pre-flight of contract 1.1: a plugin implements it next to Plugin. The
// host-side client always has the method; against a 1.0 plugin it returns an error for which
// IsUnimplemented is true, and the core falls back to CheckTarget and the declared capabilities.
type BindingChecker interface {
	// CheckBindings logs in (bad credentials fail the call), and reports for each binding whether
	// its place exists and can take a certificate, whether the device accepts req.KeySpec, and
	// where each binding is served. It changes nothing on the device.
	CheckBindings(ctx context.Context, t Target, req CheckBindingsRequest) (CheckBindingsResult, error)
}

// CheckBindingsRequest asks about the bindings (and key spec) of one certificate.
type CheckBindingsRequest struct {
	Bindings []Binding
	// KeySpec is checked when its Type is set.
	KeySpec KeySpec
}

// ServedEndpoint is where a client reaches a binding over TLS.
type ServedEndpoint struct {
	// Address is host:port.
	Address string
	// ServerName is sent as SNI when not empty.
	ServerName string
}

// BindingCheck is the answer for one binding.
type BindingCheck struct {
	Binding Binding
	OK      bool
	// Problem says why the place cannot take the certificate, naming the object.
	Problem   string
	Endpoints []ServedEndpoint
}

// CheckBindingsResult answers a CheckBindingsRequest, one check per binding in request order.
type CheckBindingsResult struct {
	Bindings []BindingCheck
	// KeySpecProblem says why the device cannot make the key; empty when it can.
	KeySpecProblem string
}

// BindingProblem sorts an error met while checking one binding: a binding-level refusal
// (NotFound, InvalidArgument, FailedPrecondition: the place is missing or unfit) becomes its
// problem text; anything else (credentials, network, deadline) is returned for the whole call.
func BindingProblem(err error) (problem string, callErr error) {
	if err == nil {
		return "", nil
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.Code {
		case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition:
			return e.Error(), nil
		}
	}
	return "", err
}

// KeySpecProblem is the answer of a plugin whose key support does not depend on the device: the
// declared capabilities decide.
func KeySpecProblem(c Capabilities, spec KeySpec) string {
	if spec.Type == KeyTypeUnspecified || c.SupportsKey(spec) {
		return ""
	}
	return fmt.Sprintf("the device cannot make %s keys", spec)
}

// IsUnimplemented reports whether err says the plugin does not implement the call (an older
// contract minor version).
func IsUnimplemented(err error) bool { return err != nil && CodeOf(err) == codes.Unimplemented }

func (s *grpcServer) CheckBindings(ctx context.Context, req *devicev1.CheckBindingsRequest) (*devicev1.CheckBindingsResponse, error) {
	ctx = s.callContext(ctx, "CheckBindings", req.Target)
	checker, ok := s.impl.(BindingChecker)
	if !ok {
		return nil, result(ctx, newError(codes.Unimplemented, ReasonUnsupported, "this plugin does not implement CheckBindings (contract 1.0)"))
	}
	res, err := checker.CheckBindings(ctx, targetFromProto(req.Target), CheckBindingsRequest{
		Bindings: bindingsFromProto(req.Bindings), KeySpec: keySpecFromProto(req.KeySpec),
	})
	if err != nil {
		return nil, result(ctx, err)
	}
	resp := &devicev1.CheckBindingsResponse{KeySpecProblem: res.KeySpecProblem}
	for _, bc := range res.Bindings {
		pb, err := bindingsToProto([]Binding{bc.Binding})
		if err != nil {
			return nil, result(ctx, Internal(ReasonInvalidRequest, "binding %v: %v", bc.Binding, err))
		}
		out := &devicev1.BindingCheck{Binding: pb[0], Ok: bc.OK, Problem: bc.Problem}
		for _, ep := range bc.Endpoints {
			out.Endpoints = append(out.Endpoints, &devicev1.ServedEndpoint{Address: ep.Address, ServerName: ep.ServerName})
		}
		resp.Bindings = append(resp.Bindings, out)
	}
	return resp, nil
}

func (c *grpcClient) CheckBindings(ctx context.Context, t Target, req CheckBindingsRequest) (CheckBindingsResult, error) {
	pt, err := targetToProto(t)
	if err != nil {
		return CheckBindingsResult{}, err
	}
	bindings, err := bindingsToProto(req.Bindings)
	if err != nil {
		return CheckBindingsResult{}, err
	}
	preq := &devicev1.CheckBindingsRequest{Target: pt, Bindings: bindings}
	if req.KeySpec.Type != KeyTypeUnspecified {
		preq.KeySpec = keySpecToProto(req.KeySpec)
	}
	resp, err := c.client.CheckBindings(ctx, preq)
	if err != nil {
		return CheckBindingsResult{}, AsError(err)
	}
	out := CheckBindingsResult{KeySpecProblem: resp.KeySpecProblem}
	for _, pb := range resp.Bindings {
		bc := BindingCheck{OK: pb.Ok, Problem: pb.Problem}
		if pb.Binding != nil {
			bc.Binding = bindingsFromProto([]*devicev1.Binding{pb.Binding})[0]
		}
		for _, ep := range pb.Endpoints {
			bc.Endpoints = append(bc.Endpoints, ServedEndpoint{Address: ep.Address, ServerName: ep.ServerName})
		}
		out.Bindings = append(out.Bindings, bc)
	}
	return out, nil
}
