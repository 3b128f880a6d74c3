package citrixnitro_test

import (
	"testing"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitrosim"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Finding 5: a Cleanup that deleted a certkey saves the configuration, so the appliance is not
// left with unsaved deletions (and the next reboot does not bring the certkey back over deleted
// files). A Cleanup that removed nothing does not save.
func TestCleanupSavesWhatItDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nitrosim.DefaultConfig(), nil)
	unused := e.enroll("unused", "unused.example.com")
	before := e.sim.Saves("")
	res, err := e.p.Cleanup(e.ctx, e.tgt, []sdk.ObjectRef{{CertRef: unused.ref}})
	if err != nil || !res[0].Removed {
		t.Fatalf("Cleanup: %+v %v", res, err)
	}
	if n := e.sim.Saves("") - before; n != 1 {
		t.Fatalf("%d saves after a Cleanup that deleted a certkey, want 1", n)
	}
	if _, err := e.p.Cleanup(e.ctx, e.tgt, []sdk.ObjectRef{{CertRef: "certfleet-never-made"}}); err != nil {
		t.Fatal(err)
	}
}
