package citrixnitro_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	citrixnitro "github.com/certfleet/certfleet/plugins/citrix-nitro"
	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

var (
	lbWWW = sdk.Binding{Kind: citrixnitro.KindLB, Name: "vs_www_443"}
	lbAPI = sdk.Binding{Kind: citrixnitro.KindLB, Name: "vs_api_443"}
	gwVPN = sdk.Binding{Kind: citrixnitro.KindGateway, Name: "gw_vpn_443"}
)

// TestRenewalHasNoHandshakeFailures loops verified TLS handshakes against an LB and a Gateway
// vserver while a certificate is renewed three times (bind, save, cleanup) with one rollback:
// not one handshake may fail, and the vservers' bindings never change.
func TestRenewalHasNoHandshakeFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	first := e.enroll("www", "www.example.com")
	e.bind(first, lbWWW, gwVPN)
	e.commit()
	poll := e.pollHandshakes("www.example.com", "vs_www_443", "gw_vpn_443")
	e.sim.Calls()

	live, superseded := first, []string{}
	for round := range 3 {
		next := e.enroll("www", "www.example.com")
		res := e.bind(next, lbWWW, gwVPN)
		if !slices.Equal(res.PreviousCertRefs, []string{live.ref}) {
			t.Errorf("round %d: previous cert refs %v, want [%s]", round, res.PreviousCertRefs, live.ref)
		}
		e.commit()
		e.wantServed("after renewal", "vs_www_443", "", next)
		e.wantServed("after renewal", "gw_vpn_443", "", next)
		stale := live
		if round == 1 {
			if err := e.p.Rollback(e.ctx, e.tgt, res.RollbackToken); err != nil {
				t.Fatalf("Rollback: %v", err)
			}
			e.commit()
			e.wantServed("after rollback", "vs_www_443", "", live)
			e.wantServed("after rollback", "gw_vpn_443", "", live)
			stale = next
		} else {
			live = next
		}
		cl, err := e.p.Cleanup(e.ctx, e.tgt, []sdk.ObjectRef{{CertRef: stale.ref, KeyRef: stale.ref}})
		if err != nil || !cl[0].Removed {
			t.Fatalf("round %d: Cleanup of %s: %+v %v", round, stale.ref, cl, err)
		}
		superseded = append(superseded, stale.ref)
	}
	time.Sleep(20 * time.Millisecond)
	handshakes, failures, firstErr := poll.finish()
	if handshakes < 50 || failures != 0 {
		t.Fatalf("%d handshakes, %d failed (first: %v); want many and none failed", handshakes, failures, firstErr)
	}
	t.Logf("%d verified handshakes during 3 renewals and a rollback, 0 failures", handshakes)

	calls := e.sim.Calls()
	if n := countCalls(calls, "PUT /nitro/v1/config/sslvserver_sslcertkey_binding") + countCalls(calls, "DELETE /nitro/v1/config/sslvserver_sslcertkey_binding"); n != 0 {
		t.Errorf("%d binding changes during renewals; the in-place update needs none", n)
	}
	if got := e.sim.BoundCertKeys("vs_www_443"); !slices.Equal(got, []string{first.ref}) {
		t.Errorf("vs_www_443 bindings %v, want the original certkey %s only", got, first.ref)
	}
	inv := e.inventory()
	if b := inv[live.ref].Bindings; len(b) != 2 {
		t.Errorf("Inventory shows %s bound at %v, want both vservers", live.ref, b)
	}
	for _, ref := range superseded {
		if _, ok := inv[ref]; ok {
			t.Errorf("superseded %s still in Inventory", ref)
		}
		for _, f := range e.sim.Files("") {
			if strings.Contains(f, ref) {
				t.Errorf("superseded %s left file %s", ref, f)
			}
		}
	}
	if n := e.sim.Sessions(); n != 0 {
		t.Errorf("%d sessions left open", n)
	}
}

// TestRenewalCallTrace pins the NITRO calls of an enrollment and of a renewal: the renewal frees
// the new certificate from its own certkey, updates the bound certkey in place and touches no
// binding.
func TestRenewalCallTrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	e.sim.Calls()
	first := e.enroll("www", "www.example.com")
	e.bind(first, lbWWW)
	e.commit()
	enrollment := e.sim.Calls()
	for _, want := range []string{"POST /nitro/v1/config/sslecdsakey?action=create", "POST /nitro/v1/config/sslcertreq?action=create",
		"GET /nitro/v1/config/systemfile?args=filename:" + first.ref + ".csr", "POST /nitro/v1/config/systemfile",
		"POST /nitro/v1/config/sslcertkey?action=link", "PUT /nitro/v1/config/sslvserver_sslcertkey_binding", "POST /nitro/v1/config/nsconfig?action=save"} {
		if countCalls(enrollment, want) == 0 {
			t.Errorf("the enrollment never calls %s", want)
		}
	}
	next := e.enroll("www", "www.example.com")
	res := e.bind(next, lbWWW)
	e.commit()
	if _, err := e.p.Cleanup(e.ctx, e.tgt, []sdk.ObjectRef{{CertRef: res.PreviousCertRefs[0]}}); err != nil {
		t.Fatal(err)
	}
	renewal := e.sim.Calls()
	for want, n := range map[string]int{
		"POST /nitro/v1/config/sslcertkey?action=update":           1,
		"DELETE /nitro/v1/config/sslcertkey/" + next.ref:           1,
		"PUT /nitro/v1/config/sslvserver_sslcertkey_binding":       0,
		"DELETE /nitro/v1/config/sslvserver_sslcertkey_binding":    0,
		"POST /nitro/v1/config/nsconfig?action=save":               1,
		"DELETE /nitro/v1/config/systemfile/" + first.ref + ".key": 1,
	} {
		if got := countCalls(renewal, want); got != n {
			t.Errorf("the renewal calls %s %d times, want %d", want, got, n)
		}
	}
	if in, out := countCalls(renewal, "POST /nitro/v1/config/login"), countCalls(renewal, "POST /nitro/v1/config/logout"); in != out || in == 0 {
		t.Errorf("%d logins, %d logouts", in, out)
	}
	t.Logf("enrollment:\n%s\nrenewal:\n%s", strings.Join(enrollment, "\n"), strings.Join(renewal, "\n"))
}

// TestSharedCertKeyIsNotUpdatedSilently: the bound certkey also serves a place the request does
// not name (another vserver, an SSL service, the global VPN, a SAML action), so an in-place
// update would change that place too. Bind refuses and names it, changing nothing; with
// update_shared_certkeys it updates in place, every place gets the new certificate, and no
// handshake fails.
func TestSharedCertKeyIsNotUpdatedSilently(t *testing.T) {
	t.Parallel()
	for _, where := range []string{"vserver", nitrosim.PlaceService, nitrosim.PlaceVPNGlobal, nitrosim.PlaceSAMLAction} {
		e := newEnv(t, nitrosim.DefaultConfig(), nil)
		first := e.enroll("www", "www.example.com")
		if where == "vserver" {
			e.bind(first, lbWWW, lbAPI)
		} else {
			e.bind(first, lbWWW)
			if err := e.sim.BindElsewhere("", where, "elsewhere", first.ref); err != nil {
				t.Fatal(err)
			}
		}
		next := e.enroll("www", "www.example.com")
		before := e.sim.CertKeys("")
		_, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: next.ref, Bindings: []sdk.Binding{lbWWW}})
		se := wantErr(t, where+": Bind over a shared certkey", err, codes.FailedPrecondition, "SHARED_CERTKEY")
		if !strings.Contains(se.Message, "update_shared_certkeys") {
			t.Errorf("%s: the error does not name the fix: %v", where, se)
		}
		e.wantServed(where+": after the refusal", "vs_www_443", "", first)
		if got := e.sim.CertKeys(""); !slices.Equal(got, before) {
			t.Errorf("%s: the refusal changed certkeys %v -> %v", where, before, got)
		}

		allowed := simTarget(e.sim, sdk.Options{"update_shared_certkeys": true})
		poll := e.pollHandshakes("www.example.com", "vs_www_443")
		res, err := e.p.Bind(e.ctx, allowed, sdk.BindRequest{CertRef: next.ref, Bindings: []sdk.Binding{lbWWW}})
		if err != nil {
			t.Fatalf("%s: Bind with update_shared_certkeys: %v", where, err)
		}
		if _, failures, firstErr := poll.finish(); failures != 0 {
			t.Errorf("%s: %d handshakes failed (%v)", where, failures, firstErr)
		}
		e.wantServed(where+": updated in place", "vs_www_443", "www.example.com", next)
		if where == "vserver" {
			e.wantServed("the shared vserver too", "vs_api_443", "www.example.com", next)
		}
		if err := e.p.Rollback(e.ctx, allowed, res.RollbackToken); err != nil {
			t.Fatalf("%s: Rollback: %v", where, err)
		}
		e.wantServed(where+": after rollback", "vs_www_443", "", first)
	}
}

// TestRebindWhenAPlaceHasAnotherCertificate: a requested vserver serves an unrelated
// certificate; Bind moves it to the new one, bind-new-first where the appliance takes two
// certificates at once, unbind-first (a window the handshake loop sees) where it does not, and
// Rollback restores it.
func TestRebindWhenAPlaceHasAnotherCertificate(t *testing.T) {
	t.Parallel()
	for _, replaces := range []bool{false, true} {
		cfg := nitrosim.DefaultConfig()
		cfg.DefaultBindReplaces = replaces
		e := newEnv(t, cfg, nil)
		first := e.enroll("www", "www.example.com")
		e.bind(first, lbWWW, lbAPI)
		other := e.enroll("other", "www.example.com")
		e.bind(other, gwVPN)
		// Three clients loop; the latency widens any window between unbind and bind to well
		// over a handshake, even under -race on a loaded machine.
		poll := e.pollHandshakes("www.example.com", "vs_www_443", "vs_www_443", "vs_www_443")
		e.sim.SetLatency(150 * time.Millisecond)
		res := e.bind(other, lbWWW, gwVPN)
		e.sim.SetLatency(0)
		_, failures, firstErr := poll.finish()
		e.wantServed("after the rebind", "vs_www_443", "", other)
		e.wantServed("untouched", "vs_api_443", "", first)
		if replaces && failures != 0 {
			t.Errorf("second default bind replaces: %d handshakes failed (%v), want none", failures, firstErr)
		}
		if !replaces && failures == 0 {
			t.Error("strict appliance: unbind-then-bind left no visible window; the handshake loop cannot detect one")
		}
		t.Logf("default bind replaces=%v: %d handshakes failed", replaces, failures)
		if err := e.p.Rollback(e.ctx, e.tgt, res.RollbackToken); err != nil {
			t.Fatalf("Rollback: %v", err)
		}
		e.wantServed("after rollback", "vs_www_443", "", first)
		if err := e.p.Rollback(e.ctx, e.tgt, res.RollbackToken); err != nil {
			t.Fatalf("second Rollback: %v", err)
		}
	}
}

// TestRollbackRestoresTheFreedCertKey: after an in-place renewal and its rollback, the old
// certificate is served again and the new one is back in its own certkey, ready to bind again.
func TestRollbackRestoresTheFreedCertKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	first := e.enroll("www", "www.example.com")
	e.bind(first, lbWWW)
	next := e.enroll("www", "www.example.com")
	before := e.sim.CertKeys("")
	res := e.bind(next, lbWWW)
	if slices.Contains(e.sim.CertKeys(""), next.ref) {
		t.Errorf("certkey %s still exists after the in-place update; the appliance keeps one certkey per certificate", next.ref)
	}
	if err := e.p.Rollback(e.ctx, e.tgt, res.RollbackToken); err != nil {
		t.Fatal(err)
	}
	e.wantServed("after rollback", "vs_www_443", "", first)
	if got := e.sim.CertKeys(""); !slices.Equal(got, before) {
		t.Errorf("certkeys after rollback %v, want as before the Bind %v", got, before)
	}
	inv := e.inventory()
	if len(inv[first.ref].Bindings) != 1 || len(inv[next.ref].Bindings) != 0 {
		t.Errorf("Inventory after rollback: %s at %v, %s at %v", first.ref, inv[first.ref].Bindings, next.ref, inv[next.ref].Bindings)
	}
	// Rolling back twice changes nothing; binding again renews again.
	if err := e.p.Rollback(e.ctx, e.tgt, res.RollbackToken); err != nil {
		t.Fatalf("second Rollback: %v", err)
	}
	e.bind(next, lbWWW)
	e.wantServed("bound again", "vs_www_443", "", next)
	e.wantServed("bound again, with its chain", "vs_www_443", "www.example.com", next)
}

// TestFailedBindChangesNothing: a failure in the middle of a Bind (the in-place update, the
// link after it, or a later binding) is undone, so the appliance serves what it served before.
func TestFailedBindChangesNothing(t *testing.T) {
	t.Parallel()
	for _, fault := range []string{"POST sslcertkey?action=update", "PUT sslvserver_sslcertkey_binding", "POST sslcertkey?action=link"} {
		e := newEnv(t, nitrosim.DefaultConfig(), nil)
		var first enrolled
		if fault == "POST sslcertkey?action=link" {
			// The old certificate came without a chain, so the update links the certkey.
			first = e.enrollWithChain("www", nil, "www.example.com")
		} else {
			first = e.enroll("www", "www.example.com")
		}
		e.bind(first, lbWWW)
		next := e.enroll("www", "www.example.com")
		beforeKeys, beforeBound := e.sim.CertKeys(""), e.sim.BoundCertKeys("vs_api_443")
		e.sim.FailNext(fault, 1, 599, 1)
		_, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: next.ref, Bindings: []sdk.Binding{lbWWW, lbAPI}})
		wantErr(t, "Bind with "+fault+" failing", err, codes.FailedPrecondition, sdk.ReasonDeviceError)
		e.wantServed(fault+": after the failed Bind", "vs_www_443", "", first)
		if got := e.sim.CertKeys(""); !slices.Equal(got, beforeKeys) {
			t.Errorf("%s: certkeys %v, want %v", fault, got, beforeKeys)
		}
		if got := e.sim.BoundCertKeys("vs_api_443"); !slices.Equal(got, beforeBound) {
			t.Errorf("%s: vs_api_443 bindings %v, want %v", fault, got, beforeBound)
		}
		e.bind(next, lbWWW, lbAPI)
		e.wantServed(fault+": after a retried Bind", "vs_www_443", "www.example.com", next)
		e.wantServed(fault+": after a retried Bind", "vs_api_443", "www.example.com", next)
		if n := e.sim.Sessions(); n != 0 {
			t.Errorf("%s: %d sessions left open", fault, n)
		}
	}
}

// TestSNIRenewal: an SNI certificate next to a default one is renewed in place; when its
// certkey is shared with another vserver it is rebound, bind-new-first where the appliance
// allows two SNI certificates of one domain, unbind-first where it does not.
func TestSNIRenewal(t *testing.T) {
	t.Parallel()
	shopSNI := sdk.Binding{Kind: citrixnitro.KindLB, Name: "vs_api_443", SNI: true}
	otherSNI := sdk.Binding{Kind: citrixnitro.KindGateway, Name: "gw_vpn_443", SNI: true}
	for _, overlap := range []bool{false, true} {
		cfg := nitrosim.DefaultConfig()
		cfg.AllowSNIDomainOverlap = overlap
		e := newEnv(t, cfg, sdk.Options{"auth": "headers"})
		def := e.enroll("default", "default.example.com")
		e.bind(def, lbAPI)
		shop := e.enroll("shop", "shop.example.com")
		e.bind(shop, shopSNI)
		e.wantServed("SNI", "vs_api_443", "shop.example.com", shop)
		e.wantServed("no SNI", "vs_api_443", "", def)

		shop2 := e.enroll("shop", "shop.example.com")
		res := e.bind(shop2, shopSNI)
		if !slices.Equal(res.PreviousCertRefs, []string{shop.ref}) {
			t.Errorf("previous %v, want [%s]", res.PreviousCertRefs, shop.ref)
		}
		e.wantServed("renewed SNI", "vs_api_443", "shop.example.com", shop2)
		e.wantServed("default untouched", "vs_api_443", "", def)

		// Share the SNI certificate with the Gateway: renewing only the LB binding would change
		// the Gateway too and is refused; renewing both updates the one certkey in place.
		e.bind(shop2, shopSNI, otherSNI)
		shop3 := e.enroll("shop", "shop.example.com")
		_, err := e.p.Bind(e.ctx, e.tgt, sdk.BindRequest{CertRef: shop3.ref, Bindings: []sdk.Binding{shopSNI}})
		wantErr(t, "renew one of two places of a shared SNI certkey", err, codes.FailedPrecondition, "SHARED_CERTKEY")
		e.wantServed("shared SNI untouched", "gw_vpn_443", "shop.example.com", shop2)
		e.bind(shop3, shopSNI, otherSNI)
		e.wantServed("renewed SNI", "vs_api_443", "shop.example.com", shop3)
		e.wantServed("renewed shared SNI", "gw_vpn_443", "shop.example.com", shop3)
		inv := e.inventory()
		if b := inv[shop3.ref].Bindings; len(b) != 2 || !b[0].SNI || !b[1].SNI {
			t.Errorf("overlap=%v: Inventory bindings of %s: %v", overlap, shop3.ref, b)
		}
		if _, ok := inv[shop.ref]; ok {
			t.Errorf("overlap=%v: %s, superseded in place, still listed", overlap, shop.ref)
		}
	}
}
