package citrixnitro

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitro"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// GenerateCSR makes the key (sslrsakey/sslecdsakey) and the CSR (sslcertreq) on the appliance and
// reads the CSR back through systemfile.
func (*Plugin) GenerateCSR(ctx context.Context, t sdk.Target, req sdk.CSRRequest) (sdk.CSR, error) {
	var out sdk.CSR
	var curve string
	switch {
	case req.KeySpec.Type == sdk.KeyTypeRSA && (req.KeySpec.Bits == 2048 || req.KeySpec.Bits == 3072 || req.KeySpec.Bits == 4096):
	case req.KeySpec.Type == sdk.KeyTypeECDSA && req.KeySpec.Bits == 256:
		curve = "P_256"
	case req.KeySpec.Type == sdk.KeyTypeECDSA && req.KeySpec.Bits == 384:
		curve = "P_384"
	default:
		return out, sdk.InvalidArgument(sdk.ReasonUnsupported, "key spec %v: NetScaler makes RSA 2048/3072/4096 and ECDSA P-256/P-384 keys", req.KeySpec)
	}
	sub := req.Subject
	for _, f := range []struct{ name, v string }{{"subject.common_name", sub.CommonName}, {"subject.country", sub.Country},
		{"subject.state", sub.State}, {"subject.organization", sub.Organization}} {
		if f.v == "" {
			return out, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "%s is required: NITRO sslcertreq needs commonname, countryname, statename and organizationname", f.name)
		}
	}
	if len(sub.Country) != 2 {
		return out, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "subject.country %q must be a 2-letter code", sub.Country)
	}
	var sans []string
	for _, n := range req.SANs.DNSNames {
		sans = append(sans, "DNS:"+n)
	}
	for _, n := range req.SANs.IPAddresses {
		sans = append(sans, "IP:"+n)
	}
	for _, n := range req.SANs.EmailAddresses {
		sans = append(sans, "email:"+n)
	}
	base := newBaseName(req.NameHint)
	err := withSession(ctx, t, func(s *session) error {
		keyFile, csrFile := sslFile(base, ".key"), sslFile(base, ".csr")
		var err error
		if curve == "" {
			err = s.c.CreateRSAKey(ctx, keyFile, req.KeySpec.Bits)
		} else {
			err = s.c.CreateECDSAKey(ctx, keyFile, curve)
		}
		if err != nil {
			return s.fail(ctx, "create key "+keyFile, err)
		}
		cleanup := func() {
			for _, f := range []string{csrFile, keyFile} {
				if derr := s.c.DeleteFile(context.WithoutCancel(ctx), f); derr != nil && !nitro.IsCode(derr, nitro.CodeResourceMissing) {
					sdk.Logger(ctx).Warn("could not remove file after a failed GenerateCSR", "file", f, "error", derr)
				}
			}
		}
		err = s.c.CreateCertReq(ctx, nitro.CertReq{ReqFile: csrFile, KeyFile: keyFile, KeyForm: "PEM",
			CountryName: sub.Country, StateName: sub.State, OrganizationName: sub.Organization,
			OrganizationUnit: sub.OrganizationalUnit, LocalityName: sub.Locality, CommonName: sub.CommonName,
			EmailAddress: sub.Email, SubjectAltName: strings.Join(sans, " "), DigestMethod: "SHA256"})
		if err != nil {
			cleanup()
			return s.fail(ctx, "create CSR "+csrFile, err)
		}
		data, found, err := s.c.Download(ctx, csrFile)
		if err != nil || !found {
			cleanup()
			if err == nil {
				return sdk.Internal(sdk.ReasonDeviceError, "CSR %s was created but the appliance lists no such file", csrFile)
			}
			return s.fail(ctx, "read CSR "+csrFile, err)
		}
		if _, err := sdk.ParseCSRPEM(string(data)); err != nil {
			cleanup()
			return sdk.Internal(sdk.ReasonDeviceError, "CSR %s from the appliance", csrFile).WithCause(err)
		}
		out = sdk.CSR{PEM: string(data), KeyRef: base}
		return nil
	})
	return out, err
}

// ImportCert uploads the leaf and CA files, adds (or reuses) CA certkeys, adds the server certkey
// <key_ref> and links leaf → intermediate → root.
func (*Plugin) ImportCert(ctx context.Context, t sdk.Target, req sdk.ImportRequest) (sdk.ImportResult, error) {
	var out sdk.ImportResult
	leaf, err := sdk.ParseCertificatePEM(req.CertPEM)
	if err != nil {
		return out, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "cert_pem: %v", err)
	}
	if !refRE.MatchString(req.KeyRef) {
		return out, sdk.NotFound("key_ref %q is not one this plugin made", req.KeyRef)
	}
	var chain []*x509.Certificate
	for i, p := range req.ChainPEM {
		certs, err := sdk.ParseCertificatesPEM(p)
		if err != nil {
			return out, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "chain_pem[%d]: %v", i, err)
		}
		for _, c := range certs {
			if !c.Equal(leaf) {
				chain = append(chain, c) // one certificate per file (GenLe #36)
			}
		}
	}
	err = withSession(ctx, t, func(s *session) error {
		// The key never leaves the appliance; its CSR proves which public key it has.
		csrPEM, found, err := s.c.Download(ctx, sslFile(req.KeyRef, ".csr"))
		if nitro.IsCode(err, nitro.CodeResourceMissing) || err == nil && !found {
			return sdk.NotFound("key_ref %q: no %s on the appliance; GenerateCSR first", req.KeyRef, sslFile(req.KeyRef, ".csr"))
		}
		if err != nil {
			return s.fail(ctx, "read CSR of key_ref "+req.KeyRef, err)
		}
		csr, err := sdk.ParseCSRPEM(string(csrPEM))
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "CSR of key_ref %q", req.KeyRef).WithCause(err)
		}
		if !sdk.PublicKeysEqual(csr.PublicKey, leaf.PublicKey) {
			return sdk.InvalidArgument(sdk.ReasonKeyMismatch, "the certificate (serial %s) is for another key than key_ref %q", leaf.SerialNumber.Text(16), req.KeyRef)
		}
		existing, err := s.c.CertKeys(ctx)
		if err != nil {
			return s.fail(ctx, "list certkeys", err)
		}
		refs := make([]string, len(chain))
		for i, c := range chain {
			if refs[i], err = s.ensureCA(ctx, c, existing); err != nil {
				return err
			}
		}
		certFile := sslFile(req.KeyRef, ".crt")
		if err := s.uploadOnce(ctx, certFile, []byte(sdk.EncodeCertificatePEM(leaf))); err != nil {
			return err
		}
		if err := s.c.AddCertKey(ctx, req.KeyRef, certFile, sslFile(req.KeyRef, ".key")); err != nil {
			// A retried ImportCert finds its own certkey: fine if it holds this certificate.
			if !nitro.IsCode(err, nitro.CodeAlreadyExists) || !s.holds(ctx, req.KeyRef, certFile) {
				return s.fail(ctx, "add certkey "+req.KeyRef, err)
			}
		}
		// Link leaf → issuer → ... as far as the chain given goes.
		all := append([]*x509.Certificate{leaf}, chain...)
		names := append([]string{req.KeyRef}, refs...)
		for i, c := range all {
			for j, issuer := range chain {
				if c.Equal(issuer) || c.CheckSignatureFrom(issuer) != nil {
					continue
				}
				if err := s.ensureLink(ctx, names[i], refs[j]); err != nil {
					return err
				}
				break
			}
		}
		out = sdk.ImportResult{CertRef: req.KeyRef, ChainRefs: refs}
		return nil
	})
	return out, err
}

// holds reports whether certkey name points at file.
func (s *session) holds(ctx context.Context, name, file string) bool {
	ck, found, err := s.c.GetCertKey(ctx, name)
	return err == nil && found && ck.Cert == file
}

// uploadOnce uploads a file; an existing file with the same bytes counts as done (resume), one
// with other bytes is an error, as files cannot be overwritten.
func (s *session) uploadOnce(ctx context.Context, file string, data []byte) error {
	err := s.c.Upload(ctx, path.Dir(file), path.Base(file), data)
	if err == nil {
		return nil
	}
	if nitro.IsCode(err, nitro.CodeFileExists) {
		have, found, derr := s.c.Download(ctx, file)
		if derr == nil && found && string(have) == string(data) {
			return nil
		}
		return sdk.AlreadyExists("file %s exists on the appliance with other content; files cannot be overwritten", file).WithCause(err)
	}
	return s.fail(ctx, "upload "+file, err)
}

var contentsHolder = regexp.MustCompile(`certkeyName Contents, ([^\]]+)\]`)

// ensureCA returns the certkey holding ca, adding one (file cf-ca-<fp>.crt) when none does.
func (s *session) ensureCA(ctx context.Context, ca *x509.Certificate, existing []nitro.CertKey) (string, error) {
	serial := strings.ToUpper(strings.TrimLeft(hex.EncodeToString(ca.SerialNumber.Bytes()), "0"))
	for _, ck := range existing {
		if strings.TrimLeft(strings.ToUpper(ck.Serial), "0") != serial || ck.Cert == "" {
			continue
		}
		data, found, err := s.c.Download(ctx, ck.Cert)
		if err != nil || !found {
			continue
		}
		if c, err := sdk.ParseCertificatePEM(string(data)); err == nil && c.Equal(ca) {
			return ck.CertKey, nil
		}
	}
	sum := sha256.Sum256(ca.Raw)
	name := "cf-ca-" + hex.EncodeToString(sum[:6])
	file := sslFile(name, ".crt")
	if err := s.uploadOnce(ctx, file, []byte(sdk.EncodeCertificatePEM(ca))); err != nil {
		return "", err
	}
	err := s.c.AddCertKey(ctx, name, file, "")
	if err == nil {
		return name, nil
	}
	if nitro.IsCode(err, nitro.CodeAlreadyExists) {
		// 273 naming a certkey with the same contents (NS 14.1 wording; UNCONFIRMED elsewhere).
		var ne *nitro.Error
		if m := contentsHolder.FindStringSubmatch(errText(err, &ne)); m != nil {
			return strings.TrimSpace(m[1]), nil
		}
		if s.holds(ctx, name, file) {
			return name, nil
		}
	}
	return "", s.fail(ctx, fmt.Sprintf("add CA certkey %s (%s)", name, ca.Subject), err)
}

func errText(err error, ne **nitro.Error) string {
	if e, ok := err.(*nitro.Error); ok {
		*ne = e
		return e.Message
	}
	return err.Error()
}

// ensureLink links name to issuer unless it already is; a link elsewhere is replaced.
func (s *session) ensureLink(ctx context.Context, name, issuer string) error {
	ck, found, err := s.c.GetCertKey(ctx, name)
	if err != nil || !found {
		return s.fail(ctx, "read certkey "+name, err)
	}
	if ck.LinkCertKeyName == issuer {
		return nil
	}
	if ck.LinkCertKeyName != "" {
		if err := s.c.Unlink(ctx, name); err != nil {
			return s.fail(ctx, "unlink certkey "+name, err)
		}
	}
	if err := s.c.Link(ctx, name, issuer); err != nil {
		return s.fail(ctx, fmt.Sprintf("link certkey %s to %s", name, issuer), err)
	}
	return nil
}
