package paloaltopanos

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// ImportCert imports the signed leaf followed by its intermediates, as one PEM file, onto the
// pending entry of req.KeyRef (same certificate name: the device pairs it with the on-box key).
// That is how Palo Alto's KB DOC-4289 installs a chained certificate so that clients get the
// intermediates, and how acme.sh deploy/panos.sh and airbnb/ottr upload their full chains. A
// device that refuses the chain on a key entry (PAN-OS 11 and late 10.x did for PKCS#12 files with
// a chain: psiri/letsencrypt_paloalto PR #1) gets the leaf alone, with a warning.
//
// Each CA certificate is also installed as its own entry (reusing an identical one), which
// certificate profiles and trust settings use. That is best effort: a device that refuses such
// an import ("private key doesn't exist for csr", pan-os-ansible #555) gets a warning naming the
// entry, and the import still succeeds, so a later run does not repeat the failure.
//
// Everything lands in the candidate configuration. Importing the same leaf again is a no-op, so
// a resumed run can repeat it.
func (p *Plugin) ImportCert(ctx context.Context, t sdk.Target, req sdk.ImportRequest) (sdk.ImportResult, error) {
	if err := sdk.FromContext(ctx); err != nil {
		return sdk.ImportResult{}, err
	}
	leaf, err := sdk.ParseCertificatePEM(req.CertPEM)
	if err != nil {
		return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "cert_pem").WithCause(err)
	}
	var chain []*x509.Certificate
	for i, c := range req.ChainPEM {
		certs, err := sdk.ParseCertificatesPEM(c)
		if err != nil {
			return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "chain_pem[%d]", i).WithCause(err)
		}
		chain = append(chain, certs...)
	}
	if req.KeyRef == "" {
		return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "key_ref is empty")
	}
	var out sdk.ImportResult
	err = p.withDevice(ctx, t, func(d *device) error {
		e, err := d.certByRef(ctx, req.KeyRef)
		if err != nil {
			return err
		}
		if e == nil {
			return sdk.NotFound("device %q has no certificate entry %q (key_ref); generate a new CSR", t.Name, req.KeyRef)
		}
		if !e.hasKey {
			return sdk.FailedPrecondition(sdk.ReasonInvalidRequest, "certificate entry %s holds no private key; key_ref must name an entry made by GenerateCSR", e.ref())
		}
		intermediates := intermediatesOf(leaf, chain)
		if err := d.importLeaf(ctx, e, leaf, intermediates); err != nil {
			return err
		}
		refs, err := d.importChain(ctx, e.loc, leaf, chain)
		if err != nil {
			return err
		}
		out = sdk.ImportResult{CertRef: e.ref(), ChainRefs: refs}
		sdk.Logger(ctx).Info("imported certificate", "device", t.Name, "cert_ref", out.CertRef, "serial", leaf.SerialNumber.String(),
			"intermediates", len(intermediates), "chain", strings.Join(refs, ","))
		return nil
	})
	return out, err
}

// intermediatesOf orders the chain certificates that lead from leaf up to (not including) a
// self-signed root: what a server sends after its own certificate. Certificates off that path
// are left out.
func intermediatesOf(leaf *x509.Certificate, chain []*x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	cur := leaf
	for len(out) < len(chain) {
		var parent *x509.Certificate
		for _, c := range chain {
			if !c.Equal(cur) && bytes.Equal(c.RawSubject, cur.RawIssuer) && cur.CheckSignatureFrom(c) == nil {
				parent = c
				break
			}
		}
		if parent == nil || bytes.Equal(parent.RawSubject, parent.RawIssuer) || slices.ContainsFunc(out, parent.Equal) {
			break
		}
		out = append(out, parent)
		cur = parent
	}
	return out
}

// importLeaf puts leaf followed by intermediates on the pending entry e, after checking the leaf
// is for e's key. When the device refuses the chain, the leaf goes alone.
func (d *device) importLeaf(ctx context.Context, e *certEntry, leaf *x509.Certificate, intermediates []*x509.Certificate) error {
	if e.publicKey != "" {
		current, err := sdk.ParseCertificatePEM(e.publicKey)
		if err == nil && current.Equal(leaf) {
			return nil
		}
		return sdk.FailedPrecondition(sdk.ReasonAlreadyExists, "certificate entry %s already holds another certificate; a key_ref takes one certificate: generate a new CSR", e.ref())
	}
	if e.csr != "" {
		csr, err := sdk.ParseCSRPEM(e.csr)
		if err == nil && !sdk.PublicKeysEqual(csr.PublicKey, leaf.PublicKey) {
			return sdk.InvalidArgument(sdk.ReasonKeyMismatch, "certificate serial %s is not for the key of %s", leaf.SerialNumber, e.ref())
		}
	}
	err := d.importPEM(ctx, e.loc, e.name, append([]*x509.Certificate{leaf}, intermediates...))
	var apiErr *panosclient.APIError
	if len(intermediates) > 0 && errors.As(err, &apiErr) && refusal(apiErr) {
		sdk.Logger(ctx).Warn("the device refused the certificate with its intermediates on the key entry; importing the certificate alone: clients may not get the intermediates",
			"device", d.target.Name, "certificate", e.ref(), "vendor_code", apiErr.VendorCode(), "vendor_message", apiErr.Message())
		err = d.importPEM(ctx, e.loc, e.name, []*x509.Certificate{leaf})
	}
	if err != nil {
		if errors.As(err, &apiErr) && mentionsKeyMismatch(apiErr.Message()) {
			return sdk.InvalidArgument(sdk.ReasonKeyMismatch, "the device refused certificate serial %s for the key of %s", leaf.SerialNumber, e.ref()).WithVendor(apiErr.VendorCode(), apiErr.Message())
		}
		return d.fail(ctx, err, "import certificate %s", e.ref())
	}
	after, err := d.getCert(ctx, e.loc, e.name)
	if err != nil {
		return err
	}
	if after == nil || after.publicKey == "" || !after.hasKey {
		return sdk.Internal(sdk.ReasonDeviceError, "import of %s reported success, but the entry holds no certificate with its key", e.ref())
	}
	// The entry's own certificate is the first of its public-key; a device may list the chain
	// imported with it after it.
	if got, err := sdk.ParseCertificatePEM(after.publicKey); err != nil || !got.Equal(leaf) {
		return sdk.Internal(sdk.ReasonDeviceError, "import of %s reported success, but the entry holds another certificate", e.ref())
	}
	return nil
}

// refusal is an error answer of the device about the request itself (not the credentials, a
// busy device or a timed-out session): retrying the same request cannot help.
func refusal(e *panosclient.APIError) bool {
	return !e.Forbidden() && !e.SessionExpired() && e.Code != "21"
}

func mentionsKeyMismatch(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "match") && strings.Contains(m, "key")
}

// importPEM uploads certs as one PEM file (multipart, format pem) as name in loc.
func (d *device) importPEM(ctx context.Context, loc location, name string, certs []*x509.Certificate) error {
	params := url.Values{"category": {"certificate"}, "certificate-name": {name}, "format": {"pem"}}
	for k, v := range loc.params() {
		params.Set(k, v)
	}
	var file strings.Builder
	for _, c := range certs {
		file.WriteString(sdk.EncodeCertificatePEM(c))
	}
	_, err := d.client.Import(ctx, params, "certificate.pem", []byte(file.String()))
	return err
}

// importChain installs each CA certificate, reusing one already installed in loc or shared.
func (d *device) importChain(ctx context.Context, loc location, leaf *x509.Certificate, chain []*x509.Certificate) ([]string, error) {
	if len(chain) == 0 {
		return nil, nil
	}
	locs := []location{loc}
	if loc != shared {
		locs = append(locs, shared)
	}
	byFingerprint := map[string]string{}
	taken := map[string]bool{}
	for _, l := range locs {
		certs, err := d.listCerts(ctx, l)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			if l == loc {
				taken[c.name] = true
			}
			if c.publicKey == "" {
				continue
			}
			if parsed, err := sdk.ParseCertificatePEM(c.publicKey); err == nil {
				if _, seen := byFingerprint[sdk.Fingerprint(parsed)]; !seen {
					byFingerprint[sdk.Fingerprint(parsed)] = c.ref()
				}
			}
		}
	}
	var refs []string
	for _, ca := range chain {
		if ca.Equal(leaf) {
			continue
		}
		fp := sdk.Fingerprint(ca)
		if r, ok := byFingerprint[fp]; ok {
			refs = append(refs, r)
			continue
		}
		name := caCertName(ca.Subject.CommonName, fp, loc.nameLimit())
		if taken[name] {
			var err error
			if name, err = newCertName("ca-"+ca.Subject.CommonName, loc.nameLimit(), time.Now()); err != nil {
				return nil, sdk.Internal(sdk.ReasonDeviceError, "make a certificate name").WithCause(err)
			}
		}
		if err := d.importPEM(ctx, loc, name, []*x509.Certificate{ca}); err != nil {
			var apiErr *panosclient.APIError
			if errors.As(err, &apiErr) && refusal(apiErr) {
				sdk.Logger(ctx).Warn("the device refused the CA certificate as an entry of its own; skipped (the certificate itself is installed)",
					"device", d.target.Name, "entry", ref(loc, name), "ca", ca.Subject.String(), "vendor_code", apiErr.VendorCode(), "vendor_message", apiErr.Message())
				continue
			}
			return nil, d.fail(ctx, err, "import CA certificate %q as %s", ca.Subject.CommonName, ref(loc, name))
		}
		taken[name] = true
		byFingerprint[fp] = ref(loc, name)
		refs = append(refs, ref(loc, name))
	}
	return refs, nil
}
