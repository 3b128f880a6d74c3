package migrate

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Spellings of the Citrix agent's parameters. The manual's table lost its parameter column; the
// names below are those its example and prose use, plus the plausible ones where it is silent
// (reported as accepted spellings in the package README).
var (
	citrixList     = []string{"host", "common_name", "virtual_servers", "vservers"}
	citrixSANs     = []string{"subject_alt_names", "sans", "san", "alt_names", "additional_domains", "domains", "subject_alternative_names"}
	citrixVservers = []string{"virtual_servers", "vservers", "vserver", "servers", "virtualservers"}
	scmMarkers     = []string{"client_id", "client_secret"}
)

var citrixKnown = map[string]bool{"common_name": true, "key_type": true, "key_size": true, "expiry_window": true, "enrollment_profile": true,
	"protocol": true, "host": true, "port": true, "verify_ssl": true, "username": true, "password": true}

func (m *migration) citrix(sources []*source) error {
	creds := map[string]entry{}
	var credSrc = map[string]*source{}
	var profiles []*source
	for _, s := range sources {
		switch {
		case len(accounts(s.doc, scmMarkers...)) > 0:
			m.scmAccounts(s, "url", "client_id", "client_secret", "")
		case isCredentialsFile(s.doc):
			_, path, list := listOf(s.doc, "password")
			for i, it := range list {
				h := str(get(it, "host"))
				creds[strings.ToLower(h)] = entry{label: h, path: append(append([]any{}, path...), i), node: it}
				credSrc[strings.ToLower(h)] = s
			}
			m.mapped(s, "host/username/password", "devices.<host>.credentials (the credentials file, per host)")
		default:
			profiles = append(profiles, s)
		}
	}
	for _, s := range profiles {
		if err := m.citrixProfile(s, creds, credSrc); err != nil {
			return err
		}
	}
	if len(m.cfg.Certificates) > 0 {
		// NITRO's sslcertreq requires countryname, statename and organizationname; the agent's
		// profiles carry only names, so its CSRs got them elsewhere.
		m.report.Decisions = append(m.report.Decisions, Line{Source: "(every certificate profile)", Target: "defaults.subject",
			Note: "a Citrix ADC makes CSRs only with country, state and organization, which the agent's profiles do not hold: add subject: {organization: ..., state: ..., country: ..} under defaults: before the first renewal; adoption does not compare them"})
	}
	return nil
}

// isCredentialsFile: a list of {host, username, password} with no certificate fields.
func isCredentialsFile(doc *yaml.Node) bool {
	_, _, list := listOf(doc, "password")
	if len(list) == 0 {
		return false
	}
	for _, it := range list {
		if k, _ := pick(it, "common_name", "key_type", "virtual_servers", "vservers"); k != "" {
			return false
		}
	}
	return get(doc, "version") == nil
}

// scmAccounts maps scm.yaml (url/client_id/client_secret per account) or sectigo_credentials.yaml
// (sectigo_cm_user_id/sectigo_cm_user_secret per label, URL from config.yaml) to REST Enrollment
// issuers, one per account, named by the account's label.
func (m *migration) scmAccounts(s *source, urlKey, idKey, secretKey, baseURL string) {
	for _, a := range accounts(s.doc, idKey, secretKey) {
		label := name(a.label)
		iss := &Issuer{Type: "scm", SCM: &SCM{API: "enrollment", BaseURL: baseURL}}
		if u := str(get(a.node, urlKey)); urlKey != "" && u != "" {
			iss.SCM.BaseURL = strings.TrimRight(u, "/")
			m.mapped(s, pathString(append(a.path, urlKey)), "issuers."+label+".scm.base_url")
		}
		if iss.SCM.BaseURL == "" {
			iss.SCM.BaseURL = "https://CUSTOMER.enroll.enterprise.sectigo.com"
			m.decide(s, pathString(a.path), "issuers."+label+".scm.base_url", "no SCM URL found: set the URL SCM shows under Enrollment → REST → SSL Certificates REST API")
		}
		// Not in the manuals: an SSO token endpoint other than Sectigo's default (private or
		// regional instances); accepted under these spellings.
		if k, t := pick(a.node, "token_url", "auth_url", "oauth_url"); k != "" && str(t) != "" {
			iss.SCM.TokenURL = str(t)
			m.mapped(s, pathString(append(a.path, k)), "issuers."+label+".scm.token_url")
		}
		// The client id is no secret, but it stays encrypted when the agent encrypted it.
		if raw := rawAt(s.raw, append(a.path, idKey)); isEncrypted(raw) {
			m.secretAt(s, append(a.path, idKey), label, "client_id", &iss.SCM.ClientID)
		} else {
			iss.SCM.ClientID = str(get(a.node, idKey))
			m.mapped(s, pathString(append(a.path, idKey)), "issuers."+label+".scm.client_id")
		}
		m.secretAt(s, append(a.path, secretKey), label, "client_secret", &iss.SCM.ClientSecret)
		m.cfg.Issuers[label] = iss
		m.unknownKeys(s, a.node, pathString(a.path)+".", map[string]bool{urlKey: true, idKey: true, secretKey: true, "name": true, "label": true, "token_url": true, "auth_url": true, "oauth_url": true})
	}
}

func (m *migration) citrixProfile(s *source, creds map[string]entry, credSrc map[string]*source) error {
	if v := str(get(s.doc, "version")); v != "" && v != "v1" {
		return fmt.Errorf("%s: version %q: the Citrix agent's certificate profiles are version v1", s.path, v)
	}
	listKey, listPath, list := listOf(s.doc, citrixList...)
	if len(list) == 0 {
		m.none(s, "(whole file)", "no certificate entries (host, common_name, virtual servers) found; not migrated")
		return nil
	}
	if get(s.doc, "version") != nil {
		m.mapped(s, "version", "version: v1")
	}
	for i, e := range list {
		p := func(k string) string { return fmt.Sprintf("%s[%d].%s", listKey, i, k) }
		cname := name(s.base)
		if len(list) > 1 {
			cname = fmt.Sprintf("%s-%d", cname, i+1)
		}
		host := str(get(e, "host"))
		if host == "" {
			return fmt.Errorf("%s: %s is missing: the Citrix ADC's address", s.path, p("host"))
		}
		dname := name(host)
		c := &Certificate{Device: dname, Issuer: "default"}
		if prof := str(get(e, "enrollment_profile")); prof != "" {
			c.Issuer = name(prof)
			m.mapped(s, p("enrollment_profile"), "certificates."+cname+".issuer")
		}
		cn := str(get(e, "common_name"))
		sk, sanNode := pick(e, citrixSANs...)
		if cn == "" {
			return fmt.Errorf("%s: %s is missing: the certificate's fully-qualified domain name", s.path, p("common_name"))
		}
		c.Subject = &Subject{CommonName: cn}
		c.SANs = sans(cn, list_(sanNode))
		m.mapped(s, p("common_name"), "certificates."+cname+".subject.common_name and sans.dns")
		if sk != "" {
			m.mapped(s, p(sk), "certificates."+cname+".sans")
		}
		key, err := keySpec(str(get(e, "key_type")), str(get(e, "key_size")))
		if err != nil {
			return fmt.Errorf("%s: %s: %w", s.path, p("key_type/key_size"), err)
		}
		c.Key = key
		m.mapped(s, p("key_type")+", key_size", fmt.Sprintf("certificates.%s.key {type: %s, bits: %d}", cname, key.Type, key.Bits))
		c.RenewBefore = days(30)
		if w := str(get(e, "expiry_window")); w != "" {
			n, ok := atoi(w)
			if !ok || n <= 0 {
				return fmt.Errorf("%s: %s %q: a number of days", s.path, p("expiry_window"), w)
			}
			c.RenewBefore = days(n)
			m.mapped(s, p("expiry_window"), "certificates."+cname+".renew_before: "+c.RenewBefore)
		}
		vk, vs := pick(e, citrixVservers...)
		for j, v := range items(vs) {
			vname := str(get(v, "name"))
			if vname == "" {
				vname = str(v)
			}
			b := Binding{Kind: "lb-vserver", Name: vname}
			if sni, ok := yesNo(str(get(v, "sni"))); ok && sni {
				b.SNI = true
			}
			c.Bindings = append(c.Bindings, b)
			m.mapped(s, fmt.Sprintf("%s[%d].name, sni", p(vk), j), fmt.Sprintf("certificates.%s.bindings[%d] {kind: lb-vserver, sni: %t}", cname, j, b.SNI))
		}
		if len(c.Bindings) == 0 {
			return fmt.Errorf("%s: %s: no virtual servers listed; the agent needs at least one", s.path, p("virtual_servers"))
		}
		m.decide(s, p(vk), "certificates."+cname+".bindings[].kind", "the agent does not say the kind of virtual server: migrate wrote lb-vserver; use gateway-vserver for a Citrix Gateway (vpn) vserver, cs-vserver for content switching (`certfleet inventory "+dname+"` shows where each certificate is bound)")
		if err := m.citrixDevice(s, e, p, dname, host, creds, credSrc); err != nil {
			return err
		}
		m.cfg.Certificates[cname] = c
		m.unknownKeys(s, e, fmt.Sprintf("%s[%d].", listKey, i), mergeKnown(citrixKnown, citrixSANs, citrixVservers))
		_ = listPath
	}
	return nil
}

func list_(n *yaml.Node) []string { return list(n) }

func mergeKnown(base map[string]bool, more ...[]string) map[string]bool {
	out := map[string]bool{}
	for k := range base {
		out[k] = true
	}
	for _, l := range more {
		for _, k := range l {
			out[k] = true
		}
	}
	return out
}

// citrixDevice maps protocol/host/port/verify_ssl/username/password (or the credentials file's
// entry for the host) onto a citrix-nitro device; profiles naming the same host share it.
func (m *migration) citrixDevice(s *source, e *yaml.Node, p func(string) string, dname, host string, creds map[string]entry, credSrc map[string]*source) error {
	if _, done := m.cfg.Devices[dname]; done {
		return nil
	}
	proto := strings.ToLower(str(get(e, "protocol")))
	if proto == "" {
		proto = "http" // the agent's default; the decision below says so
	} else if proto != "http" && proto != "https" {
		return fmt.Errorf("%s: %s %q: use http or https", s.path, p("protocol"), proto)
	}
	port := 0
	if ps := str(get(e, "port")); ps != "" {
		n, ok := atoi(ps)
		if !ok {
			return fmt.Errorf("%s: %s %q: a port number", s.path, p("port"), ps)
		}
		port = n
		m.mapped(s, p("port"), "devices."+dname+".address")
	}
	d := &Device{Plugin: "citrix-nitro", Address: address(proto, host, port)}
	m.mapped(s, p("host"), "devices."+dname+".address ("+d.Address+")")
	if proto == "http" {
		d.AllowPlainHTTP = true
		m.mapped(s, p("protocol")+": http", "devices."+dname+".allow_plain_http: true")
		m.decide(s, p("protocol"), "devices."+dname+".allow_plain_http", "plain http (the agent's default when protocol is not set) was kept so nothing changes, but the NITRO password crosses the network in the clear: change the address to https:// and remove allow_plain_http")
	} else {
		m.mapped(s, p("protocol"), "devices."+dname+".address")
	}
	m.verifySSL(s, e, p("verify_ssl"), dname, d, proto)
	d.Credentials = map[string]*string{}
	if u := str(get(e, "username")); u != "" {
		d.Credentials["username"] = &u
		m.mapped(s, p("username"), "devices."+dname+".credentials.username")
		pw := new(string)
		if m.secretAt(s, pathOf(s, e, "password"), dname, "password", pw) {
			d.Credentials["password"] = pw
		}
	} else if ce, ok := creds[strings.ToLower(host)]; ok {
		cs := credSrc[strings.ToLower(host)]
		u := str(get(ce.node, "username"))
		d.Credentials["username"] = &u
		pw := new(string)
		if m.secretAt(cs, append(ce.path, "password"), dname, "password", pw) {
			d.Credentials["password"] = pw
		}
	} else {
		m.decide(s, p("username"), "devices."+dname+".credentials", "no username/password for "+host+" in the profile or a credentials file: add them, or run certfleet with --credentials FILE")
		d.Credentials = nil
	}
	m.cfg.Devices[dname] = d
	return nil
}

// verifySSL maps verify_ssl: yes (verify), no (the agent's default: no verification), or the path
// of a CA bundle.
func (m *migration) verifySSL(s *source, e *yaml.Node, param, dname string, d *Device, proto string) {
	v := str(get(e, "verify_ssl"))
	if proto == "http" {
		if v != "" {
			m.none(s, param, "has no effect with protocol http (as in the agent)")
		}
		return
	}
	yes, isBool := yesNo(v)
	switch {
	case v == "":
		m.decide(s, param, "devices."+dname+".tls", "the agent's default is not to verify the management certificate; certfleet verifies it: if the appliance's certificate is self-signed or from a private CA, set tls.ca_bundle")
	case isBool && yes:
		m.mapped(s, param+": yes", "devices."+dname+" (verification is on by default)")
	case isBool:
		d.TLS = &TLS{InsecureSkipVerify: true}
		m.mapped(s, param+": no", "devices."+dname+".tls.insecure_skip_verify: true")
		m.decide(s, param, "devices."+dname+".tls", "verification of the management certificate stays off as in the agent: set tls.ca_bundle and remove insecure_skip_verify")
	default:
		d.TLS = &TLS{CABundle: v}
		m.mapped(s, param+": "+v, "devices."+dname+".tls.ca_bundle")
		if _, err := os.Stat(v); err != nil {
			m.decide(s, param, "devices."+dname+".tls.ca_bundle", v+" is not on this machine: copy the CA bundle here, or change the path")
		}
	}
}

// pathOf finds the path of a mapping node's key from the document root (for secret references).
func pathOf(s *source, parent *yaml.Node, key string) []any {
	var found []any
	var walk func(n *yaml.Node, path []any) bool
	walk = func(n *yaml.Node, path []any) bool {
		if n == parent {
			found = append(path, key)
			return true
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if walk(n.Content[i+1], append(append([]any{}, path...), n.Content[i].Value)) {
					return true
				}
			}
		case yaml.SequenceNode:
			for i, it := range n.Content {
				if walk(it, append(append([]any{}, path...), i)) {
					return true
				}
			}
		}
		return false
	}
	walk(s.doc, nil)
	return found
}
