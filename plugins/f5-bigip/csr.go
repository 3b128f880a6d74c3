package f5bigip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/f5-bigip/icontrol"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// GenerateCSR creates a key on the BIG-IP, a CSR from it, and reads the CSR back. In PCI mode
// the key is protected by a new random passphrase, and the call also makes the key's own
// client-ssl profile, the only place the passphrase is kept (see pci.go). Object names are new on
// every call.
func (*Plugin) GenerateCSR(ctx context.Context, t sdk.Target, req sdk.CSRRequest) (sdk.CSR, error) {
	if err := sdk.FromContext(ctx); err != nil {
		return sdk.CSR{}, err
	}
	keyBody, err := keyParams(req.KeySpec)
	if err != nil {
		return sdk.CSR{}, err
	}
	sans, err := sanString(req.SANs)
	if err != nil {
		return sdk.CSR{}, err
	}
	if err := checkSubject(req.Subject); err != nil {
		return sdk.CSR{}, err
	}
	if _, err := parseOptions(t); err != nil {
		return sdk.CSR{}, err
	}
	var out sdk.CSR
	err = withDevice(ctx, t, func(d *device) error {
		if err := d.requireActive(ctx); err != nil {
			return err
		}
		base, err := csrBaseName(req, time.Now())
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "make an object name").WithCause(err)
		}
		keyPath := "/" + d.partition + "/" + base + ".key"
		reuse := false
		if req.AttemptID != "" {
			if reuse, err = d.clearEarlierAttempt(ctx, keyPath); err != nil {
				return err
			}
		}
		keyBody["name"], keyBody["partition"] = base+".key", d.partition
		var pass []byte
		var opts []icontrol.Option
		if d.pci && !reuse {
			if pass, err = newPassphrase(); err != nil {
				return sdk.Internal(sdk.ReasonDeviceError, "make a passphrase").WithCause(err)
			}
			defer clear(pass)
			// The client keeps it out of every error and log line it produces.
			d.c.AddSecretBytes(pass)
			keyBody["securityType"], keyBody["passphrase"] = "password", icontrol.SecretPlaceholder
			opts = secretOpts(pass)
		}
		log := sdk.Logger(ctx)
		if reuse {
			log.Info("making the CSR from the key an earlier call of this attempt made", "key", keyPath)
		} else {
			log.Debug("creating key on the device", "key", keyPath, "spec", req.KeySpec.String(), "pci_mode", d.pci)
			if err := d.c.Send(ctx, http.MethodPost, icontrol.PathCryptoKey, keyBody, nil, opts...); err != nil {
				if !isAPIError(err) {
					// No answer (timeout, cancel, network): the key may exist; do not leave it behind.
					d.removeKey(ctx, keyPath)
				}
				return d.deviceError(ctx, "create key "+keyPath, err)
			}
		}
		if d.pci {
			if err := d.checkProtected(ctx, keyPath); err != nil {
				d.removeKey(ctx, keyPath)
				return err
			}
		}
		pemText, err := d.makeCSR(ctx, keyPath, pass, req, sans)
		if err != nil {
			d.removeKey(ctx, keyPath)
			return err
		}
		csr, err := sdk.ParseCSRPEM(pemText)
		if err != nil {
			d.removeKey(ctx, keyPath)
			return sdk.Internal(sdk.ReasonDeviceError, "the CSR read back from %s for %s is not valid", d.address, keyPath).WithCause(err)
		}
		if got := sdk.KeySpecOfCSR(csr); got != req.KeySpec {
			d.removeKey(ctx, keyPath)
			return sdk.Internal(sdk.ReasonDeviceError, "the device made a %v key for %s, not %v", got, keyPath, req.KeySpec)
		}
		if d.pci {
			if err := d.makeKeyProfile(ctx, keyPath, pass); err != nil {
				d.removeKey(ctx, keyPath)
				return err
			}
		}
		out = sdk.CSR{PEM: pemText, KeyRef: keyRef{path: keyPath, spki: spkiHash(csr.RawSubjectPublicKeyInfo)}.String()}
		log.Debug("CSR generated on the device", "key", keyPath, "key_profile", d.pci)
		return nil
	})
	return out, err
}

// checkProtected reads a new key back: PCI mode asked for securityType password, and a device
// that ignored the request (no public client creates a protected key over REST, so the body is
// [UNCONFIRMED]) must not leave an unprotected key behind as if it were protected.
func (d *device) checkProtected(ctx context.Context, keyPath string) error {
	var key icontrol.Key
	if err := d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathFileKey, keyPath), &key); err != nil {
		return d.deviceError(ctx, "read back key "+keyPath, err)
	}
	if key.SecurityType != "password" {
		return sdk.FailedPrecondition(ReasonKeyNotProtected,
			"%s made key %s with securityType %q, not the passphrase-protected key PCI mode asked for; the key was removed. If this BIG-IP cannot protect keys made over iControl REST, set option pci_mode: false for device %q",
			d.address, keyPath, key.SecurityType, d.t.Name)
	}
	return nil
}

func keyParams(spec sdk.KeySpec) (map[string]any, error) {
	switch {
	case spec.Type == sdk.KeyTypeRSA && (spec.Bits == 2048 || spec.Bits == 3072 || spec.Bits == 4096):
		return map[string]any{"keyType": "rsa-private", "keySize": spec.Bits}, nil
	case spec.Type == sdk.KeyTypeECDSA && spec.Bits == 256:
		return map[string]any{"keyType": "ec-private", "curveName": "prime256v1"}, nil
	case spec.Type == sdk.KeyTypeECDSA && spec.Bits == 384:
		return map[string]any{"keyType": "ec-private", "curveName": "secp384r1"}, nil
	}
	return nil, sdk.InvalidArgument(sdk.ReasonUnsupported, "key %v: BIG-IP keys here are RSA 2048, 3072 or 4096, or ECDSA P-256 or P-384", spec)
}

func checkSubject(s sdk.Subject) error {
	if s.CommonName == "" {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "subject common name is required")
	}
	if s.Country != "" && (len(s.Country) != 2 || strings.ToUpper(s.Country) != s.Country) {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "subject country %q must be a two-letter upper-case code", s.Country)
	}
	for _, v := range []string{s.CommonName, s.Organization, s.OrganizationalUnit, s.Locality, s.State, s.Email} {
		if strings.ContainsAny(v, "\x00\n\r") {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "subject field %q contains a control character", v)
		}
	}
	return nil
}

// sanString is the subject-alternative-name value: "DNS:a, DNS:b, IP:192.0.2.1, email:x@y".
func sanString(s sdk.SANs) (string, error) {
	var parts []string
	for _, n := range s.DNSNames {
		if n == "" || strings.ContainsAny(n, ", \t\n'\"") {
			return "", sdk.InvalidArgument(sdk.ReasonInvalidRequest, "DNS name %q cannot go in a CSR", n)
		}
		parts = append(parts, "DNS:"+n)
	}
	for _, ip := range s.IPAddresses {
		if net.ParseIP(ip) == nil {
			return "", sdk.InvalidArgument(sdk.ReasonInvalidRequest, "%q is not an IP address", ip)
		}
		parts = append(parts, "IP:"+ip)
	}
	for _, e := range s.EmailAddresses {
		if e == "" || strings.ContainsAny(e, ", \t\n'\"") {
			return "", sdk.InvalidArgument(sdk.ReasonInvalidRequest, "email address %q cannot go in a CSR", e)
		}
		parts = append(parts, "email:"+e)
	}
	return strings.Join(parts, ", "), nil
}

// makeCSR creates the CSR object from the key and returns its PEM. Two things about
// sys/crypto/csr are [UNCONFIRMED], so both plausible behaviours are handled: the property names
// (camelCase as GET shows them, or tmsh's hyphenated ones: retried when the device reports an
// unexpected json pair), and whether a password-protected key needs its passphrase here (sent
// only when the device says it could not read the key).
func (d *device) makeCSR(ctx context.Context, keyPath string, pass []byte, req sdk.CSRRequest, sans string) (string, error) {
	path := csrPath(keyPath)
	part, short := splitPath(path)
	hyphenated, withPass := false, false
	for attempt := 0; ; attempt++ {
		body := csrBody(short, part, keyPath, req.Subject, sans, hyphenated)
		var opts []icontrol.Option
		if withPass {
			body["passphrase"] = icontrol.SecretPlaceholder
			opts = secretOpts(pass)
		}
		err := d.c.Send(ctx, http.MethodPost, icontrol.PathCryptoCSR, body, nil, opts...)
		switch {
		case err == nil:
			return d.readCSR(ctx, path)
		case attempt < 3 && !hyphenated && icontrol.IsUnexpectedProperty(err):
			sdk.Logger(ctx).Debug("device rejects camelCase CSR properties; retrying with hyphenated names", "csr", path)
			hyphenated = true
		case attempt < 3 && pass != nil && !withPass && icontrol.IsBadPassphrase(err):
			sdk.Logger(ctx).Debug("device needs the key's passphrase to make the CSR; retrying with it", "csr", path)
			withPass = true
		default:
			return "", d.deviceError(ctx, "create CSR "+path, err)
		}
	}
}

func csrBody(name, partition, key string, s sdk.Subject, sans string, hyphenated bool) map[string]any {
	cn, email, san := "commonName", "emailAddress", "subjectAlternativeName"
	if hyphenated {
		cn, email, san = "common-name", "email-address", "subject-alternative-name"
	}
	body := map[string]any{"name": name, "partition": partition, "key": key, cn: s.CommonName}
	for k, v := range map[string]string{"organization": s.Organization, "ou": s.OrganizationalUnit, "city": s.Locality,
		"state": s.State, "country": s.Country, email: s.Email, san: sans} {
		if v != "" {
			body[k] = v
		}
	}
	return body
}

// readCSR reads a CSR's PEM. The reliable way (three clients use it) is util/bash running
// "tmsh list sys crypto csr", but util/bash needs an administrator with shell access and is off in
// appliance mode; then the file route: move the CSR file to the bulk directory, download it, and
// move it back.
func (d *device) readCSR(ctx context.Context, path string) (string, error) {
	out, err := d.c.RunBash(ctx, "tmsh list sys crypto csr "+path)
	if err == nil {
		if p := cutPEM(out); p != "" {
			return p, nil
		}
		sdk.Logger(ctx).Debug("util/bash printed no CSR; trying the file route", "csr", path, "first_line", firstLine(out))
	} else {
		if sdk.FromContext(ctx) != nil || !isAPIError(err) {
			return "", d.deviceError(ctx, "read CSR "+path, err)
		}
		sdk.Logger(ctx).Debug("util/bash refused; reading the CSR through the file route", "csr", path, "error", err.Error())
	}
	return d.readCSRFile(ctx, path)
}

func (d *device) readCSRFile(ctx context.Context, path string) (string, error) {
	var meta struct {
		SystemPath string `json:"systemPath"`
	}
	if err := d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathFileCSR, path), &meta); err != nil {
		return "", d.deviceError(ctx, "read CSR object "+path, err)
	}
	src := meta.SystemPath
	if src == "" {
		// f5-ansible's location for a CSR file in Common.
		_, short := splitPath(path)
		src = "/config/ssl/ssl.csr/" + short
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	_, short := splitPath(path)
	bulk := "certfleet_" + hex.EncodeToString(b[:]) + "_" + short
	if err := d.c.UnixMove(ctx, src, icontrol.BulkDir+"/"+bulk); err != nil {
		return "", d.deviceError(ctx, "move CSR file of "+path+" for download", err)
	}
	data, derr := d.c.Download(ctx, bulk)
	// Put the file back where the CSR object expects it, whatever the download did.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logoutTimeout)
	if err := d.c.UnixMove(mctx, icontrol.BulkDir+"/"+bulk, src); err != nil {
		sdk.Logger(ctx).Warn("could not move the CSR file back", "csr", path, "error", err.Error())
	}
	cancel()
	if derr != nil {
		return "", d.deviceError(ctx, "download CSR "+path, derr)
	}
	p := cutPEM(string(data))
	if p == "" {
		return "", sdk.Internal(sdk.ReasonDeviceError, "the CSR file of %s on %s holds no PEM request", path, d.address)
	}
	return p, nil
}

// cutPEM returns the first PEM certificate request in s (tmsh prints it before the object).
func cutPEM(s string) string {
	for _, kind := range []string{"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"} {
		begin, end := "-----BEGIN "+kind+"-----", "-----END "+kind+"-----"
		i := strings.Index(s, begin)
		if i < 0 {
			continue
		}
		j := strings.Index(s[i:], end)
		if j < 0 {
			continue
		}
		return s[i:i+j+len(end)] + "\n"
	}
	return ""
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if len(line) > 120 {
		line = line[:120]
	}
	return line
}

// clearEarlierAttempt deals with what an earlier GenerateCSR of the same attempt made for keyPath
// (its answer was lost, so nobody has its key_ref). Outside PCI mode an unprotected key there is
// reused: only its CSR goes, and the CSR is made again from the key (reference "Step B: create the
// CSR from the existing key"), so the key_ref of both calls is the same. Otherwise (a PCI key,
// whose passphrase died with the call) everything goes: the key profile and placeholder
// certificates first, as they refer to the key, then the CSR and the key.
func (d *device) clearEarlierAttempt(ctx context.Context, keyPath string) (reuse bool, err error) {
	csr := icontrol.ObjectPath(icontrol.PathFileCSR, csrPath(keyPath))
	if !d.pci {
		var key icontrol.Key
		err := d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathFileKey, keyPath), &key)
		switch {
		case err == nil && key.SecurityType != "password":
			return true, d.removeAttemptObjects(ctx, csr)
		case err != nil && !icontrol.IsNotFound(err):
			return false, d.deviceError(ctx, "read key "+keyPath+", left by an earlier call of this attempt", err)
		}
	}
	leaf := pciCertPath(keyPath)
	return false, d.removeAttemptObjects(ctx,
		icontrol.ObjectPath(icontrol.PathClientSSL, keyProfilePath(keyPath)),
		icontrol.ObjectPath(icontrol.PathFileCert, leaf), icontrol.ObjectPath(icontrol.PathFileCert, chainPath(leaf)),
		csr, icontrol.ObjectPath(icontrol.PathFileKey, keyPath))
}

// removeAttemptObjects deletes objects an earlier call of this attempt left, in order; absent
// ones are fine.
func (d *device) removeAttemptObjects(ctx context.Context, paths ...string) error {
	for _, p := range paths {
		err := d.c.Send(ctx, http.MethodDelete, p, nil, nil)
		if icontrol.IsNotFound(err) {
			continue
		}
		if err != nil {
			return d.deviceError(ctx, "remove "+p+", left by an earlier call of this attempt", err)
		}
		sdk.Logger(ctx).Info("removed an object an earlier call of this attempt made", "path", p)
	}
	return nil
}

// removeKey deletes a key made by a call that then failed, so it does not linger.
func (d *device) removeKey(ctx context.Context, keyPath string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logoutTimeout)
	defer cancel()
	for _, p := range []string{icontrol.ObjectPath(icontrol.PathFileCSR, csrPath(keyPath)), icontrol.ObjectPath(icontrol.PathFileKey, keyPath)} {
		if err := d.c.Send(cctx, http.MethodDelete, p, nil, nil); err != nil && !icontrol.IsNotFound(err) {
			sdk.Logger(ctx).Warn("could not remove an object of a failed GenerateCSR", "path", p, "error", err.Error())
		}
	}
}

func isAPIError(err error) bool {
	var ae *icontrol.Error
	return errors.As(err, &ae)
}
