package sdk

import (
	"time"

	devicev1 "github.com/certfleet/certfleet/proto/certfleet/device/v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func optionsToProto(o Options) (*structpb.Struct, error) {
	if len(o) == 0 {
		return nil, nil
	}
	s, err := structpb.NewStruct(o)
	if err != nil {
		return nil, InvalidArgument(ReasonInvalidRequest, "vendor options: %v", err)
	}
	return s, nil
}

func optionsFromProto(s *structpb.Struct) Options {
	if s == nil {
		return Options{}
	}
	return Options(s.AsMap())
}

func targetToProto(t Target) (*devicev1.Target, error) {
	opts, err := optionsToProto(t.Options)
	if err != nil {
		return nil, err
	}
	return &devicev1.Target{
		Name:    t.Name,
		Address: t.Address,
		Tls: &devicev1.TLSConfig{
			InsecureSkipVerify: t.TLS.InsecureSkipVerify, CaBundlePem: t.TLS.CABundlePEM, ServerName: t.TLS.ServerName,
		},
		Credentials: &devicev1.Credentials{
			Username: t.Credentials.Username, Password: t.Credentials.Password,
			ApiKey: t.Credentials.APIKey, Token: t.Credentials.Token,
		},
		Options: opts,
	}, nil
}

func targetFromProto(p *devicev1.Target) Target {
	if p == nil {
		return Target{Options: Options{}}
	}
	t := Target{Name: p.Name, Address: p.Address, Options: optionsFromProto(p.Options)}
	if p.Tls != nil {
		t.TLS = TLSConfig{InsecureSkipVerify: p.Tls.InsecureSkipVerify, CABundlePEM: p.Tls.CaBundlePem, ServerName: p.Tls.ServerName}
	}
	if p.Credentials != nil {
		t.Credentials = Credentials{
			Username: p.Credentials.Username, Password: p.Credentials.Password,
			APIKey: p.Credentials.ApiKey, Token: p.Credentials.Token,
		}
	}
	return t
}

func keySpecToProto(k KeySpec) *devicev1.KeySpec {
	return &devicev1.KeySpec{Type: devicev1.KeyType(k.Type), Bits: uint32(k.Bits)}
}

func keySpecFromProto(p *devicev1.KeySpec) KeySpec {
	if p == nil {
		return KeySpec{}
	}
	return KeySpec{Type: KeyType(p.Type), Bits: int(p.Bits)}
}

func subjectToProto(s Subject) *devicev1.Subject {
	return &devicev1.Subject{
		CommonName: s.CommonName, Organization: s.Organization, OrganizationalUnit: s.OrganizationalUnit,
		Locality: s.Locality, State: s.State, Country: s.Country, Email: s.Email,
	}
}

func subjectFromProto(p *devicev1.Subject) Subject {
	if p == nil {
		return Subject{}
	}
	return Subject{
		CommonName: p.CommonName, Organization: p.Organization, OrganizationalUnit: p.OrganizationalUnit,
		Locality: p.Locality, State: p.State, Country: p.Country, Email: p.Email,
	}
}

func sansToProto(s SANs) *devicev1.SubjectAltNames {
	return &devicev1.SubjectAltNames{DnsNames: s.DNSNames, IpAddresses: s.IPAddresses, EmailAddresses: s.EmailAddresses}
}

func sansFromProto(p *devicev1.SubjectAltNames) SANs {
	if p == nil {
		return SANs{}
	}
	return SANs{DNSNames: p.DnsNames, IPAddresses: p.IpAddresses, EmailAddresses: p.EmailAddresses}
}

func bindingsToProto(bs []Binding) ([]*devicev1.Binding, error) {
	out := make([]*devicev1.Binding, 0, len(bs))
	for _, b := range bs {
		opts, err := optionsToProto(b.Options)
		if err != nil {
			return nil, err
		}
		out = append(out, &devicev1.Binding{Kind: b.Kind, Name: b.Name, Sni: b.SNI, Options: opts})
	}
	return out, nil
}

func bindingsFromProto(ps []*devicev1.Binding) []Binding {
	out := make([]Binding, 0, len(ps))
	for _, p := range ps {
		out = append(out, Binding{Kind: p.Kind, Name: p.Name, SNI: p.Sni, Options: optionsFromProto(p.Options)})
	}
	return out
}

func optionSpecsToProto(specs []OptionSpec) []*devicev1.OptionSpec {
	out := make([]*devicev1.OptionSpec, 0, len(specs))
	for _, s := range specs {
		out = append(out, &devicev1.OptionSpec{Name: s.Name, Description: s.Description, Type: s.Type})
	}
	return out
}

func optionSpecsFromProto(ps []*devicev1.OptionSpec) []OptionSpec {
	out := make([]OptionSpec, 0, len(ps))
	for _, p := range ps {
		out = append(out, OptionSpec{Name: p.Name, Description: p.Description, Type: p.Type})
	}
	return out
}

func infoToProto(i Info) *devicev1.GetInfoResponse {
	caps := &devicev1.Capabilities{
		BindingKinds:     i.Capabilities.BindingKinds,
		NeedsCommit:      i.Capabilities.NeedsCommit,
		SupportsRollback: i.Capabilities.SupportsRollback,
		SupportsCleanup:  i.Capabilities.SupportsCleanup,
		TargetOptions:    optionSpecsToProto(i.Capabilities.TargetOptions),
		BindingOptions:   optionSpecsToProto(i.Capabilities.BindingOptions),
	}
	for _, k := range i.Capabilities.KeySpecs {
		caps.KeySpecs = append(caps.KeySpecs, keySpecToProto(k))
	}
	return &devicev1.GetInfoResponse{
		Name: i.Name, Version: i.Version, Vendor: i.Vendor, Description: i.Description,
		ContractMinorVersion: uint32(i.ContractMinorVersion), Capabilities: caps,
	}
}

func infoFromProto(p *devicev1.GetInfoResponse) Info {
	i := Info{
		Name: p.Name, Version: p.Version, Vendor: p.Vendor, Description: p.Description,
		ContractMinorVersion: int(p.ContractMinorVersion),
	}
	if c := p.Capabilities; c != nil {
		i.Capabilities = Capabilities{
			BindingKinds: c.BindingKinds, NeedsCommit: c.NeedsCommit,
			SupportsRollback: c.SupportsRollback, SupportsCleanup: c.SupportsCleanup,
			TargetOptions: optionSpecsFromProto(c.TargetOptions), BindingOptions: optionSpecsFromProto(c.BindingOptions),
		}
		for _, k := range c.KeySpecs {
			i.Capabilities.KeySpecs = append(i.Capabilities.KeySpecs, keySpecFromProto(k))
		}
	}
	return i
}

func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func timeFromProto(p *timestamppb.Timestamp) time.Time {
	if p == nil {
		return time.Time{}
	}
	return p.AsTime()
}

func deviceCertToProto(c DeviceCertificate) *devicev1.DeviceCertificate {
	// Options of reported bindings come from the device and are always representable.
	bindings, _ := bindingsToProto(c.Bindings)
	return &devicev1.DeviceCertificate{
		CertRef: c.CertRef, KeyRef: c.KeyRef, Serial: c.Serial, Subject: c.Subject, Issuer: c.Issuer,
		Sans: sansToProto(c.SANs), NotBefore: timeToProto(c.NotBefore), NotAfter: timeToProto(c.NotAfter),
		KeySpec: keySpecToProto(c.KeySpec), Sha256Fingerprint: c.SHA256Fingerprint, Bindings: bindings,
		IsCa: c.IsCA, CertPem: c.CertPEM,
	}
}

func deviceCertFromProto(p *devicev1.DeviceCertificate) DeviceCertificate {
	return DeviceCertificate{
		CertRef: p.CertRef, KeyRef: p.KeyRef, Serial: p.Serial, Subject: p.Subject, Issuer: p.Issuer,
		SANs: sansFromProto(p.Sans), NotBefore: timeFromProto(p.NotBefore), NotAfter: timeFromProto(p.NotAfter),
		KeySpec: keySpecFromProto(p.KeySpec), SHA256Fingerprint: p.Sha256Fingerprint,
		Bindings: bindingsFromProto(p.Bindings), IsCA: p.IsCa, CertPEM: p.CertPem,
	}
}
