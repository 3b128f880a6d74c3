package nitrosim

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
)

// Error codes. Those marked UNCONFIRMED are not in the reference; the simulator picks one and the
// plugin never depends on their exact value (it checks state itself first).
const (
	codeMissing        = 258
	codeExists         = 273
	codeBadLogin       = 354
	codeSessionExpired = 444
	codeAuthTimeout    = 1027
	codeNoVServer      = 461
	codeBadKey         = 1537
	codeNotSSL         = 1544
	codeFileExists     = 1642
	// UNCONFIRMED: required argument missing / invalid argument value.
	codeArgMissing = 1095
	codeBadArg     = 1097
	// UNCONFIRMED: a second non-SNI server certificate on one vserver. Citrix CTX110670 says only one
	// server certificate can be bound to an SSL vserver without -SNICert, and CTX135519 that the GUI
	// unbinds before binding; the code is a guess.
	codeSecondServerCert = 1503
	// UNCONFIRMED: deleting a certkey that is bound, or that another certkey links to.
	codeCertKeyInUse = 1529
	// A missing certkey: "Certificate does not exist" is the text the oneops cookbook
	// (add_cert_key.rb) matches; 1540 is the reference's reading of that code. UNCONFIRMED.
	codeNoCertKey = 1540
	// 278 "Invalid argument": an argument the operation does not take. terraform-provider-citrixadc
	// docs/resources/password_resetter.md shows it (HTTP 599) for a login carrying a field that
	// call does not accept. The bracketed name follows NITRO's other argument errors
	// ("Argument pre-requisite missing [units, deviation]", netscaler.adc Ansible #313); that 278
	// names the attribute is UNCONFIRMED, and the plugin relies only on the code.
	codeInvalidArgument = 278
	// 3740: vserver-level SSL settings while the default SSL profile is enabled
	// (terraform-provider-citrixadc #164).
	codeDefaultProfile = 3740
	// UNCONFIRMED: update to a certificate for other names without nodomaincheck (slauger #10 text).
	codeDomainCheck = 1590
	// UNCONFIRMED: link to a certkey that did not issue the certificate, or an update that breaks a link.
	codeLinkMismatch = 1548
	// UNCONFIRMED: a file still used by a certkey cannot be removed.
	codeFileInUse = 1530
	// UNCONFIRMED: save ns config failed.
	codeSaveFailed = 1
	// UNCONFIRMED: unlink of a certkey that is not linked.
	codeNotLinked = 1549
	// UNCONFIRMED: an SNI certificate sharing a domain with another SNI certificate of the
	// vserver (Keyfactor UpdateBindings: "duplicate domain error"); the code is a guess.
	codeDuplicateDomain = 1551
)

type nitroErr struct {
	status int
	code   int
	msg    string
}

func errf(status, code int, format string, args ...any) *nitroErr {
	return &nitroErr{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, body map[string]any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeErr(w http.ResponseWriter, e *nitroErr) {
	writeJSON(w, e.status, map[string]any{"errorcode": e.code, "message": e.msg, "severity": "ERROR"})
}

func done(extra map[string]any) map[string]any {
	out := map[string]any{"errorcode": 0, "message": "Done", "severity": "NONE"}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

type request struct {
	r        *http.Request
	typ      string
	name     string
	action   string
	args     map[string]string
	body     map[string]any
	part     *partition
	partName string
	token    string
}

// field returns a string field of the wrapped object; numbers and bools are formatted.
func (q *request) obj() map[string]any {
	if o, ok := q.body[q.typ].(map[string]any); ok {
		return o
	}
	return map[string]any{}
}

func str(o map[string]any, k string) string {
	switch v := o[k].(type) {
	case string:
		return v
	case float64:
		return fmt.Sprint(v)
	case bool:
		return fmt.Sprint(v)
	}
	return ""
}

func truthy(o map[string]any, k string) bool {
	switch v := o[k].(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true") || strings.EqualFold(v, "yes")
	}
	return false
}

func parseArgs(v string) map[string]string {
	out := map[string]string{}
	if v == "" {
		return out
	}
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(kv, ":")
		if un, err := url.QueryUnescape(val); err == nil {
			val = un
		}
		out[k] = val
	}
	return out
}

func (s *Sim) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	lat := s.latency
	s.calls = append(s.calls, r.Method+" "+r.URL.RequestURI())
	s.mu.Unlock()
	if lat > 0 {
		select {
		case <-time.After(lat):
		case <-r.Context().Done():
			return
		}
	}
	const prefix = "/nitro/v1/config/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		writeErr(w, errf(http.StatusNotFound, codeMissing, "Not a NITRO config URL"))
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, prefix)
	typ, name, _ := strings.Cut(rest, "/")
	if name != "" {
		// Clients double-escape names in the path (reference §0); undo the second escaping.
		if un, err := url.PathUnescape(name); err == nil {
			name = un
		}
	}
	q := &request{r: r, typ: typ, name: name, action: r.URL.Query().Get("action"), args: parseArgs(r.URL.Query().Get("args"))}
	if r.Body != nil && (r.Method == http.MethodPost || r.Method == http.MethodPut) {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20))
		if err := dec.Decode(&q.body); err != nil {
			writeErr(w, errf(http.StatusBadRequest, codeBadArg, "Invalid JSON input"))
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.takeFault(r.Method, typ, q.action); f != nil {
		if f.code == codeSessionExpired || f.code == codeAuthTimeout {
			// An injected expiry ends the session it hits, as a real one would be gone.
			if c, err := r.Cookie("NITRO_AUTH_TOKEN"); err == nil {
				delete(s.sessions, c.Value)
			}
		}
		writeErr(w, errf(f.status, f.code, "Injected fault"))
		return
	}
	if typ == "login" && r.Method == http.MethodPost {
		s.login(w, q)
		return
	}
	if e := s.authenticate(q); e != nil {
		writeErr(w, e)
		return
	}
	if e := checkAttributes(q); e != nil {
		writeErr(w, e)
		return
	}
	status, body, e := s.dispatch(q)
	if e != nil {
		writeErr(w, e)
		return
	}
	writeJSON(w, status, done(body))
}

// takeFault returns the first queued fault matching the request, counting it down.
func (s *Sim) takeFault(method, typ, action string) *fault {
	for i, f := range s.faults {
		if f.op == "*" || f.op == method+" "+typ || action != "" && f.op == method+" "+typ+"?action="+action {
			f.n--
			if f.n <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			return f
		}
	}
	return nil
}

func (s *Sim) login(w http.ResponseWriter, q *request) {
	o := q.obj()
	if str(o, "username") != s.cfg.Username || str(o, "password") != s.cfg.Password {
		writeErr(w, errf(http.StatusUnauthorized, codeBadLogin, "Invalid username or password"))
		return
	}
	life := s.cfg.SessionTimeout
	if t, ok := o["timeout"].(float64); ok && t > 0 {
		life = time.Duration(t) * time.Second
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	s.sessions[tok] = &session{expires: time.Now().Add(life), partition: "default"}
	http.SetCookie(w, &http.Cookie{Name: "NITRO_AUTH_TOKEN", Value: tok, Path: "/nitro/v1"})
	writeJSON(w, http.StatusCreated, done(map[string]any{"sessionid": tok}))
}

func (s *Sim) authenticate(q *request) *nitroErr {
	if c, err := q.r.Cookie("NITRO_AUTH_TOKEN"); err == nil && c.Value != "" {
		ss, ok := s.sessions[c.Value]
		if !ok || time.Now().After(ss.expires) {
			delete(s.sessions, c.Value)
			return errf(http.StatusUnauthorized, codeSessionExpired, "Session expired or killed. Please login again")
		}
		q.token, q.partName, q.part = c.Value, ss.partition, s.parts[ss.partition]
		return nil
	}
	if u := q.r.Header.Get("X-NITRO-USER"); u != "" {
		if u != s.cfg.Username || q.r.Header.Get("X-NITRO-PASS") != s.cfg.Password {
			return errf(http.StatusUnauthorized, codeBadLogin, "Invalid username or password")
		}
		q.partName, q.part = "default", s.parts["default"]
		return nil
	}
	return errf(http.StatusUnauthorized, codeSessionExpired, "Not logged in or session expired. Please login again")
}

func (s *Sim) dispatch(q *request) (int, map[string]any, *nitroErr) {
	m := q.r.Method
	switch {
	case q.typ == "logout" && m == http.MethodPost:
		delete(s.sessions, q.token)
		return 200, nil, nil
	case q.typ == "nsversion" && m == http.MethodGet:
		return 200, map[string]any{"nsversion": []any{map[string]any{"version": s.cfg.Version, "mode": "1", "installedversion": true}}}, nil
	case q.typ == "nspartition" && m == http.MethodPost && strings.EqualFold(q.action, "switch"):
		name := str(q.obj(), "partitionname")
		if _, ok := s.parts[name]; !ok || q.token == "" {
			return 0, nil, errf(http.StatusNotFound, codeMissing, "No such resource [partitionname, %s]", name)
		}
		s.sessions[q.token].partition = name
		return 200, nil, nil
	case (q.typ == "sslrsakey" || q.typ == "sslecdsakey") && m == http.MethodPost && q.action == "create":
		return s.createKey(q)
	case q.typ == "sslcertreq" && m == http.MethodPost && q.action == "create":
		return s.createCSR(q)
	case q.typ == "systemfile":
		return s.systemfile(q)
	case q.typ == "sslcertkey":
		return s.certkey(q)
	case (q.typ == KindLB || q.typ == KindGateway || q.typ == KindCS) && m == http.MethodGet:
		return s.listVServers(q)
	case q.typ == "sslvserver" && m == http.MethodGet:
		v, e := s.sslVServer(q.part, q.name)
		if e != nil {
			return 0, nil, e
		}
		view := map[string]any{"vservername": v.Name, "snienable": enabled(v.sni)}
		if v.Profile != "" {
			view["sslprofile"] = v.Profile
		}
		return 200, map[string]any{"sslvserver": []any{view}}, nil
	case q.typ == "sslvserver" && m == http.MethodPut:
		o := q.obj()
		v, e := s.sslVServer(q.part, str(o, "vservername"))
		if e != nil {
			return 0, nil, e
		}
		if se := str(o, "snienable"); se != "" {
			if v.Profile != "" && !s.cfg.AllowVServerSNIWithProfile {
				return 0, nil, errf(599, codeDefaultProfile, "Operation not permitted. To do this Disable default ssl profile by setting 'set ssl parameter -defaultProfile D'")
			}
			v.sni = strings.EqualFold(se, "ENABLED")
		}
		return 200, nil, nil
	case q.typ == "sslparameter" && m == http.MethodGet:
		return 200, map[string]any{"sslparameter": []any{map[string]any{"defaultprofile": enabled(s.cfg.DefaultProfile)}}}, nil
	case q.typ == "sslprofile" && m == http.MethodGet:
		pr, ok := q.part.profiles[q.name]
		if !ok {
			return 0, nil, errf(404, codeMissing, "No such resource [name, %s]", q.name)
		}
		return 200, map[string]any{"sslprofile": []any{map[string]any{"name": pr.name, "snienable": enabled(pr.sni)}}}, nil
	case q.typ == "sslprofile" && m == http.MethodPut:
		o := q.obj()
		pr, ok := q.part.profiles[str(o, "name")]
		if !ok {
			return 0, nil, errf(404, codeMissing, "No such resource [name, %s]", str(o, "name"))
		}
		if se := str(o, "snienable"); se != "" {
			pr.sni = strings.EqualFold(se, "ENABLED")
		}
		return 200, nil, nil
	case q.typ == "sslvserver_sslcertkey_binding":
		return s.binding(q)
	case q.typ == "sslcertkey_binding" && m == http.MethodGet:
		return s.certkeyPlaces(q)
	case q.typ == "vpnglobal_sslcertkey_binding" && m == http.MethodGet:
		var list []any
		for _, pl := range q.part.places {
			if pl.kind == PlaceVPNGlobal {
				list = append(list, map[string]any{"certkeyname": pl.certkey})
			}
		}
		return 200, listBody(q.typ, list), nil
	case q.typ == "authenticationsamlaction" && m == http.MethodGet:
		var list []any
		for _, pl := range q.part.places {
			if pl.kind == PlaceSAMLAction {
				list = append(list, map[string]any{"name": pl.name, "samlidpcertname": pl.certkey})
			}
		}
		return 200, listBody(q.typ, list), nil
	case q.typ == "nsconfig" && m == http.MethodPost && q.action == "save":
		if s.failSaves > 0 {
			s.failSaves--
			return 0, nil, errf(599, codeSaveFailed, "Internal error while saving configuration")
		}
		q.part.saved++
		return 200, nil, nil
	}
	return 0, nil, errf(http.StatusBadRequest, codeBadArg, "Unsupported operation %s %s action=%q", m, q.typ, q.action)
}

func enabled(b bool) string {
	if b {
		return "ENABLED"
	}
	return "DISABLED"
}

// listBody is a GET answer: the list under its type, or no key at all when it is empty.
func listBody(typ string, list []any) map[string]any {
	if len(list) == 0 {
		return nil
	}
	return map[string]any{typ: list}
}

// attributes are what each write accepts, from the 12.1 NITRO docs (and adc-nitro-go for newer
// fields); anything else is answered with 278 "Invalid argument [attr]" as an appliance does.
var attributes = map[string][]string{
	"POST login":                     {"username", "password", "timeout", "token"},
	"POST logout":                    {},
	"POST nspartition?action=Switch": {"partitionname"},
	"POST nsconfig?action=save":      {"all"},
	"POST sslrsakey?action=create":   {"keyfile", "bits", "exponent", "keyform", "des", "des3", "aes256", "password", "pkcs8"},
	"POST sslecdsakey?action=create": {"keyfile", "curve", "keyform", "des", "des3", "aes256", "password", "pkcs8"},
	"POST sslcertreq?action=create": {"reqfile", "keyfile", "subjectaltname", "fipskeyname", "keyform", "pempassphrase", "countryname", "statename",
		"organizationname", "organizationunitname", "localityname", "commonname", "emailaddress", "challengepassword", "companyname", "digestmethod"},
	"POST systemfile": {"filename", "filecontent", "filelocation", "fileencoding"},
	"POST sslcertkey": {"certkey", "cert", "key", "password", "fipskey", "hsmkey", "inform", "passplain", "expirymonitor", "notificationperiod",
		"bundle", "linkcertkeyname", "deletecertkeyfilesonremoval", "ocspstaplingcache"},
	"POST sslcertkey?action=update":     {"certkey", "cert", "key", "password", "fipskey", "inform", "passplain", "nodomaincheck"},
	"POST sslcertkey?action=link":       {"certkey", "linkcertkeyname"},
	"POST sslcertkey?action=unlink":     {"certkey"},
	"PUT sslvserver_sslcertkey_binding": {"vservername", "certkeyname", "ca", "crlcheck", "ocspcheck", "skipcaname", "snicert"},
	"PUT sslvserver":                    {"vservername", "snienable", "sslprofile", "cleartextport", "sessreuse", "sesstimeout", "tls1", "tls11", "tls12", "tls13", "ssl3"},
	"PUT sslprofile":                    {"name", "snienable", "sslprofiletype", "sessreuse", "sesstimeout", "tls1", "tls11", "tls12", "tls13", "ssl3"},
}

// checkAttributes answers 278 for an attribute the resource does not have.
func checkAttributes(q *request) *nitroErr {
	key := q.r.Method + " " + q.typ
	if q.action != "" {
		key += "?action=" + q.action
	}
	allowed, ok := attributes[key]
	if !ok {
		return nil
	}
	names := make([]string, 0, len(q.obj()))
	for k := range q.obj() {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !slices.Contains(allowed, strings.ToLower(k)) {
			return errf(599, codeInvalidArgument, "Invalid argument [%s]", k)
		}
	}
	return nil
}

// sslPath resolves a file name as NetScaler does: relative names live in /nsconfig/ssl.
func sslPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return path.Clean(p)
	}
	return "/nsconfig/ssl/" + p
}

func (s *Sim) createKey(q *request) (int, map[string]any, *nitroErr) {
	o := q.obj()
	kf := str(o, "keyfile")
	if kf == "" {
		return 0, nil, errf(400, codeArgMissing, "Required argument missing [keyfile]")
	}
	if len(kf) > 63 {
		return 0, nil, errf(400, codeBadArg, "Invalid argument value [keyfile, value exceeds 63 characters]")
	}
	full := sslPath(kf)
	// UNCONFIRMED: creating a key onto an existing file; refused as for a systemfile upload unless
	// Config.OverwriteKeyFile.
	if _, ok := q.part.files[full]; ok && !s.cfg.OverwriteKeyFile {
		return 0, nil, errf(409, codeFileExists, "Cannot create output file. File already exists")
	}
	var pemKey []byte
	var err error
	if q.typ == "sslrsakey" {
		bits, _ := o["bits"].(float64)
		if bits < 512 || bits > 4096 || bits != math.Trunc(bits) {
			return 0, nil, errf(400, codeBadArg, "Invalid argument value [bits]")
		}
		if e := str(o, "exponent"); e != "" && e != "F4" && e != "3" {
			return 0, nil, errf(400, codeBadArg, "Invalid argument value [exponent]")
		}
		pemKey, err = generateKey(int(bits), "")
	} else {
		c := str(o, "curve")
		if c != "P_256" && c != "P_384" {
			return 0, nil, errf(400, codeBadArg, "Invalid argument value [curve, Only P_256 and P_384 are supported]")
		}
		pemKey, err = generateKey(0, c)
	}
	if err != nil {
		return 0, nil, errf(599, codeBadArg, "key generation failed: %v", err)
	}
	q.part.files[full] = pemKey
	return 200, nil, nil
}

func (s *Sim) createCSR(q *request) (int, map[string]any, *nitroErr) {
	o := q.obj()
	for _, f := range []string{"reqfile", "countryname", "statename", "organizationname"} {
		if str(o, f) == "" {
			return 0, nil, errf(400, codeArgMissing, "Required argument missing [%s]", f)
		}
	}
	if len(str(o, "countryname")) != 2 {
		return 0, nil, errf(400, codeBadArg, "Invalid argument value [countryname]")
	}
	if strings.ContainsAny(str(o, "organizationname"), "<>~!@#^*/[]?") {
		return 0, nil, errf(400, codeBadArg, "Invalid argument value [organizationname]")
	}
	cn := str(o, "commonname")
	if strings.HasPrefix(cn, "*") || net.ParseIP(cn) != nil {
		// The docs say no wildcard or IP in commonname; UNCONFIRMED on a live box (reference §3).
		return 0, nil, errf(400, codeBadArg, "Invalid argument value [commonname]")
	}
	if d := str(o, "digestmethod"); d != "" && d != "SHA1" && d != "SHA256" {
		return 0, nil, errf(400, codeBadArg, "Invalid argument value [digestmethod]")
	}
	reqfile, keyfile := str(o, "reqfile"), str(o, "keyfile")
	if len(reqfile) > 63 || len(keyfile) > 63 {
		return 0, nil, errf(400, codeBadArg, "Invalid argument value [reqfile/keyfile exceeds 63 characters]")
	}
	keyPEM, ok := q.part.files[sslPath(keyfile)]
	if !ok {
		return 0, nil, errf(404, codeMissing, "No such file [%s]", keyfile)
	}
	if _, ok := q.part.files[sslPath(reqfile)]; ok {
		return 0, nil, errf(409, codeFileExists, "Cannot create output file. File already exists")
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return 0, nil, errf(599, codeBadKey, "Invalid private key, or PEM pass phrase required")
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Country: []string{str(o, "countryname")},
		Province: []string{str(o, "statename")}, Organization: []string{str(o, "organizationname")}}}
	if v := str(o, "organizationunitname"); v != "" {
		tmpl.Subject.OrganizationalUnit = []string{v}
	}
	if v := str(o, "localityname"); v != "" {
		tmpl.Subject.Locality = []string{v}
	}
	if v := str(o, "emailaddress"); v != "" {
		// emailAddress is a subject attribute (PKCS #9), not a SAN.
		tmpl.Subject.ExtraNames = append(tmpl.Subject.ExtraNames, pkix.AttributeTypeAndValue{Type: oidEmailAddress, Value: v})
	}
	for _, san := range strings.Fields(str(o, "subjectaltname")) {
		kind, val, _ := strings.Cut(san, ":")
		switch strings.ToUpper(kind) {
		case "DNS":
			tmpl.DNSNames = append(tmpl.DNSNames, val)
		case "IP":
			ip := net.ParseIP(val)
			if ip == nil {
				return 0, nil, errf(400, codeBadArg, "Invalid argument value [subjectaltname, %s]", san)
			}
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		case "EMAIL":
			tmpl.EmailAddresses = append(tmpl.EmailAddresses, val)
		default:
			return 0, nil, errf(400, codeBadArg, "Invalid argument value [subjectaltname, %s]", san)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key.(crypto.Signer))
	if err != nil {
		return 0, nil, errf(599, codeBadKey, "CSR creation failed")
	}
	q.part.files[sslPath(reqfile)] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	return 200, nil, nil
}

var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

func (s *Sim) fileInUse(p *partition, full string) string {
	for _, ck := range p.certkeys {
		if sslPath(ck.cert) == full || ck.key != "" && sslPath(ck.key) == full {
			return ck.name
		}
	}
	return ""
}

func (s *Sim) systemfile(q *request) (int, map[string]any, *nitroErr) {
	switch q.r.Method {
	case http.MethodPost:
		o := q.obj()
		name, loc := str(o, "filename"), str(o, "filelocation")
		if name == "" || loc == "" {
			return 0, nil, errf(400, codeArgMissing, "Required argument missing [filename, filelocation]")
		}
		if strings.Contains(name, "/") || len(name) > 63 || len(loc) > 127 {
			return 0, nil, errf(400, codeBadArg, "Invalid argument value [filename]")
		}
		// fileencoding defaults to BASE64 (NITRO docs systemfile: Default value: "BASE64";
		// Keyfactor's upload sends none).
		if enc := str(o, "fileencoding"); enc != "" && !strings.EqualFold(enc, "BASE64") {
			return 0, nil, errf(400, codeBadArg, "Invalid argument value [fileencoding]")
		}
		data, err := base64.StdEncoding.DecodeString(str(o, "filecontent"))
		if err != nil {
			return 0, nil, errf(400, codeBadArg, "Invalid argument value [filecontent]")
		}
		full := path.Join(loc, name)
		if _, ok := q.part.files[full]; ok {
			return 0, nil, errf(409, codeFileExists, "Cannot create output file. File already exists")
		}
		q.part.files[full] = data
		return 201, nil, nil
	case http.MethodGet:
		loc := q.args["filelocation"]
		if loc == "" {
			return 0, nil, errf(400, codeArgMissing, "Required argument missing [filelocation]")
		}
		var list []any
		for full, data := range q.part.files {
			if path.Dir(full) != path.Clean(loc) || (q.args["filename"] != "" && path.Base(full) != q.args["filename"]) {
				continue
			}
			list = append(list, map[string]any{"filename": path.Base(full), "filelocation": loc,
				"filecontent": base64.StdEncoding.EncodeToString(data), "fileencoding": "BASE64", "filesize": len(data)})
		}
		if q.args["filename"] != "" && len(list) == 0 {
			// UNCONFIRMED: the code for a missing file; Terraform treats an error or an empty list as gone.
			return 0, nil, errf(404, codeMissing, "No such file [%s]", q.args["filename"])
		}
		if len(list) == 0 {
			return 200, nil, nil
		}
		return 200, map[string]any{"systemfile": list}, nil
	case http.MethodDelete:
		loc := q.args["filelocation"]
		full := path.Join(loc, q.name)
		if _, ok := q.part.files[full]; !ok || loc == "" {
			return 0, nil, errf(404, codeMissing, "No such file [%s]", q.name)
		}
		if ck := s.fileInUse(q.part, full); ck != "" && s.cfg.RefuseFileInUseDelete {
			return 0, nil, errf(599, codeFileInUse, "File is in use by certkey %s", ck)
		}
		delete(q.part.files, full)
		return 200, nil, nil
	}
	return 0, nil, errf(405, codeBadArg, "Unsupported method")
}

func (s *Sim) certkeyView(p *partition, ck *certKey) map[string]any {
	out := map[string]any{"certkey": ck.name, "cert": ck.cert, "inform": "PEM", "expirymonitor": "ENABLED"}
	if ck.key != "" {
		out["key"] = ck.key
	}
	if ck.link != "" {
		out["linkcertkeyname"] = ck.link
	}
	c := ck.leaf
	if c == nil {
		return out
	}
	// publickey as "show ssl certKey" prints it ("Public Key Algorithm: rsaEncryption").
	switch c.PublicKeyAlgorithm {
	case x509.RSA:
		out["publickey"] = "rsaEncryption"
	case x509.ECDSA:
		out["publickey"] = "id-ecPublicKey"
	}
	days := int(math.Floor(time.Until(c.NotAfter).Hours() / 24))
	if s.cfg.DaysAsString {
		out["daystoexpiration"] = fmt.Sprint(days)
	} else {
		out["daystoexpiration"] = days
	}
	out["serial"] = strings.ToUpper(hex.EncodeToString(c.SerialNumber.Bytes()))
	out["subject"] = " " + c.Subject.String()
	out["issuer"] = " " + c.Issuer.String()
	out["clientcertnotbefore"] = c.NotBefore.UTC().Format("Jan _2 15:04:05 2006 GMT")
	out["clientcertnotafter"] = c.NotAfter.UTC().Format("Jan _2 15:04:05 2006 GMT")
	status := "Valid"
	if time.Now().After(c.NotAfter) {
		status = "Expired"
	} else if time.Now().Before(c.NotBefore) {
		status = "Not yet valid"
	}
	out["status"] = status
	switch {
	case !c.IsCA:
		out["certificatetype"] = []string{"SRVR_CERT"}
	case c.CheckSignatureFrom(c) == nil:
		out["certificatetype"] = []string{"ROOT_CERT"}
	default:
		out["certificatetype"] = []string{"INTM_CERT"}
	}
	return out
}

// checkPair loads a certkey's files and checks that the key matches the certificate.
func checkPair(p *partition, cert, key string) (*x509.Certificate, *nitroErr) {
	data, ok := p.files[cert]
	if !ok {
		return nil, errf(404, codeMissing, "No such file [%s]", cert)
	}
	c, err := parseCert(data)
	if err != nil {
		return nil, errf(599, codeBadArg, "Invalid certificate")
	}
	if key == "" {
		return c, nil
	}
	kd, ok := p.files[key]
	if !ok {
		return nil, errf(404, codeMissing, "No such file [%s]", key)
	}
	k, err := parseKey(kd)
	if err != nil {
		return nil, errf(599, codeBadKey, "Invalid private key, or PEM pass phrase required")
	}
	type pub interface{ Public() crypto.PublicKey }
	type eq interface{ Equal(crypto.PublicKey) bool }
	if !k.(pub).Public().(eq).Equal(c.PublicKey) {
		// UNCONFIRMED wording and code for a certificate that does not match its key.
		return nil, errf(599, codeBadKey, "Invalid private key, or certificate and private key do not match")
	}
	return c, nil
}

// holderOf returns the certkey (other than except) holding a certificate with c's issuer and
// serial: the appliance keeps one certkey per certificate (Citrix KB 206045: "You cannot install
// two certificates with the same serial number from the same certification authority").
func holderOf(p *partition, c *x509.Certificate, except string) string {
	for _, other := range p.certkeys {
		if other.name == except {
			continue
		}
		if oc := other.leaf; oc != nil && oc.SerialNumber.Cmp(c.SerialNumber) == 0 && bytes.Equal(oc.RawIssuer, c.RawIssuer) {
			return other.name
		}
	}
	return ""
}

func (s *Sim) certkey(q *request) (int, map[string]any, *nitroErr) {
	p := q.part
	switch q.r.Method {
	case http.MethodGet:
		if q.name != "" {
			ck, ok := p.certkeys[q.name]
			if !ok {
				return 0, nil, s.noCertKey(q.name)
			}
			return 200, map[string]any{"sslcertkey": []any{s.certkeyView(p, ck)}}, nil
		}
		names := make([]string, 0, len(p.certkeys))
		for n := range p.certkeys {
			names = append(names, n)
		}
		sort.Strings(names)
		var list []any
		for _, n := range names {
			list = append(list, s.certkeyView(p, p.certkeys[n]))
		}
		if len(list) == 0 {
			return 200, nil, nil
		}
		return 200, map[string]any{"sslcertkey": list}, nil
	case http.MethodDelete:
		ck, ok := p.certkeys[q.name]
		if !ok {
			return 0, nil, s.noCertKey(q.name)
		}
		for _, pl := range p.places {
			if pl.certkey == ck.name {
				return 0, nil, errf(599, codeCertKeyInUse, "Certificate is bound to %s %s; unbind it first", pl.kind, pl.name)
			}
		}
		for _, v := range p.vservers {
			for _, b := range v.bindings {
				if b.certkey == ck.name {
					return 0, nil, errf(599, codeCertKeyInUse, "Certificate is bound to vserver %s; unbind it first", v.Name)
				}
			}
		}
		for _, other := range p.certkeys {
			if other.link == ck.name {
				return 0, nil, errf(599, codeCertKeyInUse, "Certificate is linked to by %s; unlink it first", other.name)
			}
		}
		delete(p.certkeys, ck.name)
		return 200, nil, nil
	case http.MethodPost:
	default:
		return 0, nil, errf(405, codeBadArg, "Unsupported method")
	}
	o := q.obj()
	name := str(o, "certkey")
	if name == "" {
		return 0, nil, errf(400, codeArgMissing, "Required argument missing [certkey]")
	}
	switch q.action {
	case "":
		if len(name) > 31 || !validName(name) {
			// 31 chars as reported on 12.1; UNCONFIRMED for 13/14 (reference §5).
			return 0, nil, errf(400, codeBadArg, "Invalid argument value [certkey]")
		}
		if _, ok := p.certkeys[name]; ok {
			return 0, nil, errf(409, codeExists, "Resource already exists [certkeyName, %s]", name)
		}
		// The names are kept as given; a relative one is relative to /nsconfig/ssl (sslcertkey docs:
		// "/nsconfig/ssl/ is the default path").
		cert, key := str(o, "cert"), str(o, "key")
		if cert == "" {
			return 0, nil, errf(400, codeArgMissing, "Required argument missing [cert]")
		}
		fresh := &certKey{name: name, cert: cert, key: key}
		if e := fresh.load(p); e != nil {
			return 0, nil, e
		}
		c := fresh.leaf
		if !c.IsCA && key == "" {
			return 0, nil, errf(400, codeArgMissing, "Required argument missing [key]")
		}
		// The same certificate under another name: 273 naming the holder (Ansible #402 shape;
		// that the name is the holder's is UNCONFIRMED).
		if holder := holderOf(p, c, ""); holder != "" {
			return 0, nil, errf(409, codeExists, "Resource already exists [certkeyName Contents, %s]", holder)
		}
		// linkcertkeyname in an add is ignored, as on the appliance (Ansible #318/#351).
		p.certkeys[name] = fresh
		return 201, nil, nil
	case "update":
		ck, ok := p.certkeys[name]
		if !ok {
			return 0, nil, s.noCertKey(name)
		}
		next := &certKey{name: name, cert: ck.cert, key: ck.key, link: ck.link}
		if v := str(o, "cert"); v != "" {
			next.cert = v
		}
		if v := str(o, "key"); v != "" {
			next.key = v
		}
		if e := next.load(p); e != nil {
			return 0, nil, e
		}
		c := next.leaf
		// UNCONFIRMED for update (KB 206045 says "installing\updating"); see
		// Config.AllowDuplicateOnUpdate.
		if holder := holderOf(p, c, name); holder != "" && !s.cfg.AllowDuplicateOnUpdate {
			return 0, nil, errf(409, codeExists, "Resource already exists [certkeyName Contents, %s]", holder)
		}
		if old := ck.leaf; old != nil && !truthy(o, "nodomaincheck") && !sameDomain(old, c) {
			return 0, nil, errf(599, codeDomainCheck, "Certificate is registered to a different domain; use the 'no domain check' option to force the operation")
		}
		if ck.link != "" {
			if ic := p.certkeys[ck.link].leaf; ic != nil && c.CheckSignatureFrom(ic) != nil {
				return 0, nil, errf(599, codeLinkMismatch, "The new certificate is not issued by the linked certificate %s; unlink first", ck.link)
			}
		}
		*ck = *next
		return 200, nil, nil
	case "link":
		ck, ok := p.certkeys[name]
		issuer, ok2 := p.certkeys[str(o, "linkcertkeyname")]
		if !ok {
			return 0, nil, s.noCertKey(name)
		}
		if !ok2 {
			return 0, nil, s.noCertKey(str(o, "linkcertkeyname"))
		}
		if ck.link != "" {
			return 0, nil, errf(409, codeExists, "Resource already exists [link %s]", ck.link)
		}
		c, ic := ck.leaf, issuer.leaf
		if c == nil || ic == nil || c.CheckSignatureFrom(ic) != nil {
			return 0, nil, errf(599, codeLinkMismatch, "Certificate %s is not issued by %s", name, issuer.name)
		}
		ck.link = issuer.name
		return 200, nil, nil
	case "unlink":
		ck, ok := p.certkeys[name]
		if !ok {
			return 0, nil, s.noCertKey(name)
		}
		if ck.link == "" {
			return 0, nil, errf(599, codeNotLinked, "Certificate %s is not linked", name)
		}
		ck.link = ""
		return 200, nil, nil
	}
	return 0, nil, errf(400, codeBadArg, "Unsupported action %q", q.action)
}

// noCertKey is the answer for a certkey that does not exist.
func (s *Sim) noCertKey(name string) *nitroErr {
	if s.cfg.MissingCertKeyAs258 {
		return errf(404, codeMissing, "No such resource [certkey, %s]", name)
	}
	return errf(599, codeNoCertKey, "Certificate does not exist [%s]", name)
}

// certkeyPlaces answers GET sslcertkey_binding[/<certkey>][?bulkbindings=yes]: where each
// certkey is bound, in the shape of the 12.1 docs (sslcertkey_binding.md).
func (s *Sim) certkeyPlaces(q *request) (int, map[string]any, *nitroErr) {
	p := q.part
	var names []string
	if q.name != "" {
		if _, ok := p.certkeys[q.name]; !ok {
			return 0, nil, s.noCertKey(q.name)
		}
		names = []string{q.name}
	} else {
		if !strings.EqualFold(q.r.URL.Query().Get("bulkbindings"), "yes") {
			return 0, nil, errf(400, codeArgMissing, "Required argument missing [certkey]")
		}
		for n := range p.certkeys {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	vsNames := make([]string, 0, len(p.vservers))
	for n := range p.vservers {
		vsNames = append(vsNames, n)
	}
	sort.Strings(vsNames)
	var list []any
	for _, n := range names {
		entry := map[string]any{"certkey": n}
		var vs, svc, prof []any
		for _, vn := range vsNames {
			for _, b := range p.vservers[vn].bindings {
				if b.certkey == n {
					vs = append(vs, map[string]any{"certkey": n, "servername": vn})
					break
				}
			}
		}
		for _, pl := range p.places {
			if pl.certkey != n {
				continue
			}
			switch pl.kind {
			case PlaceService:
				svc = append(svc, map[string]any{"certkey": n, "servicename": pl.name, "service": true})
			case PlaceServiceGroup:
				svc = append(svc, map[string]any{"certkey": n, "servicegroupname": pl.name, "service": true})
			case PlaceProfile:
				prof = append(prof, map[string]any{"certkey": n, "sslprofile": pl.name})
			}
		}
		for k, v := range map[string][]any{"sslcertkey_sslvserver_binding": vs, "sslcertkey_service_binding": svc, "sslcertkey_sslprofile_binding": prof} {
			if len(v) > 0 {
				entry[k] = v
			}
		}
		list = append(list, entry)
	}
	return 200, listBody("sslcertkey_binding", list), nil
}

func validName(n string) bool {
	for i, r := range n {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if i > 0 {
			ok = ok || strings.ContainsRune("#. :@=-", r)
		}
		if !ok {
			return false
		}
	}
	return n != ""
}

func sameDomain(a, b *x509.Certificate) bool {
	names := map[string]bool{a.Subject.CommonName: true}
	for _, n := range a.DNSNames {
		names[n] = true
	}
	if names[b.Subject.CommonName] {
		return true
	}
	for _, n := range b.DNSNames {
		if names[n] {
			return true
		}
	}
	return false
}

// bulkBindings answers GET sslvserver_sslcertkey_binding?bulkbindings=yes: every binding of
// every SSL vserver of the partition.
func (s *Sim) bulkBindings(q *request) (int, map[string]any, *nitroErr) {
	if !strings.EqualFold(q.r.URL.Query().Get("bulkbindings"), "yes") {
		return 0, nil, errf(400, codeArgMissing, "Required argument missing [vservername]")
	}
	names := make([]string, 0, len(q.part.vservers))
	for n := range q.part.vservers {
		names = append(names, n)
	}
	sort.Strings(names)
	var list []any
	for _, n := range names {
		for _, b := range q.part.vservers[n].bindings {
			list = append(list, map[string]any{"vservername": n, "certkeyname": b.certkey, "snicert": b.sni, "ca": false})
		}
	}
	if len(list) == 0 {
		return 200, nil, nil
	}
	return 200, map[string]any{"sslvserver_sslcertkey_binding": list}, nil
}

func (s *Sim) listVServers(q *request) (int, map[string]any, *nitroErr) {
	var list []any
	names := make([]string, 0)
	for n, v := range q.part.vservers {
		if v.Kind == q.typ && (q.name == "" || q.name == n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		v := q.part.vservers[n]
		list = append(list, map[string]any{"name": v.Name, "servicetype": v.ServiceType})
	}
	if q.name != "" && len(list) == 0 {
		return 0, nil, errf(404, codeMissing, "No such resource [name, %s]", q.name)
	}
	if len(list) == 0 {
		return 200, nil, nil
	}
	return 200, map[string]any{q.typ: list}, nil
}

func (s *Sim) sslVServer(p *partition, name string) (*vserver, *nitroErr) {
	v, ok := p.vservers[name]
	if !ok || name == "" {
		return nil, errf(404, codeNoVServer, "Vserver does not exist [%s]", name)
	}
	if !isSSL(v.ServiceType) {
		return nil, errf(599, codeNotSSL, "Vserver %s is not of SSL type", name)
	}
	return v, nil
}

func (s *Sim) binding(q *request) (int, map[string]any, *nitroErr) {
	p := q.part
	switch q.r.Method {
	case http.MethodGet:
		if q.name == "" {
			return s.bulkBindings(q)
		}
		v, e := s.sslVServer(p, q.name)
		if e != nil {
			return 0, nil, e
		}
		var list []any
		for _, b := range v.bindings {
			if f := q.r.URL.Query().Get("filter"); f != "" && f != "certkeyname:"+b.certkey {
				continue
			}
			list = append(list, map[string]any{"vservername": v.Name, "certkeyname": b.certkey, "snicert": b.sni, "ca": false})
		}
		if len(list) == 0 {
			return 200, nil, nil
		}
		return 200, map[string]any{"sslvserver_sslcertkey_binding": list}, nil
	case http.MethodPut, http.MethodPost:
		o := q.obj()
		v, e := s.sslVServer(p, str(o, "vservername"))
		if e != nil {
			return 0, nil, e
		}
		name := str(o, "certkeyname")
		ck, ok := p.certkeys[name]
		if !ok {
			return 0, nil, s.noCertKey(name)
		}
		if ck.key == "" {
			return 0, nil, errf(599, codeBadArg, "Certificate %s has no private key and cannot be a server certificate", name)
		}
		sni := truthy(o, "snicert")
		if sni && !p.sniEnabled(v) {
			// UNCONFIRMED which switch applies (sslvserver or sslprofile); the simulator uses sslvserver.
			return 0, nil, errf(599, codeBadArg, "SNI is not enabled on vserver %s", v.Name)
		}
		leaf := ck.leaf
		for i, b := range v.bindings {
			if b.certkey == name && b.sni == sni {
				return 0, nil, errf(409, codeExists, "Resource already exists")
			}
			other := p.certkeys[b.certkey]
			// One RSA and one ECDSA default certificate may be bound at once (Citrix docs "ECDSA
			// cipher suites support", CTX224272); a second of the same key type is the
			// UNCONFIRMED case below.
			if !sni && !b.sni && other != nil && other.leaf.PublicKeyAlgorithm == leaf.PublicKeyAlgorithm {
				if s.cfg.DefaultBindReplaces {
					v.bindings = append(v.bindings[:i], v.bindings[i+1:]...)
					break
				}
				return 0, nil, errf(599, codeSecondServerCert, "A server certificate (%s) is already bound to vserver %s; use -SNICert or unbind it first", b.certkey, v.Name)
			}
			// Keyfactor's UpdateBindings: "Citrix Requires you do delete first when SNI with same
			// domain or you will get a duplicate domain error". UNCONFIRMED across key types.
			if sni && b.sni && !s.cfg.AllowSNIDomainOverlap && other != nil && other.leaf.PublicKeyAlgorithm == leaf.PublicKeyAlgorithm {
				if sameDomain(other.leaf, leaf) {
					return 0, nil, errf(599, codeDuplicateDomain, "Duplicate domain: an SNI certificate (%s) for the same domain is bound to vserver %s", b.certkey, v.Name)
				}
			}
		}
		v.bindings = append(v.bindings, binding{certkey: name, sni: sni})
		return 201, nil, nil
	case http.MethodDelete:
		v, e := s.sslVServer(p, q.name)
		if e != nil {
			return 0, nil, e
		}
		sni := strings.EqualFold(q.args["snicert"], "true")
		for i, b := range v.bindings {
			if b.certkey == q.args["certkeyname"] && b.sni == sni {
				v.bindings = append(v.bindings[:i], v.bindings[i+1:]...)
				return 200, nil, nil
			}
		}
		return 0, nil, errf(404, codeMissing, "No such resource [certkeyName, %s]", q.args["certkeyname"])
	}
	return 0, nil, errf(405, codeBadArg, "Unsupported method")
}
