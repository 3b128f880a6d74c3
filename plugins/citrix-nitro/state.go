package citrixnitro

import (
	"context"
	"crypto/x509"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitro"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// bound is one server-certificate binding of a certkey on an SSL vserver.
type bound struct {
	Kind    string // KindLB, KindGateway or KindCS
	VServer string
	CertKey string
	SNI     bool
}

// elsewhere is a place a certkey is bound that Bind does not manage: an SSL service or service
// group, an SSL profile, the global VPN, a SAML action.
type elsewhere struct {
	Kind, Name, CertKey string
}

func (e elsewhere) binding() sdk.Binding { return sdk.Binding{Kind: e.Kind, Name: e.Name} }

func (b bound) binding() sdk.Binding { return sdk.Binding{Kind: b.Kind, Name: b.VServer, SNI: b.SNI} }

func (b bound) at(x sdk.Binding) bool {
	return b.Kind == x.Kind && b.VServer == x.Name && b.SNI == x.SNI
}

// deviceState is what the appliance holds: certkeys, lb/vpn vservers and their bindings.
type deviceState struct {
	certkeys map[string]nitro.CertKey
	order    []string          // certkey names as listed
	kind     map[string]string // vserver name -> binding kind
	service  map[string]string // vserver name -> servicetype
	bindings []bound           // server-certificate (not CA) bindings on lb, cs and vpn vservers
	others   []elsewhere       // bindings at places Bind does not manage
}

// readState reads the certkeys, the lb, cs and vpn vservers, every certificate binding of an SSL
// vserver, and every other place a certkey is bound: eight requests whatever the size of the
// appliance (bindings in bulk, NITRO docs "get (all)"; vserver by vserver if the appliance
// refuses that).
func (s *session) readState(ctx context.Context) (*deviceState, error) {
	st := &deviceState{certkeys: map[string]nitro.CertKey{}, kind: map[string]string{}, service: map[string]string{}}
	cks, err := s.c.CertKeys(ctx)
	if err != nil {
		return nil, s.fail(ctx, "list certkeys", err)
	}
	for _, ck := range cks {
		st.certkeys[ck.CertKey] = ck
		st.order = append(st.order, ck.CertKey)
	}
	for _, kind := range bindingKinds {
		vs, err := s.c.VServers(ctx, nitroType[kind])
		if err != nil {
			return nil, s.fail(ctx, "list "+nitroType[kind], err)
		}
		for _, v := range vs {
			st.kind[v.Name], st.service[v.Name] = kind, v.ServiceType
		}
	}
	all, err := s.c.AllBindings(ctx)
	if nitro.IsDeviceRefusal(err) {
		sdk.Logger(ctx).Debug("bulk binding list refused; reading vserver by vserver", "error", err)
		all, err = s.bindingsOneByOne(ctx, st)
	}
	if err != nil {
		return nil, s.fail(ctx, "list certificate bindings", err)
	}
	for _, b := range all {
		kind, ok := st.kind[b.VServerName]
		if !ok || bool(b.CA) {
			continue // a cs vserver, or a client-auth CA: not a binding of ours
		}
		st.bindings = append(st.bindings, bound{Kind: kind, VServer: b.VServerName, CertKey: b.CertKeyName, SNI: bool(b.SNICert)})
	}
	if err := s.readElsewhere(ctx, st); err != nil {
		return nil, err
	}
	return st, nil
}

// readElsewhere reads the places a certkey is bound besides SSL vservers: services, service
// groups and SSL profiles (sslcertkey_binding, NITRO docs), the global VPN
// (vpnglobal_sslcertkey_binding) and SAML actions, the references the j81 NetScaler toolkit
// checks before it removes a certkey. An appliance without the VPN or AAA feature may refuse the
// last two; that is logged and read as "none".
func (s *session) readElsewhere(ctx context.Context, st *deviceState) error {
	places, err := s.c.Places(ctx)
	if nitro.IsDeviceRefusal(err) {
		sdk.Logger(ctx).Debug("bulk sslcertkey_binding refused; reading certkey by certkey", "error", err)
		places = nil
		for _, name := range st.order {
			one, perr := s.c.PlacesOf(ctx, name)
			if perr != nil {
				err = perr
				break
			}
			places, err = append(places, one...), nil
		}
	}
	if err != nil {
		return s.fail(ctx, "list where certkeys are bound (sslcertkey_binding)", err)
	}
	for _, p := range places {
		for _, v := range p.VServers {
			if _, known := st.kind[v.ServerName]; !known {
				// An SSL vserver of a kind not read above.
				st.others = append(st.others, elsewhere{Kind: "ssl-vserver", Name: v.ServerName, CertKey: p.CertKey})
			}
		}
		for _, svc := range p.Services {
			if svc.ServiceGroupName != "" {
				st.others = append(st.others, elsewhere{Kind: KindServiceGroup, Name: svc.ServiceGroupName, CertKey: p.CertKey})
			} else {
				st.others = append(st.others, elsewhere{Kind: KindService, Name: svc.ServiceName, CertKey: p.CertKey})
			}
		}
		for _, pr := range p.Profiles {
			st.others = append(st.others, elsewhere{Kind: KindProfile, Name: pr.SSLProfile, CertKey: p.CertKey})
		}
	}
	vpn, err := s.c.VPNGlobalCertKeys(ctx)
	if nitro.IsDeviceRefusal(err) {
		sdk.Logger(ctx).Debug("vpnglobal_sslcertkey_binding refused; read as none", "error", err)
		vpn, err = nil, nil
	}
	if err != nil {
		return s.fail(ctx, "list the global VPN certificates", err)
	}
	for _, ck := range vpn {
		st.others = append(st.others, elsewhere{Kind: KindVPNGlobal, Name: "vpnglobal", CertKey: ck})
	}
	saml, err := s.c.SAMLActions(ctx)
	if nitro.IsDeviceRefusal(err) {
		sdk.Logger(ctx).Debug("authenticationsamlaction refused; read as none", "error", err)
		saml, err = nil, nil
	}
	if err != nil {
		return s.fail(ctx, "list the SAML actions", err)
	}
	for _, a := range saml {
		for _, ck := range []string{a.IdPCert, a.SigningCert} {
			if ck != "" {
				st.others = append(st.others, elsewhere{Kind: KindSAMLAction, Name: a.Name, CertKey: ck})
			}
		}
	}
	return nil
}

// othersOf lists the places outside SSL vservers where certkey is bound.
func (st *deviceState) othersOf(certkey string) []elsewhere {
	var out []elsewhere
	for _, o := range st.others {
		if o.CertKey == certkey {
			out = append(out, o)
		}
	}
	return out
}

// keyType is "rsa" or "ecdsa" for a certkey, from the publickey the appliance reports, else
// from its certificate file; "" when neither says.
func (s *session) keyType(ctx context.Context, st *deviceState, name string) (string, error) {
	ck := st.certkeys[name]
	switch strings.ToLower(ck.PublicKey) {
	case "rsaencryption":
		return "rsa", nil
	case "id-ecpublickey":
		return "ecdsa", nil
	}
	data, found, err := s.c.Download(ctx, ck.Cert)
	if err != nil {
		return "", s.fail(ctx, "read certificate file "+ck.Cert+" of certkey "+name, err)
	}
	if !found {
		return "", nil
	}
	c, err := sdk.ParseCertificatePEM(string(data))
	if err != nil {
		return "", nil
	}
	switch c.PublicKeyAlgorithm {
	case x509.RSA:
		return "rsa", nil
	case x509.ECDSA:
		return "ecdsa", nil
	}
	return "", nil
}

func (s *session) bindingsOneByOne(ctx context.Context, st *deviceState) ([]nitro.VServerBinding, error) {
	names := make([]string, 0, len(st.kind))
	for n := range st.kind {
		if isSSLService(st.service[n]) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []nitro.VServerBinding
	for _, n := range names {
		bs, err := s.c.Bindings(ctx, n)
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			b.VServerName = n
			out = append(out, b)
		}
	}
	return out, nil
}

// refOf is the cert_ref a certkey carries: the certfleet name its certificate and key files are
// named after when they are (after an in-place renewal a certkey carries another cert_ref's
// files), else its own name.
func (st *deviceState) refOf(name string) string {
	ck, ok := st.certkeys[name]
	if !ok {
		return name
	}
	base := strings.TrimSuffix(path.Base(ck.Cert), ".crt")
	if base != name && madeName.MatchString(base) && ck.Cert == sslFile(base, ".crt") && ck.Key == sslFile(base, ".key") {
		return base
	}
	return name
}

// holders lists the certkeys carrying cert_ref ref, the one of that name first.
func (st *deviceState) holders(ref string) []string {
	var out []string
	for _, n := range st.order {
		if st.refOf(n) != ref {
			continue
		}
		if n == ref {
			out = append([]string{n}, out...)
		} else {
			out = append(out, n)
		}
	}
	return out
}

// boundAt lists the bindings of one certkey.
func (st *deviceState) boundAt(certkey string) []bound {
	var out []bound
	for _, b := range st.bindings {
		if b.CertKey == certkey {
			out = append(out, b)
		}
	}
	return out
}

// refBindings lists the bindings serving cert_ref ref, through any certkey carrying it.
func (st *deviceState) refBindings(ref string) []bound {
	var out []bound
	for _, b := range st.bindings {
		if st.refOf(b.CertKey) == ref {
			out = append(out, b)
		}
	}
	return out
}

// linkedBy lists the certkeys that link to name as their issuer.
func (st *deviceState) linkedBy(name string) []string {
	var out []string
	for _, n := range st.order {
		if st.certkeys[n].LinkCertKeyName == name {
			out = append(out, n)
		}
	}
	return out
}

// fileUsed reports whether any certkey uses file.
func (st *deviceState) fileUsed(file string) bool {
	for _, ck := range st.certkeys {
		if ck.Cert == file || ck.Key == file {
			return true
		}
	}
	return false
}

func (st *deviceState) forget(certkey string) {
	delete(st.certkeys, certkey)
	st.order = slices.DeleteFunc(st.order, func(n string) bool { return n == certkey })
}

// downloadWorkers bounds the certificate files Inventory reads at once on one session.
const downloadWorkers = 4

// Inventory lists every certificate on the appliance: one entry per cert_ref (a certkey, or the
// certfleet certificate a certkey carries after an in-place renewal), parsed from its file,
// with the vserver bindings of every certkey carrying it.
func (*Plugin) Inventory(ctx context.Context, t sdk.Target) ([]sdk.DeviceCertificate, error) {
	var out []sdk.DeviceCertificate
	err := withSession(ctx, t, func(s *session) error {
		st, err := s.readState(ctx)
		if err != nil {
			return err
		}
		var refs []string
		seen := map[string]bool{}
		for _, n := range st.order {
			if ref := st.refOf(n); !seen[ref] {
				seen[ref] = true
				refs = append(refs, ref)
			}
		}
		out = make([]sdk.DeviceCertificate, len(refs))
		errs := make([]error, len(refs))
		jobs := make(chan int)
		var wg sync.WaitGroup
		for range min(downloadWorkers, len(refs)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					out[i], errs[i] = s.describe(ctx, st, refs[i])
				}
			}()
		}
		for i := range refs {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// describe builds the inventory entry of cert_ref ref from the certificate file of the certkey
// carrying it; when the file cannot be read, from the certkey's own fields.
func (s *session) describe(ctx context.Context, st *deviceState, ref string) (sdk.DeviceCertificate, error) {
	ck := st.certkeys[st.holders(ref)[0]]
	var dc sdk.DeviceCertificate
	data, found, err := s.c.Download(ctx, ck.Cert)
	if err != nil {
		return dc, s.fail(ctx, "read certificate file "+ck.Cert+" of certkey "+ck.CertKey, err)
	}
	var cert *x509.Certificate
	if found {
		cert, _ = sdk.ParseCertificatePEM(string(data))
	}
	if cert != nil {
		dc = sdk.DescribeFor(ctx, cert)
	} else {
		dc = sdk.DeviceCertificate{Serial: strings.ToLower(strings.TrimLeft(ck.Serial, "0")),
			Subject: strings.TrimSpace(ck.Subject), Issuer: strings.TrimSpace(ck.Issuer), NotAfter: notAfter(ck, time.Now())}
	}
	dc.CertRef = ref
	// Only keys this plugin made are key refs; an administrator's or the appliance's own
	// (ns-server.key) is not.
	if base := strings.TrimSuffix(path.Base(ck.Key), ".key"); ck.Key == sslFile(base, ".key") && madeName.MatchString(base) {
		dc.KeyRef = base
	}
	for _, b := range st.refBindings(ref) {
		dc.Bindings = append(dc.Bindings, b.binding())
	}
	for _, h := range st.holders(ref) {
		for _, o := range st.othersOf(h) {
			dc.Bindings = append(dc.Bindings, o.binding())
		}
	}
	return dc, nil
}

// notAfterLayouts are the forms clientcertnotafter may take; its format is unconfirmed
// (reference §5), so OpenSSL's and RFC 3339 are both tried.
var notAfterLayouts = []string{"Jan _2 15:04:05 2006 MST", time.RFC3339}

// notAfter is a certkey's expiry from clientcertnotafter, else from daystoexpiration (a number
// or a numeric string) counted from now, else zero.
func notAfter(ck nitro.CertKey, now time.Time) time.Time {
	for _, layout := range notAfterLayouts {
		if t, err := time.Parse(layout, strings.Join(strings.Fields(ck.NotAfter), " ")); err == nil {
			return t
		}
	}
	if ck.DaysToExpiration.Set {
		return now.UTC().Truncate(24 * time.Hour).Add(time.Duration(ck.DaysToExpiration.Value) * 24 * time.Hour)
	}
	return time.Time{}
}
