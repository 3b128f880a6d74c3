package citrixnitro

// How Bind replaces a certificate without a window, and why.
//
// An SSL vserver serves exactly one default (non-SNI) certificate: a second default binding is
// refused (CTX110670), and unbinding first leaves the vserver with no certificate, so handshakes
// fail until the new one is bound ("the virtual server or service becomes inactive until a new
// valid certificate is bound to it", NetScaler 11 docs). For SNI certificates of one domain
// Keyfactor reports a duplicate-domain error on bind-new-first too. The appliance's own answer
// is "update ssl certKey": the certkey the vservers are bound to is pointed at new certificate
// and key files in one command; bindings and links stay. So Bind prefers that:
//
//   - The bound certkey must be bound only at places this request covers, or updating it would
//     also change places the request does not name (other vservers, SSL services and service
//     groups, SSL profiles, the global VPN, SAML actions: everything sslcertkey_binding,
//     vpnglobal_sslcertkey_binding and authenticationsamlaction list). Bind then refuses and
//     names those places, unless the device sets update_shared_certkeys.
//   - A vserver may serve one RSA and one ECDSA default certificate at once (Citrix docs "ECDSA
//     cipher suites support"): a renewal replaces only the certificate of its own key type.
//   - The appliance keeps one certkey per certificate (Citrix KB 206045: "Certificate Already
//     Exists" when installing or updating one that is present), so the new certificate is first
//     freed from the certkey ImportCert made for it (unbound, so deleting it changes nothing that
//     is served); then the bound certkey is updated to it with nodomaincheck (the new certificate
//     may name other domains, slauger #10). If the update fails, the new certkey is put back.
//   - When the issuer changes, the link is replaced around the update.
//
// The updated certkey keeps its name and carries the new certificate; the files' names say
// which cert_ref that is (deviceState.refOf). When no in-place update is possible, Bind binds the
// new certkey first and then unbinds the old one, and only when the appliance refuses two at
// once does it unbind first (a logged, brief window).

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitro"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Rollback entry modes.
const (
	modeNew    = "new"    // nothing was bound; CertKey was bound
	modeRebind = "rebind" // OldCertKey was unbound and CertKey bound
	modeUpdate = "update" // Slot was updated in place to the files of the Freed certkey
)

type rollbackEntry struct {
	Mode    string `json:"mode"`
	Kind    string `json:"kind,omitempty"`
	VServer string `json:"vserver,omitempty"`
	SNI     bool   `json:"sni,omitempty"`
	// CertKey is what Bind bound (new, rebind); OldCertKey what was bound before (rebind).
	CertKey    string `json:"certkey,omitempty"`
	OldCertKey string `json:"old_certkey,omitempty"`
	// Slot is the certkey updated in place, with its files and link before (update).
	Slot     string `json:"slot,omitempty"`
	PrevCert string `json:"prev_cert,omitempty"`
	PrevKey  string `json:"prev_key,omitempty"`
	PrevLink string `json:"prev_link,omitempty"`
	// Freed is the new certificate's own certkey, deleted before the update, with its files and
	// link, so that Rollback can add it back (update).
	Freed     string `json:"freed,omitempty"`
	FreedCert string `json:"freed_cert,omitempty"`
	FreedKey  string `json:"freed_key,omitempty"`
	FreedLink string `json:"freed_link,omitempty"`
}

func (e rollbackEntry) valid() bool {
	switch e.Mode {
	case modeNew:
		return e.VServer != "" && e.CertKey != ""
	case modeRebind:
		return e.VServer != "" && e.CertKey != "" && e.OldCertKey != ""
	case modeUpdate:
		return e.Slot != "" && e.PrevCert != "" && e.PrevKey != "" && (e.Freed == "" || e.FreedCert != "" && e.FreedKey != "")
	}
	return false
}

const tokenVersion = 2

type rollbackToken struct {
	V         int             `json:"v"`
	Plugin    string          `json:"plugin"`
	Partition string          `json:"partition,omitempty"`
	CertRef   string          `json:"cert_ref"`
	Entries   []rollbackEntry `json:"entries"`
}

// checkBindings validates kinds and options and drops repeated bindings.
func checkBindings(bs []sdk.Binding) ([]sdk.Binding, error) {
	if len(bs) == 0 {
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "no bindings given")
	}
	var out []sdk.Binding
	for _, b := range bs {
		if _, ok := nitroType[b.Kind]; !ok {
			return nil, sdk.InvalidArgument(sdk.ReasonUnknownBinding, "binding %v: kind %q is not one of %s", b, b.Kind, strings.Join(bindingKinds, ", "))
		}
		if b.Name == "" {
			return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "a binding of kind %s has no vserver name", b.Kind)
		}
		if unknown := b.Options.Unknown(bindingOptions); len(unknown) > 0 {
			return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: unknown option(s) %s; the known one is enable_sni", b, strings.Join(unknown, ", "))
		}
		if _, err := b.Options.Bool("enable_sni", true); err != nil {
			return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: %v", b, err)
		}
		if !slices.ContainsFunc(out, func(x sdk.Binding) bool { return x.Kind == b.Kind && x.Name == b.Name && x.SNI == b.SNI }) {
			out = append(out, b)
		}
	}
	return out, nil
}

// placement is one requested binding and the certkey bound there now ("" for none).
type placement struct {
	b   sdk.Binding
	cur string
}

// Bind points each binding at req.CertRef, in place where it can (see the top of this file),
// and returns a token to undo it. On failure it undoes what it did.
func (*Plugin) Bind(ctx context.Context, t sdk.Target, req sdk.BindRequest) (sdk.BindResult, error) {
	var out sdk.BindResult
	bindings, err := checkBindings(req.Bindings)
	if err != nil {
		return out, err
	}
	err = withSession(ctx, t, func(s *session) error {
		st, err := s.readState(ctx)
		if err != nil {
			return err
		}
		holders := st.holders(req.CertRef)
		if len(holders) == 0 || st.certkeys[holders[0]].Key == "" {
			return sdk.NotFound("cert_ref %q: no server certkey on the appliance holds it; ImportCert first", req.CertRef)
		}
		holder := holders[0]
		for _, b := range bindings {
			if kind, ok := st.kind[b.Name]; !ok || kind != b.Kind {
				return sdk.UnknownBinding("binding %v: the appliance has no %s named %q", b, nitroType[b.Kind], b.Name).
					WithVendor(fmt.Sprint(nitro.CodeVServerMissing), "vserver does not exist")
			}
			if !isSSLService(st.service[b.Name]) {
				return sdk.FailedPrecondition(reasonNotSSL, "binding %v: %s is of type %s, not SSL or SSL_TCP; bind certificates to an SSL vserver", b, b.Name, st.service[b.Name]).
					WithVendor(fmt.Sprint(nitro.CodeNotSSLVServer), "not an SSL vserver")
			}
		}
		places, err := s.placements(ctx, st, bindings, holder)
		if err != nil {
			return err
		}
		tok := rollbackToken{V: tokenVersion, Plugin: "citrix-nitro", Partition: s.part, CertRef: req.CertRef}
		var prev []string
		for _, p := range places {
			if p.cur != "" && st.refOf(p.cur) != req.CertRef && !slices.Contains(prev, st.refOf(p.cur)) {
				prev = append(prev, st.refOf(p.cur))
			}
		}
		undo := func() {
			if len(tok.Entries) == 0 {
				return
			}
			if rerr := s.rollback(context.WithoutCancel(ctx), tok); rerr != nil {
				sdk.Logger(ctx).Error("undoing a failed Bind failed; the appliance may be left half-bound", "cert_ref", req.CertRef, "error", rerr)
			}
		}
		// A certkey that was never bound can hand its certificate to a bound one.
		if holder == req.CertRef && len(st.boundAt(holder)) == 0 && len(st.othersOf(holder)) == 0 {
			shared, _ := t.Options.Bool("update_shared_certkeys", false)
			slot, err := chooseSlot(st, places, req.CertRef, shared)
			if err != nil {
				return err
			}
			if slot != "" {
				entry, err := s.swapInPlace(ctx, st, slot, holder)
				if err != nil {
					return err
				}
				tok.Entries = append(tok.Entries, entry)
				holder = slot
			}
		}
		for _, p := range places {
			if p.cur != "" && (p.cur == holder || st.refOf(p.cur) == req.CertRef) {
				continue // serving this certificate already, or since the in-place update
			}
			if p.b.SNI {
				if enable, _ := p.b.Options.Bool("enable_sni", true); enable {
					if err := s.ensureSNI(ctx, p.b.Name); err != nil {
						undo()
						return err
					}
				}
			}
			if p.cur == "" {
				if err := s.c.Bind(ctx, p.b.Name, holder, p.b.SNI); err != nil {
					undo()
					return s.fail(ctx, fmt.Sprintf("bind certkey %s to %v", holder, p.b), err)
				}
				tok.Entries = append(tok.Entries, rollbackEntry{Mode: modeNew, Kind: p.b.Kind, VServer: p.b.Name, SNI: p.b.SNI, CertKey: holder})
				continue
			}
			if err := s.rebind(ctx, p.b.Name, p.b.SNI, p.cur, holder); err != nil {
				undo()
				return err
			}
			tok.Entries = append(tok.Entries, rollbackEntry{Mode: modeRebind, Kind: p.b.Kind, VServer: p.b.Name, SNI: p.b.SNI, CertKey: holder, OldCertKey: p.cur})
		}
		raw, err := json.Marshal(tok)
		if err != nil {
			undo()
			return sdk.Internal(sdk.ReasonDeviceError, "encode the rollback token").WithCause(err)
		}
		out = sdk.BindResult{RollbackToken: raw, PreviousCertRefs: prev}
		return nil
	})
	return out, err
}

// placements finds what each binding points at now: the default certificate for a non-SNI
// binding; for an SNI binding, the SNI certificate sharing a DNS name with the new one.
func (s *session) placements(ctx context.Context, st *deviceState, bindings []sdk.Binding, holder string) ([]placement, error) {
	var newNames []string
	newType, err := s.keyType(ctx, st, holder)
	if err != nil {
		return nil, err
	}
	out := make([]placement, 0, len(bindings))
	for _, b := range bindings {
		p := placement{b: b}
		for _, x := range st.bindings {
			if x.VServer != b.Name || x.SNI != b.SNI {
				continue
			}
			// An RSA and an ECDSA certificate serve side by side: only one of the new
			// certificate's key type is replaced. A certkey whose type cannot be read counts as
			// the same type, as on a vserver that takes one certificate.
			if t, err := s.keyType(ctx, st, x.CertKey); err != nil {
				return nil, err
			} else if t != "" && newType != "" && t != newType {
				continue
			}
			if !b.SNI {
				p.cur = x.CertKey
				break
			}
			if newNames == nil {
				names, err := s.certNames(ctx, st.certkeys[holder].Cert)
				if err != nil {
					return nil, err
				}
				newNames = names
			}
			names, err := s.certNames(ctx, st.certkeys[x.CertKey].Cert)
			if err != nil {
				return nil, err
			}
			if slices.ContainsFunc(names, func(n string) bool { return slices.Contains(newNames, n) }) {
				p.cur = x.CertKey
				break
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// chooseSlot picks the certkey to update in place: one bound now at requested places and
// nowhere else, preferring the one serving the most default (non-SNI) bindings, which are the
// ones a rebind would leave without a certificate. "" when none qualifies. When the only
// candidates are also bound elsewhere, updating one would change those places too: that is an
// error naming them, unless shared allows it.
func chooseSlot(st *deviceState, places []placement, ref string, shared bool) (string, error) {
	best, bestDefault, bestAll := "", -1, -1
	var sharedAt []string
	sharedSlot := ""
	for _, p := range places {
		c := p.cur
		if c == "" || c == best || st.refOf(c) == ref || st.certkeys[c].Key == "" {
			continue
		}
		var outside []string
		for _, x := range st.boundAt(c) {
			if !slices.ContainsFunc(places, func(q placement) bool { return x.at(q.b) }) {
				outside = append(outside, x.binding().String())
			}
		}
		for _, o := range st.othersOf(c) {
			outside = append(outside, o.binding().String())
		}
		if len(outside) > 0 && !shared {
			if sharedSlot == "" {
				sharedSlot, sharedAt = c, outside
			}
			continue
		}
		def, all := 0, 0
		for _, q := range places {
			if q.cur == c {
				all++
				if !q.b.SNI {
					def++
				}
			}
		}
		if def > bestDefault || def == bestDefault && (all > bestAll || all == bestAll && c < best) {
			best, bestDefault, bestAll = c, def, all
		}
	}
	if best == "" && sharedSlot != "" {
		return "", sdk.FailedPrecondition(reasonSharedCertKey,
			"certkey %s, which serves the requested bindings, is also bound at %s, which the request does not name; an in-place update would change them too. Add those places to the certificate's bindings, or set the device option update_shared_certkeys: true to update them as well",
			sharedSlot, strings.Join(sharedAt, ", "))
	}
	return best, nil
}

// ensureSNI turns SNI on where the appliance keeps it for vserver vs. With the default SSL
// profile enabled ("set ssl parameter -defaultProfile ENABLED") vserver-level SSL settings fail
// with 3740 (terraform-provider-citrixadc #164) and SNI is a profile setting (adc-nitro-go
// sslparameter.go: "vserver or profile bound to vserver has SNI enabled"): the vserver's own
// profile is changed, but never the default front-end profile every vserver shares, which would
// change SNI on all of them; that is an error naming the fix.
func (s *session) ensureSNI(ctx context.Context, vs string) error {
	set, err := s.c.SSLVServer(ctx, vs)
	if err != nil {
		return s.fail(ctx, "read the SSL settings of vserver "+vs, err)
	}
	profileMode, err := s.c.DefaultProfileEnabled(ctx)
	if err != nil {
		return s.fail(ctx, "read sslparameter (default SSL profile)", err)
	}
	profile := set.SSLProfile
	if profileMode && profile == "" {
		profile = defaultFrontendProfile
	}
	if profile == "" {
		if strings.EqualFold(set.SNIEnable, "ENABLED") {
			return nil
		}
		if err := s.c.EnableSNI(ctx, vs); err != nil {
			return s.fail(ctx, "enable SNI on vserver "+vs, err)
		}
		return nil
	}
	on, err := s.c.ProfileSNI(ctx, profile)
	if err != nil {
		return s.fail(ctx, "read SSL profile "+profile, err)
	}
	if on {
		return nil
	}
	if profile == defaultFrontendProfile {
		return sdk.FailedPrecondition(reasonSNIOff,
			"vserver %s uses the default SSL profile %s, which has SNI off; enabling it there changes every SSL vserver. Run \"set ssl profile %s -sniEnable ENABLED\", or bind a profile of its own with SNI enabled to %s",
			vs, profile, profile, vs).WithVendor(fmt.Sprint(nitro.CodeDefaultProfile), "vserver-level SSL settings are not permitted with the default SSL profile")
	}
	if err := s.c.EnableProfileSNI(ctx, profile); err != nil {
		return s.fail(ctx, "enable SNI in SSL profile "+profile+" of vserver "+vs, err)
	}
	return nil
}

// defaultFrontendProfile is the profile the default-profile mode binds to every SSL vserver.
const defaultFrontendProfile = "ns_default_ssl_profile_frontend"

// swapInPlace frees the certificate of the unbound certkey fresh and updates slot to it.
func (s *session) swapInPlace(ctx context.Context, st *deviceState, slot, fresh string) (rollbackEntry, error) {
	f, sl := st.certkeys[fresh], st.certkeys[slot]
	if by := st.linkedBy(fresh); len(by) > 0 {
		return rollbackEntry{}, sdk.FailedPrecondition(sdk.ReasonDeviceError, "certkey %s is the issuer of %s; it cannot be a server certificate", fresh, strings.Join(by, ", "))
	}
	entry := rollbackEntry{Mode: modeUpdate, Slot: slot, PrevCert: sl.Cert, PrevKey: sl.Key, PrevLink: sl.LinkCertKeyName,
		Freed: fresh, FreedCert: f.Cert, FreedKey: f.Key, FreedLink: f.LinkCertKeyName}
	if f.LinkCertKeyName != "" {
		if err := s.c.Unlink(ctx, fresh); err != nil {
			return entry, s.fail(ctx, "unlink certkey "+fresh+" before it hands its certificate to "+slot, err)
		}
	}
	if err := s.c.DeleteCertKey(ctx, fresh); err != nil {
		s.restoreFreed(ctx, entry, false)
		return entry, s.fail(ctx, "delete the unbound certkey "+fresh+" so that "+slot+" can take its certificate", err)
	}
	if err := s.repoint(ctx, slot, certFiles{sl.Cert, sl.Key, sl.LinkCertKeyName}, certFiles{f.Cert, f.Key, f.LinkCertKeyName}); err != nil {
		s.restoreFreed(ctx, entry, true)
		return entry, err
	}
	return entry, nil
}

// restoreFreed puts the freed certkey back as it was: added again if it was deleted, linked.
func (s *session) restoreFreed(ctx context.Context, e rollbackEntry, deleted bool) {
	bg := context.WithoutCancel(ctx)
	if deleted {
		if err := s.c.AddCertKey(bg, e.Freed, e.FreedCert, e.FreedKey); err != nil {
			sdk.Logger(ctx).Error("could not add a certkey back after a failed in-place update", "certkey", e.Freed, "error", err)
			return
		}
	}
	if e.FreedLink != "" {
		if err := s.c.Link(bg, e.Freed, e.FreedLink); err != nil {
			sdk.Logger(ctx).Error("could not link a certkey again after a failed in-place update", "certkey", e.Freed, "issuer", e.FreedLink, "error", err)
		}
	}
}

// certFiles is what a certkey points at: its certificate and key files and its issuer link.
type certFiles struct{ cert, key, link string }

// repoint updates certkey slot in place from its current files to others. When the issuer
// changes, the old link is removed first (the appliance may refuse an update that breaks a
// link) and the new one made after. A failure puts the old files and link back.
func (s *session) repoint(ctx context.Context, slot string, from, to certFiles) error {
	relink := from.link != to.link
	if relink && from.link != "" {
		if err := s.c.Unlink(ctx, slot); err != nil {
			return s.fail(ctx, "unlink certkey "+slot, err)
		}
	}
	restore := func(files bool) {
		bg := context.WithoutCancel(ctx)
		if files {
			if err := s.c.UpdateCertKey(bg, slot, from.cert, from.key); err != nil {
				sdk.Logger(ctx).Error("could not update a certkey back to its old files", "certkey", slot, "cert", from.cert, "error", err)
			}
		}
		if relink && from.link != "" {
			if err := s.c.Link(bg, slot, from.link); err != nil {
				sdk.Logger(ctx).Error("could not restore a certkey's link", "certkey", slot, "issuer", from.link, "error", err)
			}
		}
	}
	if err := s.c.UpdateCertKey(ctx, slot, to.cert, to.key); err != nil {
		restore(false)
		return s.fail(ctx, fmt.Sprintf("update certkey %s in place to %s", slot, to.cert), err)
	}
	if relink && to.link != "" {
		if err := s.c.Link(ctx, slot, to.link); err != nil {
			restore(true)
			return s.fail(ctx, fmt.Sprintf("link certkey %s to %s", slot, to.link), err)
		}
	}
	return nil
}

// rebind moves one binding from certkey from to certkey to: the new one is bound first, then
// the old one unbound, so clients always get a certificate. Only if the appliance refuses two at
// once (one default certificate per vserver; one SNI certificate per domain) is the old one
// unbound first, which leaves a brief window; a failure then binds the old one again.
func (s *session) rebind(ctx context.Context, vs string, sni bool, from, to string) error {
	where := vs
	if sni {
		where += " (sni)"
	}
	err := s.c.Bind(ctx, vs, to, sni)
	if err == nil || nitro.IsCode(err, nitro.CodeAlreadyExists) {
		// An appliance may replace the default certificate on a second bind (unconfirmed):
		// the old binding is then gone already.
		if uerr := s.c.Unbind(ctx, vs, from, sni); uerr != nil && !nitro.IsMissing(uerr) {
			return s.fail(ctx, fmt.Sprintf("unbind certkey %s from %s", from, where), uerr)
		}
		return nil
	}
	if !nitro.IsDeviceRefusal(err) {
		return s.fail(ctx, fmt.Sprintf("bind certkey %s to %s", to, where), err)
	}
	sdk.Logger(ctx).Warn("the appliance refuses a second certificate here; unbinding the old one first leaves the vserver briefly without it",
		"vserver", vs, "sni", sni, "old", from, "new", to, "refusal", err.Error())
	if err := s.c.Unbind(ctx, vs, from, sni); err != nil && !nitro.IsMissing(err) {
		return s.fail(ctx, fmt.Sprintf("unbind certkey %s from %s", from, where), err)
	}
	if err := s.c.Bind(ctx, vs, to, sni); err != nil {
		if rerr := s.c.Bind(context.WithoutCancel(ctx), vs, from, sni); rerr != nil {
			sdk.Logger(ctx).Error("could not bind the old certificate again after a failed bind", "vserver", vs, "certkey", from, "error", rerr)
		}
		return s.fail(ctx, fmt.Sprintf("bind certkey %s to %s", to, where), err)
	}
	return nil
}

// Rollback restores what a token describes, newest change first.
func (*Plugin) Rollback(ctx context.Context, t sdk.Target, token []byte) error {
	var tok rollbackToken
	if err := json.Unmarshal(token, &tok); err != nil || tok.V != tokenVersion || tok.Plugin != "citrix-nitro" || tok.CertRef == "" {
		return sdk.InvalidArgument(sdk.ReasonBadRollbackToken, "the rollback token is not one this plugin made, or it is corrupt")
	}
	for _, e := range tok.Entries {
		if !e.valid() {
			return sdk.InvalidArgument(sdk.ReasonBadRollbackToken, "the rollback token has an invalid %q entry", e.Mode)
		}
	}
	return withSession(ctx, t, func(s *session) error {
		if orDefault(s.part) != orDefault(tok.Partition) {
			return sdk.InvalidArgument(sdk.ReasonBadRollbackToken, "the rollback token is for partition %q, the target uses %q", orDefault(tok.Partition), orDefault(s.part))
		}
		return s.rollback(ctx, tok)
	})
}

// rollback undoes a token's entries, newest first; each step checks the appliance first, so a
// rollback run twice changes nothing the second time.
func (s *session) rollback(ctx context.Context, tok rollbackToken) error {
	for i := len(tok.Entries) - 1; i >= 0; i-- {
		e := tok.Entries[i]
		switch e.Mode {
		case modeNew:
			if err := s.c.Unbind(ctx, e.VServer, e.CertKey, e.SNI); err != nil && !nitro.IsMissing(err) {
				return s.fail(ctx, fmt.Sprintf("unbind certkey %s from %s", e.CertKey, e.VServer), err)
			}
		case modeRebind:
			bs, err := s.c.Bindings(ctx, e.VServer)
			if err != nil {
				return s.fail(ctx, "list the certificate bindings of "+e.VServer, err)
			}
			if slices.ContainsFunc(bs, func(b nitro.VServerBinding) bool { return b.CertKeyName == e.OldCertKey && bool(b.SNICert) == e.SNI }) {
				continue
			}
			if err := s.rebind(ctx, e.VServer, e.SNI, e.CertKey, e.OldCertKey); err != nil {
				return err
			}
		case modeUpdate:
			if err := s.undoUpdate(ctx, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// undoUpdate points the slot back at its old files and adds the freed certkey back.
func (s *session) undoUpdate(ctx context.Context, e rollbackEntry) error {
	ck, found, err := s.c.GetCertKey(ctx, e.Slot)
	if err != nil {
		return s.fail(ctx, "read certkey "+e.Slot, err)
	}
	if !found {
		return sdk.NotFound("certkey %s, updated in place by Bind, is gone; there is nothing to restore", e.Slot)
	}
	if ck.Cert != e.PrevCert || ck.Key != e.PrevKey {
		if err := s.repoint(ctx, e.Slot, certFiles{ck.Cert, ck.Key, ck.LinkCertKeyName}, certFiles{e.PrevCert, e.PrevKey, e.PrevLink}); err != nil {
			return err
		}
	}
	if e.Freed == "" {
		return nil
	}
	_, found, err = s.c.GetCertKey(ctx, e.Freed)
	if err != nil {
		return s.fail(ctx, "read certkey "+e.Freed, err)
	}
	if found {
		return nil
	}
	if err := s.c.AddCertKey(ctx, e.Freed, e.FreedCert, e.FreedKey); err != nil {
		return s.fail(ctx, "add back certkey "+e.Freed, err)
	}
	if e.FreedLink != "" {
		if err := s.c.Link(ctx, e.Freed, e.FreedLink); err != nil {
			return s.fail(ctx, fmt.Sprintf("link certkey %s to %s", e.Freed, e.FreedLink), err)
		}
	}
	return nil
}

// Commit saves the running configuration ("save ns config"). Changes are live on the appliance
// as soon as they are made; saving makes them survive a reboot.
func (*Plugin) Commit(ctx context.Context, t sdk.Target, _ sdk.CommitRequest) (sdk.CommitResult, error) {
	var out sdk.CommitResult
	err := withSession(ctx, t, func(s *session) error {
		if err := s.c.SaveConfig(ctx); err != nil {
			if nitro.IsDeviceRefusal(err) {
				return commitFailed(err)
			}
			return s.fail(ctx, "save ns config", err)
		}
		out = sdk.CommitResult{Changed: true, Message: "save ns config done (partition " + orDefault(s.part) + ")"}
		return nil
	})
	return out, err
}
