// Package brokenpemdir is the pemdir example plugin with one contract rule broken on purpose, chosen
// by the CERTFLEET_BROKEN environment variable. The conformance suite's own tests run against it to
// show that each check catches the plugin that breaks its rule. Every break is one a real plugin
// could ship: nothing here is reachable from a production build.
package brokenpemdir

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"

	pemdir "github.com/certfleet/certfleet/examples/plugin-pemdir"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Breaks, each the value of CERTFLEET_BROKEN.
const (
	// None: pemdir as it is; the control case.
	None = ""
	// ImportNotIdempotent: ImportCert refuses a certificate it already holds (AlreadyExists), as a
	// plugin that only ever "creates" does.
	ImportNotIdempotent = "import-not-idempotent"
	// CleanupNotIdempotent: Cleanup fails with NotFound when an object is already gone.
	CleanupNotIdempotent = "cleanup-not-idempotent"
	// SharedKeySlot: the last GenerateCSR's key is kept in the plugin value and ImportCert installs
	// against it, ignoring req.KeyRef, as a plugin modelled on a device with one pending-CSR slot
	// and no per-device serialisation would.
	SharedKeySlot = "shared-key-slot"
	// BindOneByOne: Bind changes each binding in turn and stops at the first that fails, leaving
	// the earlier ones changed.
	BindOneByOne = "bind-one-by-one"
	// RollbackSnapshotsAll: Bind's rollback token records every live link of the device, so
	// Rollback also undoes later Binds of other certificates.
	RollbackSnapshotsAll = "rollback-snapshots-all"
	// InventoryStagedOnly: Inventory shows bindings only while changes are staged (before Commit),
	// as a plugin reading a candidate configuration would.
	InventoryStagedOnly = "inventory-staged-only"
	// FingerprintsOnlyUnbound: an Inventory of fingerprints only leaves the bindings out, as a
	// plugin that takes "fingerprints only" for "the certificates alone" would.
	FingerprintsOnlyUnbound = "fingerprints-only-unbound"
	// IgnoresDeadline: ImportCert, Bind, Rollback and Cleanup run on without the caller's deadline.
	IgnoresDeadline = "ignores-deadline"
	// IgnoresAttemptID: GenerateCSR makes new names on every call whatever the attempt_id, as a
	// plugin written before the field does, so a call repeated after a lost answer leaves the
	// first call's key behind.
	IgnoresAttemptID = "ignores-attempt-id"
	// LacksRollbackAndCleanup is not a break: pemdir as a plugin for a device that cannot roll
	// back or clean up would be, declaring both unsupported in Info and answering Unimplemented.
	// The suite must skip the checks of those features, with the reason, and fail nothing.
	LacksRollbackAndCleanup = "lacks-rollback-and-cleanup"
)

// Plugin wraps pemdir with the break named by mode.
type Plugin struct {
	*pemdir.Plugin
	mode string

	mu      sync.Mutex
	lastKey string
}

// New returns pemdir broken as mode says.
func New(mode string) *Plugin { return &Plugin{Plugin: pemdir.New(), mode: mode} }

// Info reports the wrapper's own name, so the binary certfleet-plugin-brokenpemdir matches.
func (p *Plugin) Info(ctx context.Context) (sdk.Info, error) {
	info, err := p.Plugin.Info(ctx)
	info.Name = "brokenpemdir"
	if p.mode == LacksRollbackAndCleanup {
		info.Capabilities.SupportsRollback, info.Capabilities.SupportsCleanup = false, false
	}
	return info, err
}

func (p *Plugin) callCtx(ctx context.Context) context.Context {
	if p.mode == IgnoresDeadline {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// GenerateCSR remembers the last key for SharedKeySlot, and drops the attempt ID for
// IgnoresAttemptID.
func (p *Plugin) GenerateCSR(ctx context.Context, t sdk.Target, req sdk.CSRRequest) (sdk.CSR, error) {
	if p.mode == IgnoresAttemptID {
		req.AttemptID = ""
	}
	csr, err := p.Plugin.GenerateCSR(ctx, t, req)
	if err == nil && p.mode == SharedKeySlot {
		p.mu.Lock()
		p.lastKey = csr.KeyRef
		p.mu.Unlock()
	}
	return csr, err
}

// ImportCert breaks idempotency, the key slot or the deadline.
func (p *Plugin) ImportCert(ctx context.Context, t sdk.Target, req sdk.ImportRequest) (sdk.ImportResult, error) {
	switch p.mode {
	case SharedKeySlot:
		p.mu.Lock()
		if p.lastKey != "" {
			req.KeyRef = p.lastKey
		}
		p.mu.Unlock()
	case ImportNotIdempotent:
		if leaf, err := sdk.ParseCertificatePEM(req.CertPEM); err == nil {
			ref := req.KeyRef + "-" + sdk.Fingerprint(leaf)[:8]
			if _, err := os.Stat(filepath.Join(t.Address, "certs", ref)); err == nil {
				return sdk.ImportResult{}, sdk.AlreadyExists("certificate %s exists", ref)
			}
		}
	}
	return p.Plugin.ImportCert(p.callCtx(ctx), t, req)
}

// Bind breaks atomicity, the rollback token or the deadline.
func (p *Plugin) Bind(ctx context.Context, t sdk.Target, req sdk.BindRequest) (sdk.BindResult, error) {
	ctx = p.callCtx(ctx)
	switch p.mode {
	case BindOneByOne:
		var out sdk.BindResult
		merged := pemdirToken{V: 1, Links: map[string]string{}}
		for _, b := range req.Bindings {
			one := req
			one.Bindings = []sdk.Binding{b}
			res, err := p.Plugin.Bind(ctx, t, one)
			if err != nil {
				return sdk.BindResult{}, err
			}
			out.PreviousCertRefs = append(out.PreviousCertRefs, res.PreviousCertRefs...)
			var tok pemdirToken
			if err := json.Unmarshal(res.RollbackToken, &tok); err != nil {
				return sdk.BindResult{}, err
			}
			for name, ref := range tok.Links {
				merged.Links[name] = ref
			}
		}
		var err error
		out.RollbackToken, err = json.Marshal(merged)
		return out, err
	case RollbackSnapshotsAll:
		links := map[string]string{}
		dir := filepath.Join(t.Address, "live")
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if dest, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
				links[e.Name()] = filepath.Base(dest)
			}
		}
		res, err := p.Plugin.Bind(ctx, t, req)
		if err != nil {
			return res, err
		}
		res.RollbackToken, err = json.Marshal(pemdirToken{V: 1, Links: links})
		return res, err
	}
	return p.Plugin.Bind(ctx, t, req)
}

// Rollback ignores the deadline for IgnoresDeadline.
func (p *Plugin) Rollback(ctx context.Context, t sdk.Target, token []byte) error {
	if p.mode == LacksRollbackAndCleanup {
		return sdk.Unimplemented("this device cannot roll back")
	}
	return p.Plugin.Rollback(p.callCtx(ctx), t, token)
}

// Cleanup breaks idempotency or the deadline.
func (p *Plugin) Cleanup(ctx context.Context, t sdk.Target, objects []sdk.ObjectRef) ([]sdk.CleanupResult, error) {
	if p.mode == LacksRollbackAndCleanup {
		return nil, sdk.Unimplemented("this device cannot clean up")
	}
	if p.mode == CleanupNotIdempotent {
		for _, o := range objects {
			_, certErr := os.Stat(filepath.Join(t.Address, "certs", o.CertRef))
			_, keyErr := os.Stat(filepath.Join(t.Address, "keys", o.KeyRef+".key"))
			if os.IsNotExist(certErr) && os.IsNotExist(keyErr) {
				return nil, sdk.NotFound("no object %s", o.CertRef)
			}
		}
	}
	return p.Plugin.Cleanup(p.callCtx(ctx), t, objects)
}

// Inventory hides committed bindings for InventoryStagedOnly, and every binding of an Inventory
// of fingerprints only for FingerprintsOnlyUnbound.
func (p *Plugin) Inventory(ctx context.Context, t sdk.Target) ([]sdk.DeviceCertificate, error) {
	certs, err := p.Plugin.Inventory(ctx, t)
	if err == nil && p.mode == FingerprintsOnlyUnbound && sdk.FingerprintsOnly(ctx) {
		for i := range certs {
			certs[i].Bindings = nil
		}
	}
	if err != nil || p.mode != InventoryStagedOnly {
		return certs, err
	}
	if _, err := os.Stat(filepath.Join(t.Address, ".pending-commit")); err == nil {
		return certs, nil
	}
	for i := range certs {
		certs[i].Bindings = nil
	}
	return certs, nil
}

// pemdirToken is pemdir's rollback token, which the breaks rewrite.
type pemdirToken struct {
	V     int               `json:"v"`
	Links map[string]string `json:"links"`
}
