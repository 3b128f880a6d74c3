package f5bigip

import (
	"context"
	"crypto/x509"
	"net/http"
	"strings"

	"github.com/certfleet/certfleet/plugins/f5-bigip/icontrol"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// ImportCert installs the leaf and the chain bundle. For a PCI key they replace the placeholders
// its profile holds (the same key, which the device allows); otherwise they are new objects named
// after the key and the certificate's fingerprint, never a replacement of a certificate in place
// (profiles naming it would serve the new certificate with the old key). Nothing serves them
// until Bind. It checks the certificate against the key (from key_ref) before it touches the device.
func (*Plugin) ImportCert(ctx context.Context, t sdk.Target, req sdk.ImportRequest) (sdk.ImportResult, error) {
	if err := sdk.FromContext(ctx); err != nil {
		return sdk.ImportResult{}, err
	}
	ref, err := parseKeyRef(req.KeyRef)
	if err != nil {
		return sdk.ImportResult{}, err
	}
	leaf, err := sdk.ParseCertificatePEM(req.CertPEM)
	if err != nil {
		return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "cert_pem: %v", err)
	}
	if ref.spki != "" && spkiHash(leaf.RawSubjectPublicKeyInfo) != ref.spki {
		return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonKeyMismatch,
			"the certificate (serial %x, CN %q) is for another key than %s; import the certificate issued for this key's CSR",
			leaf.SerialNumber, leaf.Subject.CommonName, ref.path)
	}
	var chain []*x509.Certificate
	for i, p := range req.ChainPEM {
		certs, err := sdk.ParseCertificatesPEM(p)
		if err != nil {
			return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "chain_pem[%d]: %v", i, err)
		}
		chain = append(chain, certs...)
	}
	var out sdk.ImportResult
	err = withDevice(ctx, t, func(d *device) error {
		if err := d.requireActive(ctx); err != nil {
			return err
		}
		if err := d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathFileKey, ref.path), nil); err != nil {
			if icontrol.IsNotFound(err) {
				return sdk.NotFound("key %s (key_ref) is not on %s; it was removed, so make a new CSR", ref.path, d.address)
			}
			return d.deviceError(ctx, "read key "+ref.path, err)
		}
		// A PCI key's profile holds placeholders for the certificate and the chain: they are
		// replaced in place (the device checks the certificate against the profile's key).
		_, pci, err := d.keyProfile(ctx, ref.path)
		if err != nil {
			return err
		}
		leafPath := certPath(ref.path, sdk.Fingerprint(leaf))
		if pci {
			leafPath = pciCertPath(ref.path)
		}
		if err := d.install(ctx, leafPath, sdk.EncodeCertificatePEM(leaf), sdk.Fingerprint(leaf), pci); err != nil {
			return err
		}
		out.CertRef = leafPath
		if pci && len(chain) == 0 {
			// The profile names a chain object, and without the passphrase certfleet cannot change
			// the profile: with no chain from the CA, the chain object repeats the leaf.
			chain = []*x509.Certificate{leaf}
		}
		if len(chain) > 0 {
			var bundle strings.Builder
			for _, c := range chain {
				bundle.WriteString(sdk.EncodeCertificatePEM(c))
			}
			bundlePath := chainPath(leafPath)
			if err := d.install(ctx, bundlePath, bundle.String(), sdk.Fingerprint(chain[0]), pci); err != nil {
				return err
			}
			out.ChainRefs = []string{bundlePath}
		}
		sdk.Logger(ctx).Debug("certificate installed", "cert", leafPath, "chain", out.ChainRefs)
		return nil
	})
	return out, err
}

// install uploads pemData and installs it as the certificate object path, unless the object is
// already there with that content (a repeated ImportCert). Only replace lets it install over an
// existing object (a PCI key's placeholders).
func (d *device) install(ctx context.Context, path, pemData, fingerprint string, replace bool) error {
	var existing icontrol.CertFile
	err := d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathFileCert, path), &existing)
	switch {
	case err == nil && normalizeFingerprint(existing.Fingerprint) == fingerprint:
		return nil
	case err == nil && replace:
	case err == nil:
		return sdk.FailedPrecondition(sdk.ReasonAlreadyExists,
			"certificate object %s exists with other content; certfleet never replaces a certificate in place", path)
	case !icontrol.IsNotFound(err):
		return d.deviceError(ctx, "read certificate "+path, err)
	}
	partition, short := splitPath(path)
	local, err := d.c.Upload(ctx, short, []byte(pemData))
	if err != nil {
		return d.deviceError(ctx, "upload "+short, err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logoutTimeout)
		defer cancel()
		if err := d.c.UnixRemove(rctx, local); err != nil {
			sdk.Logger(ctx).Warn("could not remove the uploaded file", "file", local, "error", err.Error())
		}
	}()
	body := map[string]any{"command": "install", "name": short, "partition": partition, "from-local-file": local}
	err = d.c.Send(ctx, http.MethodPost, icontrol.PathCryptoCert, body, nil)
	if icontrol.IsUnexpectedProperty(err) {
		// Both spellings appear in public clients; try the other one.
		delete(body, "from-local-file")
		body["fromLocalFile"] = local
		err = d.c.Send(ctx, http.MethodPost, icontrol.PathCryptoCert, body, nil)
	}
	if err != nil {
		return d.deviceError(ctx, "install certificate "+path, err)
	}
	if err := d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathFileCert, path), &existing); err != nil {
		return d.deviceError(ctx, "read installed certificate "+path, err)
	}
	if got := normalizeFingerprint(existing.Fingerprint); got != fingerprint {
		return sdk.Internal(sdk.ReasonDeviceError, "installed %s, but the device reports fingerprint %s, not %s", path, got, fingerprint)
	}
	return nil
}

// normalizeFingerprint turns the device's "SHA256/AA:BB:..." into lower-case hex.
func normalizeFingerprint(fp string) string {
	fp = strings.TrimPrefix(fp, "SHA256/")
	return strings.ToLower(strings.ReplaceAll(fp, ":", ""))
}
