package paloaltopanos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/paloalto-panos/panosclient"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// cleanupTimeout bounds the best-effort removal of a half-made entry after a failed call.
const cleanupTimeout = 30 * time.Second

// GenerateCSR makes a key pair and a pending certificate entry on the device under a new name
// (request certificate generate, signed-by external) and exports its CSR.
func (p *Plugin) GenerateCSR(ctx context.Context, t sdk.Target, req sdk.CSRRequest) (sdk.CSR, error) {
	if err := sdk.FromContext(ctx); err != nil {
		return sdk.CSR{}, err
	}
	if !slices.Contains(keySpecs, req.KeySpec) {
		return sdk.CSR{}, sdk.InvalidArgument(sdk.ReasonUnsupported, "key %v is not supported on PAN-OS; use rsa 2048/3072/4096 or ecdsa 256/384 (no public source shows P-521 on the box: see the plugin's README)", req.KeySpec)
	}
	if req.Subject.CommonName == "" {
		return sdk.CSR{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "PAN-OS needs a common name for a CSR (subject.common_name)")
	}
	if c := req.Subject.Country; c != "" && len(c) != 2 {
		return sdk.CSR{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "subject.country %q must be a two-letter code", c)
	}
	for _, ip := range req.SANs.IPAddresses {
		if net.ParseIP(ip) == nil {
			return sdk.CSR{}, sdk.InvalidArgument(sdk.ReasonInvalidRequest, "SAN %q is not an IP address", ip)
		}
	}
	var out sdk.CSR
	err := p.withDevice(ctx, t, func(d *device) error {
		name, err := csrCertName(req, d.vsys.nameLimit())
		if err != nil {
			return sdk.Internal(sdk.ReasonDeviceError, "make a certificate name").WithCause(err)
		}
		if req.AttemptID != "" {
			if err := d.removeEarlierAttempt(ctx, name); err != nil {
				return err
			}
		}
		if _, err := d.client.Op(ctx, generateCommand(name, req, d.digestFor(req.KeySpec))); err != nil {
			// Without an answer the device may have made the entry anyway; with an error
			// answer it did not, and the name may even be someone else's.
			var apiErr *panosclient.APIError
			if !errors.As(err, &apiErr) {
				d.discardNew(ctx, name)
			}
			return d.fail(ctx, err, "generate key pair and CSR %s", name)
		}
		entry, err := d.locateNew(ctx, name)
		if err != nil {
			d.discardNew(ctx, name)
			return err
		}
		csrPEM, err := d.exportCSR(ctx, entry)
		if err == nil {
			err = checkCSR(csrPEM, req)
		}
		if err != nil {
			d.discardNew(ctx, name)
			return err
		}
		out = sdk.CSR{PEM: csrPEM, KeyRef: entry.ref()}
		sdk.Logger(ctx).Info("generated key pair and CSR", "device", t.Name, "key_ref", out.KeyRef, "key", req.KeySpec.String())
		return nil
	})
	return out, err
}

// digestFor is the CSR digest: the option, or one as strong as the key.
func (d *device) digestFor(spec sdk.KeySpec) string {
	if d.digest != "" {
		return d.digest
	}
	if spec.Type == sdk.KeyTypeECDSA && spec.Bits == 384 {
		return "sha384"
	}
	return "sha256"
}

// generateCommand is the op command; every user value is XML-escaped.
func generateCommand(name string, req sdk.CSRRequest, digest string) string {
	var b strings.Builder
	el := func(tag, value string) {
		if value != "" {
			b.WriteString("<" + tag + ">" + panosclient.Escape(value) + "</" + tag + ">")
		}
	}
	list := func(tag string, values []string) {
		if len(values) == 0 {
			return
		}
		b.WriteString("<" + tag + ">")
		for _, v := range values {
			el("member", v)
		}
		b.WriteString("</" + tag + ">")
	}
	b.WriteString("<request><certificate><generate>")
	el("certificate-name", name)
	el("name", req.Subject.CommonName)
	if req.KeySpec.Type == sdk.KeyTypeRSA {
		fmt.Fprintf(&b, "<algorithm><RSA><rsa-nbits>%d</rsa-nbits></RSA></algorithm>", req.KeySpec.Bits)
	} else {
		fmt.Fprintf(&b, "<algorithm><ECDSA><ecdsa-nbits>%d</ecdsa-nbits></ECDSA></algorithm>", req.KeySpec.Bits)
	}
	el("digest", digest)
	el("signed-by", "external")
	el("ca", "no")
	el("country-code", req.Subject.Country)
	el("state", req.Subject.State)
	el("locality", req.Subject.Locality)
	el("organization", req.Subject.Organization)
	if req.Subject.OrganizationalUnit != "" {
		list("organization-unit", []string{req.Subject.OrganizationalUnit})
	}
	el("email", req.Subject.Email)
	// Whether the device adds the CN as a SAN by itself is unconfirmed: the DNS names requested
	// are sent exactly, and the CSR is checked afterwards.
	list("hostname", req.SANs.DNSNames)
	list("ip", req.SANs.IPAddresses)
	list("alt-email", wantEmails(req))
	b.WriteString("</generate></certificate></request>")
	return b.String()
}

// wantEmails are the email SANs a CSR must carry: the requested ones and the subject's address,
// as the core checks.
func wantEmails(req sdk.CSRRequest) []string {
	out := slices.Clone(req.SANs.EmailAddresses)
	if req.Subject.Email != "" && !slices.Contains(out, req.Subject.Email) {
		out = append(out, req.Subject.Email)
	}
	return out
}

// locateNew finds the entry generate made: in shared or, as some devices do, in the vsys.
func (d *device) locateNew(ctx context.Context, name string) (*certEntry, error) {
	for _, loc := range d.searchLocations() {
		e, err := d.getCert(ctx, loc, name)
		if err != nil {
			return nil, err
		}
		if e != nil {
			if e.loc != shared {
				sdk.Logger(ctx).Info("the device put the new certificate entry in a vsys", "certificate", name, "vsys", string(e.loc))
			}
			return e, nil
		}
	}
	return nil, sdk.Internal(sdk.ReasonDeviceError, "generate reported success but certificate %s is in neither shared nor %s", name, d.vsys)
}

// exportCSR exports the CSR (format pkcs10); when the export fails, the <csr> of the config
// entry is used instead.
func (d *device) exportCSR(ctx context.Context, e *certEntry) (string, error) {
	params := url.Values{"category": {"certificate"}, "certificate-name": {e.name}, "format": {"pkcs10"}, "include-key": {"no"}}
	for k, v := range e.loc.params() {
		params.Set(k, v)
	}
	raw, err := d.client.Export(ctx, params)
	if err == nil {
		if csr := strings.TrimSpace(string(raw)); strings.Contains(csr, "CERTIFICATE REQUEST-----") {
			return csr + "\n", nil
		}
		err = fmt.Errorf("export of %s is not a PEM CSR", e.name)
	}
	if cerr := sdk.FromContext(ctx); cerr != nil {
		return "", cerr
	}
	if e.csr != "" {
		sdk.Logger(ctx).Info("CSR export failed; using the CSR of the config entry", "certificate", e.ref(), "error", err)
		return strings.TrimSpace(e.csr) + "\n", nil
	}
	return "", d.fail(ctx, err, "export the CSR of %s", e.ref())
}

// checkCSR verifies the device made exactly what was asked.
func checkCSR(csrPEM string, req sdk.CSRRequest) error {
	csr, err := sdk.ParseCSRPEM(csrPEM)
	if err != nil {
		return sdk.Internal(sdk.ReasonDeviceError, "the device returned an invalid CSR").WithCause(err)
	}
	var problems []string
	if got := sdk.KeySpecOfCSR(csr); got != req.KeySpec {
		problems = append(problems, fmt.Sprintf("key is %v, not %v", got, req.KeySpec))
	}
	if csr.Subject.CommonName != req.Subject.CommonName {
		problems = append(problems, fmt.Sprintf("common name is %q, not %q", csr.Subject.CommonName, req.Subject.CommonName))
	}
	var ips []string
	for _, ip := range csr.IPAddresses {
		ips = append(ips, ip.String())
	}
	var wantIPs []string
	for _, ip := range req.SANs.IPAddresses {
		wantIPs = append(wantIPs, net.ParseIP(ip).String())
	}
	for _, c := range []struct {
		what      string
		got, want []string
	}{
		{"DNS names", csr.DNSNames, req.SANs.DNSNames},
		{"IP addresses", ips, wantIPs},
		{"email addresses", csr.EmailAddresses, wantEmails(req)},
	} {
		if !sameSet(c.got, c.want) {
			problems = append(problems, fmt.Sprintf("%s are %v, not %v", c.what, c.got, c.want))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	hint := ""
	if !slices.Contains(req.SANs.DNSNames, req.Subject.CommonName) && slices.Contains(csr.DNSNames, req.Subject.CommonName) {
		hint = "; this device adds the common name as a DNS name: list it among the certificate's DNS names"
	}
	return sdk.FailedPrecondition("CSR_MISMATCH", "the device made a CSR other than requested: %s%s", strings.Join(problems, "; "), hint)
}

func sameSet(a, b []string) bool {
	norm := func(in []string) []string {
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = strings.ToLower(s)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

// removeEarlierAttempt deletes the entry (key pair and pending certificate) an earlier GenerateCSR
// of the same attempt made: its answer was lost, so nobody has its key_ref.
func (d *device) removeEarlierAttempt(ctx context.Context, name string) error {
	for _, loc := range d.searchLocations() {
		xp, err := d.entryXPath(loc.xpath()+"/certificate", name)
		if err != nil {
			return err
		}
		err = d.client.Delete(ctx, xp)
		if notFound(err) {
			continue
		}
		if err != nil {
			return d.fail(ctx, err, "remove certificate %s, left by an earlier call of this attempt", name)
		}
		sdk.Logger(ctx).Info("removed the entry an earlier call of this attempt made", "certificate", name, "location", loc.String())
	}
	return nil
}

// discardNew removes a half-made entry after a failed GenerateCSR, wherever it landed; best
// effort, even when ctx has ended.
func (d *device) discardNew(ctx context.Context, name string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, loc := range d.searchLocations() {
		xp, err := d.entryXPath(loc.xpath()+"/certificate", name)
		if err != nil {
			return
		}
		if err := d.client.Delete(cctx, xp); err != nil && !notFound(err) {
			sdk.Logger(ctx).Warn("could not remove a half-made certificate entry", "certificate", name, "location", loc.String(), "error", err)
		}
	}
}
