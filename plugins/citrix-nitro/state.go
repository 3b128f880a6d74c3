package citrixnitro

import (
	"context"
	"path"
	"strings"
	"time"

	"github.com/certfleet/certfleet/plugins/citrix-nitro/nitro"
	"github.com/certfleet/certfleet/plugins/sdk"
)

// bound is one certkey binding on an SSL vserver.
type bound struct {
	Kind    string // KindLB or KindGateway
	VServer string
	CertKey string
	SNI     bool
}

// deviceState is what the appliance holds: certkeys, SSL vservers and their bindings.
type deviceState struct {
	certkeys map[string]nitro.CertKey
	order    []string
	vservers map[string]map[string]nitro.VServer // kind -> name -> vserver
	bindings []bound
}

// readState lists certkeys, lb/vpn vservers and the bindings of each SSL one.
func (s *session) readState(ctx context.Context) (*deviceState, error) {
	st := &deviceState{certkeys: map[string]nitro.CertKey{}, vservers: map[string]map[string]nitro.VServer{}}
	cks, err := s.c.CertKeys(ctx)
	if err != nil {
		return nil, s.fail(ctx, "list certkeys", err)
	}
	for _, ck := range cks {
		st.certkeys[ck.CertKey] = ck
		st.order = append(st.order, ck.CertKey)
	}
	for _, kind := range []string{KindLB, KindGateway} {
		vs, err := s.c.VServers(ctx, nitroType[kind])
		if err != nil {
			return nil, s.fail(ctx, "list "+nitroType[kind], err)
		}
		st.vservers[kind] = map[string]nitro.VServer{}
		for _, v := range vs {
			st.vservers[kind][v.Name] = v
			if !strings.EqualFold(v.ServiceType, "SSL") {
				continue
			}
			bs, err := s.c.Bindings(ctx, v.Name)
			if err != nil {
				return nil, s.fail(ctx, "list certificate bindings of "+v.Name, err)
			}
			for _, b := range bs {
				if !bool(b.CA) {
					st.bindings = append(st.bindings, bound{Kind: kind, VServer: v.Name, CertKey: b.CertKeyName, SNI: bool(b.SNICert)})
				}
			}
		}
	}
	return st, nil
}

// owner is the certkey whose certificate another certkey carries: a certkey updated in place by
// Bind (a "slot") points at <owner>.crt, and its bindings count as the owner's.
func (st *deviceState) owner(name string) string {
	ck, ok := st.certkeys[name]
	if !ok {
		return name
	}
	base := strings.TrimSuffix(path.Base(ck.Cert), ".crt")
	if base != name {
		if o, ok := st.certkeys[base]; ok && o.Cert == ck.Cert {
			return base
		}
	}
	return name
}

// bindingsOf lists the bindings that serve cert ref name, directly or through a slot.
func (st *deviceState) bindingsOf(name string) []bound {
	var out []bound
	for _, b := range st.bindings {
		if st.owner(b.CertKey) == name {
			out = append(out, b)
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

func (b bound) binding() sdk.Binding { return sdk.Binding{Kind: b.Kind, Name: b.VServer, SNI: b.SNI} }

// Inventory lists every certkey (slots under the certkey whose certificate they carry) with the
// certificate parsed from its file and its vserver bindings.
func (*Plugin) Inventory(ctx context.Context, t sdk.Target) ([]sdk.DeviceCertificate, error) {
	var out []sdk.DeviceCertificate
	err := withSession(ctx, t, func(s *session) error {
		st, err := s.readState(ctx)
		if err != nil {
			return err
		}
		for _, name := range st.order {
			if st.owner(name) != name {
				continue
			}
			ck := st.certkeys[name]
			dc := sdk.DeviceCertificate{Serial: strings.ToLower(strings.TrimLeft(ck.Serial, "0")), Subject: strings.TrimSpace(ck.Subject), Issuer: strings.TrimSpace(ck.Issuer)}
			data, found, err := s.c.Download(ctx, ck.Cert)
			if err != nil && !nitro.IsCode(err, nitro.CodeResourceMissing) {
				return s.fail(ctx, "read certificate file "+ck.Cert, err)
			}
			if found {
				if c, perr := sdk.ParseCertificatePEM(string(data)); perr == nil {
					dc = sdk.Describe(c)
				}
			}
			if dc.NotAfter.IsZero() && ck.DaysToExpiration.Set {
				// The file is gone or unreadable: daystoexpiration (number or string) is all there is.
				dc.NotAfter = time.Now().Truncate(24 * time.Hour).Add(time.Duration(ck.DaysToExpiration.Value) * 24 * time.Hour)
			}
			dc.CertRef = name
			if ck.Key != "" && path.Dir(ck.Key) == nitro.SSLDir {
				dc.KeyRef = strings.TrimSuffix(path.Base(ck.Key), ".key")
			}
			for _, b := range st.bindingsOf(name) {
				dc.Bindings = append(dc.Bindings, b.binding())
			}
			out = append(out, dc)
		}
		return nil
	})
	return out, err
}
