package paloaltopanos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
	"github.com/certfleet/certfleet/plugins/sdk"
	"google.golang.org/grpc/codes"
)

// rollbackToken records what each profile or decryption rule Bind changed pointed at before.
type rollbackToken struct {
	Version int    `json:"v"`
	Plugin  string `json:"plugin"`
	// Cert is the certificate name Bind set.
	Cert    string          `json:"cert"`
	Changes []profileChange `json:"changes"`
}

type profileChange struct {
	// Kind is "" for an SSL/TLS service profile, KindDecryption for a decryption rule.
	Kind    string `json:"kind,omitempty"`
	Vsys    string `json:"vsys,omitempty"`
	Profile string `json:"profile,omitempty"`
	// Previous is the certificate the profile named before; "" if none.
	Previous string `json:"previous"`
	// Rule, PreviousList and Legacy describe a decryption rule and the certificates it held.
	Rule         string   `json:"rule,omitempty"`
	PreviousList []string `json:"previous_list,omitempty"`
	Legacy       bool     `json:"legacy,omitempty"`
	// Bindings that led to this profile or rule, for the record.
	Bindings []string `json:"bindings"`
}

func (c profileChange) isRule() bool { return c.Kind == KindDecryption }

func (c profileChange) loc() location { return location(c.Vsys) }

// checkBindings validates the bindings before anything is contacted.
func checkBindings(bindings []sdk.Binding) error {
	if len(bindings) == 0 {
		return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "no bindings given")
	}
	for _, b := range bindings {
		switch b.Kind {
		case KindProfile, KindPortal, KindGateway, KindDecryption:
		default:
			return sdk.InvalidArgument(sdk.ReasonUnknownBinding, "binding kind %q is not one of %s, %s, %s, %s", b.Kind, KindProfile, KindPortal, KindGateway, KindDecryption)
		}
		if b.Name == "" {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %s has no name", b.Kind)
		}
		if unknown := b.Options.Unknown(bindingOptions); len(unknown) > 0 {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: unknown option(s) %s; known: %s", b, strings.Join(unknown, ", "), optionNames(bindingOptions))
		}
		if b.SNI {
			return sdk.InvalidArgument(sdk.ReasonUnsupported, "binding %v: PAN-OS profiles have no SNI setting; remove sni", b)
		}
		if v, err := b.Options.String("vsys", ""); err != nil {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: %v", b, err)
		} else if v != "" && v != "shared" && !vsysPattern.MatchString(v) {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: option vsys %q: want shared, vsys1, vsys2, ...", b, v)
		}
		if _, err := panosclient.XPathLiteral(b.Name); err != nil {
			return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: %v", b, err)
		}
	}
	return nil
}

// resolveBinding finds the SSL/TLS service profile a binding puts the certificate on.
func (d *device) resolveBinding(ctx context.Context, b sdk.Binding) (*profile, error) {
	vsysOpt, _ := b.Options.String("vsys", "")
	if b.Kind == KindProfile {
		locs := []location{shared, d.vsys}
		switch vsysOpt {
		case "":
		case "shared":
			locs = []location{shared}
		default:
			locs = []location{location(vsysOpt)}
		}
		for _, loc := range locs {
			p, err := d.getProfile(ctx, loc, b.Name)
			if err != nil || p != nil {
				return p, err
			}
		}
		return nil, sdk.UnknownBinding("device %q has no SSL/TLS service profile %q (looked in %s)", d.target.Name, b.Name, locationList(locs))
	}
	loc := d.vsys
	switch vsysOpt {
	case "":
	case "shared":
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: GlobalProtect objects live in a vsys, not shared", b)
	default:
		loc = location(vsysOpt)
	}
	g, err := d.getGlobalProtect(ctx, b.Kind, loc, b.Name)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, sdk.UnknownBinding("device %q has no %s %q in %s", d.target.Name, b.Kind, b.Name, loc)
	}
	if g.profile == "" {
		return nil, sdk.FailedPrecondition(sdk.ReasonInvalidRequest, "%s %q on device %q has no SSL/TLS service profile; assign one on the device first", b.Kind, b.Name, d.target.Name)
	}
	for _, l := range []location{loc, shared} {
		p, err := d.getProfile(ctx, l, g.profile)
		if err != nil || p != nil {
			return p, err
		}
	}
	return nil, sdk.FailedPrecondition(sdk.ReasonInvalidRequest, "%s %q on device %q uses SSL/TLS service profile %q, which does not exist", b.Kind, b.Name, d.target.Name, g.profile)
}

func locationList(locs []location) string {
	names := make([]string, len(locs))
	for i, l := range locs {
		names[i] = l.String()
	}
	return strings.Join(names, " and ")
}

// Bind points the profiles behind the bindings at the certificate, one config set per profile
// (the <certificate> leaf is replaced in place, so a profile never lacks a certificate). All
// bindings are resolved before anything changes; if a change fails, the ones made are undone.
func (p *Plugin) Bind(ctx context.Context, t sdk.Target, req sdk.BindRequest) (sdk.BindResult, error) {
	if err := sdk.FromContext(ctx); err != nil {
		return sdk.BindResult{}, err
	}
	if err := checkBindings(req.Bindings); err != nil {
		return sdk.BindResult{}, err
	}
	var out sdk.BindResult
	err := p.withDevice(ctx, t, func(d *device) error {
		cert, err := d.certByRef(ctx, req.CertRef)
		if err != nil {
			return err
		}
		if cert == nil {
			return sdk.NotFound("device %q has no certificate %q", t.Name, req.CertRef)
		}
		if cert.publicKey == "" || !cert.hasKey {
			return sdk.FailedPrecondition(sdk.ReasonInvalidRequest, "certificate %s has no certificate with its private key yet; import it first", cert.ref())
		}
		leaf, err := sdk.ParseCertificatePEM(cert.publicKey)
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "certificate %s on the device is unreadable", cert.ref()).WithCause(err)
		}
		var changes []*profileChange
		for _, b := range req.Bindings {
			if b.Kind == KindDecryption {
				rule, err := d.resolveRule(ctx, b)
				if err != nil {
					return err
				}
				if cert.loc != shared && cert.loc != rule.loc {
					return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: rule %s is in %s and cannot use certificate %s of %s", b, rule.name, rule.loc, cert.name, cert.loc)
				}
				i := slices.IndexFunc(changes, func(c *profileChange) bool { return c.isRule() && c.Vsys == string(rule.loc) && c.Rule == rule.name })
				if i < 0 {
					changes = append(changes, &profileChange{Kind: KindDecryption, Vsys: string(rule.loc), Rule: rule.name, PreviousList: rule.certificates, Legacy: rule.legacy})
					i = len(changes) - 1
				}
				changes[i].Bindings = append(changes[i].Bindings, b.Kind+"/"+b.Name)
				continue
			}
			prof, err := d.resolveBinding(ctx, b)
			if err != nil {
				return err
			}
			if prof.loc != shared && cert.loc != shared && prof.loc != cert.loc {
				return sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: profile %s is in %s and cannot use certificate %s of %s", b, prof.name, prof.loc, cert.name, cert.loc)
			}
			i := slices.IndexFunc(changes, func(c *profileChange) bool {
				return !c.isRule() && c.Vsys == string(prof.loc) && c.Profile == prof.name
			})
			if i < 0 {
				changes = append(changes, &profileChange{Vsys: string(prof.loc), Profile: prof.name, Previous: prof.certificate})
				i = len(changes) - 1
			}
			changes[i].Bindings = append(changes[i].Bindings, b.Kind+"/"+b.Name)
		}
		var replaced []*profileChange // with the names each change drops, for PreviousCertRefs
		dropped := map[*profileChange][]string{}
		for i, ch := range changes {
			var err error
			if ch.isRule() {
				list := d.replaceInRule(ctx, &decryptionRule{loc: ch.loc(), name: ch.Rule, certificates: ch.PreviousList}, cert.name, leaf)
				if slices.Equal(list, ch.PreviousList) {
					continue
				}
				dropped[ch] = removedFrom(ch.PreviousList, list)
				err = d.setRuleCertificates(ctx, ch.loc(), ch.Rule, list, ch.Legacy)
			} else {
				if ch.Previous == cert.name {
					continue
				}
				if ch.Previous != "" {
					dropped[ch] = []string{ch.Previous}
				}
				err = d.setProfileCertificate(ctx, ch.loc(), ch.Profile, cert.name)
			}
			if err != nil {
				d.undo(ctx, changes[:i], cert.name)
				return err
			}
			replaced = append(replaced, ch)
		}
		tok := rollbackToken{Version: 1, Plugin: Name, Cert: cert.name}
		for _, ch := range changes {
			tok.Changes = append(tok.Changes, *ch)
		}
		for _, ch := range replaced {
			for _, name := range dropped[ch] {
				prev := d.previousRef(ctx, ch.loc(), name)
				if !slices.Contains(out.PreviousCertRefs, prev) && prev != cert.ref() {
					out.PreviousCertRefs = append(out.PreviousCertRefs, prev)
				}
			}
		}
		out.RollbackToken, err = json.Marshal(tok)
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "encode rollback token").WithCause(err)
		}
		sdk.Logger(ctx).Info("bound certificate", "device", t.Name, "cert_ref", cert.ref(), "profiles", len(changes))
		return nil
	})
	return out, err
}

// setProfileCertificate replaces the profile's certificate leaf (config set merges, and a leaf
// takes the new value).
func (d *device) setProfileCertificate(ctx context.Context, loc location, prof, certName string) error {
	xp, err := d.entryXPath(loc.xpath()+"/ssl-tls-service-profile", prof)
	if err != nil {
		return err
	}
	if err := d.client.Set(ctx, xp, "<certificate>"+panosclient.Escape(certName)+"</certificate>"); err != nil {
		return d.fail(ctx, err, "set the certificate of SSL/TLS service profile %s in %s", prof, loc)
	}
	return nil
}

// undo restores profiles changed by a Bind that failed part way; best effort.
func (d *device) undo(ctx context.Context, changes []*profileChange, certName string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, ch := range changes {
		if !ch.isRule() && ch.Previous == certName {
			continue
		}
		if err := d.restore(cctx, ch); err != nil {
			sdk.Logger(ctx).Error("could not undo a binding after a failed Bind", "profile", ch.Profile, "rule", ch.Rule, "location", ch.loc().String(), "error", err)
		}
	}
}

// restore puts a profile or rule back as it was before Bind.
func (d *device) restore(ctx context.Context, ch *profileChange) error {
	if ch.isRule() {
		if len(ch.PreviousList) == 0 {
			xp, err := d.entryXPath(rulesXPath(ch.loc()), ch.Rule)
			if err != nil {
				return err
			}
			if err := d.client.Delete(ctx, xp+"/type/ssl-inbound-inspection/certificates"); err != nil && !notFound(err) {
				return d.fail(ctx, err, "clear the certificates of decryption rule %s", ch.Rule)
			}
			return nil
		}
		return d.setRuleCertificates(ctx, ch.loc(), ch.Rule, ch.PreviousList, ch.Legacy)
	}
	if ch.Previous != "" {
		return d.setProfileCertificate(ctx, ch.loc(), ch.Profile, ch.Previous)
	}
	xp, err := d.entryXPath(ch.loc().xpath()+"/ssl-tls-service-profile", ch.Profile)
	if err != nil {
		return err
	}
	if err := d.client.Delete(ctx, xp+"/certificate"); err != nil && !notFound(err) {
		return d.fail(ctx, err, "clear the certificate of SSL/TLS service profile %s", ch.Profile)
	}
	return nil
}

// previousRef turns a certificate name seen in a profile into a ref, resolved as the device
// resolves it; the bare name when it cannot be found.
func (d *device) previousRef(ctx context.Context, from location, name string) string {
	if c := d.resolveCertName(ctx, from, name); c != nil {
		return c.ref()
	}
	return ref(from, name)
}

func (d *device) resolveCertName(ctx context.Context, from location, name string) *certEntry {
	order := []location{from, shared}
	if from == shared {
		order = []location{shared, d.vsys}
	}
	for _, loc := range order {
		if c, err := d.getCert(ctx, loc, name); err == nil && c != nil {
			return c
		}
	}
	return nil
}

func parseToken(raw []byte) (*rollbackToken, error) {
	bad := func(why string) error {
		return sdk.InvalidArgument(sdk.ReasonBadRollbackToken, "rollback token: %s", why)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var tok rollbackToken
	if err := dec.Decode(&tok); err != nil {
		return nil, bad("not a " + Name + " token: " + err.Error())
	}
	if tok.Version != 1 || tok.Plugin != Name {
		return nil, bad(fmt.Sprintf("version %d of plugin %q, want version 1 of %q", tok.Version, tok.Plugin, Name))
	}
	if tok.Cert == "" || len(tok.Changes) == 0 {
		return nil, bad("it names no certificate or no change")
	}
	for _, ch := range tok.Changes {
		if ch.Vsys != "" && !vsysPattern.MatchString(ch.Vsys) {
			return nil, bad("a change has a bad vsys")
		}
		name := ch.Profile
		switch ch.Kind {
		case "":
			if ch.Profile == "" || ch.Rule != "" {
				return nil, bad("a profile change names no profile")
			}
		case KindDecryption:
			if ch.Rule == "" || ch.Profile != "" || ch.Vsys == "" {
				return nil, bad("a decryption rule change names no rule or no vsys")
			}
			name = ch.Rule
		default:
			return nil, bad(fmt.Sprintf("a change of unknown kind %q", ch.Kind))
		}
		if _, err := panosclient.XPathLiteral(name); err != nil {
			return nil, bad(err.Error())
		}
	}
	return &tok, nil
}

// Rollback points each profile a Bind changed back at its previous certificate, unless someone
// has changed the profile since (then it is left alone and logged).
func (p *Plugin) Rollback(ctx context.Context, t sdk.Target, token []byte) error {
	if err := sdk.FromContext(ctx); err != nil {
		return err
	}
	tok, err := parseToken(token)
	if err != nil {
		return err
	}
	return p.withDevice(ctx, t, func(d *device) error {
		var errs []error
		for i := range tok.Changes {
			ch := &tok.Changes[i]
			if ch.isRule() {
				if err := d.rollbackRule(ctx, tok.Cert, ch); err != nil {
					if se := sdk.AsError(err); se.Code == codes.FailedPrecondition {
						errs = append(errs, err)
						continue
					}
					return err
				}
				continue
			}
			prof, err := d.getProfile(ctx, ch.loc(), ch.Profile)
			if err != nil {
				return err
			}
			switch {
			case prof == nil:
				errs = append(errs, sdk.FailedPrecondition(sdk.ReasonNotFound, "cannot roll back SSL/TLS service profile %s in %s: it no longer exists", ch.Profile, ch.loc()))
				continue
			case prof.certificate == ch.Previous:
				continue
			case prof.certificate != tok.Cert:
				sdk.Logger(ctx).Warn("not rolling back a profile changed since Bind", "profile", ch.Profile, "now", prof.certificate, "bound", tok.Cert)
				continue
			}
			if ch.Previous != "" && d.resolveCertName(ctx, ch.loc(), ch.Previous) == nil {
				errs = append(errs, sdk.FailedPrecondition(sdk.ReasonNotFound, "cannot roll back SSL/TLS service profile %s: its previous certificate %s no longer exists", ch.Profile, ch.Previous))
				continue
			}
			if err := d.restore(ctx, ch); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			var first *sdk.Error
			if errors.As(errs[0], &first) && len(errs) > 1 {
				first.Message += fmt.Sprintf(" (and %d more)", len(errs)-1)
			}
			return errs[0]
		}
		sdk.Logger(ctx).Info("rolled back bindings", "device", t.Name, "profiles", len(tok.Changes))
		return nil
	})
}

// rollbackRule puts a decryption rule's certificate list back, unless the rule no longer holds
// the bound certificate (changed since: left alone and logged).
func (d *device) rollbackRule(ctx context.Context, certName string, ch *profileChange) error {
	r, err := d.getRule(ctx, ch.loc(), ch.Rule)
	if err != nil {
		return err
	}
	switch {
	case r == nil:
		return sdk.FailedPrecondition(sdk.ReasonNotFound, "cannot roll back decryption rule %s in %s: it no longer exists", ch.Rule, ch.loc())
	case slices.Equal(r.certificates, ch.PreviousList):
		return nil
	case !slices.Contains(r.certificates, certName):
		sdk.Logger(ctx).Warn("not rolling back a decryption rule changed since Bind", "rule", ch.Rule, "now", strings.Join(r.certificates, ","), "bound", certName)
		return nil
	}
	for _, prev := range ch.PreviousList {
		if d.resolveCertName(ctx, ch.loc(), prev) == nil {
			return sdk.FailedPrecondition(sdk.ReasonNotFound, "cannot roll back decryption rule %s: its previous certificate %s no longer exists", ch.Rule, prev)
		}
	}
	return d.restore(ctx, ch)
}
