package engine

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet/core/state"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// ActionAdopt records a certificate already live on the device (left there by another tool, e.g.
// a Sectigo agent) as deployed, instead of ordering a new one.
const ActionAdopt Action = "adopt"

// adoptable finds, for a certificate with nothing recorded, a certificate on the device that is
// valid now, bound at every configured binding, and has exactly the configured names (common name
// and SANs) and key type and size. When several qualify, the one that lasts longest wins. The
// other subject fields (O, L, ST, C) are not compared: CAs rewrite them from the validated
// organization, and a difference there does not change what a client checks.
func adoptable(c Certificate, inv inventory, now time.Time) (sdk.DeviceCertificate, bool) {
	if len(c.Bindings) == 0 {
		return sdk.DeviceCertificate{}, false
	}
	var best sdk.DeviceCertificate
	found := false
	for _, ref := range inv.boundAt[bindingKey(c.Bindings[0])] {
		dc, ok := inv.certs[ref]
		if !ok || dc.IsCA || now.Before(dc.NotBefore) || !now.Before(dc.NotAfter) || dc.KeySpec != c.KeySpec || !sameNames(c, dc) {
			continue
		}
		if !allBound(c.Bindings, inv, ref) {
			continue
		}
		if !found || dc.NotAfter.After(best.NotAfter) {
			best, found = dc, true
		}
	}
	return best, found
}

func allBound(bs []sdk.Binding, inv inventory, ref string) bool {
	for _, b := range bs {
		if !inv.bound(b, ref) {
			return false
		}
	}
	return true
}

// sameNames compares the configured common name and SANs with a device certificate's.
func sameNames(c Certificate, dc sdk.DeviceCertificate) bool {
	if c.Subject.CommonName != "" && !strings.EqualFold(commonName(dc), c.Subject.CommonName) {
		return false
	}
	lower := func(in []string) []string {
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	ips := func(in []string) []string {
		out := make([]string, len(in))
		for i, s := range in {
			if ip := net.ParseIP(strings.TrimSpace(s)); ip != nil {
				s = ip.String()
			}
			out[i] = s
		}
		return lower(out)
	}
	return slices.Equal(lower(c.SANs.DNSNames), lower(dc.SANs.DNSNames)) &&
		slices.Equal(ips(c.SANs.IPAddresses), ips(dc.SANs.IPAddresses)) &&
		slices.Equal(lower(c.SANs.EmailAddresses), lower(dc.SANs.EmailAddresses))
}

// commonName reads the CN from the certificate itself when the plugin sent it, else from the
// subject string plugins build with x509's Name.String ("CN=a,O=b").
func commonName(dc sdk.DeviceCertificate) string {
	if dc.CertPEM != "" {
		if leaf, err := sdk.ParseCertificatePEM(dc.CertPEM); err == nil {
			return leaf.Subject.CommonName
		}
	}
	for _, part := range strings.Split(dc.Subject, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "CN="); ok {
			return v
		}
	}
	return ""
}

// adoptedDeployment is what adopting dc records. It has no order at the CA, and its objects were
// made by someone else: they are removed after a renewal only when the certificate allows it.
func adoptedDeployment(c Certificate, dc sdk.DeviceCertificate, now time.Time) state.Deployment {
	return state.Deployment{
		Certificate: c.Name, Device: c.Device, Issuer: c.Issuer, CertRef: dc.CertRef, KeyRef: dc.KeyRef,
		Serial: dc.Serial, Fingerprint: dc.SHA256Fingerprint, NotBefore: dc.NotBefore, NotAfter: dc.NotAfter,
		CertPEM: dc.CertPEM, SpecHash: specHash(c), Bindings: bindingKeys(c.Bindings), DeployedAt: now,
		RevocationCheckedAt: now, Adopted: true,
	}
}

// mayAdopt reports whether planning may adopt what c's device holds for c: nothing is recorded
// for c, no operation is open, and adoption is not turned off. Adoption is the one decision that
// reads more of a DeviceCertificate than its cert_ref, fingerprint and bindings, so a device's
// Inventory asks for more only when this holds for one of its certificates.
func mayAdopt(c Certificate, deployments map[string]state.Deployment, ops map[string]*state.Operation, po PlanOptions) bool {
	_, deployed := deployments[c.Name]
	return !deployed && ops[c.Name] == nil && !po.NoAdopt
}

// planAdoption decides for a certificate with nothing recorded: adopt what is live when it
// qualifies (and renew it at once when it is already due), else enroll.
func planAdoption(item *PlanItem, inv inventory, force bool, now time.Time) bool {
	dc, ok := adoptable(item.cert, inv, now)
	if !ok {
		return false
	}
	d := adoptedDeployment(item.cert, dc, now.UTC())
	item.adopted, item.deployment, item.NotAfter = &d, &d, d.NotAfter
	action, reason := decide(item.cert, &d, inv, force, now)
	if action == ActionNone {
		item.Action = ActionAdopt
		item.Reason = fmt.Sprintf("%s is live at %s with the configured names and key; %s", dc.CertRef, strings.Join(d.Bindings, ", "), reason)
		return true
	}
	item.Action, item.Reason = action, fmt.Sprintf("adopt %s, then %s", dc.CertRef, reason)
	return true
}
