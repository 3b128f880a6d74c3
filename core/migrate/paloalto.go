package migrate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The Palo Alto agent's certificate profile parameters. Where the manual's table lost a name
// (requester, SANs), the plausible spellings are accepted.
var (
	paRequester = []string{"sectigo_ssl_cert_external_requester", "sectigo_ssl_cert_requester", "sectigo_external_requester", "sectigo_csr_external_requester"}
	paSANs      = []string{"sectigo_ssl_cert_subject_alt_names", "sectigo_csr_subject_alt_names", "sectigo_ssl_cert_sans", "sectigo_csr_sans", "sectigo_subject_alt_names", "sectigo_csr_san"}
	paLogSize   = []string{"sectigo_log_size_mb", "sectigo_logger_size_mb"}
	paLogCount  = []string{"sectigo_logger_count", "sectigo_log_count"}
)

func (m *migration) paloalto(sources []*source) error {
	byBase := map[string]*source{}
	var config, creds *source
	var profiles, firewalls []*source
	for _, s := range sources {
		byBase[s.base] = s
	}
	for _, s := range sources {
		switch {
		case get(s.doc, "sectigo_scm_url") != nil || get(s.doc, "cert_profile_path") != nil:
			config = s
		case len(accounts(s.doc, "sectigo_cm_user_id", "sectigo_cm_user_secret")) > 0:
			creds = s
		case get(s.doc, "paloalto_url") != nil || get(s.doc, "paloalto_api_key") != nil:
			firewalls = append(firewalls, s)
		case get(s.doc, "paloalto_fw_profile") != nil:
			profiles = append(profiles, s)
		default:
			m.none(s, "(whole file)", "not a Palo Alto agent file (config.yaml, certificate profile, fw_* profile or sectigo_credentials.yaml); not migrated")
		}
	}
	baseURL, delay := "", ""
	if config != nil {
		baseURL, delay = m.paConfig(config)
		// The agent reads its profiles from cert_profile_path: read them too when they were not named.
		if dir := str(get(config.doc, "cert_profile_path")); dir != "" && len(profiles)+len(firewalls) == 0 {
			if st, err := os.Stat(dir); err == nil && st.IsDir() {
				more, err := expand([]string{dir})
				if err != nil {
					return err
				}
				var extra []*source
				for _, f := range more {
					s, err := m.read(f)
					if err != nil {
						return err
					}
					extra = append(extra, s)
				}
				return m.paloalto(append(sources, extra...))
			}
		}
	}
	if creds != nil {
		m.scmAccounts(creds, "", "sectigo_cm_user_id", "sectigo_cm_user_secret", strings.TrimRight(baseURL, "/"))
		for _, iss := range m.cfg.Issuers {
			iss.SCM.InitialDelay = delay
		}
	} else {
		m.report.Decisions = append(m.report.Decisions, Line{Source: "sectigo_credentials.yaml", Note: "not among the inputs: the certificates' issuers are undefined until it is migrated too"})
	}
	for _, fw := range firewalls {
		m.paFirewall(fw)
	}
	for _, s := range profiles {
		if err := m.paProfile(s); err != nil {
			return err
		}
	}
	return nil
}

func (m *migration) paConfig(s *source) (baseURL, delay string) {
	for _, k := range keys(s.doc) {
		v := str(get(s.doc, k))
		switch lk := strings.ToLower(k); {
		case lk == "sectigo_scm_url":
			baseURL = v
			m.mapped(s, k, "issuers.*.scm.base_url (api: enrollment)")
		case lk == "sectigo_log_level":
			m.cfg.Logging = &Logging{Level: strings.ToLower(v)}
			m.mapped(s, k, "logging.level: "+strings.ToLower(v))
		case lk == "sectigo_sleep_download":
			if n, ok := atoi(v); ok && n > 0 {
				delay = fmt.Sprintf("%ds", n)
				m.mapped(s, k, "issuers.*.scm.initial_delay: "+delay)
			}
		case lk == "cert_profile_path":
			m.mapped(s, k, "read by migrate (the profiles become certificates:, devices: and issuers:)")
		case lk == "sectigo_log_file" || lk == "sectigo_log_path" || contains(paLogSize, lk) || contains(paLogCount, lk):
			m.none(s, k, "certfleet logs to stderr (journald/cron mail); use logrotate or the service manager for files")
		case lk == "sectigo_encrypt_credentials":
			m.none(s, k, "certfleet never holds secrets in plain: they are ${sops:...} references, always")
		case lk == "sectigo_gnu_key":
			if v != "" && !contains(m.opts.PGPFingerprints, v) {
				m.opts.PGPFingerprints = append(m.opts.PGPFingerprints, v)
			}
			m.mapped(s, k, "recipient of secrets that were plain in the agent's files")
		default:
			m.none(s, k, "not a parameter the agent's manual lists; not migrated")
		}
	}
	return baseURL, delay
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func (m *migration) paFirewall(s *source) {
	dname := name(strings.TrimPrefix(s.base, "fw_"))
	d := &Device{Plugin: "paloalto-panos", Address: address("https", str(get(s.doc, "paloalto_url")), 0)}
	m.mapped(s, "paloalto_url", "devices."+dname+".address")
	key := new(string)
	if m.secretAt(s, []any{"paloalto_api_key"}, dname, "api_key", key) {
		d.Credentials = map[string]*string{"api_key": key}
	}
	if u := str(get(s.doc, "paloalto_commit_user")); u != "" {
		d.Options = map[string]any{"commit_admin": u}
		m.mapped(s, "paloalto_commit_user", "devices."+dname+".options.commit_admin (a partial commit of that administrator's changes)")
	}
	if get(s.doc, "paloalto_commit_description") != nil {
		m.none(s, "paloalto_commit_description", `certfleet describes each commit itself ("certfleet: <certificates>")`)
	}
	m.unknownKeys(s, s.doc, "", map[string]bool{"paloalto_url": true, "paloalto_api_key": true, "paloalto_commit_user": true, "paloalto_commit_description": true})
	m.cfg.Devices[dname] = d
	m.fwNames[s.base] = dname
}

func (m *migration) paProfile(s *source) error {
	cname := name(s.base)
	fw := str(get(s.doc, "paloalto_fw_profile"))
	dname, ok := m.fwNames[strings.TrimSuffix(filepath.Base(fw), filepath.Ext(fw))]
	if !ok {
		dname = name(strings.TrimPrefix(fw, "fw_"))
		m.decide(s, "paloalto_fw_profile", "certificates."+cname+".device", "firewall profile "+fw+" is not among the inputs: migrate it too")
	}
	m.mapped(s, "paloalto_fw_profile", "certificates."+cname+".device: "+dname)
	c := &Certificate{Device: dname, Issuer: name(str(get(s.doc, "scm_credential_detail"))), IssuerOptions: map[string]any{}}
	m.mapped(s, "scm_credential_detail", "certificates."+cname+".issuer")
	cn := str(get(s.doc, "sectigo_csr_domain"))
	sk, sanNode := pick(s.doc, paSANs...)
	c.SANs = sans(cn, list(sanNode))
	if cn == "" && c.SANs == nil {
		return fmt.Errorf("%s: sectigo_csr_domain is empty and no SANs are listed: the certificate needs a name", s.path)
	}
	c.Subject = &Subject{CommonName: cn, Country: str(get(s.doc, "sectigo_csr_country")), State: str(get(s.doc, "sectigo_csr_state")),
		Locality: str(get(s.doc, "sectigo_csr_location")), Organization: str(get(s.doc, "sectigo_csr_organization")), Email: str(get(s.doc, "sectigo_csr_email_address"))}
	for k, t := range map[string]string{"sectigo_csr_domain": "subject.common_name and sans.dns", "sectigo_csr_country": "subject.country", "sectigo_csr_state": "subject.state",
		"sectigo_csr_location": "subject.locality", "sectigo_csr_organization": "subject.organization", "sectigo_csr_email_address": "subject.email"} {
		if get(s.doc, k) != nil {
			m.mapped(s, k, "certificates."+cname+"."+t)
		}
	}
	if sk != "" {
		m.mapped(s, sk, "certificates."+cname+".sans")
	}
	key, err := keySpec(str(get(s.doc, "sectigo_csr_key_type")), str(get(s.doc, "sectigo_csr_key_size")))
	if err != nil {
		return fmt.Errorf("%s: sectigo_csr_key_type/sectigo_csr_key_size: %w", s.path, err)
	}
	c.Key = key
	m.mapped(s, "sectigo_csr_key_type, sectigo_csr_key_size", fmt.Sprintf("certificates.%s.key {type: %s, bits: %d}", cname, key.Type, key.Bits))
	c.RenewBefore = days(30)
	if w := str(get(s.doc, "sectigo_expiry_window")); w != "" {
		n, ok := atoi(w)
		if !ok || n <= 0 {
			return fmt.Errorf("%s: sectigo_expiry_window %q: a number of days", s.path, w)
		}
		c.RenewBefore = days(n)
		m.mapped(s, "sectigo_expiry_window", "certificates."+cname+".renew_before: "+c.RenewBefore)
	}
	if v := str(get(s.doc, "sectigo_ssl_cert_comments")); v != "" {
		c.IssuerOptions["comments"] = v
		m.mapped(s, "sectigo_ssl_cert_comments", "certificates."+cname+".issuer_options.comments")
	}
	if rk, rn := pick(s.doc, paRequester...); rk != "" && str(rn) != "" {
		c.IssuerOptions["external_requester"] = str(rn)
		m.mapped(s, rk, "certificates."+cname+".issuer_options.external_requester")
	}
	if len(c.IssuerOptions) == 0 {
		c.IssuerOptions = nil
	}
	if t := str(get(s.doc, "sectigo_ssl_cert_type")); t != "" {
		m.decide(s, "sectigo_ssl_cert_type: "+t, "issuers."+c.Issuer, "the REST Enrollment account fixes the profile ("+t+"): check that account "+c.Issuer+" enrolls "+t+" certificates (with the Admin API: issuer_options.cert_type: "+t+")")
	}
	if v, ok := yesNo(str(get(s.doc, "sectigo_force_renewal"))); ok && v {
		m.decide(s, "sectigo_force_renewal: true", "", "certfleet forces a renewal per run, not per file: run `certfleet run --force "+cname+"` once")
	} else if get(s.doc, "sectigo_force_renewal") != nil {
		m.mapped(s, "sectigo_force_renewal: false", "(the default: renew when due)")
	}
	if v, ok := yesNo(str(get(s.doc, "sectigo_auto_renew"))); ok && !v {
		c.Enabled = boolp(false)
		m.mapped(s, "sectigo_auto_renew: false", "certificates."+cname+".enabled: false")
	} else if ok {
		m.mapped(s, "sectigo_auto_renew: true", "(the default: certfleet renews when due)")
	}
	m.unknownKeys(s, s.doc, "", mergeKnown(map[string]bool{"paloalto_fw_profile": true, "scm_credential_detail": true, "sectigo_csr_domain": true, "sectigo_csr_country": true,
		"sectigo_csr_state": true, "sectigo_csr_location": true, "sectigo_csr_organization": true, "sectigo_csr_email_address": true, "sectigo_csr_key_type": true,
		"sectigo_csr_key_size": true, "sectigo_expiry_window": true, "sectigo_ssl_cert_comments": true, "sectigo_ssl_cert_type": true, "sectigo_force_renewal": true,
		"sectigo_auto_renew": true}, paRequester, paSANs))
	// The agent imports the certificate under the profile's name and binds it nowhere: where it
	// is used (SSL/TLS service profiles, GlobalProtect, decryption rules) is the firewall's.
	m.cfg.Pending[cname] = c
	m.decide(s, "(certificate "+cname+")", "certificates."+cname+".bindings", "the agent installs the certificate as object \""+s.base+"\" and binds it nowhere: add the SSL/TLS service profiles (or GlobalProtect portals/gateways, decryption rules) that use it — `certfleet inventory "+dname+" --suggest` prints them — then enable the commented-out entry")
	return nil
}
