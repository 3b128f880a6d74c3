package paloaltopanos

import (
	"context"
	"crypto/x509"
	"slices"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// SSL Inbound Inspection decryption rules name the certificates (with keys) of the servers they
// protect, in the vsys rulebase: rulebase/decryption/rules/entry[@name=R]/type/
// ssl-inbound-inspection/certificates/member — a list since PAN-OS 10.2 (pango v2
// policies/rules/decryption). Earlier releases held one name as the text of
// ssl-inbound-inspection [UNCONFIRMED]; a rule read in that form is written back in it.

// decryptionRule is an SSL Inbound Inspection rule.
type decryptionRule struct {
	loc          location
	name         string
	certificates []string
	// legacy: the single certificate is the text of ssl-inbound-inspection.
	legacy bool
}

func rulesXPath(loc location) string { return loc.xpath() + "/rulebase/decryption/rules" }

func parseRule(loc location, e *panosclient.Element) (decryptionRule, bool) {
	in := e.Path("type", "ssl-inbound-inspection")
	if in == nil {
		return decryptionRule{}, false
	}
	r := decryptionRule{loc: loc, name: e.Attr("name"), certificates: in.Members("certificates")}
	if len(r.certificates) == 0 && in.Child("certificates") == nil {
		if s := in.Value(); s != "" {
			r.certificates, r.legacy = []string{s}, true
		}
	}
	return r, true
}

// getRule reads one rule; nil when absent or not an inbound inspection rule.
func (d *device) getRule(ctx context.Context, loc location, name string) (*decryptionRule, error) {
	xp, err := d.entryXPath(rulesXPath(loc), name)
	if err != nil {
		return nil, err
	}
	res, err := d.client.Get(ctx, xp)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, d.fail(ctx, err, "read decryption rule %s in %s", name, loc)
	}
	e := res.Child("entry")
	if e == nil {
		return nil, nil
	}
	r, ok := parseRule(loc, e)
	if !ok {
		return nil, nil
	}
	return &r, nil
}

// listRules reads the inbound inspection rules of a vsys.
func (d *device) listRules(ctx context.Context, loc location) ([]decryptionRule, error) {
	res, err := d.client.Get(ctx, rulesXPath(loc))
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, d.fail(ctx, err, "list decryption rules in %s", loc)
	}
	var out []decryptionRule
	for _, e := range res.Child("rules").All("entry") {
		if r, ok := parseRule(loc, e); ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// resolveRule finds the rule of a decryption-rule binding (in the device's vsys, or the
// binding's vsys option).
func (d *device) resolveRule(ctx context.Context, b sdk.Binding) (*decryptionRule, error) {
	loc := d.vsys
	switch v, _ := b.Options.String("vsys", ""); v {
	case "":
	case "shared":
		return nil, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "binding %v: a firewall's decryption rules live in a vsys, not shared", b)
	default:
		loc = location(v)
	}
	r, err := d.getRule(ctx, loc, b.Name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, sdk.UnknownBinding("device %q has no SSL Inbound Inspection decryption rule %q in %s", d.target.Name, b.Name, loc)
	}
	return r, nil
}

// replaceInRule is the rule's certificate list with cert in place of the one it renews: the only
// certificate of a single-certificate rule, else each certificate with the same common name as
// cert (a rule protecting several servers keeps the others); appended when none matches.
func (d *device) replaceInRule(ctx context.Context, r *decryptionRule, certName string, leaf *x509.Certificate) []string {
	if len(r.certificates) <= 1 {
		return []string{certName}
	}
	var out []string
	replaced := false
	for _, m := range r.certificates {
		same := m == certName
		if !same {
			if e := d.resolveCertName(ctx, r.loc, m); e != nil && e.publicKey != "" {
				if c, err := sdk.ParseCertificatePEM(e.publicKey); err == nil && c.Subject.CommonName == leaf.Subject.CommonName {
					same = true
				}
			}
		}
		switch {
		case !same:
			out = append(out, m)
		case !replaced:
			out = append(out, certName)
			replaced = true
		}
	}
	if !replaced {
		out = append(out, certName)
	}
	return out
}

// setRuleCertificates replaces the rule's certificate list (config edit of the list, so the rule
// is never without a certificate), in the legacy single-name form when the rule uses it.
func (d *device) setRuleCertificates(ctx context.Context, loc location, rule string, certs []string, legacy bool) error {
	xp, err := d.entryXPath(rulesXPath(loc), rule)
	if err != nil {
		return err
	}
	xp += "/type/ssl-inbound-inspection"
	if legacy && len(certs) == 1 {
		err = d.client.Edit(ctx, xp, "<ssl-inbound-inspection>"+panosclient.Escape(certs[0])+"</ssl-inbound-inspection>")
	} else {
		el := "<certificates>"
		for _, c := range certs {
			el += "<member>" + panosclient.Escape(c) + "</member>"
		}
		err = d.client.Edit(ctx, xp+"/certificates", el+"</certificates>")
	}
	if err != nil {
		return d.fail(ctx, err, "set the certificates of decryption rule %s in %s", rule, loc)
	}
	return nil
}

// removedFrom lists the names in before that are not in after.
func removedFrom(before, after []string) []string {
	var out []string
	for _, b := range before {
		if !slices.Contains(after, b) {
			out = append(out, b)
		}
	}
	return out
}
