package citrixnitro

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
	modeNew    = "new"    // nothing was bound; the new certkey was bound
	modeUpdate = "update" // the bound certkey (slot) was updated in place to the new files
	modeRebind = "rebind" // the old certkey was unbound and the new one bound
)

type rollbackEntry struct {
	Mode    string `json:"mode"`
	Kind    string `json:"kind"`
	VServer string `json:"vserver"`
	SNI     bool   `json:"sni,omitempty"`
	// NewCertKey is what Bind bound (modeNew, modeRebind).
	NewCertKey string `json:"new_certkey,omitempty"`
	// OldCertKey was bound before (modeRebind) or is the slot (modeUpdate).
	OldCertKey string `json:"old_certkey,omitempty"`
	// PrevCert/PrevKey/PrevLink are the slot's files and link before the update (modeUpdate).
	PrevCert string `json:"prev_cert,omitempty"`
	PrevKey  string `json:"prev_key,omitempty"`
	PrevLink string `json:"prev_link,omitempty"`
}

type rollbackToken struct {
	V         int             `json:"v"`
	Plugin    string          `json:"plugin"`
	Partition string          `json:"partition,omitempty"`
	CertRef   string          `json:"cert_ref"`
	Entries   []rollbackEntry `json:"entries"`
}

func checkBindings(bs []sdk.Binding) error {
	if len(bs) == 0 {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "no bindings given")
	}
	for _, b := range bs {
		if _, ok := nitroType[b.Kind]; !ok {
			return sdk.InvalidArgument(sdk.ReasonUnknownBinding, "binding %v: kind %q is not one of %s, %s", b, b.Kind, KindLB, KindGateway)
		}
		if unknown := b.Options.Unknown(bindingOptions); len(unknown) > 0 {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: unknown option(s) %s; known: enable_sni", b, strings.Join(unknown, ", "))
		}
		if _, err := b.Options.Bool("enable_sni", true); err != nil {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: %v", b, err)
		}
	}
	return nil
}

// repoint updates certkey slot in place to cert/key, re-linking when the issuer changes.
func (s *session) repoint(ctx context.Context, slot, cert, key, curLink, newLink string) error {
	if curLink != "" && curLink != newLink {
		if err := s.c.Unlink(ctx, slot); err != nil {
			return s.fail(ctx, "unlink certkey "+slot, err)
		}
	}
	if err := s.c.UpdateCertKey(ctx, slot, cert, key); err != nil {
		return s.fail(ctx, fmt.Sprintf("update certkey %s in place to %s", slot, cert), err)
	}
	if newLink != "" && curLink != newLink {
		if err := s.c.Link(ctx, slot, newLink); err != nil {
			return s.fail(ctx, fmt.Sprintf("link certkey %s to %s", slot, newLink), err)
		}
	}
	return nil
}

// Bind points each binding at req.CertRef without a moment where the vserver has no certificate
// (see the package comment) and returns a token to undo it.
func (*Plugin) Bind(ctx context.Context, t sdk.Target, req sdk.BindRequest) (sdk.BindResult, error) {
	var out sdk.BindResult
	if err := checkBindings(req.Bindings); err != nil {
		return out, err
	}
	err := withSession(ctx, t, func(s *session) error {
		st, err := s.readState(ctx)
		if err != nil {
			return err
		}
		newCK, ok := st.certkeys[req.CertRef]
		if !ok || st.owner(req.CertRef) != req.CertRef || newCK.Key == "" {
			return sdk.NotFound("cert_ref %q: no server certkey of that name on the appliance; ImportCert first", req.CertRef)
		}
		for _, b := range req.Bindings {
			v, ok := st.vservers[b.Kind][b.Name]
			if !ok {
				return sdk.UnknownBinding("binding %v: no %s named %q on the appliance", b, nitroType[b.Kind], b.Name).WithVendor(fmt.Sprint(nitro.CodeVServerMissing), "vserver does not exist")
			}
			if !strings.EqualFold(v.ServiceType, "SSL") {
				return sdk.FailedPrecondition(reasonNotSSL, "binding %v: %s is of type %s, not SSL", b, b.Name, v.ServiceType).WithVendor(fmt.Sprint(nitro.CodeNotSSLVServer), "not an SSL vserver")
			}
		}
		covered := func(x bound) bool {
			return slices.ContainsFunc(req.Bindings, func(b sdk.Binding) bool { return b.Kind == x.Kind && b.Name == x.VServer && b.SNI == x.SNI })
		}
		newNames, err := s.certNames(ctx, newCK.Cert)
		if err != nil {
			return err
		}
		tok := rollbackToken{V: 1, Plugin: "citrix-nitro", Partition: s.part, CertRef: req.CertRef}
		var prev []string
		updated := map[string]bool{}
		undo := func() {
			if len(tok.Entries) == 0 {
				return
			}
			if rerr := s.rollback(context.WithoutCancel(ctx), tok); rerr != nil {
				sdk.Logger(ctx).Error("undo of a partial Bind failed", "error", rerr)
			}
		}
		for _, b := range req.Bindings {
			old, err := s.replaced(ctx, st, b, newNames)
			if err != nil {
				undo()
				return err
			}
			if old != "" && st.owner(old) == req.CertRef {
				continue // already serving this certificate
			}
			if old != "" && !slices.Contains(prev, st.owner(old)) {
				prev = append(prev, st.owner(old))
			}
			if b.SNI {
				if enable, _ := b.Options.Bool("enable_sni", true); enable {
					if err := s.c.EnableSNI(ctx, b.Name); err != nil {
						undo()
						return s.fail(ctx, "enable SNI on "+b.Name, err)
					}
				}
			}
			switch {
			case old == "":
				if err := s.c.Bind(ctx, b.Name, req.CertRef, b.SNI); err != nil {
					undo()
					return s.fail(ctx, fmt.Sprintf("bind %s to %v", req.CertRef, b), err)
				}
				tok.Entries = append(tok.Entries, rollbackEntry{Mode: modeNew, Kind: b.Kind, VServer: b.Name, SNI: b.SNI, NewCertKey: req.CertRef})
			case updated[old]:
				// The slot was already updated for another binding of this request.
			case !slices.ContainsFunc(st.bindings, func(x bound) bool { return x.CertKey == old && !covered(x) }):
				ck := st.certkeys[old]
				if err := s.repoint(ctx, old, newCK.Cert, newCK.Key, ck.LinkCertKeyName, newCK.LinkCertKeyName); err != nil {
					undo()
					return err
				}
				updated[old] = true
				tok.Entries = append(tok.Entries, rollbackEntry{Mode: modeUpdate, Kind: b.Kind, VServer: b.Name, SNI: b.SNI,
					OldCertKey: old, PrevCert: ck.Cert, PrevKey: ck.Key, PrevLink: ck.LinkCertKeyName})
			default:
				// The old certkey also serves vservers outside this request: rebind this one only.
				if err := s.rebind(ctx, b.Name, b.SNI, old, req.CertRef); err != nil {
					undo()
					return err
				}
				tok.Entries = append(tok.Entries, rollbackEntry{Mode: modeRebind, Kind: b.Kind, VServer: b.Name, SNI: b.SNI, NewCertKey: req.CertRef, OldCertKey: old})
			}
		}
		raw, err := json.Marshal(tok)
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "encode rollback token").WithCause(err)
		}
		out = sdk.BindResult{RollbackToken: raw, PreviousCertRefs: prev}
		return nil
	})
	return out, err
}

// replaced finds the certkey bound at b that the new certificate replaces: the default
// certificate for a non-SNI binding; for SNI, an SNI certificate sharing a DNS name with it.
func (s *session) replaced(ctx context.Context, st *deviceState, b sdk.Binding, newNames []string) (string, error) {
	for _, x := range st.bindings {
		if x.VServer != b.Name || x.Kind != b.Kind || x.SNI != b.SNI {
			continue
		}
		if !b.SNI {
			return x.CertKey, nil
		}
		names, err := s.certNames(ctx, st.certkeys[x.CertKey].Cert)
		if err != nil {
			return "", err
		}
		for _, n := range names {
			if slices.Contains(newNames, n) {
				return x.CertKey, nil
			}
		}
	}
	return "", nil
}

// certNames reads a certificate file and returns its CN and DNS names.
func (s *session) certNames(ctx context.Context, file string) ([]string, error) {
	data, found, err := s.c.Download(ctx, file)
	if err != nil || !found {
		if err == nil {
			return nil, sdk.NotFound("certificate file %s is missing on the appliance", file)
		}
		return nil, s.fail(ctx, "read certificate file "+file, err)
	}
	c, err := sdk.ParseCertificatePEM(string(data))
	if err != nil {
		return nil, sdk.Internal(sdk.ReasonDeviceError, "certificate file %s", file).WithCause(err)
	}
	return append([]string{c.Subject.CommonName}, c.DNSNames...), nil
}

// rebind swaps old for new on one vserver: SNI binds the new one first (both may coexist); a
// default certificate must be unbound first (one per vserver), then the old one is restored if
// the new bind fails.
func (s *session) rebind(ctx context.Context, vs string, sni bool, old, new string) error {
	if sni {
		if err := s.c.Bind(ctx, vs, new, true); err != nil && !nitro.IsCode(err, nitro.CodeAlreadyExists) {
			return s.fail(ctx, fmt.Sprintf("bind %s to %s (sni)", new, vs), err)
		}
		if err := s.c.Unbind(ctx, vs, old, true); err != nil && !nitro.IsCode(err, nitro.CodeResourceMissing) {
			return s.fail(ctx, fmt.Sprintf("unbind %s from %s (sni)", old, vs), err)
		}
		return nil
	}
	sdk.Logger(ctx).Warn("rebinding a default certificate: the vserver has no certificate between unbind and bind", "vserver", vs, "old", old, "new", new)
	if err := s.c.Unbind(ctx, vs, old, false); err != nil && !nitro.IsCode(err, nitro.CodeResourceMissing) {
		return s.fail(ctx, fmt.Sprintf("unbind %s from %s", old, vs), err)
	}
	if err := s.c.Bind(ctx, vs, new, false); err != nil && !nitro.IsCode(err, nitro.CodeAlreadyExists) {
		if rerr := s.c.Bind(context.WithoutCancel(ctx), vs, old, false); rerr != nil {
			sdk.Logger(ctx).Error("could not restore the old certificate after a failed bind", "vserver", vs, "certkey", old, "error", rerr)
		}
		return s.fail(ctx, fmt.Sprintf("bind %s to %s", new, vs), err)
	}
	return nil
}

// Rollback restores what a token describes, newest change first.
func (*Plugin) Rollback(ctx context.Context, t sdk.Target, token []byte) error {
	var tok rollbackToken
	if err := json.Unmarshal(token, &tok); err != nil || tok.V != 1 || tok.Plugin != "citrix-nitro" || tok.CertRef == "" {
		return sdk.InvalidArgument(sdk.ReasonBadRollbackToken, "rollback token is not one this plugin made (or is corrupt)")
	}
	for _, e := range tok.Entries {
		if _, ok := nitroType[e.Kind]; !ok || e.VServer == "" || (e.Mode != modeNew && e.Mode != modeUpdate && e.Mode != modeRebind) {
			return sdk.InvalidArgument(sdk.ReasonBadRollbackToken, "rollback token has an invalid entry")
		}
	}
	return withSession(ctx, t, func(s *session) error {
		if orDefault(s.part) != orDefault(tok.Partition) {
			return sdk.InvalidArgument(sdk.ReasonBadRollbackToken, "rollback token is for partition %q, the target uses %q", orDefault(tok.Partition), orDefault(s.part))
		}
		return s.rollback(ctx, tok)
	})
}

func (s *session) rollback(ctx context.Context, tok rollbackToken) error {
	for i := len(tok.Entries) - 1; i >= 0; i-- {
		e := tok.Entries[i]
		var err error
		switch e.Mode {
		case modeNew:
			if uerr := s.c.Unbind(ctx, e.VServer, e.NewCertKey, e.SNI); uerr != nil && !nitro.IsCode(uerr, nitro.CodeResourceMissing) {
				err = s.fail(ctx, fmt.Sprintf("unbind %s from %s", e.NewCertKey, e.VServer), uerr)
			}
		case modeUpdate:
			ck, found, gerr := s.c.GetCertKey(ctx, e.OldCertKey)
			if gerr != nil || !found {
				return s.fail(ctx, "read certkey "+e.OldCertKey, gerr)
			}
			if ck.Cert != e.PrevCert || ck.Key != e.PrevKey {
				err = s.repoint(ctx, e.OldCertKey, e.PrevCert, e.PrevKey, ck.LinkCertKeyName, e.PrevLink)
			}
		case modeRebind:
			err = s.rebind(ctx, e.VServer, e.SNI, e.NewCertKey, e.OldCertKey)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Commit saves the running config (save ns config); changes are live as soon as they are made.
func (*Plugin) Commit(ctx context.Context, t sdk.Target, req sdk.CommitRequest) (sdk.CommitResult, error) {
	var out sdk.CommitResult
	err := withSession(ctx, t, func(s *session) error {
		if err := s.c.SaveConfig(ctx); err != nil {
			if cerr := sdk.FromContext(ctx); cerr != nil {
				return cerr.WithCause(err)
			}
			var te *nitro.TransportErr
			if asTransport(err, &te) {
				return sdk.TransportError(ctx, s.address, te.Err)
			}
			return commitFailed(err)
		}
		out = sdk.CommitResult{Changed: true, Message: "save ns config done (partition " + orDefault(s.part) + ")"}
		return nil
	})
	return out, err
}

func asTransport(err error, te **nitro.TransportErr) bool {
	e, ok := err.(*nitro.TransportErr)
	if ok {
		*te = e
	}
	return ok
}

// Cleanup removes superseded certkeys and their files, never one that still serves a binding, and
// saves the configuration when it removed something.
func (*Plugin) Cleanup(ctx context.Context, t sdk.Target, objects []sdk.ObjectRef) ([]sdk.CleanupResult, error) {
	var out []sdk.CleanupResult
	err := withSession(ctx, t, func(s *session) error {
		st, err := s.readState(ctx)
		if err != nil {
			return err
		}
		changed := false
		for _, obj := range objects {
			name := obj.CertRef
			if name == "" {
				name = obj.KeyRef
			}
			res := sdk.CleanupResult{Object: obj}
			if !refRE.MatchString(name) {
				res.Reason = fmt.Sprintf("%q is not an object name this plugin makes", name)
				out = append(out, res)
				continue
			}
			res.Removed, res.Reason, err = s.cleanupOne(ctx, st, name)
			if err != nil {
				return err
			}
			changed = changed || res.Removed
			out = append(out, res)
		}
		if !changed {
			return nil
		}
		// Deleted certkeys are gone from the running configuration only: saved, the appliance
		// neither brings them back at the next reboot nor shows unsaved changes.
		if err := s.c.SaveConfig(ctx); err != nil {
			if cerr := sdk.FromContext(ctx); cerr != nil {
				return cerr.WithCause(err)
			}
			return commitFailed(err)
		}
		return nil
	})
	return out, err
}

func (s *session) cleanupOne(ctx context.Context, st *deviceState, name string) (bool, string, error) {
	ck, exists := st.certkeys[name]
	if exists && st.owner(name) != name {
		// A slot now carrying another certificate: the certkey stays (it is what the vservers
		// are bound to); this certificate's own files go.
		removed, err := s.removeFiles(ctx, st, sslFile(name, ".crt"), sslFile(name, ".key"), sslFile(name, ".csr"))
		return true, fmt.Sprintf("certkey %s kept as the binding slot now serving %s; removed files %v", name, st.owner(name), removed), err
	}
	if exists {
		if bs := st.bindingsOf(name); len(bs) > 0 {
			var where []string
			for _, b := range bs {
				where = append(where, b.binding().String())
			}
			return false, "still bound at " + strings.Join(where, ", "), nil
		}
		for _, other := range st.certkeys {
			if other.LinkCertKeyName == name {
				return false, "certkey " + other.CertKey + " links to it as its issuer", nil
			}
		}
		if ck.LinkCertKeyName != "" {
			if err := s.c.Unlink(ctx, name); err != nil {
				return false, "", s.fail(ctx, "unlink certkey "+name, err)
			}
		}
		if err := s.c.DeleteCertKey(ctx, name); err != nil {
			return false, "", s.fail(ctx, "delete certkey "+name, err)
		}
		delete(st.certkeys, name)
		files := []string{ck.Cert, ck.Key, sslFile(name, ".csr")}
		removed, err := s.removeFiles(ctx, st, files...)
		return true, fmt.Sprintf("deleted certkey %s and files %v", name, removed), err
	}
	removed, err := s.removeFiles(ctx, st, sslFile(name, ".key"), sslFile(name, ".csr"), sslFile(name, ".crt"))
	if len(removed) == 0 {
		return true, "nothing of that name on the appliance", err
	}
	return true, fmt.Sprintf("removed files %v", removed), err
}

// removeFiles deletes files no certkey uses; missing ones are skipped.
func (s *session) removeFiles(ctx context.Context, st *deviceState, files ...string) ([]string, error) {
	var removed []string
	for _, f := range files {
		if f == "" || st.fileUsed(f) || !strings.HasPrefix(f, nitro.SSLDir+"/") {
			continue
		}
		err := s.c.DeleteFile(ctx, f)
		if nitro.IsCode(err, nitro.CodeResourceMissing) {
			continue
		}
		if err != nil {
			return removed, s.fail(ctx, "delete file "+f, err)
		}
		removed = append(removed, f)
	}
	return removed, nil
}
