package paloaltopanos

import (
	"context"
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// ImportCert imports the signed leaf onto the pending entry of req.KeyRef (same certificate
// name: the device pairs it with the on-box key) and each CA certificate of the chain under its
// own name, reusing an identical certificate already installed. Everything lands in the
// candidate configuration. Importing the same leaf again is a no-op, so a resumed run can repeat it.
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
		if err := d.importLeaf(ctx, e, leaf); err != nil {
			return err
		}
		refs, err := d.importChain(ctx, e.loc, leaf, chain)
		if err != nil {
			return err
		}
		out = sdk.ImportResult{CertRef: e.ref(), ChainRefs: refs}
		sdk.Logger(ctx).Info("imported certificate", "device", t.Name, "cert_ref", out.CertRef, "serial", leaf.SerialNumber.String(), "chain", strings.Join(refs, ","))
		return nil
	})
	return out, err
}

// importLeaf puts leaf on the pending entry e, after checking it is for e's key.
func (d *device) importLeaf(ctx context.Context, e *certEntry, leaf *x509.Certificate) error {
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
	if err := d.importPEM(ctx, e.loc, e.name, leaf); err != nil {
		var apiErr *panosclient.APIError
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
	if got, err := sdk.ParseCertificatePEM(after.publicKey); err != nil || !got.Equal(leaf) {
		return sdk.Internal(sdk.ReasonDeviceError, "import of %s reported success, but the entry holds another certificate", e.ref())
	}
	return nil
}

func mentionsKeyMismatch(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "match") && strings.Contains(m, "key")
}

// importPEM uploads one certificate (multipart, format pem) as name in loc.
func (d *device) importPEM(ctx context.Context, loc location, name string, cert *x509.Certificate) error {
	params := url.Values{"category": {"certificate"}, "certificate-name": {name}, "format": {"pem"}}
	for k, v := range loc.params() {
		params.Set(k, v)
	}
	_, err := d.client.Import(ctx, params, "certificate.pem", []byte(sdk.EncodeCertificatePEM(cert)))
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
		if err := d.importPEM(ctx, loc, name, ca); err != nil {
			return nil, d.fail(ctx, err, "import CA certificate %q as %s", ca.Subject.CommonName, ref(loc, name))
		}
		taken[name] = true
		byFingerprint[fp] = ref(loc, name)
		refs = append(refs, ref(loc, name))
	}
	return refs, nil
}
