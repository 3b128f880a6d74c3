package conformance

import (
	"fmt"
	"strings"

	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

// testCheckBindings checks the pre-flight of contract 1.1: one answer per binding in order, the
// test bindings fit, the unknown one and an undeclared kind refused with a problem naming them, a
// key spec the plugin does not declare refused, bad credentials failing the call, and nothing on
// the device changed. A plugin of contract 1.0 must answer Unimplemented, which the core's
// fallback relies on.
func (s *suite) testCheckBindings(t T) {
	checker, ok := s.p.(sdk.BindingChecker)
	if !ok {
		t.Fatal("the host-side plugin client has no CheckBindings")
	}
	if s.info.ContractMinorVersion < 1 {
		_, err := checker.CheckBindings(s.ctx(t), s.cfg.Target, sdk.CheckBindingsRequest{Bindings: s.cfg.Bindings})
		if !sdk.IsUnimplemented(err) {
			t.Fatalf("a contract 1.%d plugin: CheckBindings answered %v, want Unimplemented", s.info.ContractMinorVersion, err)
		}
		return
	}
	before, err := s.p.Inventory(s.ctx(t), s.cfg.Target)
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	undeclared := s.cfg.Bindings[0]
	undeclared.Kind = "certfleet-conformance-no-such-kind"
	req := sdk.CheckBindingsRequest{
		Bindings: append(append([]sdk.Binding{}, s.cfg.Bindings...), s.cfg.UnknownBinding, undeclared),
		KeySpec:  s.keySpecs()[0],
	}
	res, err := checker.CheckBindings(s.ctx(t), s.cfg.Target, req)
	if err != nil {
		t.Fatalf("CheckBindings: %v", err)
	}
	if len(res.Bindings) != len(req.Bindings) {
		t.Fatalf("CheckBindings: %d answers for %d bindings", len(res.Bindings), len(req.Bindings))
	}
	for i, bc := range res.Bindings {
		if bc.Binding.Kind != req.Bindings[i].Kind || bc.Binding.Name != req.Bindings[i].Name {
			t.Errorf("CheckBindings: answer %d is for %v, want %v (request order)", i, bc.Binding, req.Bindings[i])
		}
	}
	for i := range s.cfg.Bindings {
		if bc := res.Bindings[i]; !bc.OK || bc.Problem != "" {
			t.Errorf("CheckBindings: the existing %v is reported unfit: %q", bc.Binding, bc.Problem)
		}
	}
	for _, bc := range res.Bindings[len(s.cfg.Bindings):] {
		if bc.OK {
			t.Errorf("CheckBindings: %v is reported fit", bc.Binding)
		}
		if !strings.Contains(bc.Problem, bc.Binding.Name) && !strings.Contains(bc.Problem, bc.Binding.Kind) {
			t.Errorf("CheckBindings: the problem of %v names neither the object nor the kind: %q", bc.Binding, bc.Problem)
		}
	}
	if res.KeySpecProblem != "" {
		t.Errorf("CheckBindings: the declared key spec %v is refused: %q", req.KeySpec, res.KeySpecProblem)
	}
	for _, ep := range res.Bindings[0].Endpoints {
		if ep.Address == "" {
			t.Errorf("CheckBindings: an endpoint of %v has no address", res.Bindings[0].Binding)
		}
	}

	weak := sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 1024}
	res, err = checker.CheckBindings(s.ctx(t), s.cfg.Target, sdk.CheckBindingsRequest{Bindings: s.cfg.Bindings[:1], KeySpec: weak})
	if err != nil {
		t.Fatalf("CheckBindings with key spec %v: %v", weak, err)
	}
	if res.KeySpecProblem == "" {
		t.Errorf("CheckBindings: key spec %v is not refused", weak)
	}

	if s.cfg.supports(FeatureAuthentication) && s.cfg.BadCredentials != nil {
		_, err := checker.CheckBindings(s.ctx(t), *s.cfg.BadCredentials, sdk.CheckBindingsRequest{Bindings: s.cfg.Bindings})
		wantCode(t, "CheckBindings with bad credentials", err, codes.Unauthenticated)
	}

	after, err := s.p.Inventory(s.ctx(t), s.cfg.Target)
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	if got, want := inventoryShape(after), inventoryShape(before); got != want {
		t.Errorf("CheckBindings changed the device:\nbefore %s\nafter  %s", want, got)
	}
}

// inventoryShape is a comparable summary of an inventory: every certificate and where it is bound.
func inventoryShape(certs []sdk.DeviceCertificate) string {
	var parts []string
	for _, c := range certs {
		var bs []string
		for _, b := range c.Bindings {
			bs = append(bs, b.String())
		}
		// Bindings in any order: a device's listing order is not a change.
		parts = append(parts, fmt.Sprintf("%s%v", c.CertRef, sorted(bs)))
	}
	return strings.Join(sorted(parts), " ")
}
