package paloaltopanos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Cleanup deletes certificate entries (with their on-box keys) from the candidate configuration,
// keeping any that a profile or GlobalProtect object still uses, or that the device refuses to
// delete because of another reference. On PAN-OS cert_ref and key_ref name the same entry.
// The deletions are committed at once (cleanup_commit, on by default), so nothing certfleet did
// is left uncommitted in the candidate configuration for someone else's commit to pick up.
func (p *Plugin) Cleanup(ctx context.Context, t sdk.Target, objects []sdk.ObjectRef) ([]sdk.CleanupResult, error) {
	var out []sdk.CleanupResult
	err := p.withDevice(ctx, t, func(d *device) error {
		v, err := d.readView(ctx)
		if err != nil {
			return err
		}
		bound := v.bindings()
		removed := 0
		for _, obj := range objects {
			res := sdk.CleanupResult{Object: obj}
			var refs []string
			for _, r := range []string{obj.CertRef, obj.KeyRef} {
				if r != "" && !slices.Contains(refs, r) {
					refs = append(refs, r)
				}
			}
			if obj.CertRef == "" && obj.KeyRef == "" {
				res.Reason = "neither cert_ref nor key_ref given"
				out = append(out, res)
				continue
			}
			var reasons []string
			res.Removed = true
			for _, r := range refs {
				ok, reason, err := d.remove(ctx, v, bound, r)
				if err != nil {
					return err
				}
				if ok && reason == "" {
					removed++
				}
				if !ok {
					res.Removed = false
				}
				if reason != "" {
					reasons = append(reasons, reason)
				}
			}
			res.Reason = strings.Join(reasons, "; ")
			out = append(out, res)
		}
		if removed > 0 && d.cleanupCommit {
			if _, err := d.commit(ctx, "certfleet: remove superseded certificates"); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// remove deletes one entry. It returns whether the entry is gone and, when it is kept or was
// already absent, why.
func (d *device) remove(ctx context.Context, v *view, bound map[string][]sdk.Binding, r string) (bool, string, error) {
	loc, name := parseRef(r)
	var entry *certEntry
	for i := range v.certs {
		if v.certs[i].loc == loc && v.certs[i].name == name {
			entry = &v.certs[i]
		}
	}
	if entry == nil {
		// Outside the locations Inventory reads, or gone already: check directly.
		e, err := d.getCert(ctx, loc, name)
		if err != nil {
			return false, "", err
		}
		if e == nil {
			return true, "not on the device (already removed)", nil
		}
		entry = e
	}
	if bs := bound[entry.ref()]; len(bs) > 0 {
		names := make([]string, len(bs))
		for i, b := range bs {
			names[i] = b.Kind + "/" + b.Name
		}
		return false, fmt.Sprintf("still bound to %s", strings.Join(names, ", ")), nil
	}
	xp, err := d.entryXPath(loc.xpath()+"/certificate", name)
	if err != nil {
		return false, "", err
	}
	if err := d.client.Delete(ctx, xp); err != nil {
		if notFound(err) {
			return true, "not on the device (already removed)", nil
		}
		if cerr := sdk.FromContext(ctx); cerr != nil {
			return false, "", cerr
		}
		var apiErr *panosclient.APIError
		if errors.As(err, &apiErr) {
			// Referenced elsewhere (code 10, or a message naming references) or refused.
			return false, "the device refused to delete it: " + apiErr.Message(), nil
		}
		return false, "", d.fail(ctx, err, "delete certificate %s", r)
	}
	sdk.Logger(ctx).Info("deleted certificate", "device", d.target.Name, "cert_ref", r)
	return true, "", nil
}
