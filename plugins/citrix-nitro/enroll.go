package citrixnitro

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitro"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// nameAttempts is how often GenerateCSR draws a new name when the appliance already has a file
// of that name (errorcode 1642): names carry 24 random bits, so a second draw is already rare.
const nameAttempts = 3

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
	certReq, err := certRequest(req)
	if err != nil {
		return out, err
	}
	err = withSession(ctx, t, func(s *session) error {
		for attempt := 1; ; attempt++ {
			base := newBaseName(req.NameHint, req.AttemptID)
			keyFile, csrFile := sslFile(base, ".key"), sslFile(base, ".csr")
			if req.AttemptID != "" {
				// The files of an earlier call of this attempt whose answer was lost: nobody has
				// their key_ref (no certkey can use them yet), so they go first.
				if err := s.removeEarlierAttempt(ctx, csrFile, keyFile); err != nil {
					return err
				}
			}
			var err error
			if curve == "" {
				err = s.c.CreateRSAKey(ctx, keyFile, req.KeySpec.Bits)
			} else {
				err = s.c.CreateECDSAKey(ctx, keyFile, curve)
			}
			if nitro.IsCode(err, nitro.CodeFileExists) && attempt < nameAttempts {
				continue
			}
			if err != nil {
				return s.fail(ctx, "create key "+keyFile, err)
			}
			csr, err := s.makeCSR(ctx, certReq, keyFile, csrFile)
			if err != nil {
				s.removeQuietly(ctx, csrFile, keyFile)
				return err
			}
			out = sdk.CSR{PEM: csr, KeyRef: base}
			return nil
		}
	})
	return out, err
}

// certRequest maps the subject and SANs to sslcertreq fields, checking what NITRO requires.
func certRequest(req sdk.CSRRequest) (nitro.CertReq, error) {
	sub := req.Subject
	for _, f := range []struct{ name, v string }{{"subject.common_name", sub.CommonName}, {"subject.country", sub.Country},
		{"subject.state", sub.State}, {"subject.organization", sub.Organization}} {
		if f.v == "" {
			return nitro.CertReq{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "%s is required: NITRO sslcertreq needs commonname, countryname, statename and organizationname", f.name)
		}
	}
	if len(sub.Country) != 2 {
		return nitro.CertReq{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "subject.country %q must be a 2-letter code", sub.Country)
	}
	if strings.ContainsAny(sub.Organization, "<>~!@#^*/[]?") {
		// The 12.1 docs list these as not allowed in organizationname (reference §3; their
		// list also has a "0", which reads as a typo and is not enforced).
		return nitro.CertReq{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "subject.organization %q: NetScaler does not allow any of < > ~ ! @ # ^ * / [ ] ? in it", sub.Organization)
	}
	// subjectaltname is one string of space-separated entries (reference §3).
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
	for _, s := range sans {
		if strings.ContainsAny(s, " \t") {
			return nitro.CertReq{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "SAN %q contains a space; NITRO separates SANs with spaces", s)
		}
	}
	return nitro.CertReq{KeyForm: "PEM", CountryName: sub.Country, StateName: sub.State, OrganizationName: sub.Organization,
		OrganizationUnit: sub.OrganizationalUnit, LocalityName: sub.Locality, CommonName: sub.CommonName,
		EmailAddress: sub.Email, SubjectAltName: strings.Join(sans, " "), DigestMethod: "SHA256"}, nil
}

// makeCSR creates the CSR file for keyFile and reads it back.
func (s *session) makeCSR(ctx context.Context, r nitro.CertReq, keyFile, csrFile string) (string, error) {
	r.KeyFile, r.ReqFile = keyFile, csrFile
	if err := s.c.CreateCertReq(ctx, r); err != nil {
		return "", s.fail(ctx, "create CSR "+csrFile, err)
	}
	data, found, err := s.c.Download(ctx, csrFile)
	if err != nil {
		return "", s.fail(ctx, "read CSR "+csrFile, err)
	}
	if !found {
		return "", sdk.Internal(sdk.ReasonDeviceError, "CSR %s was created but the appliance lists no such file", csrFile)
	}
	if _, err := sdk.ParseCSRPEM(string(data)); err != nil {
		return "", sdk.Internal(sdk.ReasonDeviceError, "CSR %s from the appliance", csrFile).WithCause(err)
	}
	return string(data), nil
}

// removeEarlierAttempt deletes the files an earlier GenerateCSR of the same attempt made.
func (s *session) removeEarlierAttempt(ctx context.Context, files ...string) error {
	for _, f := range files {
		existed, err := s.c.DeleteFile(ctx, f)
		if err != nil {
			return s.fail(ctx, "remove "+f+", left by an earlier call of this attempt", err)
		}
		if existed {
			sdk.Logger(ctx).Info("removed a file an earlier call of this attempt left", "file", f)
		}
	}
	return nil
}

// removeQuietly deletes files after a failed call, even when ctx has ended; failures are logged.
func (s *session) removeQuietly(ctx context.Context, files ...string) {
	for _, f := range files {
		if _, err := s.c.DeleteFile(context.WithoutCancel(ctx), f); err != nil {
			sdk.Logger(ctx).Warn("could not remove a file after a failed call", "file", f, "error", err)
		}
	}
}

// ImportCert uploads the leaf and CA files, adds (or reuses) CA certkeys, adds the server
// certkey <key_ref> and links leaf → intermediate → root.
func (*Plugin) ImportCert(ctx context.Context, t sdk.Target, req sdk.ImportRequest) (sdk.ImportResult, error) {
	var out sdk.ImportResult
	leaf, err := sdk.ParseCertificatePEM(req.CertPEM)
	if err != nil {
		return out, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "cert_pem: %v", err)
	}
	if !madeName.MatchString(req.KeyRef) {
		return out, sdk.NotFound("key_ref %q is not one this plugin made (GenerateCSR returns them)", req.KeyRef)
	}
	var chain []*x509.Certificate
	for i, p := range req.ChainPEM {
		certs, err := sdk.ParseCertificatesPEM(p)
		if err != nil {
			return out, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "chain_pem[%d]: %v", i, err)
		}
		for _, c := range certs {
			if c.Equal(leaf) {
				continue
			}
			if !c.IsCA {
				return out, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "chain_pem[%d]: %s is not a CA certificate", i, c.Subject)
			}
			chain = append(chain, c) // one certificate per file (GenLe #36)
		}
	}
	err = withSession(ctx, t, func(s *session) error {
		// The key never leaves the appliance; its CSR there says which public key it has.
		csrPEM, found, err := s.c.Download(ctx, sslFile(req.KeyRef, ".csr"))
		if err != nil {
			return s.fail(ctx, "read the CSR of key_ref "+req.KeyRef, err)
		}
		if !found {
			return sdk.NotFound("key_ref %q: no %s on the appliance; GenerateCSR first", req.KeyRef, sslFile(req.KeyRef, ".csr"))
		}
		csr, err := sdk.ParseCSRPEM(string(csrPEM))
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "the CSR of key_ref %q", req.KeyRef).WithCause(err)
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
		out = sdk.ImportResult{CertRef: req.KeyRef, ChainRefs: refs}
		certFile := sslFile(req.KeyRef, ".crt")
		if err := s.uploadOnce(ctx, certFile, []byte(sdk.EncodeCertificatePEM(leaf))); err != nil {
			return err
		}
		if err := s.c.AddCertKey(ctx, req.KeyRef, certFile, sslFile(req.KeyRef, ".key")); err != nil {
			// A retried ImportCert finds its certificate already held, by its own certkey or by
			// the certkey a Bind updated in place: that is done, not a failure.
			holder := ""
			if nitro.IsCode(err, nitro.CodeAlreadyExists) {
				holder = s.holderOfFile(ctx, err, req.KeyRef, certFile)
			}
			if holder == "" {
				return s.fail(ctx, "add certkey "+req.KeyRef, err)
			}
			if holder != req.KeyRef {
				return nil
			}
		}
		// Link leaf → issuer → ... as far as the chain given goes; CA certkeys that already
		// have a link keep it (they may serve other chains).
		all := append([]*x509.Certificate{leaf}, chain...)
		names := append([]string{req.KeyRef}, refs...)
		for i, c := range all {
			for j, issuer := range chain {
				if c.Equal(issuer) || c.CheckSignatureFrom(issuer) != nil {
					continue
				}
				if err := s.ensureLink(ctx, names[i], refs[j], i == 0); err != nil {
					return err
				}
				break
			}
		}
		return nil
	})
	return out, err
}

// contentsHolder finds the certkey a 273 names as holding the same certificate (NS 14.1 wording,
// Ansible #402; that it names the holder is unconfirmed).
var contentsHolder = regexp.MustCompile(`certkeyName Contents, ([^\]]+)\]`)

// holderOfFile returns the certkey, ref or the one a 273 error names, that uses file, or "".
func (s *session) holderOfFile(ctx context.Context, err error, ref, file string) string {
	names := []string{ref}
	var ne *nitro.Error
	if errors.As(err, &ne) {
		if m := contentsHolder.FindStringSubmatch(ne.Message); m != nil {
			names = append(names, strings.TrimSpace(m[1]))
		}
	}
	for _, n := range names {
		if ck, found, gerr := s.c.GetCertKey(ctx, n); gerr == nil && found && ck.Cert == file {
			return n
		}
	}
	return ""
}

// uploadOnce uploads a file; an existing file with the same bytes counts as done (a retried
// call), one with other bytes is an error, as files cannot be overwritten.
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
		return sdk.AlreadyExists("file %s exists on the appliance with other content; files cannot be overwritten", file).
			WithVendor(fmt.Sprint(nitro.CodeFileExists), "Cannot create output file. File already exists").WithCause(err)
	}
	return s.fail(ctx, "upload "+file, err)
}

// ensureCA returns the certkey holding ca, adding one (file cf-ca-<fp>.crt) when none does.
func (s *session) ensureCA(ctx context.Context, ca *x509.Certificate, existing []nitro.CertKey) (string, error) {
	serial := strings.ToUpper(strings.TrimLeft(hex.EncodeToString(ca.SerialNumber.Bytes()), "0"))
	for _, ck := range existing {
		if strings.TrimLeft(strings.ToUpper(ck.Serial), "0") != serial || ck.Cert == "" {
			continue
		}
		if same, err := s.holdsCertificate(ctx, ck.CertKey, ca); err != nil {
			return "", err
		} else if same {
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
	if !nitro.IsCode(err, nitro.CodeAlreadyExists) {
		return "", s.fail(ctx, fmt.Sprintf("add CA certkey %s (%s)", name, ca.Subject), err)
	}
	holder := name
	var ne *nitro.Error
	if errors.As(err, &ne) {
		if m := contentsHolder.FindStringSubmatch(ne.Message); m != nil {
			holder = strings.TrimSpace(m[1])
		}
	}
	// Reuse the holder only if it holds this very certificate: the appliance compares issuer
	// and serial, which another CA's certificate may share.
	same, cerr := s.holdsCertificate(ctx, holder, ca)
	if cerr != nil {
		return "", cerr
	}
	if !same {
		return "", sdk.FailedPrecondition(sdk.ReasonAlreadyExists, "CA certificate %s (serial %s): the appliance says certkey %s holds it, but that certkey holds another certificate with the same issuer and serial; remove or rename it",
			ca.Subject, ca.SerialNumber.Text(16), holder).WithCause(err)
	}
	return holder, nil
}

// holdsCertificate reports whether certkey name holds exactly cert.
func (s *session) holdsCertificate(ctx context.Context, name string, cert *x509.Certificate) (bool, error) {
	ck, found, err := s.c.GetCertKey(ctx, name)
	if err != nil {
		return false, s.fail(ctx, "read certkey "+name, err)
	}
	if !found {
		return false, nil
	}
	data, found, err := s.c.Download(ctx, ck.Cert)
	if err != nil {
		return false, s.fail(ctx, "read certificate file "+ck.Cert, err)
	}
	if !found {
		return false, nil
	}
	c, err := sdk.ParseCertificatePEM(string(data))
	return err == nil && c.Equal(cert), nil
}

// ensureLink links name to issuer. Our own new leaf is relinked if it points elsewhere; a CA
// certkey that already has a link keeps it.
func (s *session) ensureLink(ctx context.Context, name, issuer string, ours bool) error {
	ck, found, err := s.c.GetCertKey(ctx, name)
	if err != nil {
		return s.fail(ctx, "read certkey "+name, err)
	}
	if !found {
		return sdk.NotFound("certkey %s vanished while it was being linked", name)
	}
	if ck.LinkCertKeyName == issuer || ck.LinkCertKeyName != "" && !ours {
		return nil
	}
	if ck.LinkCertKeyName != "" {
		if err := s.c.Unlink(ctx, name); err != nil {
			return s.fail(ctx, "unlink certkey "+name, err)
		}
	}
	if err := s.c.Link(ctx, name, issuer); err != nil {
		// Another call importing the same chain may have linked it in between: that is done.
		if nitro.IsCode(err, nitro.CodeAlreadyExists) {
			if again, found, gerr := s.c.GetCertKey(ctx, name); gerr == nil && found && again.LinkCertKeyName == issuer {
				return nil
			}
		}
		return s.fail(ctx, fmt.Sprintf("link certkey %s to %s", name, issuer), err)
	}
	return nil
}
