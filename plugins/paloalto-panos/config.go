package paloaltopanos

import (
	"context"
	"sort"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// Reads of the candidate configuration: what Bind, Commit and Inventory act on. The running
// configuration only changes by commit. What a binding serves is read over TLS by the core's
// served-certificate check, not by the plugin.

func (d *device) entryXPath(parent, name string) (string, error) {
	xp, err := panosclient.EntryXPath(parent, name)
	if err != nil {
		return "", sdk.InvalidArgument(sdk.ReasonInvalidRequest, "%v", err)
	}
	return xp, nil
}

// getCert reads one certificate entry; nil when absent.
func (d *device) getCert(ctx context.Context, loc location, name string) (*certEntry, error) {
	xp, err := d.entryXPath(loc.xpath()+"/certificate", name)
	if err != nil {
		return nil, err
	}
	res, err := d.client.Get(ctx, xp)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, d.fail(ctx, err, "read certificate %s in %s", name, loc)
	}
	e := res.Child("entry")
	if e == nil {
		return nil, nil
	}
	c := parseCertEntry(loc, e)
	return &c, nil
}

// certByRef reads the entry a cert_ref or key_ref names; nil when absent.
func (d *device) certByRef(ctx context.Context, r string) (*certEntry, error) {
	loc, name := parseRef(r)
	return d.getCert(ctx, loc, name)
}

// listCerts reads every certificate entry of a location from the candidate configuration.
func (d *device) listCerts(ctx context.Context, loc location) ([]certEntry, error) {
	return d.listCertsIn(ctx, loc, false)
}

// listCertsIn reads the certificate entries of a location from the candidate, or with running
// from the running configuration.
func (d *device) listCertsIn(ctx context.Context, loc location, running bool) ([]certEntry, error) {
	read := d.client.Get
	if running {
		read = d.client.Show
	}
	res, err := read(ctx, loc.xpath()+"/certificate")
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, d.fail(ctx, err, "list certificates in %s", loc)
	}
	var out []certEntry
	for _, e := range res.Child("certificate").All("entry") {
		out = append(out, parseCertEntry(loc, e))
	}
	return out, nil
}

// profile is an SSL/TLS service profile.
type profile struct {
	loc         location
	name        string
	certificate string
}

// listProfiles reads the profiles of a location from the candidate, or with running from the
// running configuration.
func (d *device) listProfiles(ctx context.Context, loc location, running bool) ([]profile, error) {
	read := d.client.Get
	if running {
		read = d.client.Show
	}
	res, err := read(ctx, loc.xpath()+"/ssl-tls-service-profile")
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, d.fail(ctx, err, "list SSL/TLS service profiles in %s", loc)
	}
	var out []profile
	for _, e := range res.Child("ssl-tls-service-profile").All("entry") {
		out = append(out, profile{loc: loc, name: e.Attr("name"), certificate: e.Value("certificate")})
	}
	return out, nil
}

// getProfile reads one profile; nil when absent.
func (d *device) getProfile(ctx context.Context, loc location, name string) (*profile, error) {
	xp, err := d.entryXPath(loc.xpath()+"/ssl-tls-service-profile", name)
	if err != nil {
		return nil, err
	}
	res, err := d.client.Get(ctx, xp)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, d.fail(ctx, err, "read SSL/TLS service profile %s in %s", name, loc)
	}
	e := res.Child("entry")
	if e == nil {
		return nil, nil
	}
	return &profile{loc: loc, name: name, certificate: e.Value("certificate")}, nil
}

// gpObject is a GlobalProtect portal or gateway and the profile it uses.
type gpObject struct {
	kind    string
	loc     location
	name    string
	profile string
}

// GlobalProtect paths: portal-config/ssl-tls-service-profile on portals, ssl-tls-service-profile
// on gateways, both in a vsys (PaloAltoNetworks/pan-os-codegen specs for the portal and gateway).
func gpParent(kind string, loc location) string {
	if kind == KindPortal {
		return loc.xpath() + "/global-protect/global-protect-portal"
	}
	return loc.xpath() + "/global-protect/global-protect-gateway"
}

func gpProfile(kind string, e *panosclient.Element) string {
	if kind == KindPortal {
		return e.Value("portal-config", "ssl-tls-service-profile")
	}
	return e.Value("ssl-tls-service-profile")
}

func (d *device) listGlobalProtect(ctx context.Context, loc location) ([]gpObject, error) {
	var out []gpObject
	for _, kind := range []string{KindPortal, KindGateway} {
		res, err := d.client.Get(ctx, gpParent(kind, loc))
		if notFound(err) {
			continue
		}
		if err != nil {
			return nil, d.fail(ctx, err, "list GlobalProtect objects in %s", loc)
		}
		for _, list := range res.Children {
			for _, e := range list.All("entry") {
				out = append(out, gpObject{kind: kind, loc: loc, name: e.Attr("name"), profile: gpProfile(kind, e)})
			}
		}
	}
	return out, nil
}

func (d *device) getGlobalProtect(ctx context.Context, kind string, loc location, name string) (*gpObject, error) {
	xp, err := d.entryXPath(gpParent(kind, loc), name)
	if err != nil {
		return nil, err
	}
	res, err := d.client.Get(ctx, xp)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, d.fail(ctx, err, "read %s %s in %s", kind, name, loc)
	}
	e := res.Child("entry")
	if e == nil {
		return nil, nil
	}
	return &gpObject{kind: kind, loc: loc, name: name, profile: gpProfile(kind, e)}, nil
}

// view is the part of the candidate configuration Inventory and Cleanup look at.
type view struct {
	vsys     location
	certs    []certEntry
	profiles []profile
	gp       []gpObject
	rules    []decryptionRule
}

func (d *device) readView(ctx context.Context) (*view, error) {
	v := &view{vsys: d.vsys}
	for _, loc := range d.searchLocations() {
		certs, err := d.listCerts(ctx, loc)
		if err != nil {
			return nil, err
		}
		v.certs = append(v.certs, certs...)
		profiles, err := d.listProfiles(ctx, loc, false)
		if err != nil {
			return nil, err
		}
		v.profiles = append(v.profiles, profiles...)
	}
	gp, err := d.listGlobalProtect(ctx, d.vsys)
	if err != nil {
		return nil, err
	}
	v.gp = gp
	if v.rules, err = d.listRules(ctx, d.vsys); err != nil {
		return nil, err
	}
	return v, nil
}

// certNamed resolves a certificate name referenced from a location the way the device does:
// the location's own certificates, then shared; from shared, the device's vsys after shared
// (single-vsys devices see vsys1 objects from shared; generate may put entries there).
func (v *view) certNamed(from location, name string) *certEntry {
	order := []location{from, shared}
	if from == shared {
		order = []location{shared, v.vsys}
	}
	for _, loc := range order {
		for i := range v.certs {
			if v.certs[i].loc == loc && v.certs[i].name == name {
				return &v.certs[i]
			}
		}
	}
	return nil
}

func (v *view) profileNamed(from location, name string) *profile {
	for _, loc := range []location{from, shared} {
		for i := range v.profiles {
			if v.profiles[i].loc == loc && v.profiles[i].name == name {
				return &v.profiles[i]
			}
		}
	}
	return nil
}

// bindings maps each certificate ref to the bindings that serve it.
func (v *view) bindings() map[string][]sdk.Binding {
	out := map[string][]sdk.Binding{}
	for _, p := range v.profiles {
		if c := v.certNamed(p.loc, p.certificate); c != nil {
			out[c.ref()] = append(out[c.ref()], binding(KindProfile, p.loc, p.name))
		}
	}
	for _, g := range v.gp {
		p := v.profileNamed(g.loc, g.profile)
		if p == nil {
			continue
		}
		if c := v.certNamed(p.loc, p.certificate); c != nil {
			out[c.ref()] = append(out[c.ref()], binding(g.kind, g.loc, g.name))
		}
	}
	for _, r := range v.rules {
		for _, name := range r.certificates {
			if c := v.certNamed(r.loc, name); c != nil {
				out[c.ref()] = append(out[c.ref()], binding(KindDecryption, r.loc, r.name))
			}
		}
	}
	for _, bs := range out {
		sort.Slice(bs, func(i, j int) bool {
			if bs[i].Kind != bs[j].Kind {
				return bs[i].Kind < bs[j].Kind
			}
			return bs[i].Name < bs[j].Name
		})
	}
	return out
}

func binding(kind string, loc location, name string) sdk.Binding {
	b := sdk.Binding{Kind: kind, Name: name}
	if loc != shared {
		b.Options = sdk.Options{"vsys": string(loc)}
	}
	return b
}
