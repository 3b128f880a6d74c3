package f5bigip_test

import (
	"testing"

	f5bigip "github.com/certfleet/certfleet/plugins/f5-bigip"
	"github.com/certfleet/certfleet/plugins/f5-bigip/bigipsim"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Finding 5: after a renewal's Cleanup the BIG-IP is neither unsaved nor out of sync with its
// device group (the deletions are live at once, like every change on a BIG-IP).
func TestCleanupLeavesTheDeviceSavedAndInSync(t *testing.T) {
	t.Parallel()
	sim := startSim(t, bigipsim.DefaultConfig())
	tgt := target(sim)
	p, _ := launch(t, "info")
	ctx := ctxFor(t)
	bindings := []sdk.Binding{{Kind: f5bigip.KindVirtual, Name: "vs_www"}}
	oldCSR, oldImp, _ := enroll(t, p, tgt, testCA(t), "cleanup", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: oldImp.CertRef, KeyRef: oldCSR.KeyRef, Bindings: bindings}); err != nil {
		t.Fatal(err)
	}
	newCSR, newImp, _ := enroll(t, p, tgt, testCA(t), "cleanup", sdk.KeySpec{Type: sdk.KeyTypeECDSA, Bits: 256})
	if _, err := p.Bind(ctx, tgt, sdk.BindRequest{CertRef: newImp.CertRef, KeyRef: newCSR.KeyRef, Bindings: bindings}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Commit(ctx, tgt, sdk.CommitRequest{}); err != nil {
		t.Fatal(err)
	}
	res, err := p.Cleanup(ctx, tgt, []sdk.ObjectRef{{CertRef: oldImp.CertRef, KeyRef: oldCSR.KeyRef}})
	if err != nil || len(res) != 1 || !res[0].Removed {
		t.Fatalf("Cleanup: %+v %v", res, err)
	}
	if sim.Unsaved() || !sim.InSync("dg_failover") {
		t.Fatalf("after Cleanup: unsaved %v, in sync %v", sim.Unsaved(), sim.InSync("dg_failover"))
	}
	for _, k := range sim.KeyPaths() {
		if k == oldCSR.KeyRef {
			t.Fatalf("the old key %s is still on the device", k)
		}
	}
}
