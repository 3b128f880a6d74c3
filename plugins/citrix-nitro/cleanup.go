package citrixnitro

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitro"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Cleanup removes superseded certificates: the certkeys carrying them and their files. It
// never removes one that is still bound, or one another certkey links to, and says why.
func (*Plugin) Cleanup(ctx context.Context, t sdk.Target, objects []sdk.ObjectRef) ([]sdk.CleanupResult, error) {
	var out []sdk.CleanupResult
	err := withSession(ctx, t, func(s *session) error {
		st, err := s.readState(ctx)
		if err != nil {
			return err
		}
		for _, obj := range objects {
			name := obj.CertRef
			if name == "" {
				name = obj.KeyRef
			}
			res := sdk.CleanupResult{Object: obj}
			if strings.HasPrefix(name, "ns-") {
				res.Reason = fmt.Sprintf("%q is a certificate the appliance itself made and uses; it is never removed", name)
				out = append(out, res)
				continue
			}
			if !certKeyNameRE.MatchString(name) {
				res.Reason = fmt.Sprintf("%q is not a certkey or file name this plugin makes", name)
				out = append(out, res)
				continue
			}
			res.Removed, res.Reason, err = s.cleanupOne(ctx, st, name)
			if err != nil {
				return err
			}
			out = append(out, res)
		}
		return nil
	})
	return out, err
}

// cleanupOne removes cert_ref name. It returns an error only when the appliance could not be
// asked; a refusal becomes the reason the object was kept.
func (s *session) cleanupOne(ctx context.Context, st *deviceState, name string) (bool, string, error) {
	if _, ok := st.certkeys[name]; ok && st.refOf(name) != name {
		// An in-place renewal made this certkey carry another certificate: the certkey stays
		// where it is bound; this certificate's own files go.
		removed, err := s.removeFiles(ctx, st, sslFile(name, ".crt"), sslFile(name, ".key"), sslFile(name, ".csr"))
		if err != nil {
			return false, "", err
		}
		return true, fmt.Sprintf("certkey %s now carries %s and stays; removed its old files %v", name, st.refOf(name), removed), nil
	}
	holders := st.holders(name)
	var where []string
	for _, b := range st.refBindings(name) {
		where = append(where, b.binding().String())
	}
	for _, h := range holders {
		for _, o := range st.othersOf(h) {
			where = append(where, o.binding().String())
		}
	}
	if len(where) > 0 {
		return false, "still bound at " + strings.Join(where, ", "), nil
	}
	for _, h := range holders {
		if by := st.linkedBy(h); len(by) > 0 {
			return false, fmt.Sprintf("certkey %s is the issuer that %s link to", h, strings.Join(by, ", ")), nil
		}
	}
	var files []string
	for _, h := range holders {
		ck := st.certkeys[h]
		if ck.LinkCertKeyName != "" {
			if err := s.c.Unlink(ctx, h); err != nil && !nitro.IsMissing(err) {
				if kept, reason := refused(err); kept {
					return false, "the appliance refused to unlink certkey " + h + ": " + reason, nil
				}
				return false, "", s.fail(ctx, "unlink certkey "+h, err)
			}
		}
		if err := s.c.DeleteCertKey(ctx, h); err != nil && !nitro.IsMissing(err) {
			if kept, reason := refused(err); kept {
				// Bound somewhere this plugin does not read (an SSL service or profile), say.
				return false, "the appliance refused to delete certkey " + h + ": " + reason, nil
			}
			return false, "", s.fail(ctx, "delete certkey "+h, err)
		}
		st.forget(h)
		files = append(files, ck.Cert, ck.Key)
	}
	files = append(files, sslFile(name, ".crt"), sslFile(name, ".key"), sslFile(name, ".csr"))
	removed, err := s.removeFiles(ctx, st, files...)
	if err != nil {
		return false, "", err
	}
	switch {
	case len(holders) > 0:
		return true, fmt.Sprintf("deleted certkey %s and files %v", strings.Join(holders, ", "), removed), nil
	case len(removed) > 0:
		return true, fmt.Sprintf("removed files %v", removed), nil
	}
	return true, "nothing of that name on the appliance", nil
}

// refused tells a refusal by the appliance (kept, with its words) from a failure to ask it.
func refused(err error) (bool, string) {
	var ne *nitro.Error
	if nitro.IsDeviceRefusal(err) && errors.As(err, &ne) {
		return true, fmt.Sprintf("errorcode %d: %s", ne.Code, ne.Message)
	}
	return false, ""
}

// removeFiles deletes files in /nsconfig/ssl that no certkey uses; missing ones are skipped.
// Key files are deleted without being read: no key crosses the wire.
func (s *session) removeFiles(ctx context.Context, st *deviceState, files ...string) ([]string, error) {
	var removed []string
	seen := map[string]bool{}
	for _, f := range files {
		if f == "" || seen[f] || st.fileUsed(f) || !strings.HasPrefix(f, nitro.SSLDir+"/") {
			continue
		}
		seen[f] = true
		existed, err := s.c.DeleteFile(ctx, f)
		if err != nil {
			return removed, s.fail(ctx, "delete file "+f, err)
		}
		if existed {
			removed = append(removed, f)
		}
	}
	return removed, nil
}

// certNames reads a certificate file and returns its CN and DNS names.
func (s *session) certNames(ctx context.Context, file string) ([]string, error) {
	data, found, err := s.c.Download(ctx, file)
	if err != nil {
		return nil, s.fail(ctx, "read certificate file "+file, err)
	}
	if !found {
		return nil, sdk.NotFound("certificate file %s is missing on the appliance", file)
	}
	c, err := sdk.ParseCertificatePEM(string(data))
	if err != nil {
		return nil, sdk.Internal(sdk.ReasonDeviceError, "certificate file %s", file).WithCause(err)
	}
	return append([]string{c.Subject.CommonName}, c.DNSNames...), nil
}
