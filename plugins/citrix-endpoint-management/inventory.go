package cem

import (
	"context"
	"crypto/x509"
	"fmt"

	"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/xms"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// CheckTarget logs in, lists the certificates (which proves the Public API Access permission) and
// tells XenMobile Server from a Citrix Endpoint Management tenant (reference §5).
func (p *Plugin) CheckTarget(ctx context.Context, t sdk.Target) (sdk.TargetInfo, error) {
	s, err := p.open(ctx, t)
	if err != nil {
		return sdk.TargetInfo{}, err
	}
	defer s.close(ctx)
	tb, err := s.table(ctx)
	if err != nil {
		return sdk.TargetInfo{}, err
	}
	cloud, err := s.isCloud(ctx)
	if err != nil {
		return sdk.TargetInfo{}, err
	}
	info := sdk.TargetInfo{Model: "XenMobile Server", HARole: "standalone",
		Details: map[string]string{"certificates": fmt.Sprint(len(tb))}}
	if cloud {
		info.Model = "Citrix Endpoint Management"
	}
	// The public API has no version endpoint (reference §1, "Flavour probe").
	return info, nil
}

// Inventory lists every certificate with what the list lacks (PEM, SANs, key type, fingerprint)
// read by exporting each entry without its key (reference §5). Parked keys are not certificates
// and are left out.
func (p *Plugin) Inventory(ctx context.Context, t sdk.Target) ([]sdk.DeviceCertificate, error) {
	s, err := p.open(ctx, t)
	if err != nil {
		return nil, err
	}
	defer s.close(ctx)
	tb, err := s.table(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]sdk.DeviceCertificate, 0, len(tb))
	for _, r := range tb {
		if r.parked {
			continue
		}
		cert, err := s.exportCert(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		dc := sdk.DescribeFor(ctx, cert)
		dc.CertRef = r.certRef
		if bool(r.PrivateKey) && r.keyID != "" {
			dc.KeyRef = keyRefPrefix + r.keyID
		}
		if tb.holds(r) {
			dc.Bindings = []sdk.Binding{{Kind: kindOfRole(r.role), Name: r.name}}
		}
		out = append(out, dc)
	}
	return out, nil
}

// exportCert reads an entry's certificate, without its key.
func (s *session) exportCert(ctx context.Context, id xms.Int) (*x509.Certificate, error) {
	var text string
	err := s.retry(ctx, fmt.Sprintf("export certificate %d", int64(id)), func() error {
		var err error
		text, err = s.c.Export(ctx, int64(id), "", false)
		return err
	})
	if err != nil {
		return nil, err
	}
	blocks, err := xms.ParsePEM(text)
	if err != nil {
		return nil, sdk.Internal(sdk.ReasonDeviceError, "export of %d", int64(id)).WithCause(err)
	}
	for _, b := range blocks {
		if b.Type == "CERTIFICATE" {
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, sdk.Internal(sdk.ReasonDeviceError, "export of %d", int64(id)).WithCause(err)
			}
			return cert, nil
		}
	}
	return nil, sdk.Internal(sdk.ReasonDeviceError, "export of %d holds no certificate", int64(id))
}

// Cleanup deletes superseded entries and parked keys, never the holder of a binding.
func (p *Plugin) Cleanup(ctx context.Context, t sdk.Target, objects []sdk.ObjectRef) ([]sdk.CleanupResult, error) {
	s, err := p.open(ctx, t)
	if err != nil {
		return nil, err
	}
	defer s.close(ctx)
	tb, err := s.table(ctx)
	if err != nil {
		return nil, err
	}
	results := make([]sdk.CleanupResult, 0, len(objects))
	for _, obj := range objects {
		res := sdk.CleanupResult{Object: obj}
		var ids []xms.Int
		if obj.CertRef != "" {
			if r, ok := tb.byRef(obj.CertRef); ok {
				if tb.holds(r) {
					res.Reason = fmt.Sprintf("still the %s certificate %s; not removed", kindOfRole(r.role), r.name)
					results = append(results, res)
					continue
				}
				ids = append(ids, r.ID)
			}
		}
		if keyID, ok := keyIDOf(obj.KeyRef); ok {
			if r, ok := tb.parked(keyID); ok {
				ids = append(ids, r.ID)
			}
		}
		if len(ids) == 0 {
			res.Removed, res.Reason = true, "not on the server"
			results = append(results, res)
			continue
		}
		if err := s.remove(ctx, ids...); err != nil {
			if !refused(err) {
				return results, err
			}
			// SEED: after a replacement "you can't delete the old certificate" in some cases;
			// report the server's word and go on with the others.
			res.Reason = "the server refused to delete it: " + sdk.AsError(err).VendorMessage
			results = append(results, res)
			continue
		}
		res.Removed = true
		results = append(results, res)
	}
	return results, nil
}
