// Package pemdir is a small, real device plugin written the way a third party would, on
// plugins/sdk only. Its "device" is a directory on the host (for nginx/HAProxy-style servers):
//
//	<dir>/keys/<key_ref>.key        private keys, 0600; made here, never returned
//	<dir>/certs/<cert_ref>/         cert.pem, chain.pem, fullchain.pem, privkey.pem (link to the key), key_ref
//	<dir>/live/<name>               symlink to ../certs/<cert_ref>: what a server is configured to read
//
// A binding is a live link (kind "live-link"); the names a target may bind are declared in its
// "links" option, as a device's vservers exist before certfleet binds to them. Bind swaps a link
// with one rename, so a reader sees the old set or the new one, never a mix. Commit runs the
// optional "reload_command" so the server picks the change up.
package pemdir

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/plugins/sdk"
)

// Version of the plugin: the release it was built for (see sdk.BuildVersion).
var Version = sdk.BuildVersion()

// BindingKind is the one kind of binding pemdir has.
const BindingKind = "live-link"

const (
	keysDir    = "keys"
	certsDir   = "certs"
	liveDir    = "live"
	pendingTag = ".pending-commit"
)

var targetOptions = []sdk.OptionSpec{
	{Name: "links", Type: "list", Description: "names of the live links (under <dir>/live) that certificates may be bound to"},
	{Name: "reload_command", Type: "list", Description: "command and arguments run by Commit (no shell), e.g. [systemctl, reload, nginx]"},
	{Name: "access_log", Type: "string", Description: "file under the directory to which every call appends, under the lock, the time, the host process that called (the certfleet instance), whether it could change the directory and the call's name: who touched the device, in order"},
	{Name: "call_delay", Type: "string", Description: "a duration (e.g. 50ms) every call waits under the lock before it touches the directory, as on a slow network filesystem or a remote device; for simulations (certfleet-sim --latency) and benchmarks"},
}

// maxCallDelay keeps a mistyped call_delay (50s for 50ms) from stalling every run for hours.
const maxCallDelay = time.Minute

// Plugin implements sdk.Plugin for a directory.
type Plugin struct{}

// New returns the plugin.
func New() *Plugin { return &Plugin{} }

// Info describes the plugin.
func (*Plugin) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{
		Name:                 "pemdir",
		Version:              Version,
		Vendor:               "certfleet examples",
		Description:          "PEM files in a directory, with atomically swapped live links (nginx, HAProxy, ...)",
		ContractMinorVersion: sdk.ContractMinorVersion,
		Capabilities: sdk.Capabilities{
			KeySpecs: []sdk.KeySpec{
				{Type: sdk.KeyTypeRSA, Bits: 2048}, {Type: sdk.KeyTypeRSA, Bits: 3072}, {Type: sdk.KeyTypeRSA, Bits: 4096},
				{Type: sdk.KeyTypeECDSA, Bits: 256}, {Type: sdk.KeyTypeECDSA, Bits: 384}, {Type: sdk.KeyTypeECDSA, Bits: 521},
			},
			BindingKinds:     []string{BindingKind},
			NeedsCommit:      true,
			SupportsRollback: true,
			SupportsCleanup:  true,
			TargetOptions:    targetOptions,
		},
	}, nil
}

// device is a target resolved to its directory and options.
type device struct {
	dir       string
	root      dir // the directory, held open for the call
	links     []string
	reload    []string
	accessLog string
	callDelay time.Duration
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// open resolves the target to its directory, held open until device.root.close, and options.
func open(t sdk.Target) (*device, error) {
	if unknown := t.Options.Unknown(targetOptions); len(unknown) > 0 {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "unknown option(s) %s for pemdir device %q; known: links, reload_command, access_log, call_delay", strings.Join(unknown, ", "), t.Name)
	}
	if !filepath.IsAbs(t.Address) {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "address %q of pemdir device %q must be an absolute directory path", t.Address, t.Name)
	}
	root, err := openDir(t.Address)
	if errors.Is(err, errNotDir) {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "address %s of pemdir device %q is not a directory", t.Address, t.Name)
	}
	if err != nil {
		return nil, sdk.Unavailable("directory %s", t.Address).WithCause(err)
	}
	d := &device{dir: t.Address, root: root}
	if err := d.readOptions(t); err != nil {
		root.close()
		return nil, err
	}
	if err := root.mkdirs(deviceSubdirs, 0o700); err != nil {
		root.close()
		return nil, sdk.Unavailable("prepare %s", d.dir).WithCause(err)
	}
	return d, nil
}

// readOptions checks the target's options and keeps them in d.
func (d *device) readOptions(t sdk.Target) error {
	var err error
	if d.links, err = t.Options.StringList("links"); err != nil {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "%v", err)
	}
	for _, l := range d.links {
		if !safeName.MatchString(l) {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "link name %q: use letters, digits, '.', '_' and '-' only", l)
		}
	}
	if d.reload, err = t.Options.StringList("reload_command"); err != nil {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "%v", err)
	}
	if v, ok := t.Options["access_log"]; ok {
		name, isString := v.(string)
		if !isString || !safeName.MatchString(name) {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "access_log of pemdir device %q: a file name (letters, digits, '.', '_' and '-') inside the directory", t.Name)
		}
		d.accessLog = name
	}
	d.callDelay, err = callDelay(t)
	return err
}

var deviceSubdirs = []string{keysDir, certsDir, liveDir}

// errNotDir is openDir's answer for a path that is there but is not a directory.
var errNotDir = errors.New("not a directory")

// callDelay reads the call_delay option.
func callDelay(t sdk.Target) (time.Duration, error) {
	v, ok := t.Options["call_delay"]
	if !ok {
		return 0, nil
	}
	s, isString := v.(string)
	delay, err := time.ParseDuration(s)
	if !isString || err != nil || delay < 0 || delay > maxCallDelay {
		return 0, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "call_delay %v of pemdir device %q: a duration between 0 and %s, such as 50ms", v, t.Name, maxCallDelay)
	}
	return delay, nil
}

// withLock opens the target and runs fn, the plugin call named call, under its directory lock,
// after the target's call_delay.
func withLock(ctx context.Context, t sdk.Target, call string, exclusive bool, fn func(d *device) error) error {
	if err := sdk.FromContext(ctx); err != nil {
		return err
	}
	d, err := open(t)
	if err != nil {
		return err
	}
	defer d.root.close()
	unlock, err := d.root.lock(ctx, exclusive)
	if err != nil {
		return err
	}
	defer unlock()
	if err := d.logAccess(call, exclusive); err != nil {
		return err
	}
	if d.callDelay > 0 {
		// Under the lock: a slow device is busy for the whole call, so calls to it queue.
		t := time.NewTimer(d.callDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return sdk.FromContext(ctx).WithCause(ctx.Err())
		case <-t.C:
		}
	}
	return fn(d)
}

// logAccess appends who is calling to the access log, if the target keeps one.
func (d *device) logAccess(call string, exclusive bool) error {
	if d.accessLog == "" {
		return nil
	}
	mode := "read"
	if exclusive {
		mode = "write"
	}
	line := fmt.Appendf(nil, "%s %d %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), hostPID(), mode, call)
	if err := d.root.appendFile(d.accessLog, line, 0o600); err != nil {
		return sdk.Unavailable("access log of %s", d.dir).WithCause(err)
	}
	return nil
}

// hostPID is the process that started the plugin (the certfleet instance); asked once, as it
// does not change while the host lives, where the access log gets a line on every call.
var hostPID = sync.OnceValue(os.Getppid)

// CheckTarget reports the directory as the device.
func (*Plugin) CheckTarget(ctx context.Context, t sdk.Target) (sdk.TargetInfo, error) {
	var info sdk.TargetInfo
	err := withLock(ctx, t, "CheckTarget", false, func(d *device) error {
		host, _ := os.Hostname()
		info = sdk.TargetInfo{Hostname: host, Model: "directory", SoftwareVersion: Version, HARole: "standalone",
			Details: map[string]string{"directory": d.dir}}
		return nil
	})
	return info, err
}

func (d *device) keyPath(ref string) string  { return filepath.Join(d.dir, keysDir, ref+".key") }
func (d *device) certPath(ref string) string { return filepath.Join(d.dir, certsDir, ref) }
func (d *device) linkPath(name string) string {
	return filepath.Join(d.dir, liveDir, name)
}

// liveTargets maps each live link to the cert_ref it points at.
func (d *device) liveTargets() (map[string]string, error) {
	live, err := d.root.sub(liveDir)
	if err != nil {
		return nil, fmt.Errorf("read live links: %w", err)
	}
	defer live.close()
	entries, err := live.entries()
	if err != nil {
		return nil, fmt.Errorf("read live links: %w", err)
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		if !e.isSymlink() {
			continue
		}
		dest, err := live.readlink(e.name)
		if err != nil {
			return nil, fmt.Errorf("read link %s: %w", e.name, err)
		}
		out[e.name] = filepath.Base(dest)
	}
	return out, nil
}

// keyRefOf is the key_ref of the certificate set ref: where its privkey.pem link points (one
// readlink, where reading the key_ref file next to it costs an open, a stat, reads and a close:
// an Inventory does this for every certificate on the device), else what its key_ref file says
// (a set whose link was removed or changed by hand); "" when neither tells. The set is the
// directory set below base; buf is scratch space for reading a file.
func keyRefOf(base dir, set string, buf []byte) string {
	dest, err := base.readlink(filepath.Join(set, "privkey.pem"))
	if err == nil && filepath.Base(filepath.Dir(dest)) == keysDir && strings.HasSuffix(dest, ".key") {
		return strings.TrimSuffix(filepath.Base(dest), ".key")
	}
	if k, err := base.readFile(filepath.Join(set, "key_ref"), buf); err == nil {
		return strings.TrimSpace(string(k))
	}
	return ""
}

// Inventory lists every certificate in certs/ and the live links pointing at it.
func (*Plugin) Inventory(ctx context.Context, t sdk.Target) ([]sdk.DeviceCertificate, error) {
	var out []sdk.DeviceCertificate
	// A caller that reads only fingerprints and bindings saves a readlink per certificate.
	fingerprintsOnly := sdk.FingerprintsOnly(ctx)
	err := withLock(ctx, t, "Inventory", false, func(d *device) error {
		live, err := d.liveTargets()
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "inventory of %s", d.dir).WithCause(err)
		}
		certs, err := d.root.sub(certsDir)
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "inventory of %s", d.dir).WithCause(err)
		}
		defer certs.close()
		entries, err := certs.entries()
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "inventory of %s", d.dir).WithCause(err)
		}
		var buf []byte // each file is read into it in turn; what is kept is copied out
		out = make([]sdk.DeviceCertificate, 0, len(entries))
		for _, e := range entries {
			if !e.isDir() || strings.HasPrefix(e.name, ".") {
				continue
			}
			data, err := certs.readFile(filepath.Join(e.name, "cert.pem"), buf)
			if err != nil {
				sdk.Logger(ctx).Warn("skipping certificate directory without cert.pem", "cert_ref", e.name)
				continue
			}
			buf = data
			cert, err := sdk.ParseCertificatePEM(string(data))
			if err != nil {
				sdk.Logger(ctx).Warn("skipping unreadable certificate", "cert_ref", e.name, "error", err)
				continue
			}
			dc := sdk.DescribeFor(ctx, cert)
			dc.CertRef = e.name
			if !fingerprintsOnly {
				dc.KeyRef = keyRefOf(certs, e.name, buf)
			}
			for name, ref := range live {
				if ref == e.name {
					dc.Bindings = append(dc.Bindings, sdk.Binding{Kind: BindingKind, Name: name})
				}
			}
			slices.SortFunc(dc.Bindings, func(a, b sdk.Binding) int { return strings.Compare(a.Name, b.Name) })
			out = append(out, dc)
		}
		return nil
	})
	return out, err
}

// newRef names the key of one GenerateCSR call: for an attempt (CSRRequest.AttemptID) always
// hint-<tag of the attempt>, so a call repeated after its answer was lost replaces the key the
// first one made; without one, a new name on every call: hint-YYYYmmddHHMMSS-random.
func newRef(hint, attemptID string) (string, error) {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, hint)
	if clean == "" {
		clean = "cert"
	}
	if attemptID != "" {
		return sdk.AttemptName(clean, "-", attemptID, 64+1+sdk.AttemptTagLen), nil
	}
	if len(clean) > 64 {
		clean = clean[:64]
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s-%s-%x", clean, time.Now().UTC().Format("20060102150405"), b), nil
}

func generateKey(spec sdk.KeySpec) (crypto.Signer, error) {
	switch spec.Type {
	case sdk.KeyTypeRSA:
		return rsa.GenerateKey(rand.Reader, spec.Bits)
	case sdk.KeyTypeECDSA:
		curve := map[int]elliptic.Curve{256: elliptic.P256(), 384: elliptic.P384(), 521: elliptic.P521()}[spec.Bits]
		return ecdsa.GenerateKey(curve, rand.Reader)
	}
	return nil, fmt.Errorf("unsupported key %v", spec)
}

func subjectName(s sdk.Subject) pkix.Name {
	one := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	return pkix.Name{
		CommonName: s.CommonName, Organization: one(s.Organization), OrganizationalUnit: one(s.OrganizationalUnit),
		Locality: one(s.Locality), Province: one(s.State), Country: one(s.Country),
	}
}

// GenerateCSR makes a key in keys/ (0600, never returned) and a CSR for it.
func (*Plugin) GenerateCSR(ctx context.Context, t sdk.Target, req sdk.CSRRequest) (sdk.CSR, error) {
	if !req.KeySpec.Valid() {
		return sdk.CSR{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "key %v is not supported; use rsa 2048/3072/4096 or ecdsa 256/384/521", req.KeySpec)
	}
	if req.Subject.CommonName == "" && len(req.SANs.DNSNames) == 0 {
		return sdk.CSR{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "a CSR needs a common name or at least one DNS name")
	}
	tmpl := &x509.CertificateRequest{Subject: subjectName(req.Subject), DNSNames: req.SANs.DNSNames, EmailAddresses: req.SANs.EmailAddresses}
	if req.Subject.Email != "" {
		tmpl.EmailAddresses = append(tmpl.EmailAddresses, req.Subject.Email)
	}
	for _, s := range req.SANs.IPAddresses {
		ip := net.ParseIP(s)
		if ip == nil {
			return sdk.CSR{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "SAN %q is not an IP address", s)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	var out sdk.CSR
	err := withLock(ctx, t, "GenerateCSR", true, func(d *device) error {
		key, err := generateKey(req.KeySpec)
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "generate key").WithCause(err)
		}
		if err := sdk.FromContext(ctx); err != nil {
			return err
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "create CSR").WithCause(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "encode key").WithCause(err)
		}
		ref, err := newRef(req.NameHint, req.AttemptID)
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "name key").WithCause(err)
		}
		if req.AttemptID != "" {
			// An earlier call of this attempt whose answer was lost left its key: nobody has its
			// key_ref, so it goes (under the device lock, no other call can be using it).
			if err := os.Remove(d.keyPath(ref)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return sdk.Internal(sdk.ReasonDeviceError, "remove the key of an earlier call of this attempt").WithCause(err)
			}
		}
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
		if err := writeNew(d.keyPath(ref), keyPEM, 0o600); err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "store key").WithCause(err)
		}
		out = sdk.CSR{KeyRef: ref, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))}
		sdk.Logger(ctx).Info("generated key and CSR", "key_ref", ref, "key", req.KeySpec.String())
		return nil
	})
	return out, err
}

// writeNew writes a file that must not exist yet, fully or not at all.
func writeNew(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Link fails if path exists, unlike rename: an object is never overwritten (a repeated attempt
	// removes its earlier key first).
	return os.Link(tmp.Name(), path)
}

func (d *device) loadPublicKey(keyRef string) (crypto.PublicKey, error) {
	if !safeName.MatchString(keyRef) {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "key_ref %q is not a pemdir key reference", keyRef)
	}
	data, err := os.ReadFile(d.keyPath(keyRef))
	if errors.Is(err, os.ErrNotExist) {
		return nil, sdk.NotFound("no key %q in %s", keyRef, d.dir)
	}
	if err != nil {
		return nil, sdk.Internal(sdk.ReasonDeviceError, "read key %q", keyRef).WithCause(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, sdk.Internal(sdk.ReasonDeviceError, "key %q is not PEM", keyRef)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, sdk.Internal(sdk.ReasonDeviceError, "parse key %q", keyRef).WithCause(err)
	}
	return key.(crypto.Signer).Public(), nil
}

// ImportCert writes the certificate set for a key, after checking the certificate is for that key.
func (*Plugin) ImportCert(ctx context.Context, t sdk.Target, req sdk.ImportRequest) (sdk.ImportResult, error) {
	leaf, err := sdk.ParseCertificatePEM(req.CertPEM)
	if err != nil {
		return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "certificate").WithCause(err)
	}
	var chain []byte
	for i, c := range req.ChainPEM {
		cert, err := sdk.ParseCertificatePEM(c)
		if err != nil {
			return sdk.ImportResult{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "chain certificate %d", i+1).WithCause(err)
		}
		chain = append(chain, sdk.EncodeCertificatePEM(cert)...)
	}
	var out sdk.ImportResult
	err = withLock(ctx, t, "ImportCert", true, func(d *device) error {
		pub, err := d.loadPublicKey(req.KeyRef)
		if err != nil {
			return err
		}
		if !sdk.PublicKeysEqual(pub, leaf.PublicKey) {
			return sdk.InvalidArgument(sdk.ReasonKeyMismatch, "certificate serial %s is not for key %q", leaf.SerialNumber, req.KeyRef)
		}
		ref := req.KeyRef + "-" + sdk.Fingerprint(leaf)[:8]
		final := d.certPath(ref)
		if _, err := os.Stat(final); err == nil {
			// Same certificate for the same key imported again (a resumed run): same object.
			out = sdk.ImportResult{CertRef: ref}
			return nil
		}
		tmp, err := os.MkdirTemp(filepath.Join(d.dir, certsDir), ".tmp-")
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "import").WithCause(err)
		}
		defer os.RemoveAll(tmp)
		leafPEM := []byte(sdk.EncodeCertificatePEM(leaf))
		files := map[string][]byte{
			"cert.pem": leafPEM, "chain.pem": chain, "fullchain.pem": append(append([]byte{}, leafPEM...), chain...),
			"key_ref": []byte(req.KeyRef + "\n"),
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
				return sdk.Internal(sdk.ReasonDeviceError, "import").WithCause(err)
			}
		}
		if err := os.Symlink(filepath.Join("..", "..", keysDir, req.KeyRef+".key"), filepath.Join(tmp, "privkey.pem")); err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "import").WithCause(err)
		}
		if err := os.Chmod(tmp, 0o755); err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "import").WithCause(err)
		}
		if err := os.Rename(tmp, final); err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "import").WithCause(err)
		}
		out = sdk.ImportResult{CertRef: ref}
		sdk.Logger(ctx).Info("imported certificate", "cert_ref", ref, "serial", leaf.SerialNumber.Text(16))
		return nil
	})
	return out, err
}

// rollbackToken records what each link pointed at before a Bind ("" = it did not exist).
type rollbackToken struct {
	Version int               `json:"v"`
	Links   map[string]string `json:"links"`
}

// pointLink makes live/<name> point at certs/<ref> (or removes it when ref is empty) atomically.
func (d *device) pointLink(name, ref string) error {
	link := d.linkPath(name)
	if ref == "" {
		if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	tmp := filepath.Join(d.dir, liveDir, fmt.Sprintf(".tmp-%s-%d", name, time.Now().UnixNano()))
	if err := os.Symlink(filepath.Join("..", certsDir, ref), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func (d *device) markPending() error {
	return os.WriteFile(filepath.Join(d.dir, pendingTag), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
}

// Bind points each live link at the certificate.
func (*Plugin) Bind(ctx context.Context, t sdk.Target, req sdk.BindRequest) (sdk.BindResult, error) {
	var out sdk.BindResult
	err := withLock(ctx, t, "Bind", true, func(d *device) error {
		for _, b := range req.Bindings {
			if b.Kind != BindingKind {
				return sdk.InvalidArgument(sdk.ReasonUnknownBinding, "binding kind %q: pemdir has only %q", b.Kind, BindingKind)
			}
			if !slices.Contains(d.links, b.Name) {
				return sdk.UnknownBinding("live link %q is not declared in the device's links option %v", b.Name, d.links)
			}
			if len(b.Options) > 0 {
				return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %s: pemdir bindings take no options", b)
			}
		}
		if _, err := os.Stat(filepath.Join(d.certPath(req.CertRef), "cert.pem")); err != nil || !safeName.MatchString(req.CertRef) {
			return sdk.NotFound("no certificate %q in %s", req.CertRef, d.dir)
		}
		live, err := d.liveTargets()
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "bind").WithCause(err)
		}
		token := rollbackToken{Version: 1, Links: map[string]string{}}
		for _, b := range req.Bindings {
			prev := live[b.Name]
			token.Links[b.Name] = prev
			if prev != "" && prev != req.CertRef && !slices.Contains(out.PreviousCertRefs, prev) {
				out.PreviousCertRefs = append(out.PreviousCertRefs, prev)
			}
		}
		for _, b := range req.Bindings {
			if err := d.pointLink(b.Name, req.CertRef); err != nil {
				// Put back what this call already changed: no half-bound set is left behind.
				for name, prev := range token.Links {
					_ = d.pointLink(name, prev)
				}
				return sdk.Internal(sdk.ReasonDeviceError, "bind %s", b).WithCause(err)
			}
		}
		if err := d.markPending(); err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "bind").WithCause(err)
		}
		out.RollbackToken, err = json.Marshal(token)
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "bind").WithCause(err)
		}
		sdk.Logger(ctx).Info("bound certificate", "cert_ref", req.CertRef, "links", len(req.Bindings))
		return nil
	})
	return out, err
}

// Rollback points the links back where the token says they were.
func (*Plugin) Rollback(ctx context.Context, t sdk.Target, raw []byte) error {
	var token rollbackToken
	if err := json.Unmarshal(raw, &token); err != nil || token.Version != 1 || token.Links == nil {
		return sdk.InvalidArgument(sdk.ReasonBadRollbackToken, "not a pemdir rollback token")
	}
	return withLock(ctx, t, "Rollback", true, func(d *device) error {
		for name, ref := range token.Links {
			if !safeName.MatchString(name) || (ref != "" && !safeName.MatchString(ref)) {
				return sdk.InvalidArgument(sdk.ReasonBadRollbackToken, "rollback token names %q -> %q", name, ref)
			}
		}
		for name, ref := range token.Links {
			if err := d.pointLink(name, ref); err != nil {
				return sdk.Internal(sdk.ReasonDeviceError, "restore link %s", name).WithCause(err)
			}
		}
		if err := d.markPending(); err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "rollback").WithCause(err)
		}
		sdk.Logger(ctx).Info("rolled back links", "links", len(token.Links))
		return nil
	})
}

// Commit runs the reload command when links changed since the last commit.
func (*Plugin) Commit(ctx context.Context, t sdk.Target, req sdk.CommitRequest) (sdk.CommitResult, error) {
	var out sdk.CommitResult
	err := withLock(ctx, t, "Commit", true, func(d *device) error {
		marker := filepath.Join(d.dir, pendingTag)
		if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) {
			out.Message = "nothing to commit"
			return nil
		}
		if len(d.reload) > 0 {
			cmd := exec.CommandContext(ctx, d.reload[0], d.reload[1:]...)
			cmd.Dir = d.dir
			output, err := cmd.CombinedOutput()
			if err != nil {
				if cerr := sdk.FromContext(ctx); cerr != nil {
					return cerr.WithCause(err)
				}
				return sdk.FailedPrecondition(sdk.ReasonCommitFailed, "reload command %q failed: %s", strings.Join(d.reload, " "),
					strings.TrimSpace(string(output))).WithCause(err)
			}
			out.Message = "reloaded: " + strings.TrimSpace(string(output))
		}
		if err := os.Remove(marker); err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "commit").WithCause(err)
		}
		out.Changed = true
		sdk.Logger(ctx).Info("committed", "description", req.Description)
		return nil
	})
	return out, err
}

// Cleanup removes certificate sets and keys no live link uses.
func (*Plugin) Cleanup(ctx context.Context, t sdk.Target, objects []sdk.ObjectRef) ([]sdk.CleanupResult, error) {
	var out []sdk.CleanupResult
	err := withLock(ctx, t, "Cleanup", true, func(d *device) error {
		live, err := d.liveTargets()
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "cleanup").WithCause(err)
		}
		liveKeys := map[string]string{}
		for name, ref := range live {
			if k := keyRefOf(d.root, filepath.Join(certsDir, ref), nil); k != "" {
				liveKeys[k] = name
			}
		}
		for _, o := range objects {
			res := sdk.CleanupResult{Object: o}
			res.Removed, res.Reason = d.remove(o, live, liveKeys)
			out = append(out, res)
		}
		return nil
	})
	return out, err
}

func (d *device) remove(o sdk.ObjectRef, live, liveKeys map[string]string) (bool, string) {
	for _, ref := range []string{o.CertRef, o.KeyRef} {
		if ref != "" && !safeName.MatchString(ref) {
			return false, fmt.Sprintf("%q is not a pemdir object name", ref)
		}
	}
	for name, ref := range live {
		if o.CertRef != "" && ref == o.CertRef {
			return false, "still bound to live/" + name
		}
	}
	if name, ok := liveKeys[o.KeyRef]; ok && o.KeyRef != "" {
		return false, "key still used by live/" + name
	}
	removed := false
	if o.CertRef != "" {
		if _, err := os.Stat(d.certPath(o.CertRef)); err == nil {
			if err := os.RemoveAll(d.certPath(o.CertRef)); err != nil {
				return false, "remove certificate: " + err.Error()
			}
			removed = true
		}
	}
	if o.KeyRef != "" {
		err := os.Remove(d.keyPath(o.KeyRef))
		if err == nil {
			removed = true
		} else if !errors.Is(err, os.ErrNotExist) {
			return removed, "remove key: " + err.Error()
		}
	}
	if !removed {
		return false, "not found"
	}
	return true, ""
}
