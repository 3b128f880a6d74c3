package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestErrorCrossesTheWireIntact(t *testing.T) {
	orig := UnknownBinding("no vserver %q", "vs1").WithVendor("461", "No such resource").WithCause(errors.New("lookup"))
	st := status.Convert(orig)
	if st.Code() != codes.NotFound {
		t.Fatalf("code %v", st.Code())
	}
	got := AsError(st.Err())
	if got.Code != codes.NotFound || got.Reason != ReasonUnknownBinding || got.VendorCode != "461" || got.VendorMessage != "No such resource" {
		t.Fatalf("reconstructed %+v", got)
	}
	if strings.Count(got.Error(), "No such resource") != 1 {
		t.Errorf("vendor message repeated or lost: %q", got.Error())
	}
	if got.Retryable() {
		t.Error("NotFound must not be retryable")
	}
	if !Unavailable("x").Retryable() || !IsRetryable(fmt.Errorf("wrapped: %w", Unavailable("down"))) {
		t.Error("Unavailable must be retryable, wrapped or not")
	}
}

func TestAsErrorMapsContextAndPlainErrors(t *testing.T) {
	if c := CodeOf(fmt.Errorf("op: %w", context.DeadlineExceeded)); c != codes.DeadlineExceeded {
		t.Errorf("deadline: %v", c)
	}
	if c := CodeOf(context.Canceled); c != codes.Canceled {
		t.Errorf("canceled: %v", c)
	}
	if e := AsError(errors.New("boom")); e.Code != codes.Internal || e.Reason != ReasonDeviceError {
		t.Errorf("plain error: %+v", e)
	}
	if e := AsError(status.Error(codes.PermissionDenied, "no")); e.Reason != ReasonPermission {
		t.Errorf("status without detail gets a default reason: %+v", e)
	}
	if CodeOf(nil) != codes.OK || AsError(nil) != nil {
		t.Error("nil error")
	}
}

func TestCredentialsNeverPrintSecrets(t *testing.T) {
	c := Credentials{Username: "admin", Password: "hunter22", APIKey: "k3y-v4lue", Token: "t0ken"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, c)
		for _, secret := range []string{"hunter22", "k3y-v4lue", "t0ken"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s prints a secret: %s", format, out)
			}
		}
	}
	target := Target{Name: "d", Credentials: c}
	if out := fmt.Sprintf("%+v", target); strings.Contains(out, "hunter22") {
		t.Errorf("a target prints its password: %s", out)
	}
}

func TestOptions(t *testing.T) {
	o := Options{"partition": "dmz", "sni": true, "port": float64(443), "links": []any{"a", "b"}, "bad": 3.5}
	if v, err := o.String("partition", ""); v != "dmz" || err != nil {
		t.Errorf("String: %q %v", v, err)
	}
	if v, err := o.String("missing", "def"); v != "def" || err != nil {
		t.Errorf("default: %q %v", v, err)
	}
	if _, err := o.String("sni", ""); err == nil || !strings.Contains(err.Error(), `option "sni" must be a string`) {
		t.Errorf("wrong type: %v", err)
	}
	if v, err := o.Int("port", 0); v != 443 || err != nil {
		t.Errorf("Int: %d %v", v, err)
	}
	if _, err := o.Int("bad", 0); err == nil {
		t.Error("3.5 accepted as a whole number")
	}
	if v, err := o.StringList("links"); len(v) != 2 || err != nil {
		t.Errorf("StringList: %v %v", v, err)
	}
	if u := o.Unknown([]OptionSpec{{Name: "partition"}, {Name: "sni"}, {Name: "port"}, {Name: "links"}}); len(u) != 1 || u[0] != "bad" {
		t.Errorf("Unknown: %v", u)
	}
}

func TestConversionRoundTrip(t *testing.T) {
	target := Target{Name: "adc1", Address: "https://adc", TLS: TLSConfig{CABundlePEM: "pem", ServerName: "adc"},
		Credentials: Credentials{Username: "u", Password: "p"}, Options: Options{"partition": "dmz", "n": float64(2)}}
	pt, err := targetToProto(target)
	if err != nil {
		t.Fatal(err)
	}
	back := targetFromProto(pt)
	if back.Name != target.Name || back.Credentials != target.Credentials || back.TLS != target.TLS || back.Options["partition"] != "dmz" || back.Options["n"] != float64(2) {
		t.Fatalf("target round trip: %+v", back)
	}
	dc := DeviceCertificate{CertRef: "c", NotAfter: time.Unix(1800000000, 0).UTC(), KeySpec: KeySpec{Type: KeyTypeECDSA, Bits: 384},
		SANs: SANs{DNSNames: []string{"a"}}, Bindings: []Binding{{Kind: "lb-vserver", Name: "vs", SNI: true}}}
	got := deviceCertFromProto(deviceCertToProto(dc))
	if got.CertRef != "c" || !got.NotAfter.Equal(dc.NotAfter) || got.KeySpec != dc.KeySpec || !got.Bindings[0].SNI || !got.NotBefore.IsZero() {
		t.Fatalf("device certificate round trip: %+v", got)
	}
	if _, err := targetToProto(Target{Options: Options{"bad": make(chan int)}}); CodeOf(err) != codes.InvalidArgument {
		t.Errorf("unrepresentable option: %v", err)
	}
}

// timerNotFired is a context whose deadline has passed but whose timer has not fired yet.
type timerNotFired struct{ context.Context }

func (timerNotFired) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

func TestFromContextCountsAPassedDeadlineBeforeItsTimerFires(t *testing.T) {
	if err := FromContext(timerNotFired{context.Background()}); err == nil || err.Code != codes.DeadlineExceeded {
		t.Errorf("FromContext past the deadline: %v, want DeadlineExceeded", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if err := FromContext(ctx); err != nil {
		t.Errorf("FromContext before the deadline: %v, want nil", err)
	}
}
