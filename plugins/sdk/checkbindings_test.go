package sdk

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestBindingProblemSortsErrors(t *testing.T) {
	for _, tc := range []struct {
		err         error
		wantProblem bool
	}{
		{UnknownBinding("no vserver vs_x"), true},
		{InvalidArgument(ReasonInvalidRequest, "bad option"), true},
		{FailedPrecondition(ReasonInvalidRequest, "portal has no profile"), true},
		{Unauthenticated("bad password"), false},
		{Unavailable("device down"), false},
		{context.DeadlineExceeded, false},
		{errors.New("plain"), false},
	} {
		problem, callErr := BindingProblem(tc.err)
		if (problem != "") != tc.wantProblem || (callErr != nil) == tc.wantProblem {
			t.Errorf("BindingProblem(%v) = %q, %v", tc.err, problem, callErr)
		}
	}
	if p, err := BindingProblem(nil); p != "" || err != nil {
		t.Errorf("BindingProblem(nil) = %q, %v", p, err)
	}
}

func TestKeySpecProblemAndUnimplemented(t *testing.T) {
	caps := Capabilities{KeySpecs: []KeySpec{{Type: KeyTypeRSA, Bits: 2048}}}
	if p := KeySpecProblem(caps, KeySpec{Type: KeyTypeRSA, Bits: 2048}); p != "" {
		t.Errorf("declared key refused: %q", p)
	}
	if p := KeySpecProblem(caps, KeySpec{Type: KeyTypeECDSA, Bits: 521}); p == "" {
		t.Error("undeclared key accepted")
	}
	if p := KeySpecProblem(caps, KeySpec{}); p != "" {
		t.Errorf("no key asked, but %q", p)
	}
	if !IsUnimplemented((&Error{Code: codes.Unimplemented, Message: "x"}).GRPCStatus().Err()) {
		t.Error("an Unimplemented status is not recognised after the wire")
	}
	if IsUnimplemented(NotFound("x")) {
		t.Error("NotFound taken for Unimplemented")
	}
}
