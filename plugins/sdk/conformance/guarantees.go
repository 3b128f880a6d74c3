package conformance

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

// The checks in this file are the guarantees the core's crash-resume, batching and concurrency
// rely on (see plugins/sdk/AUTHORING.md). Each one is shown to catch a deliberately broken copy of
// the pemdir plugin in broken_test.go.

// concurrentCertificates is how many certificates the concurrency check enrolls at once.
const concurrentCertificates = 4

// testGenerateCSRRetried: a run that dies during GenerateCSR, or loses its answer, has recorded no
// key_ref; on resume the core calls GenerateCSR again with the same attempt_id. The device must then
// hold at most one key of that attempt: the second call reused the first call's key (same key_ref,
// same public key) or removed it, so that a certificate for the first call's key can no longer be
// imported anywhere the first answer pointed. The second answer must work as any other.
func (s *suite) testGenerateCSRRetried(t T) {
	req := s.csrRequest("attempt-twice", s.keySpecs()[0])
	first, err := s.p.GenerateCSR(s.ctx(t), s.cfg.Target, req)
	if err != nil {
		t.Fatalf("GenerateCSR: %v", err)
	}
	second, err := s.p.GenerateCSR(s.ctx(t), s.cfg.Target, req)
	if err != nil {
		t.Fatalf("GenerateCSR again with the same attempt_id (a resumed run whose first answer was lost does this): %v", err)
	}
	firstCSR, secondCSR := checkCSR(t, req, first), checkCSR(t, req, second)
	if sdk.PublicKeysEqual(firstCSR.PublicKey, secondCSR.PublicKey) {
		if first.KeyRef != second.KeyRef {
			t.Errorf("GenerateCSR again with the same attempt_id reused the key under key_ref %q, the first call %q: one key, one reference", second.KeyRef, first.KeyRef)
		}
	} else {
		// The first call's key must be gone: nothing may install a certificate for it.
		stale, err := s.ca.SignCSR(first.PEM, 30*24*time.Hour)
		if err != nil {
			t.Fatalf("sign the first CSR: %v", err)
		}
		res, err := s.p.ImportCert(s.ctx(t), s.cfg.Target, sdk.ImportRequest{KeyRef: first.KeyRef, CertPEM: sdk.EncodeCertificatePEM(stale),
			ChainPEM: s.ca.ChainPEM(), NameHint: req.NameHint})
		if err == nil {
			s.cleanupQuietly(t, sdk.ObjectRef{CertRef: res.CertRef, KeyRef: first.KeyRef})
			t.Fatalf("after GenerateCSR was called twice with one attempt_id, the first call's key (key_ref %q) is still on the device (a certificate for it was imported as %s): a lost answer leaves a key nobody records", first.KeyRef, res.CertRef)
		}
		wantCode(t, "ImportCert of a certificate for the key the first call of the attempt made", err, codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition)
	}
	cert, err := s.ca.SignCSR(second.PEM, 30*24*time.Hour)
	if err != nil {
		t.Fatalf("sign the second CSR: %v", err)
	}
	res, err := s.p.ImportCert(s.ctx(t), s.cfg.Target, sdk.ImportRequest{KeyRef: second.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert),
		ChainPEM: s.ca.ChainPEM(), NameHint: req.NameHint})
	if err != nil {
		t.Fatalf("ImportCert against the key of the repeated GenerateCSR: %v", err)
	}
	s.cleanupQuietly(t, sdk.ObjectRef{CertRef: res.CertRef, KeyRef: second.KeyRef})
}

// cleanupQuietly removes what a check made, when the plugin can; the check's verdict is made.
func (s *suite) cleanupQuietly(t T, o sdk.ObjectRef) {
	if !s.cfg.supports(FeatureCleanup) {
		return
	}
	if _, err := s.p.Cleanup(s.ctx(t), s.cfg.Target, []sdk.ObjectRef{o}); err != nil {
		t.Logf("could not remove %+v after the check: %v", o, err)
	}
}

// testImportIdempotent: a run that dies after ImportCert but before recording its answer calls it
// again with the same request on resume. The second call must succeed with the same cert_ref, and
// the device must hold the certificate once.
func (s *suite) testImportIdempotent(t T) {
	req := s.csrRequest("import-twice", s.keySpecs()[0])
	csr, err := s.p.GenerateCSR(s.ctx(t), s.cfg.Target, req)
	if err != nil {
		t.Fatalf("GenerateCSR: %v", err)
	}
	cert, err := s.ca.SignCSR(csr.PEM, 30*24*time.Hour)
	if err != nil {
		t.Fatalf("sign CSR: %v", err)
	}
	imp := sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: s.ca.ChainPEM(), NameHint: "import-twice"}
	first, err := s.p.ImportCert(s.ctx(t), s.cfg.Target, imp)
	if err != nil {
		t.Fatalf("ImportCert: %v", err)
	}
	second, err := s.p.ImportCert(s.ctx(t), s.cfg.Target, imp)
	if err != nil {
		t.Fatalf("ImportCert again with the same request (a resumed run does this): %v", err)
	}
	if second.CertRef != first.CertRef {
		t.Errorf("ImportCert again returned cert_ref %q, the first call %q: a resumed run must get the same object", second.CertRef, first.CertRef)
	}
	certs, err := s.p.Inventory(s.ctx(t), s.cfg.Target)
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	want := sdk.Describe(cert).Serial
	var refs []string
	for _, c := range certs {
		if c.Serial == want && !c.IsCA {
			refs = append(refs, c.CertRef)
		}
	}
	if len(refs) != 1 {
		t.Errorf("after importing one certificate twice, Inventory lists serial %s %d times (%v), want once", want, len(refs), refs)
	}
}

// testCleanupIdempotent: Cleanup is retried when its answer is lost; the second call for objects
// already removed must not fail, and must not bring anything back.
func (s *suite) testCleanupIdempotent(t T) {
	s.cfg.skipUnsupported(t, FeatureCleanup, "there is no Cleanup to call twice")
	cert := s.enroll(t, "cleanup-twice")
	objects := []sdk.ObjectRef{{CertRef: cert.certRef, KeyRef: cert.keyRef}}
	first, err := s.p.Cleanup(s.ctx(t), s.cfg.Target, objects)
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if len(first) != 1 || !first[0].Removed {
		t.Fatalf("Cleanup of the unbound %s: %+v, want it removed", cert.certRef, first)
	}
	second, err := s.p.Cleanup(s.ctx(t), s.cfg.Target, objects)
	if err != nil {
		t.Fatalf("Cleanup again of objects already removed (a retried call does this): %v", err)
	}
	if len(second) != 1 || second[0].Object != objects[0] {
		t.Errorf("Cleanup again: results %+v, want one for %+v", second, objects[0])
	}
	if _, ok := s.inventory(t)[cert.certRef]; ok {
		t.Errorf("after two Cleanups, Inventory lists %s", cert.certRef)
	}
}

// testConcurrentCertificates: the core works on several certificates of one device at once (its
// per-device limit may be above one), so calls for different certificates must not mix: each
// GenerateCSR's key_ref stays valid while others run, and each ImportCert lands on its own key.
func (s *suite) testConcurrentCertificates(t T) {
	spec := s.keySpecs()[0]
	reqs := make([]sdk.CSRRequest, concurrentCertificates)
	csrs := make([]sdk.CSR, concurrentCertificates)
	errs := make([]error, concurrentCertificates)
	var wg sync.WaitGroup
	for i := range reqs {
		reqs[i] = s.csrRequest(fmt.Sprintf("concurrent-%d", i), spec)
		wg.Add(1)
		go func() {
			defer wg.Done()
			csrs[i], errs[i] = s.p.GenerateCSR(s.ctx(t), s.cfg.Target, reqs[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent GenerateCSR %d: %v", i, err)
		}
	}
	imports := make([]sdk.ImportRequest, concurrentCertificates)
	serials := make([]string, concurrentCertificates)
	for i, csr := range csrs {
		cert, err := s.ca.SignCSR(csr.PEM, 30*24*time.Hour)
		if err != nil {
			t.Fatalf("sign CSR %d: %v", i, err)
		}
		serials[i] = sdk.Describe(cert).Serial
		imports[i] = sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: s.ca.ChainPEM(), NameHint: reqs[i].NameHint}
	}
	results := make([]sdk.ImportResult, concurrentCertificates)
	for i := range imports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.p.ImportCert(s.ctx(t), s.cfg.Target, imports[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent ImportCert %d (key_ref %s): %v", i, imports[i].KeyRef, err)
		}
	}
	if t.Failed() {
		return
	}
	inv := s.inventory(t)
	seen := map[string]bool{}
	for i, r := range results {
		dc, ok := inv[r.CertRef]
		switch {
		case !ok:
			t.Errorf("Inventory does not list the concurrently imported %s", r.CertRef)
		case dc.Serial != serials[i]:
			t.Errorf("%s holds serial %s, want %s: concurrent imports were mixed up", r.CertRef, dc.Serial, serials[i])
		case seen[r.CertRef]:
			t.Errorf("two concurrent imports returned the same cert_ref %s", r.CertRef)
		}
		seen[r.CertRef] = true
	}
}

// testBindErrorLeavesDevice: a Bind that fails (here: its last binding names an object the device
// lacks) must leave every binding as it was, so the core never leaves a half-bound service.
func (s *suite) testBindErrorLeavesDevice(t T) {
	cert := s.enroll(t, "bind-error")
	before, err := s.p.Inventory(s.ctx(t), s.cfg.Target)
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	bindings := append(append([]sdk.Binding{}, s.cfg.Bindings...), s.cfg.UnknownBinding)
	_, err = s.p.Bind(s.ctx(t), s.cfg.Target, sdk.BindRequest{CertRef: cert.certRef, KeyRef: cert.keyRef, Bindings: bindings})
	// Which error depends on the device (a plugin may refuse the set as a whole before looking the
	// objects up); that it fails, and changes nothing, does not.
	wantCode(t, fmt.Sprintf("Bind to %v ending with the unknown %v", s.cfg.Bindings, s.cfg.UnknownBinding), err,
		codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition)
	after, err := s.p.Inventory(s.ctx(t), s.cfg.Target)
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	if got, want := inventoryShape(after), inventoryShape(before); got != want {
		t.Errorf("a failed Bind changed the device:\nbefore %s\nafter  %s", want, got)
	}
}

// testRollbackOfPartialBind: a Bind of some of a device's bindings is rolled back (the core does
// this when a certificate fails its served check) after another certificate was bound elsewhere on
// the device. Rollback must restore exactly what its Bind changed and nothing else.
func (s *suite) testRollbackOfPartialBind(t T) {
	s.cfg.skipUnsupported(t, FeatureRollback, "there is no Rollback of a partial Bind")
	if len(s.cfg.Bindings) < 2 {
		t.Skip("needs two Config.Bindings: one to bind and roll back, one that must stay as it is")
	}
	rolled, other := s.cfg.Bindings[0], s.cfg.Bindings[1]
	inv := s.inventory(t)
	var wasAtRolled string
	for ref := range inv {
		if boundTo(inv, ref, rolled) {
			wasAtRolled = ref
		}
	}
	a, b := s.enroll(t, "partial-a"), s.enroll(t, "partial-b")
	bound, err := s.p.Bind(s.ctx(t), s.cfg.Target, sdk.BindRequest{CertRef: a.certRef, KeyRef: a.keyRef, Bindings: []sdk.Binding{rolled}})
	if sdk.CodeOf(err) == codes.FailedPrecondition {
		// Some devices cannot move one place of a certificate bound at several (Citrix ADC updates
		// a shared certkey in place); refusing, with a reason, is allowed.
		t.Skipf("the plugin refuses to bind %v alone: %v", rolled, err)
	}
	if err != nil {
		t.Fatalf("Bind %s to %v: %v", a.certRef, rolled, err)
	}
	if _, err := s.p.Bind(s.ctx(t), s.cfg.Target, sdk.BindRequest{CertRef: b.certRef, KeyRef: b.keyRef, Bindings: []sdk.Binding{other}}); err != nil {
		t.Fatalf("Bind %s to %v: %v", b.certRef, other, err)
	}
	if err := s.p.Rollback(s.ctx(t), s.cfg.Target, bound.RollbackToken); err != nil {
		t.Fatalf("Rollback of the Bind to %v: %v", rolled, err)
	}
	inv = s.inventory(t)
	if !boundTo(inv, b.certRef, other) {
		t.Errorf("Rollback of a Bind to %v undid the later Bind of %s to %v", rolled, b.certRef, other)
	}
	if boundTo(inv, a.certRef, rolled) {
		t.Errorf("after Rollback, %s is still bound at %v", a.certRef, rolled)
	}
	if wasAtRolled != "" && !boundTo(inv, wasAtRolled, rolled) {
		t.Errorf("after Rollback, %v does not serve %s again", rolled, wasAtRolled)
	}
	s.commit(t, "partial bind and rollback")
}

// testInventoryAfterCommit: after Commit the engine verifies through Inventory that the new
// certificate is bound where it asked; a plugin that shows only staged changes fails it.
func (s *suite) testInventoryAfterCommit(t T) {
	cert := s.enroll(t, "inventory-after-commit")
	if _, err := s.p.Bind(s.ctx(t), s.cfg.Target, sdk.BindRequest{CertRef: cert.certRef, KeyRef: cert.keyRef, Bindings: s.cfg.Bindings}); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	s.commit(t, "inventory after commit")
	s.expectBound(t, "after Commit", cert)
	s.expectServed(t, "after Commit", cert)
}

// testDeadlineEveryCall: with the device stalled (Config.Stall), every changing call given a short
// deadline must give up, and must not complete later: the core has recorded it as failed. The host
// sees DeadlineExceeded whatever the plugin does, so what is checked is the device afterwards.
func (s *suite) testDeadlineEveryCall(t T) {
	if s.cfg.Stall == nil {
		t.Skip("Config.Stall is not set: a device that stops answering is needed to check deadlines inside calls")
	}
	pending := s.enroll(t, "deadline-import")
	spare := s.enroll(t, "deadline-cleanup")
	var prevToken []byte
	if s.cfg.supports(FeatureRollback) {
		// A token that, if applied, would move a binding: bind spare, remember how to undo it.
		res, err := s.p.Bind(s.ctx(t), s.cfg.Target, sdk.BindRequest{CertRef: spare.certRef, KeyRef: spare.keyRef, Bindings: s.cfg.Bindings[:1]})
		if err != nil {
			t.Fatalf("Bind: %v", err)
		}
		prevToken = res.RollbackToken
		s.commit(t, "deadline setup")
	}
	victim := s.enroll(t, "deadline-victim")
	csr, err := s.p.GenerateCSR(s.ctx(t), s.cfg.Target, s.csrRequest("deadline-new", s.keySpecs()[0]))
	if err != nil {
		t.Fatalf("GenerateCSR: %v", err)
	}
	cert, err := s.ca.SignCSR(csr.PEM, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.p.Inventory(s.ctx(t), s.cfg.Target)
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}

	calls := map[string]func(ctx context.Context) error{
		"Inventory": func(ctx context.Context) error { _, err := s.p.Inventory(ctx, s.cfg.Target); return err },
		"ImportCert": func(ctx context.Context) error {
			_, err := s.p.ImportCert(ctx, s.cfg.Target, sdk.ImportRequest{KeyRef: csr.KeyRef, CertPEM: sdk.EncodeCertificatePEM(cert), ChainPEM: s.ca.ChainPEM(), NameHint: "deadline-new"})
			return err
		},
		"Bind": func(ctx context.Context) error {
			_, err := s.p.Bind(ctx, s.cfg.Target, sdk.BindRequest{CertRef: pending.certRef, KeyRef: pending.keyRef, Bindings: s.cfg.Bindings})
			return err
		},
	}
	if s.cfg.supports(FeatureCleanup) {
		calls["Cleanup"] = func(ctx context.Context) error {
			_, err := s.p.Cleanup(ctx, s.cfg.Target, []sdk.ObjectRef{{CertRef: victim.certRef, KeyRef: victim.keyRef}})
			return err
		}
	}
	if prevToken != nil {
		calls["Rollback"] = func(ctx context.Context) error { return s.p.Rollback(ctx, s.cfg.Target, prevToken) }
	}

	release, err := s.cfg.Stall(s.ctx(t))
	if err != nil {
		t.Fatalf("Config.Stall: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]error{}
	for name, call := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), s.deadlineTimeout())
			defer cancel()
			err := call(ctx)
			mu.Lock()
			got[name] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	// The plugin's copy of the deadline ends a little after the caller's (gRPC sends the time
	// left, measured again on arrival): give it time to pass before the device answers again.
	time.Sleep(s.deadlineTimeout() / 2)
	release()
	// One sub-check per call, so that a call the plugin does not have is reported skipped with
	// its reason rather than silently left out.
	for _, name := range []string{"Inventory", "ImportCert", "Bind", "Rollback", "Cleanup"} {
		t.Run(name, func(t T) {
			switch {
			case name == "Rollback":
				s.cfg.skipUnsupported(t, FeatureRollback, "Rollback is not called")
			case name == "Cleanup":
				s.cfg.skipUnsupported(t, FeatureCleanup, "Cleanup is not called")
			}
			if code := sdk.CodeOf(got[name]); code != codes.DeadlineExceeded {
				t.Errorf("%s on a stalled device with a %v deadline: %v (code %v), want DeadlineExceeded", name, s.deadlineTimeout(), got[name], code)
			}
		})
	}
	// A plugin that ignored its deadline goes on once the device answers again.
	time.Sleep(s.settleTime())
	after, err := s.p.Inventory(s.ctx(t), s.cfg.Target)
	if err != nil {
		t.Fatalf("Inventory after the stall: %v", err)
	}
	if got, want := inventoryShape(after), inventoryShape(before); got != want {
		t.Errorf("calls that ran out of time changed the device once it answered again:\nbefore %s\nafter  %s", want, got)
	}
}

func (s *suite) deadlineTimeout() time.Duration {
	if s.cfg.StallDeadline > 0 {
		return s.cfg.StallDeadline
	}
	return 500 * time.Millisecond
}

func (s *suite) settleTime() time.Duration {
	if s.cfg.StallSettle > 0 {
		return s.cfg.StallSettle
	}
	return time.Second
}
