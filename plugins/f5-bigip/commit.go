package f5bigip

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/f5-bigip/icontrol"
	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

// syncPoll is how often and how long Commit watches the sync status after a config-sync.
var (
	syncPollEvery = 500 * time.Millisecond
	syncPollFor   = 15 * time.Second
)

// Commit saves the running configuration (changes on BIG-IP are live at once; save makes them
// survive a reboot) and, with option sync_device_group, pushes it to the group.
func (*Plugin) Commit(ctx context.Context, t sdk.Target, req sdk.CommitRequest) (sdk.CommitResult, error) {
	var out sdk.CommitResult
	err := withDevice(ctx, t, func(d *device) error {
		if err := d.requireActive(ctx); err != nil {
			return err
		}
		if err := d.c.SaveConfig(ctx); err != nil {
			return d.commitFailure(ctx, "save sys config", err,
				"save sys config on %s failed; the changes are live but would not survive a reboot", d.address)
		}
		out = sdk.CommitResult{Changed: true, Message: "saved sys config"}
		sdk.Logger(ctx).Debug("saved sys config", "description", req.Description)
		if d.syncGroup == "" {
			return nil
		}
		if err := d.c.ConfigSync(ctx, d.syncGroup); err != nil {
			return d.commitFailure(ctx, "config-sync", err,
				"saved, but config-sync to device group %s failed; the peer still has the old configuration", d.syncGroup)
		}
		status, err := d.waitInSync(ctx)
		if err != nil {
			return err
		}
		out.Message = fmt.Sprintf("saved sys config; config-sync to %s: %s", d.syncGroup, status)
		return nil
	})
	return out, err
}

// commitFailure reports a refused save or sync as COMMIT_FAILED with the device's message; a
// cancelled call, a busy device and an authentication problem keep their own codes.
func (d *device) commitFailure(ctx context.Context, what string, err error, format string, args ...any) error {
	e := sdk.AsError(d.deviceError(ctx, what, err))
	switch {
	case sdk.FromContext(ctx) != nil, e.Retryable(), e.Code == codes.Unauthenticated, e.Code == codes.PermissionDenied:
		return e
	}
	return sdk.FailedPrecondition(sdk.ReasonCommitFailed, format, args...).WithVendor(e.VendorCode, e.VendorMessage).WithCause(e.Err)
}

// waitInSync polls cm/sync-status until the group is "In Sync". A group that is Disconnected
// (f5-ansible's bigip_configsync_action fails on it) or not in sync in time fails the Commit with
// a retryable error: the change is saved here, but the peer may not have it.
func (d *device) waitInSync(ctx context.Context) (string, error) {
	deadline := time.Now().Add(syncPollFor)
	for {
		status, summary, err := d.c.SyncStatus(ctx)
		if err != nil {
			return "", d.deviceError(ctx, "read sync status", err)
		}
		if status == "In Sync" {
			return status, nil
		}
		if status == "Disconnected" || time.Now().After(deadline) {
			if summary != "" {
				status += " (" + summary + ")"
			}
			return "", &sdk.Error{Code: codes.Unavailable, Reason: ReasonSyncIncomplete,
				Message: fmt.Sprintf("saved sys config on %s, but device group %s is %s after config-sync, not In Sync; the peer may not have the change. Check the group's connectivity (tmsh show cm sync-status) and Commit again",
					d.address, d.syncGroup, status)}
		}
		select {
		case <-ctx.Done():
			return "", sdk.FromContext(ctx)
		case <-time.After(syncPollEvery):
		}
	}
}

// Cleanup deletes certificates (with their chain bundle) and keys (with their CSR) that no
// client-ssl profile uses; an object still in use is kept, and the result says which profile uses it.
func (*Plugin) Cleanup(ctx context.Context, t sdk.Target, objects []sdk.ObjectRef) ([]sdk.CleanupResult, error) {
	var out []sdk.CleanupResult
	err := withDevice(ctx, t, func(d *device) error {
		if err := d.requireActive(ctx); err != nil {
			return err
		}
		profiles, err := icontrol.List[icontrol.ClientSSLProfile](ctx, d.c, icontrol.PathClientSSL, nil)
		if err != nil {
			return d.deviceError(ctx, "list client-ssl profiles", err)
		}
		// A PCI key's own profile goes with the key when no virtual server carries it and no
		// profile inherits from it; its objects are then not "in use".
		carriers, err := d.carriers(ctx)
		if err != nil {
			return err
		}
		idleKeyProfiles := map[string]bool{}
		for _, p := range profiles {
			if p.Description == keyProfileDescription && len(carriers[p.Path()]) == 0 && !slices.ContainsFunc(profiles, func(c icontrol.ClientSSLProfile) bool { return c.DefaultsFrom == p.Path() }) {
				idleKeyProfiles[p.Path()] = true
			}
		}
		usedBy := map[string][]string{}
		for _, p := range profiles {
			if idleKeyProfiles[p.Path()] && d.ownedByRequest(p, objects) {
				continue
			}
			for _, e := range p.Entries() {
				user := p.Path()
				if vs := carriers[p.Path()]; len(vs) > 0 {
					user += " (on virtual server " + strings.Join(vs, ", ") + ")"
				}
				for _, ref := range []string{e.Cert, e.Key, noneToEmpty(e.Chain)} {
					if ref != "" && !slices.Contains(usedBy[ref], user) {
						usedBy[ref] = append(usedBy[ref], user)
					}
				}
			}
		}
		certsIn := map[string][]string{} // partition → certificate paths, read when needed
		listCerts := func(partition string) ([]string, error) {
			if paths, ok := certsIn[partition]; ok {
				return paths, nil
			}
			certs, err := icontrol.List[icontrol.CertFile](ctx, d.c, icontrol.PathFileCert, url.Values{"$filter": {"partition eq " + partition}})
			if err != nil {
				return nil, d.deviceError(ctx, "list certificates of partition "+partition, err)
			}
			paths := make([]string, 0, len(certs))
			for _, c := range certs {
				paths = append(paths, describe(c).CertRef)
			}
			certsIn[partition] = paths
			return paths, nil
		}
		for _, obj := range objects {
			if ref, err := parseKeyRef(obj.KeyRef); obj.KeyRef != "" && err == nil && idleKeyProfiles[keyProfilePath(ref.path)] {
				if err := d.c.Send(ctx, http.MethodDelete, icontrol.ObjectPath(icontrol.PathClientSSL, keyProfilePath(ref.path)), nil, nil); err != nil && !icontrol.IsNotFound(err) {
					out = append(out, sdk.CleanupResult{Object: obj, Reason: fmt.Sprintf("%s: %v", keyProfilePath(ref.path), sdk.AsError(d.deviceError(ctx, "delete", err)).Error())})
					continue
				}
			}
			out = append(out, d.cleanupOne(ctx, obj, usedBy, listCerts))
		}
		return nil
	})
	return out, err
}

// ownedByRequest tells whether a PCI key's profile belongs to a key the Cleanup request names.
func (d *device) ownedByRequest(p icontrol.ClientSSLProfile, objects []sdk.ObjectRef) bool {
	for _, obj := range objects {
		if ref, err := parseKeyRef(obj.KeyRef); obj.KeyRef != "" && err == nil && keyProfilePath(ref.path) == p.Path() {
			return true
		}
	}
	return false
}

// cleanupOne removes one object. Given only a key (an operation abandoned after ImportCert),
// it also removes the certificates made for that key, which are named after it.
func (d *device) cleanupOne(ctx context.Context, obj sdk.ObjectRef, usedBy map[string][]string, listCerts func(string) ([]string, error)) sdk.CleanupResult {
	res := sdk.CleanupResult{Object: obj}
	var kept, failed []string
	remove := func(collection, path string) {
		err := d.c.Send(ctx, http.MethodDelete, icontrol.ObjectPath(collection, path), nil, nil)
		if err != nil && !icontrol.IsNotFound(err) {
			failed = append(failed, fmt.Sprintf("%s: %v", path, sdk.AsError(d.deviceError(ctx, "delete", err)).Error()))
		}
	}
	inUse := func(path string) bool {
		if users := usedBy[path]; len(users) > 0 {
			sort.Strings(users)
			kept = append(kept, fmt.Sprintf("%s is used by client-ssl profile %s", path, strings.Join(users, ", ")))
			return true
		}
		return false
	}
	if obj.CertRef != "" {
		cert, err := d.resolve(obj.CertRef)
		switch {
		case err != nil:
			failed = append(failed, fmt.Sprintf("cert_ref: %v", err))
		case !inUse(cert):
			remove(icontrol.PathFileCert, cert)
			if chain := chainPath(cert); len(usedBy[chain]) == 0 {
				remove(icontrol.PathFileCert, chain)
			}
		}
	}
	if obj.KeyRef != "" {
		ref, err := parseKeyRef(obj.KeyRef)
		switch {
		case err != nil:
			failed = append(failed, err.Error())
		case !inUse(ref.path):
			if obj.CertRef == "" {
				partition, _ := splitPath(ref.path)
				paths, err := listCerts(partition)
				if err != nil {
					failed = append(failed, err.Error())
				}
				for _, c := range paths {
					if (c == pciCertPath(ref.path) || strings.HasPrefix(c, stem(ref.path)+"_")) && strings.HasSuffix(c, ".crt") && !inUse(c) {
						remove(icontrol.PathFileCert, c)
					}
				}
			}
			if len(kept) == 0 {
				remove(icontrol.PathFileCSR, csrPath(ref.path))
				remove(icontrol.PathFileKey, ref.path)
			}
		}
	}
	res.Removed = len(kept) == 0 && len(failed) == 0
	res.Reason = strings.Join(append(kept, failed...), "; ")
	if !res.Removed {
		sdk.Logger(ctx).Debug("object kept", "cert_ref", obj.CertRef, "key_ref", obj.KeyRef, "reason", res.Reason)
	}
	return res
}
