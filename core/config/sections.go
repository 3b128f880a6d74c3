package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet/core/issuer/acme"
	"github.com/certfleet/certfleet/plugins/sdk"
	"gopkg.in/yaml.v3"
)

// renewal is a renew_before value: a duration or a share of the lifetime.
type renewal struct {
	before   time.Duration
	fraction float64
	set      bool
}

func (w *walker) renewal(n *yaml.Node, path string) renewal {
	if !w.scalar(n, path, "a duration or a percentage") {
		return renewal{}
	}
	v := strings.TrimSpace(n.Value)
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(pct, 64)
		if err != nil || f <= 0 || f >= 100 {
			w.errs.add(w.pos(n), path, `a share of the lifetime between 0% and 100%, e.g. "33%"`, "%q is not a valid percentage", v)
			return renewal{}
		}
		return renewal{fraction: f / 100, set: true}
	}
	d, err := parseDuration(v)
	if err != nil || d <= 0 {
		w.errs.add(w.pos(n), path, `write days ("30d"), hours ("72h") or a share of the lifetime ("33%")`, "%q is not a renewal window", v)
		return renewal{}
	}
	return renewal{before: d, set: true}
}

// curveBits are the curve names bits may hold, and their sizes.
var curveBits = map[string]int{"p-256": 256, "p-384": 384, "p-521": 521, "prime256v1": 256, "secp384r1": 384, "secp521r1": 521}

// keySpec decodes key: {type, bits}; bits may be a curve name for ecdsa.
func (w *walker) keySpec(n *yaml.Node, path string) (sdk.KeySpec, bool) {
	var spec sdk.KeySpec
	var bitsNode *yaml.Node
	typeSeen := false
	w.object(n, path, fields{
		"type": func(n *yaml.Node, p string) {
			typeSeen = true
			switch strings.ToLower(w.str(n, p)) {
			case "rsa":
				spec.Type = sdk.KeyTypeRSA
			case "ecdsa", "ec":
				spec.Type = sdk.KeyTypeECDSA
			default:
				w.errs.add(w.pos(n), p, "use rsa or ecdsa", "%q is not a key type", n.Value)
			}
		},
		"bits": func(n *yaml.Node, p string) {
			bitsNode = n
			if !w.scalar(n, p, "a key size") {
				return
			}
			if c, ok := curveBits[strings.ToLower(n.Value)]; ok {
				spec.Bits = c
			} else if b, err := strconv.Atoi(n.Value); err == nil {
				spec.Bits = b
			} else {
				w.errs.add(w.pos(n), p, "a number of bits, e.g. 2048, or a curve such as P-256", "%q is not a key size", n.Value)
			}
		},
	})
	if spec.Type == sdk.KeyTypeUnspecified {
		if n.Kind == yaml.MappingNode && !typeSeen {
			w.errs.add(w.pos(n), join(path, "type"), "use rsa or ecdsa", "is missing")
		}
		return spec, false
	}
	if spec.Bits == 0 {
		spec.Bits = map[sdk.KeyType]int{sdk.KeyTypeRSA: 2048, sdk.KeyTypeECDSA: 256}[spec.Type]
	}
	if !spec.Valid() {
		at := n
		if bitsNode != nil {
			at = bitsNode
		}
		hint := "rsa takes 2048, 3072 or 4096"
		if spec.Type == sdk.KeyTypeECDSA {
			hint = "ecdsa takes 256, 384 or 521 (P-256, P-384, P-521)"
		}
		w.errs.add(w.pos(at), join(path, "bits"), hint, "%d is not a supported %s key size", spec.Bits, spec.Type)
		return spec, false
	}
	return spec, true
}

func (w *walker) subject(n *yaml.Node, path string) sdk.Subject {
	var s sdk.Subject
	w.object(n, path, fields{
		"common_name":         func(n *yaml.Node, p string) { s.CommonName = w.str(n, p) },
		"organization":        func(n *yaml.Node, p string) { s.Organization = w.str(n, p) },
		"organizational_unit": func(n *yaml.Node, p string) { s.OrganizationalUnit = w.str(n, p) },
		"locality":            func(n *yaml.Node, p string) { s.Locality = w.str(n, p) },
		"state":               func(n *yaml.Node, p string) { s.State = w.str(n, p) },
		"country": func(n *yaml.Node, p string) {
			s.Country = w.str(n, p)
			if s.Country != "" && !countryCode.MatchString(s.Country) {
				w.errs.add(w.pos(n), p, "an ISO 3166 two-letter code in capitals, e.g. GB", "%q is not a country code", s.Country)
			}
		},
		"email": func(n *yaml.Node, p string) {
			s.Email = w.str(n, p)
			if s.Email != "" {
				if _, err := mail.ParseAddress(s.Email); err != nil {
					w.errs.add(w.pos(n), p, "", "%q is not an e-mail address", s.Email)
				}
			}
		},
	})
	return s
}

type defaultsSection struct {
	issuer        string
	key           sdk.KeySpec
	keySet        bool
	renew         renewal
	subject       sdk.Subject
	issuerOptions map[string]any
	onVerify      string
}

func (w *walker) defaults(n *yaml.Node) *defaultsSection {
	d := &defaultsSection{}
	w.object(n, "defaults", fields{
		"issuer":            func(n *yaml.Node, p string) { d.issuer = w.str(n, p) },
		"key":               func(n *yaml.Node, p string) { d.key, d.keySet = w.keySpec(n, p) },
		"renew_before":      func(n *yaml.Node, p string) { d.renew = w.renewal(n, p) },
		"subject":           func(n *yaml.Node, p string) { d.subject = w.subject(n, p) },
		"issuer_options":    func(n *yaml.Node, p string) { d.issuerOptions = w.writtenMap(n, p) },
		"on_verify_failure": func(n *yaml.Node, p string) { d.onVerify = w.onVerifyFailure(n, p) },
	})
	return d
}

func (w *walker) issuer(name string, k, n *yaml.Node, path string) *Issuer {
	iss := &Issuer{Name: name, Position: w.pos(k)}
	var scmNode, acmeNode *yaml.Node
	var scmPath, acmePath string
	w.object(n, path, fields{
		"type":        func(n *yaml.Node, p string) { iss.Type = w.str(n, p) },
		"concurrency": func(n *yaml.Node, p string) { iss.Concurrency = w.positive(n, p) },
		"scm":         func(n *yaml.Node, p string) { scmNode, scmPath = n, p },
		"acme":        func(n *yaml.Node, p string) { acmeNode, acmePath = n, p },
	})
	switch iss.Type {
	case "scm":
		if acmeNode != nil {
			w.errs.add(w.pos(acmeNode), acmePath, "remove it, or set type: acme", "an scm issuer takes no acme block")
		}
		if scmNode == nil {
			w.errs.add(w.pos(k), join(path, "scm"), "add scm: {base_url, org_id, auth, ...}", "is missing for an scm issuer")
			return iss
		}
		iss.SCM = w.scm(scmNode, scmPath)
	case "acme":
		if scmNode != nil {
			w.errs.add(w.pos(scmNode), scmPath, "remove it, or set type: scm", "an acme issuer takes no scm block")
		}
		if acmeNode == nil {
			w.errs.add(w.pos(k), join(path, "acme"), "add acme: {directory_url, eab, ...}", "is missing for an acme issuer")
			return iss
		}
		iss.ACME = w.acme(name, acmeNode, acmePath)
	case "":
		w.errs.add(w.pos(k), join(path, "type"), "set type: scm or type: acme", "is missing")
	default:
		w.errs.add(w.pos(n), join(path, "type"), "use scm or acme", "%q is not an issuer type", iss.Type)
	}
	return iss
}

func (w *walker) httpsURL(n *yaml.Node, p, value string) {
	u, err := url.Parse(value)
	if err != nil || u.Host == "" || u.Scheme != "https" {
		w.errs.add(w.pos(n), p, "an https:// URL", "%q is not an https URL", value)
	}
}

// scm decodes an SCM account. Which API it speaks decides what is required: the Admin API needs
// an organization; a REST Enrollment account fixes organization, profile and term itself.
func (w *walker) scm(n *yaml.Node, path string) *SCM {
	s := w.scmAccount(n, path, true)
	return s
}

func (w *walker) scmAccount(n *yaml.Node, path string, top bool) *SCM {
	s := &SCM{Auth: "oauth2", API: "admin"}
	var orgSet, apiSet bool
	var baseNode, apiNode, authNode, lookupNode, orgNode *yaml.Node
	var lookupPath string
	f := fields{
		"base_url":      func(n *yaml.Node, p string) { s.BaseURL, baseNode = w.str(n, p), n; w.httpsURL(n, p, s.BaseURL) },
		"customer_uri":  func(n *yaml.Node, p string) { s.CustomerURI = w.str(n, p) },
		"auth":          func(n *yaml.Node, p string) { s.Auth, authNode = w.str(n, p), n },
		"client_id":     func(n *yaml.Node, p string) { s.ClientID = w.str(n, p) },
		"client_secret": func(n *yaml.Node, p string) { s.ClientSecret = w.str(n, p) },
		"token_url":     func(n *yaml.Node, p string) { s.TokenURL = w.str(n, p); w.httpsURL(n, p, s.TokenURL) },
		"login":         func(n *yaml.Node, p string) { s.Login = w.str(n, p) },
		"password":      func(n *yaml.Node, p string) { s.Password = w.str(n, p) },
		"org_id":        func(n *yaml.Node, p string) { s.OrgID, orgSet, orgNode = w.positive(n, p), true, n },
		"tls":           func(n *yaml.Node, p string) { s.TLS = w.tls(n, p) },
		"timeout":       func(n *yaml.Node, p string) { s.Timeout = w.duration(n, p) },
	}
	if top {
		f["api"] = func(n *yaml.Node, p string) { s.API, apiSet, apiNode = w.str(n, p), true, n }
		f["initial_delay"] = func(n *yaml.Node, p string) { s.InitialDelay = w.duration(n, p) }
		f["lookup"] = func(n *yaml.Node, p string) { lookupNode, lookupPath = n, p }
	}
	w.object(n, path, f)
	missing := func(field, hint string) { w.errs.add(w.pos(n), join(path, field), hint, "is missing") }
	switch s.API {
	case "admin":
	case "enrollment":
		if orgSet {
			w.errs.add(w.pos(orgNode), join(path, "org_id"), "remove it: the REST account fixes the organization, profile and term", "does not apply to api: enrollment")
		}
		if s.Auth != "oauth2" {
			at := n
			if authNode != nil {
				at = authNode
			}
			w.errs.add(w.pos(at), join(path, "auth"), "remove it: a REST account logs in with its client_id and client_secret", "%q does not apply to api: enrollment", s.Auth)
		}
	default:
		w.errs.add(w.pos(apiNode), join(path, "api"), "use admin (Admin API or login headers) or enrollment (a REST Enrollment account)", "%q is not an SCM API", s.API)
	}
	if s.BaseURL == "" {
		hint := "the SCM API URL: https://admin.enterprise.sectigo.com/api/ with client_id/client_secret, https://cert-manager.com/api/ with login headers"
		if s.API == "enrollment" {
			hint = "the URL SCM shows under Enrollment → REST → SSL Certificates REST API, e.g. https://{customer}.enroll.enterprise.sectigo.com"
		}
		missing("base_url", hint)
	}
	if !orgSet && s.API == "admin" {
		missing("org_id", "the numeric id of the organization the certificates are ordered for")
	}
	switch s.Auth {
	case "oauth2":
		if s.ClientID == "" {
			missing("client_id", "the API client id from SCM's API settings (a REST account's Client ID for api: enrollment)")
		}
		if s.ClientSecret == "" {
			missing("client_secret", "a reference such as ${env:SCM_CLIENT_SECRET}")
		}
	case "legacy":
		for field, hint := range map[string]string{"login": "the API user's login", "password": "a reference such as ${env:SCM_PASSWORD}", "customer_uri": "your SCM customer URI"} {
			if (field == "login" && s.Login == "") || (field == "password" && s.Password == "") || (field == "customer_uri" && s.CustomerURI == "") {
				missing(field, hint)
			}
		}
	default:
		w.errs.add(w.pos(n), join(path, "auth"), "use oauth2 or legacy", "%q is not an SCM authentication mode", s.Auth)
	}
	if baseNode != nil {
		w.checkSCMHost(baseNode, join(path, "base_url"), s, apiSet)
	}
	if lookupNode != nil {
		if s.API != "enrollment" {
			w.errs.add(w.pos(lookupNode), lookupPath, "remove it: only api: enrollment needs an Admin API account to look up orders", "does not apply to api: %s", s.API)
		} else {
			s.Lookup = w.scmAccount(lookupNode, lookupPath, false)
		}
	}
	return s
}

// checkSCMHost warns about a base_url that does not fit the API or the login: OAuth2 pairs with
// https://admin.{instance}.sectigo.com/api/, header login with https://cert-manager.com/api/
// (Sectigo's Admin API getting-started page), and a REST account's URL is
// https://{customer}.enroll.{instance}.sectigo.com (REST Enrollment API OpenAPI servers).
func (w *walker) checkSCMHost(n *yaml.Node, path string, s *SCM, apiSet bool) {
	u, err := url.Parse(s.BaseURL)
	if err != nil || u.Host == "" {
		return
	}
	host := strings.ToLower(u.Hostname())
	enrollHost := strings.Contains(host, ".enroll.")
	switch {
	case s.API == "admin" && enrollHost:
		hint := "add api: enrollment to use this REST account"
		if apiSet {
			hint = "use api: enrollment, or the Admin API URL https://admin.{instance}.sectigo.com/api/"
		}
		w.errs.add(w.pos(n), path, hint, "%s is a REST Enrollment endpoint, not the Admin API", s.BaseURL)
		return
	case s.API == "enrollment" && (strings.HasPrefix(host, "admin.") || host == "cert-manager.com" || strings.HasSuffix(host, ".cert-manager.com")):
		w.errs.add(w.pos(n), path, "use the REST endpoint's URL https://{customer}.enroll.{instance}.sectigo.com, or api: admin", "%s is an Admin API host, not a REST Enrollment endpoint", s.BaseURL)
		return
	case s.API == "enrollment":
		return
	}
	if !strings.Contains(u.Path, "/api") {
		w.warn(n, path, "the Admin API's paths are under /api/, e.g. https://admin.enterprise.sectigo.com/api/", "%s has no /api/ in its path", s.BaseURL)
	}
	adminHost := strings.HasPrefix(host, "admin.") && strings.HasSuffix(host, ".sectigo.com")
	legacyHost := host == "cert-manager.com" || strings.HasSuffix(host, ".cert-manager.com")
	if s.Auth == "oauth2" && legacyHost {
		w.warn(n, path, "with client_id/client_secret use https://admin.{instance}.sectigo.com/api/ (e.g. admin.enterprise.sectigo.com); cert-manager.com takes login headers (auth: legacy)",
			"%s is the header-login host, but auth is oauth2", s.BaseURL)
	}
	if s.Auth == "legacy" && adminHost {
		w.warn(n, path, "with login/password use https://cert-manager.com/api/; the admin host takes OAuth2 (client_id/client_secret)",
			"%s is the OAuth2 Admin API host, but auth is legacy", s.BaseURL)
	}
}

// acme decodes the block into the ACME issuer's own Config, strictly.
func (w *walker) acme(name string, n *yaml.Node, path string) *acme.Config {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(n); err != nil {
		w.errs.add(w.pos(n), path, "", "%v", err)
		return nil
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	var c acme.Config
	if err := dec.Decode(&c); err != nil {
		text := err.Error()
		var te *yaml.TypeError
		if errors.As(err, &te) {
			text = strings.Join(te.Errors, "; ")
		}
		// Lines in the error count from the block's start.
		msg := regexp.MustCompile(`line (\d+)`).ReplaceAllStringFunc(text, func(m string) string {
			l, _ := strconv.Atoi(strings.TrimPrefix(m, "line "))
			return fmt.Sprintf("line %d", l+n.Line-1)
		})
		w.errs.add(w.pos(n), path, "see the acme fields in examples/certfleet.yaml", "%s", strings.TrimPrefix(msg, "yaml: "))
		return nil
	}
	c.Name = name
	if c.Timeouts.Issuance != 0 {
		w.warn(n, join(path, "timeouts.issuance"), "remove it: the engine polls a processing order again on the CA's Retry-After or an adaptive schedule, holding no slot; timeouts.poll_interval sets the least wait between polls",
			"is ignored since certfleet no longer waits inside a collect")
	}
	if c.DirectoryURL == "" {
		w.errs.add(w.pos(n), join(path, "directory_url"), "the CA's ACME directory URL", "is missing")
	} else {
		w.httpsURL(n, join(path, "directory_url"), c.DirectoryURL)
	}
	if c.TLS.CABundlePEM != "" && !strings.HasPrefix(strings.TrimSpace(c.TLS.CABundlePEM), "-----BEGIN") {
		t := w.tls(&yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: "ca_bundle"}, {Kind: yaml.ScalarNode, Tag: "!!str", Value: c.TLS.CABundlePEM, Line: n.Line},
		}}, join(path, "tls"))
		c.TLS.CABundlePEM = t.CABundlePEM
	}
	return &c
}

var (
	pluginName     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	deviceKeys     = newKeySet("plugin", "address", "tls", "credentials", "options", "concurrency", "allow_plain_http", "site")
	credentialKeys = newKeySet("username", "password", "api_key", "token")
	countryCode    = regexp.MustCompile(`^[A-Z]{2}$`)
)

func (w *walker) device(name string, k, n *yaml.Node, path string, perDevice int) *Device {
	d := &Device{Name: name, Position: w.pos(k), Concurrency: perDevice, Options: sdk.Options{}}
	w.objectOf(n, path, deviceKeys, func(key string, n *yaml.Node, p string) {
		switch key {
		case "plugin":
			d.Plugin = w.str(n, p)
			if d.Plugin != "" && !pluginName.MatchString(d.Plugin) {
				w.errs.add(w.pos(n), p, "lower-case letters, digits and '-', as in certfleet-plugin-<name>", "%q is not a plugin name", d.Plugin)
			}
		case "address":
			d.Address = w.str(n, p)
		case "tls":
			d.TLS = w.tls(n, p)
		case "credentials":
			w.objectOf(n, p, credentialKeys, func(key string, n *yaml.Node, p string) {
				switch key {
				case "username":
					d.Credentials.Username = w.str(n, p)
				case "password":
					d.Credentials.Password = w.str(n, p)
				case "api_key":
					d.Credentials.APIKey = w.str(n, p)
				case "token":
					d.Credentials.Token = w.str(n, p)
				}
			})
		case "options":
			d.Options = sdk.Options(w.freeMap(n, p))
		case "concurrency":
			d.Concurrency = w.positive(n, p)
		case "allow_plain_http":
			d.AllowPlainHTTP = w.boolean(n, p)
		case "site":
			d.Site = w.str(n, p)
		}
	})
	if strings.HasPrefix(strings.ToLower(d.Address), "http://") && !d.AllowPlainHTTP {
		w.errs.add(w.pos(k), join(path, "address"), "use https://, or set "+join(path, "allow_plain_http")+": true to accept that the device's credentials cross the network unencrypted",
			"%q is plain http", d.Address)
	}
	if _, set := d.Options["allow_plain_http"]; set {
		w.errs.add(w.pos(k), join(path, "options.allow_plain_http"), "set "+join(path, "allow_plain_http")+": true on the device instead, so that certfleet warns about it on every run", "is set by certfleet, not in options")
	}
	if d.Plugin == "" {
		w.errs.add(w.pos(k), join(path, "plugin"), "e.g. citrix-nitro, paloalto-panos, f5-bigip or pemdir", "is missing")
	}
	if d.Address == "" {
		w.errs.add(w.pos(k), join(path, "address"), "the device's management address", "is missing")
	}
	if d.Options == nil {
		d.Options = sdk.Options{}
	}
	return d
}

// rawCertificate is a certificate as written, before defaults.
type rawCertificate struct {
	w       *walker
	path    string
	node    *yaml.Node
	cert    *Certificate
	key     sdk.KeySpec
	keySet  bool
	keyBad  bool
	renew   renewal
	subject sdk.Subject
	// deviceNode and issuerNode are where device and issuer were set, if they were.
	deviceNode, issuerNode *yaml.Node
}

var (
	certificateKeys = newKeySet("device", "issuer", "subject", "sans", "key", "renew_before", "bindings", "issuer_options",
		"enabled", "cleanup_adopted", "verify", "on_verify_failure")
	sansKeys = newKeySet("dns", "ip", "email")
)

func (w *walker) certificate(name string, k, n *yaml.Node, path string) *rawCertificate {
	rc := &rawCertificate{w: w, path: path, node: k, cert: &Certificate{Name: name, Position: w.pos(k), Enabled: true}}
	c := rc.cert
	w.objectOf(n, path, certificateKeys, func(key string, n *yaml.Node, p string) {
		switch key {
		case "device":
			c.Device, rc.deviceNode = w.str(n, p), n
		case "issuer":
			c.Issuer, rc.issuerNode = w.str(n, p), n
		case "subject":
			rc.subject = w.subject(n, p)
		case "sans":
			w.objectOf(n, p, sansKeys, func(key string, n *yaml.Node, p string) {
				switch key {
				case "dns":
					c.SANs.DNSNames = w.dnsNames(n, p)
				case "ip":
					c.SANs.IPAddresses = w.ips(n, p)
				case "email":
					c.SANs.EmailAddresses = w.emails(n, p)
				}
			})
		case "key":
			rc.key, rc.keySet = w.keySpec(n, p)
			rc.keyBad = !rc.keySet
		case "renew_before":
			rc.renew = w.renewal(n, p)
		case "bindings":
			w.bindings(c, n, p)
		case "issuer_options":
			c.IssuerOptions = w.writtenMap(n, p)
		case "enabled":
			c.Enabled = w.boolean(n, p)
		case "cleanup_adopted":
			c.CleanupAdopted = w.boolean(n, p)
		case "verify":
			c.Verify = w.verifyEndpoint(n, p)
		case "on_verify_failure":
			c.OnVerifyFailure = w.onVerifyFailure(n, p)
		}
	})
	return rc
}

// dnsLabel reports whether l is a label of a host name: ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$.
func dnsLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validDNSName(s string) bool {
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Count(s, ".") + 1
	for i := 0; s != ""; i++ {
		l, rest, _ := strings.Cut(s, ".")
		if !(l == "*" && i == 0 && labels > 2) && !dnsLabel(l) {
			return false
		}
		s = rest
		if s == "" && i+1 < labels {
			return false // a trailing empty label
		}
	}
	return true
}

func (w *walker) dnsNames(n *yaml.Node, path string) []string {
	names := w.stringList(n, path)
	for i, s := range names {
		at := n
		if n.Kind == yaml.SequenceNode && i < len(n.Content) {
			at = n.Content[i]
		}
		p := func() string { return fmt.Sprintf("%s[%d]", path, i) } // only for a message: most names have none
		switch {
		case net.ParseIP(s) != nil:
			// A CA puts it in a DNS SAN, where no client matches it against an address.
			w.errs.add(w.pos(at), p(), "list IP addresses under sans.ip", "%q is an IP address, not a DNS name", s)
		case strings.HasSuffix(s, "."):
			// CAs refuse the absolute form, and clients compare names without the dot.
			w.errs.add(w.pos(at), p(), fmt.Sprintf("write %q", strings.TrimSuffix(s, ".")), "%q ends with a dot", s)
		case !validDNSName(s):
			w.errs.add(w.pos(at), p(), "letters, digits and '-' in dot-separated labels; a wildcard only as the whole leftmost label (*.example.com)", "%q is not a valid DNS name", s)
		}
	}
	return names
}

// maxCommonName is RFC 5280's upper bound on a common name (ub-common-name).
const maxCommonName = 64

func (w *walker) ips(n *yaml.Node, path string) []string {
	ips := w.stringList(n, path)
	for i, s := range ips {
		if net.ParseIP(s) == nil {
			w.errs.add(w.pos(n), fmt.Sprintf("%s[%d]", path, i), "an IPv4 or IPv6 address", "%q is not an IP address", s)
		}
	}
	return ips
}

func (w *walker) emails(n *yaml.Node, path string) []string {
	list := w.stringList(n, path)
	for i, s := range list {
		if a, err := mail.ParseAddress(s); err != nil || a.Address != s {
			w.errs.add(w.pos(n), fmt.Sprintf("%s[%d]", path, i), "a plain address such as ops@example.com", "%q is not an e-mail address", s)
		}
	}
	return list
}

var bindingKeys = newKeySet("kind", "name", "sni", "options")

func (w *walker) bindings(c *Certificate, n *yaml.Node, path string) {
	if n.Kind != yaml.SequenceNode {
		w.errs.add(w.pos(n), path, "a list of {kind, name}", "must be a list, not %s", kindName(n))
		return
	}
	for i, item := range n.Content {
		p := path + "[" + strconv.Itoa(i) + "]"
		var b sdk.Binding
		w.objectOf(item, p, bindingKeys, func(key string, n *yaml.Node, p string) {
			switch key {
			case "kind":
				b.Kind = w.str(n, p)
			case "name":
				b.Name = w.str(n, p)
			case "sni":
				b.SNI = w.boolean(n, p)
			case "options":
				b.Options = sdk.Options(w.freeMap(n, p))
			}
		})
		if b.Kind == "" {
			w.errs.add(w.pos(item), join(p, "kind"), "the binding kind the device's plugin declares (certfleet plugins inspect NAME)", "is missing")
		}
		if b.Name == "" {
			w.errs.add(w.pos(item), join(p, "name"), "the name of the vserver, profile or link on the device", "is missing")
		}
		c.Bindings = append(c.Bindings, b)
		c.BindingPositions = append(c.BindingPositions, w.pos(item))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// finish applies the defaults and checks references to devices and issuers.
func (rc *rawCertificate) finish(d *defaultsSection, cfg *Config, errs *Errors) *Certificate {
	c, w := rc.cert, rc.w
	if c.Issuer == "" {
		c.Issuer = d.issuer
	}
	if c.OnVerifyFailure == "" {
		c.OnVerifyFailure = d.onVerify
	}
	if c.OnVerifyFailure == "" {
		c.OnVerifyFailure = OnVerifyKeep
	}
	switch {
	case rc.keySet:
		c.Key = rc.key
	case rc.keyBad:
	case d.keySet:
		c.Key = d.key
	default:
		c.Key = sdk.KeySpec{Type: sdk.KeyTypeRSA, Bits: 2048}
	}
	r := rc.renew
	if !r.set {
		r = d.renew
	}
	if !r.set {
		r = renewal{before: 30 * 24 * time.Hour}
	}
	c.RenewBefore, c.RenewFraction = r.before, r.fraction
	s, ds := rc.subject, d.subject
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	c.Subject = sdk.Subject{
		CommonName: s.CommonName, Organization: or(s.Organization, ds.Organization),
		OrganizationalUnit: or(s.OrganizationalUnit, ds.OrganizationalUnit), Locality: or(s.Locality, ds.Locality),
		State: or(s.State, ds.State), Country: or(s.Country, ds.Country), Email: or(s.Email, ds.Email),
	}
	if c.Subject.CommonName == "" && len(c.SANs.DNSNames) > 0 {
		c.Subject.CommonName = c.SANs.DNSNames[0]
	}
	if n := len(c.Subject.CommonName); n > maxCommonName {
		errs.add(c.Position, join(rc.path, "subject.common_name"), "set subject.common_name to a name of at most 64 characters; a longer name belongs in sans.dns only",
			"the common name %q is %d characters long; RFC 5280 allows %d, and CAs refuse it", c.Subject.CommonName, n, maxCommonName)
	}
	if c.Subject.CommonName == "" && len(c.SANs.DNSNames) == 0 && len(c.SANs.IPAddresses) == 0 {
		errs.add(c.Position, join(rc.path, "sans.dns"), "list the names the certificate must cover", "the certificate has no names: set subject.common_name or sans.dns")
	}
	switch {
	case len(d.issuerOptions) > 0 && c.IssuerOptions == nil:
		// Shared, not copied: a fleet's certificates mostly take their options from defaults,
		// and ten thousand copies of one map are megabytes to make (and to decode from the cache).
		c.IssuerOptions = d.issuerOptions
	case len(d.issuerOptions) > 0:
		merged := map[string]any{}
		for k, v := range d.issuerOptions {
			merged[k] = v
		}
		for k, v := range c.IssuerOptions {
			merged[k] = v
		}
		c.IssuerOptions = merged
	}
	if c.Device == "" {
		errs.add(c.Position, join(rc.path, "device"), "the name of a device under devices:", "is missing")
	} else if _, ok := cfg.Devices[c.Device]; !ok {
		errs.add(w.pos(rc.deviceNode), join(rc.path, "device"), "known devices: "+strings.Join(sortedKeys(cfg.Devices), ", "), "device %q is not defined", c.Device)
	}
	if c.Issuer == "" {
		errs.add(c.Position, join(rc.path, "issuer"), "set issuer here or defaults.issuer", "is missing")
	} else if _, ok := cfg.Issuers[c.Issuer]; !ok {
		at := c.Position
		if n := rc.issuerNode; n != nil {
			at = w.pos(n)
		}
		errs.add(at, join(rc.path, "issuer"), "known issuers: "+strings.Join(sortedKeys(cfg.Issuers), ", "), "issuer %q is not defined", c.Issuer)
	}
	if len(c.Bindings) == 0 {
		errs.add(c.Position, join(rc.path, "bindings"), "list where the device serves it, e.g. [{kind: lb-vserver, name: vs_www}]", "the certificate has no bindings")
	}
	checkWindowAgainstTerm(c, rc.path, errs)
	return c
}

// checkWindowAgainstTerm rejects a renewal window as long as the certificate's term, when the
// term is known (issuer_options.term, in days): a certificate would be due the moment it is
// issued, and every run would order it again.
func checkWindowAgainstTerm(c *Certificate, path string, errs *Errors) {
	days, ok := c.IssuerOptions["term"].(int)
	if !ok || days <= 0 || c.RenewFraction > 0 || c.RenewBefore <= 0 {
		return
	}
	term := time.Duration(days) * 24 * time.Hour
	if c.RenewBefore >= term {
		errs.add(c.Position, join(path, "renew_before"), fmt.Sprintf("renew well inside the term, e.g. renew_before: %dd, or use a share such as 33%%", max(1, days/3)),
			"renew_before %dd is not shorter than the certificate's term of %d days: it would be due as soon as it is issued, and every run would order it again", int(c.RenewBefore/(24*time.Hour)), days)
	}
}

// checkBindingClaims rejects two certificates bound to the same non-SNI place on the same
// device, except one per key type: a place may serve an RSA and an ECDSA certificate side by
// side, the client's capabilities choosing (Citrix ADC vservers; the plugin refuses what its
// device cannot do).
func checkBindingClaims(cfg *Config, errs *Errors) {
	type claim struct {
		cert string
		pos  Position
	}
	claims := map[string]claim{}
	for _, name := range sortedKeys(cfg.Certificates) {
		c := cfg.Certificates[name]
		for i, b := range c.Bindings {
			if b.Kind == "" || b.Name == "" || b.SNI {
				continue // SNI certificates share a place by design
			}
			key := c.Device + "|" + b.Kind + "|" + b.Name + "|" + c.Key.Type.String()
			if prev, ok := claims[key]; ok && prev.cert != name {
				errs.add(c.BindingPositions[i], fmt.Sprintf("certificates.%s.bindings[%d]", name, i), "a place serves one certificate per key type; use SNI bindings, separate names, or an RSA and an ECDSA certificate",
					"%s/%s on device %s is also bound by certificate %q (%s) with a %s key", b.Kind, b.Name, c.Device, prev.cert, prev.pos, c.Key.Type)
				continue
			}
			claims[key] = claim{cert: name, pos: c.BindingPositions[i]}
		}
	}
}
