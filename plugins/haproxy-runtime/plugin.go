// Package haproxyruntime is a certfleet device plugin for HAProxy's Runtime API (the stats
// socket). HAProxy cannot make keys, so the plugin makes each key and parks it on HAProxy at once,
// in a certificate store of its own that no frontend uses; see README.md for the design, the key
// handling and the calls, and plugins/sdk/AUTHORING.md for the contract.
package haproxyruntime

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// Version of the plugin: the version its release build stamps, or its module's version (see
// sdk.BuildVersion), so the version it reports is never a constant left behind by a release.
var Version = sdk.BuildVersion()

// BindingKind is a crt-list (or a directory, which HAProxy represents as a crt-list), named as
// "show ssl crt-list" lists it. The plugin keeps one certificate of its own in each crt-list it
// is bound to, beside the administrator's entries, which it never touches.
const BindingKind = "crt-list"

// storePrefix starts the name of every certificate store the plugin creates; only such stores
// are replaced in a crt-list or removed by Cleanup.
const storePrefix = "certfleet/"

// parkedCN marks the self-signed placeholder that holds a parked key until its certificate is
// imported; Inventory leaves such stores out.
const parkedCN = "certfleet parked key - not in use"

const optPlaintextSocket = "plaintext_socket"

var keySpecs = []sdk.KeySpec{
	{Type: sdk.KeyTypeRSA, Bits: 2048}, {Type: sdk.KeyTypeRSA, Bits: 3072}, {Type: sdk.KeyTypeRSA, Bits: 4096},
	{Type: sdk.KeyTypeECDSA, Bits: 256}, {Type: sdk.KeyTypeECDSA, Bits: 384},
}

// Plugin implements sdk.Plugin and sdk.BindingChecker.
type Plugin struct {
	// locks serialises the changing calls per device (by address): HAProxy holds one certificate
	// transaction at a time for the whole process ("The ongoing transaction is about ...").
	locks sync.Map
}

// New returns the plugin.
func New() *Plugin { return &Plugin{} }

// lock takes the device's lock, or gives up when ctx ends.
func (p *Plugin) lock(ctx context.Context, t sdk.Target) (func(), error) {
	m, _ := p.locks.LoadOrStore(t.Address, make(chan struct{}, 1))
	sem := m.(chan struct{})
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, sdk.FromContext(ctx).WithCause(fmt.Errorf("waiting for another call on %s", t.Name))
	}
}

// Info describes the plugin.
func (*Plugin) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name: "haproxy-runtime", Version: Version, Vendor: "HAProxy (Runtime API)",
		Description:          "HAProxy 3.1+ over its Runtime API (stats socket): keys made by the plugin, certificates in crt-lists",
		ContractMinorVersion: sdk.ContractMinorVersion,
		Capabilities: sdk.Capabilities{
			KeySpecs: keySpecs, BindingKinds: []string{BindingKind},
			// Runtime API changes are live at once; nothing makes them durable (see README).
			NeedsCommit: false, SupportsRollback: true, SupportsCleanup: true,
			TargetOptions: []sdk.OptionSpec{{Name: optPlaintextSocket, Type: "bool",
				Description: "allow a tcp:// stats socket on another host (private keys then cross the network in clear)"}},
		},
	}, nil
}

// CheckTarget reads "show info": the version (3.1 or later, for "dump ssl cert") and the node.
func (*Plugin) CheckTarget(ctx context.Context, t sdk.Target) (sdk.TargetInfo, error) {
	c, err := newClient(t)
	if err != nil {
		return sdk.TargetInfo{}, err
	}
	info, err := c.showInfo(ctx)
	if err != nil {
		return sdk.TargetInfo{}, err
	}
	if err := supportedVersion(t, info["Version"]); err != nil {
		return sdk.TargetInfo{}, err
	}
	return sdk.TargetInfo{Hostname: info["node"], Model: "HAProxy", SoftwareVersion: info["Version"], HARole: "standalone"}, nil
}

// supportedVersion refuses HAProxy before 3.1, which lacks "dump ssl cert" (added in 3.1-dev8),
// the only way to read a parked key back.
func supportedVersion(t sdk.Target, version string) error {
	var major, minor int
	if _, err := fmt.Sscanf(version, "%d.%d", &major, &minor); err != nil {
		return sdk.Internal(sdk.ReasonDeviceError, "device %s: unreadable version %q in \"show info\"", t.Name, version)
	}
	if major < 3 || major == 3 && minor < 1 {
		return sdk.FailedPrecondition(sdk.ReasonUnsupported, "device %s runs HAProxy %s: the plugin needs 3.1 or later (\"dump ssl cert\")", t.Name, version)
	}
	return nil
}

// CheckBindings reports whether each crt-list exists; it changes nothing.
func (p *Plugin) CheckBindings(ctx context.Context, t sdk.Target, req sdk.CheckBindingsRequest) (sdk.CheckBindingsResult, error) {
	info, _ := p.Info(ctx)
	out := sdk.CheckBindingsResult{KeySpecProblem: sdk.KeySpecProblem(info.Capabilities, req.KeySpec)}
	c, err := newClient(t)
	if err != nil {
		return out, err
	}
	lists, err := c.crtLists(ctx)
	if err != nil {
		return out, err
	}
	for _, b := range req.Bindings {
		bc := sdk.BindingCheck{Binding: b, OK: true}
		switch {
		case b.Kind != BindingKind:
			bc.OK, bc.Problem = false, fmt.Sprintf("binding kind %q is not %q", b.Kind, BindingKind)
		case checkName("crt-list", b.Name) != nil:
			bc.OK, bc.Problem = false, checkName("crt-list", b.Name).Error()
		case !slices.Contains(lists, b.Name):
			bc.OK, bc.Problem = false, fmt.Sprintf("HAProxy has no crt-list %q (\"show ssl crt-list\" lists %s)", b.Name, strings.Join(lists, ", "))
		}
		out.Bindings = append(out.Bindings, bc)
	}
	return out, nil
}

// Inventory lists every certificate store except parked keys, and the crt-lists using each.
func (*Plugin) Inventory(ctx context.Context, t sdk.Target) ([]sdk.DeviceCertificate, error) {
	c, err := newClient(t)
	if err != nil {
		return nil, err
	}
	stores, err := c.stores(ctx)
	if err != nil {
		return nil, err
	}
	bindings := map[string][]sdk.Binding{}
	lists, err := c.crtLists(ctx)
	if err != nil {
		return nil, err
	}
	for _, l := range lists {
		entries, err := c.entries(ctx, l)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !slices.ContainsFunc(bindings[e.store], func(b sdk.Binding) bool { return b.Name == l }) {
				bindings[e.store] = append(bindings[e.store], sdk.Binding{Kind: BindingKind, Name: l})
			}
		}
	}
	var out []sdk.DeviceCertificate
	for _, name := range stores {
		d, err := c.describe(ctx, name)
		if err != nil {
			return nil, err
		}
		if d == nil || d.parked {
			continue
		}
		dc := d.DeviceCertificate
		dc.CertRef = name
		if strings.HasPrefix(name, storePrefix) {
			dc.KeyRef = name
		}
		dc.Bindings = bindings[name]
		out = append(out, dc)
	}
	return out, nil
}

// maxStoreHint is how much of a hint goes into a store name.
const maxStoreHint = 40

// newStoreName names the store of one GenerateCSR call. For an attempt (CSRRequest.AttemptID) it
// is always the same name, so a call repeated after its answer was lost finds the store the first
// call made; without one, a new unique name on every call.
func newStoreName(hint, attemptID string) (string, error) {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(hint))
	if attemptID != "" {
		return storePrefix + sdk.AttemptName(clean, "-", attemptID, maxStoreHint+1+sdk.AttemptTagLen) + ".pem", nil
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	if len(clean) > maxStoreHint {
		clean = clean[:maxStoreHint]
	}
	return storePrefix + clean + "-" + hex.EncodeToString(b) + ".pem", nil
}

// removeEarlierAttempt removes the store an earlier GenerateCSR of the same attempt made (its
// answer was lost, so nobody has its key_ref), with the transaction it may have left open.
func (c *client) removeEarlierAttempt(ctx context.Context, store string) error {
	c.abortIfOurs(ctx, store)
	removed, reason, err := c.deleteStore(ctx, store)
	if err != nil {
		return err
	}
	if removed {
		sdk.Logger(ctx).Info("removed the store an earlier call of this attempt made", "store", store)
		return nil
	}
	if reason == store+" not found" {
		return nil
	}
	return sdk.FailedPrecondition(sdk.ReasonDeviceError, "the store %s of an earlier call of this attempt cannot be removed: %s", store, reason)
}

// GenerateCSR makes the key here, builds the CSR, and parks the key on HAProxy at once: a new
// certificate store holding the key and a self-signed placeholder, used by no frontend. The key
// is never written to this host's disk, logged, or returned; key_ref names the store.
func (p *Plugin) GenerateCSR(ctx context.Context, t sdk.Target, req sdk.CSRRequest) (sdk.CSR, error) {
	if !slices.Contains(keySpecs, req.KeySpec) {
		return sdk.CSR{}, sdk.InvalidArgument(sdk.ReasonUnsupported, "key spec %v is not one of %v", req.KeySpec, keySpecs)
	}
	tmpl := &x509.CertificateRequest{Subject: subjectOf(req.Subject), DNSNames: req.SANs.DNSNames, EmailAddresses: req.SANs.EmailAddresses}
	for _, ip := range req.SANs.IPAddresses {
		parsed := net.ParseIP(ip)
		if parsed == nil {
			return sdk.CSR{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "IP SAN %q is not an IP address", ip)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, parsed)
	}
	if err := sdk.FromContext(ctx); err != nil {
		return sdk.CSR{}, err
	}
	c, err := newClient(t)
	if err != nil {
		return sdk.CSR{}, err
	}
	key, err := newKey(req.KeySpec)
	if err != nil {
		return sdk.CSR{}, sdk.Internal(sdk.ReasonDeviceError, "make a %v key", req.KeySpec).WithCause(err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return sdk.CSR{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "build the CSR").WithCause(err)
	}
	placeholder, err := placeholderFor(key)
	if err != nil {
		return sdk.CSR{}, sdk.Internal(sdk.ReasonDeviceError, "placeholder certificate").WithCause(err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return sdk.CSR{}, sdk.Internal(sdk.ReasonDeviceError, "encode the key").WithCause(err)
	}
	store, err := newStoreName(req.NameHint, req.AttemptID)
	if err != nil {
		return sdk.CSR{}, sdk.Internal(sdk.ReasonDeviceError, "store name").WithCause(err)
	}
	unlock, err := p.lock(ctx, t)
	if err != nil {
		return sdk.CSR{}, err
	}
	defer unlock()
	if req.AttemptID != "" {
		if err := c.removeEarlierAttempt(ctx, store); err != nil {
			return sdk.CSR{}, err
		}
	}
	if err := c.newStore(ctx, store); err != nil {
		return sdk.CSR{}, err
	}
	if err := c.replace(ctx, store, placeholder+keyPEM); err != nil {
		// The store is empty: remove it so nothing is left behind, even if ctx has ended.
		_, _ = c.run(context.WithoutCancel(ctx), "del ssl cert "+store, "")
		return sdk.CSR{}, err
	}
	sdk.Logger(ctx).Info("parked a new key on HAProxy", "key_ref", store)
	return sdk.CSR{PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})), KeyRef: store}, nil
}

func subjectOf(s sdk.Subject) pkix.Name {
	n := pkix.Name{CommonName: s.CommonName}
	for field, v := range map[*[]string]string{&n.Organization: s.Organization, &n.OrganizationalUnit: s.OrganizationalUnit,
		&n.Locality: s.Locality, &n.Province: s.State, &n.Country: s.Country} {
		if v != "" {
			*field = []string{v}
		}
	}
	return n
}

func newKey(spec sdk.KeySpec) (crypto.Signer, error) {
	switch {
	case spec.Type == sdk.KeyTypeRSA:
		return rsa.GenerateKey(rand.Reader, spec.Bits)
	case spec.Type == sdk.KeyTypeECDSA && spec.Bits == 256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case spec.Type == sdk.KeyTypeECDSA && spec.Bits == 384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	return nil, fmt.Errorf("unsupported key spec %v", spec)
}

func encodeKey(key crypto.Signer) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// placeholderFor is a self-signed certificate for key: HAProxy's certificate store needs a
// certificate beside a key, and checks they match when committing.
func placeholderFor(key crypto.Signer) (string, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: parkedCN, Organization: []string{"certfleet"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

// ImportCert puts the CA's certificate and chain into the parked key's store, with the key read
// back from HAProxy. The store keeps its name, so cert_ref = key_ref; called again for a store
// that already holds this certificate, it returns the same cert_ref and changes nothing.
func (p *Plugin) ImportCert(ctx context.Context, t sdk.Target, req sdk.ImportRequest) (sdk.ImportResult, error) {
	leaf, err := sdk.ParseCertificatePEM(req.CertPEM)
	if err != nil {
		return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "certificate").WithCause(err)
	}
	var chain strings.Builder
	for i, pemText := range req.ChainPEM {
		ca, err := sdk.ParseCertificatePEM(pemText)
		if err != nil {
			return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "chain certificate %d", i+1).WithCause(err)
		}
		chain.WriteString(sdk.EncodeCertificatePEM(ca))
	}
	if err := checkName("key_ref", req.KeyRef); err != nil {
		return sdk.ImportResult{}, err
	}
	if !strings.HasPrefix(req.KeyRef, storePrefix) {
		return sdk.ImportResult{}, sdk.NotFound("key_ref %q is not a key this plugin parked", req.KeyRef)
	}
	c, err := newClient(t)
	if err != nil {
		return sdk.ImportResult{}, err
	}
	unlock, err := p.lock(ctx, t)
	if err != nil {
		return sdk.ImportResult{}, err
	}
	defer unlock()
	d, err := c.describe(ctx, req.KeyRef)
	if err != nil {
		return sdk.ImportResult{}, err
	}
	if d == nil {
		return sdk.ImportResult{}, sdk.NotFound("HAProxy has no certificate store %q (the parked key)", req.KeyRef)
	}
	if !d.parked {
		if d.Serial == sdk.Describe(leaf).Serial {
			return sdk.ImportResult{CertRef: req.KeyRef}, nil // a resumed run: already imported
		}
		return sdk.ImportResult{}, sdk.FailedPrecondition(sdk.ReasonAlreadyExists,
			"store %s already holds another certificate (serial %s): its key was used before", req.KeyRef, d.Serial)
	}
	key, err := c.parkedKey(ctx, req.KeyRef)
	if err != nil {
		return sdk.ImportResult{}, err
	}
	if !sdk.PublicKeysEqual(key.Public(), leaf.PublicKey) {
		return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonKeyMismatch, "the certificate (serial %s) is not for the key parked in %s", sdk.Describe(leaf).Serial, req.KeyRef)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return sdk.ImportResult{}, sdk.Internal(sdk.ReasonDeviceError, "encode the key").WithCause(err)
	}
	if err := c.replace(ctx, req.KeyRef, sdk.EncodeCertificatePEM(leaf)+chain.String()+keyPEM); err != nil {
		return sdk.ImportResult{}, err
	}
	sdk.Logger(ctx).Info("imported certificate", "cert_ref", req.KeyRef, "serial", sdk.Describe(leaf).Serial)
	return sdk.ImportResult{CertRef: req.KeyRef}, nil
}

// rollbackToken records, per crt-list, the entry this Bind added and the lines it removed.
type rollbackToken struct {
	Version int                     `json:"v"`
	Lists   map[string]listRollback `json:"lists"`
}

type listRollback struct {
	Added   string   `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

// Bind adds the certificate to every crt-list and then removes the plugin's previous entries
// from them, or, on an error, puts back what it changed.
func (p *Plugin) Bind(ctx context.Context, t sdk.Target, req sdk.BindRequest) (sdk.BindResult, error) {
	for _, b := range req.Bindings {
		if b.Kind != BindingKind {
			return sdk.BindResult{}, sdk.InvalidArgument(sdk.ReasonUnknownBinding, "binding kind %q: this plugin has only %q", b.Kind, BindingKind)
		}
		if err := checkName("crt-list", b.Name); err != nil {
			return sdk.BindResult{}, err
		}
	}
	if err := checkName("cert_ref", req.CertRef); err != nil {
		return sdk.BindResult{}, err
	}
	c, err := newClient(t)
	if err != nil {
		return sdk.BindResult{}, err
	}
	unlock, err := p.lock(ctx, t)
	if err != nil {
		return sdk.BindResult{}, err
	}
	defer unlock()
	// Validate everything before changing anything: a failed Bind leaves HAProxy as it was.
	lists, err := c.crtLists(ctx)
	if err != nil {
		return sdk.BindResult{}, err
	}
	for _, b := range req.Bindings {
		if !slices.Contains(lists, b.Name) {
			return sdk.BindResult{}, sdk.UnknownBinding("HAProxy has no crt-list %q", b.Name)
		}
	}
	d, err := c.describe(ctx, req.CertRef)
	if err != nil {
		return sdk.BindResult{}, err
	}
	if d == nil || d.parked {
		return sdk.BindResult{}, sdk.FailedPrecondition(sdk.ReasonInvalidRequest, "store %s holds no imported certificate", req.CertRef)
	}
	type step struct {
		list    string
		add     bool
		removed []crtListEntry
	}
	var steps []step
	var out sdk.BindResult
	for _, b := range req.Bindings {
		entries, err := c.entries(ctx, b.Name)
		if err != nil {
			return sdk.BindResult{}, err
		}
		s := step{list: b.Name, add: true}
		for _, e := range entries {
			switch {
			case e.store == req.CertRef:
				s.add = false // a retried Bind: the entry is there (HAProxy would add a second line)
			case strings.HasPrefix(e.store, storePrefix):
				s.removed = append(s.removed, e)
				if !slices.Contains(out.PreviousCertRefs, e.store) {
					out.PreviousCertRefs = append(out.PreviousCertRefs, e.store)
				}
			}
		}
		steps = append(steps, s)
	}
	token := rollbackToken{Version: 1, Lists: map[string]listRollback{}}
	undo := func() {
		// Put back what this call changed, even if ctx has ended.
		u := context.WithoutCancel(ctx)
		for list, r := range token.Lists {
			for _, line := range r.Removed {
				_ = c.addEntryLine(u, list, line)
			}
			if r.Added != "" {
				_ = c.deleteEntry(u, list, r.Added)
			}
		}
	}
	for _, s := range steps {
		r := listRollback{}
		if s.add {
			if err := c.addEntry(ctx, s.list, req.CertRef); err != nil {
				undo()
				return sdk.BindResult{}, err
			}
			r.Added = req.CertRef
		}
		token.Lists[s.list] = r
		for _, e := range s.removed {
			if err := c.deleteEntry(ctx, s.list, e.store); err != nil {
				undo()
				return sdk.BindResult{}, err
			}
			r.Removed = append(r.Removed, e.line)
			token.Lists[s.list] = r
		}
	}
	out.RollbackToken, err = json.Marshal(token)
	if err != nil {
		undo()
		return sdk.BindResult{}, sdk.Internal(sdk.ReasonDeviceError, "rollback token").WithCause(err)
	}
	sdk.Logger(ctx).Warn("HAProxy serves the certificate now, from memory: the Runtime API does not write haproxy.cfg or the crt-list files, so a reload or restart goes back to what is on disk",
		"cert_ref", req.CertRef)
	return out, nil
}

// Commit has nothing to do: every Runtime API change is live when made.
func (*Plugin) Commit(context.Context, sdk.Target, sdk.CommitRequest) (sdk.CommitResult, error) {
	return sdk.CommitResult{Changed: false}, nil
}

// Rollback puts back the lines a Bind removed and removes the entry it added, in exactly the
// crt-lists of its token.
func (p *Plugin) Rollback(ctx context.Context, t sdk.Target, raw []byte) error {
	var token rollbackToken
	if err := json.Unmarshal(raw, &token); err != nil || token.Version != 1 || token.Lists == nil {
		return sdk.InvalidArgument(sdk.ReasonBadRollbackToken, "not a haproxy-runtime rollback token")
	}
	c, err := newClient(t)
	if err != nil {
		return err
	}
	unlock, err := p.lock(ctx, t)
	if err != nil {
		return err
	}
	defer unlock()
	for _, list := range sortedKeys(token.Lists) {
		r := token.Lists[list]
		if err := checkName("crt-list", list); err != nil {
			return sdk.InvalidArgument(sdk.ReasonBadRollbackToken, "rollback token: %v", err)
		}
		entries, err := c.entries(ctx, list)
		if err != nil {
			return err
		}
		for _, line := range r.Removed {
			store := strings.Fields(line)[0]
			if !slices.ContainsFunc(entries, func(e crtListEntry) bool { return e.store == store }) {
				if err := c.addEntryLine(ctx, list, line); err != nil {
					return err
				}
			}
		}
		if r.Added != "" && slices.ContainsFunc(entries, func(e crtListEntry) bool { return e.store == r.Added }) {
			if err := c.deleteEntry(ctx, list, r.Added); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Cleanup deletes the plugin's stores no crt-list uses; one in use, or already gone, is reported.
func (p *Plugin) Cleanup(ctx context.Context, t sdk.Target, objects []sdk.ObjectRef) ([]sdk.CleanupResult, error) {
	c, err := newClient(t)
	if err != nil {
		return nil, err
	}
	unlock, err := p.lock(ctx, t)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []sdk.CleanupResult
	for _, o := range objects {
		res := sdk.CleanupResult{Object: o}
		var names []string
		for _, n := range []string{o.CertRef, o.KeyRef} {
			if n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		var reasons []string
		for _, name := range names {
			if checkName("object", name) != nil || !strings.HasPrefix(name, storePrefix) {
				reasons = append(reasons, name+" was not made by certfleet")
				continue
			}
			removed, reason, err := c.deleteStore(ctx, name)
			if err != nil {
				return nil, err
			}
			if removed {
				res.Removed = true
			} else {
				reasons = append(reasons, reason)
			}
		}
		if !res.Removed {
			res.Reason = strings.Join(reasons, "; ")
		}
		out = append(out, res)
	}
	return out, nil
}

var _ sdk.BindingChecker = (*Plugin)(nil)
