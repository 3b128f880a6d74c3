package f5bigip

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/certfleet/certfleet/plugins/f5-bigip/icontrol"
	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

// Bind points the bindings at the certificate, all in one transaction; the device applies all of
// it or nothing. With a PCI key, the key's own profile (which holds the passphrase) is attached to
// the virtual servers in place of their client-ssl profile, which becomes its parent; nothing
// needs the passphrase. Otherwise every client-ssl profile involved gets exactly the new
// certificate, key and chain in one certKeyChain entry, so no virtual server ever serves a pair
// that does not match; a profile whose current key is passphrase-protected is refused before
// anything changes, since certfleet could never put that key back.
func (*Plugin) Bind(ctx context.Context, t sdk.Target, req sdk.BindRequest) (sdk.BindResult, error) {
	if err := sdk.FromContext(ctx); err != nil {
		return sdk.BindResult{}, err
	}
	if len(req.Bindings) == 0 {
		return sdk.BindResult{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "no bindings to bind")
	}
	for _, b := range req.Bindings {
		if err := checkBinding(b); err != nil {
			return sdk.BindResult{}, err
		}
	}
	ref, err := parseKeyRef(req.KeyRef)
	if err != nil {
		return sdk.BindResult{}, err
	}
	var out sdk.BindResult
	err = withDevice(ctx, t, func(d *device) error {
		if err := d.requireActive(ctx); err != nil {
			return err
		}
		certPath, err := d.resolve(req.CertRef)
		if err != nil {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "cert_ref: %v", err)
		}
		var cert icontrol.CertFile
		if err := d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathFileCert, certPath), &cert); err != nil {
			if icontrol.IsNotFound(err) {
				return sdk.NotFound("certificate %s (cert_ref) is not on %s; import it first", certPath, d.address)
			}
			return d.deviceError(ctx, "read certificate "+certPath, err)
		}
		var key icontrol.Key
		if err := d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathFileKey, ref.path), &key); err != nil {
			if icontrol.IsNotFound(err) {
				return sdk.NotFound("key %s (key_ref) is not on %s", ref.path, d.address)
			}
			return d.deviceError(ctx, "read key "+ref.path, err)
		}
		keyProf, pci, err := d.keyProfile(ctx, ref.path)
		if err != nil {
			return err
		}
		var entry icontrol.CertKeyChain
		if pci {
			entry = keyProf.Entries()[0]
			entry.Chain = noneToEmpty(entry.Chain)
			if entry.Cert != certPath {
				return sdk.InvalidArgument(sdk.ReasonKeyMismatch, "cert_ref %s is not the certificate of key %s (its profile %s holds %s); bind the cert_ref ImportCert returned for this key", certPath, ref.path, keyProf.Path(), entry.Cert)
			}
			if commonName(cert.Subject) == placeholderCN {
				return sdk.FailedPrecondition(sdk.ReasonInvalidRequest, "certificate %s is still the placeholder GenerateCSR made; import the CA-issued certificate for key %s first", certPath, ref.path)
			}
		} else {
			if key.SecurityType == "password" {
				return sdk.FailedPrecondition(ReasonBadPassphrase,
					"key %s is passphrase-protected and has no certfleet profile (%s); certfleet does not know its passphrase, so it cannot put the key into a profile: make a new CSR with certfleet", ref.path, keyProfilePath(ref.path))
			}
			entry = icontrol.CertKeyChain{Cert: certPath, Key: ref.path}
			switch err := d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathFileCert, chainPath(certPath)), nil); {
			case err == nil:
				entry.Chain = chainPath(certPath)
			case !icontrol.IsNotFound(err):
				return d.deviceError(ctx, "read chain "+chainPath(certPath), err)
			}
		}
		planned := ""
		if pci {
			planned = keyProf.Path()
		}
		p, err := d.plan(ctx, req.Bindings, commonName(cert.Subject), planned)
		if err != nil {
			return err
		}
		if err := p.checkReversible(ctx); err != nil {
			return err
		}
		token, err := json.Marshal(p.rollbackToken())
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "encode rollback token").WithCause(err)
		}
		err = d.inTransaction(ctx, "bind "+certPath, func(id int64) error { return p.apply(ctx, id, entry) })
		if err != nil && p.changesKeyProfileParent() && sdk.AsError(err).Code == codes.FailedPrecondition {
			// Whether BIG-IP lets a profile's defaultsFrom change is [UNCONFIRMED] (sources
			// conflict): when the device refused the transaction, which changed nothing, copy the
			// replaced profile's settings onto the key's profile instead.
			sdk.Logger(ctx).Debug("the device refused the transaction that changes the parent of the key's profile; copying the parent's settings instead",
				"profile", p.keyProfile, "error", err.Error())
			if cerr := p.copyParentSettings(ctx); cerr != nil {
				return cerr
			}
			if token, err = json.Marshal(p.rollbackToken()); err != nil {
				return sdk.Internal(sdk.ReasonDeviceError, "encode rollback token").WithCause(err)
			}
			err = d.inTransaction(ctx, "bind "+certPath, func(id int64) error { return p.apply(ctx, id, entry) })
		}
		if err != nil {
			return err
		}
		if err := p.verify(ctx, entry); err != nil {
			return err
		}
		out = sdk.BindResult{RollbackToken: token, PreviousCertRefs: p.previousCerts(certPath)}
		sdk.Logger(ctx).Debug("bound", "cert", certPath, "profiles", len(p.profiles), "virtual_servers", len(p.virtuals), "key_profile", pci)
		return nil
	})
	return out, err
}

func checkBinding(b sdk.Binding) error {
	allowed := map[string][]string{
		KindVirtual:          {"profile", "parent", "server_name"},
		KindClientSSLProfile: {"virtuals", "create", "parent", "server_name"},
	}[b.Kind]
	if allowed == nil {
		return sdk.InvalidArgument(sdk.ReasonUnknownBinding, "binding kind %q is not one of %s, %s", b.Kind, KindVirtual, KindClientSSLProfile)
	}
	if b.Name == "" {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v has no name", b)
	}
	if unknown := b.Options.Unknown(bindingOptions); len(unknown) > 0 {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: unknown option(s) %s", b, strings.Join(unknown, ", "))
	}
	for name := range b.Options {
		if !slices.Contains(allowed, name) {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: option %s does not apply to kind %s (it takes %s)", b, name, b.Kind, strings.Join(allowed, ", "))
		}
	}
	for _, check := range []func() error{
		func() error { _, err := b.Options.String("profile", ""); return err },
		func() error { _, err := b.Options.String("parent", ""); return err },
		func() error { _, err := b.Options.String("server_name", ""); return err },
		func() error { _, err := b.Options.Bool("create", false); return err },
		func() error { _, err := b.Options.StringList("virtuals"); return err },
	} {
		if err := check(); err != nil {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: %v", b, err)
		}
	}
	return nil
}

// bindPlan is what one Bind changes, read before the transaction.
type bindPlan struct {
	d *device
	// copied: the settings copied from the parent onto the key's profile, and what the key's
	// profile had before, when the device does not let its parent change.
	copied, copiedBefore map[string]any
	// keyProfile: the PCI key's own profile, attached in place of the virtual servers' profiles;
	// its pair is never edited. Empty without a PCI key.
	keyProfile string
	existing   map[string]icontrol.ClientSSLProfile
	profiles   []*profileChange
	virtuals   []*virtualChange
	byProfile  map[string]*profileChange
	byVirtual  map[string]*virtualChange
}

type profileChange struct {
	path    string
	existed bool
	before  icontrol.ClientSSLProfile
	// parent: defaultsFrom of a profile certfleet creates, or the new parent of a PCI key's
	// profile ("" keeps it).
	parent string
	// keepPair: the profile's certKeyChain is not touched (a PCI key's own profile).
	keepPair bool
	// settingsFrom: the profile whose settings are copied when the parent cannot change.
	settingsFrom string
	// sni: the profile answers serverName and is the SNI default only where it is alone.
	sni        bool
	serverName string
	sniDefault bool
	// makeDefault: a non-SNI profile that shares a virtual server with SNI profiles becomes the
	// SNI default (the certificate for clients that send no or an unknown server name).
	makeDefault bool
}

type virtualChange struct {
	path   string
	before []icontrol.VirtualProfile
	after  []icontrol.VirtualProfile
	// attach: profile path → SNI binding.
	attach  map[string]bool
	changed bool
}

func (d *device) plan(ctx context.Context, bindings []sdk.Binding, certCN, keyProfile string) (*bindPlan, error) {
	all, err := icontrol.List[icontrol.ClientSSLProfile](ctx, d.c, icontrol.PathClientSSL, nil)
	if err != nil {
		return nil, d.deviceError(ctx, "list client-ssl profiles", err)
	}
	p := &bindPlan{d: d, keyProfile: keyProfile, existing: map[string]icontrol.ClientSSLProfile{}, byProfile: map[string]*profileChange{}, byVirtual: map[string]*virtualChange{}}
	for _, prof := range all {
		p.existing[prof.Path()] = prof
	}
	for _, b := range bindings {
		explicitParent, _ := b.Options.String("parent", "")
		if explicitParent != "" {
			if explicitParent, err = d.resolve(explicitParent); err != nil {
				return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: option parent: %v", b, err)
			}
			if _, ok := p.existing[explicitParent]; !ok {
				return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: option parent: client-ssl profile %s does not exist on %s", b, explicitParent, d.address)
			}
		}
		serverName, _ := b.Options.String("server_name", "")
		if serverName == "" {
			serverName = certCN
		}
		switch b.Kind {
		case KindVirtual:
			vpath, err := d.resolve(b.Name)
			if err != nil {
				return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: %v", b, err)
			}
			vpart, vshort := splitPath(vpath)
			ppath := "/" + vpart + "/certfleet_" + vshort
			name, _ := b.Options.String("profile", "")
			switch {
			case keyProfile != "" && name != "":
				return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: option profile does not apply to a PCI key, whose own profile %s is attached (only it holds the key's passphrase); remove the option", b, keyProfile)
			case keyProfile != "":
				ppath = keyProfile
			case name != "":
				if ppath, err = d.resolve(name); err != nil {
					return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: option profile: %v", b, err)
				}
			}
			if err := p.attach(ctx, b, vpath, ppath); err != nil {
				return nil, err
			}
			parent, settingsFrom, err := p.inheritFrom(b, vpath, ppath, explicitParent)
			if err != nil {
				return nil, err
			}
			if err := p.addProfile(b, ppath, true, parent, serverName); err != nil {
				return nil, err
			}
			p.byProfile[ppath].settingsFrom = settingsFrom
		case KindClientSSLProfile:
			if keyProfile != "" {
				return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest,
					"binding %v: a PCI key cannot be put into the existing profile %s: that needs the key's passphrase, which certfleet does not keep. Bind the virtual servers instead (kind virtual): certfleet attaches the key's own profile %s, inheriting %s's settings", b, b.Name, keyProfile, b.Name)
			}
			ppath, err := d.resolve(b.Name)
			if err != nil {
				return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: %v", b, err)
			}
			create, _ := b.Options.Bool("create", false)
			parent := explicitParent
			if parent == "" {
				parent = d.parent
			}
			if err := p.addProfile(b, ppath, create, parent, serverName); err != nil {
				return nil, err
			}
			virtuals, _ := b.Options.StringList("virtuals")
			for _, v := range virtuals {
				vpath, err := d.resolve(v)
				if err != nil {
					return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: option virtuals: %v", b, err)
				}
				if err := p.attach(ctx, b, vpath, ppath); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := p.checkKeyProfileParent(ctx); err != nil {
		return nil, err
	}
	// Renewing over a key profile whose settings were copied (on a device that does not let a
	// parent change), the parent stays the same: copy the settings again where they differ.
	if pc := p.byProfile[p.keyProfile]; pc != nil && pc.settingsFrom != "" && pc.settingsFrom != pc.parent && pc.parent == pc.before.DefaultsFrom {
		if err := p.copyParentSettings(ctx); err != nil {
			return nil, err
		}
		if reflect.DeepEqual(p.copied, p.copiedBefore) {
			p.copied, p.copiedBefore = nil, nil
		}
	}
	return p, p.settle()
}

// inheritFrom picks the parent of the profile a kind-virtual binding attaches: option parent;
// for an SNI binding (which joins the others) the device's parent_profile; else the client-ssl
// profile it replaces on the virtual server (the parent of a profile certfleet made, which is the
// customer's), so ciphers, options, client authentication and renegotiation settings are kept.
// settingsFrom is the profile whose settings stand for the parent's where a device does not let a
// parent change (a profile certfleet made holds the customer's settings, copied or inherited).
func (p *bindPlan) inheritFrom(b sdk.Binding, vpath, ppath, explicit string) (parent, settingsFrom string, err error) {
	if explicit != "" {
		return explicit, explicit, nil
	}
	if b.SNI {
		return p.d.parent, p.d.parent, nil
	}
	var replaced []string
	carried := false
	for _, vp := range p.byVirtual[vpath].before {
		path := vp.Path()
		carried = carried || path == ppath
		if _, ok := p.existing[path]; ok && path != ppath {
			replaced = append(replaced, path)
		}
	}
	switch {
	case len(replaced) == 0 && carried && p.existing[ppath].DefaultsFrom != "":
		// Bound already (a repeated Bind): keep what the profile inherits from.
		return p.existing[ppath].DefaultsFrom, ppath, nil
	case len(replaced) == 0:
		return p.d.parent, p.d.parent, nil
	case len(replaced) == 1:
		if prof := p.existing[replaced[0]]; isCertfleetProfile(prof) && prof.DefaultsFrom != "" {
			return prof.DefaultsFrom, replaced[0], nil
		}
		return replaced[0], replaced[0], nil
	}
	return "", "", sdk.InvalidArgument(sdk.ReasonInvalidRequest,
		"binding %v: virtual server %s carries client-ssl profiles %s; set binding option parent to the one whose settings (ciphers, options, client authentication) certfleet's profile should inherit",
		b, vpath, strings.Join(replaced, ", "))
}

// checkKeyProfileParent: a PCI key's profile has one parent. Changing it changes the settings of
// every virtual server that carries the profile, so it is refused when one outside this Bind does.
func (p *bindPlan) checkKeyProfileParent(ctx context.Context) error {
	pc := p.byProfile[p.keyProfile]
	if pc == nil || pc.parent == "" || pc.parent == pc.before.DefaultsFrom {
		return nil
	}
	carriers, err := p.d.carriers(ctx)
	if err != nil {
		return err
	}
	for _, v := range carriers[pc.path] {
		if vc := p.byVirtual[v]; vc == nil {
			return sdk.FailedPrecondition(sdk.ReasonInvalidRequest,
				"profile %s of this key is also on virtual server %s with parent %s; these bindings need parent %s. Bind them together with the same parent (option parent), or use separate certificates",
				pc.path, v, pc.before.DefaultsFrom, pc.parent)
		}
	}
	return nil
}

// profileSettings are the client-ssl properties that carry a customer's TLS settings (ciphers,
// protocol options, renegotiation, client-certificate authentication, session cache): the ones
// f5-ansible's bigip_profile_client_ssl manages (api_attributes), besides the pairs and SNI.
var profileSettings = []string{
	"ciphers", "cipherGroup", "tmOptions", "secureRenegotiation", "renegotiation", "allowNonSsl",
	"sniRequire", "peerCertMode", "authenticate", "authenticateDepth", "retainCertificate", "caFile",
	"clientCertCa", "crlFile", "allowExpiredCrl", "strictResume", "cacheSize", "cacheTimeout",
}

func (p *bindPlan) changesKeyProfileParent() bool {
	pc := p.byProfile[p.keyProfile]
	return pc != nil && p.copied == nil && pc.parent != "" && pc.parent != pc.before.DefaultsFrom
}

// copyParentSettings reads the settings of the parent the key's profile should have and of the
// key's profile itself, for a Bind that copies them instead of changing the parent.
func (p *bindPlan) copyParentSettings(ctx context.Context) error {
	pc := p.byProfile[p.keyProfile]
	read := func(path string) (map[string]any, error) {
		var raw map[string]any
		if err := p.d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathClientSSL, path), &raw); err != nil {
			return nil, p.d.deviceError(ctx, "read client-ssl profile "+path, err)
		}
		out := map[string]any{}
		for _, k := range profileSettings {
			if v, ok := raw[k]; ok {
				out[k] = v
			}
		}
		return out, nil
	}
	from := pc.settingsFrom
	if from == "" {
		from = pc.parent
	}
	parent, err := read(from)
	if err != nil {
		return err
	}
	before, err := read(pc.path)
	if err != nil {
		return err
	}
	p.copied, p.copiedBefore = parent, before
	return nil
}

// checkReversible refuses, before anything changes, to edit a profile in place whose current key
// is passphrase-protected: certfleet does not have that passphrase (another tool, such as the
// Sectigo PCI agent, made the key), so it could never put the key back, and Rollback would fail
// with 01070313 (bad password read; f5-ansible#2131).
func (p *bindPlan) checkReversible(ctx context.Context) error {
	for _, pc := range p.profiles {
		if !pc.existed || pc.keepPair {
			continue
		}
		for _, e := range pc.before.Entries() {
			var key icontrol.Key
			if err := p.d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathFileKey, e.Key), &key); err != nil {
				if icontrol.IsNotFound(err) {
					continue
				}
				return p.d.deviceError(ctx, "read key "+e.Key, err)
			}
			if key.SecurityType == "password" {
				return sdk.FailedPrecondition(ReasonRollbackImpossible,
					"client-ssl profile %s holds the passphrase-protected key %s; certfleet does not have its passphrase, so once the profile is changed that key could never be put back (no rollback). Bind the virtual servers that carry %s with kind virtual instead: certfleet then attaches its own profile inheriting from %s and leaves it and its key untouched",
					pc.path, e.Key, pc.path, pc.path)
			}
		}
	}
	return nil
}

func (p *bindPlan) addProfile(b sdk.Binding, path string, mayCreate bool, parent, serverName string) error {
	pc, ok := p.byProfile[path]
	if !ok {
		before, existed := p.existing[path]
		if !existed && !mayCreate {
			return sdk.UnknownBinding("client-ssl profile %s does not exist on %s; create it, or set binding option create: true", path, p.d.address)
		}
		pc = &profileChange{path: path, existed: existed, before: before, parent: parent, keepPair: path == p.keyProfile}
		p.byProfile[path] = pc
		p.profiles = append(p.profiles, pc)
	} else if pc.keepPair && pc.parent != parent {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest,
			"bindings ask the key's profile %s to inherit from both %s and %s; a profile has one parent: bind these virtual servers with separate certificates, or set the same option parent on them",
			path, pc.parent, parent)
	}
	if b.SNI {
		if pc.sni && pc.serverName != serverName {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "bindings ask profile %s to answer both %q and %q", path, pc.serverName, serverName)
		}
		pc.sni, pc.serverName = true, serverName
	}
	return nil
}

func (p *bindPlan) attach(ctx context.Context, b sdk.Binding, vpath, ppath string) error {
	vc, ok := p.byVirtual[vpath]
	if !ok {
		v, err := p.d.c.GetVirtual(ctx, vpath)
		if err != nil {
			if icontrol.IsNotFound(err) {
				return sdk.UnknownBinding("virtual server %s (binding %v) does not exist on %s", vpath, b, p.d.address)
			}
			return p.d.deviceError(ctx, "read virtual server "+vpath, err)
		}
		before := v.ProfilesReference.Items
		if before == nil {
			// Not inlined by this device: read the subcollection.
			if before, err = p.d.c.VirtualProfiles(ctx, vpath); err != nil {
				return p.d.deviceError(ctx, "read profiles of virtual server "+vpath, err)
			}
		}
		vc = &virtualChange{path: vpath, before: before, attach: map[string]bool{}}
		p.byVirtual[vpath] = vc
		p.virtuals = append(p.virtuals, vc)
	}
	if sni, seen := vc.attach[ppath]; seen && sni != b.SNI {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "bindings attach profile %s to %s both with and without SNI", ppath, vpath)
	}
	vc.attach[ppath] = b.SNI
	return nil
}

// settle computes each virtual server's new profile list: a non-SNI binding replaces the other
// client-ssl profiles, an SNI binding joins them; and each SNI profile's default flag.
func (p *bindPlan) settle() error {
	isSSL := func(path string) bool {
		_, ok := p.existing[path]
		return ok || p.byProfile[path] != nil
	}
	for _, vc := range p.virtuals {
		var replacing []string
		for path, sni := range vc.attach {
			if !sni {
				replacing = append(replacing, path)
			}
		}
		if len(replacing) > 1 {
			sort.Strings(replacing)
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "bindings put both %s on virtual server %s without SNI; one must be an SNI binding", strings.Join(replacing, " and "), vc.path)
		}
		present := map[string]bool{}
		for _, vp := range vc.before {
			path := vp.Path()
			_, attaching := vc.attach[path]
			if !isSSL(path) || attaching || len(replacing) == 0 {
				vc.after = append(vc.after, icontrol.VirtualProfile{Name: path, Context: vp.Context})
				present[path] = true
			}
		}
		paths := make([]string, 0, len(vc.attach))
		for path := range vc.attach {
			paths = append(paths, path)
		}
		sort.Strings(paths)
		for _, path := range paths {
			if !present[path] {
				vc.after = append(vc.after, icontrol.VirtualProfile{Name: path, Context: "clientside"})
			}
		}
		vc.changed = len(vc.after) != len(vc.before)
		for i := range vc.after {
			if !vc.changed && vc.after[i].Name != vc.before[i].Path() {
				vc.changed = true
			}
		}
		if len(replacing) == 1 && len(vc.sslAfter(isSSL)) > 1 {
			p.byProfile[replacing[0]].makeDefault = true
		}
	}
	for _, pc := range p.profiles {
		if !pc.sni {
			continue
		}
		pc.sniDefault = true
		for _, vc := range p.virtuals {
			if _, ok := vc.attach[pc.path]; !ok {
				continue
			}
			for _, vp := range vc.after {
				if vp.Name != pc.path && isSSL(vp.Name) {
					pc.sniDefault = false
				}
			}
		}
	}
	// BIG-IP refuses a virtual server with several client-ssl profiles unless exactly one is the
	// SNI default; say so before touching the device.
	for _, vc := range p.virtuals {
		ssl := vc.sslAfter(isSSL)
		if len(ssl) < 2 {
			continue
		}
		var defaults []string
		for _, path := range ssl {
			if p.willBeDefault(path) {
				defaults = append(defaults, path)
			}
		}
		if len(defaults) != 1 {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest,
				"virtual server %s would carry client-ssl profiles %s with %d SNI defaults (%s); exactly one must be the default: bind its main certificate without SNI, or set sniDefault on one profile",
				vc.path, strings.Join(ssl, ", "), len(defaults), strings.Join(defaults, ", "))
		}
	}
	return nil
}

func (vc *virtualChange) sslAfter(isSSL func(string) bool) []string {
	var out []string
	for _, vp := range vc.after {
		if isSSL(vp.Name) {
			out = append(out, vp.Name)
		}
	}
	return out
}

// willBeDefault tells whether a profile is the SNI default after the Bind.
func (p *bindPlan) willBeDefault(path string) bool {
	if pc := p.byProfile[path]; pc != nil {
		switch {
		case pc.makeDefault:
			return true
		case pc.sni:
			return pc.sniDefault
		}
		return pc.existed && pc.before.SniDefault == "true"
	}
	return p.existing[path].SniDefault == "true"
}

// apply queues the changes in transaction id.
func (p *bindPlan) apply(ctx context.Context, id int64, entry icontrol.CertKeyChain) error {
	for _, pc := range p.profiles {
		e := entry
		e.Name = "default"
		if old := pc.before.Entries(); len(old) > 0 && old[0].Name != "" {
			// The same entry name replaces the entry whether the device replaces or merges the
			// certKeyChain array ([UNCONFIRMED] which); verify() checks the outcome.
			e.Name = old[0].Name
		}
		body := map[string]any{"certKeyChain": []icontrol.CertKeyChain{e}}
		if pc.keepPair {
			body = map[string]any{}
			switch {
			case p.copied != nil:
				for k, v := range p.copied {
					body[k] = v
				}
			case pc.parent != "" && pc.parent != pc.before.DefaultsFrom:
				body["defaultsFrom"] = pc.parent
			}
		}
		switch {
		case pc.sni:
			body["serverName"], body["sniDefault"] = pc.serverName, fmt.Sprint(pc.sniDefault)
		case pc.makeDefault:
			body["sniDefault"] = "true"
		}
		if len(body) == 0 {
			continue
		}
		var err error
		if pc.existed {
			err = p.d.c.Send(ctx, http.MethodPatch, icontrol.ObjectPath(icontrol.PathClientSSL, pc.path), body, nil, icontrol.InTransaction(id))
		} else {
			part, short := splitPath(pc.path)
			body["name"], body["partition"], body["defaultsFrom"] = short, part, pc.parent
			err = p.d.c.Send(ctx, http.MethodPost, icontrol.PathClientSSL, body, nil, icontrol.InTransaction(id))
		}
		if err != nil {
			return p.d.deviceError(ctx, "queue change of client-ssl profile "+pc.path, err)
		}
	}
	for _, vc := range p.virtuals {
		if !vc.changed {
			continue
		}
		if err := p.d.c.Send(ctx, http.MethodPatch, icontrol.ObjectPath(icontrol.PathVirtual, vc.path),
			map[string]any{"profiles": vc.after}, nil, icontrol.InTransaction(id)); err != nil {
			return p.d.deviceError(ctx, "queue change of virtual server "+vc.path, err)
		}
	}
	return nil
}

// verify reads each profile back: it must hold exactly the new pair.
func (p *bindPlan) verify(ctx context.Context, want icontrol.CertKeyChain) error {
	for _, pc := range p.profiles {
		var got icontrol.ClientSSLProfile
		if err := p.d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathClientSSL, pc.path), &got); err != nil {
			return p.d.deviceError(ctx, "read back client-ssl profile "+pc.path, err)
		}
		entries := got.Entries()
		if len(entries) != 1 || entries[0].Cert != want.Cert || entries[0].Key != want.Key || entries[0].Chain != want.Chain {
			return sdk.FailedPrecondition(sdk.ReasonDeviceError,
				"after the transaction, client-ssl profile %s holds %d certificate/key pairs, not only %s with %s; the device kept other entries of certKeyChain, remove them by hand",
				pc.path, len(entries), want.Cert, want.Key)
		}
	}
	return nil
}

// previousCerts names the certificates the bindings served before.
func (p *bindPlan) previousCerts(newCert string) []string {
	seen := map[string]bool{}
	add := func(entries []icontrol.CertKeyChain) {
		for _, e := range entries {
			if e.Cert != "" && e.Cert != newCert {
				seen[e.Cert] = true
			}
		}
	}
	for _, pc := range p.profiles {
		add(pc.before.Entries())
	}
	for _, vc := range p.virtuals {
		for _, vp := range vc.before {
			if prof, ok := p.existing[vp.Path()]; ok && !slices.ContainsFunc(vc.after, func(a icontrol.VirtualProfile) bool { return a.Name == vp.Path() }) {
				add(prof.Entries())
			}
		}
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// The rollback token: what each profile and virtual server held before. It names objects only;
// passphrases are derived again when it is used.
type rollbackToken struct {
	Version  int         `json:"v"`
	Profiles []rbProfile `json:"profiles,omitempty"`
	Virtuals []rbVirtual `json:"virtuals,omitempty"`
}

type rbProfile struct {
	Path string `json:"path"`
	// Parent: the defaultsFrom a PCI key's profile had before Bind changed it.
	Parent string `json:"parent,omitempty"`
	// Settings: the TLS settings a PCI key's profile had before Bind copied its new parent's.
	Settings map[string]any `json:"settings,omitempty"`
	// Created: the profile did not exist; rolling back deletes it.
	Created    bool      `json:"created,omitempty"`
	Entries    []rbEntry `json:"entries,omitempty"`
	SNI        bool      `json:"sni,omitempty"`
	ServerName string    `json:"server_name,omitempty"`
	SNIDefault string    `json:"sni_default,omitempty"`
}

type rbEntry struct {
	Name  string `json:"name"`
	Cert  string `json:"cert"`
	Key   string `json:"key"`
	Chain string `json:"chain,omitempty"`
}

type rbVirtual struct {
	Path     string       `json:"path"`
	Profiles []rbAttached `json:"profiles"`
}

type rbAttached struct {
	Path    string `json:"path"`
	Context string `json:"context"`
}

func (p *bindPlan) rollbackToken() rollbackToken {
	tok := rollbackToken{Version: 1}
	for _, pc := range p.profiles {
		rp := rbProfile{Path: pc.path, Created: !pc.existed}
		switch {
		case pc.keepPair && p.copied != nil:
			rp.Settings = p.copiedBefore
		case pc.keepPair && pc.parent != "" && pc.parent != pc.before.DefaultsFrom:
			rp.Parent = pc.before.DefaultsFrom
		}
		if pc.existed {
			for _, e := range pc.before.Entries() {
				if !pc.keepPair {
					rp.Entries = append(rp.Entries, rbEntry{Name: e.Name, Cert: e.Cert, Key: e.Key, Chain: noneToEmpty(e.Chain)})
				}
			}
			if pc.sni || pc.makeDefault {
				rp.SNI, rp.ServerName, rp.SNIDefault = true, pc.before.ServerName, pc.before.SniDefault
			}
		}
		tok.Profiles = append(tok.Profiles, rp)
	}
	for _, vc := range p.virtuals {
		if !vc.changed {
			continue
		}
		rv := rbVirtual{Path: vc.path, Profiles: []rbAttached{}}
		for _, vp := range vc.before {
			rv.Profiles = append(rv.Profiles, rbAttached{Path: vp.Path(), Context: vp.Context})
		}
		tok.Virtuals = append(tok.Virtuals, rv)
	}
	return tok
}

func noneToEmpty(s string) string {
	if s == "none" {
		return ""
	}
	return s
}

func parseRollbackToken(data []byte) (rollbackToken, error) {
	bad := func(format string, args ...any) error {
		return sdk.InvalidArgument(sdk.ReasonBadRollbackToken, "rollback token: "+format, args...)
	}
	var tok rollbackToken
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tok); err != nil {
		return tok, bad("not a token of this plugin: %v", err)
	}
	if tok.Version != 1 {
		return tok, bad("version %d is not 1", tok.Version)
	}
	if len(tok.Profiles)+len(tok.Virtuals) == 0 {
		return tok, bad("it describes nothing")
	}
	for _, p := range tok.Profiles {
		if !fullName.MatchString(p.Path) || (p.Parent != "" && !fullName.MatchString(p.Parent)) {
			return tok, bad("profile path %q", p.Path)
		}
		for k := range p.Settings {
			if !slices.Contains(profileSettings, k) {
				return tok, bad("setting %q of profile %s", k, p.Path)
			}
		}
		for _, e := range p.Entries {
			if !fullName.MatchString(e.Cert) || !fullName.MatchString(e.Key) || (e.Chain != "" && !fullName.MatchString(e.Chain)) {
				return tok, bad("entry %+v of profile %s", e, p.Path)
			}
		}
	}
	for _, v := range tok.Virtuals {
		if !fullName.MatchString(v.Path) {
			return tok, bad("virtual server path %q", v.Path)
		}
		for _, a := range v.Profiles {
			if !fullName.MatchString(a.Path) || (a.Context != "clientside" && a.Context != "serverside" && a.Context != "all") {
				return tok, bad("profile %+v of virtual server %s", a, v.Path)
			}
		}
	}
	return tok, nil
}

// Rollback restores what the token describes, in one transaction: each virtual server's profile
// list (for a PCI key: the profiles it carried before, whose keys keep their passphrases on the
// device), each profile's pairs, parent and SNI settings, and deletes the profiles Bind created.
// It never needs a passphrase: Bind refuses changes that would need one to undo.
func (*Plugin) Rollback(ctx context.Context, t sdk.Target, token []byte) error {
	if err := sdk.FromContext(ctx); err != nil {
		return err
	}
	tok, err := parseRollbackToken(token)
	if err != nil {
		return err
	}
	return withDevice(ctx, t, func(d *device) error {
		if err := d.requireActive(ctx); err != nil {
			return err
		}
		checked := map[string]bool{}
		for _, p := range tok.Profiles {
			for _, e := range p.Entries {
				if checked[e.Key] {
					continue
				}
				checked[e.Key] = true
				var key icontrol.Key
				if err := d.c.Get(ctx, icontrol.ObjectPath(icontrol.PathFileKey, e.Key), &key); err != nil {
					if icontrol.IsNotFound(err) {
						return sdk.FailedPrecondition(sdk.ReasonNotFound, "cannot roll back profile %s: its former key %s was removed", p.Path, e.Key)
					}
					return d.deviceError(ctx, "read key "+e.Key, err)
				}
				if key.SecurityType == "password" {
					// Only a token of plugin version 1 (which derived passphrases) can get here.
					return sdk.FailedPrecondition(ReasonRollbackImpossible,
						"cannot roll back profile %s: its former key %s is passphrase-protected and certfleet does not keep passphrases; restore the profile by hand", p.Path, e.Key)
				}
			}
		}
		return d.inTransaction(ctx, "roll back", func(id int64) error {
			for _, p := range tok.Profiles {
				if p.Created {
					continue
				}
				body := map[string]any{}
				if len(p.Entries) > 0 {
					var entries []icontrol.CertKeyChain
					for _, e := range p.Entries {
						entries = append(entries, icontrol.CertKeyChain{Name: e.Name, Cert: e.Cert, Key: e.Key, Chain: e.Chain})
					}
					body["certKeyChain"] = entries
				}
				if p.SNI {
					body["serverName"], body["sniDefault"] = p.ServerName, p.SNIDefault
				}
				if len(body) == 0 {
					continue
				}
				if err := d.c.Send(ctx, http.MethodPatch, icontrol.ObjectPath(icontrol.PathClientSSL, p.Path), body, nil, icontrol.InTransaction(id)); err != nil {
					return d.deviceError(ctx, "queue restore of client-ssl profile "+p.Path, err)
				}
			}
			for _, v := range tok.Virtuals {
				profiles := make([]icontrol.VirtualProfile, 0, len(v.Profiles))
				for _, a := range v.Profiles {
					profiles = append(profiles, icontrol.VirtualProfile{Name: a.Path, Context: a.Context})
				}
				if err := d.c.Send(ctx, http.MethodPatch, icontrol.ObjectPath(icontrol.PathVirtual, v.Path),
					map[string]any{"profiles": profiles}, nil, icontrol.InTransaction(id)); err != nil {
					return d.deviceError(ctx, "queue restore of virtual server "+v.Path, err)
				}
			}
			for _, p := range tok.Profiles {
				if len(p.Settings) > 0 {
					if err := d.c.Send(ctx, http.MethodPatch, icontrol.ObjectPath(icontrol.PathClientSSL, p.Path),
						p.Settings, nil, icontrol.InTransaction(id)); err != nil {
						return d.deviceError(ctx, "queue restore of the settings of client-ssl profile "+p.Path, err)
					}
				}
				if p.Parent == "" {
					continue
				}
				if err := d.c.Send(ctx, http.MethodPatch, icontrol.ObjectPath(icontrol.PathClientSSL, p.Path),
					map[string]any{"defaultsFrom": p.Parent}, nil, icontrol.InTransaction(id)); err != nil {
					return d.deviceError(ctx, "queue restore of the parent of client-ssl profile "+p.Path, err)
				}
			}
			for _, p := range tok.Profiles {
				if !p.Created {
					continue
				}
				if err := d.c.Send(ctx, http.MethodDelete, icontrol.ObjectPath(icontrol.PathClientSSL, p.Path), nil, nil, icontrol.InTransaction(id)); err != nil {
					return d.deviceError(ctx, "queue removal of client-ssl profile "+p.Path, err)
				}
			}
			return nil
		})
	})
}

// inTransaction runs queue in a new transaction and commits it; on any failure nothing changes.
func (d *device) inTransaction(ctx context.Context, what string, queue func(id int64) error) error {
	id, err := d.c.BeginTransaction(ctx)
	if err != nil {
		return d.deviceError(ctx, what, err)
	}
	if err := queue(id); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logoutTimeout)
		if derr := d.c.DiscardTransaction(dctx, id); derr != nil {
			sdk.Logger(ctx).Debug("could not discard a transaction; it expires by itself", "error", derr.Error())
		}
		cancel()
		return err
	}
	if err := d.c.CommitTransaction(ctx, id); err != nil {
		return d.deviceError(ctx, what+" (the transaction failed; nothing was changed)", err)
	}
	return nil
}

// commonName reads CN out of the device's subject string ("emailAddress=..,CN=x,O=..").
func commonName(subject string) string {
	for _, part := range splitDN(subject) {
		if v, ok := strings.CutPrefix(part, "CN="); ok {
			return v
		}
	}
	return ""
}

// splitDN splits a DN string at the commas that are not escaped.
func splitDN(dn string) []string {
	var out []string
	var cur strings.Builder
	escaped := false
	for _, r := range dn {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			escaped = true
		case r == ',':
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, strings.TrimSpace(cur.String()))
	}
	return out
}
