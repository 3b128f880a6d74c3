package migrate

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// The F5 agent's manual names no parameter; these spellings are the ones its prose implies
// (host and credentials, common name, key type/size, virtual servers, the Sectigo ACME server and
// its EAB account), flat or grouped under f5:/acme:/certificate: blocks.
var (
	f5Host     = []string{"host", "f5_host", "address", "ip", "ip_address", "f5_ip"}
	f5User     = []string{"username", "user", "f5_username"}
	f5Pass     = []string{"password", "f5_password"}
	f5CN       = []string{"common_name", "cn", "domain"}
	f5SANs     = []string{"subject_alt_names", "sans", "san", "alt_names", "domains", "additional_domains"}
	f5VS       = []string{"virtual_servers", "vservers", "virtual_server", "virtuals"}
	f5Profile  = []string{"client_ssl_profile", "ssl_profile", "profile"}
	f5Dir      = []string{"acme_server", "acme_url", "acme_directory", "directory_url", "server"}
	f5KID      = []string{"eab_kid", "eab_key_id", "acme_eab_kid", "kid", "key_id"}
	f5HMAC     = []string{"eab_hmac_key", "eab_hmac", "acme_eab_hmac_key", "hmac_key", "hmac"}
	f5Email    = []string{"email", "acme_email", "contact", "account_email"}
	f5Window   = []string{"expiry_window", "renew_before_days", "renewal_days"}
	f5Blocks   = []string{"f5", "bigip", "acme", "certificate", "cert"}
	f5Partitin = []string{"partition"}
)

func (m *migration) f5(sources []*source) error {
	for _, s := range sources {
		if k, _ := pick(s.doc, "status"); k != "" && len(keys(s.doc)) == 1 {
			m.none(s, "(status file)", "certfleet records deployments in its state database")
			continue
		}
		if err := m.f5File(s); err != nil {
			return err
		}
	}
	return nil
}

// f5Get finds a parameter at the top or in one of the blocks, with its path.
func f5Get(doc *yaml.Node, spellings []string) (string, []any, *yaml.Node) {
	if k, n := pick(doc, spellings...); k != "" {
		return k, []any{k}, n
	}
	for _, b := range f5Blocks {
		if bn := get(doc, b); bn != nil {
			if k, n := pick(bn, spellings...); k != "" {
				return b + "." + k, []any{b, k}, n
			}
		}
	}
	return "", nil, nil
}

func (m *migration) f5File(s *source) error {
	cname := name(s.base)
	hk, _, hn := f5Get(s.doc, f5Host)
	host := str(hn)
	if host == "" {
		m.none(s, "(whole file)", "no F5 host in it; not an F5 agent certificate file; not migrated")
		return nil
	}
	dname := name(host)
	d := m.cfg.Devices[dname]
	if d == nil {
		d = &Device{Plugin: "f5-bigip", Address: address("https", host, 0), Options: map[string]any{"pci_mode": true}}
		m.mapped(s, hk, "devices."+dname+".address")
		if uk, _, un := f5Get(s.doc, f5User); uk != "" {
			u := str(un)
			d.Credentials = map[string]*string{"username": &u}
			m.mapped(s, uk, "devices."+dname+".credentials.username")
			if pk, pp, _ := f5Get(s.doc, f5Pass); pk != "" {
				pw := new(string)
				if m.secretAt(s, pp, dname, "password", pw) {
					d.Credentials["password"] = pw
				}
			}
		} else {
			m.decide(s, "username/password", "devices."+dname+".credentials", "no F5 login in the file (the agent's separate credential file): add it, or run certfleet with --credentials FILE")
		}
		// PCI mode (agent 2.0): keys made on the BIG-IP under a random passphrase kept only on the
		// device, as the f5-bigip plugin does by default.
		m.mapped(s, "(PCI-compliant keys, agent 2.0)", "devices."+dname+".options.pci_mode: true (random key passphrase, never stored)")
		if pk, _, pn := f5Get(s.doc, f5Partitin); pk != "" {
			d.Options["partition"] = str(pn)
			m.mapped(s, pk, "devices."+dname+".options.partition")
		}
		if vk, _, vn := f5Get(s.doc, []string{"verify_ssl"}); vk != "" {
			m.verifySSL(s, &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "verify_ssl"}, vn}}, vk, dname, d, "https")
		} else {
			m.decide(s, "verify_ssl", "devices."+dname+".tls", "certfleet verifies the BIG-IP's management certificate: if it is self-signed, set tls.ca_bundle")
		}
		m.cfg.Devices[dname] = d
	}
	// The ACME account: one issuer per directory and EAB key id.
	dk, _, dn := f5Get(s.doc, f5Dir)
	kk, _, kn := f5Get(s.doc, f5KID)
	iname := "sectigo-acme"
	if str(kn) != "" {
		iname = name("acme-" + str(kn))
	}
	if _, ok := m.cfg.Issuers[iname]; !ok {
		dir := str(dn)
		if dir == "" {
			dir = "https://acme.sectigo.com/v2/OV"
			m.decide(s, "acme server", "issuers."+iname+".acme.directory_url", "no ACME server in the file (the agent took it from the environment): migrate wrote Sectigo's OV directory; check it (DV, EV and private ACME have their own URLs)")
		} else {
			m.mapped(s, dk, "issuers."+iname+".acme.directory_url")
		}
		acme := &ACME{DirectoryURL: dir}
		if hk, hp, _ := f5Get(s.doc, f5HMAC); str(kn) != "" && hk != "" {
			acme.EAB = &EAB{KeyID: str(kn)}
			m.mapped(s, kk, "issuers."+iname+".acme.eab.key_id")
			m.secretAt(s, hp, iname, "eab_hmac_key", &acme.EAB.HMACKey)
		} else {
			m.decide(s, "EAB", "issuers."+iname+".acme.eab", "no EAB key id / HMAC key in the file (the agent took them from the environment): add eab: {key_id, hmac_key: ${env:...}} from the Sectigo ACME account")
		}
		if ek, _, en := f5Get(s.doc, f5Email); ek != "" {
			acme.Contact = str(en)
			m.mapped(s, ek, "issuers."+iname+".acme.contact")
		}
		m.cfg.Issuers[iname] = &Issuer{Type: "acme", ACME: acme}
	}
	c := &Certificate{Device: dname, Issuer: iname, RenewBefore: days(30)}
	ck, _, cn := f5Get(s.doc, f5CN)
	sk, _, sn := f5Get(s.doc, f5SANs)
	c.SANs = sans(str(cn), list(sn))
	if c.SANs == nil {
		return fmt.Errorf("%s: no common_name or SANs: the certificate needs a name", s.path)
	}
	if str(cn) != "" {
		c.Subject = &Subject{CommonName: str(cn)}
		m.mapped(s, ck, "certificates."+cname+".subject.common_name and sans.dns")
	}
	if sk != "" {
		m.mapped(s, sk, "certificates."+cname+".sans")
	}
	tk, _, tn := f5Get(s.doc, []string{"key_type"})
	zk, _, zn := f5Get(s.doc, []string{"key_size"})
	key, err := keySpec(str(tn), str(zn))
	if err != nil {
		return fmt.Errorf("%s: key_type/key_size: %w", s.path, err)
	}
	c.Key = key
	if tk != "" || zk != "" {
		m.mapped(s, "key_type, key_size", fmt.Sprintf("certificates.%s.key {type: %s, bits: %d}", cname, key.Type, key.Bits))
	}
	if wk, _, wn := f5Get(s.doc, f5Window); wk != "" {
		n, ok := atoi(str(wn))
		if !ok || n <= 0 {
			return fmt.Errorf("%s: %s %q: a number of days", s.path, wk, str(wn))
		}
		c.RenewBefore = days(n)
		m.mapped(s, wk, "certificates."+cname+".renew_before: "+c.RenewBefore)
	}
	pk, _, pn := f5Get(s.doc, f5Profile)
	if pk != "" {
		m.mapped(s, pk, "certificates."+cname+".bindings[].options.profile (the client-ssl profile certfleet keeps for each virtual)")
	}
	vk, _, vn := f5Get(s.doc, f5VS)
	for _, v := range list(vn) {
		b := Binding{Kind: "virtual", Name: v}
		if p := str(pn); p != "" {
			b.Options = map[string]any{"profile": p}
		}
		c.Bindings = append(c.Bindings, b)
	}
	if len(c.Bindings) == 0 {
		return fmt.Errorf("%s: no virtual servers listed (virtual_servers): the agent enables SSL on them", s.path)
	}
	m.mapped(s, vk, "certificates."+cname+".bindings {kind: virtual} (certfleet keeps a client-ssl profile per virtual)")
	m.cfg.Certificates[cname] = c
	known := mergeKnown(map[string]bool{"key_type": true, "key_size": true, "verify_ssl": true}, f5Host, f5User, f5Pass, f5CN, f5SANs, f5VS, f5Profile, f5Dir, f5KID, f5HMAC, f5Email, f5Window, f5Blocks, f5Partitin)
	m.unknownKeys(s, s.doc, "", known)
	for _, b := range f5Blocks {
		m.unknownKeys(s, get(s.doc, b), b+".", known)
	}
	return nil
}
