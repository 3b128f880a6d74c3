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

// waitInSync polls cm/sync-status for a little while; a group that is still syncing is reported,
// not failed.
func (d *device) waitInSync(ctx context.Context) (string, error) {
	deadline := time.Now().Add(syncPollFor)
	for {
		status, summary, err := d.c.SyncStatus(ctx)
		if err != nil {
			return "", d.deviceError(ctx, "read sync status", err)
		}
		if status == "In Sync" || time.Now().After(deadline) {
			if summary != "" && status != "In Sync" {
				status += " (" + summary + ")"
			}
			return status, nil
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
// When something was deleted it saves sys config (and config-syncs, with sync_device_group).
func (*Plugin) Cleanup(ctx context.Context, t sdk.Target, objects []sdk.ObjectRef) ([]sdk.CleanupResult, error) {
	var out []sdk.CleanupResult
	err := withDevice(ctx, t, func(d *device) error {
		profiles, err := icontrol.List[icontrol.ClientSSLProfile](ctx, d.c, icontrol.PathClientSSL, nil)
		if err != nil {
			return d.deviceError(ctx, "list client-ssl profiles", err)
		}
		usedBy := map[string][]string{}
		for _, p := range profiles {
			for _, e := range p.Entries() {
				for _, ref := range []string{e.Cert, e.Key, noneToEmpty(e.Chain)} {
					if ref != "" && !slices.Contains(usedBy[ref], p.Path()) {
						usedBy[ref] = append(usedBy[ref], p.Path())
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
		removed := false
		for _, obj := range objects {
			res := d.cleanupOne(ctx, obj, usedBy, listCerts)
			removed = removed || res.Removed
			out = append(out, res)
		}
		if !removed {
			return nil
		}
		// The deletions are live at once; saved (and synced) they survive a reboot and leave the
		// device neither unsaved nor out of sync with its group.
		if err := d.c.SaveConfig(ctx); err != nil {
			return d.commitFailure(ctx, "save sys config", err, "the superseded objects are deleted, but save sys config on %s failed", d.address)
		}
		if d.syncGroup != "" {
			if err := d.c.ConfigSync(ctx, d.syncGroup); err != nil {
				return d.commitFailure(ctx, "config-sync", err, "the deletions are saved, but config-sync to device group %s failed", d.syncGroup)
			}
			if _, err := d.waitInSync(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
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
					if strings.HasPrefix(c, stem(ref.path)+"_") && strings.HasSuffix(c, ".crt") && !inUse(c) {
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
