package cem

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-endpoint-management/xms"
	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
	"software.sslmate.com/src/go-pkcs12"
)

// The public API cannot make a key with SANs on the server (reference §3 A), so the plugin makes
// the key and parks it on the server itself, in a PKCS#12 keystore with a self-signed placeholder
// certificate, until ImportCert pairs it with the signed certificate (reference §3 B). The key
// travels only between this process and the server over TLS; the contract has no field that could
// carry it to the core. README.md gives the security argument.

// placeholderLifetime covers the longest wait for a CA (OV/EV approval) with room to spare.
const placeholderLifetime = 400 * 24 * time.Hour

// keystoreEncoder is go-pkcs12's legacy encoder (3DES, SHA-1 MAC): XenMobile is a Java server and
// older JDKs reject PBES2/AES keystores; which JDK a server ships is UNCONFIRMED (reference §3 B.4).
var keystoreEncoder = pkcs12.Legacy

// GenerateCSR makes an RSA key and a CSR for exactly the subject and SANs requested, and parks the
// key on the server.
func (p *Plugin) GenerateCSR(ctx context.Context, t sdk.Target, req sdk.CSRRequest) (sdk.CSR, error) {
	if req.KeySpec.Type != sdk.KeyTypeRSA || !req.KeySpec.Valid() {
		return sdk.CSR{}, sdk.InvalidArgument(sdk.ReasonUnsupported, "key %v: this plugin makes RSA 2048, 3072 or 4096 keys only (EC keystores are unconfirmed on XenMobile)", req.KeySpec)
	}
	if cerr := sdk.FromContext(ctx); cerr != nil {
		return sdk.CSR{}, cerr
	}
	s, err := p.open(ctx, t)
	if err != nil {
		return sdk.CSR{}, err
	}
	defer s.close(ctx)

	key, err := rsa.GenerateKey(rand.Reader, req.KeySpec.Bits)
	if err != nil {
		return sdk.CSR{}, sdk.Internal(sdk.ReasonDeviceError, "generate key").WithCause(err)
	}
	csrPEM, err := makeCSR(key, req)
	if err != nil {
		return sdk.CSR{}, err
	}
	keyID := newKeyID()
	if req.AttemptID != "" {
		// The same key ID for every call of this attempt: what an earlier call whose answer was
		// lost parked is found and removed before the new key is parked.
		keyID = sdk.AttemptTag(req.AttemptID, keyIDLen)
		if err := s.removeParked(ctx, keyID); err != nil {
			return sdk.CSR{}, err
		}
	}
	placeholder, err := selfSigned(key, "certfleet-key-"+keyID)
	if err != nil {
		return sdk.CSR{}, sdk.Internal(sdk.ReasonDeviceError, "placeholder certificate").WithCause(err)
	}
	password := randomPassword()
	p12, err := keystoreEncoder.Encode(key, placeholder, nil, password)
	if err != nil {
		return sdk.CSR{}, sdk.Internal(sdk.ReasonDeviceError, "encode keystore").WithCause(err)
	}
	err = s.retry(ctx, "park the new key on the server", func() error {
		return s.c.ImportKeystore(ctx, xms.RoleServer, p12, password, parkedTag(keyID, req.NameHint))
	})
	if err != nil {
		return sdk.CSR{}, err
	}
	// No import returns the new id (reference §2): list to be sure the key is there.
	tb, err := s.table(ctx)
	if err != nil {
		return sdk.CSR{}, err
	}
	if _, ok := tb.parked(keyID); !ok {
		return sdk.CSR{}, sdk.Internal(sdk.ReasonDeviceError, "the server accepted the parked key but does not list it")
	}
	s.log.Info("key made and parked on the server", "key_ref", keyRefPrefix+keyID, "bits", req.KeySpec.Bits)
	return sdk.CSR{PEM: csrPEM, KeyRef: keyRefPrefix + keyID}, nil
}

func makeCSR(key crypto.Signer, req sdk.CSRRequest) (string, error) {
	tmpl := &x509.CertificateRequest{Subject: subjectOf(req.Subject), DNSNames: req.SANs.DNSNames, EmailAddresses: req.SANs.EmailAddresses}
	for _, ip := range req.SANs.IPAddresses {
		parsed := net.ParseIP(ip)
		if parsed == nil {
			return "", sdk.InvalidArgument(sdk.ReasonInvalidRequest, "SAN %q is not an IP address", ip)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, parsed)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return "", sdk.InvalidArgument(sdk.ReasonInvalidRequest, "make CSR").WithCause(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

func subjectOf(s sdk.Subject) pkix.Name {
	n := pkix.Name{CommonName: s.CommonName}
	add := func(dst *[]string, v string) {
		if v != "" {
			*dst = append(*dst, v)
		}
	}
	add(&n.Organization, s.Organization)
	add(&n.OrganizationalUnit, s.OrganizationalUnit)
	add(&n.Locality, s.Locality)
	add(&n.Province, s.State)
	add(&n.Country, s.Country)
	return n
}

func selfSigned(key crypto.Signer, cn string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(placeholderLifetime), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func randomPassword() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ImportCert pairs the signed certificate with its parked key and stores both (and the chain) as a
// server keystore: stored, nothing served. Called again after a crash, it finds what it did.
func (p *Plugin) ImportCert(ctx context.Context, t sdk.Target, req sdk.ImportRequest) (sdk.ImportResult, error) {
	leaf, err := sdk.ParseCertificatePEM(req.CertPEM)
	if err != nil {
		return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "certificate").WithCause(err)
	}
	var chain []*x509.Certificate
	for i, c := range req.ChainPEM {
		parsed, err := sdk.ParseCertificatesPEM(c)
		if err != nil {
			return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "chain certificate %d", i+1).WithCause(err)
		}
		chain = append(chain, parsed...)
	}
	keyID, ok := keyIDOf(req.KeyRef)
	if !ok {
		return sdk.ImportResult{}, sdk.NotFound("key_ref %q was not made by this plugin; enroll again", req.KeyRef)
	}
	s, err := p.open(ctx, t)
	if err != nil {
		return sdk.ImportResult{}, err
	}
	defer s.close(ctx)

	tb, err := s.table(ctx)
	if err != nil {
		return sdk.ImportResult{}, err
	}
	if done, ok := tb.byCert(leaf); ok && done.keyID == keyID {
		return importResult(tb, done, chain), nil
	}
	parked, ok := tb.parked(keyID)
	if !ok {
		return sdk.ImportResult{}, sdk.NotFound("the key %s is no longer on the server (deleted by hand?); enroll again", req.KeyRef)
	}
	key, _, err := s.exportWithKey(ctx, parked.ID)
	if err != nil {
		return sdk.ImportResult{}, err
	}
	if !sdk.PublicKeysEqual(key.Public(), leaf.PublicKey) {
		return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonKeyMismatch, "the certificate (serial %s) is not for the key %s", leaf.SerialNumber.Text(16), req.KeyRef)
	}
	password := randomPassword()
	p12, err := keystoreEncoder.Encode(key, leaf, chain, password)
	if err != nil {
		return sdk.ImportResult{}, sdk.Internal(sdk.ReasonDeviceError, "encode keystore").WithCause(err)
	}
	if err := s.install(ctx, tb, keyID, roleStored, req.NameHint, p12, password); err != nil {
		return sdk.ImportResult{}, err
	}
	if tb, err = s.table(ctx); err != nil {
		return sdk.ImportResult{}, err
	}
	// A server that neither refused nor replaced the duplicate key keeps the parked entry.
	if still, ok := tb.parked(keyID); ok {
		if err := s.remove(ctx, still.ID); err != nil {
			s.log.Warn("could not remove the parked key entry; Cleanup of this key_ref removes it", "id", int64(still.ID), "error", err)
		}
	}
	done, ok := tb.byCert(leaf)
	if !ok {
		return sdk.ImportResult{}, sdk.Internal(sdk.ReasonDeviceError, "the server accepted the keystore but does not list certificate %s", leaf.SerialNumber.Text(16))
	}
	return importResult(tb, done, chain), nil
}

func importResult(tb table, leaf row, chain []*x509.Certificate) sdk.ImportResult {
	res := sdk.ImportResult{CertRef: leaf.certRef}
	for _, c := range chain {
		if r, ok := tb.byCert(c); ok {
			res.ChainRefs = append(res.ChainRefs, r.certRef)
		}
	}
	return res
}

// exportWithKey reads an entry's private key and certificate (reference §2, "Export": the key
// first, legacy-encrypted under the password given, then the certificate).
func (s *session) exportWithKey(ctx context.Context, id xms.Int) (crypto.Signer, *x509.Certificate, error) {
	password := randomPassword()
	var text string
	err := s.retry(ctx, fmt.Sprintf("export certificate %d with its key", int64(id)), func() error {
		var err error
		text, err = s.c.Export(ctx, int64(id), password, true)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	blocks, err := xms.ParsePEM(text)
	if err != nil {
		return nil, nil, sdk.Internal(sdk.ReasonDeviceError, "export of %d", int64(id)).WithCause(err)
	}
	var key crypto.Signer
	var cert *x509.Certificate
	for _, b := range blocks {
		switch {
		case strings.HasSuffix(b.Type, "PRIVATE KEY") && key == nil:
			key, err = decryptKey(b, password)
		case b.Type == "CERTIFICATE" && cert == nil:
			cert, err = x509.ParseCertificate(b.Bytes)
		}
		if err != nil {
			return nil, nil, sdk.Internal(sdk.ReasonDeviceError, "export of %d", int64(id)).WithCause(err)
		}
	}
	if key == nil || cert == nil {
		return nil, nil, sdk.Internal(sdk.ReasonDeviceError, "export of %d lacks the key or the certificate", int64(id))
	}
	return key, cert, nil
}

func decryptKey(b *pem.Block, password string) (crypto.Signer, error) {
	der := b.Bytes
	//lint:ignore SA1019 the server's documented export format is legacy PEM encryption
	if x509.IsEncryptedPEMBlock(b) { //nolint:staticcheck
		var err error
		//lint:ignore SA1019 as above
		if der, err = x509.DecryptPEMBlock(b, []byte(password)); err != nil { //nolint:staticcheck
			return nil, fmt.Errorf("decrypt exported key: %w", err)
		}
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("exported key is neither PKCS#1, SEC 1 nor PKCS#8")
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("exported key %T cannot sign", k)
	}
	return signer, nil
}

// removeParked removes the entries parking keyID's key: nobody holds their key_ref.
func (s *session) removeParked(ctx context.Context, keyID string) error {
	tb, err := s.table(ctx)
	if err != nil {
		return err
	}
	var ids []xms.Int
	for _, r := range tb {
		if r.parked && r.keyID == keyID {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	s.log.Info("removing the key an earlier call of this attempt parked", "key_ref", keyRefPrefix+keyID)
	return s.remove(ctx, ids...)
}

// remove deletes entries by id.
func (s *session) remove(ctx context.Context, ids ...xms.Int) error {
	plain := make([]int64, len(ids))
	for i, id := range ids {
		plain[i] = int64(id)
	}
	return s.retry(ctx, fmt.Sprintf("delete certificate(s) %v", plain), func() error { return s.c.Delete(ctx, plain...) })
}

// install imports a keystore holding keyID's key under a tag role. The server allows one
// certificate per public key (SEED) and may refuse the import or replace the entry that holds the
// key; which, is unconfirmed (reference §3). On a refusal it deletes the entries that hold the key
// and imports again; should that fail too, it puts them back as they were, from exports taken
// before anything was deleted, so nothing is lost either way.
func (s *session) install(ctx context.Context, tb table, keyID, role, name string, p12 []byte, password string) error {
	desc := tagOf(role, name, keyID)
	what := fmt.Sprintf("import keystore as %s (%s)", importAs(role), desc)
	first := s.retry(ctx, what, func() error { return s.c.ImportKeystore(ctx, importAs(role), p12, password, desc) })
	holders := tb.withKey(keyID)
	if !refused(first) || len(holders) == 0 {
		return first
	}
	type backup struct {
		row      row
		p12      []byte
		password string
	}
	var backups []backup
	for _, h := range holders {
		key, cert, err := s.exportWithKey(ctx, h.ID)
		if err != nil {
			return fmt.Errorf("%w (and the entry %d that holds the same key could not be exported to make room: %v)", first, int64(h.ID), err)
		}
		pw := randomPassword()
		data, err := keystoreEncoder.Encode(key, cert, nil, pw)
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "encode keystore").WithCause(err)
		}
		backups = append(backups, backup{row: h, p12: data, password: pw})
	}
	ids := make([]xms.Int, len(holders))
	for i, h := range holders {
		ids[i] = h.ID
	}
	s.log.Info("the server refused a second certificate for the key; replacing the entry that holds it", "key", keyID, "ids", ids)
	if err := s.remove(ctx, ids...); err != nil {
		return err
	}
	second := s.retry(ctx, what, func() error { return s.c.ImportKeystore(ctx, importAs(role), p12, password, desc) })
	if second == nil {
		return nil
	}
	var restoreErrs []error
	for _, b := range backups {
		err := s.retry(ctx, "restore the entry that held the key", func() error {
			return s.c.ImportKeystore(ctx, importAs(b.row.role), b.p12, b.password, b.row.Description)
		})
		if err != nil {
			restoreErrs = append(restoreErrs, err)
		}
	}
	if len(restoreErrs) > 0 {
		return fmt.Errorf("%w; restoring the previous entry failed too: %w", second, errors.Join(restoreErrs...))
	}
	return second
}

// refused reports whether err is the server refusing an action in its envelope (status not 0).
func refused(err error) bool {
	e := sdk.AsError(err)
	return e != nil && e.Code == codes.FailedPrecondition && e.Reason == sdk.ReasonDeviceError
}
